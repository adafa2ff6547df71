//! The LAN lab (`testnet::netns`): real anvil and Prosody in the infra namespace, reached from
//! the nodes' namespaces through the router; `cut_internet` takes that route away at once
//! (ENETUNREACH) while the nodes still reach each other over TCP and mDNS multicast on the LAN;
//! `restore_internet` gives it back; dropping the lab, also during a panic, leaves no namespace,
//! interface or process behind; stale labs of dead processes are removed.
//!
//! Code that must run inside a namespace runs on a thread of this process that entered it
//! (`LanLab::run_in` / `spawn_in`, setns(2)): its sockets belong to that namespace, so every
//! check below is made by the kernel of the node in question. `curl` (via
//! `LanLab::command_in`) makes the JSON-RPC calls as a separate process in a node's namespace.
//! Synchronisation is by explicit signals and polled conditions with deadlines, never sleeps.
//!
//! Needs root (network namespaces), `ip` and `curl`; anvil and Prosody are installed on demand
//! by `integration/deps.sh`.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use smartraiden::chain::{DevChain, DevChainOptions};
use smartraiden::testnet::netns::LanLab;
use smartraiden::testnet::network::is_running;
use smartraiden::transport::xmpp::{ProsodyOptions, ProsodyServer};

const DOMAIN: &str = "lab.test";
const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const MDNS_PORT: u16 = 5353;
/// Deadline of every wait on the LAN (generous for a loaded 2-core machine).
const WAIT: Duration = Duration::from_secs(10);
/// "At once": how long a connect to an unroutable address may take before it counts as a hang.
const AT_ONCE: Duration = Duration::from_millis(500);

/// Serialises this file's tests: the teardown checks look for threads in the lab's namespaces
/// by inode number, which the kernel reuses for the next namespace made, and the stale-lab test
/// plants a lab that any other test's `LanLab::create` would remove.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes [`SERIAL`] (a failed test poisons it; that is not this test's failure) and checks root.
fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_root();
    guard
}

/// The lab needs root; say so instead of failing somewhere inside `ip`.
fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned));
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "the LAN lab needs root (network namespaces)"
    );
}

/// Runs `f` on a current-thread runtime. The tests are plain `#[test]`s so that [`SERIAL`]'s
/// guard is held outside any future.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// A lab with anvil and Prosody running in its infra namespace.
struct Lab {
    // Declared first, dropped first: the lab kills the servers; the handles then only reap them.
    lab: LanLab,
    chain: DevChain,
    prosody: ProsodyServer,
}

async fn lab_with_servers(nodes: usize) -> (Lab, String) {
    let t0 = Instant::now();
    let lab = LanLab::create(nodes).expect("the lab is created");
    let t_lab = t0.elapsed();
    let chain = lab
        .start_anvil(DevChainOptions::default())
        .await
        .expect("anvil starts in infra");
    let t_anvil = t0.elapsed() - t_lab;
    let prosody = lab
        .start_prosody(DOMAIN, ProsodyOptions::default())
        .expect("prosody starts in infra");
    let total = t0.elapsed();
    let timing = format!(
        "LAN lab with {nodes} nodes: create {:.0} ms, anvil ready from a node {:.0} ms, \
         prosody ready from a node {:.0} ms, total {:.0} ms",
        t_lab.as_secs_f64() * 1e3,
        t_anvil.as_secs_f64() * 1e3,
        (total - t_lab - t_anvil).as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
    );
    (
        Lab {
            lab,
            chain,
            prosody,
        },
        timing,
    )
}

/// `eth_blockNumber` at `url`, asked by `curl` running in namespace `ns`.
fn curl_block_number(lab: &LanLab, ns: &str, url: &str) -> Result<u64, String> {
    let out = lab
        .command_in(
            ns,
            "curl",
            [
                "-sS",
                "--max-time",
                "5",
                "-H",
                "content-type: application/json",
                "--data",
                r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#,
                url,
            ],
        )
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "curl {url} from {ns}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))?;
    let hex = reply["result"]
        .as_str()
        .ok_or_else(|| format!("no result: {reply}"))?;
    u64::from_str_radix(hex.trim_start_matches("0x"), 16).map_err(|e| format!("{hex}: {e}"))
}

