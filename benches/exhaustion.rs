//! State a hostile partner can make a node carry (criterion, plus printed figures): 63
//! partners each push the most pending locks a channel allows (160) toward a target the node
//! cannot reach, never answer the node's AnnounceDisposed (nor acknowledge it), and register
//! 10,000 secrets on chain. Measures what the node pays for it: its snapshot's size, the
//! time to serialize it and to commit it durably, and how many messages its retransmission
//! timers send per second before and after the given-back locks expire.

use criterion::{Criterion, criterion_group, criterion_main};
use smartraiden::core::{ContractCall, Core, Ctx, Input, NodeConfig, NodeState, Output};
use smartraiden::primitives::{ChainId, H256, Secret};
use smartraiden::sim::{NetworkConditions, Simulation};
use smartraiden::storage::{CommitBatch, Store};
use std::time::{Duration, Instant};

const ATTACKERS: usize = 63;

/// The victim's state after the attack, the simulation (for the chain), and the clock.
fn attacked() -> (Simulation, NodeState) {
    let n = ATTACKERS + 2;
    let target = n - 1;
    let mut sim = Simulation::new(n, 18, NetworkConditions::perfect(), |_| {
        NodeConfig::new(ChainId(31337))
    });
    // Nothing here restarts: skip the per-step snapshots the victim's size makes slow.
    sim.persist_states = false;
    let (token, _) = sim.register_token();
    for k in 1..=ATTACKERS {
        sim.open_channel(token, k, 0, 1_000_000, 0, 100);
        sim.nodes[k]
            .withholds
            .extend(["AnnounceDisposedResponse", "Ack"]);
    }
    // The victim holds nothing toward the target: every lock for it is given back.
    sim.open_channel(token, target, 0, 1_000, 0, 100);
    let limit = NodeConfig::new(ChainId(31337)).max_pending_locks;
    let started = Instant::now();
    for k in 1..=ATTACKERS {
        for _ in 0..limit {
            let _ = sim.pay(token, k, target, 1, false);
        }
        sim.run_for(50);
    }
    for s in 0..10_000u32 {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&s.to_be_bytes());
        b[31] = 1;
        sim.submit(
            1 + (s as usize % ATTACKERS),
            ContractCall::RegisterSecret {
                secret: Secret(H256(b)),
            },
        )
        .unwrap();
    }
    sim.run_for(200);
    let state = sim.state(0).clone();
    let given_back: usize = state.channels().map(|c| c.given_back.len()).sum();
    eprintln!(
        "attack set up in {:?}: {given_back} locks given back, {} messages awaiting an Ack, {} registered secrets kept",
        started.elapsed(),
        state.delivery.len(),
        state.registered_secrets.len()
    );
    (sim, state)
}

/// Messages the victim's timers send per second over `seconds` of its clock from `from_ms`.
fn resends_per_second(sim: &Simulation, state: &NodeState, from_ms: u64, seconds: u64) -> f64 {
    let mut core = Core::restore(sim.key(0).clone(), state.clone()).unwrap();
    let mut rng = <rand_chacha::ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(1);
    // Warm the timers up to their steady backoff first.
    let mut sent = 0u64;
    let warm = 60_000;
    for t in (from_ms..from_ms + warm + seconds * 1000).step_by(50) {
        let out = core.step(
            Input::Tick,
            &mut Ctx {
                now_ms: t,
                rng: &mut rng,
            },
        );
        if t >= from_ms + warm {
            sent += out
                .iter()
                .filter(|o| matches!(o, Output::Send { .. }))
                .count() as u64;
        }
    }
    sent as f64 / seconds as f64
}

fn exhaustion(c: &mut Criterion) {
    let (mut sim, state) = attacked();
    let bytes = rmp_serde::to_vec(&state).unwrap();
    eprintln!("victim's snapshot: {} bytes", bytes.len());
    eprintln!(
        "victim resends while the given-back locks live: {:.0} messages/s",
        resends_per_second(&sim, &state, sim.now_ms, 30)
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), state.our_address).unwrap();
    c.bench_function("serialize: victim of 10^4 given-back locks", |b| {
        b.iter(|| rmp_serde::to_vec(&state).unwrap())
    });
    c.bench_function("fsync'd commit: victim of 10^4 given-back locks", |b| {
        b.iter(|| {
            let mut batch = CommitBatch::new();
            batch.set_state(&state).unwrap();
            batch.set_synced(true);
            store.commit(batch).unwrap();
        })
    });
    // Past every lock's expiry and the grace for a late answer: the node stops resending.
    let latest = state
        .channels()
        .flat_map(|c| c.partner.locks.iter().map(|l| l.expiration.0))
        .max()
        .unwrap_or(0);
    let grace = 2 * NodeConfig::new(ChainId(31337)).reveal_timeout.0;
    sim.mine(latest + grace + 2 - sim.chain.block.0);
    let after = sim.state(0).clone();
    eprintln!(
        "after the locks expired: {} messages awaiting an Ack, snapshot {} bytes, {:.0} resends/s",
        after.delivery.len(),
        rmp_serde::to_vec(&after).unwrap().len(),
        resends_per_second(&sim, &after, sim.now_ms, 30)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = exhaustion
}
criterion_main!(benches);
