//! Small helpers the process tests share: waiting for a transport event, running a
//! `smartraiden` command on a testnet directory.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, timeout};

use crate::transport::TransportEvent;

/// The next event on `rx` matching `pred`, skipping others; panics (naming `what`) when the
/// channel closes or after `deadline`.
pub async fn expect_event(
    rx: &mut Receiver<TransportEvent>,
    what: &str,
    deadline: Duration,
    pred: impl Fn(&TransportEvent) -> bool,
) -> TransportEvent {
    let until = Instant::now() + deadline;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match timeout(left, rx.recv()).await {
            Ok(Some(ev)) if pred(&ev) => return ev,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event channel closed while waiting for {what}"),
            Err(_) => panic!("no {what} within {deadline:?}"),
        }
    }
}

/// Runs `binary args… --dir dir` (a `smartraiden testnet …` command) with `RUST_LOG=warn`,
/// echoing its output to stderr; panics if it cannot be started.
pub fn run_on_dir(binary: &Path, args: &[&str], dir: &Path) -> Output {
    let out = Command::new(binary)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run smartraiden");
    eprintln!(
        "smartraiden {}: {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
