//! The durable store: snapshots survive a reopen exactly, the directory is exclusive and bound
//! to one account, corruption is reported, the transfer history keeps its order and outcomes,
//! and every commit that returned, fsync'd or not, survives a `kill -9` of the writing process.

use smartraiden::core::{NodeConfig, NodeState, Notification};
use smartraiden::primitives::{Address, BlockNumber, ChainId, H256, TokenAmount};
use smartraiden::sim::{NetworkConditions, Simulation};
use smartraiden::storage::{
    CommitBatch, Direction, RecordUpdate, StorageError, Store, TransferRecord, TransferStatus,
};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// The seed article's network (1→2→4→5 is the only path from node 1 to node 5).
fn seed_network() -> (Simulation, Address) {
    let mut sim = Simulation::new(5, 7, NetworkConditions::perfect(), |_| {
        NodeConfig::new(ChainId(31337))
    });
    let (token, _) = sim.register_token();
    for (a, b, da, db) in [
        (0, 1, 200, 100),
        (1, 2, 100, 100),
        (1, 3, 200, 100),
        (3, 4, 100, 100),
    ] {
        sim.open_channel(token, a, b, da, db, 100);
    }
    (sim, token)
}

fn account(b: u8) -> Address {
    Address([b; 20])
}

fn id(n: u64) -> H256 {
    let mut h = [0u8; 32];
    h[24..].copy_from_slice(&n.to_be_bytes());
    H256(h)
}

fn sent(n: u64, at: u64) -> TransferRecord {
    TransferRecord {
        id: id(n),
        direction: Direction::Sent,
        token: account(0xaa),
        partner: account(0xbb),
        amount: TokenAmount::from(n + 1),
        fee: TokenAmount::from(2u64),
        status: TransferStatus::Pending,
        reason: None,
        created_ms: at,
        updated_ms: at,
    }
}

fn commit_state(store: &Store, state: &NodeState) {
    let mut b = CommitBatch::new();
    b.set_state(state).unwrap();
    store.commit(b).unwrap();
}

#[test]
fn a_mid_payment_state_reads_back_identical_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sim, token) = seed_network();
    // Start a payment and stop before anything is delivered: node 1 holds a running
    // initiator, a lock on its channel and an unacknowledged message in its outbox.
    sim.pay(token, 0, 4, 50, false).unwrap();
    let state = sim.state(0).clone();
    assert!(!state.initiators.is_empty() && !state.delivery.is_empty());
    assert!(state.channels().any(|c| !c.our.locks.is_empty()));
    {
        let store = Store::open(dir.path(), sim.address(0)).unwrap();
        assert_eq!(
            store.load().unwrap(),
            None,
            "a fresh directory has no state"
        );
        assert_eq!(store.chain_block().unwrap(), None);
        let mut b = CommitBatch::new();
        b.set_state(&state).unwrap();
        b.set_chain_block(BlockNumber(42));
        store.commit(b).unwrap();
    }
    let store = Store::open(dir.path(), sim.address(0)).unwrap();
    assert_eq!(store.load().unwrap(), Some(state));
    assert_eq!(store.chain_block().unwrap(), Some(BlockNumber(42)));
}

#[test]
fn the_latest_snapshot_wins_and_a_batch_without_state_keeps_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), account(1)).unwrap();
    let mut s = NodeState::new(account(1), NodeConfig::new(ChainId(1)));
    for b in 1..=3 {
        s.block = BlockNumber(b);
        commit_state(&store, &s);
    }
    let mut only_block = CommitBatch::new();
    only_block.set_chain_block(BlockNumber(9));
    store.commit(only_block).unwrap();
    assert_eq!(store.load().unwrap().unwrap().block, BlockNumber(3));
    assert_eq!(store.chain_block().unwrap(), Some(BlockNumber(9)));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_clearly_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path(), account(1)).unwrap();
    let err = Store::open(dir.path(), account(1)).err().expect("refused");
    assert!(matches!(err, StorageError::InUse { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "data directory {} is in use by another smartraiden process",
            dir.path().display()
        )
    );
    drop(first);
    Store::open(dir.path(), account(1)).expect("free again once the first store is closed");
}

