//! Transfer and channel flows in the deterministic simulation: re-routing after a disposed
//! lock, user-held secrets, cancel, lock expiry, on-chain secret registration by a mediator
//! whose payer goes silent, offline mediators, withdraw, cooperative settle, close and settle.

use smartraiden::core::routing::FeeSchedule;
use smartraiden::core::{Action, NodeConfig, Notification, TransferRequest};
use smartraiden::primitives::{
    Address, BlockCount, ChainId, ChannelId, H256, Secret, SecretHash, TokenAmount,
};
use smartraiden::sim::{NetworkConditions, Simulation};

fn config() -> NodeConfig {
    let mut c = NodeConfig::new(ChainId(31337));
    c.reveal_timeout = BlockCount(5);
    c
}

fn net(n: usize, seed: u64) -> (Simulation, Address) {
    let mut sim = Simulation::new(n, seed, NetworkConditions::perfect(), |_| config());
    let (token, _) = sim.register_token();
    (sim, token)
}

fn t(v: u64) -> TokenAmount {
    TokenAmount::from(v)
}

/// Node 0 pays `target` with a secret the user holds (it waits for `AllowRevealSecret`).
fn pay_with_user_secret(
    sim: &mut Simulation,
    token: Address,
    target: usize,
    amount: u64,
    secret: u8,
) -> Secret {
    let secret = Secret(H256([secret; 32]));
    let req = TransferRequest {
        token,
        target: sim.address(target),
        amount: t(amount),
        max_fee: None,
        is_direct: false,
        secret: Some(secret),
        identifier: None,
    };
    sim.act(0, Action::Transfer(req)).unwrap();
    secret
}

fn payout(sim: &Simulation, i: usize) -> u64 {
    sim.chain
        .payouts
        .get(&sim.address(i))
        .map_or(0, |a| a.to_u128().unwrap() as u64)
}

#[test]
fn a_disposed_lock_falls_back_to_the_next_route() {
    // 0 → 1 → 3 looks cheapest, but 1 has nothing to send to 3: it gives the lock back and
    // 0 pays through 2 instead.
    let mut sim = Simulation::new(4, 3, NetworkConditions::perfect(), |_| config());
    let (token, _) = sim.register_token();
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.open_channel(token, 0, 2, 100, 0, 100);
    sim.open_channel(token, 3, 1, 100, 0, 100); // 1 can receive from 3, not send to it
    sim.open_channel(token, 2, 3, 100, 0, 100);
    // Make the route through 1 the initiator's first choice: it believes 2 charges 1.
    let two = sim.address(2);
    sim.nodes[0].core.state.config.fees.known.insert(two, t(1));
    let id = sim.pay(token, 0, 3, 30, false).unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert!(matches!(
        sim.outcome(0, id),
        Some(Notification::TransferSucceeded { .. })
    ));
    assert_eq!(
        sim.balances(token, 0, 1),
        (100, 0),
        "the disposed lock was removed"
    );
    // Paid through 2, which keeps the 1 the initiator offered for it as the last mediator.
    assert_eq!(sim.balances(token, 0, 2), (69, 31));
    assert_eq!(sim.balances(token, 3, 2), (30, 70));
    let ch01 = sim.state(0).channel_with(&token, &sim.address(1)).unwrap();
    assert_eq!(
        ch01.disposed_to_us.len(),
        1,
        "the payee's signed disposal is kept as evidence"
    );
}

#[test]
fn a_mediator_refuses_a_fee_below_its_charge() {
    let mut sim = Simulation::new(3, 4, NetworkConditions::perfect(), |i| {
        let mut c = config();
        c.fees = FeeSchedule::flat(t(if i == 1 { 5 } else { 0 }));
        c
    });
    let (token, _) = sim.register_token();
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.open_channel(token, 1, 2, 100, 0, 100);
    let id = sim.pay(token, 0, 2, 10, false).unwrap(); // 0 expects free mediation
    assert!(sim.run_until_quiet(60_000));
    assert!(matches!(
        sim.outcome(0, id),
        Some(Notification::TransferFailed { .. })
    ));
    assert_eq!(sim.balances(token, 0, 1), (100, 0));
    assert_eq!(sim.balances(token, 1, 2), (100, 0));
}

