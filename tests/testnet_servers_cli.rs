//! `smartraiden testnet up --servers 2`: a detached local testnet on two federating Prosody
//! servers with key-bound logins over TLS (a private CA it makes), and `testnet down` stopping
//! every process of it.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use smartraiden::testnet::{ApiClient, TestnetInfo};

fn smartraiden(args: &[&str], dir: &Path) -> std::process::Output {
    smartraiden::testnet::harness::run_on_dir(
        Path::new(env!("CARGO_BIN_EXE_smartraiden")),
        args,
        dir,
    )
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn testnet_up_with_two_servers_pays_across_them_and_down_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let up = [
        "testnet",
        "up",
        "--nodes",
        "2",
        "--servers",
        "2",
        "--block-time",
        "0",
        "--api-port",
        &port,
    ];
    assert!(smartraiden(&up, dir.path()).status.success(), "up");
    let info = TestnetInfo::read(dir.path()).unwrap();
    assert_eq!(info.server_pids.len(), 2, "prosody B and the verifier");
    assert!(dir.path().join("ca/ca.pem").is_file());
    let (a, b) = (
        ApiClient::new(info.nodes[0].api_url.clone()),
        ApiClient::new(info.nodes[1].api_url.clone()),
    );
    for n in [&a, &b] {
        let s = n
            .wait_status(Duration::from_secs(30), |s| s["xmpp_connected"] == true)
            .await
            .unwrap();
        assert_eq!(s["xmpp_connected"], true, "{s}");
    }

    // Node 1 (on xmpp-a.test) pays node 2 (on xmpp-b.test).
    let addr_b = info.nodes[1].address.clone();
    let ch = a
        .open_channel(&info.token, &addr_b, 100, 100)
        .await
        .expect("open");
    let id = ch["channel_identifier"].as_str().unwrap().to_owned();
    b.wait_channel(&id, Duration::from_secs(60), |c| {
        c["channel_identifier"].is_string()
    })
    .await
    .unwrap();
    let (code, body) = a
        .transfer(
            &info.token,
            &addr_b,
            5,
            json!({"sync": true, "is_direct": true}),
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let at_b = b
        .wait_channel(&id, Duration::from_secs(60), |c| {
            smartraiden::testnet::client::balances(c) == Some((5, 95))
        })
        .await
        .unwrap();
    assert_eq!(
        smartraiden::testnet::client::balances(&at_b),
        Some((5, 95)),
        "{at_b}"
    );

    assert!(
        smartraiden(&["testnet", "down"], dir.path())
            .status
            .success()
    );
    let mut pids = vec![info.anvil_pid, info.prosody_pid];
    pids.extend(&info.server_pids);
    pids.extend(info.nodes.iter().map(|n| n.pid));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|p| alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = pids.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
}
