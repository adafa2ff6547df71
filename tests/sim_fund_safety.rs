//! Fund safety against dishonest partners, failing transactions and a lagging chain view, in
//! the deterministic simulation over a chain model as strict as the contracts. Each test is a
//! way an honest node used to lose tokens (issue 18); each asserts the honest node's books to
//! the token.

use smartraiden::core::channel::{CosignedTerms, EndState};
use smartraiden::core::{Action, ContractCall, NodeConfig, Notification, TransferRequest};
use smartraiden::messages::{BalanceProof, MediatedTransfer, Message, RevealSecret, WithdrawTerms};
use smartraiden::primitives::{
    Address, BlockCount, ChainId, ChannelId, H256, Nonce, Secret, SecretHash, TokenAmount,
};
use smartraiden::proofs::Lock;
use smartraiden::sim::{NetworkConditions, Simulation};

const REVEAL: u64 = 5;

fn config() -> NodeConfig {
    let mut c = NodeConfig::new(ChainId(31337));
    c.reveal_timeout = BlockCount(REVEAL);
    c
}

fn t(v: u64) -> TokenAmount {
    TokenAmount::from(v)
}

fn u(a: TokenAmount) -> u64 {
    a.to_u128().unwrap() as u64
}

fn net(n: usize, seed: u64) -> (Simulation, Address) {
    let mut sim = Simulation::new(n, seed, NetworkConditions::perfect(), |_| config());
    let (token, _) = sim.register_token();
    (sim, token)
}

fn channel(sim: &Simulation, token: Address, a: usize, b: usize) -> ChannelId {
    sim.state(a)
        .channel_with(&token, &sim.address(b))
        .expect("channel")
        .identifier
}

/// Node `i`'s balance in its channel with `j` (our side), if the channel exists.
fn balance(sim: &Simulation, token: Address, i: usize, j: usize) -> Option<u64> {
    sim.state(i)
        .channel_with(&token, &sim.address(j))
        .map(|c| u(c.our_balance()))
}

fn payout(sim: &Simulation, i: usize) -> u64 {
    sim.chain.payouts.get(&sim.address(i)).map_or(0, |a| u(*a))
}

/// Tokens of node `i`: in its channels plus what the chain paid it.
fn holdings(sim: &Simulation, i: usize) -> u64 {
    sim.state(i)
        .channels()
        .map(|c| u(c.our_balance()))
        .sum::<u64>()
        + payout(sim, i)
}

fn mediated(
    sim: &Simulation,
    token: Address,
    target: usize,
    amount: u64,
    secret: Secret,
) -> Action {
    Action::Transfer(TransferRequest {
        token,
        target: sim.address(target),
        amount: t(amount),
        max_fee: None,
        is_direct: false,
        secret: Some(secret),
        identifier: None,
    })
}

fn submitted(sim: &Simulation, i: usize, f: impl Fn(&ContractCall) -> bool) -> usize {
    sim.nodes[i]
        .transactions
        .iter()
        .filter(|(c, _)| f(c))
        .count()
}

fn failed_transactions(sim: &Simulation, i: usize) -> Vec<String> {
    sim.nodes[i]
        .transactions
        .iter()
        .filter_map(|(c, r)| r.as_ref().err().map(|e| format!("{c:?}: {e}")))
        .collect()
}

/// Mines `blocks`, one a second, letting messages flow between them.
fn pass_blocks(sim: &mut Simulation, blocks: u64) {
    sim.run_for(blocks * sim.block_time_ms);
}

/// Closes `a`'s channel with `b` and mines until both settled it.
fn close_and_settle(sim: &mut Simulation, token: Address, a: usize, b: usize) {
    let id = channel(sim, token, a, b);
    sim.act(a, Action::Close { channel: id }).unwrap();
    for _ in 0..200 {
        if sim.state(a).channel(&id).is_none() && sim.state(b).channel(&id).is_none() {
            return;
        }
        pass_blocks(sim, 1);
    }
    panic!("channel {a}-{b} never settled");
}

