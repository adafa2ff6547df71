//! No-internet payments (SPEC §4 "No-internet mode") with real processes in a LAN lab of
//! network namespaces (`testnet::lan_net`): anvil and Prosody run in an "infrastructure"
//! namespace behind a router; the nodes sit on a bridged LAN. Removing a node's default route
//! leaves it with no route at all to the XMPP server and the chain, as in a basement, while it
//! still reaches its LAN neighbours. Everything goes through the REST API, figures are exact,
//! and every wait polls a condition with a deadline.
//!
//! Needs root (network namespaces), `ip`, anvil and Prosody (`integration/deps.sh`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smartraiden::testnet::client::{amount, balances};
use smartraiden::testnet::lan_net::{Discovery, LanNet, LanNetOptions};

const WAIT: Duration = Duration::from_secs(60);
const SETTLE_TIMEOUT: u64 = 40;
/// Blocks after the settle window during which only the partner may punish (the contract's).
const PUNISH_BLOCKS: u64 = 5;
/// The nodes' `--stale-after-ms`: how long both links must be silent for no-internet mode.
const STALE_MS: u64 = 3_000;
/// Direct transfers each way over the LAN.
const ROUNDS: u64 = 50;

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

async fn lan_net(discovery: Vec<Discovery>, dir: &std::path::Path) -> LanNet {
    require_root();
    let mut options = LanNetOptions::new(discovery, dir, env!("CARGO_BIN_EXE_smartraiden"));
    options.extra_node_args = vec!["--stale-after-ms".into(), STALE_MS.to_string()];
    LanNet::start(options)
        .await
        .expect("the LAN testnet starts")
}

/// Opens a channel from node `x` to node `y` with deposits `dx` and `dy`; its identifier.
async fn open(net: &LanNet, x: usize, y: usize, dx: u64, dy: u64) -> String {
    let id = net
        .api(x)
        .open_funded(
            net.api(y),
            net.token(),
            net.address(y),
            dx,
            dy,
            SETTLE_TIMEOUT,
            WAIT,
        )
        .await
        .expect("open");
    converged(net, x, y, &id, (u128::from(dx), u128::from(dy))).await;
    id
}

async fn transfer(net: &LanNet, from: usize, to: usize, value: u64, direct: bool) -> (u16, Value) {
    net.api(from)
        .transfer(
            net.token(),
            net.address(to),
            value,
            json!({"sync": true, "is_direct": direct}),
        )
        .await
        .unwrap()
}

/// A direct payment that must succeed.
async fn pay(net: &LanNet, from: usize, to: usize, value: u64) {
    let (code, body) = transfer(net, from, to, value, true).await;
    assert_eq!(code, 200, "node {} → node {}: {body}", from + 1, to + 1);
}

/// `n` direct payments of `value` from `from` to `to`, one after the other; their latencies.
async fn pay_many(net: &LanNet, from: usize, to: usize, value: u64, n: u64) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        pay(net, from, to, value).await;
        took.push(t.elapsed());
    }
    took
}

/// "n transfers in T: R/s, p50 L ms".
fn rate(took: &[Duration]) -> String {
    let total: Duration = took.iter().sum();
    let mut sorted = took.to_vec();
    sorted.sort();
    format!(
        "{} transfers in {:.2} s: {:.0}/s, p50 {:.1} ms, max {:.1} ms",
        took.len(),
        total.as_secs_f64(),
        took.len() as f64 / total.as_secs_f64(),
        sorted[sorted.len() / 2].as_secs_f64() * 1e3,
        sorted[sorted.len() - 1].as_secs_f64() * 1e3,
    )
}

/// Waits until node `i`'s status satisfies `pred`; the status.
async fn wait_status(net: &LanNet, i: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let s = net.api(i).wait_status(WAIT, &pred).await.unwrap();
    assert!(pred(&s), "node {} never {what}: {s}", i + 1);
    s
}

/// Waits until node `i` entered no-internet mode by itself (both links silent).
async fn offline_by_itself(net: &LanNet, i: usize) -> Value {
    let s = wait_status(net, i, "entered no-internet mode", |s| {
        s["no_internet"] == json!(true)
    })
    .await;
    assert_eq!(
        s["no_internet_reason"],
        json!("neither the chain nor the XMPP server is reachable"),
        "{s}"
    );
    assert_eq!(s["xmpp_connected"], json!(false), "{s}");
    s
}

