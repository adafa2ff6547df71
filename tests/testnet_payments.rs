//! Payments on a real local testnet: anvil, Prosody, our contracts and separate `smartraiden
//! run` processes, driven through the REST API only (`smartraiden::testnet`, the same code
//! behind `integration/testnet`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use smartraiden::messages::{Message, decode};
use smartraiden::primitives::ChainId;
use smartraiden::testnet::client::{amount, balances};
use smartraiden::testnet::seed::{self, ChannelView};
use smartraiden::testnet::{ApiClient, Testnet, TestnetOptions};

const WAIT: Duration = Duration::from_secs(60);

async fn testnet(
    nodes: usize,
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut TestnetOptions),
) -> Testnet {
    let mut options = TestnetOptions::new(nodes, dir, env!("CARGO_BIN_EXE_smartraiden"));
    options.extra_node_args = vec!["--api-timeout".into(), "90".into()];
    tweak(&mut options);
    Testnet::start(options).await.expect("the testnet starts")
}

fn apis(net: &Testnet) -> Vec<ApiClient> {
    (0..net.len()).map(|i| net.api(i).clone()).collect()
}

/// `(at a, at b)` per channel, as (balance, partner balance) pairs.
fn splits(views: &[ChannelView]) -> Vec<((u128, u128), (u128, u128))> {
    views.iter().map(|v| (v.at_a, v.at_b)).collect()
}

