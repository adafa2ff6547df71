//! The route and fee preview (`GET /api/1/paths/…`, `Core::preview_transfer`) tells exactly
//! what the payment then does: the same route, the same fee, the same amount locked, and the
//! same refusal when it would be refused; and asking changes nothing.

use smartraiden::core::routing::FeeSchedule;
use smartraiden::core::{Action, NodeConfig, Notification, TransferRequest};
use smartraiden::primitives::{Address, BlockCount, ChainId, TokenAmount};
use smartraiden::sim::{NetworkConditions, Simulation};

fn seed(fee: u64) -> (Simulation, Address) {
    let mut sim = Simulation::new(5, 7, NetworkConditions::perfect(), |_| {
        let mut c = NodeConfig::new(ChainId(31337));
        c.fees = FeeSchedule::flat(TokenAmount::from(fee));
        c.reveal_timeout = BlockCount(10);
        c
    });
    let (token, _) = sim.register_token();
    for (a, b, da, db) in [
        (1, 2, 200, 100),
        (2, 3, 100, 100),
        (2, 4, 200, 100),
        (4, 5, 100, 100),
    ] {
        sim.open_channel(token, a - 1, b - 1, da, db, 100);
    }
    (sim, token)
}

fn request(sim: &Simulation, token: Address, to: usize, amount: u64) -> TransferRequest {
    TransferRequest {
        token,
        target: sim.address(to),
        amount: TokenAmount::from(amount),
        max_fee: None,
        is_direct: false,
        secret: None,
        identifier: None,
    }
}

#[test]
fn the_preview_shows_the_route_fee_and_lock_the_payment_then_takes() {
    let (mut sim, token) = seed(3);
    let before = sim.state(0).clone();
    let p = sim
        .core(0)
        .preview_transfer(&request(&sim, token, 4, 50))
        .expect("a route");
    assert_eq!(sim.state(0), &before, "a preview changes nothing");
    assert_eq!(p.path, vec![sim.address(1), sim.address(3), sim.address(4)]);
    assert_eq!(p.fee, TokenAmount::from(6u64), "two mediators at 3 each");
    assert_eq!(p.total, TokenAmount::from(56u64));
    assert!(!p.direct);

    let id = sim.pay(token, 0, 4, 50, false).unwrap();
    let started = sim.state(0).channel(&p.channel).unwrap();
    let lock = started.our.locks.first().expect("the payment's lock");
    assert_eq!(
        lock.amount, p.total,
        "the payment locks what the preview said"
    );
    assert_eq!(started.partner.address, p.path[0]);
    assert_eq!(
        sim.count_notifications(0, |n| matches!(n, Notification::TransferStarted { id: i, fee, .. } if *i == id && *fee == p.fee)),
        1
    );
    assert!(sim.run_until_quiet(60_000));
    assert_eq!(
        sim.count_notifications(0, |n| matches!(n, Notification::TransferSucceeded { id: i, fee } if *i == id && *fee == p.fee)),
        1,
        "paid exactly the fee shown"
    );
}

#[test]
fn the_preview_refuses_what_the_payment_would_refuse_with_the_same_error() {
    let (mut sim, token) = seed(3);
    let unknown_token = Address([0x55; 20]);
    let mut cases = vec![
        request(&sim, token, 4, 0),
        request(&sim, token, 0, 5),
        request(&sim, unknown_token, 4, 5),
        request(&sim, token, 4, 250),
        request(&sim, token, 4, 199),
    ];
    let mut capped = request(&sim, token, 4, 10);
    capped.max_fee = Some(TokenAmount::from(5u64));
    cases.push(capped);
    let mut direct_far = request(&sim, token, 4, 10);
    direct_far.is_direct = true;
    cases.push(direct_far);
    for req in cases {
        let preview = sim.core(0).preview_transfer(&req).expect_err("refused");
        let act = sim
            .act(0, Action::Transfer(req.clone()))
            .expect_err("refused too");
        assert_eq!(preview, act, "{req:?}");
    }
    let mut direct = request(&sim, token, 1, 10);
    direct.is_direct = true;
    let p = sim.core(0).preview_transfer(&direct).unwrap();
    assert!(p.direct);
    assert_eq!(
        (p.fee, p.total),
        (TokenAmount::ZERO, TokenAmount::from(10u64))
    );
}
