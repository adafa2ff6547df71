//! End-to-end throughput and latency on a local testnet (`integration/bench`): direct and
//! mediated transfers through the REST API with `"sync": true`, sequential and concurrent,
//! the node processes' CPU and memory, and the machine's limits (raw XMPP echo through the
//! same Prosody, fsync'd RocksDB commits).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::TestnetError;
use super::client::ApiClient;
use super::network::Testnet;

/// Sizes of the runs.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Sequential direct transfers.
    pub direct_sequential: usize,
    /// Concurrent direct transfers (over all clients).
    pub direct_concurrent: usize,
    /// Sequential mediated transfers per route.
    pub mediated_sequential: usize,
    /// Concurrent mediated transfers per route.
    pub mediated_concurrent: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Direct transfers stored before the "after history" run (0: skip it).
    pub history: usize,
    /// Round trips of the raw XMPP echo.
    pub echo_round_trips: usize,
    /// fsync'd RocksDB commits.
    pub commits: usize,
    /// Only the transfer runs whose name contains this (all when `None`).
    pub only: Option<String>,
}

impl BenchOptions {
    /// The full run (a few minutes).
    pub fn full() -> Self {
        BenchOptions {
            direct_sequential: 3_000,
            direct_concurrent: 10_000,
            mediated_sequential: 1_000,
            mediated_concurrent: 3_000,
            clients: 16,
            history: 100_000,
            echo_round_trips: 5_000,
            commits: 3_000,
            only: None,
        }
    }

    /// A quick run (seconds), to check the tool itself.
    pub fn quick() -> Self {
        BenchOptions {
            direct_sequential: 200,
            direct_concurrent: 800,
            mediated_sequential: 100,
            mediated_concurrent: 400,
            clients: 16,
            history: 0,
            echo_round_trips: 500,
            commits: 300,
            only: None,
        }
    }
}

/// One measured row.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// What was measured.
    pub name: String,
    /// Operations completed.
    pub count: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Operations per second.
    pub per_second: f64,
    /// Median latency, ms (per operation, from the call to its answer).
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
    /// CPU seconds of all node processes per 1,000 transfers.
    pub node_cpu_s_per_1000: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Machine and conditions.
    pub machine: String,
    /// Rows in order.
    pub rows: Vec<BenchRow>,
    /// Highest resident memory of any node process, MiB.
    pub node_peak_rss_mib: f64,
    /// Transfers stored in the busiest node's history at the end.
    pub history_records: usize,
}

impl BenchReport {
    /// A Markdown table.
    pub fn table(&self) -> String {
        let mut out = format!("{}\n\n", self.machine);
        out.push_str("| run | count | per second | p50 ms | p99 ms | node CPU s / 1000 |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|\n");
        let opt =
            |v: Option<f64>, prec: usize| v.map_or("–".to_string(), |v| format!("{v:.prec$}"));
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {:.0} | {} | {} | {} |\n",
                r.name,
                r.count,
                r.per_second,
                opt(r.p50_ms, 2),
                opt(r.p99_ms, 2),
                opt(r.node_cpu_s_per_1000, 2)
            ));
        }
        out.push_str(&format!(
            "\nnode peak memory (max VmHWM of any node): {:.1} MiB; history: {} transfers stored\n",
            self.node_peak_rss_mib, self.history_records
        ));
        out
    }
}

/// Starts a monitor for `net` (in `dir`) and restarts the mediators B and C pushing their
/// delegations to it, so that each forwards a mediated transfer only once the monitor holds the
/// payer's proof.
pub async fn with_monitor(
    net: &mut Testnet,
    dir: &std::path::Path,
) -> Result<super::monitor::MonitorProcess, TestnetError> {
    let binary = std::env::current_exe()
        .map_err(|e| TestnetError::Setup(format!("this program's path: {e}")))?;
    let monitor =
        super::monitor::MonitorProcess::start_for(net, &binary, &dir.join("monitor"), &[]).await?;
    for i in [1, 2] {
        net.kill_node(i)?;
        net.start_node_with(i, &[("SMARTRAIDEN_MONITOR", monitor.api.base())])
            .await?;
    }
    Ok(monitor)
}

