//! The storm: four node processes in a line pay each other both ways, directly and through
//! mediators, hundreds of transfers from concurrent clients, while random nodes are killed
//! (`kill -9`) and restarted at random moments, the XMPP server is killed and restarted once
//! and the RPC endpoint is cut for a while. At quiescence every transfer has ended, both ends
//! of every channel agree with no lock left, tokens are conserved per channel, and each node's
//! balance change is exactly what its succeeded transfers say.
//!
//! Seeded: `STORM_SEED=<n>` replays a run's choices (the seed is printed at the start).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smartraiden::testnet::client::{amount, balances};
use smartraiden::testnet::{ApiClient, Testnet, TestnetOptions};

const NODES: usize = 4;
const DEPOSIT: u64 = 100_000;
const WORKERS: usize = 16;
const TRANSFERS: usize = 400;
const STORM: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_secs(180);

/// xorshift64*: small, deterministic, good enough to pick nodes and moments.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

/// One client: random transfers (pair, amount, direct or not) until its share is sent or the
/// storm is over; the ids the nodes accepted, with their initiator.
async fn client(
    apis: Vec<ApiClient>,
    addresses: Vec<String>,
    token: String,
    seed: u64,
    share: usize,
    until: Instant,
) -> Vec<(usize, String)> {
    let mut rng = Rng::new(seed);
    let mut accepted = Vec::new();
    for _ in 0..share {
        if Instant::now() >= until {
            break;
        }
        let from = rng.below(NODES as u64) as usize;
        let to = (from + 1 + rng.below(NODES as u64 - 1) as usize) % NODES;
        let direct = from.abs_diff(to) == 1 && rng.below(2) == 0;
        let value = 1 + rng.below(3);
        let body = json!({"is_direct": direct});
        // Refusals (409: a partner is offline) and dead nodes are part of the storm.
        if let Ok((200, t)) = apis[from]
            .transfer(&token, &addresses[to], value, body)
            .await
            && let Some(id) = t["lock_secret_hash"].as_str()
        {
            accepted.push((from, id.to_owned()));
        }
        // Spread the share over the storm, so kills and outages land among transfers.
        let pace = STORM.as_millis() as u64 / share as u64;
        tokio::time::sleep(rng.millis(pace / 3, pace * 5 / 3)).await;
    }
    accepted
}

/// Channels `i`–`i+1` with `DEPOSIT` on both sides; their identifiers.
async fn open_line(net: &Testnet) -> Vec<String> {
    let mut ids = Vec::new();
    for x in 0..NODES - 1 {
        let ch = net
            .api(x)
            .open_channel(net.token(), net.address(x + 1), DEPOSIT, 100)
            .await
            .expect("open");
        let id = ch["channel_identifier"].as_str().unwrap().to_owned();
        net.api(x + 1)
            .wait_channel(&id, QUIET, |c| c["channel_identifier"].is_string())
            .await
            .unwrap();
        net.api(x + 1).deposit(&id, DEPOSIT).await.expect("deposit");
        ids.push(id);
    }
    ids
}