#[test]
fn a_user_secret_holds_the_transfer_until_allow_reveal_secret() {
    let (mut sim, token) = net(3, 5);
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.open_channel(token, 1, 2, 100, 0, 100);
    let secret = pay_with_user_secret(&mut sim, token, 2, 10, 42);
    sim.run_for(3_000);
    let h = secret.hash();
    assert_eq!(
        sim.count_notifications(0, |n| n
            == &Notification::TransferAwaitingSecretRelease { id: h.0 }),
        1
    );
    assert!(sim.outcome(0, h.0).is_none(), "held: not finished");
    assert_eq!(sim.balances(token, 1, 2), (100, 0));
    sim.act(0, Action::AllowRevealSecret { secrethash: h })
        .unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert!(matches!(
        sim.outcome(0, h.0),
        Some(Notification::TransferSucceeded { .. })
    ));
    assert_eq!(sim.balances(token, 1, 2), (90, 10));
}

#[test]
fn a_transfer_canceled_before_the_reveal_expires_and_moves_nothing() {
    let (mut sim, token) = net(3, 6);
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.open_channel(token, 1, 2, 100, 0, 100);
    let secret = pay_with_user_secret(&mut sim, token, 2, 10, 7);
    sim.run_for(2_000);
    sim.act(
        0,
        Action::CancelTransfer {
            secrethash: secret.hash(),
        },
    )
    .unwrap();
    assert_eq!(
        sim.act(
            0,
            Action::AllowRevealSecret {
                secrethash: secret.hash()
            }
        ),
        Err(smartraiden::core::ActionError::Invalid(
            "transfer was canceled".into()
        ))
    );
    assert!(sim.run_until_quiet(120_000));
    assert_eq!(
        sim.outcome(0, secret.hash().0),
        Some(&Notification::TransferCanceled {
            id: secret.hash().0
        })
    );
    assert_eq!(sim.balances(token, 0, 1), (100, 0));
    assert_eq!(sim.balances(token, 1, 2), (100, 0));
}

#[test]
fn a_lock_toward_an_offline_target_expires_and_is_removed_on_every_hop() {
    let (mut sim, token) = net(3, 7);
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.open_channel(token, 1, 2, 100, 0, 100);
    sim.crash(2);
    let id = sim.pay(token, 0, 2, 10, false).unwrap();
    sim.run_for(40_000);
    sim.restart(2);
    assert!(sim.run_until_quiet(120_000));
    assert!(matches!(
        sim.outcome(0, id),
        Some(Notification::TransferFailed { .. })
    ));
    for (a, b) in [(0, 1), (1, 2)] {
        assert_eq!(sim.balances(token, a, b), (100, 0));
        let c = sim.state(a).channel_with(&token, &sim.address(b)).unwrap();
        assert!(c.our.locks.is_empty() && c.partner.locks.is_empty());
    }
}

#[test]
fn a_mediator_whose_payer_goes_silent_after_the_reveal_registers_the_secret_closes_unlocks_and_is_paid()
 {
    let (mut sim, token) = net(3, 8);
    let c01 = sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.open_channel(token, 1, 2, 100, 0, 100);
    let id = sim.pay(token, 0, 2, 10, false).unwrap();
    // Run until the mediator has paid the target, then silence the initiator for good.
    while sim.balances(token, 1, 2) != (90, 10) {
        sim.run_for(1);
    }
    sim.crash(0);
    sim.run_for(60_000);
    assert!(sim.chain.failed.is_empty(), "{:?}", sim.chain.failed);
    let ch = sim.state(1).channel(&c01).expect("closed, not yet settled");
    assert!(
        ch.status.is_closed(),
        "the mediator closed the channel to claim on chain"
    );
    sim.mine(200); // past the settle window: the mediator settles
    assert!(sim.state(1).channel(&c01).is_none(), "settled");
    assert_eq!(payout(&sim, 1), 10, "the mediator got its 10 back on chain");
    assert_eq!(payout(&sim, 0), 90);
    sim.restart(0);
    assert!(sim.run_until_quiet(60_000));
    assert!(matches!(
        sim.outcome(0, id),
        Some(Notification::TransferSucceeded { .. })
    ));
    assert!(sim.chain.failed.is_empty(), "{:?}", sim.chain.failed);
}

