//! The monitoring service's pure parts: the delegation package's checks and the decision core
//! (window arithmetic, newer-nonce rule, forgetting on settle, restart re-issuing).

use smartraiden::core::ChainEvent;
use smartraiden::crypto::PrivateKey;
use smartraiden::delegation::{
    DelegatedProof, DelegatedUnlock, DelegationPackage, PackageError, PunishEvidence,
};
use smartraiden::monitor::decide::{
    CallResult, Duty, DutyKind, MonitorCall, MonitorInput, MonitorLimits, MonitorState,
    OnChainFacts, Refusal, stored_balance_hash,
};
use smartraiden::primitives::{
    Address, BlockCount, BlockNumber, ChainId, H256, Locksroot, Nonce, Secret, SecretHash,
    Signature, TokenAmount,
};
use smartraiden::proofs::{
    BalanceProofData, ChannelBinding, DelegationData, DisposedLockData, Lock, MerkleTree,
    SignedData, UnlockDelegationData, channel_identifier,
};

const CHAIN: ChainId = ChainId(31337);
const OPEN: BlockNumber = BlockNumber(10);
const SETTLE_TIMEOUT: BlockCount = BlockCount(40);

struct Parties {
    delegator: PrivateKey,
    partner: PrivateKey,
    monitor: Address,
    token_network: Address,
}

fn parties() -> Parties {
    Parties {
        delegator: PrivateKey::from_bytes([1; 32]).unwrap(),
        partner: PrivateKey::from_bytes([2; 32]).unwrap(),
        monitor: PrivateKey::from_bytes([3; 32]).unwrap().address(),
        token_network: Address([0x77; 20]),
    }
}

fn lock(n: u8, expiration: u64) -> Lock {
    Lock {
        expiration: BlockNumber(expiration),
        amount: TokenAmount::from(5u64),
        secrethash: Secret(H256([n; 32])).hash(),
    }
}

/// The delegator's package for the partner's proof `nonce` paying `transferred`, with `locks`
/// pending (all delegated for unlocking) and punish evidence for `disposed`.
fn package(
    p: &Parties,
    nonce: u64,
    transferred: u64,
    locks: &[Lock],
    disposed: &[Lock],
) -> DelegationPackage {
    let channel = channel_identifier(p.delegator.address(), p.partner.address(), p.token_network);
    let binding = ChannelBinding {
        channel_identifier: channel,
        open_block_number: OPEN,
        chain_id: CHAIN,
    };
    let tree = MerkleTree::new(locks.iter().map(Lock::lockhash).collect());
    let locksroot = tree.root();
    let transferred_amount = TokenAmount::from(transferred);
    let additional_hash = H256([nonce as u8; 32]);
    let bp = BalanceProofData {
        transferred_amount,
        locksroot,
        nonce: Nonce(nonce),
        additional_hash,
        binding,
    };
    let delegation = DelegationData {
        transferred_amount,
        locksroot,
        nonce: Nonce(nonce),
        binding,
    };
    let unlocks = locks
        .iter()
        .enumerate()
        .map(|(i, l)| DelegatedUnlock {
            expiration: l.expiration,
            amount: l.amount,
            secrethash: l.secrethash,
            merkle_proof: tree.proof(i).unwrap(),
            signature: UnlockDelegationData {
                delegatee: p.monitor,
                expiration: l.expiration,
                amount: l.amount,
                secrethash: l.secrethash,
                binding,
            }
            .sign(&p.delegator),
            secret: None,
        })
        .collect();
    let punishes = disposed
        .iter()
        .map(|l| {
            let d = DisposedLockData {
                lockhash: l.lockhash(),
                binding,
                additional_hash: H256([9; 32]),
            };
            PunishEvidence {
                lockhash: d.lockhash,
                additional_hash: d.additional_hash,
                partner_signature: d.sign(&p.partner),
            }
        })
        .collect();
    let mut pkg = DelegationPackage {
        chain_id: CHAIN,
        token_network: p.token_network,
        channel_identifier: channel,
        open_block_number: OPEN,
        settle_timeout: SETTLE_TIMEOUT,
        delegator: p.delegator.address(),
        partner: p.partner.address(),
        delegate: p.monitor,
        balance_proof: Some(DelegatedProof {
            transferred_amount,
            locksroot,
            nonce: Nonce(nonce),
            additional_hash,
            partner_signature: bp.sign(&p.partner),
            delegation_signature: delegation.sign(&p.delegator),
        }),
        unlocks,
        punishes,
        given_back: Vec::new(),
        signature: Signature([0; 65]),
    };
    pkg.sign(&p.delegator);
    pkg
}

fn open_facts(head: u64) -> OnChainFacts {
    OnChainFacts {
        state: 1,
        open_block_number: OPEN,
        settle_block_number: BlockNumber(0),
        partner_nonce: Nonce(0),
        partner_balance_hash: [0; 24],
        head: BlockNumber(head),
        punish_window: BlockCount(5),
    }
}

/// The chain's facts after a close at block 100 (settle block 140), holding the partner's
/// proof `nonce` with `(transferred, locksroot)`.
fn closed_facts(head: u64, nonce: u64, transferred: TokenAmount, root: Locksroot) -> OnChainFacts {
    OnChainFacts {
        state: 2,
        open_block_number: OPEN,
        settle_block_number: BlockNumber(100 + SETTLE_TIMEOUT.0),
        partner_nonce: Nonce(nonce),
        partner_balance_hash: stored_balance_hash(transferred, root),
        head: BlockNumber(head),
        punish_window: BlockCount(5),
    }
}

