//! The seed article's five-node payment, in the deterministic simulation: node 1 pays node 5
//! fifty tokens over the only path 1→2→4→5, and every channel ends exactly as the article's
//! table says, on both of its ends. Then the same with a fixed fee per mediator.

use smartraiden::core::routing::FeeSchedule;
use smartraiden::core::{NodeConfig, Notification};
use smartraiden::primitives::{Address, BlockCount, ChainId, TokenAmount};
use smartraiden::sim::{NetworkConditions, Simulation};

/// Node numbers as in the article (1-based).
const CHANNELS: [(usize, usize, u64, u64); 4] = [
    (1, 2, 200, 100),
    (2, 3, 100, 100),
    (2, 4, 200, 100),
    (4, 5, 100, 100),
];

fn config(fee: u64) -> NodeConfig {
    let mut c = NodeConfig::new(ChainId(31337));
    c.fees = FeeSchedule::flat(TokenAmount::from(fee));
    c.reveal_timeout = BlockCount(10);
    c
}

fn seed_network(fee: u64, conditions: NetworkConditions, seed: u64) -> (Simulation, Address) {
    let mut sim = Simulation::new(5, seed, conditions, |_| config(fee));
    let (token, _) = sim.register_token();
    for (a, b, da, db) in CHANNELS {
        sim.open_channel(token, a - 1, b - 1, da, db, 100);
    }
    (sim, token)
}

/// `(balance of a, balance of b)` as node `a` sees the channel, after checking node `b` sees
/// exactly the mirror image (balances, nonces, locks).
fn both_ends(sim: &Simulation, token: Address, a: usize, b: usize) -> (u128, u128) {
    let (na, nb) = (a - 1, b - 1);
    let ca = sim
        .state(na)
        .channel_with(&token, &sim.address(nb))
        .expect("a has the channel");
    let cb = sim
        .state(nb)
        .channel_with(&token, &sim.address(na))
        .expect("b has the channel");
    assert_eq!(
        ca.our, cb.partner,
        "channel {a}-{b}: {a}'s end differs between the two views"
    );
    assert_eq!(
        ca.partner, cb.our,
        "channel {a}-{b}: {b}'s end differs between the two views"
    );
    assert!(
        ca.our.locks.is_empty() && ca.partner.locks.is_empty(),
        "channel {a}-{b} still holds locks"
    );
    (
        ca.our_balance().to_u128().unwrap(),
        ca.partner_balance().to_u128().unwrap(),
    )
}

fn table(sim: &Simulation, token: Address) -> Vec<(usize, usize, u128, u128)> {
    CHANNELS
        .iter()
        .map(|(a, b, _, _)| {
            let (x, y) = both_ends(sim, token, *a, *b);
            (*a, *b, x, y)
        })
        .collect()
}

fn pay_1_to_5(sim: &mut Simulation, token: Address) {
    let id = sim.pay(token, 0, 4, 50, false).expect("a route exists");
    assert!(sim.run_until_quiet(120_000), "the payment finishes");
    assert_eq!(
        sim.count_notifications(
            0,
            |n| matches!(n, Notification::TransferSucceeded { id: i, .. } if *i == id)
        ),
        1
    );
    assert_eq!(
        sim.count_notifications(
            4,
            |n| matches!(n, Notification::PaymentReceived { id: i, amount, .. }
            if *i == id && *amount == TokenAmount::from(50u64))
        ),
        1,
        "node 5 receives exactly 50"
    );
    assert!(
        sim.failed_calls().is_empty(),
        "no transaction was needed or refused: {:?}",
        sim.failed_calls()
    );
}

#[test]
fn seed_payment_ends_with_the_articles_balances_on_both_ends() {
    let (mut sim, token) = seed_network(0, NetworkConditions::perfect(), 1);
    assert_eq!(
        table(&sim, token),
        vec![
            (1, 2, 200, 100),
            (2, 3, 100, 100),
            (2, 4, 200, 100),
            (4, 5, 100, 100)
        ]
    );
    pay_1_to_5(&mut sim, token);
    assert_eq!(
        table(&sim, token),
        vec![
            (1, 2, 150, 150),
            (2, 3, 100, 100),
            (2, 4, 150, 150),
            (4, 5, 50, 150)
        ]
    );
}

#[test]
fn seed_payment_survives_a_hostile_network() {
    for seed in 0..20 {
        let (mut sim, token) = seed_network(0, NetworkConditions::hostile(), seed);
        pay_1_to_5(&mut sim, token);
        assert_eq!(
            table(&sim, token),
            vec![
                (1, 2, 150, 150),
                (2, 3, 100, 100),
                (2, 4, 150, 150),
                (4, 5, 50, 150)
            ],
            "seed {seed}"
        );
    }
}

#[test]
fn with_a_fee_of_3_per_mediator_the_target_gets_exactly_50_and_each_mediator_earns_3() {
    let (mut sim, token) = seed_network(3, NetworkConditions::perfect(), 2);
    pay_1_to_5(&mut sim, token);
    // Node 1 pays 50 + 2 × 3; node 2 keeps 3 of the 56 it receives; node 4 keeps 3 of 53.
    assert_eq!(
        table(&sim, token),
        vec![
            (1, 2, 144, 156),
            (2, 3, 100, 100),
            (2, 4, 147, 153),
            (4, 5, 50, 150)
        ]
    );
    for mediator in [1, 3] {
        assert_eq!(
            sim.count_notifications(mediator, |n| n
                == &Notification::MediationCompleted {
                    id: sim.nodes[0]
                        .notifications
                        .iter()
                        .find_map(|n| match n {
                            Notification::TransferStarted { id, .. } => Some(*id),
                            _ => None,
                        })
                        .unwrap(),
                    fee: TokenAmount::from(3u64),
                }),
            1,
            "node {} earns its fee",
            mediator + 1
        );
    }
}
