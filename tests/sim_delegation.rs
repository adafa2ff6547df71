//! Delegation to a monitoring service in the deterministic simulation (no I/O): the core hands
//! a fresh package over whenever what it carries changes, and a node run with a monitor
//! forwards a mediated transfer only once the monitor holds the payer's proof with its lock.
//! The simulated service checks every package as the real one does, and the simulation fails
//! any scenario in which a gated mediator forwards a lock before that (`src/sim/monitor.rs`).

use smartraiden::core::{Action, NodeConfig, Notification};
use smartraiden::primitives::{Address, BlockCount, ChainId, ChannelId, H256, TokenAmount};
use smartraiden::sim::{NetworkConditions, Simulation};

fn config(gated: bool) -> NodeConfig {
    let mut c = NodeConfig::new(ChainId(31337));
    c.reveal_timeout = BlockCount(5);
    c.delegate_before_forwarding = gated;
    c
}

fn t(v: u64) -> TokenAmount {
    TokenAmount::from(v)
}

fn succeeded(sim: &Simulation, node: usize, id: H256) -> bool {
    matches!(
        sim.outcome(node, id),
        Some(Notification::TransferSucceeded { .. })
    )
}

/// 0 → 1 → 2, node 1 run with a monitor (gated); returns the token and the channel 0–1.
fn line(seed: u64) -> (Simulation, Address, ChannelId) {
    let mut sim = Simulation::new(3, seed, NetworkConditions::perfect(), |i| config(i == 1));
    let (token, _) = sim.register_token();
    let ch01 = sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.open_channel(token, 1, 2, 100, 0, 100);
    sim.attach_monitor(1);
    (sim, token, ch01)
}

/// How many mediated transfers node 1 holds back for its monitor on `channel`.
fn waiting(sim: &Simulation, channel: ChannelId) -> usize {
    sim.core(1).forwards_waiting_for_monitor(&channel)
}

/// With node 1's monitor down, node 0 pays node 2 `amount` through node 1, whose lock then
/// waits for the monitor; the transfer's id.
fn pay_while_the_monitor_is_down(
    sim: &mut Simulation,
    token: Address,
    ch01: ChannelId,
    amount: u64,
) -> H256 {
    sim.set_monitor_up(1, false);
    let id = sim.pay(token, 0, 2, amount, false).unwrap();
    assert!(sim.run_until(5_000, |s| waiting(s, ch01) == 1));
    id
}

/// Node 2 holds no lock from node 1 (nothing was forwarded).
fn nothing_forwarded(sim: &Simulation, token: Address) -> bool {
    sim.state(2)
        .channel_with(&token, &sim.address(1))
        .is_some_and(|c| c.partner.locks.is_empty() && c.partner.latest_proof.is_none())
}

#[test]
fn a_mediator_forwards_only_once_its_monitor_holds_the_payers_proof_with_the_lock() {
    let (mut sim, token, ch01) = line(11);
    // The lock reached the mediator and waits there while the monitor is down.
    let id = pay_while_the_monitor_is_down(&mut sim, token, ch01, 10);
    sim.run_for(3_000);
    assert_eq!(waiting(&sim, ch01), 1);
    assert!(
        nothing_forwarded(&sim, token),
        "forwarded before delegating"
    );
    assert!(sim.outcome(0, id).is_none());
    assert!(sim.monitor(1).accepted.is_empty());

    // The monitor is back: it takes the package with the lock, then the lock goes on.
    sim.set_monitor_up(1, true);
    assert!(sim.run_until_quiet(60_000));
    assert!(succeeded(&sim, 0, id), "{:?}", sim.nodes[0].notifications);
    assert_eq!(sim.balances(token, 0, 1), (90, 10));
    assert_eq!(sim.balances(token, 1, 2), (90, 10));
    let first = sim.monitor(1).accepted[0];
    assert_eq!((first.1, first.2.0), (ch01, 1), "the proof with the lock");
    // In the end it holds the payer's latest proof (the unlock).
    let latest = sim.state(1).channel(&ch01).unwrap().partner.nonce;
    assert_eq!(sim.monitor(1).held[&ch01].nonce(), latest);
    assert_eq!(waiting(&sim, ch01), 0);
}