fn limits() -> MonitorLimits {
    MonitorLimits::default()
}

fn closed_by_partner(pkg: &DelegationPackage, block: u64) -> MonitorInput {
    MonitorInput::Chain(ChainEvent::ChannelClosed {
        channel_identifier: pkg.channel_identifier,
        closing_participant: pkg.partner,
        transferred_amount: TokenAmount::from(1u64),
        locksroot: Locksroot::default(),
        block_number: BlockNumber(block),
    })
}

fn block(s: &mut MonitorState, n: u64) -> Vec<MonitorCall> {
    s.step(MonitorInput::Block(BlockNumber(n)), &limits())
}

/// A fresh monitor that accepted `pkg` while the channel is open (head 50).
fn watching(pkg: &DelegationPackage) -> MonitorState {
    let mut s = MonitorState::default();
    s.submit(pkg.clone(), open_facts(50), &[], &limits())
        .unwrap();
    s
}

/// The shell's answer to the monitor's call for `duty` on `pkg`'s channel.
fn call_done(s: &mut MonitorState, pkg: &DelegationPackage, duty: DutyKind, result: CallResult) {
    s.step(
        MonitorInput::CallDone {
            channel: pkg.channel_identifier,
            duty,
            result,
        },
        &limits(),
    );
}

/// The sender's unlock of `l` was mined: its log (the partner's transferred amount now
/// `transferred`) and its result (transaction `[tx; 32]`).
fn unlocked_on_chain(
    s: &mut MonitorState,
    p: &Parties,
    pkg: &DelegationPackage,
    l: Lock,
    transferred: u64,
    tx: u8,
) {
    s.step(
        MonitorInput::Chain(ChainEvent::ChannelUnlocked {
            channel_identifier: pkg.channel_identifier,
            payer_participant: p.partner.address(),
            lockhash: l.lockhash(),
            transferred_amount: TokenAmount::from(transferred),
        }),
        &limits(),
    );
    call_done(
        s,
        pkg,
        DutyKind::Unlock(l.secrethash),
        CallResult::Mined(H256([tx; 32])),
    );
}

/// The one call in `calls`, which must be an unlock: the unlock, the transferred amount, the
/// nonce and the locksroot it goes with.
#[track_caller]
fn sole_unlock<'a>(
    calls: &'a [MonitorCall],
    what: &str,
) -> (
    &'a DelegatedUnlock,
    &'a TokenAmount,
    &'a Nonce,
    &'a Locksroot,
) {
    let [
        MonitorCall::Unlock {
            unlock,
            transferred_amount,
            nonce,
            locksroot,
            ..
        },
    ] = calls
    else {
        panic!("{what}: {calls:?}")
    };
    (unlock, transferred_amount, nonce, locksroot)
}

#[test]
fn a_package_signed_by_the_node_verifies_and_every_tampering_is_refused() {
    let p = parties();
    let good = package(&p, 5, 30, &[lock(1, 90), lock(2, 95)], &[lock(3, 90)]);
    assert_eq!(good.verify(p.monitor, CHAIN, 64), Ok(()));

    let other_monitor = Address([0x55; 20]);
    assert!(matches!(
        good.verify(other_monitor, CHAIN, 64),
        Err(PackageError::WrongDelegate { .. })
    ));
    assert!(matches!(
        good.verify(p.monitor, ChainId(1), 64),
        Err(PackageError::WrongChain { .. })
    ));
    assert!(matches!(
        good.verify(p.monitor, CHAIN, 2),
        Err(PackageError::TooManyItems(3, 2))
    ));

    // A changed field breaks the submission signature.
    let mut t = good.clone();
    t.balance_proof.as_mut().unwrap().nonce = Nonce(6);
    assert!(matches!(
        t.verify(p.monitor, CHAIN, 64),
        Err(PackageError::BadSignature(_))
    ));

    // Re-signed by the delegator, the partner's proof signature still does not match.
    t.sign(&p.delegator);
    assert_eq!(
        t.verify(p.monitor, CHAIN, 64),
        Err(PackageError::BadSignature(
            "the balance proof is not signed by the partner"
        ))
    );

    // A stranger cannot submit for the delegator.
    let mut t = good.clone();
    t.sign(&PrivateKey::from_bytes([4; 32]).unwrap());
    assert!(matches!(
        t.verify(p.monitor, CHAIN, 64),
        Err(PackageError::BadSignature(_))
    ));

    // Punish evidence must be the partner's statement.
    let mut t = good.clone();
    t.punishes[0].partner_signature = DisposedLockData {
        lockhash: t.punishes[0].lockhash,
        binding: t.binding(),
        additional_hash: t.punishes[0].additional_hash,
    }
    .sign(&p.delegator);
    t.sign(&p.delegator);
    assert!(matches!(
        t.verify(p.monitor, CHAIN, 64),
        Err(PackageError::BadSignature(_))
    ));

    // A lock not under the proof's root.
    let mut t = good.clone();
    t.unlocks[0].merkle_proof = vec![H256([8; 32])];
    t.sign(&p.delegator);
    assert!(matches!(
        t.verify(p.monitor, CHAIN, 64),
        Err(PackageError::NotInLocksroot(_))
    ));

    // The channel must be the pair's in that token network.
    let mut t = good.clone();
    t.token_network = Address([0x78; 20]);
    t.sign(&p.delegator);
    assert!(matches!(
        t.verify(p.monitor, CHAIN, 64),
        Err(PackageError::WrongChannel(_))
    ));

    // The package travels as JSON with hex text and back unchanged.
    let json = serde_json::to_string(&good).unwrap();
    assert!(json.contains(&format!("{}", good.channel_identifier)));
    assert_eq!(
        serde_json::from_str::<DelegationPackage>(&json).unwrap(),
        good
    );
}

