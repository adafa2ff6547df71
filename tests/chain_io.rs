//! Chain I/O adapter on a real anvil: every `ContractCall` executed through `ChainExecutor`
//! comes back as the expected `ChainEvent`s through `ChainFollower`; confirmation depth,
//! resumption, an RPC outage and a named revert. Proofs are signed by the core's own code.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alloy::primitives::U256;
use smartraiden::chain::bindings::StandardToken;
use smartraiden::chain::deploy::{DeployOptions, Deployment, deploy};
use smartraiden::chain::{
    ChainContracts, ChainError, ChainExecutor, ChainFollower, DevChain, FollowerConfig,
    FollowerProgress,
};
use smartraiden::core::io::OnChainBalanceProof;
use smartraiden::core::{ChainEvent, ContractCall, Input};
use smartraiden::crypto::PrivateKey;
use smartraiden::primitives::{
    Address, BlockCount, BlockNumber, ChainId, ChannelId, H256, Locksroot, Nonce, Secret,
    TokenAmount,
};
use smartraiden::proofs::{
    BalanceProofData, ChannelBinding, CooperativeSettleData, DisposedLockData, Lock, MerkleTree,
    SignedData, WithdrawData, channel_identifier,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

const SETTLE_TIMEOUT: u64 = 20;
const PUNISH: u64 = 5;
/// Longest any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

struct Party {
    exec: ChainExecutor,
    key: PrivateKey,
}

impl Party {
    fn addr(&self) -> Address {
        self.key.address()
    }
}

/// Fresh anvil, contracts deployed without a token network, two parties holding tokens (no allowance).
struct Fixture {
    chain: DevChain,
    deployment: Deployment,
    token: Address,
    a: Party,
    b: Party,
}

impl Fixture {
    async fn new() -> Fixture {
        let _ = env_logger::builder().is_test(true).try_init();
        let chain = DevChain::start().await.expect("anvil starts");
        let deployer = chain.client(DevChain::key(0)).await.unwrap();
        let options = DeployOptions {
            punish_block_number: PUNISH,
            create_token_network: false,
            ..DeployOptions::default()
        };
        let deployment = deploy(&deployer, &options).await.expect("deploy");
        let mut parties = Vec::new();
        for i in 1..=2 {
            let signer = DevChain::key(i);
            let key = PrivateKey::from_bytes(signer.to_bytes().0).unwrap();
            let client = chain.client(signer).await.unwrap();
            let token = StandardToken::new(deployment.token, deployer.provider());
            deployer
                .send(token.transfer(client.address(), U256::from(1_000_000u64)))
                .await
                .unwrap();
            let exec = ChainExecutor::new(Arc::new(client), ChainContracts::from(&deployment));
            parties.push(Party { exec, key });
        }
        let b = parties.pop().unwrap();
        let a = parties.pop().unwrap();
        Fixture {
            token: Address(deployment.token.0.0),
            chain,
            deployment,
            a,
            b,
        }
    }

    fn follower_config(&self, confirmations: u64) -> FollowerConfig {
        let mut config = FollowerConfig::new(
            Address(self.deployment.registry.0.0),
            Address(self.deployment.secret_registry.0.0),
            confirmations,
        );
        config.poll_interval = Duration::from_millis(20);
        config.max_backoff = Duration::from_millis(200);
        config.rpc_timeout = Duration::from_secs(5);
        config
    }

    fn follower(&self, confirmations: u64, progress: FollowerProgress) -> ChainFollower {
        ChainFollower::new(
            self.chain.url(),
            self.follower_config(confirmations),
            progress,
        )
        .unwrap()
    }

    fn chain_id(&self) -> ChainId {
        ChainId(self.a.exec.client().chain_id())
    }
}

/// Polls until the follower has caught up with the confirmed head; returns everything delivered.
async fn drain(follower: &mut ChainFollower) -> Vec<Input> {
    let mut all = Vec::new();
    loop {
        all.extend(follower.poll_once().await.expect("poll"));
        if !follower.behind() {
            return all;
        }
    }
}

fn events(inputs: &[Input]) -> Vec<ChainEvent> {
    inputs
        .iter()
        .filter_map(|i| match i {
            Input::ContractReceive(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn last_block(inputs: &[Input]) -> Option<u64> {
    inputs.iter().rev().find_map(|i| match i {
        Input::Block(n) => Some(n.0),
        _ => None,
    })
}

/// Every event is followed, before the next block's events, by the tick of its own block.
fn assert_ticks_follow_events(inputs: &[Input], block_of: impl Fn(&ChainEvent) -> Option<u64>) {
    let mut pending: Option<u64> = None;
    for input in inputs {
        match input {
            Input::ContractReceive(e) => {
                if let (Some(p), Some(b)) = (pending, block_of(e)) {
                    assert!(b >= p, "events out of order: {e:?} after block {p}");
                }
                if let Some(b) = block_of(e) {
                    pending = Some(b);
                }
            }
            Input::Block(n) => {
                if let Some(p) = pending {
                    assert!(n.0 >= p, "Block({}) does not cover event block {p}", n.0);
                }
                pending = None;
            }
            _ => {}
        }
    }
    assert!(pending.is_none(), "events not followed by a Block tick");
}

fn amt(v: u64) -> TokenAmount {
    TokenAmount::from(v)
}

fn binding(cid: ChannelId, open_block: u64, chain_id: ChainId) -> ChannelBinding {
    ChannelBinding {
        channel_identifier: cid,
        open_block_number: BlockNumber(open_block),
        chain_id,
    }
}

fn proof(
    key: &PrivateKey,
    binding: ChannelBinding,
    transferred: u64,
    locksroot: Locksroot,
    nonce: u64,
) -> OnChainBalanceProof {
    let data = BalanceProofData {
        transferred_amount: amt(transferred),
        locksroot,
        nonce: Nonce(nonce),
        additional_hash: H256([nonce as u8; 32]),
        binding,
    };
    OnChainBalanceProof {
        transferred_amount: data.transferred_amount,
        locksroot,
        nonce: data.nonce,
        additional_hash: data.additional_hash,
        signature: data.sign(key),
    }
}

#[tokio::test]
async fn every_contract_call_comes_back_as_chain_events() {
    let f = Fixture::new().await;
    let (a, b) = (&f.a, &f.b);
    let mut follower = f.follower(0, FollowerProgress::from_block(0));

    // Registry.
    let tn = a.exec.register_token_network(f.token).await.unwrap();
    assert_eq!(a.exec.token_network_of(f.token).await.unwrap(), Some(tn));
    assert_eq!(a.exec.token_of(tn).await.unwrap(), f.token);
    let got = events(&drain(&mut follower).await);
    assert_eq!(
        got,
        vec![ChainEvent::TokenNetworkCreated {
            token: f.token,
            token_network: tn,
            punish_window: BlockCount(PUNISH),
        }]
    );
    let cid = channel_identifier(a.addr(), b.addr(), tn);
    let chain_id = f.chain_id();

    // Open with a deposit (no allowance yet: the executor approves first), then b deposits.
    let open = a
        .exec
        .execute(&ContractCall::OpenChannel {
            token_network: tn,
            partner: b.addr(),
            settle_timeout: BlockCount(SETTLE_TIMEOUT),
            deposit: amt(100),
        })
        .await
        .unwrap();
    b.exec
        .execute(&ContractCall::Deposit {
            token_network: tn,
            partner: a.addr(),
            amount: amt(50),
        })
        .await
        .unwrap();
    let inputs = drain(&mut follower).await;
    assert_eq!(
        events(&inputs),
        vec![
            ChainEvent::ChannelOpened {
                token_network: tn,
                channel_identifier: cid,
                participant1: a.addr(),
                participant2: b.addr(),
                settle_timeout: BlockCount(SETTLE_TIMEOUT),
                open_block_number: BlockNumber(open.block_number),
            },
            ChainEvent::ChannelDeposit {
                channel_identifier: cid,
                participant: a.addr(),
                total_deposit: amt(100),
            },
            ChainEvent::ChannelDeposit {
                channel_identifier: cid,
                participant: b.addr(),
                total_deposit: amt(50),
            },
        ]
    );
    assert!(
        inputs
            .iter()
            .any(|i| matches!(i, Input::Block(n) if n.0 == open.block_number))
    );
    let on_chain = a.exec.channel(tn, a.addr(), b.addr()).await.unwrap();
    assert_eq!(
        (
            on_chain.state,
            on_chain.participant1_deposit,
            on_chain.participant2_deposit
        ),
        (1, amt(100), amt(50))
    );

    // Co-signed withdraw of 10 by a: new deposits and a new epoch.
    let expiration = BlockNumber(open.block_number + 100);
    let wd = WithdrawData {
        participant: a.addr(),
        participant_balance: amt(100),
        participant_withdraw: amt(10),
        expiration,
        binding: binding(cid, open.block_number, chain_id),
    };
    let withdraw = a
        .exec
        .execute(&ContractCall::Withdraw {
            token_network: tn,
            participant: a.addr(),
            partner: b.addr(),
            participant_balance: amt(100),
            participant_withdraw: amt(10),
            expiration,
            participant_signature: wd.sign(&a.key),
            partner_signature: wd.sign(&b.key),
        })
        .await
        .unwrap();
    assert_eq!(
        events(&drain(&mut follower).await),
        vec![ChainEvent::ChannelWithdraw {
            channel_identifier: cid,
            participant1: a.addr(),
            participant1_deposit: amt(90),
            participant2: b.addr(),
            participant2_deposit: amt(50),
            open_block_number: BlockNumber(withdraw.block_number),
        }]
    );
    let epoch = binding(cid, withdraw.block_number, chain_id);

    // Secret registered on chain.
    let secret = Secret(H256([7; 32]));
    let reg = a
        .exec
        .execute(&ContractCall::RegisterSecret { secret })
        .await
        .unwrap();
    assert_eq!(
        events(&drain(&mut follower).await),
        vec![ChainEvent::SecretRegistered {
            secrethash: secret.hash(),
            secret,
            block_number: BlockNumber(reg.block_number),
        }]
    );

    // b paid a 5 and has two locks pending toward a; a closes with b's proof.
    let lock = Lock {
        expiration: BlockNumber(reg.block_number + 500),
        amount: amt(7),
        secrethash: secret.hash(),
    };
    let other = Lock {
        expiration: BlockNumber(reg.block_number + 500),
        amount: amt(3),
        secrethash: Secret(H256([8; 32])).hash(),
    };
    let tree = MerkleTree::new(vec![lock.lockhash(), other.lockhash()]);
    let b_proof = proof(&b.key, epoch, 5, tree.root(), 1);
    let close = a
        .exec
        .execute(&ContractCall::Close {
            token_network: tn,
            partner: b.addr(),
            balance_proof: Some(b_proof),
        })
        .await
        .unwrap();
    assert_eq!(
        events(&drain(&mut follower).await),
        vec![ChainEvent::ChannelClosed {
            channel_identifier: cid,
            closing_participant: a.addr(),
            transferred_amount: amt(5),
            locksroot: tree.root(),
            block_number: BlockNumber(close.block_number),
        }]
    );

    // b submits a's proof (a paid 3).
    let a_proof = proof(&a.key, epoch, 3, Locksroot::default(), 1);
    b.exec
        .execute(&ContractCall::UpdateBalanceProof {
            token_network: tn,
            partner: a.addr(),
            balance_proof: a_proof,
        })
        .await
        .unwrap();
    assert_eq!(
        events(&drain(&mut follower).await),
        vec![ChainEvent::BalanceProofUpdated {
            channel_identifier: cid,
            participant: a.addr(),
            transferred_amount: amt(3),
            locksroot: Locksroot::default(),
        }]
    );

    // a unlocks b's lock whose secret is registered.
    a.exec
        .execute(&ContractCall::Unlock {
            token_network: tn,
            partner: b.addr(),
            transferred_amount: amt(5),
            lock,
            merkle_proof: tree.proof(0).unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(
        events(&drain(&mut follower).await),
        vec![ChainEvent::ChannelUnlocked {
            channel_identifier: cid,
            payer_participant: b.addr(),
            lockhash: lock.lockhash(),
            transferred_amount: amt(12),
        }]
    );

    // Settle after the settle and punish windows.
    f.chain
        .mine_to(close.block_number + SETTLE_TIMEOUT + PUNISH)
        .await
        .unwrap();
    let a_before = a.exec.token_balance(f.token, a.addr()).await.unwrap();
    b.exec
        .execute(&ContractCall::Settle {
            token_network: tn,
            participant1: a.addr(),
            participant1_transferred_amount: amt(3),
            participant1_locksroot: Locksroot::default(),
            participant2: b.addr(),
            participant2_transferred_amount: amt(12),
            participant2_locksroot: tree.root(),
        })
        .await
        .unwrap();
    assert_eq!(
        events(&drain(&mut follower).await),
        vec![ChainEvent::ChannelSettled {
            channel_identifier: cid
        }]
    );
    // a: deposit 90 + 12 received − 3 paid.
    let a_after = a.exec.token_balance(f.token, a.addr()).await.unwrap();
    assert_eq!(a_after, a_before.saturating_add(amt(99)));

    // Reopen without deposit, b deposits, and both settle cooperatively.
    let reopen = a
        .exec
        .execute(&ContractCall::OpenChannel {
            token_network: tn,
            partner: b.addr(),
            settle_timeout: BlockCount(SETTLE_TIMEOUT),
            deposit: TokenAmount::ZERO,
        })
        .await
        .unwrap();
    b.exec
        .execute(&ContractCall::Deposit {
            token_network: tn,
            partner: a.addr(),
            amount: amt(20),
        })
        .await
        .unwrap();
    let expiration = BlockNumber(reopen.block_number + 100);
    let cs = CooperativeSettleData {
        participant1: a.addr(),
        participant1_balance: amt(5),
        participant2: b.addr(),
        participant2_balance: amt(15),
        expiration,
        binding: binding(cid, reopen.block_number, chain_id),
    };
    a.exec
        .execute(&ContractCall::CooperativeSettle {
            token_network: tn,
            participant1: a.addr(),
            participant1_balance: amt(5),
            participant2: b.addr(),
            participant2_balance: amt(15),
            expiration,
            participant1_signature: cs.sign(&a.key),
            participant2_signature: cs.sign(&b.key),
        })
        .await
        .unwrap();
    assert_eq!(
        events(&drain(&mut follower).await),
        vec![
            ChainEvent::ChannelOpened {
                token_network: tn,
                channel_identifier: cid,
                participant1: a.addr(),
                participant2: b.addr(),
                settle_timeout: BlockCount(SETTLE_TIMEOUT),
                open_block_number: BlockNumber(reopen.block_number),
            },
            ChainEvent::ChannelDeposit {
                channel_identifier: cid,
                participant: b.addr(),
                total_deposit: amt(20),
            },
            ChainEvent::ChannelCooperativeSettled {
                channel_identifier: cid
            },
        ]
    );
    assert_eq!(
        a.exec.channel(tn, a.addr(), b.addr()).await.unwrap().state,
        0
    );

    // Discovery.
    assert_eq!(a.exec.discovery_endpoint(a.addr()).await.unwrap(), None);
    a.exec.discovery_register("alice@localhost").await.unwrap();
    assert_eq!(
        b.exec
            .discovery_endpoint(a.addr())
            .await
            .unwrap()
            .as_deref(),
        Some("alice@localhost")
    );
    assert_eq!(
        b.exec.discovery_address("alice@localhost").await.unwrap(),
        Some(a.addr())
    );
    assert_eq!(
        b.exec.discovery_address("nobody@localhost").await.unwrap(),
        None
    );
}

/// Opens an a–b channel with `deposit` by a through the executor; returns (token network, block).
async fn open_channel(f: &Fixture, deposit: u64) -> (Address, u64) {
    let tn = match f.a.exec.token_network_of(f.token).await.unwrap() {
        Some(tn) => tn,
        None => f.a.exec.register_token_network(f.token).await.unwrap(),
    };
    let outcome =
        f.a.exec
            .execute(&ContractCall::OpenChannel {
                token_network: tn,
                partner: f.b.addr(),
                settle_timeout: BlockCount(SETTLE_TIMEOUT),
                deposit: amt(deposit),
            })
            .await
            .unwrap();
    (tn, outcome.block_number)
}

async fn deposit(f: &Fixture, tn: Address, amount: u64) -> u64 {
    f.b.exec
        .execute(&ContractCall::Deposit {
            token_network: tn,
            partner: f.a.addr(),
            amount: amt(amount),
        })
        .await
        .unwrap()
        .block_number
}

#[tokio::test]
async fn events_wait_for_the_confirmation_depth() {
    let f = Fixture::new().await;
    const DEPTH: u64 = 3;
    let mut follower = f.follower(DEPTH, FollowerProgress::from_block(0));
    let (_, opened) = open_channel(&f, 10).await;
    assert_eq!(f.chain.block_number().await.unwrap(), opened);

    for extra in 0..DEPTH {
        let inputs = drain(&mut follower).await;
        assert!(
            !events(&inputs)
                .iter()
                .any(|e| matches!(e, ChainEvent::ChannelOpened { .. })),
            "delivered with only {extra} confirmations"
        );
        if let Some(n) = last_block(&inputs) {
            assert!(
                n < opened,
                "Block({n}) ticked before its events were confirmed"
            );
        }
        f.chain.mine(1).await.unwrap();
    }
    let inputs = drain(&mut follower).await;
    let got = events(&inputs);
    assert!(
        matches!(
            got.as_slice(),
            [
                ChainEvent::ChannelOpened { .. },
                ChainEvent::ChannelDeposit { .. }
            ]
        ),
        "{got:?}"
    );
    assert_eq!(last_block(&inputs), Some(opened));
    assert_eq!(follower.progress().next_block, opened + 1);
}

#[tokio::test]
async fn follower_resumes_from_persisted_progress_without_duplicates() {
    let f = Fixture::new().await;
    let mut first = f.follower(0, FollowerProgress::from_block(0));
    let (tn, _) = open_channel(&f, 10).await;
    let before = drain(&mut first).await;
    let last = last_block(&before).unwrap();
    // What the node persists with the core state (MessagePack, as its store does): the last
    // Block(n) processed and the networks seen.
    let persisted = rmp_serde::to_vec(first.progress()).unwrap();
    assert_eq!(
        rmp_serde::from_slice::<FollowerProgress>(&persisted).unwrap(),
        FollowerProgress::after(last, [tn])
    );
    drop(first);

    // The node is down while more happens, including in blocks spanning several ranges.
    deposit(&f, tn, 5).await;
    f.chain.mine(7).await.unwrap();
    deposit(&f, tn, 6).await;

    let mut config = f.follower_config(0);
    config.max_range = 3;
    let mut resumed = ChainFollower::new(
        f.chain.url(),
        config,
        rmp_serde::from_slice(&persisted).unwrap(),
    )
    .unwrap();
    let after = drain(&mut resumed).await;

    let mut from_scratch = f.follower(0, FollowerProgress::from_block(0));
    let all = events(&drain(&mut from_scratch).await);
    let mut joined = events(&before);
    joined.extend(events(&after));
    assert_eq!(joined, all, "resumed delivery = one uninterrupted delivery");
    assert_eq!(events(&after).len(), 2);
    assert_eq!(
        last_block(&after),
        Some(f.chain.block_number().await.unwrap())
    );
}

/// A TCP proxy to anvil that can be taken down (closing every connection) and brought back on
/// the same port: an RPC outage as the follower sees it.
struct Proxy {
    url: String,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: &str) -> Proxy {
        let target = target.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, conns2) = (up.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound); // refused: the client sees the connection closed
                    continue;
                }
                let target = target.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().await.push(handle);
            }
        });
        Proxy {
            url,
            up,
            connections,
            accept,
        }
    }

    async fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.connections.lock().await.drain(..) {
            c.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Receives inputs until one satisfies `pred`; fails after DEADLINE.
async fn receive_until(
    rx: &mut mpsc::Receiver<Input>,
    seen: &mut Vec<Input>,
    pred: impl Fn(&Input) -> bool,
) {
    tokio::time::timeout(DEADLINE, async {
        while let Some(input) = rx.recv().await {
            let done = pred(&input);
            seen.push(input);
            if done {
                return;
            }
        }
        panic!("follower stopped");
    })
    .await
    .expect("condition within the deadline");
}

#[tokio::test]
async fn follower_rides_out_an_rpc_outage() {
    let f = Fixture::new().await;
    let proxy = Proxy::start(f.chain.url()).await;
    let follower = ChainFollower::new(
        &proxy.url,
        f.follower_config(0),
        FollowerProgress::from_block(0),
    )
    .unwrap();
    let mut status = follower.status();
    let (tx, mut rx) = mpsc::channel(64);
    let runner = tokio::spawn(follower.run(tx));

    let (tn, opened) = open_channel(&f, 10).await;
    let mut seen = Vec::new();
    receive_until(
        &mut rx,
        &mut seen,
        |i| matches!(i, Input::Block(n) if n.0 >= opened),
    )
    .await;

    proxy.down().await;
    // The follower notices and keeps retrying.
    tokio::time::timeout(DEADLINE, status.wait_for(|s| s.consecutive_failures >= 3))
        .await
        .expect("failures reported within the deadline")
        .unwrap();
    let during = deposit(&f, tn, 5).await;
    f.chain.mine(2).await.unwrap();
    assert!(status.borrow().last_error.is_some());

    proxy.up();
    let head = f.chain.block_number().await.unwrap();
    receive_until(
        &mut rx,
        &mut seen,
        |i| matches!(i, Input::Block(n) if n.0 >= head),
    )
    .await;
    assert_eq!(status.borrow().consecutive_failures, 0);

    let got = events(&seen);
    assert_eq!(
        got.iter()
            .filter(|e| matches!(e, ChainEvent::ChannelOpened { .. }))
            .count(),
        1,
        "nothing delivered twice: {got:?}"
    );
    assert!(
        got.contains(&ChainEvent::ChannelDeposit {
            channel_identifier: channel_identifier(f.a.addr(), f.b.addr(), tn),
            participant: f.b.addr(),
            total_deposit: amt(5),
        }),
        "the deposit of block {during}, mined during the outage, is delivered"
    );
    let ticks: Vec<u64> = seen
        .iter()
        .filter_map(|i| match i {
            Input::Block(n) => Some(n.0),
            _ => None,
        })
        .collect();
    assert!(
        ticks.windows(2).all(|w| w[0] < w[1]),
        "ticks strictly increase: {ticks:?}"
    );
    assert_ticks_follow_events(&seen, |_| None);

    drop(rx);
    tokio::time::timeout(DEADLINE, runner)
        .await
        .expect("run returns once its receiver is gone")
        .unwrap();
}

#[tokio::test]
async fn reverts_name_the_custom_error() {
    let f = Fixture::new().await;
    let (tn, _) = open_channel(&f, 10).await;
    let revert_name = |e: ChainError| match e {
        ChainError::ContractRevert { error, .. } => error,
        other => panic!("expected a named revert, got {other}"),
    };

    // A second channel between the same pair.
    let e =
        f.a.exec
            .execute(&ContractCall::OpenChannel {
                token_network: tn,
                partner: f.b.addr(),
                settle_timeout: BlockCount(SETTLE_TIMEOUT),
                deposit: TokenAmount::ZERO,
            })
            .await
            .unwrap_err();
    let message = e.to_string();
    assert_eq!(revert_name(e), "ChannelAlreadyExists");
    assert!(
        message.contains("openChannel") && message.contains("ChannelAlreadyExists"),
        "{message}"
    );

    // Settling an open channel.
    let e =
        f.b.exec
            .execute(&ContractCall::Settle {
                token_network: tn,
                participant1: f.a.addr(),
                participant1_transferred_amount: TokenAmount::ZERO,
                participant1_locksroot: Locksroot::default(),
                participant2: f.b.addr(),
                participant2_transferred_amount: TokenAmount::ZERO,
                participant2_locksroot: Locksroot::default(),
            })
            .await
            .unwrap_err();
    assert_eq!(revert_name(e), "ChannelNotClosed");

    // A proof signed by the wrong key, with the arguments decoded.
    let cid = channel_identifier(f.a.addr(), f.b.addr(), tn);
    let on_chain = f.a.exec.channel(tn, f.a.addr(), f.b.addr()).await.unwrap();
    let forged = proof(
        &f.a.key,
        binding(cid, on_chain.open_block_number.0, f.chain_id()),
        1,
        Locksroot::default(),
        1,
    );
    let e =
        f.a.exec
            .execute(&ContractCall::Close {
                token_network: tn,
                partner: f.b.addr(),
                balance_proof: Some(forged),
            })
            .await
            .unwrap_err();
    match e {
        ChainError::ContractRevert {
            call,
            error,
            details,
        } => {
            assert_eq!((call, error.as_str()), ("closeChannel", "InvalidSignature"));
            assert!(
                details.to_lowercase().contains(&f.b.addr().to_lower_hex()),
                "{details}"
            );
        }
        other => panic!("expected a named revert, got {other}"),
    }

    // The registry's errors too.
    let e = f.a.exec.register_token_network(f.token).await.unwrap_err();
    assert_eq!(revert_name(e), "TokenNetworkExists");
    // The chain is still usable after reverts (no nonce was consumed).
    deposit(&f, tn, 1).await;
}

#[tokio::test]
async fn punish_names_the_cheater() {
    let f = Fixture::new().await;
    let (a, b) = (&f.a, &f.b);
    let (tn, opened) = open_channel(&f, 100).await;
    let cid = channel_identifier(a.addr(), b.addr(), tn);
    let epoch = binding(cid, opened, f.chain_id());
    // a locked 20 toward b (nonce 1); b disposed it (signed); b then cheats with that old proof.
    let secret = Secret(H256([9; 32]));
    let lock = Lock {
        expiration: BlockNumber(opened + 40),
        amount: amt(20),
        secrethash: secret.hash(),
    };
    let tree = MerkleTree::new(vec![lock.lockhash()]);
    let additional_hash = H256([4; 32]);
    let disposed = DisposedLockData {
        lockhash: lock.lockhash(),
        binding: epoch,
        additional_hash,
    }
    .sign(&b.key);
    let calls = [
        ContractCall::Close {
            token_network: tn,
            partner: a.addr(),
            balance_proof: Some(proof(&a.key, epoch, 0, tree.root(), 1)),
        },
        ContractCall::RegisterSecret { secret },
        ContractCall::Unlock {
            token_network: tn,
            partner: a.addr(),
            transferred_amount: TokenAmount::ZERO,
            lock,
            merkle_proof: tree.proof(0).unwrap(),
        },
    ];
    for call in &calls {
        b.exec.execute(call).await.unwrap();
    }
    a.exec
        .execute(&ContractCall::PunishObsoleteUnlock {
            token_network: tn,
            partner: b.addr(),
            lockhash: lock.lockhash(),
            additional_hash,
            signature: disposed,
        })
        .await
        .unwrap();
    let punished = ChainEvent::ObsoleteUnlockPunished {
        channel_identifier: cid,
        beneficiary: a.addr(),
        cheater: b.addr(),
    };
    // From the start, and from after the opening (the cheater then comes from the calldata alone).
    for start in [
        FollowerProgress::from_block(0),
        FollowerProgress::after(opened, [tn]),
    ] {
        let mut follower = f.follower(0, start);
        let got = events(&drain(&mut follower).await);
        assert_eq!(got.last(), Some(&punished), "{got:?}");
    }
}
