//! Real `smartraiden run` processes with a real Prosody and a real anvil, driven through the
//! REST API only: open a channel with a deposit, deposit on the other side, pay directly with
//! `"sync": true`, and read the same balances on both ends; bad requests get SPEC §6 errors
//! and change nothing.

use alloy::primitives::U256;
use serde_json::{Value, json};
use smartraiden::chain::bindings::StandardToken;
use smartraiden::chain::deploy::deploy;
use smartraiden::chain::{DeployOptions, DevChain};
use smartraiden::crypto::PrivateKey;
use smartraiden::transport::xmpp::ProsodyServer;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct NodeProcess {
    child: Child,
    api: String,
    address: String,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    smartraiden::transport::ports::free_loopback_port().unwrap()
}

async fn start_node(
    dir: &std::path::Path,
    key_hex: &str,
    address: &str,
    chain: &DevChain,
    prosody: &ProsodyServer,
) -> NodeProcess {
    let port = free_port();
    let datadir = dir.join(format!("node-{address}"));
    let password_file = dir.join(format!("xmpp-{address}"));
    std::fs::write(&password_file, "secret\n").unwrap();
    prosody
        .register(&address[2..].to_lowercase(), "secret")
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_smartraiden"))
        .args(["run", "--datadir"])
        .arg(&datadir)
        .args(["--eth-rpc", chain.url(), "--deployment"])
        .arg(dir.join("deployment.json"))
        .args([
            "--xmpp-server",
            &prosody.addr().to_string(),
            "--xmpp-domain",
            prosody.domain(),
        ])
        .arg("--xmpp-password-file")
        .arg(&password_file)
        .arg("--xmpp-plaintext")
        .args([
            "--api-address",
            &format!("127.0.0.1:{port}"),
            "--confirmations",
            "0",
            "--api-timeout",
            "60",
        ])
        .env("SMARTRAIDEN_PRIVATE_KEY", key_hex)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the smartraiden binary starts");
    let node = NodeProcess {
        child,
        api: format!("http://127.0.0.1:{port}"),
        address: address.to_owned(),
    };
    // Ready when the REST API answers with our address.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/api/1/address", node.api)).await {
            let v: Value = r.json().await.unwrap();
            assert_eq!(
                v["our_address"].as_str().unwrap().to_lowercase(),
                address.to_lowercase()
            );
            return node;
        }
        assert!(Instant::now() < deadline, "node {address} did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request sent");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The channel as `api` reports it once it shows `balance`/`partner_balance` (or after 30 s).
