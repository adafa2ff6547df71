//! The channel lifecycle on a real local testnet (anvil mining on demand, Prosody, node
//! processes), through the REST API only, checking on-chain token balances to the token after
//! every settle: close by either side and settle, a close with an outdated proof, withdraw,
//! cooperative settle, re-opening, a deposit top-up while the partner pays, a direct transfer
//! beside a pending lock, a user-held secret, a mediator whose payer goes silent, and the
//! punishment of a partner that unlocks on chain a lock it gave back.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smartraiden::testnet::client::{amount, balances};
use smartraiden::testnet::{ApiClient, Testnet, TestnetOptions};

const WAIT: Duration = Duration::from_secs(60);
const SETTLE_TIMEOUT: u64 = 40;
/// The punish window of the deployed token network (`DeployOptions::default`).
const PUNISH_BLOCKS: u64 = 5;

async fn testnet(nodes: usize, dir: &std::path::Path) -> Testnet {
    let mut options = TestnetOptions::new(nodes, dir, env!("CARGO_BIN_EXE_smartraiden"));
    options.extra_node_args = vec!["--api-timeout".into(), "90".into()];
    Testnet::start(options).await.expect("the testnet starts")
}

/// Opens a channel from node `x` to node `y` with deposits `dx` and `dy`; its identifier.
async fn open(net: &Testnet, x: usize, y: usize, dx: u64, dy: u64) -> String {
    net.open_between(x, y, dx, dy, SETTLE_TIMEOUT)
        .await
        .expect("open")
}

async fn pay(net: &Testnet, from: usize, to: usize, value: u64, extra: Value) -> Value {
    let mut body = json!({"sync": true});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, t) = net
        .api(from)
        .transfer(net.token(), net.address(to), value, body)
        .await
        .unwrap();
    assert_eq!(status, 200, "{t}");
    t
}

/// Waits until node `x` shows `split` on channel `id` and its partner `y` the mirror.
async fn converged(net: &Testnet, x: usize, y: usize, id: &str, split: (u128, u128)) {
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
    }
}

async fn onchain(net: &Testnet, i: usize) -> u128 {
    net.api(i)
        .onchain_balance(net.token(), net.address(i))
        .await
        .expect("on-chain balance")
}

/// Transactions node `i`'s account has had mined.
async fn sent_transactions(net: &Testnet, i: usize) -> u64 {
    use alloy::providers::Provider;
    let who: alloy::primitives::Address = net.address(i).parse().unwrap();
    net.chain
        .provider()
        .get_transaction_count(who)
        .await
        .unwrap()
}

/// Waits until `done` holds for `GET /channels/{id}` on `api`; panics with the last answer.
async fn wait_state(
    api: &ApiClient,
    id: &str,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, ch) = api.get(&format!("channels/{id}")).await.unwrap();
        if done(status, &ch) {
            return ch;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} still answers {status} {ch}",
            api.base()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Mines past the settle window and waits until both nodes forgot the channel (auto-settle).