#[test]
fn a_node_never_unlocks_a_lock_it_gave_back_even_when_the_payer_registers_its_secret() {
    // 0 pays 2 through 1, but 1 cannot send to 2: it gives the lock back. 0 never answers
    // the AnnounceDisposed, registers the secret on chain and waits for 1 to unlock the lock
    // on chain, to take the whole channel with punishObsoleteUnlock.
    let (mut sim, token) = net(3, 1);
    sim.open_channel(token, 0, 1, 100, 50, 100);
    sim.open_channel(token, 2, 1, 100, 0, 100); // 1 has nothing to send toward 2
    sim.nodes[0].withholds.insert("AnnounceDisposedResponse");
    let secret = Secret(H256([7; 32]));
    sim.act(0, mediated(&sim, token, 2, 1, secret)).unwrap();
    sim.run_for(500);
    let ch = channel(&sim, token, 1, 0);
    assert!(
        sim.state(1)
            .channel(&ch)
            .unwrap()
            .given_back
            .contains_key(&secret.hash()),
        "1 gave the lock back"
    );
    // The worst moment: right away, while the lock is young.
    sim.submit(0, ContractCall::RegisterSecret { secret })
        .unwrap();
    let expiration = sim
        .state(1)
        .channel(&ch)
        .unwrap()
        .partner
        .lock(&secret.hash())
        .unwrap()
        .expiration;
    let wait = expiration.0 - sim.chain.block.0 + 4 * REVEAL;
    pass_blocks(&mut sim, wait);

    assert_eq!(
        submitted(&sim, 1, |c| matches!(
            c,
            ContractCall::Unlock { .. } | ContractCall::Close { .. }
        )),
        0,
        "1 neither closed for the lock nor unlocked it"
    );
    assert!(
        sim.state(1).delivery.all().all(|p| p.to != sim.address(0)),
        "the AnnounceDisposed is no longer resent once its lock has expired"
    );
    // Settling the channel normally: 1 gets its deposit back, to the token.
    close_and_settle(&mut sim, token, 1, 0);
    assert_eq!(payout(&sim, 1), 50);
    assert_eq!(payout(&sim, 0), 100);
    assert_eq!(
        submitted(&sim, 1, |c| matches!(c, ContractCall::Unlock { .. })),
        0
    );
}

#[test]
fn every_lock_of_a_silent_payer_is_unlocked_on_chain_with_the_exact_payout() {
    // 0 pays 1 twice with locks, reveals both secrets, then never sends the unlocks. 1 registers
    // both secrets, closes, and must unlock both locks (the second one proves against the
    // original root with the amount the first unlock left on chain).
    let (mut sim, token) = net(2, 2);
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.nodes[0].withholds.insert("Secret");
    sim.act(0, mediated(&sim, token, 1, 10, Secret(H256([1; 32]))))
        .unwrap();
    sim.act(0, mediated(&sim, token, 1, 20, Secret(H256([2; 32]))))
        .unwrap();
    sim.act(
        0,
        Action::AllowRevealSecret {
            secrethash: Secret(H256([1; 32])).hash(),
        },
    )
    .unwrap();
    sim.act(
        0,
        Action::AllowRevealSecret {
            secrethash: Secret(H256([2; 32])).hash(),
        },
    )
    .unwrap();
    sim.run_for(1_000);
    let ch = channel(&sim, token, 1, 0);
    assert_eq!(
        sim.state(1).channel(&ch).unwrap().partner.secrets.len(),
        2,
        "1 knows both secrets"
    );
    close_when_settled(&mut sim, token, 1, 0);
    let unlocks: Vec<_> = sim.nodes[1]
        .transactions
        .iter()
        .filter(|(c, _)| matches!(c, ContractCall::Unlock { .. }))
        .collect();
    assert_eq!(unlocks.len(), 2, "one unlock per lock");
    assert!(
        unlocks.iter().all(|(_, r)| r.is_ok()),
        "both unlocks went through: {unlocks:?}"
    );
    assert_eq!(payout(&sim, 1), 30, "1 is paid both locks");
    assert_eq!(payout(&sim, 0), 70);
    assert!(
        failed_transactions(&sim, 1).is_empty(),
        "{:?}",
        failed_transactions(&sim, 1)
    );
}

/// The withdraw terms node `who` holds with both signatures, as a dishonest node keeps them.
fn cosigned_withdraw(sim: &Simulation, who: usize, id: ChannelId) -> ContractCall {
    let ch = sim.state(who).channel(&id).unwrap();
    let n = ch.negotiation.as_ref().expect("terms outstanding");
    let CosignedTerms::Withdraw(w) = n.terms else {
        panic!("not a withdraw")
    };
    ContractCall::Withdraw {
        token_network: ch.token_network,
        participant: w.participant,
        partner: sim.address(who),
        participant_balance: w.participant_balance,
        participant_withdraw: w.participant_withdraw,
        expiration: w.expiration,
        participant_signature: n.partner_signature.unwrap(),
        partner_signature: n.our_signature,
    }
}

