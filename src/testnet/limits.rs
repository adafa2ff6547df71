//! The machine's limits for the bench: raw XMPP round trips through a Prosody, and fsync'd
//! RocksDB commits of a node-sized snapshot.

use std::time::{Duration, Instant};

use super::TestnetError;
use super::bench::{BenchRow, percentile_ms};
use crate::core::{Core, NodeConfig};
use crate::crypto::PrivateKey;
use crate::primitives::{Address, ChainId};
use crate::storage::{CommitBatch, Store};
use crate::transport::xmpp::{ProsodyServer, XmppConfig, XmppTransport};
use crate::transport::{Transport, TransportEvent};

/// Longest wait for one echo.
const STALL: Duration = Duration::from_secs(10);

/// Ping-pong through `server` between two fresh accounts (one message in flight, 270 bytes,
/// the size of a signed MediatedTransfer): round trips per second and latency.
pub async fn xmpp_echo(
    server: &ProsodyServer,
    round_trips: usize,
) -> Result<BenchRow, TestnetError> {
    let mut row = xmpp_echo_between(server, server, round_trips).await?;
    row.name = "limit: raw XMPP round trips through the same Prosody".into();
    Ok(row)
}

/// As [`xmpp_echo`], the first account on `server_a` and the echoing one on `server_b`
/// (federated servers: every message crosses both).
pub async fn xmpp_echo_between(
    server_a: &ProsodyServer,
    server_b: &ProsodyServer,
    round_trips: usize,
) -> Result<BenchRow, TestnetError> {
    let login = |n: u8, server: &ProsodyServer| {
        let registered = server.register(&Address([n; 20]).to_lower_hex(), "echo");
        let config = XmppConfig::new(Address([n; 20]), server.domain(), server.addr(), "echo");
        async move {
            registered?;
            XmppTransport::connect(config)
                .await
                .map_err(|e| TestnetError::Setup(format!("echo login: {e}")))
        }
    };
    let (a, mut a_rx) = login(0xe1, server_a).await?;
    let (b, mut b_rx) = login(0xe2, server_b).await?;
    let (to_a, to_b) = (Address([0xe1; 20]), Address([0xe2; 20]));
    let peer_domains = a
        .set_peer_domain(to_b, server_b.domain())
        .and_then(|()| b.set_peer_domain(to_a, server_a.domain()));
    peer_domains.map_err(|e| TestnetError::Setup(format!("echo: {e}")))?;
    let echo = tokio::spawn(async move {
        while let Some(ev) = b_rx.recv().await {
            if let TransportEvent::Received { bytes, .. } = ev
                && b.send(to_a, bytes).is_err()
            {
                break;
            }
        }
    });
    let msg = vec![0x55u8; 270];
    let mut lat = Vec::with_capacity(round_trips);
    let mut started = Instant::now();
    // 100 warm-up round trips first, not measured.
    for i in 0..round_trips + 100 {
        if i == 100 {
            started = Instant::now();
            lat.clear();
        }
        let t = Instant::now();
        a.send(to_b, msg.clone())
            .map_err(|e| TestnetError::Setup(format!("echo send: {e}")))?;
        loop {
            match tokio::time::timeout(STALL, a_rx.recv()).await {
                Ok(Some(TransportEvent::Received { .. })) => break,
                Ok(Some(_)) => continue,
                _ => return Err(TestnetError::Setup("no XMPP echo within 10 s".into())),
            }
        }
        lat.push(t.elapsed());
    }
    let seconds = started.elapsed().as_secs_f64();
    echo.abort();
    lat.sort();
    Ok(BenchRow {
        name: format!(
            "limit: raw XMPP round trips, {} → {}",
            server_a.domain(),
            server_b.domain()
        ),
        count: round_trips,
        seconds,
        per_second: round_trips as f64 / seconds,
        p50_ms: percentile_ms(&lat, 0.50),
        p99_ms: percentile_ms(&lat, 0.99),
        node_cpu_s_per_1000: None,
    })
}

/// `count` fsync'd commits of a fresh node's snapshot to a RocksDB in a temporary directory.
pub fn rocksdb_commits(count: usize) -> Result<BenchRow, TestnetError> {
    let key = PrivateKey::from_bytes([7; 32]).map_err(|e| TestnetError::Setup(e.to_string()))?;
    let core = Core::new(key, NodeConfig::new(ChainId(31337)));
    let dir = tempfile::tempdir().map_err(|e| TestnetError::Setup(e.to_string()))?;
    let store = Store::open(dir.path(), core.state.our_address)
        .map_err(|e| TestnetError::Setup(format!("bench store: {e}")))?;
    let mut lat = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let mut batch = CommitBatch::new();
        batch
            .set_state(&core.state)
            .and_then(|()| store.commit(batch))
            .map_err(|e| TestnetError::Setup(format!("bench commit: {e}")))?;
        lat.push(t.elapsed());
    }
    let seconds = started.elapsed().as_secs_f64();
    lat.sort();
    Ok(BenchRow {
        name: "limit: fsync'd RocksDB commits (one snapshot each)".into(),
        count,
        seconds,
        per_second: count as f64 / seconds,
        p50_ms: percentile_ms(&lat, 0.50),
        p99_ms: percentile_ms(&lat, 0.99),
        node_cpu_s_per_1000: None,
    })
}

/// CPU model, cores, memory and kernel, for the report's heading.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!(
        "{cores} cores ({cpu}), {mem_gib:.0} GiB; loopback Prosody, anvil, RocksDB fsync'd before anything leaves a node; \
         REST calls with \"sync\": true, amount 1"
    )
}
