//! Properties of the protocol over random networks, payment streams, hostile delivery and
//! crash-restarts (deterministic simulation, seeded by proptest):
//! - tokens are conserved per channel and no balance goes negative;
//! - both ends of every channel agree once the network is quiet;
//! - every transfer ends as success, clean failure or cancellation, exactly once;
//! - no lock outlives its expiry (beyond the delivery slack of a lossy network);
//! - every node's balance change equals what it received, minus what it paid (amount + fees)
//!   for succeeded transfers, plus the fees it earned;
//! - with a dishonest node among them (it never answers AnnounceDisposed, withholds
//!   co-signatures and submits the terms it co-signed later, may never unlock what it owes,
//!   and registers its transfers' secrets on chain at random, worst-case moments), every
//!   honest node's books still balance to the token and no honest transaction fails.

use proptest::prelude::*;
use smartraiden::core::channel::CosignedTerms;
use smartraiden::core::routing::FeeSchedule;
use smartraiden::core::{Action, ContractCall, NodeConfig, Notification};
use smartraiden::primitives::{BlockCount, ChainId, H256, SecretHash, TokenAmount};
use smartraiden::sim::{NetworkConditions, Simulation};
use std::collections::{BTreeMap, BTreeSet};

const REVEAL_TIMEOUT: u64 = 5;

#[derive(Clone, Debug)]
struct Scenario {
    nodes: usize,
    /// (a, b, deposit a, deposit b)
    channels: Vec<(usize, usize, u64, u64)>,
    /// (from, to, amount, direct, ms to run before the next one)
    payments: Vec<(usize, usize, u64, bool, u64)>,
    /// (before payment index, node, ms down)
    crashes: Vec<(usize, usize, u64)>,
    /// (before payment index, for how many payments, node): the node loses its route to the
    /// chain and the XMPP server, still reaching the others (a LAN).
    outages: Vec<(usize, usize, usize)>,
    /// (before payment index, for how many payments, node): the node runs with a monitor
    /// (it forwards a lock only once the monitor holds the payer's proof), which is down
    /// for those payments.
    monitor_outages: Vec<(usize, usize, usize)>,
    cancel: Vec<usize>,
    fee: u64,
    loss: f64,
    duplicate: f64,
    max_delay: u64,
    seed: u64,
    dishonest: Option<Dishonest>,
}

/// A node that cheats where it can.
#[derive(Clone, Debug)]
struct Dishonest {
    node: usize,
    /// Also never sends the unlocks it owes (its payees must claim on chain).
    withholds_unlocks: bool,
    /// For its n-th transfer, ms after the start when it registers the secret on chain.
    register_after_ms: Vec<u64>,
    /// Before these payment indices, an honest partner asks it for a withdraw.
    withdraws: Vec<usize>,
    /// How long after co-signing it submits the terms (often after they expired).
    submit_after_ms: u64,
}

fn dishonesty(n: usize) -> impl Strategy<Value = Dishonest> {
    (
        0..n,
        proptest::bool::ANY,
        proptest::collection::vec(0u64..25_000, 12),
        proptest::collection::vec(0usize..12, 0..3),
        0u64..40_000,
    )
        .prop_map(
            |(node, withholds_unlocks, register_after_ms, withdraws, submit_after_ms)| Dishonest {
                node,
                withholds_unlocks,
                register_after_ms,
                withdraws,
                submit_after_ms,
            },
        )
}

fn scenario(with_crashes: bool) -> impl Strategy<Value = Scenario> {
    scenario_with(with_crashes, false)
}