#[test]
fn the_update_is_issued_in_the_second_half_of_the_settle_window_and_not_before() {
    let p = parties();
    let pkg = package(&p, 5, 30, &[], &[]);
    let mut s = watching(&pkg);
    assert!(block(&mut s, 99).is_empty());
    s.step(closed_by_partner(&pkg, 100), &limits());
    // settle block 140; the contract accepts from 140 - 20 + 1 = 121, mined one block later.
    let w = &s.watches[&pkg.channel_identifier];
    assert_eq!(w.settle_block(), Some(BlockNumber(140)));
    assert_eq!(w.update_from(), Some(BlockNumber(121)));
    for n in 100..=119 {
        assert!(block(&mut s, n).is_empty(), "nothing due at block {n}");
    }
    let calls = block(&mut s, 120);
    assert!(
        matches!(&calls[..], [MonitorCall::Update { proof, delegator, .. }] if proof.nonce == Nonce(5) && *delegator == p.delegator.address()),
        "{calls:?}"
    );
    // In flight: not issued again at the next block.
    assert!(block(&mut s, 121).is_empty());
    call_done(
        &mut s,
        &pkg,
        DutyKind::Update,
        CallResult::Mined(H256([1; 32])),
    );
    assert!(block(&mut s, 122).is_empty());
    assert_eq!(
        s.watches[&pkg.channel_identifier].update,
        Duty::Done {
            tx: Some(H256([1; 32]))
        }
    );
}

#[test]
fn a_failed_update_is_retried_at_the_next_block_but_not_after_the_window() {
    let p = parties();
    let pkg = package(&p, 5, 30, &[], &[]);
    let mut s = watching(&pkg);
    s.step(closed_by_partner(&pkg, 100), &limits());
    assert_eq!(block(&mut s, 138).len(), 1);
    call_done(
        &mut s,
        &pkg,
        DutyKind::Update,
        CallResult::Failed("endpoint down".into()),
    );
    assert_eq!(
        block(&mut s, 139).len(),
        1,
        "retried while the window is open"
    );
    call_done(
        &mut s,
        &pkg,
        DutyKind::Update,
        CallResult::Failed("endpoint down".into()),
    );
    assert!(
        block(&mut s, 140).is_empty(),
        "a transaction now would land after block 140"
    );
}

#[test]
fn the_node_updating_itself_leaves_the_monitor_nothing_to_send() {
    let p = parties();
    let pkg = package(&p, 5, 30, &[], &[]);
    let mut s = watching(&pkg);
    s.step(closed_by_partner(&pkg, 100), &limits());
    let proof = pkg.balance_proof.unwrap();
    s.step(
        MonitorInput::Chain(ChainEvent::BalanceProofUpdated {
            channel_identifier: pkg.channel_identifier,
            participant: p.partner.address(),
            transferred_amount: proof.transferred_amount,
            locksroot: proof.locksroot,
        }),
        &limits(),
    );
    for n in 101..=140 {
        assert!(block(&mut s, n).is_empty());
    }
    assert_eq!(
        s.watches[&pkg.channel_identifier].update,
        Duty::Done { tx: None }
    );
}

#[test]
fn a_delegation_not_newer_than_the_stored_or_the_chain_is_refused_and_changes_nothing() {
    let p = parties();
    let mut s = MonitorState::default();
    let l = limits();
    s.submit(package(&p, 5, 30, &[], &[]), open_facts(50), &[], &l)
        .unwrap();
    let _ = s.take_changes();
    let before = s.watches.clone();
    assert_eq!(
        s.submit(package(&p, 4, 20, &[], &[]), open_facts(50), &[], &l),
        Err(Refusal::NotNewer {
            stored: Nonce(5),
            offered: Nonce(4)
        })
    );
    assert_eq!(
        s.submit(package(&p, 5, 30, &[], &[]), open_facts(50), &[], &l),
        Err(Refusal::NotNewer {
            stored: Nonce(5),
            offered: Nonce(5)
        })
    );
    let mut chain_newer = open_facts(50);
    chain_newer.state = 2;
    chain_newer.settle_block_number = BlockNumber(200);
    chain_newer.partner_nonce = Nonce(7);
    assert_eq!(
        s.submit(package(&p, 6, 40, &[], &[]), chain_newer, &[], &l),
        Err(Refusal::ChainHoldsNewer {
            chain: Nonce(7),
            offered: Nonce(6)
        })
    );
    let mut settled = open_facts(50);
    settled.state = 0;
    assert!(matches!(
        s.submit(package(&p, 6, 40, &[], &[]), settled, &[], &l),
        Err(Refusal::NoChannel(_))
    ));
    let mut other_epoch = open_facts(50);
    other_epoch.open_block_number = BlockNumber(11);
    assert!(matches!(
        s.submit(package(&p, 6, 40, &[], &[]), other_epoch, &[], &l),
        Err(Refusal::WrongEpoch { .. })
    ));
    assert_eq!(s.watches, before);
    assert!(
        s.take_changes().watches.is_empty(),
        "a refusal writes nothing"
    );

    // Newer is taken; the same nonce with one more unlock is a refresh.
    s.submit(
        package(&p, 6, 40, &[lock(1, 90)], &[]),
        open_facts(50),
        &[],
        &l,
    )
    .unwrap();
    let richer = package(&p, 6, 40, &[lock(1, 90)], &[lock(3, 90)]);
    s.submit(richer.clone(), open_facts(50), &[], &l).unwrap();
    assert_eq!(s.watches[&richer.channel_identifier].package, richer);
}