#[test]
fn routing_avoids_a_mediator_known_offline() {
    let (mut sim, token) = net(4, 9);
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.open_channel(token, 0, 2, 100, 0, 100);
    sim.open_channel(token, 1, 3, 100, 0, 100);
    sim.open_channel(token, 2, 3, 100, 0, 100);
    let (one, two) = (sim.address(1), sim.address(2));
    sim.input(
        0,
        smartraiden::core::Input::PeerReachability {
            peer: one,
            online: false,
        },
    );
    let id = sim.pay(token, 0, 3, 5, false).unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert!(matches!(
        sim.outcome(0, id),
        Some(Notification::TransferSucceeded { .. })
    ));
    assert_eq!(sim.balances(token, 0, 2), (95, 5));
    sim.input(
        0,
        smartraiden::core::Input::PeerReachability {
            peer: two,
            online: false,
        },
    );
    assert_eq!(
        sim.pay(token, 0, 3, 5, false),
        Err(smartraiden::core::ActionError::NoRoute(sim.address(3)))
    );
}

#[test]
fn a_direct_transfer_goes_through_while_a_lock_is_pending_on_the_same_channel() {
    let (mut sim, token) = net(3, 10);
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.open_channel(token, 1, 2, 100, 0, 100);
    let secret = pay_with_user_secret(&mut sim, token, 2, 10, 9);
    sim.run_for(2_000);
    let direct = sim.pay(token, 0, 1, 20, true).unwrap();
    sim.run_for(2_000);
    assert!(matches!(
        sim.outcome(0, direct),
        Some(Notification::TransferSucceeded { .. })
    ));
    let c = sim.state(1).channel_with(&token, &sim.address(0)).unwrap();
    assert_eq!(
        (c.partner.transferred_amount, c.partner.locked_amount()),
        (t(20), t(10))
    );
    sim.act(
        0,
        Action::AllowRevealSecret {
            secrethash: secret.hash(),
        },
    )
    .unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert_eq!(sim.balances(token, 0, 1), (70, 30));
}

fn channel(sim: &Simulation, token: Address, a: usize, b: usize) -> ChannelId {
    sim.state(a)
        .channel_with(&token, &sim.address(b))
        .unwrap()
        .identifier
}

#[test]
fn withdraw_keeps_the_channel_open_voids_old_proofs_and_transfers_continue() {
    let (mut sim, token) = net(2, 11);
    sim.open_channel(token, 0, 1, 100, 50, 100);
    sim.pay(token, 0, 1, 30, true).unwrap();
    sim.pay(token, 1, 0, 5, true).unwrap();
    assert!(sim.run_until_quiet(10_000));
    let id = channel(&sim, token, 0, 1);
    sim.act(
        0,
        Action::Withdraw {
            channel: id,
            amount: t(40),
        },
    )
    .unwrap();
    assert!(sim.run_until_quiet(10_000));
    assert!(sim.chain.failed.is_empty(), "{:?}", sim.chain.failed);
    assert_eq!(payout(&sim, 0), 40);
    let c = sim.state(0).channel(&id).unwrap();
    assert_eq!(
        (c.our.deposit, c.partner.deposit, c.our.nonce),
        (t(35), t(75), smartraiden::primitives::Nonce(0))
    );
    assert!(c.can_transfer());
    sim.pay(token, 1, 0, 10, true).unwrap();
    assert!(sim.run_until_quiet(10_000));
    assert_eq!(sim.balances(token, 0, 1), (45, 65));
    assert_eq!(sim.balances(token, 1, 0), (65, 45));
}

