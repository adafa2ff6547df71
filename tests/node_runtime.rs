//! The node shell (batch, step, persist, then send) with in-memory persistence and an
//! in-memory loopback between nodes: actions answer after their state is committed, transfers
//! complete through the handles, and a runtime restarted from its committed state carries on.

use smartraiden::core::{
    Action, ChainEvent, Core, Input, NodeConfig, NodeState, Notification, TransferRequest,
};
use smartraiden::crypto::PrivateKey;
use smartraiden::node::{
    ChainRequest, Durability, NodeHandle, Outbound, Persist, PersistError, Runtime, RuntimeConfig,
    TransferOutcome, Work,
};
use smartraiden::primitives::{Address, BlockCount, BlockNumber, ChainId, TokenAmount};
use smartraiden::proofs::channel_identifier;
use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a node's shell did, in order: commits (with their durability and whether the
/// snapshot changed) and sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Did {
    Commit {
        durability: Durability,
        changed: bool,
    },
    Send,
}

/// Keeps the last committed state, counts commits and logs them.
#[derive(Clone, Default)]
struct MemoryStore(Arc<Mutex<(Option<Vec<u8>>, usize)>>, Arc<Mutex<Vec<Did>>>);

impl Persist for MemoryStore {
    fn commit(
        &mut self,
        state: &NodeState,
        _: &[Notification],
        _: u64,
        durability: Durability,
    ) -> Result<(), PersistError> {
        let bytes = rmp_serde::to_vec(state).map_err(|e| PersistError(e.to_string()))?;
        let mut g = self.0.lock().unwrap();
        let changed = g.0.as_ref() != Some(&bytes);
        g.0 = Some(bytes);
        g.1 += 1;
        self.1.lock().unwrap().push(Did::Commit {
            durability,
            changed,
        });
        Ok(())
    }
}

impl MemoryStore {
    fn load(&self) -> NodeState {
        rmp_serde::from_slice(self.0.lock().unwrap().0.as_ref().unwrap()).unwrap()
    }
}

/// Delivers to the recipient's work queue (as a transport would).
#[derive(Clone, Default)]
struct Loopback(Arc<Mutex<HashMap<Address, Sender<Work>>>>);

impl Loopback {
    fn deliver(&self, to: Address, bytes: Vec<u8>) {
        if let Some(tx) = self.0.lock().unwrap().get(&to) {
            let _ = tx.send(Work::Input(Input::Receive(bytes)));
        }
    }
}

/// One node's way out to the loopback, logging each send beside its store's commits.
#[derive(Clone)]
struct Out(Loopback, Arc<Mutex<Vec<Did>>>);

impl Outbound for Out {
    fn send(&self, to: Address, bytes: Vec<u8>) {
        self.1.lock().unwrap().push(Did::Send);
        self.0.deliver(to, bytes);
    }
}

const TOKEN: Address = Address([0xaa; 20]);
const TN: Address = Address([0xbb; 20]);

fn chain_events(keys: &[PrivateKey]) -> Vec<ChainEvent> {
    let mut ev = vec![ChainEvent::TokenNetworkCreated {
        token: TOKEN,
        token_network: TN,
        punish_window: BlockCount(5),
    }];
    for w in keys.windows(2) {
        let (a, b) = (w[0].address(), w[1].address());
        let id = channel_identifier(a, b, TN);
        ev.push(ChainEvent::ChannelOpened {
            token_network: TN,
            channel_identifier: id,
            participant1: a,
            participant2: b,
            settle_timeout: BlockCount(100),
            open_block_number: BlockNumber(1),
        });
        for p in [a, b] {
            ev.push(ChainEvent::ChannelDeposit {
                channel_identifier: id,
                participant: p,
                total_deposit: TokenAmount::from(100u64),
            });
        }
    }
    ev
}

struct Started {
    handle: NodeHandle,
    notes: tokio::sync::broadcast::Sender<Notification>,
    store: MemoryStore,
    thread: std::thread::JoinHandle<Result<(), PersistError>>,
    _chain: tokio::sync::mpsc::UnboundedReceiver<ChainRequest>,
}

