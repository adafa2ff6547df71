//! No-internet mode on a real local testnet (anvil, Prosody, node processes on loopback),
//! through the REST API: the switch, the refusals, the LAN peers list, and a node with
//! channels restarting while neither the chain nor the XMPP server answers. (The LAN without
//! a route to either, in network namespaces, is `tests/lan_offline.rs`.)

use std::time::Duration;

use serde_json::{Value, json};
use smartraiden::testnet::client::balances;
use smartraiden::testnet::{Testnet, TestnetOptions};

const WAIT: Duration = Duration::from_secs(60);
const SETTLE_TIMEOUT: u64 = 40;
/// The nodes' `--stale-after-ms`: how long both links must be silent for no-internet mode.
const STALE_MS: u64 = 3_000;

async fn testnet(nodes: usize, dir: &std::path::Path, rpc_gate: bool) -> Testnet {
    let mut options = TestnetOptions::new(nodes, dir, env!("CARGO_BIN_EXE_smartraiden"));
    options.extra_node_args = vec!["--stale-after-ms".into(), STALE_MS.to_string()];
    options.rpc_gate = rpc_gate;
    Testnet::start(options).await.expect("the testnet starts")
}

/// Opens a channel from node `x` to node `y` with deposits `dx` and `dy`; its identifier.
async fn open(net: &Testnet, x: usize, y: usize, dx: u64, dy: u64) -> String {
    net.open_between(x, y, dx, dy, SETTLE_TIMEOUT)
        .await
        .expect("open")
}

async fn transfer(net: &Testnet, from: usize, to: usize, value: u64, direct: bool) -> (u16, Value) {
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

async fn status(net: &Testnet, i: usize) -> Value {
    let (code, body) = net.api(i).get("status").await.unwrap();
    assert_eq!(code, 200, "{body}");
    body
}

/// Waits until node `i`'s status satisfies `pred`.
async fn wait_status(net: &Testnet, i: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let s = net.api(i).wait_status(WAIT, &pred).await.unwrap();
    assert!(pred(&s), "node {} never {what}: {s}", i + 1);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switched_to_no_internet_a_node_refuses_mediated_transfers_and_pays_directly() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(3, dir.path(), false).await;
    let a = open(&net, 0, 1, 100, 50).await;
    let b = open(&net, 1, 2, 100, 0).await;

    let (code, body) = net.api(0).get("switch/true").await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["no_internet"], json!(true), "{body}");
    let s = status(&net, 0).await;
    assert_eq!(s["no_internet"], json!(true), "{s}");
    assert_eq!(s["no_internet_reason"], json!("switched on by the user"));
    let (code, body) = net.api(0).get("switch/maybe").await.unwrap();
    assert_eq!(code, 400, "{body}");

    let before = net.api(0).channels().await.unwrap();
    let (code, body) = transfer(&net, 0, 2, 10, false).await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("no-internet mode"),
        "{body}"
    );
    assert_eq!(
        net.api(0).channels().await.unwrap(),
        before,
        "nothing changed"
    );

    let (code, body) = transfer(&net, 0, 1, 10, true).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = transfer(&net, 1, 0, 4, true).await;
    assert_eq!(code, 200, "{body}");
    let ch = net
        .api(0)
        .wait_channel(&a, WAIT, |c| balances(c) == Some((94, 56)))
        .await
        .unwrap();
    assert_eq!(balances(&ch), Some((94, 56)), "{ch}");
    assert_eq!(ch["no_internet"], json!(true), "{ch}");
    assert!(ch["offline_receive_limit_s"].is_u64(), "{ch}");

    // Node 2 gives back a mediated transfer sent while it is switched off the internet.
    net.api(0).get("switch/false").await.unwrap();
    net.api(1).get("switch/true").await.unwrap();
    let (code, body) = transfer(&net, 0, 2, 10, false).await;
    assert_eq!(
        code, 409,
        "refused by the mediator, without endless retries: {body}"
    );
    let ch = net
        .api(1)
        .channel_with(net.token(), net.address(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ch["locked_amount"], json!(0), "{ch}");
    assert_eq!(ch["channel_identifier"], json!(b));
    wait_status(&net, 0, "emptied its outbox", |s| {
        s["unacknowledged"] == json!(0)
    })
    .await;

    // Bad LAN peer lists are refused whole.
    for bad in [
        json!({"address": net.address(1)}),
        json!([{"address": "0x12", "ip_port": "127.0.0.1:1"}]),
        json!([{"address": net.address(1), "ip_port": "nowhere"}]),
        json!([{"address": net.address(0), "ip_port": "127.0.0.1:1"}]),
    ] {
        let (code, body) = net
            .api(0)
            .call(reqwest::Method::POST, "updatenodes", Some(bad.clone()))
            .await
            .unwrap();
        assert_eq!(code, 400, "{bad} → {body}");
    }
}

