//! Durable commit throughput (criterion): fsync'd `Store::commit` of a realistic snapshot (a
//! node with ten funded channels that have carried payments), alone, with one history record,
//! with ten transitions' records grouped into one commit, and with 100,000 history records
//! already stored (writes touch only changed records, so it should stay flat).

use criterion::{Criterion, criterion_group, criterion_main};
use smartraiden::core::{NodeConfig, NodeState};
use smartraiden::primitives::{Address, ChainId, H256, TokenAmount};
use smartraiden::sim::{NetworkConditions, Simulation};
use smartraiden::storage::{
    CommitBatch, Direction, RecordUpdate, Store, TransferRecord, TransferStatus,
};
use std::time::Duration;

/// Node 0 of a star: ten channels to ten partners, each having carried a few payments.
fn ten_channel_state() -> NodeState {
    let mut sim = Simulation::new(11, 3, NetworkConditions::perfect(), |_| {
        NodeConfig::new(ChainId(31337))
    });
    let (token, _) = sim.register_token();
    for partner in 1..=10 {
        sim.open_channel(token, 0, partner, 1_000, 1_000, 100);
    }
    for partner in 1..=10 {
        sim.pay(token, 0, partner, 5, true).expect("direct payment");
        sim.pay(token, 0, partner, 7, false)
            .expect("mediated payment");
        sim.pay(token, partner, 0, 3, true).expect("payment back");
    }
    assert!(sim.run_until_quiet(600_000), "payments finish");
    sim.state(0).clone()
}

fn record(n: u64) -> RecordUpdate {
    let mut id = [0u8; 32];
    id[24..].copy_from_slice(&n.to_be_bytes());
    RecordUpdate::Create(TransferRecord {
        id: H256(id),
        direction: Direction::Sent,
        token: Address([0xaa; 20]),
        partner: Address([0xbb; 20]),
        amount: TokenAmount::from(50u64),
        fee: TokenAmount::from(3u64),
        status: TransferStatus::Pending,
        reason: None,
        created_ms: n,
        updated_ms: n,
    })
}

/// Commits the snapshot plus `records` new history records per iteration, fsync'd or not.
fn bench_commits(
    c: &mut Criterion,
    name: &str,
    store: &Store,
    state: &NodeState,
    records: u64,
    next: &mut u64,
    synced: bool,
) {
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut batch = CommitBatch::new();
            batch.set_state(state).unwrap();
            batch.set_synced(synced);
            for _ in 0..records {
                batch.record(record(*next));
                *next += 1;
            }
            store.commit(batch).unwrap();
        })
    });
}

fn commits(c: &mut Criterion) {
    let state = ten_channel_state();
    let size = rmp_serde::to_vec(&state).unwrap().len();
    eprintln!("snapshot of a 10-channel node: {size} bytes");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), state.our_address).unwrap();
    let mut next = 0u64;

    bench_commits(
        c,
        "fsync'd commit: 10-channel snapshot",
        &store,
        &state,
        0,
        &mut next,
        true,
    );
    bench_commits(
        c,
        "fsync'd commit: snapshot + 1 history record",
        &store,
        &state,
        1,
        &mut next,
        true,
    );
    bench_commits(
        c,
        "unsynced commit (a batch that releases nothing): snapshot",
        &store,
        &state,
        0,
        &mut next,
        false,
    );
    bench_commits(
        c,
        "fsync'd group commit: snapshot + 10 history records",
        &store,
        &state,
        10,
        &mut next,
        true,
    );

    // Fill the history to 100,000 records (1,000 per commit), then measure again.
    while next < 100_000 {
        let mut batch = CommitBatch::new();
        for _ in 0..1_000 {
            batch.record(record(next));
            next += 1;
        }
        store.commit(batch).unwrap();
    }
    bench_commits(
        c,
        "fsync'd commit: snapshot + 1 history record, 100k records stored",
        &store,
        &state,
        1,
        &mut next,
        true,
    );
    eprintln!(
        "history holds {} records",
        store.sent_transfers().unwrap().len()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = commits
}
criterion_main!(benches);