#[test]
fn a_delegator_over_its_quota_is_refused() {
    let p = parties();
    let mut s = MonitorState::default();
    let l = MonitorLimits {
        per_delegator: 1,
        ..MonitorLimits::default()
    };
    s.submit(package(&p, 5, 30, &[], &[]), open_facts(50), &[], &l)
        .unwrap();
    let other = Parties {
        token_network: Address([0x79; 20]),
        ..parties()
    };
    assert_eq!(
        s.submit(package(&other, 5, 30, &[], &[]), open_facts(50), &[], &l),
        Err(Refusal::Quota(1))
    );
}

#[test]
fn a_settle_or_a_withdraw_forgets_the_channel() {
    let p = parties();
    let pkg = package(&p, 5, 30, &[], &[]);
    let mut s = watching(&pkg);
    let _ = s.take_changes();
    s.step(
        MonitorInput::Chain(ChainEvent::ChannelSettled {
            channel_identifier: pkg.channel_identifier,
        }),
        &limits(),
    );
    assert!(s.watches.is_empty());
    assert_eq!(s.delegations_of(&p.delegator.address()), 0);
    let changes = s.take_changes();
    assert!(matches!(&changes.watches[..], [(c, None)] if *c == pkg.channel_identifier));

    s.submit(pkg.clone(), open_facts(50), &[], &limits())
        .unwrap();
    assert!(
        !s.withdraw(&pkg.channel_identifier, p.partner.address()),
        "only the delegator"
    );
    assert!(s.withdraw(&pkg.channel_identifier, p.delegator.address()));
    assert!(s.watches.is_empty());
}

#[test]
fn after_a_restart_a_call_in_flight_is_issued_again_for_the_shell_to_recheck() {
    let p = parties();
    let pkg = package(&p, 5, 30, &[], &[]);
    let mut s = watching(&pkg);
    s.step(closed_by_partner(&pkg, 100), &limits());
    assert_eq!(block(&mut s, 125).len(), 1);
    // What the store holds after the commit of block 125 (state and cursor together).
    let changes = s.take_changes();
    let persisted: Vec<_> = changes.watches.into_iter().filter_map(|(_, w)| w).collect();
    assert!(matches!(
        persisted[0].update,
        Duty::InFlight {
            since: BlockNumber(125)
        }
    ));
    // Killed before the result came back; restarted at cursor 125.
    let mut r = MonitorState::restore(persisted, Default::default(), BlockNumber(125));
    let calls = block(&mut r, 126);
    assert!(matches!(&calls[..], [MonitorCall::Update { .. }]));
    // The shell finds the chain already holds the proof: done, no second transaction.
    call_done(&mut r, &pkg, DutyKind::Update, CallResult::NotNeeded);
    assert!(block(&mut r, 127).is_empty());
}

#[test]
fn registered_locks_are_unlocked_one_at_a_time_once_the_chain_holds_their_proof() {
    let p = parties();
    let (l1, l2, late) = (lock(1, 90), lock(2, 95), lock(4, 95));
    let pkg = package(&p, 5, 30, &[l1, l2, late], &[]);
    let mut s = MonitorState::default();
    s.submit(
        pkg.clone(),
        open_facts(50),
        &[(l1.secrethash, BlockNumber(60))],
        &limits(),
    )
    .unwrap();
    s.step(
        MonitorInput::Chain(ChainEvent::SecretRegistered {
            secrethash: l2.secrethash,
            secret: Secret(H256([2; 32])),
            block_number: BlockNumber(95),
        }),
        &limits(),
    );
    s.step(
        MonitorInput::Chain(ChainEvent::SecretRegistered {
            secrethash: late.secrethash,
            secret: Secret(H256([4; 32])),
            block_number: BlockNumber(96),
        }),
        &limits(),
    );
    s.step(closed_by_partner(&pkg, 100), &limits());
    assert!(
        block(&mut s, 101).is_empty(),
        "the chain holds no proof with these locks yet"
    );
    let proof = pkg.balance_proof.unwrap();
    s.step(
        MonitorInput::Chain(ChainEvent::BalanceProofUpdated {
            channel_identifier: pkg.channel_identifier,
            participant: p.partner.address(),
            transferred_amount: proof.transferred_amount,
            locksroot: proof.locksroot,
        }),
        &limits(),
    );
    let calls = block(&mut s, 102);
    let (unlock, transferred_amount, ..) = sole_unlock(&calls, "one unlock");
    assert_eq!(unlock.secrethash, l1.secrethash);
    assert_eq!(*transferred_amount, TokenAmount::from(30u64));
    assert!(block(&mut s, 103).is_empty(), "one at a time");
    unlocked_on_chain(&mut s, &p, &pkg, l1, 35, 2);
    let calls = block(&mut s, 104);
    let (unlock, transferred_amount, ..) = sole_unlock(&calls, "one unlock");
    assert_eq!(unlock.secrethash, l2.secrethash);
    assert_eq!(*transferred_amount, TokenAmount::from(35u64));
    call_done(
        &mut s,
        &pkg,
        DutyKind::Unlock(l2.secrethash),
        CallResult::Mined(H256([3; 32])),
    );
    // The third secret was registered after its lock expired: never unlocked.
    for n in 105..=139 {
        let calls = block(&mut s, n);
        assert!(
            calls
                .iter()
                .all(|c| !matches!(c, MonitorCall::Unlock { .. })),
            "{calls:?}"
        );
    }
    let _: SecretHash = late.secrethash;
}