/// RocksDB writes the options it runs with to `OPTIONS-*`; every column family, not only
/// `default`, must carry ours (a named family opened by name alone gets RocksDB's defaults).
#[test]
fn every_column_family_runs_with_bloom_filters_within_one_memtable_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), account(1)).unwrap();
    drop(store);
    let options = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("OPTIONS-"))
        })
        .max()
        .expect("RocksDB wrote an OPTIONS file");
    let text = std::fs::read_to_string(options).unwrap();
    assert!(text.contains("db_write_buffer_size=16777216"), "{text}");
    let families: Vec<&str> = text.split("[CFOptions \"").skip(1).collect();
    let names: Vec<&str> = families
        .iter()
        .map(|f| f.split('"').next().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        1 + smartraiden::storage::ALL_CFS.len(),
        "default and our families: {names:?}"
    );
    for (name, section) in names.iter().zip(&families) {
        // A family's section runs until its table options end, at the next family.
        assert!(
            section.contains("filter_policy=bloomfilter"),
            "family {name} has no Bloom filter"
        );
    }
}

#[test]
fn a_directory_created_for_one_account_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), account(1)).unwrap();
    commit_state(
        &store,
        &NodeState::new(account(1), NodeConfig::new(ChainId(1))),
    );
    drop(store);
    let err = Store::open(dir.path(), account(2)).err().expect("refused");
    match &err {
        StorageError::ForeignDataDir {
            stored, requested, ..
        } => assert_eq!((*stored, *requested), (account(1), account(2))),
        other => panic!("expected ForeignDataDir, got {other:?}"),
    }
    assert!(err.to_string().contains(&account(1).to_string()), "{err}");
    // The refusal changed nothing: the owner still opens it with its state.
    let store = Store::open(dir.path(), account(1)).unwrap();
    assert!(store.load().unwrap().is_some());
}

#[test]
fn committing_another_accounts_state_is_refused_and_writes_nothing_of_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), account(1)).unwrap();
    let mut own = NodeState::new(account(1), NodeConfig::new(ChainId(1)));
    own.block = BlockNumber(5);
    commit_state(&store, &own);
    let mut b = CommitBatch::new();
    b.set_state(&NodeState::new(account(2), NodeConfig::new(ChainId(1))))
        .unwrap();
    b.record(RecordUpdate::Create(sent(1, 10)));
    b.set_chain_block(BlockNumber(77));
    let err = store.commit(b).unwrap_err();
    assert!(matches!(err, StorageError::ForeignState { .. }), "{err:?}");
    assert_eq!(store.load().unwrap(), Some(own));
    assert_eq!(store.get_transfer(&id(1)).unwrap(), None);
    assert_eq!(store.chain_block().unwrap(), None);
}

#[test]
fn a_corrupt_snapshot_is_reported_as_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), account(1)).unwrap();
    commit_state(
        &store,
        &NodeState::new(account(1), NodeConfig::new(ChainId(1))),
    );
    drop(store);
    {
        // Damage the snapshot behind the store's back (layout: family "state", key "node").
        let db = rocksdb::DB::open_cf(
            &rocksdb::Options::default(),
            dir.path(),
            smartraiden::storage::ALL_CFS,
        )
        .unwrap();
        db.put_cf(db.cf_handle("state").unwrap(), b"node", [0xc1, 0x00, 0xff])
            .unwrap();
    }
    let store = Store::open(dir.path(), account(1)).unwrap();
    let err = store.load().unwrap_err();
    match &err {
        StorageError::Corrupt { what, .. } => assert_eq!(what, "node state snapshot"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("corrupt node state snapshot in data directory")
    );
}

