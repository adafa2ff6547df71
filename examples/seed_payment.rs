//! The seed article's five-node payment in the deterministic simulation, printed as a table
//! (before and after). `cargo run --release --example seed_payment [fee]`
//!
//! The same scenario on a real local testnet (Prosody, anvil, five node processes) comes with
//! `integration/testnet`.

use smartraiden::core::routing::FeeSchedule;
use smartraiden::core::{NodeConfig, Notification};
use smartraiden::primitives::{Address, ChainId, TokenAmount};
use smartraiden::sim::{NetworkConditions, Simulation};

const CHANNELS: [(usize, usize, u64, u64); 4] = [
    (1, 2, 200, 100),
    (2, 3, 100, 100),
    (2, 4, 200, 100),
    (4, 5, 100, 100),
];

fn table(sim: &Simulation, token: Address) -> Vec<(u128, u128)> {
    CHANNELS
        .iter()
        .map(|(a, b, _, _)| {
            let c = sim
                .state(a - 1)
                .channel_with(&token, &sim.address(b - 1))
                .expect("channel exists");
            (
                c.our_balance().to_u128().unwrap(),
                c.partner_balance().to_u128().unwrap(),
            )
        })
        .collect()
}

fn main() {
    let fee: u64 = std::env::args()
        .nth(1)
        .map(|f| f.parse().expect("fee is an integer"))
        .unwrap_or(0);
    let mut sim = Simulation::new(5, 2018, NetworkConditions::hostile(), |_| {
        let mut c = NodeConfig::new(ChainId(31337));
        c.fees = FeeSchedule::flat(TokenAmount::from(fee));
        c
    });
    let (token, _) = sim.register_token();
    for (a, b, da, db) in CHANNELS {
        sim.open_channel(token, a - 1, b - 1, da, db, 100);
    }
    let before = table(&sim, token);
    let id = sim.pay(token, 0, 4, 50, false).expect("a route exists");
    let quiet = sim.run_until_quiet(600_000);
    let after = table(&sim, token);
    println!(
        "node 1 pays node 5 50 tokens (fee {fee} per mediator), over a lossy, reordering network\n"
    );
    println!("| channel | before        | after         |");
    println!("|---------|---------------|---------------|");
    for (i, (a, b, _, _)) in CHANNELS.iter().enumerate() {
        println!(
            "| {a}–{b}     | {:>5} / {:<5} | {:>5} / {:<5} |",
            before[i].0, before[i].1, after[i].0, after[i].1
        );
    }
    let ok = sim.nodes[0]
        .notifications
        .iter()
        .any(|n| matches!(n, Notification::TransferSucceeded { id: i, .. } if *i == id));
    println!(
        "\ntransfer {}; {} messages sent; {} ms simulated",
        if ok && quiet {
            "succeeded"
        } else {
            "did NOT succeed"
        },
        sim.messages_sent,
        sim.now_ms
    );
    std::process::exit(if ok && quiet { 0 } else { 1 });
}