/// Opens an XMPP client stream to `addr` (from the calling thread's namespace) and returns
/// the server's answer up to the end of its stream features.
fn xmpp_stream_features(addr: SocketAddr) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, WAIT)?;
    s.set_read_timeout(Some(WAIT))?;
    write!(
        s,
        "<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>"
    )?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("</stream:features>") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "stream closed: {}",
                String::from_utf8_lossy(&got)
            )));
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// Prosody answers an XMPP stream opened from namespace `ns` with its SASL features.
fn assert_xmpp_from(lab: &LanLab, ns: &str, addr: SocketAddr) {
    let features = lab
        .run_in(ns, move || xmpp_stream_features(addr))
        .expect("thread in namespace")
        .unwrap_or_else(|e| panic!("XMPP stream to {addr} from {ns}: {e}"));
    assert!(
        features.contains(&format!("from='{DOMAIN}'"))
            || features.contains(&format!("from=\"{DOMAIN}\"")),
        "{features}"
    );
    assert!(
        features.contains("<mechanism>PLAIN</mechanism>"),
        "{features}"
    );
}

/// A TCP exchange from node `from` to node `to` over the LAN: `to` listens on its LAN address,
/// `from` connects and sends a line, `to` answers with the peer address it saw.
fn assert_lan_tcp(lab: &LanLab, from: usize, to: usize) {
    let to_ip = lab.node_ip(to);
    let (port_tx, port_rx) = mpsc::channel();
    let server = lab.spawn_in(lab.node_ns(to), move || -> io::Result<String> {
        let listener = TcpListener::bind((to_ip, 0))?;
        port_tx
            .send(listener.local_addr()?.port())
            .map_err(io::Error::other)?;
        let (mut conn, peer) = listener.accept()?;
        conn.set_read_timeout(Some(WAIT))?;
        let mut line = [0u8; 5];
        conn.read_exact(&mut line)?;
        writeln!(conn, "{peer}")?;
        Ok(String::from_utf8_lossy(&line).into_owned())
    });
    let port = port_rx
        .recv_timeout(WAIT)
        .expect("the listener in the node's namespace is bound");
    let target = SocketAddr::V4(SocketAddrV4::new(to_ip, port));
    let reply = lab
        .run_in(lab.node_ns(from), move || -> io::Result<String> {
            let mut s = TcpStream::connect_timeout(&target, WAIT)?;
            s.set_read_timeout(Some(WAIT))?;
            s.write_all(b"ping\n")?;
            let mut reply = String::new();
            s.read_to_string(&mut reply)?;
            Ok(reply)
        })
        .expect("thread in namespace")
        .unwrap_or_else(|e| panic!("node {from} → node {to} ({target}): {e}"));
    let got = server
        .join()
        .expect("listener thread")
        .expect("listener in namespace")
        .unwrap_or_else(|e| panic!("listener on node {to}: {e}"));
    assert_eq!(got, "ping\n");
    let seen: SocketAddr = reply.trim().parse().expect("peer address");
    assert_eq!(
        seen.ip(),
        lab.node_ip(from),
        "node {to} saw the connection come from {seen}, not node {from}'s LAN address"
    );
}

/// A TCP connect from `ns` to `addr`: the error and how long it took.
fn connect_error_from(lab: &LanLab, ns: &str, addr: SocketAddr) -> (io::Result<()>, Duration) {
    lab.run_in(ns, move || {
        let t = Instant::now();
        let r = TcpStream::connect_timeout(&addr, WAIT).map(|_| ());
        (r, t.elapsed())
    })
    .expect("thread in namespace")
}

fn assert_unreachable_at_once(lab: &LanLab, ns: &str, addr: SocketAddr) {
    let (result, took) = connect_error_from(lab, ns, addr);
    let err = result.expect_err(&format!("{addr} must be unreachable from {ns}"));
    assert_eq!(
        err.kind(),
        io::ErrorKind::NetworkUnreachable,
        "{addr} from {ns}: {err}"
    );
    assert_eq!(err.raw_os_error(), Some(101), "ENETUNREACH expected: {err}");
    assert!(took < AT_ONCE, "failing took {took:?}: not at once");
}

fn anvil_addr(chain: &DevChain) -> SocketAddr {
    chain
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("anvil's URL is an address")
}