async fn converged(api: &str, id: &str, balance: u64, partner_balance: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, ch) = call(
            reqwest::Method::GET,
            format!("{api}/api/1/channels/{id}"),
            None,
        )
        .await;
        let done = ch["balance"].as_u64() == Some(balance)
            && ch["partner_balance"].as_u64() == Some(partner_balance);
        if done || Instant::now() > deadline {
            return ch;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_node_processes_open_a_channel_and_pay_through_the_rest_api() {
    let chain = DevChain::start().await.expect("anvil starts");
    let deployer = chain.client(DevChain::key(0)).await.unwrap();
    let deployment = deploy(&deployer, &DeployOptions::default())
        .await
        .expect("deploy");
    let dir = tempfile::tempdir().unwrap();
    deployment
        .write(&dir.path().join("deployment.json"))
        .unwrap();
    let prosody = ProsodyServer::start("localhost").expect("prosody starts");
    let token = format!("{:#x}", deployment.token);

    let mut nodes = Vec::new();
    for i in 1..=2 {
        let signer = DevChain::key(i);
        let key = PrivateKey::from_bytes(signer.to_bytes().0).unwrap();
        chain
            .set_balance(signer.address(), U256::from(10u64).pow(U256::from(21u64)))
            .await
            .unwrap();
        let t = StandardToken::new(deployment.token, deployer.provider());
        deployer
            .send(t.transfer(signer.address(), U256::from(1_000_000u64)))
            .await
            .unwrap();
        let hex_key = format!("0x{}", hex::encode(key.secret_bytes()));
        nodes.push(
            start_node(
                dir.path(),
                &hex_key,
                &key.address().to_checksum(),
                &chain,
                &prosody,
            )
            .await,
        );
    }
    let (a, b) = (&nodes[0], &nodes[1]);

    // Open with a deposit on A's side, then B deposits.
    let (status, ch) = call(
        reqwest::Method::PUT,
        format!("{}/api/1/channels", a.api),
        Some(json!({"partner_address": b.address, "token_address": token, "balance": 100, "settle_timeout": 50})),
    )
    .await;
    assert_eq!(status, 201, "{ch}");
    assert_eq!(
        (
            ch["balance"].as_u64(),
            ch["partner_balance"].as_u64(),
            ch["state"].as_str()
        ),
        (Some(100), Some(0), Some("opened"))
    );
    let id = ch["channel_identifier"].as_str().unwrap().to_owned();
    // B learns of the channel from the chain, a moment after A.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, seen) = call(
            reqwest::Method::GET,
            format!("{}/api/1/channels/{id}", b.api),
            None,
        )
        .await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "B never saw the channel: {seen}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, ch) = call(
        reqwest::Method::PATCH,
        format!("{}/api/1/channels/{id}", b.api),
        Some(json!({"balance": "50"})),
    )
    .await;
    assert_eq!(status, 200, "{ch}");
    assert_eq!(
        (ch["balance"].as_u64(), ch["partner_balance"].as_u64()),
        (Some(50), Some(100))
    );

    // A pays B 30 directly and waits for success.
    let (status, t) = call(
        reqwest::Method::POST,
        format!("{}/api/1/transfers/{token}/{}", a.api, b.address),
        Some(json!({"amount": 30, "is_direct": true, "sync": true})),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let (_, status_of) = call(
        reqwest::Method::GET,
        format!(
            "{}/api/1/transferstatus/{token}/{}",
            a.api,
            t["lock_secret_hash"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(status_of["status"], "success", "{status_of}");

    // Both ends converge on the same channel (each follows the chain on its own).
    let on_a = converged(&a.api, &id, 70, 80).await;
    let on_b = converged(&b.api, &id, 80, 70).await;
    assert_eq!(
        (on_a["balance"].as_u64(), on_a["partner_balance"].as_u64()),
        (Some(70), Some(80)),
        "{on_a}"
    );
    assert_eq!(
        (on_b["balance"].as_u64(), on_b["partner_balance"].as_u64()),
        (Some(80), Some(70)),
        "{on_b}"
    );

    // More than A has: 409 and nothing changes; a malformed address: 400.
    let (status, err) = call(
        reqwest::Method::POST,
        format!("{}/api/1/transfers/{token}/{}", a.api, b.address),
        Some(json!({"amount": 71, "is_direct": true})),
    )
    .await;
    assert_eq!(
        (status, err["error_code"].as_u64()),
        (409, Some(409)),
        "{err}"
    );
    let (status, err) = call(
        reqwest::Method::POST,
        format!("{}/api/1/transfers/{token}/0x1234", a.api),
        Some(json!({"amount": 1})),
    )
    .await;
    assert_eq!(
        (status, err["error_code"].as_u64()),
        (400, Some(400)),
        "{err}"
    );
    let (_, again) = call(
        reqwest::Method::GET,
        format!("{}/api/1/channels/{id}", a.api),
        None,
    )
    .await;
    assert_eq!(again["balance"].as_u64(), Some(70));

    // The on-chain token balance through the debug endpoint.
    let (status, bal) = call(
        reqwest::Method::GET,
        format!("{}/api/1/debug/balance/{token}/{}", a.api, a.address),
        None,
    )
    .await;
    assert_eq!(
        (status, bal["balance"].as_u64()),
        (200, Some(1_000_000 - 100)),
        "{bal}"
    );
}
