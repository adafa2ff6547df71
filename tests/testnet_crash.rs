//! Crash safety on a real local testnet: a node killed at each named fault point of a direct
//! transfer, a three-node mediated transfer (in each role), a lock given back by a mediator
//! that cannot go on, and a lock left to expire, restarts on its data directory, and
//! then the transfer has ended as a success or a clean failure, both ends of every channel
//! report identical balances and no locks, tokens are conserved per channel, and the target
//! received exactly the succeeded amounts.
//!
//! A second part kills either node of a channel at each chain-event point of the channel's
//! whole life (open, deposit, withdraw, close, update, secret registered, unlock, settle,
//! cooperative settle) and checks the on-chain payouts to the token.
//!
//! The fault points a scenario passes are discovered, not listed by hand: one clean run with
//! the nodes logging every point they pass (`smartraiden::node::faults` at debug level), then
//! one crash per (node, point). Every failure names its point.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smartraiden::testnet::client::{amount, balances};
use smartraiden::testnet::{Testnet, TestnetOptions};

const WAIT: Duration = Duration::from_secs(60);
const DEPOSIT: u64 = 10_000;

/// What node 1 does in each round of a crash scenario.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// A direct transfer to node 2.
    Direct,
    /// A mediated transfer to node 3 through node 2.
    Mediated,
    /// A mediated transfer to node 3 that node 2 cannot forward (its side of 2–3 is spent):
    /// node 2 gives the lock back (AnnounceDisposed), node 1 removes it and fails the transfer.
    Disposed,
    /// A transfer to node 2 whose secret node 1 holds back: the lock expires and node 1
    /// removes it (RemoveExpiredHashlock).
    Expired,
}

impl Scenario {
    fn nodes(self) -> usize {
        match self {
            Scenario::Direct | Scenario::Expired => 2,
            Scenario::Mediated | Scenario::Disposed => 3,
        }
    }

    /// Whether a round can end in success.
    fn can_succeed(self) -> bool {
        matches!(self, Scenario::Direct | Scenario::Mediated)
    }

    /// How often to mine 5 blocks while waiting for a round to end.
    fn block_pace(self) -> Duration {
        match self {
            Scenario::Expired => Duration::from_millis(250),
            _ => Duration::from_secs(2),
        }
    }
}

async fn testnet(nodes: usize, dir: &std::path::Path) -> Testnet {
    let mut options = TestnetOptions::new(nodes, dir, env!("CARGO_BIN_EXE_smartraiden"));
    options.extra_node_args = vec!["--api-timeout".into(), "90".into()];
    options.node_log = "info,smartraiden::node::faults=debug".into();
    Testnet::start(options).await.expect("the testnet starts")
}

/// Opens the chain of channels 0–1, 1–2, … with `DEPOSIT` on both sides; their ids in order.
async fn open_line(net: &Testnet) -> Vec<String> {
    let mut ids = Vec::new();
    for x in 0..net.len() - 1 {
        let ch = net
            .api(x)
            .open_channel(net.token(), net.address(x + 1), DEPOSIT, 100)
            .await
            .expect("open");
        let id = ch["channel_identifier"].as_str().unwrap().to_owned();
        let seen = net
            .api(x + 1)
            .wait_channel(&id, WAIT, |c| c["channel_identifier"].is_string())
            .await
            .unwrap();
        assert!(seen["channel_identifier"].is_string(), "{seen}");
        net.api(x + 1).deposit(&id, DEPOSIT).await.expect("deposit");
        ids.push(id);
    }
    ids
}

/// The fault points each node logged since `offsets` (its log sizes before the run).
fn points_since(net: &Testnet, offsets: &[u64]) -> Vec<Vec<String>> {
    (0..net.len())
        .map(|i| {
            let log = std::fs::read(net.log_path(i)).unwrap_or_default();
            let text = String::from_utf8_lossy(&log[offsets[i] as usize..]).into_owned();
            let mut seen = BTreeSet::new();
            text.lines()
                .filter_map(|l| l.split("fault point ").nth(1))
                .map(|p| p.split_whitespace().next().unwrap_or("").to_owned())
                .filter(|p| {
                    !p.starts_with("send-after:Ping")
                        && !p.contains(":Ping")
                        && seen.insert(p.clone())
                })
                .collect()
        })
        .collect()
}