/// Waits until node `i` is back online: both links up.
async fn back_online(net: &LanNet, i: usize) -> Value {
    wait_status(net, i, "came back online", |s| {
        s["no_internet"] == json!(false) && s["xmpp_connected"] == json!(true)
    })
    .await
}

/// Tells node `i` where node `j` listens on the LAN.
async fn introduce(net: &LanNet, i: usize, j: usize) {
    let (code, body) = net
        .api(i)
        .call(
            reqwest::Method::POST,
            "updatenodes",
            Some(json!([{"address": net.address(j), "ip_port": net.lan(j).to_string()}])),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
}

/// Node `i`'s LAN peers (`GET /api/1/updatenodes`).
async fn lan_peers(net: &LanNet, i: usize) -> Vec<Value> {
    let (code, body) = net.api(i).get("updatenodes").await.unwrap();
    assert_eq!(code, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

/// Waits until node `i` holds a proven LAN connection to node `j`.
async fn lan_connected(net: &LanNet, i: usize, j: usize) {
    let want = net.address(j).to_owned();
    wait_status(net, i, "connected on the LAN", move |s| {
        s["lan"]["peers"].as_array().is_some_and(|peers| {
            peers.iter().any(|p| {
                p["address"]
                    .as_str()
                    .is_some_and(|a| a.eq_ignore_ascii_case(&want))
                    && p["connected"] == json!(true)
            })
        })
    })
    .await;
}

/// Waits until node `x` shows `split` on channel `id`, no locks, and node `y` the mirror.
async fn converged(net: &LanNet, x: usize, y: usize, id: &str, split: (u128, u128)) {
    for (node, want) in [(x, split), (y, (split.1, split.0))] {
        let ch = net
            .api(node)
            .wait_channel(id, WAIT, |c| {
                balances(c) == Some(want)
                    && c["locked_amount"] == json!(0)
                    && c["partner_locked_amount"] == json!(0)
            })
            .await
            .unwrap();
        assert_eq!(balances(&ch), Some(want), "node {} on {id}: {ch}", node + 1);
        assert_eq!(ch["locked_amount"], json!(0), "{ch}");
        assert_eq!(ch["partner_locked_amount"], json!(0), "{ch}");
    }
}

async fn channel(net: &LanNet, i: usize, id: &str) -> Value {
    let (code, ch) = net.api(i).get(&format!("channels/{id}")).await.unwrap();
    assert_eq!(code, 200, "{ch}");
    ch
}

/// `(count, sum)` of node `i`'s transfer records of `kind` (`querysenttransfer` or
/// `queryreceivedtransfer`) with `partner` that succeeded; asserts none is still pending.
async fn history(net: &LanNet, i: usize, kind: &str, partner: usize) -> (usize, u128) {
    let (code, list) = net.api(i).get(kind).await.unwrap();
    assert_eq!(code, 200, "{list}");
    let list = list.as_array().cloned().unwrap_or_default();
    let with: Vec<&Value> = list
        .iter()
        .filter(|r| {
            r["partner_address"]
                .as_str()
                .is_some_and(|p| p.eq_ignore_ascii_case(net.address(partner)))
        })
        .collect();
    for r in &with {
        assert!(
            !r["status"]
                .as_str()
                .unwrap_or("")
                .eq_ignore_ascii_case("pending"),
            "node {} {kind}: a transfer still pending: {r}",
            i + 1
        );
    }
    let ok: Vec<&&Value> = with
        .iter()
        .filter(|r| {
            r["status"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("success"))
        })
        .collect();
    (
        ok.len(),
        ok.iter().map(|r| amount(&r["amount"]).unwrap()).sum(),
    )
}

async fn onchain(net: &LanNet, i: usize) -> u128 {
    net.api(i)
        .onchain_balance(net.token(), net.address(i))
        .await
        .expect("on-chain balance")
}

/// Transactions node `i`'s account has had mined.
async fn sent_transactions(net: &LanNet, i: usize) -> u64 {
    use alloy::providers::Provider;
    let who: alloy::primitives::Address = net.address(i).parse().unwrap();
    net.chain
        .provider()
        .get_transaction_count(who)
        .await
        .unwrap()
}

/// Waits until `GET /channels/{id}` on node `i` answers `status` with a body satisfying `done`.
async fn wait_channel_state(
    net: &LanNet,
    i: usize,
    id: &str,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, ch) = net.api(i).get(&format!("channels/{id}")).await.unwrap();
        if done(status, &ch) {
            return ch;
        }
        assert!(
            Instant::now() < deadline,
            "node {} {what}: still {status} {ch}",
            i + 1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Mines past the settle window and waits until both nodes forgot the channel (auto-settle).
async fn settle_window_passes(net: &LanNet, x: usize, y: usize, id: &str) {
    net.chain
        .mine(SETTLE_TIMEOUT + PUNISH_BLOCKS + 2)
        .await
        .unwrap();
    for node in [x, y] {
        wait_channel_state(net, node, id, "settles", |status, _| status == 404).await;
    }
}

/// Waits until node `i` has processed the chain's current head.
async fn chain_view_caught_up(net: &LanNet, i: usize) {
    let head = net.chain.block_number().await.unwrap();
    let s = wait_status(net, i, "caught up with the chain", |s| {
        s["block_number"].as_u64().is_some_and(|b| b >= head)
    })
    .await;
    assert!(
        s["last_block_age_s"]
            .as_u64()
            .is_some_and(|age| age * 1000 < STALE_MS),
        "node {} hears from the chain again: {s}",
        i + 1
    );
}

/// Nodes 1 and 2 find each other by mDNS; node 3 keeps its route and is given node 2 by hand.
/// Online, a payment; offline (no default route), both nodes enter no-internet mode by
/// themselves, pay 50 times each way over the LAN, refuse a mediated transfer changing nothing,
/// and node 2 gives back node 3's mediated transfer at once; node 2 killed with SIGKILL and
/// restarted offline finds node 1 again and pays on with nothing lost; back online every
/// transfer ended exactly once, the chain view catches up, and close + settle pays each side
/// exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_found_by_mdns_pay_offline_survive_kill_9_and_settle_exactly_back_online() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut net = lan_net(
        vec![Discovery::Mdns, Discovery::Mdns, Discovery::Manual],
        dir.path(),
    )
    .await;
    let started = t0.elapsed();
    let (a, b, c) = (0, 1, 2);
    let t = Instant::now();
    lan_connected(&net, a, b).await;
    lan_connected(&net, b, a).await;
    eprintln!(
        "lab + servers + 3 nodes up in {:.1} s; nodes 1 and 2 found each other by mDNS and \
         proved their addresses {:.2} s later",
        started.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    assert!(
        lan_peers(&net, c).await.is_empty(),
        "node 3 runs without mDNS"
    );

    // Online: channels opened and funded, a payment.
    let ab = open(&net, a, b, 1000, 1000).await;
    let cb = open(&net, c, b, 100, 0).await;
    let (a0, b0) = (onchain(&net, a).await, onchain(&net, b).await);
    back_online(&net, a).await;
    back_online(&net, b).await;
    pay(&net, a, b, 10).await;
    converged(&net, a, b, &ab, (990, 1010)).await;

    // No route to the chain or the XMPP server for nodes 1 and 2.
    net.lab.cut_internet_of(a).unwrap();
    net.lab.cut_internet_of(b).unwrap();
    let t = Instant::now();
    offline_by_itself(&net, a).await;
    offline_by_itself(&net, b).await;
    eprintln!(
        "no-internet mode on both nodes {:.1} s after the routes went (--stale-after-ms {STALE_MS})",
        t.elapsed().as_secs_f64()
    );
    lan_connected(&net, a, b).await;
    let there = pay_many(&net, a, b, 3, ROUNDS).await;
    let back = pay_many(&net, b, a, 2, ROUNDS).await;
    eprintln!("LAN (mDNS) node 1 → node 2: {}", rate(&there));
    eprintln!("LAN (mDNS) node 2 → node 1: {}", rate(&back));
    converged(&net, a, b, &ab, (940, 1060)).await;

    // A mediated transfer offline: refused at once, nothing changed on any node.
    let before: Vec<Vec<Value>> = {
        let mut all = Vec::new();
        for i in 0..net.len() {
            all.push(net.api(i).channels().await.unwrap());
        }
        all
    };
    let strip = |chs: Vec<Value>| -> Vec<Value> {
        chs.into_iter()
            .map(|mut c| {
                // Ages move with the clock; the rest must not move at all.
                if let Some(o) = c.as_object_mut() {
                    o.remove("last_block_age_s");
                }
                c
            })
            .collect()
    };
    let (code, body) = transfer(&net, a, c, 5, false).await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("no-internet mode")),
        "{body}"
    );
    for (i, was) in before.into_iter().enumerate() {
        assert_eq!(
            strip(net.api(i).channels().await.unwrap()),
            strip(was),
            "node {} changed after a refused mediated transfer",
            i + 1
        );
    }

    // Node 3 still has its route and reaches node 2 over the LAN: node 2 gives its mediated
    // transfer back at once, and node 3 stops retrying.
    introduce(&net, c, b).await;
    lan_connected(&net, c, b).await;
    let t = Instant::now();
    let (code, body) = transfer(&net, c, a, 7, false).await;
    assert_eq!(code, 409, "refused by the offline mediator: {body}");
    eprintln!(
        "mediated transfer through the offline node refused in {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    wait_status(&net, c, "emptied its outbox", |s| {
        s["unacknowledged"] == json!(0)
    })
    .await;
    converged(&net, c, b, &cb, (100, 0)).await;

    // Node 2 crashes offline and comes back, still offline: nothing lost.
    net.kill_node(b).unwrap();
    let t = Instant::now();
    net.start_node(b)
        .await
        .expect("starts without the chain and XMPP");
    lan_connected(&net, b, a).await;
    lan_connected(&net, a, b).await;
    let restarted = t.elapsed();
    eprintln!(
        "node 2 restarted after kill -9 and reconnected by mDNS in {:.2} s",
        restarted.as_secs_f64()
    );
    // Without a route it does not wait out the XMPP login deadline (10 s) to start.
    assert!(
        restarted < Duration::from_secs(8),
        "node 2 took {restarted:?} to start offline"
    );
    converged(&net, a, b, &ab, (940, 1060)).await;
    pay(&net, a, b, 4).await;
    pay(&net, b, a, 1).await;
    converged(&net, a, b, &ab, (937, 1063)).await;
    offline_by_itself(&net, b).await;

    // Routes back: both links up, the chain view catches up, every transfer ended once.
    net.lab.restore_internet().unwrap();
    let t = Instant::now();
    back_online(&net, a).await;
    back_online(&net, b).await;
    eprintln!(
        "both nodes online again {:.1} s after the routes came back",
        t.elapsed().as_secs_f64()
    );
    net.chain.mine(1).await.unwrap();
    chain_view_caught_up(&net, a).await;
    chain_view_caught_up(&net, b).await;
    for i in [a, b, c] {
        wait_status(&net, i, "emptied its outbox", |s| {
            s["unacknowledged"] == json!(0)
        })
        .await;
    }
    let rounds = ROUNDS as usize;
    assert_eq!(
        history(&net, a, "querysenttransfer", b).await,
        (rounds + 2, 10 + 3 * u128::from(ROUNDS) + 4)
    );
    assert_eq!(
        history(&net, b, "queryreceivedtransfer", a).await,
        (rounds + 2, 10 + 3 * u128::from(ROUNDS) + 4)
    );
    assert_eq!(
        history(&net, b, "querysenttransfer", a).await,
        (rounds + 1, 2 * u128::from(ROUNDS) + 1)
    );
    assert_eq!(
        history(&net, a, "queryreceivedtransfer", b).await,
        (rounds + 1, 2 * u128::from(ROUNDS) + 1)
    );
    assert_eq!(history(&net, c, "querysenttransfer", a).await.0, 0);
    converged(&net, a, b, &ab, (937, 1063)).await;

    // Close and settle: each side paid exactly what the channel shows.
    net.api(a).force_close(&ab).await.unwrap();
    wait_channel_state(&net, b, &ab, "sees the close", |_, c| {
        c["state"] == "closed"
    })
    .await;
    settle_window_passes(&net, a, b, &ab).await;
    assert_eq!(onchain(&net, a).await, a0 + 937, "node 1 paid out");
    assert_eq!(onchain(&net, b).await, b0 + 1063, "node 2 paid out");
}