fn scenario_with(with_crashes: bool, with_dishonest: bool) -> impl Strategy<Value = Scenario> {
    (3usize..7).prop_flat_map(move |n| {
        let tree = proptest::collection::vec((0usize..1000, 10u64..200, 0u64..200), n - 1);
        let extra = proptest::collection::vec((0..n, 0..n, 10u64..200, 0u64..200), 0..n);
        let payments = proptest::collection::vec(
            (
                0..n,
                0..n,
                1u64..80,
                proptest::bool::weighted(0.3),
                0u64..3000,
            ),
            1..12,
        );
        let crashes = if with_crashes {
            proptest::collection::vec((0usize..12, 0..n, 0u64..20_000), 0..3).boxed()
        } else {
            Just(vec![]).boxed()
        };
        let outages = if with_crashes {
            proptest::collection::vec((0usize..12, 1usize..6, 0..n), 0..3).boxed()
        } else {
            Just(vec![]).boxed()
        };
        let monitor_outages = proptest::collection::vec((0usize..12, 1usize..6, 0..n), 0..3);
        let cancel = proptest::collection::vec(0usize..12, 0..2);
        let dishonest = if with_dishonest {
            dishonesty(n).prop_map(Some).boxed()
        } else {
            Just(None).boxed()
        };
        (
            (tree, dishonest),
            extra,
            payments,
            (crashes, outages, monitor_outages),
            cancel,
            0u64..4,
            0.0f64..0.3,
            0.0f64..0.2,
            1u64..80,
            any::<u64>(),
        )
            .prop_map(
                move |(
                    (tree, dishonest),
                    extra,
                    payments,
                    (crashes, outages, monitor_outages),
                    cancel,
                    fee,
                    loss,
                    duplicate,
                    max_delay,
                    seed,
                )| {
                    let mut channels = Vec::new();
                    for (i, (parent, da, db)) in tree.into_iter().enumerate() {
                        channels.push((i + 1, parent % (i + 1), da, db));
                    }
                    for (a, b, da, db) in extra {
                        let dup = channels
                            .iter()
                            .any(|&(x, y, _, _)| (x, y) == (a, b) || (y, x) == (a, b));
                        if a != b && !dup {
                            channels.push((a, b, da, db));
                        }
                    }
                    let payments = payments.into_iter().filter(|(f, t, ..)| f != t).collect();
                    Scenario {
                        nodes: n,
                        channels,
                        payments,
                        crashes,
                        outages,
                        monitor_outages,
                        cancel,
                        fee,
                        loss,
                        duplicate,
                        max_delay,
                        seed,
                        dishonest,
                    }
                },
            )
    })
}

/// Tokens node `i` holds, as the chain will honour it: for an honest node its own view, for
/// the dishonest one its honest partners' view (its own may count payments it never made),
/// plus what settles and withdraws paid it.
fn holdings(sim: &Simulation, i: usize, dishonest: Option<usize>) -> i128 {
    if Some(i) != dishonest {
        return total_balance(sim, i);
    }
    let me = sim.address(i);
    let in_channels: i128 = (0..sim.nodes.len())
        .filter(|j| *j != i)
        .flat_map(|j| {
            sim.state(j)
                .channels()
                .filter(move |c| c.partner.address == me)
        })
        .map(|c| c.partner_balance().to_u128().unwrap() as i128)
        .sum();
    in_channels + paid_out(sim, i)
}

fn paid_out(sim: &Simulation, i: usize) -> i128 {
    sim.chain
        .payouts
        .get(&sim.address(i))
        .map_or(0, |a| a.to_u128().unwrap() as i128)
}

/// Tokens node `i` holds in open channels plus what settles and withdraws paid it on chain.
fn total_balance(sim: &Simulation, i: usize) -> i128 {
    let in_channels: i128 = sim
        .state(i)
        .channels()
        .map(|c| c.our_balance().to_u128().unwrap() as i128)
        .sum();
    let paid_out = sim
        .chain
        .payouts
        .get(&sim.address(i))
        .map_or(0, |a| a.to_u128().unwrap() as i128);
    in_channels + paid_out
}

/// Whether nothing is left to happen among the honest nodes: nothing on the wire, no running
/// transfer, unacknowledged message or pending lock, but locks a dishonest payer never took
/// back after we gave them back (its own tokens stay locked, not ours).
fn quiet(sim: &Simulation, dishonest: Option<usize>) -> bool {
    if dishonest.is_none() {
        return sim.is_quiet();
    }
    sim.in_flight() == 0
        && (0..sim.nodes.len())
            .filter(|i| Some(*i) != dishonest && !sim.nodes[*i].down)
            .all(|i| {
                let s = sim.state(i);
                s.initiators.is_empty()
                    && s.mediators.is_empty()
                    && s.targets.is_empty()
                    && s.delivery.is_empty()
                    && s.channels().all(|c| {
                        c.our.locks.is_empty()
                            && c.partner.locks.iter().all(|l| {
                                c.given_back.contains_key(&l.secrethash)
                                    || (c.partner.address == sim.address(dishonest.unwrap())
                                        && s.block > l.expiration
                                        && !s.registered_by(&l.secrethash, l.expiration))
                            })
                    })
            })
}

/// Mines until no channel is closed-but-unsettled (or frozen by co-signed terms) anywhere,
/// then lets the network go quiet.
fn settle_closed_channels(sim: &mut Simulation, d: Option<usize>) -> Result<(), TestCaseError> {
    for _ in 0..50 {
        if sim
            .nodes
            .iter()
            .all(|n| n.core.state.channels().all(|c| c.can_transfer()))
        {
            return Ok(());
        }
        sim.mine(10);
        prop_assert!(
            sim.run_until(3_600_000, |sim| quiet(sim, d)),
            "the network never went quiet while settling"
        );
    }
    Err(TestCaseError::fail("closed channels never settled"))
}