#[test]
fn withdraw_terms_the_partner_withholds_cannot_void_payments_made_after_they_expire() {
    // 0 asks to withdraw 30. 1 co-signs but keeps the response to itself, waits until 0 gives
    // up, pays 0 10, then submits the old terms: they would reset the balances and void the 10.
    let (mut sim, token) = net(2, 3);
    let id = sim.open_channel(token, 0, 1, 100, 100, 100);
    sim.nodes[1].withholds.insert("WithdrawResponse");
    sim.act(
        0,
        Action::Withdraw {
            channel: id,
            amount: t(30),
        },
    )
    .unwrap();
    sim.run_for(500);
    let stale = cosigned_withdraw(&sim, 1, id);
    // While its signature is out, 0 takes no payment and makes no deposit.
    assert!(
        sim.act(
            0,
            Action::Deposit {
                channel: id,
                amount: t(5)
            }
        )
        .is_err()
    );
    assert!(sim.pay(token, 0, 1, 1, true).is_err());
    let expiration = sim
        .state(0)
        .channel(&id)
        .unwrap()
        .negotiation
        .as_ref()
        .unwrap()
        .terms
        .expiration();
    let wait = expiration.0 + 1 - sim.chain.block.0;
    pass_blocks(&mut sim, wait);
    assert!(
        sim.state(0).channel(&id).unwrap().can_transfer(),
        "the terms expired: open again"
    );
    assert!(
        sim.count_notifications(0, |n| matches!(
            n,
            Notification::ChannelRequestRefused { .. }
        )) >= 1
    );
    sim.pay(token, 1, 0, 10, true).unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert_eq!(balance(&sim, token, 0, 1), Some(110));
    let err = sim.submit(1, stale).unwrap_err();
    assert_eq!(err, "RequestExpired");
    assert_eq!(balance(&sim, token, 0, 1), Some(110), "the payment stands");
    close_and_settle(&mut sim, token, 0, 1);
    assert_eq!(payout(&sim, 0), 110);
    assert_eq!(payout(&sim, 1), 90);
}

#[test]
fn withdraw_terms_the_partner_submits_while_they_hold_pay_out_exactly_what_was_signed() {
    let (mut sim, token) = net(2, 4);
    let id = sim.open_channel(token, 0, 1, 100, 100, 100);
    sim.nodes[1].withholds.insert("WithdrawResponse");
    sim.act(
        0,
        Action::Withdraw {
            channel: id,
            amount: t(30),
        },
    )
    .unwrap();
    sim.run_for(500);
    let terms = cosigned_withdraw(&sim, 1, id);
    // 1 tries to pay 0 meanwhile: refused, nothing changes.
    sim.send_as(
        1,
        0,
        Message::Ping(smartraiden::messages::Ping { nonce: 1 }),
    );
    pass_blocks(&mut sim, 3);
    sim.submit(1, terms).unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert_eq!(payout(&sim, 0), 30);
    assert_eq!(balance(&sim, token, 0, 1), Some(70));
    assert!(sim.state(0).channel(&id).unwrap().can_transfer());
    sim.pay(token, 1, 0, 10, true).unwrap();
    assert!(sim.run_until_quiet(60_000));
    close_and_settle(&mut sim, token, 0, 1);
    assert_eq!(payout(&sim, 0), 30 + 80);
    assert_eq!(payout(&sim, 1), 90);
}

#[test]
fn two_withdraw_requests_crossing_each_other_end_with_the_channel_usable() {
    let (mut sim, token) = net(2, 5);
    let id = sim.open_channel(token, 0, 1, 100, 100, 100);
    sim.act(
        0,
        Action::Withdraw {
            channel: id,
            amount: t(10),
        },
    )
    .unwrap();
    sim.act(
        1,
        Action::Withdraw {
            channel: id,
            amount: t(20),
        },
    )
    .unwrap();
    pass_blocks(&mut sim, config().cosign_window.0 + 2);
    for i in 0..2 {
        assert!(
            sim.state(i).channel(&id).unwrap().can_transfer(),
            "node {i} open again"
        );
    }
    sim.act(
        0,
        Action::Withdraw {
            channel: id,
            amount: t(10),
        },
    )
    .unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert_eq!(payout(&sim, 0), 10);
    assert_eq!(balance(&sim, token, 0, 1), Some(90));
}

