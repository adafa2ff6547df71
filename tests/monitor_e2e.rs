//! Third-party delegation on a real local testnet (anvil, Prosody, our contracts, node and
//! monitor processes): a node that went offline is defended by `smartraiden monitor`.

use std::time::{Duration, Instant};

use alloy::providers::Provider;
use alloy::sol_types::SolEvent;
use serde_json::{Value, json};
use smartraiden::chain::bindings::TokenNetwork;
use smartraiden::testnet::monitor::{MonitorProcess, monitor_key};
use smartraiden::testnet::{ApiClient, Testnet, TestnetOptions};

const WAIT: Duration = Duration::from_secs(60);
const SETTLE_TIMEOUT: u64 = 40;
const PUNISH_BLOCKS: u64 = 5;

async fn testnet(dir: &std::path::Path) -> Testnet {
    let options = TestnetOptions::new(2, dir, env!("CARGO_BIN_EXE_smartraiden"));
    Testnet::start(options).await.expect("the testnet starts")
}

async fn start_monitor(net: &Testnet, dir: &std::path::Path) -> MonitorProcess {
    MonitorProcess::start_for(
        net,
        env!("CARGO_BIN_EXE_smartraiden").as_ref(),
        &dir.join("monitor"),
        &[],
    )
    .await
    .expect("the monitor starts")
}

async fn open(net: &Testnet, dx: u64, dy: u64) -> String {
    open_between(net, 0, 1, dx, dy).await
}

/// Opens a channel from node `x` to node `y` with deposits `dx` and `dy`; its id.
async fn open_between(net: &Testnet, x: usize, y: usize, dx: u64, dy: u64) -> String {
    net.open_between(x, y, dx, dy, SETTLE_TIMEOUT)
        .await
        .expect("open")
}