fn check_channels(
    sim: &Simulation,
    block_slack: u64,
    dishonest: Option<usize>,
) -> Result<(), TestCaseError> {
    let block = sim.chain.block.0;
    for i in 0..sim.nodes.len() {
        if Some(i) == dishonest {
            continue;
        }
        for c in sim.state(i).channels() {
            // No negative balance: what each end paid never exceeds what it had.
            for (x, y) in [(&c.our, &c.partner), (&c.partner, &c.our)] {
                let have = x.deposit.checked_add(y.transferred_amount).unwrap();
                let spent = x.transferred_amount.checked_add(x.locked_amount()).unwrap();
                prop_assert!(spent <= have, "negative balance on {:?}", c.identifier);
                // Removing a lock is its payer's move: a dishonest payer never drops a lock we
                // gave back or one that expired unclaimed (its own tokens stay locked, not ours).
                let dishonest_payer = dishonest.is_some_and(|d| x.address == sim.address(d));
                for l in x
                    .locks
                    .iter()
                    .filter(|l| !dishonest_payer && !c.given_back.contains_key(&l.secrethash))
                {
                    prop_assert!(
                        block <= l.expiration.0 + block_slack,
                        "lock {:?} outlived its expiry",
                        l.secrethash
                    );
                }
            }
            // Conservation: the two balances always add up to the deposits.
            prop_assert_eq!(
                c.our_balance().checked_add(c.partner_balance()),
                Some(c.total_deposit())
            );
        }
    }
    Ok(())
}