#[test]
fn a_mediator_whose_chain_view_lags_takes_on_no_lock() {
    // 1's follower lags. 0 pays 2 through 1; 0's lock expires on chain while 1 still sees it
    // young. 0 (colluding with 2) then hands 2 the secret: had 1 forwarded the lock, 2 would
    // reveal and 1 pay it, while 0 drops its expired lock.
    let (mut sim, token) = net(3, 6);
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.open_channel(token, 1, 2, 100, 0, 100);
    sim.hold_blocks(1, true);
    pass_blocks(&mut sim, 3);
    assert!(
        sim.nodes[1].core.chain_behind().is_some(),
        "1 knows it trails"
    );
    let secret = Secret(H256([9; 32]));
    sim.act(0, mediated(&sim, token, 2, 10, secret)).unwrap();
    sim.act(
        0,
        Action::AllowRevealSecret {
            secrethash: secret.hash(),
        },
    )
    .unwrap();
    pass_blocks(&mut sim, REVEAL * 4);
    sim.send_as(0, 2, Message::RevealSecret(RevealSecret { secret }));
    pass_blocks(&mut sim, 2);
    assert_eq!(
        sim.state(1)
            .channel_with(&token, &sim.address(2))
            .unwrap()
            .our
            .locks
            .len(),
        0,
        "1 forwarded nothing while behind"
    );
    sim.hold_blocks(1, false);
    assert!(sim.run_until_quiet(600_000));
    pass_blocks(&mut sim, 2 * REVEAL);
    assert!(sim.run_until_quiet(600_000));
    assert_eq!(holdings(&sim, 1), 100, "the mediator lost nothing");
    assert_eq!(
        sim.count_notifications(2, |n| matches!(n, Notification::PaymentReceived { .. })),
        0
    );
}

#[test]
fn a_close_whose_transaction_fails_is_submitted_again_until_the_channel_closes() {
    let (mut sim, token) = net(2, 7);
    let id = sim.open_channel(token, 0, 1, 100, 100, 100);
    sim.pay(token, 1, 0, 25, true).unwrap();
    assert!(sim.run_until_quiet(60_000));
    sim.fail_transactions(0, |c| matches!(c, ContractCall::Close { .. }), Some(2));
    sim.act(0, Action::Close { channel: id }).unwrap();
    pass_blocks(&mut sim, 20);
    assert!(
        sim.state(0)
            .channel(&id)
            .is_none_or(|c| c.status.is_closed()),
        "closed on the third try"
    );
    assert_eq!(
        submitted(&sim, 0, |c| matches!(c, ContractCall::Close { .. })),
        3
    );
    for _ in 0..200 {
        if sim.state(0).channel(&id).is_none() {
            break;
        }
        pass_blocks(&mut sim, 1);
    }
    assert_eq!(payout(&sim, 0), 125);
    assert_eq!(payout(&sim, 1), 75);
}

#[test]
fn a_settle_whose_transaction_fails_is_retried() {
    let (mut sim, token) = net(2, 8);
    let id = sim.open_channel(token, 0, 1, 100, 100, 100);
    for i in 0..2 {
        sim.fail_transactions(i, |c| matches!(c, ContractCall::Settle { .. }), Some(3));
    }
    close_and_settle(&mut sim, token, 0, 1);
    assert!(sim.state(0).channel(&id).is_none());
    assert_eq!(payout(&sim, 0), 100);
    assert_eq!(payout(&sim, 1), 100);
}

#[test]
fn a_failed_secret_registration_near_the_deadline_is_retried_in_time() {
    // 0 reveals the secret but never unlocks; 1 must register it before the lock expires. Its
    // first registration fails (RPC down): the next block's must go through.
    let (mut sim, token) = net(2, 9);
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.nodes[0].withholds.insert("Secret");
    let secret = Secret(H256([3; 32]));
    sim.act(0, mediated(&sim, token, 1, 40, secret)).unwrap();
    sim.act(
        0,
        Action::AllowRevealSecret {
            secrethash: secret.hash(),
        },
    )
    .unwrap();
    sim.run_for(500);
    sim.fail_transactions(
        1,
        |c| matches!(c, ContractCall::RegisterSecret { .. }),
        Some(1),
    );
    close_when_settled(&mut sim, token, 1, 0);
    assert_eq!(
        submitted(&sim, 1, |c| matches!(
            c,
            ContractCall::RegisterSecret { .. }
        )),
        2
    );
    assert_eq!(payout(&sim, 1), 40, "the lock was claimed on chain");
    assert_eq!(payout(&sim, 0), 60);
}