#[test]
fn an_unlock_of_a_lock_the_partner_gave_back_is_punished() {
    let p = parties();
    let disposed = lock(3, 90);
    let pkg = package(&p, 5, 30, &[], &[disposed]);
    let mut s = watching(&pkg);
    s.step(closed_by_partner(&pkg, 100), &limits());
    assert!(block(&mut s, 101).is_empty());
    s.step(
        MonitorInput::Chain(ChainEvent::ChannelUnlocked {
            channel_identifier: pkg.channel_identifier,
            payer_participant: p.delegator.address(),
            lockhash: disposed.lockhash(),
            transferred_amount: TokenAmount::from(5u64),
        }),
        &limits(),
    );
    let calls = block(&mut s, 102);
    assert!(
        matches!(&calls[..], [MonitorCall::Punish { evidence, delegator, partner, .. }]
            if evidence.lockhash == disposed.lockhash() && *delegator == p.delegator.address() && *partner == p.partner.address()),
        "{calls:?}"
    );
}

#[test]
fn a_delegator_that_closed_and_vanished_gets_its_registered_locks_unlocked_at_once() {
    let p = parties();
    let l1 = lock(1, 90);
    let pkg = package(&p, 5, 30, &[l1], &[]);
    let mut s = MonitorState::default();
    s.submit(
        pkg.clone(),
        open_facts(50),
        &[(l1.secrethash, BlockNumber(60))],
        &limits(),
    )
    .unwrap();
    let proof = pkg.balance_proof.unwrap();
    // The delegator closed with the partner's latest proof: the chain holds it already.
    s.step(
        MonitorInput::Chain(ChainEvent::ChannelClosed {
            channel_identifier: pkg.channel_identifier,
            closing_participant: p.delegator.address(),
            transferred_amount: proof.transferred_amount,
            locksroot: proof.locksroot,
            block_number: BlockNumber(100),
        }),
        &limits(),
    );
    let calls = block(&mut s, 101);
    assert!(
        matches!(&calls[..], [MonitorCall::Unlock { unlock, .. }] if unlock.secrethash == l1.secrethash),
        "unlocked in the first half, no update needed first: {calls:?}"
    );
    // Settled: the channel and the registration it needed are forgotten, in the store too.
    let _ = s.take_changes();
    s.step(
        MonitorInput::Chain(ChainEvent::ChannelSettled {
            channel_identifier: pkg.channel_identifier,
        }),
        &limits(),
    );
    let changes = s.take_changes();
    assert_eq!(changes.secrets, vec![(l1.secrethash, None)]);
    assert!(s.registered.is_empty());
}

#[test]
fn a_delegation_after_the_delegators_own_close_with_that_proof_unlocks_without_an_update() {
    let p = parties();
    let l1 = lock(1, 90);
    let pkg = package(&p, 5, 30, &[l1], &[]);
    let proof = pkg.balance_proof.unwrap();
    let registered = [(l1.secrethash, BlockNumber(60))];
    let mut s = MonitorState::default();
    // The chain holds nonce 5 but another proof (another balance hash): refused, nothing held.
    let other = closed_facts(105, 5, TokenAmount::from(31u64), proof.locksroot);
    assert_eq!(
        s.submit(pkg.clone(), other, &registered, &limits()),
        Err(Refusal::ChainHoldsNewer {
            chain: Nonce(5),
            offered: Nonce(5)
        })
    );
    // Same nonce and nothing to unlock or punish: nothing to do, refused as before.
    let bare = package(&p, 5, 30, &[], &[]);
    let facts = closed_facts(105, 5, proof.transferred_amount, proof.locksroot);
    assert!(matches!(
        s.submit(bare, facts, &[], &limits()),
        Err(Refusal::ChainHoldsNewer { .. })
    ));
    assert!(s.watches.is_empty());
    // The delegator closed with this very proof and delegated afterwards (then vanished).
    s.submit(pkg.clone(), facts, &registered, &limits())
        .unwrap();
    assert_eq!(
        s.watches[&pkg.channel_identifier].update,
        Duty::Done { tx: None }
    );
    let calls = block(&mut s, 106);
    let (unlock, transferred_amount, nonce, locksroot) =
        sole_unlock(&calls, "unlocked at once, in the first half");
    assert_eq!(unlock.secrethash, l1.secrethash);
    assert_eq!(*transferred_amount, proof.transferred_amount);
    assert_eq!((*nonce, *locksroot), (proof.nonce, proof.locksroot));
    call_done(
        &mut s,
        &pkg,
        DutyKind::Unlock(l1.secrethash),
        CallResult::Mined(H256([4; 32])),
    );
    for n in 107..=140 {
        let calls = block(&mut s, n);
        assert!(calls.is_empty(), "no update, no second unlock: {calls:?}");
    }
}

