//! The docker-compose testnet (`docker-compose.yml`, `integration/compose`), from the images
//! up: builds every image locally (Debian base by debootstrap, cached; Prosody; anvil; the node
//! image with this test build's `smartraiden`), `docker-compose up`, runs the seed's payment
//! through the five containers' REST APIs with the host's `smartraiden testnet seed` (exact
//! table on both ends of every channel), then streams payments 1→5 through the mediators
//! while node 4 is cut off the network for seconds, and again while node 2 is killed
//! (`docker-compose kill`) and started again: every transfer ends exactly once, the payer's
//! and the payee's records agree, every channel agrees on both ends with no lock left and each
//! node's balance moved by exactly the succeeded transfers. `docker-compose restart node3`
//! keeps its channels; `stop` ends every service by SIGTERM; `down -v` leaves nothing.
//!
//! Docker comes from Debian (`integration/compose deps` installs docker.io, docker-compose
//! and debootstrap and starts `dockerd` when none answers; this test stops a daemon it had
//! started). Where `dockerd` cannot run, the test says so in a banner and skips.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smartraiden::testnet::client::{amount, balances};
use smartraiden::testnet::seed::SEED_CHANNELS;
use smartraiden::testnet::{ApiClient, TestnetInfo};

/// The compose project: containers, network and volumes are named after it.
const PROJECT: &str = "smartraidencomposetest";
/// How long the network may take to settle after a disturbance.
const QUIET: Duration = Duration::from_secs(240);
/// Pace of the payment stream.
const PACE: Duration = Duration::from_millis(150);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn banner(lines: &[&str]) {
    let bar = "!".repeat(78);
    eprintln!("\n{bar}");
    for l in lines {
        eprintln!("!!! {l}");
    }
    eprintln!("{bar}\n");
}

/// The environment every `integration/compose` and `docker-compose` call gets.
struct Env {
    vars: Vec<(String, String)>,
    dir: PathBuf,
    anvil_port: u16,
    node_ports: Vec<u16>,
}

impl Env {
    fn new(dir: &Path) -> Env {
        let anvil_port = free_port();
        let mut vars = vec![
            ("COMPOSE_PROJECT_NAME".to_owned(), PROJECT.to_owned()),
            ("SMARTRAIDEN_ANVIL_PORT".to_owned(), anvil_port.to_string()),
            (
                "SMARTRAIDEN_COMPOSE_DIR".to_owned(),
                dir.display().to_string(),
            ),
            ("DOCKER_BUILDKIT".to_owned(), "0".to_owned()),
        ];
        let node_ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
        for (i, port) in node_ports.iter().enumerate() {
            vars.push((format!("SMARTRAIDEN_NODE{}_PORT", i + 1), port.to_string()));
        }
        Env {
            vars,
            dir: dir.to_owned(),
            anvil_port,
            node_ports,
        }
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut c = std::process::Command::new(program);
        c.envs(self.vars.iter().map(|(k, v)| (k, v)))
            .current_dir(root());
        c
    }

    fn compose_script(&self) -> std::process::Command {
        self.command(root().join("integration/compose"))
    }

    fn docker_compose(&self) -> std::process::Command {
        let mut c = self.command("docker-compose");
        c.arg("-f").arg(root().join("docker-compose.yml"));
        c
    }
}