fn run(s: &Scenario) -> Result<(), TestCaseError> {
    let monitored: BTreeSet<usize> = s.monitor_outages.iter().map(|o| o.2).collect();
    let mut sim = Simulation::new(
        s.nodes,
        s.seed,
        NetworkConditions {
            loss: s.loss,
            duplicate: s.duplicate,
            delay_ms: (1, s.max_delay),
        },
        |i| {
            let mut c = NodeConfig::new(ChainId(31337));
            c.fees = FeeSchedule::flat(TokenAmount::from(s.fee));
            c.reveal_timeout = BlockCount(REVEAL_TIMEOUT);
            c.delegate_before_forwarding = monitored.contains(&i);
            c
        },
    );
    for &i in &monitored {
        sim.attach_monitor(i);
    }
    let (token, _) = sim.register_token();
    for &(a, b, da, db) in &s.channels {
        sim.open_channel(token, a, b, da, db, 80);
    }
    let cheat = s.dishonest.as_ref();
    let d = cheat.map(|c| c.node);
    let start: Vec<i128> = (0..s.nodes).map(|i| holdings(&sim, i, d)).collect();
    if let Some(c) = cheat {
        let w = &mut sim.nodes[c.node].withholds;
        w.extend([
            "AnnounceDisposedResponse",
            "WithdrawResponse",
            "SettleResponse",
        ]);
        if c.withholds_unlocks {
            w.insert("Secret");
        }
    }
    // The dishonest node's own moves: (due at ms, what).
    let mut moves: Vec<(u64, ContractCall)> = Vec::new();
    let mut started: BTreeMap<H256, usize> = BTreeMap::new();
    // Nodes offline now (since when), and those offline long enough to lose a position.
    let mut offline: BTreeMap<usize, u64> = BTreeMap::new();
    let mut long_offline: BTreeSet<usize> = BTreeSet::new();
    let long_down_ms = (REVEAL_TIMEOUT - 1) * sim.block_time_ms;
    let mut back_online =
        |sim: &mut Simulation, node: usize, offline: &mut BTreeMap<usize, u64>| {
            if let Some(since) = offline.remove(&node) {
                if sim.now_ms - since > long_down_ms {
                    long_offline.insert(node);
                }
                sim.cut_internet(node, false);
            }
        };
    for (k, &(from, to, amount, direct, pause)) in s.payments.iter().enumerate() {
        for &(at, len, node) in &s.monitor_outages {
            if at == k {
                sim.set_monitor_up(node, false);
            }
            if at + len == k {
                sim.set_monitor_up(node, true);
            }
        }
        for &(at, len, node) in &s.outages {
            if at + len == k {
                back_online(&mut sim, node, &mut offline);
            }
            if at == k && Some(node) != d && !offline.contains_key(&node) {
                offline.insert(node, sim.now_ms);
                sim.cut_internet(node, true);
            }
        }
        if let Some(c) = cheat
            && c.withdraws.contains(&k)
        {
            ask_dishonest_for_withdraw(&mut sim, token, c, &mut moves);
        }
        for &(at, node, down_ms) in &s.crashes {
            if at == k && !sim.nodes[node].down {
                sim.crash(node);
                sim.run_for(down_ms);
                sim.restart(node);
            }
        }
        if !sim.nodes[from].down
            && let Ok(id) = sim.pay(token, from, to, amount, direct)
        {
            if Some(from) == d {
                // The cheat registers its transfer's secret on chain when it suits it.
                let c = cheat.expect("dishonest");
                let nth = moves.len() % c.register_after_ms.len();
                if let Some(init) = sim.state(from).initiators.get(&SecretHash(id)) {
                    moves.push((
                        sim.now_ms + c.register_after_ms[nth],
                        ContractCall::RegisterSecret {
                            secret: init.secret,
                        },
                    ));
                }
            } else {
                started.insert(id, from);
            }
            if s.cancel.contains(&k) && !direct {
                let _ = sim.act(
                    from,
                    Action::CancelTransfer {
                        secrethash: smartraiden::primitives::SecretHash(id),
                    },
                );
            }
        }
        run_with_moves(&mut sim, pause, d, &mut moves);
        check_channels(&sim, 60, d)?;
    }
    for node in offline.keys().copied().collect::<Vec<_>>() {
        back_online(&mut sim, node, &mut offline);
    }
    for &i in &monitored {
        sim.set_monitor_up(i, true);
    }
    while !moves.is_empty() {
        run_with_moves(&mut sim, 1_000, d, &mut moves);
    }
    prop_assert!(
        sim.run_until(3_600_000, |sim| quiet(sim, d)),
        "the network never went quiet"
    );
    check_channels(&sim, 60, d)?;
    settle_closed_channels(&mut sim, d)?;

    // Both ends agree (the dishonest node's view is its own business).
    for &(a, b, ..) in &s.channels {
        if d == Some(a) || d == Some(b) {
            continue;
        }
        let ca = sim.state(a).channel_with(&token, &sim.address(b));
        let cb = sim.state(b).channel_with(&token, &sim.address(a));
        let (ca, cb) = match (ca, cb) {
            (Some(ca), Some(cb)) => (ca, cb),
            (None, None) => continue, // settled on chain: payouts are in the accounting below
            _ => {
                return Err(TestCaseError::fail(format!(
                    "channel {a}-{b} exists on one end only"
                )));
            }
        };
        prop_assert_eq!(&ca.our, &cb.partner);
        prop_assert_eq!(&ca.partner, &cb.our);
    }

    // Every transfer ended exactly once; accounting matches the balance changes exactly.
    let mut paid: Vec<i128> = vec![0; s.nodes];
    for (id, from) in &started {
        let ends: Vec<&Notification> = sim.nodes[*from]
            .notifications
            .iter()
            .filter(|n| matches!(n,
                Notification::TransferSucceeded { id: i, .. } | Notification::TransferFailed { id: i, .. } | Notification::TransferCanceled { id: i } if i == id))
            .collect();
        prop_assert_eq!(
            ends.len(),
            1,
            "transfer {:?} ended {} times",
            id,
            ends.len()
        );
        if let Notification::TransferSucceeded { fee, .. } = ends[0] {
            let amount = sim.nodes[*from]
                .notifications
                .iter()
                .find_map(|n| match n {
                    Notification::TransferStarted { id: i, amount, .. } if i == id => Some(*amount),
                    _ => None,
                })
                .unwrap();
            paid[*from] += (amount.to_u128().unwrap() + fee.to_u128().unwrap()) as i128;
        }
    }
    // Tokens are never created or destroyed: open-channel balances plus on-chain payouts
    // always add up to the deposits.
    let total_now: i128 = (0..s.nodes).map(|i| holdings(&sim, i, d)).sum();
    prop_assert_eq!(
        total_now,
        start.iter().sum::<i128>(),
        "tokens created or destroyed"
    );
    // A node down for longer than its reveal timeout may lose a mediation fee's position (the
    // payer's lock can expire before it reclaims it): that is what monitoring services are
    // for. Everyone else's books must balance to the token.
    for i in 0..s.nodes {
        if Some(i) == d
            || long_offline.contains(&i)
            || s.crashes
                .iter()
                .any(|&(_, n, ms)| n == i && ms > long_down_ms)
        {
            continue;
        }
        let received: i128 = sim.nodes[i]
            .notifications
            .iter()
            .map(|n| match n {
                Notification::PaymentReceived { amount, .. } => amount.to_u128().unwrap() as i128,
                Notification::MediationCompleted { fee, .. } => fee.to_u128().unwrap() as i128,
                _ => 0,
            })
            .sum();
        prop_assert_eq!(
            total_balance(&sim, i) - start[i],
            received - paid[i],
            "node {} accounting; its notifications: {:#?}; channels: {:#?}",
            i,
            sim.nodes[i]
                .notifications
                .iter()
                .filter(|n| !matches!(n, Notification::ChannelChanged { .. }))
                .collect::<Vec<_>>(),
            sim.state(i)
                .channels()
                .map(|c| (
                    c.partner.address,
                    c.status,
                    c.our_balance(),
                    c.partner_balance()
                ))
                .collect::<Vec<_>>()
        );
    }
    for i in (0..s.nodes).filter(|i| Some(*i) != d) {
        let refused: Vec<_> = sim.nodes[i]
            .transactions
            .iter()
            // Only the contract's refusals: an offline node's transactions cannot go out.
            .filter(|(_, r)| r.as_ref().is_err_and(|e| e != "RPC unavailable"))
            .collect();
        prop_assert!(
            refused.is_empty(),
            "node {} had refused transactions: {:?}",
            i,
            refused
        );
    }
    Ok(())
}