async fn pay(net: &Testnet, from: usize, to: usize, amount: u64) {
    let (status, body) = net
        .api(from)
        .transfer(
            net.token(),
            net.address(to),
            amount,
            json!({"is_direct": true, "sync": true}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
}

/// Opens A–B (A 100, B 50), notes both on-chain balances, and A pays B `amounts` directly, one
/// after the other: the channel id and the balances before.
async fn open_and_pay(net: &Testnet, amounts: &[u64]) -> (String, u128, u128) {
    let id = open(net, 100, 50).await;
    let (a0, b0) = (onchain(net, 0).await, onchain(net, 1).await);
    for a in amounts {
        pay(net, 0, 1, *a).await;
    }
    (id, a0, b0)
}

/// B hands its package of channel `id` to the monitor (accepted) and is stopped.
async fn delegate_and_stop_b(net: &mut Testnet, monitor: &ApiClient, id: &str) {
    let (status, body) = submit(monitor, &package(net, id).await).await;
    assert_eq!(status, 201, "{body}");
    net.kill_node(1).unwrap();
}

async fn onchain(net: &Testnet, i: usize) -> u128 {
    net.api(0)
        .onchain_balance(net.token(), net.address(i))
        .await
        .unwrap()
}

/// B's package for the monitor, as B's REST API gives it.
async fn package(net: &Testnet, id: &str) -> Value {
    let monitor = monitor_key().1;
    net.api(1)
        .expect(
            200,
            reqwest::Method::GET,
            &format!("thirdparty/{id}/{monitor:#x}"),
            None,
        )
        .await
        .unwrap()
}

async fn submit(monitor: &ApiClient, package: &Value) -> (u16, Value) {
    monitor
        .call(
            reqwest::Method::POST,
            "monitor/delegations",
            Some(package.clone()),
        )
        .await
        .unwrap()
}

async fn wait_delegation(
    monitor: &ApiClient,
    id: &str,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Value {
    let done = &done;
    poll(what, || async move {
        let (status, v) = monitor
            .get(&format!("monitor/delegations/{id}"))
            .await
            .unwrap();
        if done(status, &v) {
            Ok(v)
        } else {
            Err(format!("{status} {v}"))
        }
    })
    .await
}

/// Asks `probe` every 25 ms until it answers `Ok`; fails after [`WAIT`] with `what` and the
/// last answer.
async fn poll<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => assert!(Instant::now() < deadline, "{what}: {last}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `Ok` when `cond` holds, else `Err` with what was seen.
fn seen<T: std::fmt::Display>(cond: bool, v: T) -> Result<T, String> {
    if cond { Ok(v) } else { Err(v.to_string()) }
}

async fn monitor_transactions(net: &Testnet) -> u64 {
    net.chain
        .provider()
        .get_transaction_count(monitor_key().1)
        .await
        .unwrap()
}

async fn close(net: &Testnet, i: usize, id: &str) {
    net.api(i).force_close(id).await.unwrap();
}

/// Mines past the settle and punish windows; waits until the monitor forgets channel `id`
/// and B's on-chain balance moves from `b0` (the channel settled).
async fn settled_and_forgotten(net: &Testnet, monitor: &ApiClient, id: &str, b0: u128) {
    net.chain
        .mine(SETTLE_TIMEOUT + PUNISH_BLOCKS + 2)
        .await
        .unwrap();
    wait_delegation(monitor, id, "forgotten after settle", |s, _| s == 404).await;
    poll("never settled", || async move {
        let b = onchain(net, 1).await;
        seen(b != b0, b)
    })
    .await;
}

/// The nonce of `participant`'s proof the chain holds.
async fn onchain_nonce(net: &Testnet, participant: usize) -> u64 {
    let tn = TokenNetwork::new(net.deployment.token_network.unwrap(), net.chain.provider());
    let (p, q) = (
        net.address(participant).parse().unwrap(),
        net.address(1 - participant).parse().unwrap(),
    );
    tn.getParticipantInfo(p, q).call().await.unwrap().nonce
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monitor_defends_an_offline_payee_with_its_latest_proof_and_refuses_bad_delegations() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(dir.path()).await;
    let mut monitor = start_monitor(&net, dir.path()).await;
    let (monitor_hex, monitor_address) = monitor_key();

    let (id, a0, b0) = open_and_pay(&net, &[10, 7]).await;
    let older = package(&net, &id).await;
    pay(&net, 0, 1, 5).await;
    let latest = package(&net, &id).await;
    assert_eq!(latest["balance_proof"]["nonce"], json!(3), "{latest}");
    assert_eq!(latest["balance_proof"]["transferred_amount"], json!("22"));

    // Refused, changing nothing: a forged field, another chain, another delegate.
    let mut forged = latest.clone();
    forged["balance_proof"]["transferred_amount"] = json!("50");
    let (status, body) = submit(&monitor.api, &forged).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{body}"
    );
    let mut other_chain = latest.clone();
    other_chain["chain_id"] = json!(1);
    let (status, body) = submit(&monitor.api, &other_chain).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_message"].as_str().unwrap().contains("chain 1"),
        "{body}"
    );
    let (status, body) = submit(&monitor.api, &json!({"chain_id": "nonsense"})).await;
    assert_eq!(status, 400, "{body}");
    let (_, info) = monitor.api.get("monitor/info").await.unwrap();
    assert_eq!(info["delegations"], json!(0), "{info}");
    assert_eq!(info["address"], json!(monitor_address.to_checksum(None)));
    assert_eq!(info["chain"]["failures"], json!(0), "{info}");

    // The latest is taken; the older one is then refused as not newer.
    let (status, body) = submit(&monitor.api, &latest).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["nonce"], json!(3));
    let (status, body) = submit(&monitor.api, &older).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["already_held"], json!(true), "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .unwrap()
            .contains("not newer"),
        "{body}"
    );

    // B goes away; A closes, leaving its own payments to B off the chain.
    net.kill_node(1).unwrap();
    close(&net, 0, &id).await;
    let st = wait_delegation(&monitor.api, &id, "the monitor sees the close", |_, v| {
        v["closed_block"].is_u64()
    })
    .await;
    let closed_block = st["closed_block"].as_u64().unwrap();
    let scheduled = st["update_scheduled_block"].as_u64().unwrap();
    assert_eq!(
        scheduled,
        closed_block + SETTLE_TIMEOUT - SETTLE_TIMEOUT / 2 + 1,
        "{st}"
    );
    assert_eq!(st["closed_by"], json!(net.address(0)), "{st}");

    // First half: the monitor waits (the contract would refuse a delegate's update). Killed
    // and restarted meanwhile, it resumes from its cursor.
    net.chain.mine_to(scheduled - 2).await.unwrap();
    monitor.kill();
    monitor.restart(&monitor_hex).await.unwrap();
    let (_, info) = monitor.api.get("monitor/info").await.unwrap();
    assert_eq!(info["delegations"], json!(1), "{info}");
    wait_until_block(&monitor.api, scheduled - 2).await;
    assert_eq!(
        monitor_transactions(&net).await,
        0,
        "nothing sent in the first half"
    );
    assert_eq!(onchain_nonce(&net, 0).await, 0);

    // One block more: the update goes into the first block the contract allows.
    net.chain.mine(1).await.unwrap();
    let st = wait_delegation(&monitor.api, &id, "the monitor updates", |_, v| {
        v["update"]["state"] == "done"
    })
    .await;
    let tx: alloy::primitives::TxHash = st["update"]["tx"].as_str().unwrap().parse().unwrap();
    let receipt = net
        .chain
        .provider()
        .get_transaction_receipt(tx)
        .await
        .unwrap()
        .expect("mined");
    assert_eq!(receipt.from, monitor_address);
    assert_eq!(receipt.block_number, Some(scheduled));
    let updated: Vec<_> = receipt
        .inner
        .logs()
        .iter()
        .filter_map(|l| TokenNetwork::BalanceProofUpdated::decode_log(&l.inner).ok())
        .collect();
    assert_eq!(updated.len(), 1);
    assert_eq!(
        updated[0].participant,
        net.address(0)
            .parse::<alloy::primitives::Address>()
            .unwrap()
    );
    assert_eq!(
        updated[0].transferred_amount,
        alloy::primitives::U256::from(22)
    );
    assert_eq!(
        onchain_nonce(&net, 0).await,
        3,
        "the chain holds A's latest proof"
    );
    assert_eq!(
        monitor_transactions(&net).await,
        1,
        "exactly one transaction"
    );

    // A settles after the window; the monitor forgets the channel.
    settled_and_forgotten(&net, &monitor.api, &id, b0).await;
    assert_eq!(
        onchain(&net, 0).await,
        a0 + 100 - 22,
        "A gets its deposit less what it paid"
    );
    assert_eq!(
        onchain(&net, 1).await,
        b0 + 50 + 22,
        "B gets its deposit and every payment"
    );
    assert_eq!(monitor_transactions(&net).await, 1);

    // A delegation for the settled channel is refused.
    let (status, body) = submit(&monitor.api, &latest).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["already_held"], json!(false), "{body}");
    assert!(
        body["error_message"].as_str().unwrap().contains("settled"),
        "{body}"
    );
}