/// Runs `cmd`, panics with its output unless it succeeds; its stdout.
fn run(cmd: &mut std::process::Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{shown}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// Runs `cmd` with its output going straight to ours (progress of the long steps shows even
/// while the test harness captures the test's own output); panics unless it succeeds.
fn run_shown(cmd: &mut std::process::Command) {
    let shown = format!("{cmd:?}");
    let status = cmd.status().unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(status.success(), "{shown}: {status}");
}

/// `cmd` with `args` added.
fn argv(mut cmd: std::process::Command, args: &[&str]) -> std::process::Command {
    cmd.args(args);
    cmd
}

/// [`run`] off the async runtime's worker threads.
async fn run_async(mut cmd: std::process::Command) -> String {
    tokio::task::spawn_blocking(move || run(&mut cmd))
        .await
        .unwrap()
}

/// Shows the services' logs if the test fails, takes the testnet down and stops a dockerd the
/// test started, whatever happens.
struct Cleanup {
    env: Arc<Env>,
    started_daemon: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self
                .env
                .docker_compose()
                .args(["logs", "--no-color", "--tail", "60"])
                .status();
        }
        let _ = self.env.compose_script().arg("down").status();
        if self.started_daemon {
            let _ = self.env.compose_script().arg("stop-daemon").status();
        }
    }
}

fn daemon_answers() -> bool {
    std::process::Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The container id of a service.
fn container(env: &Env, service: &str) -> String {
    let id = run(env.docker_compose().args(["ps", "-q", service]));
    let id = id.trim().to_owned();
    assert!(!id.is_empty(), "no container for {service}");
    id
}

fn inspect(id: &str, format: &str) -> String {
    run(std::process::Command::new("docker").args(["inspect", "-f", format, id]))
        .trim()
        .to_owned()
}

/// Waits until `service`'s container reports healthy.
async fn wait_healthy(env: &Env, service: &str, timeout: Duration) {
    let id = container(env, service);
    let deadline = Instant::now() + timeout;
    loop {
        let health = inspect(&id, "{{.State.Health.Status}}");
        if health == "healthy" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service} not healthy within {timeout:?}: {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Mines `blocks` blocks on the compose chain through its published RPC.
async fn mine(env: &Env, blocks: u64) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "anvil_mine", "params": [format!("{blocks:#x}")]});
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}", env.anvil_port))
        .json(&body)
        .send()
        .await
        .expect("anvil answers");
    assert!(r.status().is_success(), "anvil_mine: {}", r.status());
}

/// The seed's four channels, in `SEED_CHANNELS` order, as node a and node b see them.
#[derive(Debug, Clone)]
struct Net {
    apis: Vec<ApiClient>,
    addresses: Vec<String>,
    token: String,
    ids: Vec<String>,
}

impl Net {
    /// `(at a, at b)` per channel once every channel agrees on both ends with no lock pending,
    /// or why not.
    async fn quiet_splits(&self) -> Result<Vec<(u128, u128)>, String> {
        let mut splits = Vec::new();
        for ((a, b, _, _), id) in SEED_CHANNELS.iter().zip(&self.ids) {
            let path = format!("channels/{id}");
            let (_, ca) = self.apis[a - 1]
                .get(&path)
                .await
                .map_err(|e| e.to_string())?;
            let (_, cb) = self.apis[b - 1]
                .get(&path)
                .await
                .map_err(|e| e.to_string())?;
            let locks = |c: &Value| {
                (
                    amount(&c["locked_amount"]),
                    amount(&c["partner_locked_amount"]),
                )
            };
            let (sa, sb) = (balances(&ca), balances(&cb));
            if sa.is_none()
                || sa != sb.map(|(p, q)| (q, p))
                || locks(&ca) != (Some(0), Some(0))
                || locks(&cb) != (Some(0), Some(0))
            {
                return Err(format!("channel {a}–{b}: {ca} vs {cb}"));
            }
            splits.push(sa.unwrap());
        }
        Ok(splits)
    }

    async fn history(&self, node: usize, which: &str) -> Result<Vec<Value>, String> {
        let (status, v) = self.apis[node]
            .get(which)
            .await
            .map_err(|e| e.to_string())?;
        match v.as_array() {
            Some(list) if status == 200 => Ok(list.clone()),
            _ => Err(format!("node {} {which}: {status} {v}", node + 1)),
        }
    }
}