#[test]
fn a_withdraw_the_partner_cannot_cosign_is_refused_and_the_channel_stays_usable() {
    let (mut sim, token) = net(2, 12);
    sim.open_channel(token, 0, 1, 100, 50, 100);
    let id = channel(&sim, token, 0, 1);
    sim.crash(1); // the partner never answers
    sim.act(
        0,
        Action::Withdraw {
            channel: id,
            amount: t(10),
        },
    )
    .unwrap();
    assert_eq!(
        sim.pay(token, 0, 1, 1, true),
        Err(smartraiden::core::ActionError::ChannelState("withdrawing")),
        "no transfers while a withdraw is negotiated"
    );
    sim.run_for(31_000);
    assert_eq!(
        sim.count_notifications(
            0,
            |n| matches!(n, Notification::ChannelRequestRefused { channel, .. } if *channel == id)
        ),
        1
    );
    sim.restart(1);
    sim.pay(token, 0, 1, 1, true).unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert_eq!(sim.balances(token, 0, 1), (99, 51));
    assert_eq!(payout(&sim, 0), 0);
}

#[test]
fn cooperative_settle_pays_both_sides_their_balances_at_once() {
    let (mut sim, token) = net(2, 13);
    sim.open_channel(token, 0, 1, 100, 50, 100);
    sim.pay(token, 0, 1, 30, true).unwrap();
    assert!(sim.run_until_quiet(10_000));
    let id = channel(&sim, token, 0, 1);
    sim.act(1, Action::CooperativeSettle { channel: id })
        .unwrap();
    assert!(sim.run_until_quiet(10_000));
    assert!(sim.chain.failed.is_empty(), "{:?}", sim.chain.failed);
    assert_eq!((payout(&sim, 0), payout(&sim, 1)), (70, 80));
    assert!(sim.state(0).channel(&id).is_none() && sim.state(1).channel(&id).is_none());
    // The same pair can open again and pay.
    sim.open_channel(token, 1, 0, 10, 0, 100);
    sim.pay(token, 1, 0, 4, true).unwrap();
    assert!(sim.run_until_quiet(10_000));
    assert_eq!(sim.balances(token, 1, 0), (6, 4));
}

#[test]
fn close_with_an_outdated_proof_is_corrected_by_the_partner_and_settles_exactly() {
    let (mut sim, token) = net(2, 14);
    sim.open_channel(token, 0, 1, 100, 50, 100);
    sim.pay(token, 0, 1, 30, true).unwrap();
    sim.pay(token, 1, 0, 10, true).unwrap();
    assert!(sim.run_until_quiet(10_000));
    let id = channel(&sim, token, 0, 1);
    sim.act(1, Action::Close { channel: id }).unwrap();
    assert!(sim.run_until_quiet(10_000));
    assert!(sim.state(0).channel(&id).unwrap().status.is_closed());
    assert_eq!(
        sim.act(0, Action::Settle { channel: id })
            .unwrap_err()
            .to_string(),
        "invalid request: the settle and punish windows last until block 106 (now 1)" // closed at block 1; 100 + 5 punish
    );
    sim.mine(120);
    assert!(sim.chain.failed.is_empty(), "{:?}", sim.chain.failed);
    assert!(
        sim.state(0).channel(&id).is_none() && sim.state(1).channel(&id).is_none(),
        "settled automatically"
    );
    assert_eq!((payout(&sim, 0), payout(&sim, 1)), (80, 70));
}

#[test]
fn settle_requests_and_unknown_channels_get_clear_errors() {
    let (mut sim, token) = net(2, 15);
    sim.open_channel(token, 0, 1, 10, 0, 100);
    let id = channel(&sim, token, 0, 1);
    assert_eq!(
        sim.act(0, Action::Settle { channel: id }),
        Err(smartraiden::core::ActionError::ChannelState("opened"))
    );
    let nowhere = ChannelId(H256([1; 32]));
    assert_eq!(
        sim.act(
            0,
            Action::Deposit {
                channel: nowhere,
                amount: t(1)
            }
        ),
        Err(smartraiden::core::ActionError::UnknownChannel(nowhere))
    );
    assert_eq!(
        sim.act(
            0,
            Action::OpenChannel {
                token,
                partner: sim.address(1),
                deposit: t(1),
                settle_timeout: BlockCount(100)
            }
        ),
        Err(smartraiden::core::ActionError::ChannelExists(
            sim.address(1)
        ))
    );
    assert_eq!(
        sim.act(
            0,
            Action::CancelTransfer {
                secrethash: SecretHash(H256([3; 32]))
            }
        ),
        Err(smartraiden::core::ActionError::UnknownTransfer(SecretHash(
            H256([3; 32])
        )))
    );
}