/// Mines until `a`'s channel with `b` is gone (closed and settled by whoever does it).
fn close_when_settled(sim: &mut Simulation, token: Address, a: usize, b: usize) {
    let id = channel(sim, token, a, b);
    for _ in 0..300 {
        if sim.state(a).channel(&id).is_none() {
            return;
        }
        pass_blocks(sim, 1);
    }
    panic!("channel {a}-{b} never settled");
}

#[test]
fn a_failed_balance_proof_update_is_resent_and_the_payment_counts() {
    // 1 paid 0; 1 closes with nothing from 0. 0's update with 1's proof fails twice.
    let (mut sim, token) = net(2, 10);
    let id = sim.open_channel(token, 0, 1, 100, 100, 100);
    sim.pay(token, 1, 0, 30, true).unwrap();
    assert!(sim.run_until_quiet(60_000));
    sim.fail_transactions(
        0,
        |c| matches!(c, ContractCall::UpdateBalanceProof { .. }),
        Some(2),
    );
    sim.act(1, Action::Close { channel: id }).unwrap();
    close_when_settled(&mut sim, token, 0, 1);
    assert_eq!(
        submitted(&sim, 0, |c| matches!(
            c,
            ContractCall::UpdateBalanceProof { .. }
        )),
        3
    );
    assert_eq!(payout(&sim, 0), 130);
    assert_eq!(payout(&sim, 1), 70);
}

#[test]
fn the_punish_window_is_the_deployed_one() {
    let mut sim = Simulation::new(2, 11, NetworkConditions::perfect(), |_| config());
    sim.chain.punish_window = BlockCount(9);
    let (token, _) = sim.register_token();
    let id = sim.open_channel(token, 0, 1, 100, 100, 100);
    assert_eq!(
        sim.state(0).channel(&id).unwrap().punish_window,
        BlockCount(9)
    );
    close_and_settle(&mut sim, token, 0, 1);
    assert!(
        failed_transactions(&sim, 0).is_empty(),
        "{:?}",
        failed_transactions(&sim, 0)
    );
    assert!(
        failed_transactions(&sim, 1).is_empty(),
        "{:?}",
        failed_transactions(&sim, 1)
    );
    assert_eq!(payout(&sim, 0) + payout(&sim, 1), 200);
}

#[test]
fn a_partner_cannot_push_more_pending_locks_than_the_limit() {
    let mut sim = Simulation::new(2, 12, NetworkConditions::perfect(), |_| {
        let mut c = config();
        c.max_pending_locks = 3;
        c
    });
    let (token, _) = sim.register_token();
    let id = sim.open_channel(token, 0, 1, 100, 0, 100);
    for s in 1..=3u8 {
        sim.act(0, mediated(&sim, token, 1, 1, Secret(H256([s; 32]))))
            .unwrap();
    }
    sim.run_for(200);
    assert!(
        sim.act(0, mediated(&sim, token, 1, 1, Secret(H256([4; 32]))))
            .is_err(),
        "the payer itself keeps to the limit"
    );
    // A payer that ignores it: a fourth lock, signed by hand, is refused.
    let payer = sim.state(0).channel(&id).unwrap().our.clone();
    let lock = Lock {
        expiration: sim.chain.block.plus(BlockCount(20)),
        amount: t(1),
        secrethash: SecretHash(H256([4; 32])),
    };
    let mut locks = payer.locks.clone();
    locks.push(lock);
    let bp = BalanceProof {
        channel_identifier: id,
        open_block_number: sim.state(0).channel(&id).unwrap().open_block_number,
        nonce: Nonce(payer.nonce.0 + 1),
        transferred_amount: payer.transferred_amount,
        locksroot: EndState::root_of(&locks),
    };
    let target = sim.address(1);
    let initiator = sim.address(0);
    sim.send_as(
        0,
        1,
        Message::MediatedTransfer(MediatedTransfer {
            balance_proof: bp,
            lock,
            initiator,
            target,
            fee: t(0),
        }),
    );
    sim.run_for(200);
    assert_eq!(sim.state(1).channel(&id).unwrap().partner.locks.len(), 3);
    assert!(
        sim.count_notifications(1, |n| matches!(n,
        Notification::MessageRejected { reason, .. } if reason.contains("pending locks")))
            >= 1
    );
}