/// Tells node `i` where node `j` listens on the LAN.
async fn introduce(net: &Testnet, i: usize, j: usize) {
    let (code, body) = net
        .api(i)
        .call(
            reqwest::Method::POST,
            "updatenodes",
            Some(json!([{"address": net.address(j), "ip_port": net.lan(j)}])),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
}

/// Waits until node `i` holds a proven LAN connection to node `j`.
async fn lan_connected(net: &Testnet, i: usize, j: usize) {
    let want = net.address(j).to_owned();
    wait_status(net, i, "connected on the LAN", move |s| {
        s["lan"]["peers"].as_array().is_some_and(|peers| {
            peers
                .iter()
                .any(|p| p["address"] == json!(want) && p["connected"] == json!(true))
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_channels_restarts_while_neither_the_chain_nor_the_xmpp_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(2, dir.path(), true).await;
    let id = open(&net, 0, 1, 100, 0).await;
    let (code, body) = transfer(&net, 0, 1, 10, true).await;
    assert_eq!(code, 200, "{body}");
    introduce(&net, 0, 1).await;
    lan_connected(&net, 0, 1).await;
    lan_connected(&net, 1, 0).await;

    // Only the LAN is left: payments go on both ways.
    net.rpc_gate.as_ref().unwrap().set_open(false);
    net.prosody.stop().unwrap();
    let (code, body) = transfer(&net, 0, 1, 7, true).await;
    assert_eq!(code, 200, "over the LAN: {body}");
    let (code, body) = transfer(&net, 1, 0, 2, true).await;
    assert_eq!(code, 200, "over the LAN: {body}");

    // Killed and restarted without the internet: it finds its LAN peer again (the list
    // persisted) and keeps paying.
    net.kill_node(0).unwrap();
    net.start_node(0)
        .await
        .expect("starts without the chain and XMPP");
    lan_connected(&net, 0, 1).await;
    let (code, body) = transfer(&net, 0, 1, 1, true).await;
    assert_eq!(code, 200, "over the LAN after a restart: {body}");
    let s = wait_status(&net, 0, "entered no-internet mode", |s| {
        s["no_internet"] == json!(true)
    })
    .await;
    assert_eq!(
        s["no_internet_reason"],
        json!("neither the chain nor the XMPP server is reachable"),
        "{s}"
    );
    assert_eq!(s["xmpp_connected"], json!(false), "{s}");
    let (_, ch) = net.api(0).get(&format!("channels/{id}")).await.unwrap();
    assert_eq!(balances(&ch), Some((84, 16)), "{ch}");
    assert!(ch["last_block_age_s"].is_u64(), "{ch}");
    let (code, body) = transfer(&net, 0, 1, 5, false).await;
    assert_eq!(code, 409, "{body}");

    // Both links back: the mode ends, the queued payment goes out.
    net.rpc_gate.as_ref().unwrap().set_open(true);
    net.prosody.restart().unwrap();
    wait_status(&net, 0, "came back online", |s| {
        s["no_internet"] == json!(false) && s["xmpp_connected"] == json!(true)
    })
    .await;
    let (code, body) = transfer(&net, 0, 1, 5, true).await;
    assert_eq!(code, 200, "{body}");
    let ch = net
        .api(1)
        .wait_channel(&id, WAIT, |c| balances(c) == Some((21, 79)))
        .await
        .unwrap();
    assert_eq!(balances(&ch), Some((21, 79)), "{ch}");
}