/// What a stream of payments did.
struct Stream {
    /// Transfers node 1 accepted (`lock_secret_hash`), with when.
    accepted: Vec<(String, Instant)>,
    /// Refused at once (e.g. 409 while a mediator is away), with the answers.
    refused: Vec<(u16, Value)>,
}

/// Node 1 pays node 5 one token every `PACE` (asynchronous transfers) until `stop`.
fn start_stream(net: &Net, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Stream> {
    let api = net.apis[0].clone();
    let token = net.token.clone();
    let target = net.addresses[4].clone();
    tokio::spawn(async move {
        let mut s = Stream {
            accepted: Vec::new(),
            refused: Vec::new(),
        };
        while !stop.load(Ordering::SeqCst) {
            match api.transfer(&token, &target, 1, json!({})).await {
                Ok((200, t)) => s.accepted.push((
                    t["lock_secret_hash"]
                        .as_str()
                        .expect("a lock_secret_hash")
                        .to_owned(),
                    Instant::now(),
                )),
                Ok((status, body)) => s.refused.push((status, body)),
                Err(e) => s.refused.push((0, json!(e.to_string()))),
            }
            tokio::time::sleep(PACE).await;
        }
        s
    })
}

/// Waits until the stream's shared counter shows `n` more accepted transfers than `from`.
async fn wait_accepted(net: &Net, from: usize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sent = net
            .history(0, "querysenttransfer")
            .await
            .unwrap_or_default();
        if sent.len() >= from + n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 accepted only {} of {n} transfers in a minute",
            sent.len().saturating_sub(from)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every channel's split and node 1's sent transfers once all have ended and every channel
/// agrees with no lock pending, or why not.
async fn quiet_state(net: &Net) -> Result<(Vec<(u128, u128)>, Vec<Value>), String> {
    let splits = net.quiet_splits().await?;
    let sent = net.history(0, "querysenttransfer").await?;
    if let Some(open) = sent.iter().find(|t| {
        !matches!(
            t["status"].as_str(),
            Some("success" | "failed" | "canceled")
        )
    }) {
        return Err(format!("node 1 has a transfer still going: {open}"));
    }
    Ok((splits, sent))
}

/// After a disturbance: waits until every transfer node 1 started has ended and every channel
/// agrees with no lock (mining blocks now and then so expired locks go), then checks that each
/// accepted transfer ended exactly once, node 5 received exactly the succeeded ones, once each,
/// and every node's balance moved by exactly the succeeded transfers. Returns the new splits.
async fn check_quiescent(
    net: &Net,
    env: &Env,
    before: &[(u128, u128)],
    stream: &Stream,
    what: &str,
) -> Vec<(u128, u128)> {
    let deadline = Instant::now() + QUIET;
    let mut last_mine = Instant::now();
    let (splits, sent) = loop {
        let state = quiet_state(net).await;
        match state {
            Ok(done) => break done,
            Err(why) => assert!(Instant::now() < deadline, "{what}: never quiescent: {why}"),
        }
        if last_mine.elapsed() > Duration::from_secs(2) {
            mine(env, 5).await;
            last_mine = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Each accepted transfer is in node 1's history exactly once, ended.
    let mut outcome = BTreeMap::<String, String>::new();
    for t in &sent {
        let id = t["lock_secret_hash"].as_str().unwrap().to_owned();
        let status = t["status"].as_str().unwrap().to_owned();
        assert!(
            outcome.insert(id.clone(), status).is_none(),
            "{what}: transfer {id} twice in node 1's history"
        );
    }
    for (id, _) in &stream.accepted {
        assert!(
            outcome.contains_key(id),
            "{what}: node 1 forgot transfer {id}"
        );
    }
    // Node 5 holds exactly the transfers node 1 saw succeed, each once.
    let received = net.history(4, "queryreceivedtransfer").await.unwrap();
    let mut paid = BTreeSet::new();
    for t in &received {
        let id = t["lock_secret_hash"].as_str().unwrap().to_owned();
        if t["status"] == "success" {
            assert!(paid.insert(id.clone()), "{what}: {id} received twice");
        }
    }
    let succeeded: BTreeSet<String> = outcome
        .iter()
        .filter(|(_, s)| *s == "success")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(
        paid, succeeded,
        "{what}: node 5's received transfers vs node 1's succeeded ones"
    );
    // This stream's successes moved every balance along 1→2→4→5 by exactly their sum.
    let ours: BTreeSet<&str> = stream.accepted.iter().map(|(id, _)| id.as_str()).collect();
    let s = succeeded
        .iter()
        .filter(|id| ours.contains(id.as_str()))
        .count() as u128;
    assert_eq!(splits, moved(before, s), "{what}: {s} transfers succeeded");
    let mut counts = BTreeMap::<&str, usize>::new();
    for id in &ours {
        *counts.entry(outcome[*id].as_str()).or_default() += 1;
    }
    eprintln!(
        "{what}: {} accepted ({counts:?}), {} refused at once; channels {splits:?}",
        stream.accepted.len(),
        stream.refused.len()
    );
    splits
}

/// Every channel once it agrees on both ends with no lock pending.
async fn wait_quiet(net: &Net) -> Vec<(u128, u128)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match net.quiet_splits().await {
            Ok(splits) => return splits,
            Err(why) => assert!(Instant::now() < deadline, "channels do not settle: {why}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The seed channels' splits after `s` tokens more went 1→2→4→5.
fn moved(before: &[(u128, u128)], s: u128) -> Vec<(u128, u128)> {
    vec![
        (before[0].0 - s, before[0].1 + s),
        before[1],
        (before[2].0 - s, before[2].1 + s),
        (before[3].0 - s, before[3].1 + s),
    ]
}

/// A payment 1→5 that must succeed: the path through the mediators works again.
async fn pays_through(net: &Net, what: &str) {
    let (status, body) = net.apis[0]
        .transfer(&net.token, &net.addresses[4], 1, json!({"sync": true}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{what}: a payment after it failed: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_testnet_runs_the_seed_and_survives_a_cut_and_a_kill() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let env = Arc::new(Env::new(dir.path()));

    // Docker from Debian; a daemon of our own when none answers.
    let had_daemon = daemon_answers();
    let deps = env.compose_script().arg("deps").status();
    if !matches!(&deps, Ok(s) if s.success()) || !daemon_answers() {
        banner(&[
            "SKIPPED: the docker-compose testnet test did NOT run.",
            "`integration/compose deps` could not install Docker or start dockerd here",
            &format!("({deps:?}); see its output above. Nothing about compose was checked."),
        ]);
        return;
    }
    let _cleanup = Cleanup {
        env: env.clone(),
        started_daemon: !had_daemon,
    };
    // Leftovers of an earlier run of this test.
    run(env.compose_script().arg("down"));

    // One copy of this build's binary for the image and the host's seed alike.
    let binary = dir.path().join("smartraiden");
    std::fs::copy(env!("CARGO_BIN_EXE_smartraiden"), &binary).unwrap();
    let t = Instant::now();
    run_shown(
        env.compose_script()
            .arg("build")
            .arg("--binary")
            .arg(&binary),
    );
    eprintln!("images built in {:?}", t.elapsed());
    let t = Instant::now();
    run_shown(env.compose_script().arg("up"));
    eprintln!("compose up (healthy) in {:?}", t.elapsed());

    // testnet.json describes the containers as the host reaches them.
    let info = TestnetInfo::read(&env.dir).unwrap();
    assert_eq!(info.nodes.len(), 5);
    for (n, port) in info.nodes.iter().zip(&env.node_ports) {
        assert_eq!(n.api_url, format!("http://127.0.0.1:{port}"));
    }
    let apis: Vec<ApiClient> = info
        .nodes
        .iter()
        .map(|n| ApiClient::new(&n.api_url))
        .collect();
    for (api, n) in apis.iter().zip(&info.nodes) {
        assert_eq!(api.address().await.unwrap(), n.address);
    }

    // The seed's payment with the host's command, unchanged: the exact table.
    let t = Instant::now();
    let seed = run(env
        .command(&binary)
        .args(["testnet", "seed", "--dir"])
        .arg(&env.dir));
    eprintln!("seed in {:?}:\n{seed}", t.elapsed());
    let table = "| channel | before (a / b) | after, at a | after, at b |\n\
                 |---|---|---|---|\n\
                 | 1–2 | 200 / 100 | 150 / 150 | 150 / 150 |\n\
                 | 2–3 | 100 / 100 | 100 / 100 | 100 / 100 |\n\
                 | 2–4 | 200 / 100 | 150 / 150 | 150 / 150 |\n\
                 | 4–5 | 100 / 100 | 50 / 150 | 50 / 150 |\n";
    assert!(seed.contains(table), "not the seed's table:\n{seed}");
    assert!(seed.contains("both ends of every channel agree"), "{seed}");

    let mut ids = Vec::new();
    for (a, b, _, _) in SEED_CHANNELS {
        let ch = apis[a - 1]
            .channel_with(&info.token, &info.nodes[b - 1].address)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("node {a} has no channel with node {b}"));
        ids.push(ch["channel_identifier"].as_str().unwrap().to_owned());
    }
    let net = Net {
        apis,
        addresses: info.nodes.iter().map(|n| n.address.clone()).collect(),
        token: info.token.clone(),
        ids,
    };
    let mut splits = wait_quiet(&net).await;
    assert_eq!(splits, vec![(150, 150), (100, 100), (150, 150), (50, 150)]);
    // Room for the streams below: each payer along 1→2→4→5 deposits 1,000 more.
    for (channel, payer) in [(0, 0), (2, 1), (3, 3)] {
        net.apis[payer]
            .deposit(&net.ids[channel], 1000)
            .await
            .unwrap();
    }
    splits = wait_quiet(&net).await;
    assert_eq!(
        splits,
        vec![(1150, 150), (100, 100), (1150, 150), (1050, 150)]
    );

    // 1. Mediator 4 cut off the network while payments stream through it.
    let network = format!("{PROJECT}_default");
    let node4 = container(&env, "node4");
    let stop = Arc::new(AtomicBool::new(false));
    let done_before = net.history(0, "querysenttransfer").await.unwrap().len();
    let stream = start_stream(&net, stop.clone());
    wait_accepted(&net, done_before, 5).await;
    let cut = Instant::now();
    run_async(argv(
        env.command("docker"),
        &["network", "disconnect", &network, &node4],
    ))
    .await;
    eprintln!("node 4 cut off");
    tokio::time::sleep(Duration::from_secs(6)).await; // the outage's length
    run_async(argv(
        env.command("docker"),
        &["network", "connect", "--alias", "node4", &network, &node4],
    ))
    .await;
    let reconnected = Instant::now();
    eprintln!("node 4 reconnected after {:?}", reconnected - cut);
    tokio::time::sleep(Duration::from_secs(3)).await; // payments after the outage
    stop.store(true, Ordering::SeqCst);
    let s = stream.await.unwrap();
    let during = s
        .accepted
        .iter()
        .filter(|(_, at)| *at >= cut && *at < reconnected)
        .count();
    eprintln!("cut: {during} transfers accepted while node 4 was away");
    assert!(
        s.accepted.iter().any(|(_, at)| *at < cut)
            && s.accepted.iter().any(|(_, at)| *at > reconnected),
        "the stream did not run across the cut"
    );
    let after = check_quiescent(&net, &env, &splits, &s, "mediator cut off").await;
    pays_through(&net, "mediator cut off").await;
    splits = wait_quiet(&net).await;
    assert_eq!(
        splits,
        moved(&after, 1),
        "mediator cut off: the payment after it"
    );

    // 2. Mediator 2 killed mid-stream, then started again on its volume.
    let stop = Arc::new(AtomicBool::new(false));
    let done_before = net.history(0, "querysenttransfer").await.unwrap().len();
    let stream = start_stream(&net, stop.clone());
    wait_accepted(&net, done_before, 5).await;
    run_async(argv(env.docker_compose(), &["kill", "node2"])).await;
    let node2 = container(&env, "node2");
    let deadline = Instant::now() + Duration::from_secs(30);
    while inspect(&node2, "{{.State.Running}}") != "false" {
        assert!(Instant::now() < deadline, "node 2 still runs after kill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("node 2 killed");
    tokio::time::sleep(Duration::from_secs(2)).await; // down for a while
    run_async(argv(env.docker_compose(), &["start", "node2"])).await;
    wait_healthy(&env, "node2", Duration::from_secs(120)).await;
    eprintln!("node 2 back");
    tokio::time::sleep(Duration::from_secs(3)).await; // payments after the restart
    stop.store(true, Ordering::SeqCst);
    let s = stream.await.unwrap();
    let after = check_quiescent(&net, &env, &splits, &s, "mediator killed").await;
    pays_through(&net, "mediator killed").await;
    splits = wait_quiet(&net).await;
    assert_eq!(
        splits,
        moved(&after, 1),
        "mediator killed: the payment after it"
    );

    // 3. `docker-compose restart` keeps a node's channels (its data volume).
    let before: Vec<Value> = net.apis[2].channels().await.unwrap();
    run_async(argv(env.docker_compose(), &["restart", "node3"])).await;
    wait_healthy(&env, "node3", Duration::from_secs(120)).await;
    let after: Vec<Value> = net.apis[2].channels().await.unwrap();
    let key = |cs: &[Value]| -> Vec<(String, Option<(u128, u128)>)> {
        cs.iter()
            .map(|c| (c["channel_identifier"].to_string(), balances(c)))
            .collect()
    };
    assert_eq!(
        key(&after),
        key(&before),
        "node 3's channels after a restart"
    );
    assert_eq!(wait_quiet(&net).await, splits);

    // 4. Every service stops on SIGTERM (no one waits for the SIGKILL after 10 s)...
    let services = [
        "anvil", "xmpp", "setup", "node1", "node2", "node3", "node4", "node5",
    ];
    let containers: Vec<(String, String)> = services
        .iter()
        .map(|s| {
            let id = run(env.docker_compose().args(["ps", "-a", "-q", s]));
            (s.to_string(), id.trim().to_owned())
        })
        .collect();
    let t = Instant::now();
    run(env.docker_compose().arg("stop"));
    eprintln!("docker-compose stop in {:?}", t.elapsed());
    for (service, id) in &containers {
        let state = inspect(id, "{{.State.Running}} {{.State.ExitCode}}");
        assert!(
            state.starts_with("false "),
            "{service} still running: {state}"
        );
        assert_ne!(state, "false 137", "{service} needed SIGKILL");
    }
    // ... and `down -v` leaves no container, network or volume, and frees the host ports.
    run(env.compose_script().arg("down"));
    let label = format!("label=com.docker.compose.project={PROJECT}");
    for what in [
        vec!["ps", "-a", "-q", "--filter", &label],
        vec!["network", "ls", "-q", "--filter", &label],
        vec!["volume", "ls", "-q", "--filter", &label],
    ] {
        let left = run(std::process::Command::new("docker").args(&what));
        assert_eq!(
            left.trim(),
            "",
            "left after down: docker {}",
            what.join(" ")
        );
    }
    for port in env.node_ports.iter().chain([&env.anvil_port]) {
        std::net::TcpListener::bind(("127.0.0.1", *port))
            .unwrap_or_else(|e| panic!("port {port} still taken after down: {e}"));
    }
    eprintln!("compose test done in {:?}", started.elapsed());
}