/// Runs `ms` of simulated time, carrying out the dishonest node's moves as they fall due.
fn run_with_moves(
    sim: &mut Simulation,
    ms: u64,
    d: Option<usize>,
    moves: &mut Vec<(u64, ContractCall)>,
) {
    let until = sim.now_ms + ms;
    moves.sort_by_key(|(at, _)| *at);
    while let Some((at, _)) = moves.first()
        && *at <= until
    {
        let (at, call) = moves.remove(0);
        sim.run_for(at.saturating_sub(sim.now_ms));
        let d = d.expect("moves are the dishonest node's");
        if !sim.nodes[d].down {
            // Stale terms revert once expired, a secret registers once: either way the
            // honest nodes must come out even.
            let _ = sim.submit(d, call);
        }
    }
    sim.run_for(until.saturating_sub(sim.now_ms));
}

/// An honest partner of the dishonest node asks it to co-sign a withdraw of 1; the cheat
/// co-signs, keeps the response to itself, and plans to submit the terms later.
fn ask_dishonest_for_withdraw(
    sim: &mut Simulation,
    token: smartraiden::primitives::Address,
    c: &Dishonest,
    moves: &mut Vec<(u64, ContractCall)>,
) {
    let cheat = sim.address(c.node);
    let Some((honest, id)) = (0..sim.nodes.len()).find_map(|i| {
        let ch = sim.state(i).channel_with(&token, &cheat)?;
        (i != c.node && !sim.nodes[i].down && ch.can_transfer()).then_some((i, ch.identifier))
    }) else {
        return;
    };
    if sim
        .act(
            honest,
            Action::Withdraw {
                channel: id,
                amount: TokenAmount::from(1u64),
            },
        )
        .is_err()
    {
        return;
    }
    sim.run_for(300);
    let Some(ch) = sim.state(c.node).channel(&id) else {
        return;
    };
    let Some(n) = ch.negotiation.as_ref() else {
        return;
    };
    if let (CosignedTerms::Withdraw(w), Some(theirs)) = (n.terms, n.partner_signature) {
        moves.push((
            sim.now_ms + c.submit_after_ms,
            ContractCall::Withdraw {
                token_network: ch.token_network,
                participant: w.participant,
                partner: cheat,
                participant_balance: w.participant_balance,
                participant_withdraw: w.participant_withdraw,
                expiration: w.expiration,
                participant_signature: theirs,
                partner_signature: n.our_signature,
            },
        ));
    }
}

proptest! {
    // At least 1,000 cases in CI; PROPTEST_CASES raises it for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000).max(1000),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn payments_over_a_hostile_network_conserve_tokens_and_end_cleanly(s in scenario(false)) {
        run(&s)?;
    }

    #[test]
    fn payments_with_crash_restarts_conserve_tokens_and_end_cleanly(s in scenario(true)) {
        run(&s)?;
    }

    #[test]
    fn a_dishonest_node_cannot_unbalance_the_books_of_honest_ones(s in scenario_with(true, true)) {
        run(&s)?;
    }
}

