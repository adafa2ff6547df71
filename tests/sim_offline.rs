//! No-internet mode (issue 14) in the deterministic simulation: nodes that lost their route to
//! the chain and the XMPP server keep paying each other directly (the simulated network stands
//! for the LAN), refuse every lock, stop receiving once a close could go unanswered, and settle
//! to the token once back online.

use smartraiden::core::{Action, ActionError, NoInternet, NodeConfig, Notification};
use smartraiden::primitives::{Address, BlockCount, ChainId, ChannelId, TokenAmount};
use smartraiden::sim::{NetworkConditions, Simulation};

/// Settle window of the test channels, in blocks (the simulation mines one a second).
const SETTLE: u64 = 40;

fn config() -> NodeConfig {
    let mut c = NodeConfig::new(ChainId(31337));
    c.reveal_timeout = BlockCount(5);
    c.block_time_ms = 1_000;
    c.offline_share_percent = 50;
    c
}

fn net(n: usize, seed: u64) -> (Simulation, Address) {
    let mut sim = Simulation::new(n, seed, NetworkConditions::perfect(), |_| config());
    let (token, _) = sim.register_token();
    (sim, token)
}

fn u(a: TokenAmount) -> u64 {
    a.to_u128().unwrap() as u64
}

/// Node `i`'s balance in its channel with `j`.
fn balance(sim: &Simulation, token: Address, i: usize, j: usize) -> u64 {
    u(sim
        .state(i)
        .channel_with(&token, &sim.address(j))
        .expect("channel")
        .our_balance())
}

fn payout(sim: &Simulation, i: usize) -> u64 {
    sim.chain.payouts.get(&sim.address(i)).map_or(0, |a| u(*a))
}

fn mode(sim: &Simulation, i: usize) -> Option<NoInternet> {
    sim.nodes[i].core.no_internet()
}

fn persisted(sim: &Simulation, i: usize) -> Vec<u8> {
    rmp_serde::to_vec(sim.state(i)).unwrap()
}

/// Mines until node `a`'s channel with `b` is settled and gone on both sides.
fn settle_closed(sim: &mut Simulation, id: ChannelId, a: usize, b: usize) {
    for _ in 0..(SETTLE * 3) {
        if sim.state(a).channel(&id).is_none() && sim.state(b).channel(&id).is_none() {
            return;
        }
        sim.run_for(sim.block_time_ms);
    }
    panic!("channel {a}-{b} never settled");
}

#[test]
fn switched_on_the_node_pays_directly_both_ways_and_refuses_mediated_transfers_at_once() {
    let (mut sim, token) = net(3, 1);
    sim.open_channel(token, 0, 1, 100, 100, SETTLE);
    sim.open_channel(token, 1, 2, 100, 100, SETTLE);
    sim.run_until_quiet(10_000);
    sim.act(0, Action::SetNoInternet(true)).unwrap();
    assert_eq!(mode(&sim, 0), Some(NoInternet::Switched));

    let before = persisted(&sim, 0);
    let err = sim.pay(token, 0, 2, 10, false).unwrap_err();
    assert!(matches!(err, ActionError::NoInternet(_)), "{err}");
    assert_eq!(
        persisted(&sim, 0),
        before,
        "a refused transfer changes nothing"
    );

    sim.pay(token, 0, 1, 10, true).unwrap();
    sim.pay(token, 1, 0, 4, true).unwrap();
    assert!(sim.run_until_quiet(10_000));
    assert_eq!(balance(&sim, token, 0, 1), 94);
    assert_eq!(balance(&sim, token, 1, 0), 106);

    sim.act(0, Action::SetNoInternet(false)).unwrap();
    assert_eq!(mode(&sim, 0), None);
    sim.pay(token, 0, 2, 10, false).unwrap();
    assert!(sim.run_until_quiet(30_000));
    assert_eq!(
        balance(&sim, token, 2, 1),
        110,
        "mediated again once switched off"
    );
}

#[test]
fn an_incoming_mediated_transfer_is_given_back_at_once_and_its_payer_stops_resending() {
    // 0 (online) pays 2 through 1, which is in no-internet mode: 1 holds no lock.
    let (mut sim, token) = net(3, 2);
    sim.open_channel(token, 0, 1, 100, 0, SETTLE);
    sim.open_channel(token, 1, 2, 100, 0, SETTLE);
    sim.run_until_quiet(10_000);
    sim.act(1, Action::SetNoInternet(true)).unwrap();
    let id = sim.pay(token, 0, 2, 10, false).unwrap();
    assert!(
        sim.run_until_quiet(60_000),
        "nothing keeps being resent: {} messages in flight",
        sim.in_flight()
    );
    assert_eq!(
        sim.count_notifications(
            0,
            |n| matches!(n, Notification::TransferFailed { id: f, .. } if *f == id)
        ),
        1,
        "the payer learns at once that the transfer failed"
    );
    for (i, j) in [(0, 1), (1, 0), (1, 2), (2, 1)] {
        let ch = sim.state(i).channel_with(&token, &sim.address(j)).unwrap();
        assert!(ch.our.locks.is_empty() && ch.partner.locks.is_empty());
    }
    assert_eq!(balance(&sim, token, 0, 1), 100);
    assert_eq!(balance(&sim, token, 1, 2), 100);
    assert_eq!(sim.state(0).delivery.len(), 0);
    assert_eq!(sim.state(1).delivery.len(), 0);

    // The same with 1 as the target: it neither asks for the secret nor keeps the lock.
    let id = sim.pay(token, 0, 1, 10, false).unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert_eq!(
        sim.count_notifications(
            0,
            |n| matches!(n, Notification::TransferFailed { id: f, .. } if *f == id)
        ),
        1
    );
    assert!(
        sim.state(1).targets.is_empty(),
        "no transfer kept at the target"
    );
    assert_eq!(balance(&sim, token, 0, 1), 100);
    assert_eq!(sim.state(1).delivery.len(), 0);
}