/// Every channel of every node, for "nothing changed" checks.
async fn all_channels(nodes: &[ApiClient]) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(n.channels().await.expect("channels"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_payment_on_five_processes_ends_with_the_exact_table_on_both_ends() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(5, dir.path(), |o| o.xmpp_stanza_log = true).await;
    let nodes = apis(&net);
    let token = net.token().to_owned();

    let report = seed::run_seed_payment(&nodes, &token)
        .await
        .expect("seed payment");
    assert_eq!(
        report.transfer["amount"].as_u64(),
        Some(50),
        "{}",
        report.transfer
    );
    assert_eq!(
        splits(&report.before),
        vec![
            ((200, 100), (100, 200)),
            ((100, 100), (100, 100)),
            ((200, 100), (100, 200)),
            ((100, 100), (100, 100)),
        ]
    );
    // The seed's table: 1–2 150/150, 2–3 100/100, 2–4 150/150, 4–5 50/150, on both ends.
    report.assert_seed_table();

    // The bytes that crossed the server are SPEC §3 messages: base64 of signed MessagePack,
    // each signed by the account that sent it.
    let log = std::fs::read_to_string(net.prosody.log_path()).expect("prosody log");
    let chain_id = ChainId(net.deployment.chain_id);
    let mut kinds = std::collections::BTreeMap::<&'static str, usize>::new();
    for line in log.lines().filter(|l| l.contains("RECV: <message")) {
        let from = between(line, "from='", "@").or_else(|| between(line, "from=\"", "@"));
        let Some(body) = between(line, "<body>", "</body>") else {
            continue;
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_else(|e| panic!("body is not base64 ({e}): {line}"));
        let signed = decode(&bytes, chain_id)
            .unwrap_or_else(|e| panic!("not a SPEC §3 message ({e}): {line}"));
        if let Some(from) = from {
            assert_eq!(
                signed.sender.to_lower_hex(),
                from.to_lowercase(),
                "signer is the sending account"
            );
        }
        *kinds.entry(kind(&signed.message)).or_default() += 1;
    }
    for k in [
        "MediatedTransfer",
        "SecretRequest",
        "RevealSecret",
        "Secret",
        "Ack",
    ] {
        assert!(
            kinds.get(k).copied().unwrap_or(0) > 0,
            "no {k} on the wire: {kinds:?}"
        );
    }
    // Three hops: a MediatedTransfer and an unlocking Secret per hop.
    assert!(
        kinds["MediatedTransfer"] >= 3 && kinds["Secret"] >= 3,
        "{kinds:?}"
    );

    // Above the route's capacity (node 1 holds 150 on its only channel): 409, and nothing
    // changes on any node.
    let before = all_channels(&nodes).await;
    let (status, err) = nodes[0]
        .transfer(&token, net.address(4), 151, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (status, err["error_code"].as_u64()),
        (409, Some(409)),
        "{err}"
    );
    let (status, err) = nodes[0]
        .transfer(&token, net.address(1), 151, json!({"is_direct": true}))
        .await
        .unwrap();
    assert_eq!(
        (status, err["error_code"].as_u64()),
        (409, Some(409)),
        "{err}"
    );
    // A target nobody has a channel with: no route, 409.
    let stranger = "0x1111111111111111111111111111111111111111";
    let (status, err) = nodes[0]
        .transfer(&token, stranger, 1, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (status, err["error_code"].as_u64()),
        (409, Some(409)),
        "{err}"
    );
    assert_eq!(
        all_channels(&nodes).await,
        before,
        "a refused transfer changed a channel"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mediated_transfer_with_a_fixed_fee_pays_each_mediator_its_fee_and_the_target_the_amount() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(5, dir.path(), |o| o.fee = 3).await;
    let nodes = apis(&net);
    let report = seed::run_seed_payment(&nodes, net.token())
        .await
        .expect("seed payment");
    assert_eq!(
        report.transfer["fee"].as_u64(),
        Some(6),
        "{}",
        report.transfer
    );
    // Node 1 pays 50 + 2 × 3; node 2 keeps 3 (156 − 153), node 4 keeps 3 (153 − 150), node 5
    // receives exactly 50.
    assert_eq!(
        splits(&report.after),
        vec![
            ((144, 156), (156, 144)),
            ((100, 100), (100, 100)),
            ((147, 153), (153, 147)),
            ((50, 150), (150, 50)),
        ],
        "{}",
        report.table()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_transfers_survive_an_xmpp_server_crash_and_a_node_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(3, dir.path(), |_| {}).await;
    let nodes = apis(&net);
    let token = net.token().to_owned();
    let (a, b, c) = (
        net.address(0).to_owned(),
        net.address(1).to_owned(),
        net.address(2).to_owned(),
    );

    let ab = open(&nodes[0], &nodes[1], &token, &b, 1000, 1000).await;
    let bc = open(&nodes[1], &nodes[2], &token, &c, 1000, 1000).await;

    // A direct transfer.
    let (status, t) = nodes[0]
        .transfer(&token, &b, 10, json!({"is_direct": true, "sync": true}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{t}");
    assert_converged(&nodes[0], &nodes[1], &ab, (990, 1010)).await;

    // Two hundred payments in flight while the XMPP server is killed and restarted: every one
    // completes, none is applied twice.
    const N: usize = 200;
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..N {
        let (api, token, b, done) = (nodes[0].clone(), token.clone(), b.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let r = api
                .transfer(&token, &b, 1, json!({"is_direct": true, "sync": true}))
                .await
                .expect("the REST call");
            done.fetch_add(1, Ordering::SeqCst);
            r
        }));
    }
    let deadline = std::time::Instant::now() + WAIT;
    while done.load(Ordering::SeqCst) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no transfer completed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    net.prosody.kill().expect("kill prosody");
    let done_at_kill = done.load(Ordering::SeqCst);
    eprintln!("{done_at_kill} of {N} transfers done when the XMPP server was killed");
    assert!(
        done_at_kill < N,
        "the server must die with transfers in flight"
    );
    // An outage long enough that messages are sent while the server is gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    net.prosody.restart().expect("restart prosody");
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_converged(
        &nodes[0],
        &nodes[1],
        &ab,
        (990 - N as u128, 1010 + N as u128),
    )
    .await;
    let (_, received) = nodes[1].get("queryreceivedtransfer").await.unwrap();
    assert_eq!(received.as_array().map(Vec::len), Some(N + 1), "{received}");

    // The mediator killed (kill -9) between transfers and restarted on its data dir: its
    // channels are intact, and it mediates the next payment.
    let before = nodes[1].channels().await.unwrap();
    net.restart_node(1).await.expect("node 2 restarts");
    assert_eq!(nodes[1].channels().await.unwrap(), before);
    // Node 1 routes through node 2 once it sees node 2 online again (XMPP presence); until
    // then it refuses with 409 and changes nothing.
    let deadline = std::time::Instant::now() + WAIT;
    let started = std::time::Instant::now();
    let mut attempts = 0;
    let (status, t) = loop {
        attempts += 1;
        let (status, t) = nodes[0]
            .transfer(&token, &c, 7, json!({"sync": true}))
            .await
            .unwrap();
        if status != 409 || std::time::Instant::now() >= deadline {
            break (status, t);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "mediated after restart: {attempts} attempts, {:?}",
        started.elapsed()
    );
    assert_eq!(status, 200, "{t}");
    assert_converged(
        &nodes[0],
        &nodes[1],
        &ab,
        (983 - N as u128, 1017 + N as u128),
    )
    .await;
    assert_converged(&nodes[1], &nodes[2], &bc, (993, 1007)).await;
    let _ = a;
}

/// Opens a channel from `x` to `y` (address `y_addr`) with deposits `dx` and `dy`.
async fn open(x: &ApiClient, y: &ApiClient, token: &str, y_addr: &str, dx: u64, dy: u64) -> String {
    x.open_funded(y, token, y_addr, dx, dy, 100, WAIT)
        .await
        .expect("open")
}

/// Waits until `x` shows `split` and `y` the mirror of it on channel `id`, and checks it.
async fn assert_converged(x: &ApiClient, y: &ApiClient, id: &str, split: (u128, u128)) {
    let on_x = x
        .wait_channel(id, WAIT, |c| balances(c) == Some(split))
        .await
        .unwrap();
    let on_y = y
        .wait_channel(id, WAIT, |c| balances(c) == Some((split.1, split.0)))
        .await
        .unwrap();
    assert_eq!(balances(&on_x), Some(split), "{on_x}");
    assert_eq!(balances(&on_y), Some((split.1, split.0)), "{on_y}");
    assert_eq!(amount(&on_x["locked_amount"]), Some(0), "{on_x}");
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::DirectTransfer(_) => "DirectTransfer",
        Message::MediatedTransfer(_) => "MediatedTransfer",
        Message::SecretRequest(_) => "SecretRequest",
        Message::RevealSecret(_) => "RevealSecret",
        Message::Unlock(_) => "Secret",
        Message::Ack(_) => "Ack",
        _ => "other",
    }
}