/// Found by the crash property: the mediator is down while the secret travels back, restarts,
/// and both ends of every channel must still agree.
#[test]
fn regression_mediator_restarts_while_the_secret_travels_back() {
    let s = Scenario {
        nodes: 3,
        channels: vec![(1, 0, 36, 0), (2, 0, 10, 34)],
        payments: vec![(1, 2, 1, false, 20), (2, 0, 1, false, 0)],
        crashes: vec![(1, 0, 9632)],
        outages: vec![],
        cancel: vec![],
        fee: 0,
        loss: 0.1798776137376003,
        duplicate: 0.1050937483423782,
        max_delay: 16,
        seed: 5055224393211748376,
        monitor_outages: vec![],
        dishonest: None,
    };
    run(&s).unwrap();
}

/// Found by the crash property (10,000-case run): a 1-token payment to a direct partner while
/// an unrelated node restarts.
#[test]
fn regression_payment_to_a_partner_with_an_unrelated_restart() {
    let s = Scenario {
        nodes: 5,
        channels: vec![(1, 0, 39, 1), (2, 1, 39, 1), (3, 0, 10, 31), (4, 1, 10, 1)],
        payments: vec![
            (1, 0, 40, false, 551),
            (2, 3, 32, false, 48),
            (0, 1, 2, false, 729),
            (1, 3, 1, false, 148),
            (0, 1, 1, false, 351),
        ],
        crashes: vec![(4, 3, 13052)],
        outages: vec![],
        cancel: vec![2],
        fee: 0,
        loss: 0.2663986226468571,
        duplicate: 0.0325690851855284,
        max_delay: 58,
        seed: 16982285753415996219,
        monitor_outages: vec![],
        dishonest: None,
    };
    run(&s).unwrap();
}

/// Found by the hostile-network property (10,000-case run): a payment must always report an
/// outcome.
#[test]
fn regression_every_payment_reports_an_outcome() {
    let s = Scenario {
        nodes: 3,
        channels: vec![(1, 0, 51, 60), (2, 0, 31, 129)],
        payments: vec![
            (0, 2, 1, false, 424),
            (0, 2, 55, true, 2428),
            (1, 2, 1, false, 2648),
            (2, 1, 1, false, 1069),
            (0, 2, 1, true, 2200),
            (1, 2, 1, false, 2219),
            (2, 0, 1, false, 87),
            (0, 1, 42, true, 470),
            (0, 1, 51, true, 66),
        ],
        crashes: vec![],
        outages: vec![],
        cancel: vec![9],
        fee: 1,
        loss: 0.17820450052114356,
        duplicate: 0.01939917811118222,
        max_delay: 34,
        seed: 12652900390130807072,
        monitor_outages: vec![],
        dishonest: None,
    };
    run(&s).unwrap();
}

/// Found by the dishonest-node property (first run of it).
#[test]
fn regression_dishonest_mediator_and_a_crashed_payee() {
    let s = Scenario {
        nodes: 6,
        channels: vec![
            (1, 0, 53, 10),
            (2, 0, 10, 0),
            (3, 0, 10, 0),
            (4, 0, 10, 0),
            (5, 2, 10, 0),
            (5, 0, 179, 47),
            (2, 4, 158, 62),
        ],
        payments: vec![
            (1, 2, 79, false, 2602),
            (0, 5, 65, true, 929),
            (5, 1, 63, false, 712),
            (2, 3, 8, false, 979),
            (5, 4, 70, false, 2960),
            (3, 4, 61, false, 1965),
        ],
        crashes: vec![(2, 4, 2968)],
        outages: vec![],
        cancel: vec![2],
        fee: 3,
        loss: 0.08155304074939228,
        duplicate: 0.03893251149173343,
        max_delay: 62,
        seed: 2558879729004164125,
        monitor_outages: vec![],
        dishonest: Some(Dishonest {
            node: 2,
            withholds_unlocks: false,
            register_after_ms: vec![0, 0, 0, 0, 0, 0, 1196, 24326, 9403, 5107, 6966, 8775],
            withdraws: vec![5],
            submit_after_ms: 16257,
        }),
    };
    run(&s).unwrap();
}

/// Found by the dishonest-node property over the strict chain model.
#[test]
fn regression_dishonest_payer_submits_cosigned_withdraw_terms() {
    let s = Scenario {
        nodes: 6,
        channels: vec![
            (1, 0, 53, 10),
            (2, 0, 10, 60),
            (3, 0, 10, 0),
            (4, 0, 10, 0),
            (5, 0, 11, 65),
            (2, 4, 158, 62),
        ],
        payments: vec![
            (1, 2, 79, false, 2602),
            (0, 5, 65, true, 929),
            (5, 1, 63, false, 712),
            (2, 3, 8, false, 979),
            (5, 4, 70, false, 2960),
            (3, 4, 61, false, 1965),
        ],
        crashes: vec![(2, 4, 2968)],
        outages: vec![],
        cancel: vec![2],
        fee: 3,
        loss: 0.08155304074939228,
        duplicate: 0.03893251149173343,
        max_delay: 62,
        seed: 2558879729004164125,
        monitor_outages: vec![],
        dishonest: Some(Dishonest {
            node: 5,
            withholds_unlocks: false,
            register_after_ms: vec![80, 0, 0, 0, 0, 0, 1196, 24326, 9403, 5107, 6966, 8775],
            withdraws: vec![5],
            submit_after_ms: 16257,
        }),
    };
    run(&s).unwrap();
}