fn start(core: Core, store: MemoryStore, net: &Loopback) -> Started {
    let (tx, rx) = std::sync::mpsc::channel();
    net.0.lock().unwrap().insert(core.address(), tx.clone());
    let (chain_tx, chain_rx) = tokio::sync::mpsc::unbounded_channel();
    let (notes, _) = tokio::sync::broadcast::channel(1024);
    let rt = Runtime::new(
        core,
        store.clone(),
        Out(net.clone(), store.1.clone()),
        chain_tx,
        notes.clone(),
        RuntimeConfig::default(),
    );
    let thread = std::thread::spawn(move || rt.run(rx));
    Started {
        handle: NodeHandle::new(tx),
        notes,
        store,
        thread,
        _chain: chain_rx,
    }
}

fn line(n: usize) -> (Vec<PrivateKey>, Vec<Started>, Loopback) {
    let keys: Vec<PrivateKey> = (0..n)
        .map(|i| PrivateKey::from_bytes([i as u8 + 1; 32]).unwrap())
        .collect();
    let net = Loopback::default();
    let nodes = keys
        .iter()
        .map(|k| {
            let s = start(
                Core::new(k.clone(), NodeConfig::new(ChainId(31337))),
                MemoryStore::default(),
                &net,
            );
            for e in chain_events(&keys) {
                s.handle.input(Input::ContractReceive(e)).unwrap();
            }
            s.handle.input(Input::ChainHead(BlockNumber(2))).unwrap();
            s.handle.input(Input::Block(BlockNumber(2))).unwrap();
            s
        })
        .collect();
    (keys, nodes, net)
}

fn pay(target: Address, amount: u64, is_direct: bool) -> Action {
    Action::Transfer(TransferRequest {
        token: TOKEN,
        target,
        amount: TokenAmount::from(amount),
        max_fee: None,
        is_direct,
        secret: None,
        identifier: None,
    })
}

async fn balance(h: &NodeHandle, partner: Address) -> (u128, u128) {
    h.query(move |s| {
        let c = s.channel_with(&TOKEN, &partner).unwrap();
        (
            c.our_balance().to_u128().unwrap(),
            c.partner_balance().to_u128().unwrap(),
        )
    })
    .await
    .unwrap()
}

fn started_id(notes: &[Notification]) -> smartraiden::primitives::H256 {
    notes
        .iter()
        .find_map(|n| {
            if let Notification::TransferStarted { id, .. } = n {
                Some(*id)
            } else {
                None
            }
        })
        .unwrap()
}

/// Starts a transfer of `amount` to `target` on `h` and waits until it ends, in one hand-off
/// to the event loop (the path of a `sync` REST transfer).
async fn pay_and_wait(
    h: &NodeHandle,
    target: Address,
    amount: u64,
    is_direct: bool,
) -> TransferOutcome {
    let Action::Transfer(request) = pay(target, amount, is_direct) else {
        unreachable!()
    };
    let (notes, end) = h.start_transfer(request).await.unwrap();
    started_id(&notes);
    end.wait(Duration::from_secs(10)).await.unwrap()
}

const PAID: TransferOutcome = TransferOutcome::Success {
    fee: TokenAmount::ZERO,
};