/// Without mDNS, peers given by `POST /api/1/updatenodes`: online, a payment over XMPP (no
/// LAN peer yet); offline, 50 payments each way over the LAN. Node 1 comes back first and
/// closes with the proof it holds, which lacks what it paid; node 2, still offline, sees
/// nothing until it comes back inside the settle window, then submits node 1's latest proof,
/// and the settle pays each side exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_given_by_hand_pay_offline_and_a_close_while_offline_is_answered_with_the_latest_proof()
 {
    let dir = tempfile::tempdir().unwrap();
    let net = lan_net(vec![Discovery::Manual, Discovery::Manual], dir.path()).await;
    let (d, e) = (0, 1);

    // Online, no LAN peer: the payment goes over XMPP.
    let de = open(&net, d, e, 1000, 1000).await;
    let (d0, e0) = (onchain(&net, d).await, onchain(&net, e).await);
    back_online(&net, d).await;
    back_online(&net, e).await;
    assert!(lan_peers(&net, d).await.is_empty());
    assert!(lan_peers(&net, e).await.is_empty());
    pay(&net, d, e, 10).await;
    converged(&net, d, e, &de, (990, 1010)).await;

    net.lab.cut_internet().unwrap();
    let t = Instant::now();
    offline_by_itself(&net, d).await;
    offline_by_itself(&net, e).await;
    eprintln!(
        "no-internet mode on both nodes (by hand) {:.1} s after the routes went",
        t.elapsed().as_secs_f64()
    );
    // Offline with no LAN peer, a payment cannot go anywhere yet; given by hand, it can.
    introduce(&net, d, e).await;
    introduce(&net, e, d).await;
    let t = Instant::now();
    lan_connected(&net, d, e).await;
    lan_connected(&net, e, d).await;
    eprintln!(
        "peers given by hand connected in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let there = pay_many(&net, d, e, 3, ROUNDS).await;
    let back = pay_many(&net, e, d, 2, ROUNDS).await;
    eprintln!("LAN (by hand) node 1 → node 2: {}", rate(&there));
    eprintln!("LAN (by hand) node 2 → node 1: {}", rate(&back));
    converged(&net, d, e, &de, (940, 1060)).await;
    // Node 1 pays last: node 2 now holds node 1's newest proof, which node 1's close below
    // does not put on chain (a close submits the partner's proof, here node 2's).
    pay(&net, d, e, 5).await;
    converged(&net, d, e, &de, (935, 1065)).await;

    // Node 1 comes back and closes; node 2 is still offline and sees nothing.
    net.lab.restore_internet_of(d).unwrap();
    back_online(&net, d).await;
    net.api(d).force_close(&de).await.unwrap();
    net.chain.mine(SETTLE_TIMEOUT / 4).await.unwrap();
    let ch = channel(&net, e, &de).await;
    assert_eq!(
        ch["state"],
        json!("opened"),
        "node 2 cannot see the chain: {ch}"
    );
    assert_eq!(ch["no_internet"], json!(true), "{ch}");
    let e_txs = sent_transactions(&net, e).await;

    // Node 2 back inside the settle window: it sees the close and submits node 1's latest
    // proof (one transaction of its own), then the settle pays exactly.
    net.lab.restore_internet_of(e).unwrap();
    back_online(&net, e).await;
    wait_channel_state(&net, e, &de, "sees the close", |_, c| {
        c["state"] == "closed"
    })
    .await;
    let deadline = Instant::now() + WAIT;
    while sent_transactions(&net, e).await == e_txs {
        assert!(
            Instant::now() < deadline,
            "node 2 never submitted node 1's proof"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settle_window_passes(&net, d, e, &de).await;
    assert_eq!(onchain(&net, d).await, d0 + 935, "node 1 paid out");
    assert_eq!(onchain(&net, e).await, e0 + 1065, "node 2 paid out");
}