/// Found by the dishonest-node property: a mediator paid by a payer that registered the
/// secret early.
#[test]
fn regression_dishonest_payer_registers_early_through_a_mediator() {
    let s = Scenario {
        nodes: 6,
        channels: vec![
            (1, 0, 82, 0),
            (2, 0, 10, 79),
            (3, 0, 10, 0),
            (4, 0, 10, 0),
            (5, 2, 10, 0),
            (5, 0, 179, 47),
            (2, 4, 158, 62),
        ],
        payments: vec![
            (1, 2, 79, false, 2602),
            (0, 5, 65, true, 929),
            (5, 1, 63, false, 712),
            (2, 3, 8, false, 979),
            (5, 4, 70, false, 2960),
            (3, 4, 61, false, 1965),
        ],
        crashes: vec![(2, 4, 2968)],
        outages: vec![],
        cancel: vec![2],
        fee: 3,
        loss: 0.08155304074939228,
        duplicate: 0.03893251149173343,
        max_delay: 62,
        seed: 2558879729004164125,
        monitor_outages: vec![],
        dishonest: Some(Dishonest {
            node: 5,
            withholds_unlocks: false,
            register_after_ms: vec![1770, 79, 0, 0, 0, 0, 299, 24326, 9403, 5107, 6966, 8775],
            withdraws: vec![5],
            submit_after_ms: 16257,
        }),
    };
    run(&s).unwrap();
}

/// Found by the dishonest-node property: a payer that never unlocks, an honest node down twice
/// for longer than its reveal timeout.
#[test]
fn regression_dishonest_payer_never_unlocks_while_a_node_is_down() {
    let s = Scenario {
        nodes: 3,
        channels: vec![(1, 0, 63, 0), (2, 0, 10, 0)],
        payments: vec![
            (0, 2, 64, true, 2528),
            (0, 1, 55, false, 1581),
            (2, 0, 30, true, 941),
            (1, 0, 63, false, 177),
            (1, 0, 12, false, 16),
            (0, 2, 12, false, 829),
            (2, 1, 6, false, 581),
            (1, 0, 75, false, 275),
        ],
        crashes: vec![(2, 0, 16417), (4, 0, 16414)],
        outages: vec![],
        cancel: vec![],
        fee: 2,
        loss: 0.057543935279051175,
        duplicate: 0.09373151795901247,
        max_delay: 22,
        seed: 9223532199802299148,
        monitor_outages: vec![],
        dishonest: Some(Dishonest {
            node: 1,
            withholds_unlocks: true,
            register_after_ms: vec![178, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 919],
            withdraws: vec![],
            submit_after_ms: 21613,
        }),
    };
    run(&s).unwrap();
}

/// Found by the dishonest-node property: a payer registers the secret of a transfer it
/// canceled; the mediator, whose lock onward had expired, is paid the payer's whole lock.
#[test]
fn regression_dishonest_payer_registers_a_canceled_transfers_secret() {
    let s = Scenario {
        nodes: 3,
        channels: vec![(1, 0, 10, 10), (2, 1, 10, 8)],
        payments: vec![
            (0, 2, 8, false, 2835),
            (2, 0, 77, false, 422),
            (0, 1, 40, false, 132),
        ],
        crashes: vec![],
        outages: vec![],
        cancel: vec![0],
        fee: 2,
        loss: 0.2727913066887335,
        duplicate: 0.19124723510759162,
        max_delay: 47,
        seed: 16284206444228565476,
        monitor_outages: vec![],
        dishonest: Some(Dishonest {
            node: 0,
            withholds_unlocks: false,
            register_after_ms: vec![11000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 86, 7002],
            withdraws: vec![],
            submit_after_ms: 12051,
        }),
    };
    run(&s).unwrap();
}