#[test]
fn a_node_without_a_monitor_forwards_at_once_and_one_with_it_waits_for_every_new_lock() {
    // Ungated: forwarded in the same step, no monitor involved.
    let mut sim = Simulation::new(3, 12, NetworkConditions::perfect(), |_| config(false));
    let (token, _) = sim.register_token();
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.open_channel(token, 1, 2, 100, 0, 100);
    let id = sim.pay(token, 0, 2, 10, false).unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert!(succeeded(&sim, 0, id));

    // Gated, monitor up: every payment goes through, each lock's proof held first.
    let (mut sim, token, ch01) = line(13);
    let ids: Vec<H256> = (1..=4)
        .map(|a| sim.pay(token, 0, 2, a, false).unwrap())
        .collect();
    assert!(sim.run_until_quiet(60_000));
    assert!(ids.iter().all(|id| succeeded(&sim, 0, *id)));
    assert_eq!(sim.balances(token, 1, 2), (90, 10));
    let nonces: Vec<u64> = sim
        .monitor(1)
        .accepted
        .iter()
        .filter(|a| a.1 == ch01)
        .map(|a| a.2.0)
        .collect();
    assert!(nonces.windows(2).all(|w| w[0] <= w[1]), "{nonces:?}");
    assert_eq!(
        *nonces.last().unwrap(),
        sim.state(1).channel(&ch01).unwrap().partner.nonce.0
    );
}

#[test]
fn a_transfer_that_waits_too_long_for_the_monitor_is_given_back_and_routed_around() {
    // 0 → 1 → 3 is the initiator's first choice; 1 is gated and its monitor stays down.
    let mut sim = Simulation::new(4, 14, NetworkConditions::perfect(), |i| config(i == 1));
    let (token, _) = sim.register_token();
    let ch01 = sim.open_channel(token, 0, 1, 100, 0, 40);
    sim.open_channel(token, 0, 2, 100, 0, 40);
    sim.open_channel(token, 1, 3, 100, 0, 40);
    sim.open_channel(token, 2, 3, 100, 0, 40);
    sim.attach_monitor(1);
    sim.set_monitor_up(1, false);
    let two = sim.address(2);
    sim.nodes[0].core.state.config.fees.known.insert(two, t(1));
    let id = sim.pay(token, 0, 3, 30, false).unwrap();
    assert!(sim.run_until(5_000, |s| waiting(s, ch01) == 1));
    let lock = sim.state(1).channel(&ch01).unwrap().partner.locks[0];
    // Given back once too little time is left to forward: before the lock expires.
    assert!(sim.run_until(120_000, |s| s.outcome(0, id).is_some()));
    assert!(
        sim.chain.block < lock.expiration,
        "given back before expiry"
    );
    assert!(succeeded(&sim, 0, id), "{:?}", sim.nodes[0].notifications);
    assert!(sim.run_until_quiet(60_000));
    assert_eq!(sim.balances(token, 0, 1), (100, 0), "nothing moved on 0–1");
    assert_eq!(
        sim.balances(token, 1, 3),
        (100, 0),
        "nothing forwarded by 1"
    );
    assert_eq!(sim.balances(token, 0, 2), (69, 31));
    assert_eq!(sim.balances(token, 3, 2), (30, 70));
    assert!(sim.state(1).mediators.is_empty());
    assert_eq!(waiting(&sim, ch01), 0);
    assert_eq!(
        sim.state(0).channel(&ch01).unwrap().disposed_to_us.len(),
        1,
        "the initiator holds the mediator's signed give-back"
    );
    // Back, the monitor gets the payer's proof without the lock.
    sim.set_monitor_up(1, true);
    let held = &sim.monitor(1).held[&ch01];
    assert_eq!((held.nonce().0, held.unlocks.len()), (2, 0));
}

#[test]
fn a_lock_given_back_to_a_payer_that_never_answers_is_listed_for_the_monitor() {
    let (mut sim, token, ch01) = line(20);
    // The payer never answers the give-back: its last proof still holds the lock.
    sim.nodes[0].withholds.insert("AnnounceDisposedResponse");
    pay_while_the_monitor_is_down(&mut sim, token, ch01, 10);
    let lock = sim.state(1).channel(&ch01).unwrap().partner.locks[0];
    assert!(sim.run_until(60_000, |s| s.state(1).mediators.is_empty()));
    sim.set_monitor_up(1, true);
    // The package for the proof holding the lock says it was given back: the monitor must
    // never unlock it (the payer holds our signed statement and would punish the unlock).
    let held = &sim.monitor(1).held[&ch01];
    assert_eq!(held.nonce().0, 1);
    assert_eq!(held.given_back, vec![lock.secrethash]);
    assert!(held.unlocks.is_empty());
}

#[test]
fn a_mediator_restarted_while_waiting_forwards_once_its_monitor_holds_the_proof() {
    let (mut sim, token, ch01) = line(15);
    let id = pay_while_the_monitor_is_down(&mut sim, token, ch01, 10);
    sim.crash(1);
    sim.run_for(1_000);
    sim.restart(1);
    // Restored from its persisted state, it still waits (the lock leaves it a few blocks).
    assert_eq!(waiting(&sim, ch01), 1);
    sim.run_for(1_000);
    assert!(nothing_forwarded(&sim, token));
    sim.set_monitor_up(1, true);
    assert!(sim.run_until_quiet(60_000));
    assert!(succeeded(&sim, 0, id));
    assert_eq!(sim.balances(token, 1, 2), (90, 10));
}