#[test]
fn history_keeps_insertion_order_per_direction_and_records_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), account(1)).unwrap();
    // One group commit: three transfers start, the second already ends in the same batch.
    let mut b = CommitBatch::new();
    for n in [5, 3, 9] {
        b.record(RecordUpdate::Create(sent(n, 100)));
    }
    b.record_notifications(
        &[Notification::TransferSucceeded {
            id: id(3),
            fee: TokenAmount::from(1u64),
        }],
        150,
    );
    store.commit(b).unwrap();
    let mut b = CommitBatch::new();
    b.record_notifications(
        &[
            Notification::PaymentReceived {
                id: id(20),
                token: account(0xaa),
                initiator: account(0xcc),
                amount: TokenAmount::from(8u64),
            },
            Notification::TransferFailed {
                id: id(5),
                reason: "no route".into(),
            },
            Notification::TransferCanceled { id: id(9) },
        ],
        200,
    );
    store.commit(b).unwrap();
    drop(store);

    let store = Store::open(dir.path(), account(1)).unwrap();
    // A record created after the reopen sorts after the earlier ones.
    let mut b = CommitBatch::new();
    b.record(RecordUpdate::Create(sent(1, 300)));
    store.commit(b).unwrap();

    let got: Vec<(H256, TransferStatus)> = store
        .sent_transfers()
        .unwrap()
        .iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert_eq!(
        got,
        vec![
            (id(5), TransferStatus::Failed),
            (id(3), TransferStatus::Success),
            (id(9), TransferStatus::Canceled),
            (id(1), TransferStatus::Pending),
        ]
    );
    let three = store.get_transfer(&id(3)).unwrap().unwrap();
    assert_eq!(
        (three.fee, three.created_ms, three.updated_ms),
        (TokenAmount::from(1u64), 100, 150),
        "the fee actually paid and the time it ended"
    );
    let five = store.get_transfer(&id(5)).unwrap().unwrap();
    assert_eq!(five.reason.as_deref(), Some("no route"));
    let received = store.received_transfers().unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(
        (received[0].id, received[0].partner, received[0].status),
        (id(20), account(0xcc), TransferStatus::Success)
    );
    assert_eq!(store.get_transfer(&id(99)).unwrap(), None);
}

#[test]
fn a_bad_history_update_fails_the_whole_batch_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), account(1)).unwrap();
    let mut first = CommitBatch::new();
    first.record(RecordUpdate::Create(sent(1, 10)));
    first.record_notifications(&[Notification::TransferCanceled { id: id(1) }], 20);
    store.commit(first).unwrap();

    type Case = (Vec<Notification>, fn(&StorageError) -> bool);
    let cases: Vec<Case> = vec![
        (
            vec![Notification::TransferFailed {
                id: id(404),
                reason: "x".into(),
            }],
            |e| matches!(e, StorageError::UnknownTransfer(i) if *i == id(404)),
        ),
        (
            vec![Notification::TransferSucceeded {
                id: id(1),
                fee: TokenAmount::ZERO,
            }],
            |e| matches!(e, StorageError::OutcomeChanged { .. }),
        ),
    ];
    for (ns, expected) in cases {
        let mut b = CommitBatch::new();
        b.set_state(&NodeState::new(account(1), NodeConfig::new(ChainId(1))))
            .unwrap();
        b.record(RecordUpdate::Create(sent(2, 30)));
        b.record_notifications(&ns, 40);
        let err = store.commit(b).unwrap_err();
        assert!(expected(&err), "{err:?}");
        assert_eq!(
            store.load().unwrap(),
            None,
            "the batch's state was not written"
        );
        assert_eq!(store.get_transfer(&id(2)).unwrap(), None);
    }
    let mut dup = CommitBatch::new();
    dup.record(RecordUpdate::Create(sent(1, 50)));
    assert!(matches!(
        store.commit(dup).unwrap_err(),
        StorageError::DuplicateTransfer(_)
    ));
    let one = store.get_transfer(&id(1)).unwrap().unwrap();
    assert_eq!((one.status, one.created_ms), (TransferStatus::Canceled, 10));
    assert_eq!(store.sent_transfers().unwrap().len(), 1);
}

#[test]
fn the_seed_payments_notifications_become_history_on_both_ends() {
    let (mut sim, token) = seed_network();
    let payment = sim.pay(token, 0, 4, 50, false).unwrap();
    assert!(sim.run_until_quiet(120_000));
    for (node, direction, partner) in [
        (0, Direction::Sent, sim.address(4)),
        (4, Direction::Received, sim.address(0)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), sim.address(node)).unwrap();
        let mut b = CommitBatch::new();
        b.record_notifications(&sim.nodes[node].notifications, 1_000);
        b.set_state(sim.state(node)).unwrap();
        store.commit(b).unwrap();
        let r = store.get_transfer(&payment).unwrap().expect("recorded");
        assert_eq!(
            (r.direction, r.status, r.partner, r.amount, r.token),
            (
                direction,
                TransferStatus::Success,
                partner,
                TokenAmount::from(50u64),
                token
            )
        );
    }
}