#[test]
fn a_delegation_after_the_close_unlocks_once_its_update_is_found_done_on_chain() {
    let p = parties();
    let l1 = lock(1, 90);
    let pkg = package(&p, 5, 30, &[l1], &[]);
    let proof = pkg.balance_proof.unwrap();
    let mut s = MonitorState::default();
    // The partner closed at 100; the chain holds nonce 2 of the partner when B delegates.
    s.submit(
        pkg.clone(),
        closed_facts(105, 2, TokenAmount::from(10u64), Locksroot::default()),
        &[(l1.secrethash, BlockNumber(60))],
        &limits(),
    )
    .unwrap();
    for n in 106..=119 {
        assert!(block(&mut s, n).is_empty(), "first half: nothing");
    }
    let calls = block(&mut s, 120);
    assert!(
        matches!(&calls[..], [MonitorCall::Update { .. }]),
        "{calls:?}"
    );
    // The node updated itself meanwhile (its log came before the delegation): the sender's
    // re-read finds the nonce on chain, no update log will follow.
    call_done(&mut s, &pkg, DutyKind::Update, CallResult::NotNeeded);
    let calls = block(&mut s, 121);
    let (unlock, transferred_amount, ..) = sole_unlock(
        &calls,
        "the registered lock is unlocked against the proof the chain holds",
    );
    assert_eq!(unlock.secrethash, l1.secrethash);
    assert_eq!(*transferred_amount, proof.transferred_amount);
}

#[test]
fn a_delegation_after_the_close_and_after_an_obsolete_unlock_still_punishes() {
    let p = parties();
    let disposed = lock(3, 90);
    let pkg = package(&p, 5, 30, &[], &[disposed]);
    let proof = pkg.balance_proof.unwrap();
    let mut s = MonitorState::default();
    // The delegator closed with the partner's latest proof, the partner unlocked the lock it
    // had given back (that log went by before the delegation), then the delegation came.
    s.submit(
        pkg.clone(),
        closed_facts(105, 5, proof.transferred_amount, proof.locksroot),
        &[],
        &limits(),
    )
    .unwrap();
    let _ = s.take_changes();
    s.obsolete_unlocks_found(&pkg.channel_identifier, &[H256([0xee; 32])]);
    assert!(s.take_changes().watches.is_empty(), "not one of ours");
    s.obsolete_unlocks_found(&pkg.channel_identifier, &[disposed.lockhash()]);
    assert_eq!(s.take_changes().watches.len(), 1, "persisted");
    let calls = block(&mut s, 106);
    assert!(
        matches!(&calls[..], [MonitorCall::Punish { evidence, .. }] if evidence.lockhash == disposed.lockhash()),
        "{calls:?}"
    );
}

#[test]
fn a_refresh_with_a_newly_known_secret_is_taken_after_a_partial_unlock_on_chain() {
    let p = parties();
    let (l1, l2) = (lock(1, 90), lock(2, 120));
    let full = package(&p, 5, 30, &[l1, l2], &[]);
    let proof = full.balance_proof.unwrap();
    // First the node knows only l1's secret.
    let mut first = full.clone();
    first.unlocks.retain(|u| u.secrethash == l1.secrethash);
    first.sign(&p.delegator);
    let mut s = MonitorState::default();
    s.submit(
        first.clone(),
        open_facts(50),
        &[(l1.secrethash, BlockNumber(60))],
        &limits(),
    )
    .unwrap();
    s.step(closed_by_partner(&first, 100), &limits());
    s.step(
        MonitorInput::Chain(ChainEvent::BalanceProofUpdated {
            channel_identifier: first.channel_identifier,
            participant: p.partner.address(),
            transferred_amount: proof.transferred_amount,
            locksroot: proof.locksroot,
        }),
        &limits(),
    );
    let calls = block(&mut s, 102);
    let (unlock, ..) = sole_unlock(&calls, "l1 unlocked");
    assert_eq!(unlock.secrethash, l1.secrethash);
    unlocked_on_chain(&mut s, &p, &first, l1, 35, 2);
    // The node learns l2's secret: same proof, one more unlock. The chain's balance hash moved
    // with l1's unlock (transferred 35), yet the refresh is taken.
    let moved = closed_facts(103, 5, TokenAmount::from(35u64), proof.locksroot);
    let without_l1 = {
        let mut p2 = full.clone();
        p2.unlocks.retain(|u| u.secrethash == l2.secrethash);
        p2.sign(&p.delegator);
        p2
    };
    assert!(
        matches!(
            s.submit(without_l1, moved, &[], &limits()),
            Err(Refusal::ChainHoldsNewer { .. })
        ),
        "not a refresh: it drops an item held"
    );
    s.submit(
        full.clone(),
        moved,
        &[(l2.secrethash, BlockNumber(101))],
        &limits(),
    )
    .unwrap();
    let calls = block(&mut s, 104);
    let (unlock, transferred_amount, ..) = sole_unlock(&calls, "l2 unlocked");
    assert_eq!(unlock.secrethash, l2.secrethash);
    assert_eq!(*transferred_amount, TokenAmount::from(35u64));
    assert!(
        calls
            .iter()
            .all(|c| !matches!(c, MonitorCall::Update { .. })),
        "the update stays done"
    );
}