/// What blocks a quiescent network, or `None` with every node's sent history and channels.
async fn unsettled(
    net: &Testnet,
    ids: &[String],
) -> Result<(Vec<Vec<Value>>, Vec<(u128, u128)>), String> {
    let mut splits = Vec::new();
    for (x, id) in ids.iter().enumerate() {
        let (_, a) = net
            .api(x)
            .get(&format!("channels/{id}"))
            .await
            .map_err(|e| e.to_string())?;
        let (_, b) = net
            .api(x + 1)
            .get(&format!("channels/{id}"))
            .await
            .map_err(|e| e.to_string())?;
        let locks = |c: &Value| {
            (
                amount(&c["locked_amount"]),
                amount(&c["partner_locked_amount"]),
            )
        };
        let (sa, sb) = (balances(&a), balances(&b));
        if sa.is_none()
            || sa != sb.map(|(p, q)| (q, p))
            || locks(&a) != (Some(0), Some(0))
            || locks(&b) != (Some(0), Some(0))
        {
            return Err(format!("channel {}–{}: {a} vs {b}", x + 1, x + 2));
        }
        splits.push(sa.unwrap());
    }
    let mut histories = Vec::new();
    for i in 0..NODES {
        let (_, sent) = net
            .api(i)
            .get("querysenttransfer")
            .await
            .map_err(|e| e.to_string())?;
        let sent = sent.as_array().cloned().unwrap_or_default();
        if let Some(open) = sent.iter().find(|t| {
            !matches!(
                t["status"].as_str(),
                Some("success" | "failed" | "canceled")
            )
        }) {
            return Err(format!("node {} has a transfer still going: {open}", i + 1));
        }
        histories.push(sent);
    }
    Ok((histories, splits))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storm_of_transfers_kills_and_outages_ends_with_every_token_accounted_for() {
    let seed: u64 = std::env::var("STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_124);
    eprintln!("storm seed {seed} (replay with STORM_SEED={seed})");
    let mut rng = Rng::new(seed);

    let dir = tempfile::tempdir().unwrap();
    let mut options = TestnetOptions::new(NODES, dir.path(), env!("CARGO_BIN_EXE_smartraiden"));
    options.rpc_gate = true;
    options.extra_node_args = vec!["--api-timeout".into(), "30".into()];
    let mut net = Testnet::start(options).await.expect("the testnet starts");
    let ids = open_line(&net).await;
    let addresses: Vec<String> = (0..NODES).map(|i| net.address(i).to_owned()).collect();
    let apis: Vec<ApiClient> = (0..NODES).map(|i| net.api(i).clone()).collect();

    // The clients.
    let until = Instant::now() + STORM;
    let clients: Vec<_> = (0..WORKERS)
        .map(|w| {
            tokio::spawn(client(
                apis.clone(),
                addresses.clone(),
                net.token().to_owned(),
                seed ^ ((w as u64 + 1) << 32),
                TRANSFERS / WORKERS,
                until,
            ))
        })
        .collect();

    // The storm: a node killed and restarted at random moments; once the XMPP server, once
    // the RPC endpoint.
    let mut round = 0;
    let mut kills = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(rng.millis(500, 2500)).await;
        let victim = rng.below(NODES as u64) as usize;
        net.kill_node(victim).unwrap();
        kills.push(victim + 1);
        tokio::time::sleep(rng.millis(100, 800)).await;
        if round == 1 {
            net.prosody.kill().expect("kill prosody");
            tokio::time::sleep(rng.millis(200, 800)).await;
            net.prosody.restart().expect("restart prosody");
        }
        net.start_node(victim)
            .await
            .unwrap_or_else(|e| panic!("node {} does not start again: {e}", victim + 1));
        // Running nodes ride out an RPC outage (a node starting refuses to, with a clear error).
        if round == 2 {
            net.rpc_gate.as_ref().unwrap().set_open(false);
            tokio::time::sleep(rng.millis(2000, 4000)).await;
            net.rpc_gate.as_ref().unwrap().set_open(true);
        }
        round += 1;
    }
    let mut accepted = Vec::new();
    for c in clients {
        accepted.extend(c.await.unwrap());
    }
    eprintln!(
        "storm over: {} transfers accepted, nodes killed in turn: {kills:?}",
        accepted.len()
    );
    assert!(round >= 3, "the storm was too short to cut the RPC");
    assert!(
        accepted.len() >= 100,
        "too few transfers got through: {}",
        accepted.len()
    );

    // Quiescence: blocks move on so expired locks go; every transfer ends.
    let deadline = Instant::now() + QUIET;
    let mut last_mine = Instant::now();
    let (histories, splits) = loop {
        match unsettled(&net, &ids).await {
            Ok(done) => break done,
            Err(why) => assert!(Instant::now() < deadline, "never quiescent: {why}"),
        }
        if last_mine.elapsed() > Duration::from_secs(2) {
            net.chain.mine(3).await.unwrap();
            last_mine = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    for (x, (a, b)) in splits.iter().enumerate() {
        assert_eq!(
            a + b,
            2 * DEPOSIT as u128,
            "channel {}–{} lost or made tokens",
            x + 1,
            x + 2
        );
    }
    // Every accepted transfer is in its initiator's history.
    let known: Vec<BTreeSet<&str>> = histories
        .iter()
        .map(|h| {
            h.iter()
                .filter_map(|t| t["lock_secret_hash"].as_str())
                .collect()
        })
        .collect();
    for (from, id) in &accepted {
        assert!(
            known[*from].contains(id.as_str()),
            "node {} forgot transfer {id}",
            from + 1
        );
    }
    // Balance changes are exactly the succeeded transfers (no fees on this testnet).
    let index: BTreeMap<String, usize> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| (a.to_lowercase(), i))
        .collect();
    let mut expected = [0i128; NODES];
    let mut outcomes = BTreeMap::<&str, usize>::new();
    for (from, history) in histories.iter().enumerate() {
        for t in history {
            let status = t["status"].as_str().unwrap();
            *outcomes.entry(status).or_default() += 1;
            if status != "success" {
                continue;
            }
            let to = index[&t["partner_address"].as_str().unwrap().to_lowercase()];
            let value = amount(&t["amount"]).unwrap() as i128;
            assert_eq!(amount(&t["fee"]), Some(0), "{t}");
            expected[from] -= value;
            expected[to] += value;
        }
    }
    let mut actual = [0i128; NODES];
    for (x, (a, b)) in splits.iter().enumerate() {
        actual[x] += *a as i128 - DEPOSIT as i128;
        actual[x + 1] += *b as i128 - DEPOSIT as i128;
    }
    eprintln!("outcomes {outcomes:?}; balance changes {actual:?}");
    assert_eq!(actual, expected, "balance changes vs succeeded transfers");
    assert!(
        outcomes.get("success").copied().unwrap_or(0) > 50,
        "{outcomes:?}"
    );
}