fn log_sizes(net: &Testnet) -> Vec<u64> {
    (0..net.len())
        .map(|i| std::fs::metadata(net.log_path(i)).map_or(0, |m| m.len()))
        .collect()
}

/// The outcome of the transfer `id` at the initiator, driving block time forward when it
/// takes long (a failed transfer ends when its lock expires).
async fn outcome(net: &Testnet, id: &str, point: &str, pace: Duration) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last_mine = Instant::now();
    loop {
        let (status, t) = net
            .api(0)
            .get(&format!("transferstatus/{}/{id}", net.token()))
            .await
            .unwrap();
        if let (200, Some(s @ ("success" | "failed" | "canceled"))) = (status, t["status"].as_str())
        {
            return s.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{point}: transfer {id} never ended: {t}"
        );
        if last_mine.elapsed() > pace {
            net.chain.mine(5).await.unwrap();
            last_mine = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Both ends of every channel agree, hold no lock, and conserve `2 * DEPOSIT`; returns each
/// channel's split at its lower-numbered end. Drives blocks forward while locks remain.
async fn quiescent(net: &Testnet, ids: &[String], point: &str) -> Vec<(u128, u128)> {
    let deadline = Instant::now() + WAIT;
    let mut last_mine = Instant::now();
    loop {
        let mut splits = Vec::new();
        let mut problems = Vec::new();
        for (x, id) in ids.iter().enumerate() {
            let (_, a) = net.api(x).get(&format!("channels/{id}")).await.unwrap();
            let (_, b) = net.api(x + 1).get(&format!("channels/{id}")).await.unwrap();
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
                problems.push(format!("channel {}–{}: {a} vs {b}", x + 1, x + 2));
            }
            splits.push(sa.unwrap_or_default());
        }
        // Every message has been acknowledged: nothing is still on its way (the clean run's
        // list of fault points is complete only then).
        for i in 0..net.len() {
            let (_, outbox) = net.api(i).get("debug/outbox").await.unwrap();
            if outbox["unacknowledged"] != json!(0) {
                problems.push(format!("node {} still awaits acks: {outbox}", i + 1));
            }
        }
        if problems.is_empty() {
            for (x, s) in splits.iter().enumerate() {
                assert_eq!(
                    s.0 + s.1,
                    2 * DEPOSIT as u128,
                    "{point}: channel {}–{} lost or made tokens",
                    x + 1,
                    x + 2
                );
            }
            return splits;
        }
        assert!(
            Instant::now() < deadline,
            "{point}: channels never settled down: {problems:?}"
        );
        if last_mine.elapsed() > Duration::from_secs(2) {
            net.chain.mine(5).await.unwrap();
            last_mine = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Starts a transfer of `value` from node 1 to the last node; its id. If node 1 dies before
/// answering, the id comes from its history after it is back.
async fn start_transfer(net: &mut Testnet, value: u64, scenario: Scenario) -> Result<String, ()> {
    let target = net.address(net.len() - 1).to_owned();
    let body = match scenario {
        Scenario::Direct => json!({"is_direct": true}),
        Scenario::Mediated | Scenario::Disposed => json!({}),
        Scenario::Expired => {
            let (_, fresh) = net.api(0).get("secret").await.map_err(|_| ())?;
            json!({"secret": fresh["secret"]})
        }
    };
    // A partner just restarted is unreachable (409, no route) until its presence arrives.
    let deadline = Instant::now() + WAIT;
    loop {
        match net
            .api(0)
            .transfer(net.token(), &target, value, body.clone())
            .await
        {
            Ok((200, t)) => return Ok(t["lock_secret_hash"].as_str().unwrap().to_owned()),
            Ok((409, t))
                if Instant::now() < deadline
                    && t["error_message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("no route")) =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Ok((status, t)) => panic!("transfer refused with {status} (for {WAIT:?} if 409): {t}"),
            Err(_) => return Err(()),
        }
    }
}

/// Node 1's sent history, oldest first.
async fn sent_history(net: &Testnet) -> Vec<Value> {
    let (status, sent) = net.api(0).get("querysenttransfer").await.unwrap();
    assert_eq!(status, 200, "{sent}");
    sent.as_array().cloned().unwrap_or_default()
}

/// One crash per (node, fault point) of the scenario; returns the points crashed at.
async fn crash_everywhere(scenario: Scenario) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    // `CRASH_KEEP=1` keeps the testnet's directory (logs) for a look afterwards.
    let dir_path = if std::env::var("CRASH_KEEP").is_ok() {
        let kept = dir.keep();
        eprintln!("testnet files in {}", kept.display());
        kept
    } else {
        dir.path().to_owned()
    };
    let mut net = testnet(scenario.nodes(), &dir_path).await;
    let ids = open_line(&net).await;
    let target = net.len() - 1;
    let pace = scenario.block_pace();
    if scenario == Scenario::Disposed {
        let (status, t) = net
            .api(1)
            .transfer(
                net.token(),
                net.address(2),
                DEPOSIT,
                json!({"is_direct": true, "sync": true}),
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "node 2 spends its side of 2–3: {t}");
    }
    let base = quiescent(&net, &ids, "setup").await[target - 1].1;

    // A clean run lists the points each node passes.
    let offsets = log_sizes(&net);
    let id = start_transfer(&mut net, 1, scenario)
        .await
        .expect("clean transfer");
    let end = outcome(&net, &id, "clean run", pace).await;
    assert_eq!(end == "success", scenario.can_succeed(), "clean run: {end}");
    quiescent(&net, &ids, "clean run").await;
    let points = points_since(&net, &offsets);
    let mut received = u128::from(scenario.can_succeed());
    let mut crashed = Vec::new();

    for (node, node_points) in points.iter().enumerate() {
        for point in node_points {
            let name = format!("node {} at {point}", node + 1);
            // `CRASH_ONLY=<substring>` replays only matching crashes (to debug one).
            if std::env::var("CRASH_ONLY").is_ok_and(|only| !name.contains(&only)) {
                continue;
            }
            let sent_before = sent_history(&net).await.len();
            net.kill_node(node).unwrap();
            // An armed node may die while starting (a message resent to it hits the point).
            let started = match net
                .start_node_with(node, &[("SMARTRAIDEN_CRASH_AT", point)])
                .await
            {
                Ok(()) => (start_transfer(&mut net, 1, scenario).await, false),
                Err(e) if e.to_string().contains("exited during start-up") => (Err(()), true),
                Err(e) => panic!("{name}: start failed: {e}"),
            };
            let (started, died_starting) = started;
            // Blocks move on meanwhile, as in `outcome` (a lock may have to expire first).
            let mut died = died_starting;
            let until = Instant::now() + Duration::from_secs(15);
            while !died && Instant::now() < until {
                died = net.wait_exit(node, pace).await.is_some();
                if !died {
                    net.chain.mine(5).await.unwrap();
                }
            }
            if !died {
                // This run took another path (e.g. a retransmission raced the point); no crash.
                net.kill_node(node).unwrap();
            }
            net.start_node(node)
                .await
                .unwrap_or_else(|e| panic!("{name}: restart failed: {e}"));
            // Node 1 may die before answering: the transfer started iff its history grew.
            let id = match started {
                Ok(id) => Some(id),
                Err(()) => {
                    let history = sent_history(&net).await;
                    (history.len() > sent_before).then(|| {
                        history.last().unwrap()["lock_secret_hash"]
                            .as_str()
                            .unwrap()
                            .to_owned()
                    })
                }
            };
            let end = match &id {
                Some(id) => outcome(&net, id, &name, pace).await,
                None => "never started".to_owned(),
            };
            let splits = quiescent(&net, &ids, &name).await;
            assert!(
                end != "success" || scenario.can_succeed(),
                "{name}: a transfer that cannot go through succeeded"
            );
            if end == "success" {
                received += 1;
            }
            let at_target = splits[target - 1].1 - base;
            assert_eq!(
                at_target, received,
                "{name}: the target holds {at_target}, succeeded transfers paid {received}"
            );
            eprintln!(
                "{name}: {} then {end}",
                if died { "crashed" } else { "not reached" }
            );
            if died {
                crashed.push(name);
            }
        }
    }
    crashed
}

/// Asserts that every key point killed a node: `"node N at POINT"` exactly, or a bare
/// `POINT` on any node.
fn assert_crashed_at(crashed: &[String], points: &[&str]) {
    for p in points {
        let hit = if p.starts_with("node ") {
            crashed.iter().any(|c| c == p)
        } else {
            crashed.iter().any(|c| c.ends_with(&format!(" at {p}")))
        };
        assert!(hit, "never crashed at {p}: {crashed:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_direct_transfer_survives_a_crash_at_every_fault_point_of_either_node() {
    let crashed = crash_everywhere(Scenario::Direct).await;
    assert_crashed_at(
        &crashed,
        &[
            "send-before:DirectTransfer",
            "receive:DirectTransfer",
            "receive-after:DirectTransfer",
            "ack:DirectTransfer",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mediated_transfer_survives_a_crash_at_every_fault_point_of_every_role() {
    let crashed = crash_everywhere(Scenario::Mediated).await;
    assert_crashed_at(
        &crashed,
        &[
            "node 1 at send-before:MediatedTransfer",
            "node 2 at receive:MediatedTransfer",
            "node 2 at send-before:MediatedTransfer",
            "node 3 at send-before:SecretRequest",
            "node 1 at send-before:RevealSecret",
            "node 2 at send-before:Secret",
            "node 3 at receive:Secret",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disposed_lock_is_removed_cleanly_after_a_crash_at_every_fault_point() {
    let crashed = crash_everywhere(Scenario::Disposed).await;
    assert_crashed_at(
        &crashed,
        &[
            "node 2 at send-before:AnnounceDisposed",
            "node 2 at send-after:AnnounceDisposed",
            "node 1 at receive:AnnounceDisposed",
            "node 1 at send-before:AnnounceDisposedResponse",
            "node 2 at receive:AnnounceDisposedResponse",
            "node 1 at ack:AnnounceDisposedResponse",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lock_is_removed_cleanly_after_a_crash_at_every_fault_point() {
    let crashed = crash_everywhere(Scenario::Expired).await;
    assert_crashed_at(
        &crashed,
        &[
            "node 1 at send-before:RemoveExpiredHashlock",
            "node 1 at send-after:RemoveExpiredHashlock",
            "node 2 at receive:RemoveExpiredHashlock",
            "node 2 at receive-after:RemoveExpiredHashlock",
            "node 1 at ack:RemoveExpiredHashlock",
        ],
    );
}

// ---------------------------------------------------------------- chain events

const LIFE_DEPOSIT: u128 = 100;
const SETTLE_TIMEOUT: u64 = 40;
const PUNISH_BLOCKS: u64 = 5;

/// Waits until `done(node, its channel with the other node)` holds on both nodes of a
/// two-node testnet, starting again (unarmed) a node that died on the way.
async fn converge(
    net: &mut Testnet,
    step: &str,
    done: impl Fn(usize, Option<&Value>) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut all = true;
        let mut first = None;
        for n in 0..2 {
            if !net.is_running(n) {
                let _ = net.wait_exit(n, Duration::from_secs(1)).await;
                net.start_node(n)
                    .await
                    .unwrap_or_else(|e| panic!("{step}: node {} does not restart: {e}", n + 1));
            }
            let ch = match net
                .api(n)
                .channel_with(net.token(), net.address(1 - n))
                .await
            {
                Ok(ch) => ch,
                Err(_) => {
                    all = false;
                    continue;
                }
            };
            all &= done(n, ch.as_ref());
            if n == 0 {
                first = ch;
            }
        }
        if all {
            return first;
        }
        assert!(
            Instant::now() < deadline,
            "{step}: the nodes never got there"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Node `who`'s token balance on chain, asked of whichever node answers.
async fn onchain_of(net: &Testnet, who: usize) -> u128 {
    for n in [0, 1] {
        if let Ok(b) = net
            .api(n)
            .onchain_balance(net.token(), net.address(who))
            .await
        {
            return b;
        }
    }
    panic!("no node answers for the on-chain balance");
}

/// Node 1's view is `(a, b)` with no locks, node 2's the mirror.
fn split(n: usize, ch: Option<&Value>, a: u128, b: u128) -> bool {
    let want = if n == 0 { (a, b) } else { (b, a) };
    ch.is_some_and(|c| {
        balances(c) == Some(want)
            && amount(&c["locked_amount"]) == Some(0)
            && amount(&c["partner_locked_amount"]) == Some(0)
    })
}

/// A channel's life between nodes 1 and 2, every step driven through the REST API and awaited
/// on both nodes (restarting one that died): open, deposit, payments both ways, a withdraw, a
/// lock with a held secret, then either a close, an on-chain secret, an unlock and the settle,
/// or the lock released and a cooperative settle. The on-chain payouts are checked exactly.
async fn channel_life(net: &mut Testnet, cooperative: bool, name: &str) {
    let (a0, b0) = (onchain_of(net, 0).await, onchain_of(net, 1).await);
    let token = net.token().to_owned();
    let addr_b = net.address(1).to_owned();

    let _ = net
        .api(0)
        .open_channel(&token, &addr_b, LIFE_DEPOSIT as u64, SETTLE_TIMEOUT)
        .await;
    let ch = converge(net, &format!("{name}: open"), |_, c| c.is_some())
        .await
        .unwrap();
    let id = ch["channel_identifier"].as_str().unwrap().to_owned();
    let _ = net.api(1).deposit(&id, LIFE_DEPOSIT as u64).await;
    converge(net, &format!("{name}: deposit"), |n, c| {
        split(n, c, 100, 100)
    })
    .await;

    for (from, to, value) in [(0, 1, 10), (1, 0, 3)] {
        let (status, t) = net
            .api(from)
            .transfer(
                &token,
                net.address(to),
                value,
                json!({"is_direct": true, "sync": true}),
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{name}: payment {t}");
    }
    converge(net, &format!("{name}: payments"), |n, c| {
        split(n, c, 93, 107)
    })
    .await;

    let _ = net
        .api(0)
        .call(
            reqwest::Method::PUT,
            &format!("withdraw/{id}"),
            Some(json!({"amount": 5})),
        )
        .await;
    converge(net, &format!("{name}: withdraw"), |n, c| {
        split(n, c, 88, 107)
    })
    .await;

    let (_, fresh) = net.api(0).get("secret").await.unwrap();
    let secret = fresh["secret"].as_str().unwrap().to_owned();
    let hash = fresh["lock_secret_hash"].as_str().unwrap().to_owned();
    let (status, t) = net
        .api(0)
        .transfer(&token, &addr_b, 7, json!({"secret": secret}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{name}: locked transfer {t}");
    converge(net, &format!("{name}: lock"), |n, c| {
        let field = if n == 0 {
            "locked_amount"
        } else {
            "partner_locked_amount"
        };
        c.is_some_and(|c| amount(&c[field]) == Some(7))
    })
    .await;

    if cooperative {
        let _ = net
            .api(0)
            .call(
                reqwest::Method::POST,
                "transfers/allowrevealsecret",
                Some(json!({"lock_secret_hash": hash, "token_address": token})),
            )
            .await;
        converge(net, &format!("{name}: unlock"), |n, c| split(n, c, 81, 114)).await;
        let _ = net
            .api(0)
            .call(
                reqwest::Method::PATCH,
                &format!("channels/{id}"),
                Some(json!({"state": "closed"})),
            )
            .await;
        converge(net, &format!("{name}: cooperative settle"), |_, c| {
            c.is_none()
        })
        .await;
    } else {
        let _ = net
            .api(0)
            .call(
                reqwest::Method::PATCH,
                &format!("channels/{id}"),
                Some(json!({"state": "closed", "force": true})),
            )
            .await;
        converge(net, &format!("{name}: close"), |_, c| {
            c.is_some_and(|c| c["state"] == "closed")
        })
        .await;
        // The secret goes public on chain; node 2 claims the lock on the closed channel.
        let _ = net
            .api(0)
            .call(
                reqwest::Method::POST,
                "registersecret",
                Some(json!({"secret": secret})),
            )
            .await;
        converge(net, &format!("{name}: unlock on chain"), |n, c| {
            let want = if n == 0 { (81, 114) } else { (114, 81) };
            c.is_some_and(|c| {
                balances(c) == Some(want)
                    && amount(&c["locked_amount"]) == Some(0)
                    && amount(&c["partner_locked_amount"]) == Some(0)
            })
        })
        .await;
        net.chain
            .mine(SETTLE_TIMEOUT + PUNISH_BLOCKS + 2)
            .await
            .unwrap();
        converge(net, &format!("{name}: settle"), |_, c| c.is_none()).await;
    }
    let (a1, b1) = (onchain_of(net, 0).await, onchain_of(net, 1).await);
    assert_eq!((a1 + 14, b1), (a0, b0 + 14), "{name}: on-chain payouts");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_life_survives_a_crash_at_every_chain_event_of_either_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(2, dir.path()).await;

    // Clean runs list the chain-event points each node passes in either ending.
    let mut cycles: Vec<(usize, String, bool)> = Vec::new();
    for cooperative in [false, true] {
        let offsets = log_sizes(&net);
        channel_life(&mut net, cooperative, "clean run").await;
        for (node, points) in points_since(&net, &offsets).into_iter().enumerate() {
            for p in points.into_iter().filter(|p| p.starts_with("chain-")) {
                if !cycles.iter().any(|(n, q, _)| *n == node && *q == p) {
                    cycles.push((node, p, cooperative));
                }
            }
        }
    }

    let mut crashed = Vec::new();
    for (node, point, cooperative) in cycles {
        let name = format!("node {} at {point}", node + 1);
        if std::env::var("CRASH_ONLY").is_ok_and(|only| !name.contains(&only)) {
            continue;
        }
        net.kill_node(node).unwrap();
        // A start-up that already hits the point counts as a crash; `converge` restarts it.
        let _ = net
            .start_node_with(node, &[("SMARTRAIDEN_CRASH_AT", &point)])
            .await;
        channel_life(&mut net, cooperative, &name).await;
        let log = std::fs::read_to_string(net.log_path(node)).unwrap_or_default();
        let hit = log.contains(&format!("fault point {point} reached"));
        eprintln!(
            "{name}: {}",
            if hit {
                "crashed, recovered"
            } else {
                "not reached"
            }
        );
        if hit {
            crashed.push(name);
        }
        // Disarm for good if the point was never reached.
        if net.is_running(node) && !hit {
            net.restart_node(node).await.unwrap();
        }
    }
    assert_crashed_at(
        &crashed,
        &[
            "chain-before:ChannelOpened",
            "chain-after:ChannelDeposit",
            "chain-before:ChannelWithdraw",
            "chain-after:ChannelClosed",
            "chain-after:BalanceProofUpdated",
            "chain-after:SecretRegistered",
            "chain-before:ChannelUnlocked",
            "chain-after:ChannelSettled",
            "chain-after:ChannelCooperativeSettled",
        ],
    );
}