/// Found by a 10,000-case run of the dishonest-node property.
#[test]
fn regression_dishonest_node_cosigns_two_withdraws() {
    let s = Scenario {
        nodes: 4,
        channels: vec![
            (1, 0, 10, 1),
            (2, 1, 63, 1),
            (3, 2, 67, 45),
            (1, 3, 120, 171),
            (0, 3, 102, 152),
        ],
        payments: vec![
            (3, 0, 35, false, 1222),
            (3, 0, 7, false, 1835),
            (2, 0, 42, false, 2663),
            (3, 0, 21, true, 855),
            (0, 2, 67, false, 1756),
            (2, 1, 63, false, 1464),
        ],
        crashes: vec![],
        outages: vec![],
        cancel: vec![11],
        fee: 3,
        loss: 0.25532015288644017,
        duplicate: 0.003356018008543384,
        max_delay: 11,
        seed: 8244033934115703023,
        monitor_outages: vec![],
        dishonest: Some(Dishonest {
            node: 0,
            withholds_unlocks: false,
            register_after_ms: vec![0, 7834, 0, 0, 0, 0, 0, 0, 0, 314, 5519, 10376],
            withdraws: vec![4, 3],
            submit_after_ms: 38384,
        }),
    };
    run(&s).unwrap();
}

/// Found by a 10,000-case run of the hostile-network property.
#[test]
fn regression_hostile_network_goes_quiet() {
    let s = Scenario {
        nodes: 6,
        channels: vec![
            (1, 0, 43, 1),
            (2, 0, 114, 1),
            (3, 1, 76, 37),
            (4, 1, 25, 52),
            (5, 4, 56, 19),
            (3, 5, 44, 1),
            (1, 2, 10, 39),
        ],
        payments: vec![
            (2, 0, 1, false, 423),
            (1, 0, 20, true, 1073),
            (4, 1, 25, false, 1545),
            (1, 5, 75, false, 393),
            (3, 1, 76, false, 1771),
            (1, 0, 23, false, 1077),
            (3, 2, 38, false, 595),
            (2, 5, 35, false, 1877),
        ],
        crashes: vec![],
        outages: vec![],
        cancel: vec![4],
        fee: 2,
        loss: 0.21473676744225254,
        duplicate: 0.07347318203136728,
        max_delay: 34,
        seed: 14885337955493798744,
        monitor_outages: vec![],
        dishonest: None,
    };
    run(&s).unwrap();
}

/// Found by a 10,000-case run of the dishonest-node property.
#[test]
fn regression_dishonest_node_and_two_crashes() {
    let s = Scenario {
        nodes: 6,
        channels: vec![
            (1, 0, 10, 8),
            (2, 0, 10, 17),
            (3, 0, 10, 1),
            (4, 1, 10, 8),
            (5, 2, 10, 11),
            (5, 3, 87, 148),
            (1, 2, 124, 85),
        ],
        payments: vec![
            (0, 2, 17, false, 917),
            (2, 4, 7, false, 2181),
            (2, 3, 77, false, 396),
            (5, 1, 43, false, 2043),
            (5, 4, 15, false, 1183),
            (5, 0, 18, false, 9),
        ],
        crashes: vec![(6, 5, 14501), (8, 2, 1953)],
        outages: vec![],
        cancel: vec![11],
        fee: 1,
        loss: 0.14970173445016408,
        duplicate: 0.0428833705349172,
        max_delay: 67,
        seed: 4831487913103986946,
        monitor_outages: vec![],
        dishonest: Some(Dishonest {
            node: 4,
            withholds_unlocks: false,
            register_after_ms: vec![0, 0, 0, 0, 0, 129, 21255, 2378, 19089, 681, 17092, 21667],
            withdraws: vec![1, 2],
            submit_after_ms: 450,
        }),
    };
    run(&s).unwrap();
}

/// Found by the hostile-network property once monitors joined it: node 0 mediates with its
/// monitor down, so the lock waits and is given back; a lock of the same payment then reaches
/// node 0 again over another channel. (The simulation's check of "forwarded only once the
/// monitor holds the payer's proof" must look at the channel the forwarded lock came over.)
#[test]
fn regression_a_monitored_mediator_gets_the_same_payment_over_a_second_channel() {
    let s = Scenario {
        nodes: 5,
        channels: vec![
            (1, 0, 10, 5),
            (2, 0, 10, 0),
            (3, 0, 10, 0),
            (4, 2, 10, 9),
            (4, 0, 10, 0),
        ],
        payments: vec![(2, 1, 1, false, 2258), (0, 1, 6, false, 2777)],
        crashes: vec![],
        outages: vec![],
        monitor_outages: vec![(0, 2, 0)],
        cancel: vec![],
        fee: 0,
        loss: 0.0,
        duplicate: 0.023836788823382093,
        max_delay: 1,
        seed: 2312822597750944546,
        dishonest: None,
    };
    run(&s).unwrap();
}