#[test]
fn losing_both_links_turns_the_mode_on_and_their_return_ends_it() {
    let (mut sim, token) = net(2, 3);
    sim.open_channel(token, 0, 1, 100, 100, SETTLE);
    sim.run_until_quiet(10_000);
    sim.cut_internet(0, true);
    sim.run_for(config().chain_stale_after_ms / 2);
    assert_eq!(
        mode(&sim, 0),
        None,
        "a short outage is not no-internet mode"
    );
    sim.run_for(config().chain_stale_after_ms);
    assert_eq!(mode(&sim, 0), Some(NoInternet::LinksDown));
    assert!(matches!(
        sim.pay(token, 0, 1, 5, false),
        Err(ActionError::NoInternet(_))
    ));
    sim.cut_internet(0, false);
    assert_eq!(mode(&sim, 0), None);

    // A switched-on mode ends when both links come back after an outage.
    sim.act(0, Action::SetNoInternet(true)).unwrap();
    sim.cut_internet(0, true);
    sim.run_for(1_000);
    assert_eq!(mode(&sim, 0), Some(NoInternet::Switched));
    sim.cut_internet(0, false);
    assert_eq!(mode(&sim, 0), None);
}

#[test]
fn offline_payments_are_received_only_while_a_close_could_still_be_answered() {
    // Settle window 40 blocks of 1 s, share 50 %: 20 s without the chain at most.
    let (mut sim, token) = net(2, 4);
    sim.open_channel(token, 0, 1, 100, 100, SETTLE);
    sim.run_until_quiet(10_000);
    sim.cut_internet(0, true);
    sim.cut_internet(1, true);
    sim.pay(token, 0, 1, 10, true).unwrap();
    assert!(sim.run_until_quiet(5_000));
    assert_eq!(
        balance(&sim, token, 1, 0),
        110,
        "received while the view is fresh"
    );

    sim.run_for(21_000);
    sim.pay(token, 0, 1, 10, true).unwrap();
    sim.run_for(10_000);
    assert_eq!(
        balance(&sim, token, 1, 0),
        110,
        "not accepted with the chain silent for more than half the settle window"
    );
    assert_eq!(
        sim.state(0).delivery.len(),
        1,
        "the payer keeps it to resend"
    );

    sim.cut_internet(1, false);
    assert!(sim.run_until_quiet(10_000));
    assert_eq!(
        balance(&sim, token, 1, 0),
        120,
        "accepted once the chain answers"
    );
    assert_eq!(balance(&sim, token, 0, 1), 80);
}

#[test]
fn a_partner_closing_while_the_node_is_offline_is_answered_with_the_latest_proof() {
    let (mut sim, token) = net(2, 5);
    let id = sim.open_channel(token, 0, 1, 100, 100, SETTLE);
    sim.run_until_quiet(10_000);
    sim.cut_internet(1, true);
    for _ in 0..3 {
        sim.pay(token, 0, 1, 10, true).unwrap();
    }
    assert!(sim.run_until_quiet(5_000));
    assert_eq!(balance(&sim, token, 1, 0), 130);
    // 0 closes with what it holds of 1 (nothing): unless 1 submits 0's proof, 0 keeps 30.
    sim.act(0, Action::Close { channel: id }).unwrap();
    sim.run_for(10_000);
    assert!(
        sim.state(1).channel(&id).unwrap().status
            == smartraiden::core::channel::ChannelStatus::Opened
    );
    sim.cut_internet(1, false);
    settle_closed(&mut sim, id, 0, 1);
    assert_eq!(payout(&sim, 0), 70);
    assert_eq!(payout(&sim, 1), 130);
}

#[test]
fn a_node_killed_while_offline_restarts_offline_and_keeps_paying() {
    let (mut sim, token) = net(2, 6);
    let id = sim.open_channel(token, 0, 1, 100, 100, SETTLE);
    sim.run_until_quiet(10_000);
    sim.act(0, Action::SetNoInternet(true)).unwrap();
    sim.cut_internet(0, true);
    sim.cut_internet(1, true);
    sim.pay(token, 0, 1, 10, true).unwrap();
    sim.pay(token, 1, 0, 3, true).unwrap();
    // Killed with the payment still unacknowledged, restarted without the internet.
    sim.pay(token, 0, 1, 7, true).unwrap();
    sim.crash(0);
    sim.run_for(2_000);
    sim.restart(0);
    assert_eq!(
        mode(&sim, 0),
        Some(NoInternet::Switched),
        "the switch survives"
    );
    sim.pay(token, 0, 1, 5, true).unwrap();
    assert!(sim.run_until_quiet(10_000));
    assert_eq!(balance(&sim, token, 0, 1), 81);
    assert_eq!(balance(&sim, token, 1, 0), 119);

    sim.cut_internet(0, false);
    sim.cut_internet(1, false);
    sim.act(1, Action::Close { channel: id }).unwrap();
    settle_closed(&mut sim, id, 1, 0);
    assert_eq!(payout(&sim, 0), 81);
    assert_eq!(payout(&sim, 1), 119);
}