/// Set (to a data directory) only in the child process of the crash test.
const CRASH_CHILD_DIR: &str = "SMARTRAIDEN_STORAGE_CRASH_CHILD_DIR";

/// The crash test's child: commits batches forever, printing `committed N` after each commit
/// returns. Does nothing in a normal test run.
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) else {
        return;
    };
    let store = Store::open(&dir, account(1)).unwrap();
    let mut state = store
        .load()
        .unwrap()
        .unwrap_or_else(|| NodeState::new(account(1), NodeConfig::new(ChainId(1))));
    let start = store.chain_block().unwrap().map_or(0, |b| b.0 + 1);
    let mut out = std::io::stdout().lock();
    for n in start.. {
        state.block = BlockNumber(n);
        let mut b = CommitBatch::new();
        b.set_state(&state).unwrap();
        b.set_chain_block(BlockNumber(n));
        b.record(RecordUpdate::Create(sent(n, n)));
        // Every other batch without fsync, as the node writes batches that release nothing:
        // those too must survive the death of the process (only a power cut may lose them).
        b.set_synced(n % 2 == 0);
        store.commit(b).unwrap();
        writeln!(out, "committed {n}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn every_commit_that_returned_survives_kill_9_of_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut acknowledged: Option<u64> = None;
    for round in 0..3u64 {
        // A different, pseudo-random number of commits to let through in each round.
        let kill_after =
            20 + (seed.wrapping_mul(6364136223846793005).wrapping_add(round) >> 33) % 300;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0u64;
        // Keep reading after the kill: lines already in the pipe are commits that returned.
        for line in lines {
            let line = line.unwrap();
            // The harness may print "test crash_child_writer ... " on the same line first.
            let Some((_, n)) = line.split_once("committed ") else {
                continue;
            };
            let n: u64 = n.parse().unwrap();
            assert_eq!(
                n,
                acknowledged.map_or(0, |a| a + 1),
                "commits are numbered in order"
            );
            acknowledged = Some(n);
            seen += 1;
            if seen == kill_after {
                child.kill().unwrap();
            }
        }
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "round {round} (seed {seed}): the writer was killed, not finished: {status:?}"
        );
        assert!(
            seen >= kill_after,
            "round {round} (seed {seed}): {seen} commits"
        );

        let last = acknowledged.unwrap();
        let store = Store::open(dir.path(), account(1)).unwrap();
        let durable = store.chain_block().unwrap().expect("committed").0;
        assert!(
            durable >= last,
            "round {round} (seed {seed}): {durable} < {last}"
        );
        // Batches are atomic: the snapshot, the block and the history agree, with no gap.
        assert_eq!(store.load().unwrap().unwrap().block, BlockNumber(durable));
        let history = store.sent_transfers().unwrap();
        assert_eq!(
            history.len() as u64,
            durable + 1,
            "round {round} (seed {seed})"
        );
        assert!(
            history
                .iter()
                .enumerate()
                .all(|(i, r)| r.id == id(i as u64))
        );
        // The child resumes after the last durable batch, which may be one it never reported.
        acknowledged = Some(durable);
    }
}

#[test]
fn registered_secrets_are_indexed_once_and_read_back() {
    use smartraiden::primitives::Secret;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), account(1)).unwrap();
    let secret = Secret(H256([7; 32]));
    assert_eq!(store.registered_secret(&secret.hash()).unwrap(), None);
    store.record_secret(secret, BlockNumber(12)).unwrap();
    // The first registration is the one the contract counts: a later record changes nothing.
    store.record_secret(secret, BlockNumber(40)).unwrap();
    drop(store);
    let store = Store::open(dir.path(), account(1)).unwrap();
    assert_eq!(
        store.registered_secret(&secret.hash()).unwrap(),
        Some((secret, BlockNumber(12)))
    );
}