/// The package with the secrets of `locks` given along (the node knows them).
fn with_secrets(p: &Parties, mut pkg: DelegationPackage, secrets: &[u8]) -> DelegationPackage {
    for (u, n) in pkg.unlocks.iter_mut().zip(secrets) {
        u.secret = Some(Secret(H256([*n; 32])));
    }
    pkg.sign(&p.delegator);
    pkg
}

#[test]
fn a_secret_nobody_registered_is_registered_by_the_monitor_while_its_lock_can_count_it() {
    let p = parties();
    let (l1, l2) = (lock(1, 95), lock(2, 130));
    let pkg = with_secrets(&p, package(&p, 5, 30, &[l1, l2], &[]), &[1, 2]);
    // A secret that does not hash to its lock is refused with the package.
    let bad = with_secrets(&p, package(&p, 5, 30, &[l1, l2], &[]), &[1, 7]);
    assert_eq!(
        bad.verify(p.monitor, CHAIN, 100),
        Err(PackageError::WrongSecret(l2.secrethash))
    );
    pkg.verify(p.monitor, CHAIN, 100).unwrap();
    let mut s = MonitorState::default();
    s.submit(pkg.clone(), open_facts(50), &[], &limits())
        .unwrap();
    assert!(
        block(&mut s, 60).is_empty(),
        "nothing while the channel is open"
    );
    s.step(closed_by_partner(&pkg, 100), &limits());
    // l1 expired before the close: registering it now would not count.
    let calls = block(&mut s, 101);
    assert_eq!(
        calls,
        vec![MonitorCall::RegisterSecret {
            channel: pkg.channel_identifier,
            secret: Secret(H256([2; 32])),
        }]
    );
    assert!(block(&mut s, 102).is_empty(), "in flight");
    // It failed: issued again at the next block.
    call_done(
        &mut s,
        &pkg,
        DutyKind::Register(l2.secrethash),
        CallResult::Failed("underpriced".into()),
    );
    assert_eq!(block(&mut s, 103).len(), 1);
    s.step(
        MonitorInput::Chain(ChainEvent::SecretRegistered {
            secrethash: l2.secrethash,
            secret: Secret(H256([2; 32])),
            block_number: BlockNumber(103),
        }),
        &limits(),
    );
    call_done(
        &mut s,
        &pkg,
        DutyKind::Register(l2.secrethash),
        CallResult::Mined(H256([5; 32])),
    );
    // Then the update in the second half, and the unlock of l2 (never of l1).
    let unlocked = run_updates_and_unlocks(&mut s, &p, &pkg, 104..140);
    assert_eq!(unlocked, vec![l2.secrethash]);
}