/// Sends an mDNS-sized datagram from node `from` to 224.0.0.251:5353 on its LAN interface and
/// asserts node `to`, joined to the group on its interface, receives it from `from`'s address.
/// The receiver reports "ready" after joining; the sender repeats (every 100 ms, up to
/// [`WAIT`]) until the receiver reports the datagram, so one lost datagram is no failure.
/// Returns how many datagrams were sent.
fn assert_mdns_multicast(lab: &LanLab, from: usize, to: usize) -> usize {
    let to_ip = lab.node_ip(to);
    let from_ip = lab.node_ip(from);
    let token = format!("smartraiden-lab-{}-{from}-{to}", std::process::id());
    let (ready_tx, ready_rx) = mpsc::channel();
    let (got_tx, got_rx) = mpsc::channel();
    let want = token.clone();
    let receiver = lab.spawn_in(lab.node_ns(to), move || -> io::Result<()> {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, MDNS_PORT))?;
        // Join on the node's LAN interface (named by its address): there is no default route.
        sock.join_multicast_v4(&MDNS_GROUP, &to_ip)?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        ready_tx.send(()).map_err(io::Error::other)?;
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            match sock.recv_from(&mut buf) {
                Ok((n, src)) if buf[..n] == *want.as_bytes() => {
                    let _ = got_tx.send(src);
                    return Ok(());
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    ready_rx
        .recv_timeout(WAIT)
        .expect("the receiver joined the group");
    // Binding the node's LAN address sends on its interface (the kernel picks the device that
    // owns a multicast sender's source address), as an mDNS responder must without a route.
    let sender = lab
        .run_in(lab.node_ns(from), move || UdpSocket::bind((from_ip, 0)))
        .expect("thread in namespace")
        .expect("a UDP socket on the node's LAN address");
    let deadline = Instant::now() + WAIT;
    let mut sent = 0;
    let src = loop {
        sender
            .send_to(token.as_bytes(), (MDNS_GROUP, MDNS_PORT))
            .expect("multicast send on the LAN interface");
        sent += 1;
        match got_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(src) => break src,
            Err(_) if Instant::now() < deadline => continue,
            Err(_) => panic!("node {to} did not receive the multicast datagram of node {from}"),
        }
    };
    receiver
        .join()
        .expect("receiver thread")
        .expect("receiver in namespace")
        .expect("receiver");
    assert_eq!(src.ip(), from_ip, "datagram from {src}");
    sent
}

#[test]
fn nodes_reach_anvil_and_prosody_in_infra_and_each_other_on_the_lan() {
    let _serial = serial();
    block_on(async {
        let (l, timing) = lab_with_servers(2).await;
        println!("{timing}");
        let lab = &l.lab;
        assert_eq!(lab.infra_ip(), Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(lab.node_ip(0), Ipv4Addr::new(10, 78, 0, 11));
        assert_eq!(lab.node_ip(1), Ipv4Addr::new(10, 78, 0, 12));
        let anvil = anvil_addr(&l.chain);
        assert_eq!(
            anvil.ip(),
            lab.infra_ip(),
            "anvil listens on infra's address"
        );
        assert_eq!(l.prosody.addr().ip(), lab.infra_ip());

        // Anvil's JSON-RPC from both nodes (curl in their namespaces) and from this process through
        // the portal: one chain, seen alike.
        l.chain.mine(3).await.expect("mine through the portal");
        for i in 0..2 {
            assert_eq!(
                curl_block_number(lab, lab.node_ns(i), l.chain.url()),
                Ok(3),
                "node {i}"
            );
        }
        assert_eq!(l.chain.block_number().await.unwrap(), 3);
        assert_ne!(l.chain.harness_url(), l.chain.url());

        // The host has no route into the lab: its traffic must go through the portal.
        assert!(
            TcpStream::connect_timeout(&anvil, Duration::from_millis(300)).is_err(),
            "the host reached {anvil} directly"
        );

        // Prosody's c2s port speaks XMPP to both nodes.
        assert_xmpp_from(lab, lab.node_ns(0), l.prosody.addr());
        assert_xmpp_from(lab, lab.node_ns(1), l.prosody.addr());

        // Node ↔ node over the LAN, both ways.
        assert_lan_tcp(lab, 0, 1);
        assert_lan_tcp(lab, 1, 0);
    })
}

#[test]
fn cut_internet_makes_infra_unreachable_at_once_but_keeps_lan_and_mdns_then_restores() {
    let _serial = serial();
    block_on(async {
        let (l, _) = lab_with_servers(2).await;
        let lab = &l.lab;
        let anvil = anvil_addr(&l.chain);
        let xmpp = l.prosody.addr();
        assert_eq!(curl_block_number(lab, lab.node_ns(0), l.chain.url()), Ok(0));

        lab.cut_internet().expect("cut");
        lab.cut_internet().expect("cutting twice is harmless");
        for i in 0..2 {
            assert_unreachable_at_once(lab, lab.node_ns(i), anvil);
            assert_unreachable_at_once(lab, lab.node_ns(i), xmpp);
        }
        let curl = curl_block_number(lab, lab.node_ns(0), l.chain.url());
        assert!(curl.is_err(), "curl reached anvil after the cut: {curl:?}");
        // The servers are alive: only the nodes' route is gone.
        assert!(lab.tcp_reachable_from(lab.router_ns(), anvil));
        assert!(lab.tcp_reachable_from(lab.router_ns(), xmpp));

        // The LAN still works: TCP both ways and mDNS multicast both ways.
        assert_lan_tcp(lab, 0, 1);
        assert_lan_tcp(lab, 1, 0);
        let sent = assert_mdns_multicast(lab, 0, 1);
        println!("multicast node 1 → node 2 arrived after {sent} datagram(s)");
        assert_mdns_multicast(lab, 1, 0);
        // The trap mDNS code must avoid: with no route, a multicast send that names no interface
        // fails at once with ENETUNREACH.
        let unbound = lab
            .run_in(lab.node_ns(0), || {
                UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
                    .and_then(|s| s.send_to(b"x", (MDNS_GROUP, MDNS_PORT)))
            })
            .expect("thread in namespace");
        assert_eq!(
            unbound.as_ref().map_err(io::Error::raw_os_error).err(),
            Some(Some(101)),
            "{unbound:?}"
        );

        lab.restore_internet().expect("restore");
        lab.restore_internet().expect("restoring twice is harmless");
        l.chain.mine(1).await.unwrap();
        for i in 0..2 {
            assert_eq!(
                curl_block_number(lab, lab.node_ns(i), l.chain.url()),
                Ok(1),
                "node {i} after restore"
            );
            assert_xmpp_from(lab, lab.node_ns(i), xmpp);
        }
        assert_lan_tcp(lab, 0, 1);
    })
}

/// Inode numbers of the lab's namespaces (`/run/netns/NAME` is a bind mount of the nsfs file).
fn namespace_inodes(names: &[String]) -> Vec<u64> {
    use std::os::unix::fs::MetadataExt;
    names
        .iter()
        .map(|ns| {
            std::fs::metadata(format!("/run/netns/{ns}"))
                .unwrap_or_else(|e| panic!("{ns}: {e}"))
                .ino()
        })
        .collect()
}

/// Threads anywhere on the machine still inside one of the namespaces `inodes` (which would
/// keep them, and their veths, alive after `ip netns del`).
fn tasks_in(inodes: &[u64]) -> Vec<String> {
    let mut found = Vec::new();
    for proc_entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(tasks) = std::fs::read_dir(proc_entry.path().join("task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(link) = std::fs::read_link(task.path().join("ns/net")) else {
                continue;
            };
            let link = link.to_string_lossy().into_owned();
            if inodes.iter().any(|i| link == format!("net:[{i}]")) {
                found.push(format!("{} {link}", task.path().display()));
            }
        }
    }
    found
}

fn stdout_of(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What of a dropped lab is left: namespaces, host interfaces and threads with its names.
fn leftovers(prefix: &str, inodes: &[u64]) -> Vec<String> {
    let mut left: Vec<String> = stdout_of("ip", &["netns", "list"])
        .lines()
        .filter(|l| l.starts_with(&format!("{prefix}-")))
        .map(|l| format!("namespace {l}"))
        .collect();
    left.extend(
        stdout_of("ip", &["-o", "link", "show"])
            .lines()
            .filter(|l| l.contains(prefix))
            .map(|l| format!("interface {l}")),
    );
    left.extend(tasks_in(inodes).into_iter().map(|t| format!("task {t}")));
    left
}

#[test]
fn dropping_the_lab_removes_namespaces_interfaces_and_its_processes() {
    let _serial = serial();
    block_on(async {
        let (l, _) = lab_with_servers(2).await;
        let Lab {
            lab,
            chain,
            mut prosody,
        } = l;
        let prefix = lab.prefix().to_owned();
        let names = lab.namespace_names();
        assert_eq!(names.len(), 5);
        let inodes = namespace_inodes(&names);
        // A process started by hand in a node namespace, owned by no handle.
        let mut sleeper = lab
            .command_in(lab.node_ns(1), "sleep", ["600"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pids = [chain.pid().unwrap(), prosody.pid().unwrap(), sleeper.id()];
        assert!(pids.iter().all(|p| is_running(*p)));
        // Portal connections left open (their threads sit in the infra namespace): one that has
        // carried a request and is kept alive, one just accepted.
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
        let mut used = TcpStream::connect(harness_addr(&chain)).unwrap();
        write!(
        used,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
        used.set_read_timeout(Some(WAIT)).unwrap();
        let mut head = [0u8; 12];
        used.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        let fresh = TcpStream::connect(harness_addr(&chain)).unwrap();

        let t = Instant::now();
        drop(lab);
        let took = t.elapsed();
        assert_eq!(leftovers(&prefix, &inodes), Vec::<String>::new());
        for pid in pids {
            assert!(!is_running(pid), "pid {pid} survived the lab");
        }
        // The portal shut its connections down: both read to the end at once.
        for mut conn in [used, fresh] {
            conn.set_read_timeout(Some(WAIT)).unwrap();
            let mut rest = Vec::new();
            if let Err(e) = conn.read_to_end(&mut rest) {
                assert!(
                    !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ),
                    "a portal connection outlived the lab: {e}"
                );
            }
        }
        let status = sleeper.wait().unwrap();
        assert!(!status.success(), "sleep was killed: {status}");
        assert!(!prosody.is_running());
        println!("dropping a 2-node lab with anvil and Prosody took {took:?}");
        drop(chain);
    })
}

fn harness_addr(chain: &DevChain) -> SocketAddr {
    chain
        .harness_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap()
}

#[test]
fn a_panic_still_tears_the_lab_down() {
    let _serial = serial();
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = LanLab::create(1).expect("the lab is created");
        let sleeper = lab
            .command_in(lab.infra_ns(), "sleep", ["600"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seen = Some((
            lab.prefix().to_owned(),
            namespace_inodes(&lab.namespace_names()),
            sleeper,
        ));
        panic!("deliberate panic with a live lab");
    }));
    assert!(result.is_err());
    let (prefix, inodes, mut sleeper) = seen.expect("the lab was made");
    assert_eq!(leftovers(&prefix, &inodes), Vec::<String>::new());
    assert!(!sleeper.wait().unwrap().success());
}

/// A child killed (and reaped) if the test fails before it is done with it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The inode of the network namespace of `pid` (`/proc/PID/ns/net` → `net:[N]`).
fn netns_of(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|l| l.to_string_lossy().into_owned())
}

#[test]
fn creating_a_lab_removes_stale_labs_of_dead_processes() {
    let _serial = serial();
    // A pid that just died (reaped), as a lab of a killed test would carry.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let stale = format!("sr{dead}l7-infra");
    // A process left running in the stale lab: it gets a fresh namespace of its own
    // (`unshare --net` execs sleep in place), which is then given the stale lab's name.
    let mut orphan = KillOnDrop(
        Command::new("unshare")
            .args(["--net", "sleep", "600"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mine = netns_of(std::process::id());
    let deadline = Instant::now() + WAIT;
    while netns_of(orphan.0.id()) == mine {
        assert!(Instant::now() < deadline, "unshare never made a namespace");
        std::thread::yield_now();
    }
    let attached = Command::new("ip")
        .args(["netns", "attach", &stale, &orphan.0.id().to_string()])
        .status()
        .unwrap();
    assert!(attached.success(), "ip netns attach {stale}: {attached}");
    assert!(stdout_of("ip", &["netns", "list"]).contains(&stale));

    let live = LanLab::create(0).expect("a lab");
    let other = LanLab::create(0).expect("a second lab");
    let list = stdout_of("ip", &["netns", "list"]);
    assert!(
        !list.lines().any(|l| l.starts_with(&stale)),
        "stale {stale} left: {list}"
    );
    let status = orphan.0.wait().unwrap();
    assert!(!status.success(), "the orphan was killed: {status}");
    // A lab of this (live) process survives another lab's creation.
    assert!(list.contains(&format!("{}-infra", live.prefix())), "{list}");
    assert_ne!(live.prefix(), other.prefix());
}