#[tokio::test]
async fn direct_and_mediated_transfers_complete_through_the_handles() {
    let (keys, nodes, _net) = line(3);
    let notes = nodes[0]
        .handle
        .act(pay(keys[1].address(), 10, true))
        .await
        .unwrap();
    assert!(
        nodes[0].store.0.lock().unwrap().1 > 0,
        "answered after a commit"
    );
    let id = started_id(&notes);
    assert_eq!(
        nodes[0]
            .handle
            .wait_transfer(id, Duration::from_secs(10))
            .await
            .unwrap(),
        PAID
    );
    let mut target_notes = nodes[2].notes.subscribe();
    let notes = nodes[0]
        .handle
        .act(pay(keys[2].address(), 25, false))
        .await
        .unwrap();
    let id = started_id(&notes);
    assert_eq!(
        nodes[0]
            .handle
            .wait_transfer(id, Duration::from_secs(10))
            .await
            .unwrap(),
        PAID
    );
    assert_eq!(
        balance(&nodes[0].handle, keys[1].address()).await,
        (65, 135)
    );
    // The target is paid when the mediator's unlock reaches it.
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Notification::PaymentReceived { id: i, amount, .. } =
                target_notes.recv().await.unwrap()
                && i == id
            {
                return amount;
            }
        }
    })
    .await
    .expect("the target is paid");
    assert_eq!(received, TokenAmount::from(25u64));
    assert_eq!(
        balance(&nodes[2].handle, keys[1].address()).await,
        (125, 75)
    );
}

#[tokio::test]
async fn refused_actions_are_reported_and_change_nothing() {
    let (keys, nodes, _net) = line(2);
    let before = nodes[0].handle.query(|s| s.clone()).await.unwrap();
    let err = nodes[0]
        .handle
        .act(pay(keys[1].address(), 1_000, true))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("insufficient balance"), "{err}");
    let Action::Transfer(request) = pay(keys[1].address(), 1_000, true) else {
        unreachable!()
    };
    let err = nodes[0]
        .handle
        .start_transfer(request)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("insufficient balance"), "{err}");
    assert_eq!(nodes[0].handle.query(|s| s.clone()).await.unwrap(), before);
}

#[tokio::test]
async fn a_runtime_restarted_from_its_committed_state_carries_on() {
    let (keys, mut nodes, net) = line(2);
    assert_eq!(
        pay_and_wait(&nodes[0].handle, keys[1].address(), 7, true).await,
        PAID
    );
    // Stop node 0: drop every sender of its work queue, join its thread.
    let old = nodes.remove(0);
    net.0.lock().unwrap().remove(&keys[0].address());
    let (store, handle, thread) = (old.store, old.handle, old.thread);
    drop(handle);
    thread.join().unwrap().unwrap();
    let core = Core::restore(keys[0].clone(), store.load()).unwrap();
    let again = start(core, store, &net);
    assert_eq!(balance(&again.handle, keys[1].address()).await, (93, 107));
    assert_eq!(
        pay_and_wait(&again.handle, keys[1].address(), 3, true).await,
        PAID
    );
    assert_eq!(balance(&again.handle, keys[1].address()).await, (90, 110));
}

/// Persist, then send: whatever a batch releases follows a synced commit; a batch that
/// releases nothing (the payer taking the payee's Ack) is written without waiting for fsync.
#[tokio::test]
async fn releases_follow_a_synced_commit_and_an_ack_alone_is_buffered() {
    let (keys, nodes, _net) = line(2);
    for amount in [4, 6] {
        assert_eq!(
            pay_and_wait(&nodes[0].handle, keys[1].address(), amount, true).await,
            PAID
        );
    }
    // The payee has committed the second transfer once its Ack reached the payer.
    assert_eq!(
        balance(&nodes[1].handle, keys[0].address()).await,
        (110, 90)
    );
    for (who, node) in nodes.iter().enumerate() {
        let log = node.store.1.lock().unwrap().clone();
        let mut last_commit = None;
        for d in &log {
            match d {
                Did::Commit { durability, .. } => last_commit = Some(*durability),
                Did::Send => assert_eq!(
                    last_commit,
                    Some(Durability::Synced),
                    "node {who} sent after a commit that was not synced: {log:?}"
                ),
            }
        }
        assert!(log.contains(&Did::Send), "node {who} sent nothing: {log:?}");
    }
    let payer = nodes[0].store.1.lock().unwrap().clone();
    let buffered_changes = payer
        .iter()
        .filter(|d| {
            matches!(
                d,
                Did::Commit {
                    durability: Durability::Buffered,
                    changed: true
                }
            )
        })
        .count();
    assert!(
        buffered_changes >= 2,
        "each Ack taken by the payer is a buffered commit: {payer:?}"
    );
}