async fn wait_until_block(monitor: &ApiClient, block: u64) {
    poll("the monitor stays behind", || async move {
        let (_, info) = monitor.get("monitor/info").await.unwrap();
        seen(info["block"].as_u64().is_some_and(|b| b >= block), info)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payee_back_in_time_updates_itself_and_the_monitor_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(dir.path()).await;
    let monitor = start_monitor(&net, dir.path()).await;
    let (id, a0, b0) = open_and_pay(&net, &[10, 3]).await;
    delegate_and_stop_b(&mut net, &monitor.api, &id).await;
    close(&net, 0, &id).await;
    net.start_node(1).await.unwrap();
    // B answers the close with A's latest proof on its own, in the first half.
    let chain = &net;
    poll("B never updated", || async move {
        let nonce = onchain_nonce(chain, 0).await;
        seen(nonce == 2, nonce)
    })
    .await;
    let st = wait_delegation(&monitor.api, &id, "the monitor sees B's update", |_, v| {
        v["update"]["state"] == "done_by_others"
    })
    .await;
    let scheduled = st["update_scheduled_block"].as_u64().unwrap();
    net.chain.mine_to(scheduled + 2).await.unwrap();
    wait_until_block(&monitor.api, scheduled + 2).await;
    assert_eq!(
        monitor_transactions(&net).await,
        0,
        "the monitor sent nothing"
    );

    settled_and_forgotten(&net, &monitor.api, &id, b0).await;
    assert_eq!(onchain(&net, 0).await, a0 + 100 - 13);
    assert_eq!(onchain(&net, 1).await, b0 + 50 + 13);
    assert_eq!(monitor_transactions(&net).await, 0);
}

/// Waits until B's channel JSON shows `done` for its monitor pushes.
async fn wait_push(net: &Testnet, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    net.api(1)
        .wait_channel(id, WAIT, |c| done(&c["monitor"]))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_run_with_a_monitor_pushes_every_new_proof_and_retries_while_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(dir.path()).await;
    let mut monitor = start_monitor(&net, dir.path()).await;
    let monitor_hex = monitor_key().0;
    net.kill_node(1).unwrap();
    net.start_node_with(1, &[("SMARTRAIDEN_MONITOR", monitor.api.base())])
        .await
        .unwrap();
    let id = open(&net, 100, 50).await;

    pay(&net, 0, 1, 4).await;
    wait_delegation(&monitor.api, &id, "first proof pushed", |s, v| {
        s == 200 && v["nonce"] == json!(1)
    })
    .await;
    pay(&net, 0, 1, 6).await;
    wait_delegation(&monitor.api, &id, "second proof pushed", |_, v| {
        v["nonce"] == json!(2)
    })
    .await;
    let ch = wait_push(&net, &id, "shown as pushed", |m| {
        m["pushed_nonce"] == json!(2)
    })
    .await;
    assert_eq!(ch["monitor"]["pending"], json!(false), "{ch}");

    // The monitor goes down: the push fails, is shown, and is retried until it lands.
    monitor.kill();
    pay(&net, 0, 1, 1).await;
    let ch = wait_push(&net, &id, "the failure shows", |m| {
        m["pending"] == json!(true) && m["failures"].as_u64() > Some(0)
    })
    .await;
    assert!(ch["monitor"]["last_error"].is_string(), "{ch}");
    assert_eq!(ch["monitor"]["pushed_nonce"], json!(2), "{ch}");
    monitor.restart(&monitor_hex).await.unwrap();
    wait_delegation(
        &monitor.api,
        &id,
        "third proof pushed after the restart",
        |_, v| v["nonce"] == json!(3),
    )
    .await;
    let ch = wait_push(&net, &id, "shown as pushed", |m| {
        m["pushed_nonce"] == json!(3)
    })
    .await;
    assert_eq!(ch["monitor"]["last_error"], Value::Null, "{ch}");

    // The monitor lost it (B withdrew it, signed); on its way into no-internet mode B hands
    // every channel over again.
    let bytes = smartraiden::monitor::api::withdraw_bytes(
        smartraiden::primitives::Address(monitor_key().1.into_array()),
        smartraiden::primitives::ChainId(net.deployment.chain_id),
        smartraiden::primitives::ChannelId(id.parse().unwrap()),
        smartraiden::primitives::Nonce(3),
    );
    let signature = node_key(dir.path(), 1).sign_eip191(&bytes);
    monitor
        .api
        .expect(
            200,
            reqwest::Method::POST,
            &format!("monitor/delegations/{id}/withdraw"),
            Some(json!({"signature": signature.to_string()})),
        )
        .await
        .unwrap();
    wait_delegation(&monitor.api, &id, "withdrawn", |s, _| s == 404).await;
    let (status, body) = net.api(1).get("switch/true").await.unwrap();
    assert_eq!(status, 200, "{body}");
    wait_delegation(&monitor.api, &id, "handed over again", |s, v| {
        s == 200 && v["nonce"] == json!(3)
    })
    .await;
}

/// A (node 1) locks 5 for B (node 2) under a secret A keeps to itself; then, with the XMPP
/// server down so that A's off-chain unlock cannot reach B, B registers the secret on chain.
/// B's delegation package for channel `id` once it delegates the unlock of that one lock.
async fn lock_then_register_offline(net: &mut Testnet, id: &str) -> Value {
    let (_, fresh) = net.api(0).get("secret").await.unwrap();
    let secret = fresh["secret"].as_str().unwrap().to_owned();
    let (status, body) = net
        .api(0)
        .transfer(net.token(), net.address(1), 5, json!({"secret": secret}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    net.api(1)
        .wait_channel(id, WAIT, |c| c["partner_locked_amount"] == json!(5))
        .await
        .unwrap();
    net.prosody.stop().unwrap();
    let (status, body) = net
        .api(1)
        .call(
            reqwest::Method::POST,
            "registersecret",
            Some(json!({"secret": secret, "token_address": net.token()})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let net = &*net;
    poll("no unlock delegation", || async move {
        let p = package(net, id).await;
        seen(p["unlocks"].as_array().is_some_and(|u| u.len() == 1), p)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_whose_secret_was_registered_is_unlocked_for_the_offline_payee() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(dir.path()).await;
    let monitor = start_monitor(&net, dir.path()).await;
    let (id, a0, b0) = open_and_pay(&net, &[10]).await;

    // A locks 5 for B; with the XMPP server down A's off-chain unlock cannot reach B, and B
    // registers the secret on chain: its package now delegates the unlock of that lock.
    let pkg = lock_then_register_offline(&mut net, &id).await;
    let (status, body) = submit(&monitor.api, &pkg).await;
    assert_eq!(status, 201, "{body}");
    net.kill_node(1).unwrap();
    net.prosody.restart().unwrap();

    close(&net, 0, &id).await;
    let st = wait_delegation(&monitor.api, &id, "the monitor sees the close", |_, v| {
        v["closed_block"].is_u64()
    })
    .await;
    let scheduled = st["update_scheduled_block"].as_u64().unwrap();
    net.chain.mine_to(scheduled - 1).await.unwrap();
    let st = wait_delegation(&monitor.api, &id, "update, then unlock", |_, v| {
        v["update"]["state"] == "done" && v["unlocks"][0]["state"] == "done"
    })
    .await;
    assert!(
        st["unlocks"][0]["tx"].is_string(),
        "the monitor's own unlock: {st}"
    );
    assert_eq!(
        monitor_transactions(&net).await,
        2,
        "one update, one unlock"
    );

    settled_and_forgotten(&net, &monitor.api, &id, b0).await;
    assert_eq!(
        onchain(&net, 0).await,
        a0 + 100 - 15,
        "A paid 10 and the unlocked 5"
    );
    assert_eq!(onchain(&net, 1).await, b0 + 50 + 15, "B got both");
}

/// Node `i`'s private key, from the keystore the testnet wrote for it.
fn node_key(dir: &std::path::Path, i: usize) -> smartraiden::crypto::PrivateKey {
    let node_dir = dir.join("nodes").join((i + 1).to_string());
    let json = std::fs::read_to_string(node_dir.join("keystore.json")).unwrap();
    let password = std::fs::read_to_string(node_dir.join("password")).unwrap();
    smartraiden::crypto::keystore::decrypt(&json, password.lines().next().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_that_unlocks_a_lock_it_gave_back_is_punished_for_the_offline_node() {
    use smartraiden::chain::bindings::SecretRegistry;
    use smartraiden::primitives::{
        BlockNumber, ChainId, ChannelId, H256, Nonce, Secret, TokenAmount,
    };
    use smartraiden::proofs::{BalanceProofData, ChannelBinding, Lock, SignedData};

    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(dir.path()).await;
    let monitor = start_monitor(&net, dir.path()).await;
    let id = open(&net, 100, 50).await;
    let b0 = onchain(&net, 1).await;
    pay(&net, 0, 1, 10).await;

    // A refuses every lock (no-internet mode): B's mediated payment to A is given back, and B
    // keeps A's signed statement that it gave the lock back.
    let (status, body) = net.api(0).get("switch/true").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let secret = Secret(H256([0x5e; 32]));
    let (status, body) = net
        .api(1)
        .transfer(
            net.token(),
            net.address(0),
            5,
            json!({"secret": secret.0.to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let (chain, channel) = (&net, id.as_str());
    let pkg = poll("no punish evidence", || async move {
        let p = package(chain, channel).await;
        seen(p["punishes"].as_array().is_some_and(|e| e.len() == 1), p)
    })
    .await;
    let (status, body) = submit(&monitor.api, &pkg).await;
    assert_eq!(status, 201, "{body}");

    // Both go away; A's key cheats: it closes with a proof of B's that still holds the lock
    // (as the one B sent before the lock came back) and unlocks that lock on chain.
    let (a_key, b_key) = (node_key(dir.path(), 0), node_key(dir.path(), 1));
    net.kill_node(0).unwrap();
    net.kill_node(1).unwrap();
    let lockhash: H256 = pkg["punishes"][0]["lockhash"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let head = net.chain.block_number().await.unwrap();
    let lock = (0..head + 10_000)
        .map(|e| Lock {
            expiration: BlockNumber(e),
            amount: TokenAmount::from(5u64),
            secrethash: secret.hash(),
        })
        .find(|l| l.lockhash() == lockhash)
        .expect("the disposed lock's expiration");
    let binding = ChannelBinding {
        channel_identifier: ChannelId(id.parse().unwrap()),
        open_block_number: BlockNumber(pkg["open_block_number"].as_u64().unwrap()),
        chain_id: ChainId(net.deployment.chain_id),
    };
    let root = smartraiden::proofs::MerkleTree::new(vec![lockhash]).root();
    let old = BalanceProofData {
        transferred_amount: TokenAmount::ZERO,
        locksroot: root,
        nonce: Nonce(1),
        additional_hash: H256([1; 32]),
        binding,
    };
    let signer = |k: &smartraiden::crypto::PrivateKey| {
        alloy::signers::local::PrivateKeySigner::from_bytes(&k.secret_bytes().into()).unwrap()
    };
    let cheater = net.chain.client(signer(&a_key)).await.unwrap();
    let tn = TokenNetwork::new(net.deployment.token_network.unwrap(), cheater.provider());
    let b: alloy::primitives::Address = net.address(1).parse().unwrap();
    cheater
        .send(tn.closeChannel(
            b,
            alloy::primitives::U256::ZERO,
            root.0.0.into(),
            1,
            old.additional_hash.0.into(),
            old.sign(&b_key).0.to_vec().into(),
        ))
        .await
        .unwrap();
    let registry = SecretRegistry::new(net.deployment.secret_registry, cheater.provider());
    cheater
        .send(registry.registerSecret(secret.0.0.into()))
        .await
        .unwrap();
    cheater
        .send(tn.unlock(
            b,
            alloy::primitives::U256::ZERO,
            alloy::primitives::U256::from(lock.expiration.0),
            alloy::primitives::U256::from(5u64),
            lock.secrethash.0.0.into(),
            Default::default(),
        ))
        .await
        .unwrap();

    // The monitor punishes at once, in B's favour.
    net.chain.mine(1).await.unwrap();
    let st = wait_delegation(&monitor.api, &id, "the monitor punishes", |_, v| {
        v["punish"]["state"] == "done"
    })
    .await;
    assert!(st["punish"]["tx"].is_string(), "{st}");
    let a: alloy::primitives::Address = net.address(0).parse().unwrap();
    assert_eq!(
        tn.getPunishedBeneficiary(a, b).call().await.unwrap(),
        b,
        "B is the beneficiary"
    );

    // Anyone settles after the windows: B takes both deposits.
    net.chain
        .mine(SETTLE_TIMEOUT + PUNISH_BLOCKS + 2)
        .await
        .unwrap();
    cheater
        .send(tn.settleChannel(
            a,
            alloy::primitives::U256::ZERO,
            Default::default(),
            b,
            alloy::primitives::U256::ZERO,
            Default::default(),
        ))
        .await
        .unwrap();
    assert_eq!(
        onchain_via_chain(&net, 1).await,
        b0 + 150,
        "B takes both deposits"
    );
}

async fn onchain_via_chain(net: &Testnet, i: usize) -> u128 {
    let token = smartraiden::chain::bindings::StandardToken::new(
        net.deployment.token,
        net.chain.provider(),
    );
    let who: alloy::primitives::Address = net.address(i).parse().unwrap();
    token.balanceOf(who).call().await.unwrap().to::<u128>()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payee_that_closed_with_the_latest_proof_and_delegated_afterwards_gets_its_lock_unlocked()
{
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(dir.path()).await;
    let monitor = start_monitor(&net, dir.path()).await;
    let (id, a0, b0) = open_and_pay(&net, &[10]).await;

    // A locks 5 for B; with the XMPP server down A's off-chain unlock cannot reach B, and B
    // registers the secret on chain: its package now delegates the unlock of that lock.
    let pkg = lock_then_register_offline(&mut net, &id).await;

    // B closes with A's latest proof (the one the package carries) and vanishes before it
    // unlocks anything; its delegation reaches the monitor only after the close.
    let b_key = node_key(dir.path(), 1);
    net.kill_node(1).unwrap();
    net.prosody.restart().unwrap();
    let parsed: smartraiden::delegation::DelegationPackage =
        serde_json::from_value(pkg.clone()).unwrap();
    let proof = parsed.balance_proof.unwrap();
    let b_chain = net
        .chain
        .client(
            alloy::signers::local::PrivateKeySigner::from_bytes(&b_key.secret_bytes().into())
                .unwrap(),
        )
        .await
        .unwrap();
    let tn = TokenNetwork::new(net.deployment.token_network.unwrap(), b_chain.provider());
    let a: alloy::primitives::Address = net.address(0).parse().unwrap();
    b_chain
        .send(tn.closeChannel(
            a,
            proof.transferred_amount.0,
            proof.locksroot.0.0.into(),
            proof.nonce.0,
            proof.additional_hash.0.into(),
            proof.partner_signature.0.to_vec().into(),
        ))
        .await
        .unwrap();
    assert_eq!(onchain_nonce(&net, 0).await, proof.nonce.0);
    let (status, body) = submit(&monitor.api, &pkg).await;
    assert_eq!(
        status, 201,
        "the chain holds this very proof, its lock is still to unlock: {body}"
    );
    net.chain.mine(1).await.unwrap();
    let st = wait_delegation(&monitor.api, &id, "unlock in the first half", |_, v| {
        v["unlocks"][0]["state"] == "done"
    })
    .await;
    assert!(
        st["unlocks"][0]["tx"].is_string(),
        "the monitor's own: {st}"
    );
    assert!(st["update"]["tx"].is_null(), "no update needed: {st}");
    assert_eq!(monitor_transactions(&net).await, 1, "only the unlock");

    settled_and_forgotten(&net, &monitor.api, &id, b0).await;
    assert_eq!(onchain(&net, 0).await, a0 + 100 - 15, "A paid 10 and 5");
    assert_eq!(onchain(&net, 1).await, b0 + 50 + 15, "B got both");
}

/// Node `from` pays node `to` through a mediator (returns at once); the transfer's id.
async fn pay_mediated(net: &Testnet, from: usize, to: usize, amount: u64) -> String {
    let (status, body) = net
        .api(from)
        .transfer(net.token(), net.address(to), amount, json!({}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body["lock_secret_hash"].as_str().unwrap().to_owned()
}

/// The end of node 0's transfer `id`; with `mine`, a block at every look (every 25 ms).
async fn transfer_end(net: &Testnet, id: &str, mine: bool) -> String {
    poll(&format!("transfer {id} ends"), || async move {
        if mine {
            net.chain.mine(1).await.unwrap();
        }
        let (_, t) = net
            .api(0)
            .get(&format!("transferstatus/{}/{id}", net.token()))
            .await
            .unwrap();
        match t["status"].as_str() {
            Some(s @ ("success" | "failed" | "canceled")) => Ok(s.to_owned()),
            _ => Err(t.to_string()),
        }
    })
    .await
}

/// A (node 0) pays C (node 2) through B (node 1), which runs with a monitor: B forwards the
/// lock only once the monitor holds A's proof that carries it. While the monitor is down the
/// payment waits at B; when it stays down too long, B gives the lock back and nothing moves.
#[tokio::test(flavor = "multi_thread")]
async fn a_mediator_run_with_a_monitor_forwards_a_lock_only_once_the_monitor_holds_the_payers_proof()
 {
    let dir = tempfile::tempdir().unwrap();
    let options = TestnetOptions::new(3, dir.path(), env!("CARGO_BIN_EXE_smartraiden"));
    let mut net = Testnet::start(options).await.expect("the testnet starts");
    let mut monitor = start_monitor(&net, dir.path()).await;
    net.kill_node(1).unwrap();
    net.start_node_with(1, &[("SMARTRAIDEN_MONITOR", monitor.api.base())])
        .await
        .unwrap();
    let ab = open_between(&net, 0, 1, 100, 0).await;
    let bc = open_between(&net, 1, 2, 100, 0).await;
    let preview = format!("paths/{}/{}?amount=5", net.token(), net.address(2));
    poll("A sees the route through B", || async {
        let (status, v) = net.api(0).get(&preview).await.unwrap();
        seen(status == 200, v)
    })
    .await;

    // The monitor is down: the lock reaches B and waits there; C holds nothing.
    monitor.kill();
    let id = pay_mediated(&net, 0, 2, 5).await;
    let ch = wait_push(&net, &ab, "the lock waits for the monitor", |m| {
        m["forwards_waiting"] == json!(1) && m["failures"].as_u64() > Some(1)
    })
    .await;
    assert_eq!(ch["partner_locked_amount"], json!(5), "{ch}");
    let (_, at_c) = net.api(2).get(&format!("channels/{bc}")).await.unwrap();
    assert_eq!(
        at_c["partner_locked_amount"],
        json!(0),
        "forwarded early: {at_c}"
    );
    let (_, t) = net
        .api(0)
        .get(&format!("transferstatus/{}/{id}", net.token()))
        .await
        .unwrap();
    assert_eq!(t["status"], json!("pending"), "{t}");

    // Back: it takes A's proof with the lock, and only then does B forward.
    monitor.restart(&monitor_key().0).await.unwrap();
    assert_eq!(transfer_end(&net, &id, false).await, "success");
    let held = wait_delegation(&monitor.api, &ab, "A's latest proof held", |s, v| {
        s == 200 && v["nonce"] == json!(2)
    })
    .await;
    assert_eq!(
        held["delegator"].as_str().map(str::to_lowercase),
        Some(net.address(1).to_lowercase()),
        "{held}"
    );
    net.api(2)
        .wait_channel(&bc, WAIT, |c| c["balance"] == json!(5))
        .await
        .unwrap();

    // Down again, for longer than the lock allows: B gives it back, A's payment fails, and
    // no token moved on either channel.
    monitor.kill();
    let id = pay_mediated(&net, 0, 2, 7).await;
    wait_push(&net, &ab, "the second lock waits", |m| {
        m["forwards_waiting"] == json!(1)
    })
    .await;
    assert_eq!(transfer_end(&net, &id, true).await, "failed");
    let ch = wait_push(&net, &ab, "nothing waits", |m| {
        m["forwards_waiting"] == json!(0)
    })
    .await;
    assert_eq!(
        (
            &ch["balance"],
            &ch["partner_balance"],
            &ch["partner_locked_amount"]
        ),
        (&json!(5), &json!(95), &json!(0)),
        "{ch}"
    );
    let (_, at_c) = net.api(2).get(&format!("channels/{bc}")).await.unwrap();
    assert_eq!(
        (&at_c["balance"], &at_c["partner_locked_amount"]),
        (&json!(5), &json!(0)),
        "{at_c}"
    );
}

/// A pays B 5 under a lock. B learns the secret, but A dies right after committing its
/// off-chain unlock, before sending it (fault point `send-before:Secret`), and nobody registers
/// the secret. B delegates (the secret given along) and goes offline; A comes back and closes.
/// The monitor registers the secret itself while the lock can still count it, updates with A's
/// proof holding the lock, unlocks it, and B is paid the 5 on settle.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_nobody_registered_is_registered_by_the_monitor_and_its_lock_unlocked() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(dir.path()).await;
    let monitor = start_monitor(&net, dir.path()).await;
    let (id, a0, b0) = open_and_pay(&net, &[10]).await;

    net.kill_node(0).unwrap();
    net.start_node_with(0, &[("SMARTRAIDEN_CRASH_AT", "send-before:Secret")])
        .await
        .unwrap();
    let (status, body) = net
        .api(0)
        .transfer(net.token(), net.address(1), 5, json!({}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        net.wait_exit(0, WAIT).await.is_some(),
        "A dies at the fault point"
    );
    let net_ref = &net;
    let id_ref = &id;
    let pkg = poll(
        "B's package delegates the unlock with the secret",
        || async move {
            let p = package(net_ref, id_ref).await;
            let ok = p["unlocks"]
                .as_array()
                .is_some_and(|u| u.len() == 1 && u[0]["secret"].is_string());
            seen(ok, p)
        },
    )
    .await;
    let (status, body) = submit(&monitor.api, &pkg).await;
    assert_eq!(status, 201, "{body}");
    net.kill_node(1).unwrap();

    // A is back; its unlock never reached B. It closes.
    net.start_node(0).await.unwrap();
    close(&net, 0, &id).await;
    let st = wait_delegation(
        &monitor.api,
        &id,
        "the monitor registers the secret",
        |_, v| v["registrations"][0]["state"] == "done",
    )
    .await;
    assert!(
        st["registrations"][0]["tx"].is_string(),
        "the monitor's own registration: {st}"
    );
    let scheduled = st["update_scheduled_block"].as_u64().unwrap();
    net.chain.mine_to(scheduled - 1).await.unwrap();
    let st = wait_delegation(&monitor.api, &id, "update, then unlock", |_, v| {
        v["update"]["state"] == "done" && v["unlocks"][0]["state"] == "done"
    })
    .await;
    assert!(st["unlocks"][0]["tx"].is_string(), "{st}");
    assert_eq!(
        monitor_transactions(&net).await,
        3,
        "one registration, one update, one unlock"
    );

    settled_and_forgotten(&net, &monitor.api, &id, b0).await;
    assert_eq!(onchain(&net, 0).await, a0 + 100 - 15, "A paid 10 and the 5");
    assert_eq!(onchain(&net, 1).await, b0 + 50 + 15, "B got both");
}

/// B delegates and goes offline; A closes and goes away too, so nobody settles. The monitor
/// updates with A's latest proof and, once settling is allowed and a grace has passed, settles
/// the channel itself: both payouts match that proof to the token.
#[tokio::test(flavor = "multi_thread")]
async fn a_channel_both_participants_left_is_settled_by_the_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(dir.path()).await;
    let monitor = start_monitor(&net, dir.path()).await;
    let (id, a0, b0) = open_and_pay(&net, &[10, 7]).await;
    delegate_and_stop_b(&mut net, &monitor.api, &id).await;
    close(&net, 0, &id).await;
    let st = wait_delegation(&monitor.api, &id, "the monitor sees the close", |_, v| {
        v["closed_block"].is_u64()
    })
    .await;
    net.kill_node(0).unwrap();
    let scheduled = st["update_scheduled_block"].as_u64().unwrap();
    net.chain.mine_to(scheduled - 1).await.unwrap();
    wait_delegation(&monitor.api, &id, "updated", |_, v| {
        v["update"]["state"] == "done"
    })
    .await;
    // Settling is allowed after the punish window; the monitor leaves the participants a grace
    // of 20 blocks first, and acts in the block before the first it may use.
    let settle_from = st["settle_from_block"].as_u64().unwrap();
    assert_eq!(
        settle_from,
        st["settle_block"].as_u64().unwrap() + PUNISH_BLOCKS + 1
    );
    net.chain.mine_to(settle_from + 20 - 2).await.unwrap();
    let st = wait_delegation(&monitor.api, &id, "status", |s, _| s == 200).await;
    assert_eq!(
        st["settle"]["state"], "waiting",
        "not before the grace: {st}"
    );
    net.chain.mine(1).await.unwrap();
    wait_delegation(&monitor.api, &id, "settled and forgotten", |s, _| s == 404).await;
    assert_eq!(
        monitor_transactions(&net).await,
        2,
        "one update, one settle"
    );
    assert_eq!(onchain_via_chain(&net, 0).await, a0 + 100 - 17, "A paid 17");
    assert_eq!(onchain_via_chain(&net, 1).await, b0 + 50 + 17, "B got 17");
}
