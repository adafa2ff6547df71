//! `smartraiden testnet up` right after `down` while the old anvil is a zombie (issue 13).
//!
//! In a container without an init, or under a parent that reaps late, the processes `down`
//! stops stay zombies: gone, but still in `/proc`. `up` once took such an anvil for a running
//! testnet and refused to start. Here the test process makes itself a child subreaper
//! (`prctl(PR_SET_CHILD_SUBREAPER)`), so the detached anvil, Prosody and node of `testnet up`
//! become its children when `up` exits, and it reaps none of them until the end: after `down`
//! the old anvil is a zombie, checked in `/proc`, and `up` must start a new testnet at once.
//! This is the only test of its binary, since being a subreaper concerns the whole process.

use std::path::Path;
use std::time::{Duration, Instant};

use smartraiden::testnet::TestnetInfo;

const PR_SET_CHILD_SUBREAPER: i32 = 36;
const WNOHANG: i32 = 1;

// The C library std already links.
unsafe extern "C" {
    fn prctl(option: i32, ...) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
}

/// The state letter and parent of a process, from `/proc/<pid>/stat`; `None` once it is gone.
fn state_and_parent(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let parent = rest.next()?.parse().ok()?;
    Some((state, parent))
}

fn smartraiden(args: &[&str], dir: &Path) -> std::process::Output {
    smartraiden::testnet::harness::run_on_dir(
        Path::new(env!("CARGO_BIN_EXE_smartraiden")),
        args,
        dir,
    )
}

fn free_port() -> u16 {
    smartraiden::transport::ports::free_loopback_port().unwrap()
}

/// Reaps every child that has exited, waiting up to `timeout` for the rest; how many remain.
fn reap_all(timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        // SAFETY: waitpid with a null status pointer only reaps.
        let pid = unsafe { waitpid(-1, std::ptr::null_mut(), WNOHANG) };
        if pid > 0 {
            continue;
        }
        if pid < 0 {
            return 0; // ECHILD: no children left.
        }
        if Instant::now() >= deadline {
            let children = std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| state_and_parent(*p).is_some_and(|(_, pp)| pp == std::process::id()))
                .count();
            return children;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn testnet_up_after_down_treats_the_zombie_anvil_as_stopped() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) changes only this process's reaping duty.
    let rc = unsafe { prctl(PR_SET_CHILD_SUBREAPER, 1u64) };
    assert_eq!(rc, 0, "prctl(PR_SET_CHILD_SUBREAPER) failed");

    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let up = [
        "testnet",
        "up",
        "--nodes",
        "1",
        "--block-time",
        "0",
        "--api-port",
        &port,
    ];
    assert!(smartraiden(&up, dir.path()).status.success(), "first up");
    let first = TestnetInfo::read(dir.path()).unwrap();
    let anvil = first.anvil_pid;
    // `up` has exited, so its detached anvil is now our child, and only we may reap it.
    assert_eq!(
        state_and_parent(anvil).map(|(_, parent)| parent),
        Some(std::process::id()),
        "anvil (pid {anvil}) was not handed to this subreaper"
    );

    assert!(
        smartraiden(&["testnet", "down"], dir.path())
            .status
            .success(),
        "down"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while state_and_parent(anvil).map(|(s, _)| s) != Some('Z') {
        assert!(
            Instant::now() < deadline,
            "anvil (pid {anvil}) did not become a zombie after down: {:?}",
            state_and_parent(anvil)
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // At once, with the zombie still in /proc (where a check for `/proc/<pid>` sees it).
    assert!(Path::new(&format!("/proc/{anvil}")).exists());
    let again = smartraiden(&up, dir.path());
    assert_eq!(state_and_parent(anvil).map(|(s, _)| s), Some('Z'));
    assert!(
        again.status.success(),
        "up refused while the old anvil is only a zombie"
    );
    let second = TestnetInfo::read(dir.path()).unwrap();
    assert_ne!(second.anvil_pid, anvil, "a new anvil runs");
    assert_eq!(
        state_and_parent(second.anvil_pid).map(|(s, _)| s != 'Z'),
        Some(true),
        "the new anvil is alive"
    );

    assert!(
        smartraiden(&["testnet", "down"], dir.path())
            .status
            .success(),
        "second down"
    );
    assert_eq!(
        reap_all(Duration::from_secs(20)),
        0,
        "children left running"
    );
}