/// Runs blocks `from..to`, carrying out every update and unlock at once (as mined, with its
/// log); the secrethashes unlocked, in order. Any other call fails the test.
fn run_updates_and_unlocks(
    s: &mut MonitorState,
    p: &Parties,
    pkg: &DelegationPackage,
    blocks: std::ops::Range<u64>,
) -> Vec<SecretHash> {
    let mut unlocked = Vec::new();
    for n in blocks {
        for c in block(s, n) {
            match c {
                MonitorCall::Update { proof, .. } => {
                    s.step(
                        MonitorInput::Chain(ChainEvent::BalanceProofUpdated {
                            channel_identifier: pkg.channel_identifier,
                            participant: p.partner.address(),
                            transferred_amount: proof.transferred_amount,
                            locksroot: proof.locksroot,
                        }),
                        &limits(),
                    );
                    call_done(s, pkg, DutyKind::Update, CallResult::Mined(H256([7; 32])));
                }
                MonitorCall::Unlock { unlock, .. } => {
                    unlocked.push(unlock.secrethash);
                    call_done(
                        s,
                        pkg,
                        DutyKind::Unlock(unlock.secrethash),
                        CallResult::Mined(H256([6; 32])),
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    unlocked
}

#[test]
fn a_lock_the_delegator_gave_back_is_never_unlocked_and_an_older_package_cannot_bring_it_back() {
    let p = parties();
    let (l1, l2) = (lock(1, 120), lock(2, 125));
    let first = with_secrets(&p, package(&p, 5, 30, &[l1, l2], &[]), &[1, 2]);
    let mut s = MonitorState::default();
    s.submit(first.clone(), open_facts(50), &[], &limits())
        .unwrap();
    // The node gave l2 back (it found no route onward): the same proof, l2's unlock replaced by
    // the statement that it was given back.
    let mut gave = first.clone();
    gave.unlocks.retain(|u| u.secrethash == l1.secrethash);
    gave.given_back = vec![l2.secrethash];
    gave.sign(&p.delegator);
    let mut both = first.clone();
    both.given_back = vec![l2.secrethash];
    both.sign(&p.delegator);
    assert_eq!(
        both.verify(p.monitor, CHAIN, 100),
        Err(PackageError::UnlockOfGivenBack(l2.secrethash))
    );
    gave.verify(p.monitor, CHAIN, 100).unwrap();
    s.submit(gave.clone(), open_facts(60), &[], &limits())
        .unwrap();
    // The older package, replayed, does not bring the unlock back.
    assert!(matches!(
        s.submit(first.clone(), open_facts(61), &[], &limits()),
        Err(Refusal::NotNewer { .. })
    ));
    for (n, l) in [(1u8, l1), (2, l2)] {
        s.step(
            MonitorInput::Chain(ChainEvent::SecretRegistered {
                secrethash: l.secrethash,
                secret: Secret(H256([n; 32])),
                block_number: BlockNumber(62),
            }),
            &limits(),
        );
    }
    s.step(closed_by_partner(&gave, 100), &limits());
    let unlocked = run_updates_and_unlocks(&mut s, &p, &gave, 101..140);
    assert_eq!(unlocked, vec![l1.secrethash], "never the lock given back");
}

#[test]
fn a_channel_nobody_settles_is_settled_by_the_monitor_with_both_sides_as_the_chain_holds_them() {
    let p = parties();
    let l1 = lock(1, 130);
    let pkg = with_secrets(&p, package(&p, 5, 30, &[l1], &[]), &[1]);
    let mut s = MonitorState::default();
    s.submit(
        pkg.clone(),
        open_facts(50),
        &[(l1.secrethash, BlockNumber(60))],
        &limits(),
    )
    .unwrap();
    // The partner closes at 100 with the delegator's proof paying 12.
    let theirs = Locksroot(H256([8; 32]));
    s.step(
        MonitorInput::Chain(ChainEvent::ChannelClosed {
            channel_identifier: pkg.channel_identifier,
            closing_participant: pkg.partner,
            transferred_amount: TokenAmount::from(12u64),
            locksroot: theirs,
            block_number: BlockNumber(100),
        }),
        &limits(),
    );
    // The update and the unlock (+5 on the partner's side).
    let unlocked = run_updates_and_unlocks(&mut s, &p, &pkg, 101..140);
    assert_eq!(unlocked, vec![l1.secrethash]);
    let proof = pkg.balance_proof.unwrap();
    s.step(
        MonitorInput::Chain(ChainEvent::ChannelUnlocked {
            channel_identifier: pkg.channel_identifier,
            payer_participant: pkg.partner,
            lockhash: l1.lockhash(),
            transferred_amount: TokenAmount::from(35u64),
        }),
        &limits(),
    );
    // Settle window ends at 140, the punish window at 145; the participants get a grace.
    let from = 140 + 5 + 1 + limits().settle_grace.0;
    for n in 140..from - 1 {
        assert!(block(&mut s, n).is_empty(), "block {n}: too early");
    }
    let calls = block(&mut s, from - 1);
    assert_eq!(
        calls,
        vec![MonitorCall::Settle {
            channel: pkg.channel_identifier,
            token_network: pkg.token_network,
            delegator: (pkg.delegator, TokenAmount::from(12u64), theirs),
            partner: (pkg.partner, TokenAmount::from(35u64), proof.locksroot),
        }]
    );
    assert!(block(&mut s, from).is_empty(), "in flight");
    // Someone settled meanwhile: the sender finds it settled; the log makes the monitor forget.
    call_done(&mut s, &pkg, DutyKind::Settle, CallResult::NotNeeded);
    s.step(
        MonitorInput::Chain(ChainEvent::ChannelSettled {
            channel_identifier: pkg.channel_identifier,
        }),
        &limits(),
    );
    assert!(s.watches.is_empty());
}

#[test]
fn the_monitor_does_not_settle_before_a_due_punishment_went_through() {
    let p = parties();
    let l = lock(3, 90);
    let pkg = package(&p, 5, 30, &[], &[l]);
    let mut s = MonitorState::default();
    s.submit(pkg.clone(), open_facts(50), &[], &limits())
        .unwrap();
    s.step(closed_by_partner(&pkg, 100), &limits());
    // The partner unlocks on chain the lock it had given back: punish, and keep failing.
    s.step(
        MonitorInput::Chain(ChainEvent::ChannelUnlocked {
            channel_identifier: pkg.channel_identifier,
            payer_participant: pkg.delegator,
            lockhash: l.lockhash(),
            transferred_amount: TokenAmount::from(5u64),
        }),
        &limits(),
    );
    let mut punishes = 0;
    for n in 101..200 {
        for c in block(&mut s, n) {
            match c {
                MonitorCall::Update { .. } => {
                    call_done(&mut s, &pkg, DutyKind::Update, CallResult::NotNeeded)
                }
                MonitorCall::Punish { .. } => {
                    punishes += 1;
                    call_done(
                        &mut s,
                        &pkg,
                        DutyKind::Punish,
                        CallResult::Failed("endpoint down".into()),
                    );
                }
                other => panic!("block {n}: {other:?} while the punishment is due"),
            }
        }
    }
    assert!(punishes > 1, "the punishment is retried");
}
