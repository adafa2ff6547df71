//! A local testnet whose nodes log in with key-bound passwords over TLS (private CA), as
//! separate `smartraiden run` processes driven through REST only (SPEC §4).

use std::time::Duration;

use smartraiden::testnet::seed;
use smartraiden::testnet::{ApiClient, Testnet, TestnetOptions};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn nodes_pay_over_tls_with_key_bound_logins_and_report_a_refused_login_in_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = TestnetOptions::new(5, dir.path(), env!("CARGO_BIN_EXE_smartraiden"));
    options.secure_xmpp = true;
    options.extra_node_args = vec!["--api-timeout".into(), "90".into()];
    let mut net = Testnet::start(options).await.expect("the testnet starts");
    let nodes: Vec<ApiClient> = (0..net.len()).map(|i| net.api(i).clone()).collect();
    for i in 0..net.len() {
        let log = net.log_tail(i, 1 << 20);
        assert!(!log.contains("plain TCP"), "node {} on plain TCP", i + 1);
    }

    let report = seed::run_seed_payment(&nodes, net.token())
        .await
        .expect("seed payment over TLS with key-bound logins");
    report.assert_seed_table();

    // The verifier goes down and the server restarts: the nodes' logins are refused, and
    // each says so in its status and log instead of retrying silently.
    net.verifier.as_mut().expect("verifier").kill();
    net.prosody.restart().expect("prosody restarts");
    let status = nodes[0]
        .wait_status(WAIT, |s| s["xmpp_login_error"].is_string())
        .await
        .unwrap();
    let reason = status["xmpp_login_error"].as_str().unwrap();
    assert!(reason.contains("verifier unreachable"), "{status}");
    assert!(
        net.log_tail(0, 1 << 20).contains("rejects login"),
        "{}",
        net.log_tail(0, 4000)
    );

    // Back up: the nodes log in again by themselves and pay.
    net.verifier.as_mut().unwrap().restart().expect("verifier");
    let status = nodes[0]
        .wait_status(WAIT, |s| {
            s["xmpp_login_error"].is_null() && s["xmpp_connected"] == true
        })
        .await
        .unwrap();
    assert!(status["xmpp_login_error"].is_null(), "{status}");
    // Node 1 pays node 5 again through 2 and 4, every hop over the re-established links.
    let target = nodes[4].address().await.unwrap();
    let (code, body) = nodes[0]
        .transfer(
            net.token(),
            &target,
            10,
            serde_json::json!({ "sync": true }),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
}
