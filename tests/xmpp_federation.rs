//! Nodes on two federating Prosody servers (`xmpp-a.test` on 127.0.0.2, `xmpp-b.test` on
//! 127.0.0.3, names from a private hosts file, no DNS) find each other through the Discovery
//! contract and pay each other: separate `smartraiden run` processes with key-bound logins over
//! TLS, driven through REST only (SPEC §4).

use std::time::Duration;

use serde_json::json;
use smartraiden::testnet::seed;
use smartraiden::testnet::{ApiClient, Testnet, TestnetOptions};

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_payment_crosses_two_servers_and_survives_a_server_restart_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = TestnetOptions::new(5, dir.path(), env!("CARGO_BIN_EXE_smartraiden"));
    options.servers = 2;
    options.secure_xmpp = true;
    options.extra_node_args = vec!["--api-timeout".into(), "90".into()];
    let mut net = Testnet::start(options).await.expect("the testnet starts");
    let nodes: Vec<ApiClient> = (0..net.len()).map(|i| net.api(i).clone()).collect();
    assert_eq!(net.prosody.domain(), "xmpp-a.test");
    assert_eq!(net.prosody_b.as_ref().unwrap().domain(), "xmpp-b.test");

    // Nodes 1–3 on A, 4 and 5 on B: the path 1→2→4→5 crosses between 2 and 4.
    let report = seed::run_seed_payment(&nodes, net.token())
        .await
        .expect("seed payment across two servers");
    report.assert_seed_table();
    println!(
        "seed payment across two servers took {:?}\n{}",
        report.elapsed,
        report.table()
    );
    let b_log = net.log_tail(3, 1 << 20);
    assert!(
        b_log.contains("is at xmpp-a.test"),
        "node 4 did not learn A's nodes from Discovery:\n{}",
        net.log_tail(3, 3000)
    );

    // Server B is killed while node 1 pays node 5 ten times (5 each), then restarted: every
    // transfer ends once and both ends of every channel agree.
    let target = nodes[4].address().await.unwrap();
    let token = net.token().to_owned();
    let mut pending = Vec::new();
    for i in 0..10 {
        let (code, body) = nodes[0]
            .transfer(&token, &target, 5, json!({}))
            .await
            .unwrap();
        assert!(code == 200 || code == 202, "{code} {body}");
        pending.push(body["lock_secret_hash"].as_str().unwrap().to_owned());
        if i == 3 {
            net.prosody_b.as_mut().unwrap().kill().unwrap();
        }
    }
    net.prosody_b.as_mut().unwrap().restart().unwrap();
    let mut succeeded = 0u64;
    for hash in &pending {
        let path = format!("transferstatus/{token}/{hash}");
        let deadline = tokio::time::Instant::now() + WAIT;
        let status = loop {
            let (_, s) = nodes[0].get(&path).await.unwrap();
            let st = s["status"].as_str().unwrap_or("").to_owned();
            if st != "pending" || tokio::time::Instant::now() >= deadline {
                break st;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            status == "success" || status == "failed",
            "transfer {hash} still {status}"
        );
        succeeded += u64::from(status == "success");
    }
    // Every channel agrees on both ends, and node 5 got exactly 5 per successful transfer.
    let ids: Vec<String> = report.after.iter().map(|v| v.id.clone()).collect();
    let views = seed::view_channels(&nodes, &ids).await.unwrap();
    assert!(views.iter().all(|v| v.agrees()), "{views:?}");
    assert_eq!(
        views[3].at_b.0,
        150 + 5 * u128::from(succeeded),
        "{views:?}"
    );
    assert!(succeeded > 0, "no transfer succeeded after the restart");
    println!("{succeeded} of 10 transfers succeeded across the restart of server B");

    // A second route 1→2→3→5 (3 on A, 5 on B). Node 4 (on B) goes offline: node 2 hears it
    // through the federated presence and the payment takes the route through 3.
    let five = net.address(4).to_owned();
    let ch = nodes[2]
        .open_channel(&token, &five, 100, 100)
        .await
        .expect("channel 3–5");
    let id35 = ch["channel_identifier"].as_str().unwrap().to_owned();
    let seen = nodes[4]
        .wait_channel(&id35, WAIT, |c| c["channel_identifier"].is_string())
        .await
        .unwrap();
    assert!(seen["channel_identifier"].is_string(), "{seen}");
    let (_, before24) = nodes[1].get(&format!("channels/{}", ids[2])).await.unwrap();
    net.kill_node(3).unwrap();
    // Node 2 hears of it through the servers' presence (from B across s2s to A).
    let at2 = nodes[1]
        .wait_channel(&ids[2], WAIT, |c| c["partner_reachable"] == false)
        .await
        .unwrap();
    assert_eq!(
        at2["partner_reachable"], false,
        "node 2 still sees 4 online: {at2}"
    );
    let (code, body) = nodes[0]
        .transfer(&token, &target, 7, json!({ "sync": true }))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let at5 = nodes[4]
        .wait_channel(&id35, WAIT, |c| {
            smartraiden::testnet::client::balances(c) == Some((7, 93))
        })
        .await
        .unwrap();
    assert_eq!(
        smartraiden::testnet::client::balances(&at5),
        Some((7, 93)),
        "node 5 got the payment over 3–5: {at5}"
    );
    let (_, after24) = nodes[1].get(&format!("channels/{}", ids[2])).await.unwrap();
    assert_eq!(
        smartraiden::testnet::client::balances(&before24),
        smartraiden::testnet::client::balances(&after24),
        "the offline mediator's channel 2–4 was not used"
    );
}