/// Runs every measurement on `net` (four nodes: A, B, C, D).
pub async fn run(net: &mut Testnet, options: &BenchOptions) -> Result<BenchReport, TestnetError> {
    if net.len() < 4 {
        return Err(TestnetError::Setup(
            "the bench needs a four-node testnet".into(),
        ));
    }
    let token = net.token().to_owned();
    // A–B, B–C, C–D, each side depositing 300,000.
    for (x, y) in [(0, 1), (1, 2), (2, 3)] {
        let ch = net
            .api(x)
            .open_channel(&token, net.address(y), 300_000, 1_000)
            .await?;
        let id = ch["channel_identifier"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let seen = net
            .api(y)
            .wait_channel(&id, Duration::from_secs(60), |c| {
                c["channel_identifier"].is_string()
            })
            .await?;
        if !seen["channel_identifier"].is_string() {
            return Err(TestnetError::Api(format!(
                "node {} never saw channel {id}",
                y + 1
            )));
        }
        net.api(y).deposit(&id, 300_000).await?;
    }
    let pids: Vec<u32> = net.info().nodes.iter().map(|n| n.pid).collect();
    let (b, c, d) = (
        net.address(1).to_owned(),
        net.address(2).to_owned(),
        net.address(3).to_owned(),
    );
    let api = net.api(0).clone();
    let direct = json!({"is_direct": true, "sync": true});
    let mediated = json!({"sync": true});

    // Warm-up: connections, presence, the first route.
    transfers(&api, &token, &b, &direct, 50, 1, &pids).await?;
    transfers(&api, &token, &d, &mediated, 20, 1, &pids).await?;

    let mut rows = Vec::new();
    let k = options.clients;
    let runs: [(&str, &String, &serde_json::Value, usize, usize); 6] = [
        (
            "direct A→B, sequential",
            &b,
            &direct,
            options.direct_sequential,
            1,
        ),
        (
            "direct A→B, concurrent",
            &b,
            &direct,
            options.direct_concurrent,
            k,
        ),
        (
            "mediated A→B→C, sequential",
            &c,
            &mediated,
            options.mediated_sequential,
            1,
        ),
        (
            "mediated A→B→C, concurrent",
            &c,
            &mediated,
            options.mediated_concurrent,
            k,
        ),
        (
            "mediated A→B→C→D, sequential",
            &d,
            &mediated,
            options.mediated_sequential,
            1,
        ),
        (
            "mediated A→B→C→D, concurrent",
            &d,
            &mediated,
            options.mediated_concurrent,
            k,
        ),
    ];
    let wanted = |name: &str| options.only.as_deref().is_none_or(|o| name.contains(o));
    for (name, target, body, count, clients) in runs {
        if !wanted(name) {
            continue;
        }
        log::info!("bench: {name}, {count} transfers");
        let mut row = transfers(&api, &token, target, body, count, clients, &pids).await?;
        row.name = if clients > 1 {
            format!("{name} ({clients} clients)")
        } else {
            name.to_owned()
        };
        rows.push(row);
    }
    if options.history > 0 {
        log::info!(
            "bench: storing {} more transfers of history",
            options.history
        );
        let started = Instant::now();
        let mut done = 0;
        while done < options.history {
            let n = (options.history - done).min(10_000);
            transfers(&api, &token, &b, &direct, n, k, &pids).await?;
            done += n;
            log::info!(
                "bench: {done} / {} history transfers ({:.0} s)",
                options.history,
                started.elapsed().as_secs_f64()
            );
        }
        for (name, count, clients) in [
            (
                "direct A→B, sequential, after history",
                options.direct_sequential,
                1,
            ),
            (
                "direct A→B, concurrent, after history",
                options.direct_concurrent,
                k,
            ),
        ] {
            if !wanted(name) {
                continue;
            }
            let mut row = transfers(&api, &token, &b, &direct, count, clients, &pids).await?;
            row.name = if clients > 1 {
                format!("{name} ({clients} clients)")
            } else {
                name.to_owned()
            };
            rows.push(row);
        }
    }
    // Read before listing the history below: the listing itself is not the node's working set.
    let node_peak_rss_mib = pids
        .iter()
        .filter_map(|p| peak_rss_kib(*p))
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    let history_records = net
        .api(0)
        .get("querysenttransfer")
        .await?
        .1
        .as_array()
        .map_or(0, Vec::len);

    log::info!("bench: raw XMPP echo");
    rows.push(super::limits::xmpp_echo(&net.prosody, options.echo_round_trips).await?);
    if let Some(b) = &net.prosody_b {
        rows.push(
            super::limits::xmpp_echo_between(&net.prosody, b, options.echo_round_trips).await?,
        );
    }
    log::info!("bench: fsync'd RocksDB commits");
    rows.push(super::limits::rocksdb_commits(options.commits)?);

    // Last, since it stops the XMPP server for a while: direct transfers over the LAN alone.
    let lan_runs = [
        (
            "direct A→B over the LAN, sequential",
            options.direct_sequential,
            1,
        ),
        (
            "direct A→B over the LAN, concurrent",
            options.direct_concurrent,
            k,
        ),
    ];
    if lan_runs.iter().any(|(name, _, _)| wanted(name)) {
        let lan_rows = lan_only(net, &token, &b, &direct, &lan_runs, &wanted, &pids).await?;
        // Beside the XMPP direct rows.
        let at = rows
            .iter()
            .position(|r| r.name.starts_with("mediated"))
            .unwrap_or(rows.len());
        rows.splice(at..at, lan_rows);
    }

    Ok(BenchReport {
        machine: super::limits::machine(),
        rows,
        node_peak_rss_mib,
        history_records,
    })
}

/// Direct transfers from node 1 to node 2 with the XMPP server stopped, so the LAN carries
/// every message: the two are introduced (`POST /api/1/updatenodes`), Prosody stops, the runs
/// go, Prosody starts again.
async fn lan_only(
    net: &mut Testnet,
    token: &str,
    b: &str,
    direct: &serde_json::Value,
    runs: &[(&str, usize, usize)],
    wanted: &dyn Fn(&str) -> bool,
    pids: &[u32],
) -> Result<Vec<BenchRow>, TestnetError> {
    for (i, j) in [(0, 1), (1, 0)] {
        let peers = json!([{"address": net.address(j), "ip_port": net.lan(j)}]);
        net.api(i)
            .expect(200, reqwest::Method::POST, "updatenodes", Some(peers))
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, peers) = net.api(0).get("updatenodes").await?;
        let up = peers
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["connected"] == json!(true)));
        if up {
            break;
        }
        if Instant::now() > deadline {
            return Err(TestnetError::Api(
                "nodes 1 and 2 never connected on the LAN".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log::info!("bench: stopping the XMPP server for the LAN runs");
    net.prosody.stop()?;
    let api = net.api(0).clone();
    let mut rows = Vec::new();
    let mut result = Ok(());
    for (name, count, clients) in runs {
        if !wanted(name) {
            continue;
        }
        log::info!("bench: {name}, {count} transfers");
        match transfers(&api, token, b, direct, *count, *clients, pids).await {
            Ok(mut row) => {
                row.name = if *clients > 1 {
                    format!("{name} ({clients} clients)")
                } else {
                    (*name).to_owned()
                };
                rows.push(row);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    net.prosody.restart()?;
    result.map(|_| rows)
}

/// `count` transfers of 1 from `api` to `target`, by `clients` concurrent sequential clients.
async fn transfers(
    api: &ApiClient,
    token: &str,
    target: &str,
    body: &serde_json::Value,
    count: usize,
    clients: usize,
    pids: &[u32],
) -> Result<BenchRow, TestnetError> {
    let cpu_before: f64 = pids.iter().filter_map(|p| cpu_seconds(*p)).sum();
    let started = Instant::now();
    let mut tasks = Vec::new();
    let shared = Arc::new((
        api.clone(),
        token.to_owned(),
        target.to_owned(),
        body.clone(),
    ));
    for client in 0..clients {
        let n = count / clients + usize::from(client < count % clients);
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let (api, token, target, body) = &*shared;
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let (status, v) = api.transfer(token, target, 1, body.clone()).await?;
                if status != 200 {
                    return Err(TestnetError::Api(format!(
                        "a bench transfer failed with {status}: {v}"
                    )));
                }
                lat.push(t.elapsed());
            }
            Ok::<_, TestnetError>(lat)
        }));
    }
    let mut lat = Vec::with_capacity(count);
    for t in tasks {
        lat.extend(
            t.await
                .map_err(|e| TestnetError::Api(format!("bench client: {e}")))??,
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after: f64 = pids.iter().filter_map(|p| cpu_seconds(*p)).sum();
    lat.sort();
    Ok(BenchRow {
        name: String::new(),
        count,
        seconds,
        per_second: count as f64 / seconds,
        p50_ms: percentile_ms(&lat, 0.50),
        p99_ms: percentile_ms(&lat, 0.99),
        node_cpu_s_per_1000: Some((cpu_after - cpu_before) * 1000.0 / count.max(1) as f64),
    })
}

/// The `p` percentile of sorted latencies, in ms.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3)
}

/// User plus system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based, man proc).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Peak resident memory of a process (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