async fn settle_window_passes(net: &Testnet, x: usize, y: usize, id: &str) {
    net.chain
        .mine(SETTLE_TIMEOUT + PUNISH_BLOCKS + 2)
        .await
        .unwrap();
    for node in [x, y] {
        wait_state(net.api(node), id, "settled", |status, _| status == 404).await;
        let listed = net.api(node).channels().await.unwrap();
        assert!(
            listed.iter().all(|c| c["channel_identifier"] != json!(id)),
            "a settled channel is still listed: {listed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn close_by_either_side_then_settle_pays_each_side_its_off_chain_balance_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(2, dir.path()).await;
    for (round, closer) in [0usize, 1].into_iter().enumerate() {
        let id = open(&net, 0, 1, 100, 100).await;
        let (a0, b0) = (onchain(&net, 0).await, onchain(&net, 1).await);
        pay(&net, 0, 1, 30, json!({"is_direct": true})).await;
        pay(&net, 1, 0, 10, json!({"is_direct": true})).await;
        pay(&net, 0, 1, 5, json!({})).await;
        converged(&net, 0, 1, &id, (75, 125)).await;

        // Unilateral close; the other side sees it and submits its partner's proof.
        net.api(closer).force_close(&id).await.unwrap();
        let other = 1 - closer;
        wait_state(net.api(other), &id, "partner sees the close", |_, c| {
            c["state"] == "closed"
        })
        .await;
        // A closed channel takes no payments.
        let (status, _) = net
            .api(0)
            .transfer(net.token(), net.address(1), 1, json!({"is_direct": true}))
            .await
            .unwrap();
        assert_eq!(
            status, 409,
            "round {round}: a payment over a closed channel"
        );

        settle_window_passes(&net, 0, 1, &id).await;
        assert_eq!(
            onchain(&net, 0).await,
            a0 + 75,
            "round {round}: node 1 paid out"
        );
        assert_eq!(
            onchain(&net, 1).await,
            b0 + 125,
            "round {round}: node 2 paid out"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn withdraw_keeps_the_channel_usable_and_cooperative_settle_pays_out_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(2, dir.path()).await;
    let id = open(&net, 0, 1, 100, 100).await;
    let (a0, b0) = (onchain(&net, 0).await, onchain(&net, 1).await);
    pay(&net, 0, 1, 20, json!({"is_direct": true})).await;
    converged(&net, 0, 1, &id, (80, 120)).await;

    // Node 1 takes 30 out; the channel stays open with the rest.
    let (status, ch) = net
        .api(0)
        .call(
            reqwest::Method::PUT,
            &format!("withdraw/{id}"),
            Some(json!({"amount": 30})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{ch}");
    assert_eq!(onchain(&net, 0).await, a0 + 30);
    converged(&net, 0, 1, &id, (50, 120)).await;
    // More than the balance: refused, nothing changes.
    let (status, err) = net
        .api(0)
        .call(
            reqwest::Method::PUT,
            &format!("withdraw/{id}"),
            Some(json!({"amount": 51})),
        )
        .await
        .unwrap();
    assert_eq!(status, 409, "{err}");
    converged(&net, 0, 1, &id, (50, 120)).await;

    // Payments both ways after the withdraw (the old proofs are void, new ones count).
    pay(&net, 1, 0, 15, json!({"is_direct": true})).await;
    pay(&net, 0, 1, 5, json!({"is_direct": true})).await;
    converged(&net, 0, 1, &id, (60, 110)).await;

    // Cooperative settle: both paid out at once, no settle window.
    let (status, v) = net
        .api(1)
        .call(
            reqwest::Method::PATCH,
            &format!("channels/{id}"),
            Some(json!({"state": "closed"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(onchain(&net, 0).await, a0 + 30 + 60);
    assert_eq!(onchain(&net, 1).await, b0 + 110);
    wait_state(net.api(0), &id, "node 1 forgets the channel", |s, _| {
        s == 404
    })
    .await;

    // And again with the same partner.
    let id2 = open(&net, 1, 0, 40, 0).await;
    pay(&net, 1, 0, 40, json!({"is_direct": true})).await;
    converged(&net, 1, 0, &id2, (0, 40)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_secret_holds_the_lock_until_allowed_and_a_direct_transfer_passes_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(3, dir.path()).await;
    let ab = open(&net, 0, 1, 100, 100).await;
    let bc = open(&net, 1, 2, 100, 100).await;

    let (_, fresh) = net.api(0).get("secret").await.unwrap();
    let secret = fresh["secret"].as_str().unwrap().to_owned();
    let hash = fresh["lock_secret_hash"].as_str().unwrap().to_owned();
    let (status, t) = net
        .api(0)
        .transfer(net.token(), net.address(2), 30, json!({"secret": secret}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["lock_secret_hash"], json!(hash));

    // The lock reaches the target and stays there.
    wait_state(net.api(2), &bc, "target holds the lock", |_, c| {
        amount(&c["partner_locked_amount"]) == Some(30)
    })
    .await;
    let ch = net.api(0).get(&format!("channels/{ab}")).await.unwrap().1;
    assert_eq!(amount(&ch["locked_amount"]), Some(30), "{ch}");

    // A direct transfer on the channel that carries the pending lock.
    pay(&net, 0, 1, 7, json!({"is_direct": true})).await;
    let ch = net
        .api(1)
        .wait_channel(&ab, WAIT, |c| amount(&c["partner_balance"]) == Some(93))
        .await
        .unwrap();
    assert_eq!(
        (
            amount(&ch["partner_balance"]),
            amount(&ch["partner_locked_amount"])
        ),
        (Some(93), Some(30)),
        "{ch}"
    );
    let (_, status_of) = net
        .api(0)
        .get(&format!("transferstatus/{}/{hash}", net.token()))
        .await
        .unwrap();
    assert_ne!(status_of["status"], "success", "{status_of}");

    // Allowed: the secret goes out and the transfer completes.
    net.api(0)
        .expect(
            200,
            reqwest::Method::POST,
            "transfers/allowrevealsecret",
            Some(json!({"lock_secret_hash": hash, "token_address": net.token()})),
        )
        .await
        .unwrap();
    converged(&net, 0, 1, &ab, (63, 137)).await;
    converged(&net, 1, 2, &bc, (70, 130)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mediator_whose_payer_goes_silent_claims_the_lock_on_chain_and_is_paid_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(3, dir.path()).await;
    let ab = open(&net, 0, 1, 100, 100).await;
    let bc = open(&net, 1, 2, 100, 100).await;
    let b0 = onchain(&net, 1).await;

    // Node 1 pays node 3 with a secret it holds back, then dies without a word.
    let (_, fresh) = net.api(0).get("secret").await.unwrap();
    let secret = fresh["secret"].as_str().unwrap().to_owned();
    let (status, t) = net
        .api(0)
        .transfer(net.token(), net.address(2), 30, json!({"secret": secret}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{t}");
    wait_state(net.api(2), &bc, "target holds the lock", |_, c| {
        amount(&c["partner_locked_amount"]) == Some(30)
    })
    .await;
    net.kill_node(0).unwrap();

    // The secret becomes public on chain (the target registers it).
    net.api(2)
        .expect(
            200,
            reqwest::Method::POST,
            "registersecret",
            Some(json!({"secret": secret})),
        )
        .await
        .unwrap();
    // Node 2 pays node 3 off chain once the secret is public.
    converged(&net, 1, 2, &bc, (70, 130)).await;
    // A secret public on chain is refused for a new transfer: anyone could claim its lock.
    let (status, refused) = net
        .api(2)
        .transfer(net.token(), net.address(1), 5, json!({"secret": secret}))
        .await
        .unwrap();
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("registered on chain")),
        "{refused}"
    );

    // Node 1 stays silent past the lock's expiry: node 2 closes, unlocks on chain, settles.
    let deadline = Instant::now() + WAIT;
    loop {
        net.chain.mine(10).await.unwrap();
        let (status, ch) = net.api(1).get(&format!("channels/{ab}")).await.unwrap();
        if status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 never settled with its silent payer: {ch}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        onchain(&net, 1).await,
        b0 + 100 + 30,
        "the mediator gets its deposit and the lock"
    );
}

/// The transfer `id` as node `i` reports it once it has ended.
async fn ended(net: &Testnet, i: usize, id: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, t) = net
            .api(i)
            .get(&format!("transferstatus/{}/{id}", net.token()))
            .await
            .unwrap();
        if let (200, Some(s @ ("success" | "failed" | "canceled"))) = (status, t["status"].as_str())
        {
            return s.to_owned();
        }
        assert!(Instant::now() < deadline, "transfer {id} never ended: {t}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_close_with_an_outdated_proof_settles_what_each_side_holds_signed() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(2, dir.path()).await;
    let id = open(&net, 0, 1, 100, 100).await;
    let (a0, b0) = (onchain(&net, 0).await, onchain(&net, 1).await);
    pay(&net, 1, 0, 10, json!({"is_direct": true})).await;
    converged(&net, 0, 1, &id, (110, 90)).await;

    // Node 2 signs and commits a newer proof paying 20 more, and dies before sending it.
    net.kill_node(1).unwrap();
    net.start_node_with(1, &[("SMARTRAIDEN_CRASH_AT", "send-before:DirectTransfer")])
        .await
        .unwrap();
    let answer = net
        .api(1)
        .transfer(net.token(), net.address(0), 20, json!({"is_direct": true}))
        .await;
    assert!(
        net.wait_exit(1, WAIT).await.is_some(),
        "node 2 did not stop at the fault point (answer {answer:?})"
    );

    // Node 1 closes with the proof it holds (nonce 1, 10 paid); node 2 comes back after.
    net.api(0).force_close(&id).await.unwrap();
    net.start_node(1).await.unwrap();
    let (_, sent) = net.api(1).get("querysenttransfer").await.unwrap();
    let late = sent
        .as_array()
        .and_then(|l| l.last())
        .expect("node 2 kept its transfer")["lock_secret_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_state(net.api(1), &id, "node 2 sees the close", |_, c| {
        c["state"] == "closed"
    })
    .await;

    settle_window_passes(&net, 0, 1, &id).await;
    // Node 2's late transfer never reached node 1 before the close (node 1 refuses it on a
    // closed channel): the chain settles the proof node 1 held, and node 2 reports the
    // transfer failed.
    assert_eq!(ended(&net, 1, &late).await, "failed");
    assert_eq!(onchain(&net, 0).await, a0 + 110, "node 1 paid out");
    assert_eq!(onchain(&net, 1).await, b0 + 90, "node 2 paid out");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deposit_top_up_lands_while_the_partner_is_paying_us() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(2, dir.path()).await;
    let id = open(&net, 0, 1, 100, 100).await;
    let a0 = onchain(&net, 0).await;

    let payer = net.api(1).clone();
    let (token, to) = (net.token().to_owned(), net.address(0).to_owned());
    let payments = tokio::spawn(async move {
        for _ in 0..20 {
            let (status, t) = payer
                .transfer(&token, &to, 2, json!({"is_direct": true, "sync": true}))
                .await
                .unwrap();
            assert_eq!(status, 200, "{t}");
        }
    });
    let topped = net.api(0).deposit(&id, 50).await.expect("top-up");
    assert!(amount(&topped["balance"]).unwrap() >= 150, "{topped}");
    payments.await.unwrap();
    converged(&net, 0, 1, &id, (190, 60)).await;
    assert_eq!(
        onchain(&net, 0).await,
        a0 - 50,
        "the top-up left node 1's account"
    );

    // The new deposit is spendable: node 1 pays more than its first deposit.
    pay(&net, 0, 1, 160, json!({"is_direct": true})).await;
    converged(&net, 0, 1, &id, (30, 220)).await;
}

/// The signed messages of one type that crossed the XMPP server (from its stanza log).
fn wire_messages(net: &Testnet) -> Vec<smartraiden::messages::SignedMessage> {
    use base64::Engine;
    let log = std::fs::read_to_string(net.prosody.log_path()).expect("prosody log");
    let chain_id = smartraiden::primitives::ChainId(net.deployment.chain_id);
    log.lines()
        .filter(|l| l.contains("RECV: <message"))
        .filter_map(|l| {
            let body = l.split("<body>").nth(1)?.split("</body>").next()?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(body)
                .ok()?;
            smartraiden::messages::decode(&bytes, chain_id).ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_that_unlocks_a_lock_it_gave_back_loses_its_deposit_to_the_honest_side() {
    use smartraiden::chain::{ChainContracts, ChainExecutor};
    use smartraiden::core::ContractCall;
    use smartraiden::core::channel::SignedProof;
    use smartraiden::messages::Message;
    use smartraiden::primitives::Address;

    let dir = tempfile::tempdir().unwrap();
    let mut options = TestnetOptions::new(3, dir.path(), env!("CARGO_BIN_EXE_smartraiden"));
    options.extra_node_args = vec!["--api-timeout".into(), "90".into()];
    options.xmpp_stanza_log = true;
    let mut net = Testnet::start(options).await.expect("the testnet starts");
    let ab = open(&net, 0, 1, 100, 50).await;
    let bc = open(&net, 1, 2, 10, 0).await;
    // Node 2 spends its side of 2–3 directly: the chain still shows 10 there, so node 1 routes
    // through it, and node 2, unable to go on, gives the lock back (AnnounceDisposed).
    pay(&net, 1, 2, 10, json!({"is_direct": true})).await;
    converged(&net, 1, 2, &bc, (0, 10)).await;
    let a0 = onchain(&net, 0).await;

    let (_, fresh) = net.api(0).get("secret").await.unwrap();
    let secret = fresh["secret"].as_str().unwrap().to_owned();
    let hash: smartraiden::primitives::H256 =
        fresh["lock_secret_hash"].as_str().unwrap().parse().unwrap();
    let (status, t) = net
        .api(0)
        .transfer(net.token(), net.address(2), 5, json!({"secret": secret}))
        .await
        .unwrap();
    assert!(status == 200 || status == 409, "{status} {t}");
    // Given back and removed on both ends of 1–2.
    converged(&net, 0, 1, &ab, (100, 50)).await;
    let wire = wire_messages(&net);
    assert!(
        wire.iter().any(
            |m| matches!(&m.message, Message::AnnounceDisposed(d) if d.lock.secrethash.0 == hash)
        ),
        "node 2 never gave the lock back"
    );
    // The secret becomes public anyway.
    net.api(0)
        .expect(
            200,
            reqwest::Method::POST,
            "registersecret",
            Some(json!({"secret": secret})),
        )
        .await
        .unwrap();

    // Node 2 turns cheater: its node is stopped and it acts on chain by hand, closing with
    // node 1's older proof that still carries the lock and unlocking that lock.
    let locked = wire
        .iter()
        .find_map(|m| match &m.message {
            Message::MediatedTransfer(t)
                if t.lock.secrethash.0 == hash
                    && m.sender == net.address(0).parse::<Address>().unwrap() =>
            {
                Some((m.clone(), t.clone()))
            }
            _ => None,
        })
        .expect("node 1's MediatedTransfer to node 2 on the wire");
    net.kill_node(1).unwrap();
    let node2 = dir.path().join("nodes/2");
    let key = smartraiden::crypto::keystore::decrypt(
        &std::fs::read_to_string(node2.join("keystore.json")).unwrap(),
        std::fs::read_to_string(node2.join("password"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let signer =
        alloy::signers::local::PrivateKeySigner::from_bytes(&key.secret_bytes().into()).unwrap();
    let cheater = ChainExecutor::new(
        std::sync::Arc::new(net.chain.client(signer).await.unwrap()),
        ChainContracts::from(&net.deployment),
    );
    let token: Address = net.token().parse().unwrap();
    let tn = cheater.token_network_of(token).await.unwrap().unwrap();
    let node1: Address = net.address(0).parse().unwrap();
    let (msg, transfer) = locked;
    let old = SignedProof {
        balance_proof: transfer.balance_proof,
        additional_hash: msg.hash,
        signature: msg.signature,
    };
    cheater
        .execute(&ContractCall::Close {
            token_network: tn,
            partner: node1,
            balance_proof: Some(old.on_chain()),
        })
        .await
        .expect("close with the old proof");
    cheater
        .execute(&ContractCall::Unlock {
            token_network: tn,
            partner: node1,
            transferred_amount: transfer.balance_proof.transferred_amount,
            lock: transfer.lock,
            merkle_proof: vec![],
        })
        .await
        .expect("unlock of the disposed lock");

    // Node 1 punishes on its own and, after the windows, takes the whole channel.
    net.chain
        .mine(SETTLE_TIMEOUT + PUNISH_BLOCKS + 2)
        .await
        .unwrap();
    wait_state(net.api(0), &ab, "node 1 settles", |status, _| status == 404).await;
    assert_eq!(
        onchain(&net, 0).await,
        a0 + 150,
        "the honest side gets both deposits"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_closes_a_channel_and_shows_the_settle_window_until_the_payout() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(2, dir.path()).await;
    let id = open(&net, 0, 1, 100, 100).await;
    let a0 = onchain(&net, 0).await;
    pay(&net, 0, 1, 25, json!({"is_direct": true})).await;
    converged(&net, 0, 1, &id, (75, 125)).await;

    let txs_before = sent_transactions(&net, 1).await;
    let mut cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_smartraiden"))
        .args([
            "channel",
            "close",
            &id,
            "--wait",
            "--api",
            net.api(0).base(),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(cli.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut mined = false;
    while let Some(line) = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the CLI went quiet")
        .unwrap()
    {
        // Once the CLI shows the window and node 2 has answered the close on chain with
        // node 1's proof (its one transaction since), the blocks pass.
        if line.starts_with("settle window:") && !mined {
            let deadline = Instant::now() + WAIT;
            while sent_transactions(&net, 1).await == txs_before {
                assert!(Instant::now() < deadline, "node 2 never updated the proof");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            net.chain
                .mine(SETTLE_TIMEOUT + PUNISH_BLOCKS + 2)
                .await
                .unwrap();
            mined = true;
        }
        seen.push(line);
    }
    assert!(cli.wait().await.unwrap().success(), "{seen:?}");
    assert!(
        seen[0].starts_with("closed 0x") && seen[0].contains("our balance 75"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|l| l.contains("blocks to go")), "{seen:?}");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("settled: the node paid both sides out on chain")
    );
    assert_eq!(onchain(&net, 0).await, a0 + 75);
}