#[test]
fn registrations_of_secrets_that_concern_no_lock_are_not_kept() {
    let (mut sim, token) = net(3, 13);
    sim.open_channel(token, 0, 1, 100, 0, 100);
    for s in 0..50u8 {
        sim.submit(
            2,
            ContractCall::RegisterSecret {
                secret: Secret(H256([s; 32])),
            },
        )
        .unwrap();
    }
    pass_blocks(&mut sim, 2);
    for i in 0..3 {
        assert!(
            sim.state(i).registered_secrets.is_empty(),
            "node {i} kept unrelated secrets"
        );
    }
}

#[test]
fn a_lock_whose_secret_was_registered_before_it_arrived_is_known_as_registered() {
    // The secret is public on chain before 0 even locks: 1, the target, learns it from the
    // registry (not from 0) and can claim the lock on chain.
    let (mut sim, token) = net(3, 14);
    sim.open_channel(token, 0, 1, 100, 0, 100);
    let secret = Secret(H256([0x42; 32]));
    sim.submit(2, ContractCall::RegisterSecret { secret })
        .unwrap();
    pass_blocks(&mut sim, 2);
    sim.nodes[0].withholds.insert("Secret");
    sim.act(0, mediated(&sim, token, 1, 15, secret)).unwrap();
    sim.run_for(300);
    assert!(sim.state(1).registered_secrets.contains_key(&secret.hash()));
    close_when_settled(&mut sim, token, 1, 0);
    assert_eq!(payout(&sim, 1), 15);
    assert_eq!(payout(&sim, 0), 85);
}

#[test]
fn withdraw_terms_carry_the_expiration_the_contract_checks() {
    let (mut sim, token) = net(2, 15);
    let id = sim.open_channel(token, 0, 1, 100, 100, 100);
    sim.act(
        0,
        Action::Withdraw {
            channel: id,
            amount: t(5),
        },
    )
    .unwrap();
    let n = sim
        .state(0)
        .channel(&id)
        .unwrap()
        .negotiation
        .clone()
        .unwrap();
    let CosignedTerms::Withdraw(WithdrawTerms { expiration, .. }) = n.terms else {
        panic!("a withdraw")
    };
    assert_eq!(expiration, sim.chain.block.plus(config().cosign_window));
}

#[test]
fn a_retry_with_the_same_identifier_never_pays_twice() {
    // 1 keeps 0's signed proof and never acknowledges it: 0's transfer cannot end. A caller
    // that times out and retries with its identifier is told which transfer still runs.
    let (mut sim, token) = net(2, 16);
    sim.open_channel(token, 0, 1, 100, 0, 100);
    sim.nodes[1].withholds.insert("Ack");
    let pay = |sim: &Simulation, identifier| {
        Action::Transfer(TransferRequest {
            token,
            target: sim.address(1),
            amount: t(10),
            max_fee: None,
            is_direct: true,
            secret: None,
            identifier: Some(identifier),
        })
    };
    sim.act(0, pay(&sim, 7)).unwrap();
    pass_blocks(&mut sim, 5);
    let err = sim.act(0, pay(&sim, 7)).unwrap_err();
    assert!(
        matches!(err, smartraiden::core::ActionError::DuplicateTransfer(_)),
        "{err}"
    );
    assert_eq!(balance(&sim, token, 0, 1), Some(90), "paid once");
    // Another identifier is another payment.
    sim.act(0, pay(&sim, 8)).unwrap();
    assert_eq!(balance(&sim, token, 0, 1), Some(80));
    // Once the first has ended (the partner acknowledges at last), the identifier is free.
    sim.nodes[1].withholds.clear();
    assert!(sim.run_until_quiet(60_000));
    sim.act(0, pay(&sim, 7)).unwrap();
    assert!(sim.run_until_quiet(60_000));
    assert_eq!(balance(&sim, token, 0, 1), Some(70));
}