#[test]
fn dropping_the_monitor_on_restart_forwards_what_waited() {
    let (mut sim, token, ch01) = line(16);
    let id = pay_while_the_monitor_is_down(&mut sim, token, ch01, 10);
    // Restarted without `--monitor`: the waiting transfer goes on at the next step.
    sim.crash(1);
    sim.nodes[1].monitor = None;
    sim.restart(1);
    sim.nodes[1].core.state.config.delegate_before_forwarding = false;
    assert!(sim.run_until_quiet(60_000));
    assert!(succeeded(&sim, 0, id));
    assert_eq!(sim.balances(token, 1, 2), (90, 10));
}

#[test]
fn new_proofs_secrets_and_given_back_locks_each_hand_over_a_fresh_package() {
    // Node 2 is the payee, with a monitor (not gated: it forwards nothing anyway).
    let mut sim = Simulation::new(3, 17, NetworkConditions::perfect(), |_| config(false));
    let (token, _) = sim.register_token();
    sim.open_channel(token, 0, 1, 100, 0, 100);
    let ch12 = sim.open_channel(token, 1, 2, 100, 0, 100);
    sim.attach_monitor(2);
    assert!(
        sim.monitor(2).accepted.is_empty(),
        "nothing to delegate before the partner pays"
    );
    let id = sim.pay(token, 1, 2, 5, true).unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert!(succeeded(&sim, 1, id));
    assert_eq!(sim.monitor(2).held[&ch12].nonce().0, 1);

    // A mediated payment: the lock (nonce 2), the secret learned (an unlock delegation for
    // it, same nonce), then the partner's unlock (nonce 3, nothing left to unlock).
    let id = sim.pay(token, 0, 2, 7, false).unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert!(succeeded(&sim, 0, id));
    let accepted: Vec<u64> = sim.monitor(2).accepted.iter().map(|a| a.2.0).collect();
    assert_eq!(accepted, vec![1, 2, 2, 3], "one package per change");
    let held = &sim.monitor(2).held[&ch12];
    assert_eq!((held.nonce().0, held.unlocks.len()), (3, 0));

    // On the way into no-internet mode every channel is handed over again.
    sim.act(2, Action::SetNoInternet(true)).unwrap();
    let accepted: Vec<u64> = sim.monitor(2).accepted.iter().map(|a| a.2.0).collect();
    assert_eq!(accepted, vec![1, 2, 2, 3, 3]);
}

#[test]
fn after_a_withdraw_starts_a_new_epoch_a_lock_waits_for_the_new_epochs_proof() {
    let (mut sim, token, ch01) = line(18);
    // Nonces 1–4 of the payer's proofs on 0–1 held by the monitor.
    for a in [1, 2] {
        let id = sim.pay(token, 0, 2, a, false).unwrap();
        assert!(sim.run_until_quiet(60_000));
        assert!(succeeded(&sim, 0, id));
    }
    let old_epoch = sim.state(1).channel(&ch01).unwrap().open_block_number;
    assert_eq!(sim.monitor(1).held[&ch01].nonce().0, 4);
    // A co-signed withdraw: a new epoch, whose proofs start at nonce 1 again.
    sim.mine(2);
    sim.act(
        0,
        Action::Withdraw {
            channel: ch01,
            amount: t(10),
        },
    )
    .unwrap();
    assert!(sim.run_until(60_000, |s| {
        s.state(1)
            .channel(&ch01)
            .is_some_and(|c| c.open_block_number > old_epoch)
    }));
    let id = pay_while_the_monitor_is_down(&mut sim, token, ch01, 5);
    assert_eq!(sim.state(1).channel(&ch01).unwrap().partner.nonce.0, 1);
    sim.run_for(2_000);
    assert!(
        sim.outcome(0, id).is_none(),
        "the old epoch's nonce 4 must not let nonce 1 through"
    );
    sim.set_monitor_up(1, true);
    assert!(sim.run_until_quiet(60_000));
    assert!(succeeded(&sim, 0, id));
    assert_eq!(sim.balances(token, 1, 2), (92, 8));
}

#[test]
fn a_transfer_waiting_for_the_monitor_is_given_back_when_no_internet_mode_begins() {
    let (mut sim, token, ch01) = line(19);
    let id = pay_while_the_monitor_is_down(&mut sim, token, ch01, 10);
    // The mediator's user switches no-internet mode on: it holds no lock, so it gives this one
    // back at once instead of waiting for its expiry.
    sim.act(1, Action::SetNoInternet(true)).unwrap();
    assert_eq!(waiting(&sim, ch01), 0);
    assert!(sim.state(1).mediators.is_empty());
    assert!(sim.run_until(5_000, |s| s.outcome(0, id).is_some()));
    assert!(matches!(
        sim.outcome(0, id),
        Some(Notification::TransferFailed { .. })
    ));
    assert!(nothing_forwarded(&sim, token));
    assert_eq!(sim.balances(token, 0, 1), (100, 0));
}
