//! Every acceptance rule of SPEC §3, violated one at a time: the receiver refuses the message,
//! sends no Ack, and its state is exactly as before.

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use smartraiden::core::channel::EndState;
use smartraiden::core::{Action, ChainEvent, Core, Ctx, Input, NodeConfig, Notification, Output};
use smartraiden::crypto::PrivateKey;
use smartraiden::messages::*;
use smartraiden::primitives::*;
use smartraiden::proofs::{Lock, channel_identifier};

const CHAIN: ChainId = ChainId(31337);
const TOKEN: Address = Address([0xaa; 20]);
const TN: Address = Address([0xbb; 20]);

struct Pair {
    a: Core,
    b: Core,
    ka: PrivateKey,
    kc: PrivateKey,
    channel: ChannelId,
}

fn step(core: &mut Core, input: Input) -> Vec<Output> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    core.step(
        input,
        &mut Ctx {
            now_ms: 0,
            rng: &mut rng,
        },
    )
}

/// A–B channel with deposits A 100, B 50, settle timeout 100, both at block 10.
fn pair() -> Pair {
    let ka = PrivateKey::from_bytes([1; 32]).unwrap();
    let kb = PrivateKey::from_bytes([2; 32]).unwrap();
    let kc = PrivateKey::from_bytes([3; 32]).unwrap();
    let channel = channel_identifier(ka.address(), kb.address(), TN);
    let mut a = Core::new(ka.clone(), NodeConfig::new(CHAIN));
    let mut b = Core::new(kb.clone(), NodeConfig::new(CHAIN));
    for core in [&mut a, &mut b] {
        for e in [
            ChainEvent::TokenNetworkCreated {
                token: TOKEN,
                token_network: TN,
                punish_window: BlockCount(5),
            },
            ChainEvent::ChannelOpened {
                token_network: TN,
                channel_identifier: channel,
                participant1: ka.address(),
                participant2: kb.address(),
                settle_timeout: BlockCount(100),
                open_block_number: BlockNumber(1),
            },
            ChainEvent::ChannelDeposit {
                channel_identifier: channel,
                participant: ka.address(),
                total_deposit: TokenAmount::from(100u64),
            },
            ChainEvent::ChannelDeposit {
                channel_identifier: channel,
                participant: kb.address(),
                total_deposit: TokenAmount::from(50u64),
            },
        ] {
            step(core, Input::ContractReceive(e));
        }
        // The chain follower reports the head: lock-bearing messages are taken.
        step(core, Input::ChainHead(BlockNumber(10)));
        step(core, Input::Block(BlockNumber(10)));
    }
    Pair {
        a,
        b,
        ka,
        kc,
        channel,
    }
}

fn amount(v: u64) -> TokenAmount {
    TokenAmount::from(v)
}

impl Pair {
    fn bp(&self, nonce: u64, transferred: u64, locks: &[Lock]) -> BalanceProof {
        BalanceProof {
            channel_identifier: self.channel,
            open_block_number: BlockNumber(1),
            nonce: Nonce(nonce),
            transferred_amount: amount(transferred),
            locksroot: EndState::root_of(locks),
        }
    }

    fn signed_by_a(&self, m: Message) -> Vec<u8> {
        encode_signed(m, &self.ka, CHAIN).bytes
    }

    /// Feeds `bytes` to B and checks it was refused for `why`, without an Ack or any change.
    fn refused(&mut self, bytes: Vec<u8>, why: &str) {
        let before = self.b.state.clone();
        let out = step(&mut self.b, Input::Receive(bytes));
        let reasons: Vec<&String> = out
            .iter()
            .filter_map(|o| match o {
                Output::Event(Notification::MessageRejected { reason, .. }) => Some(reason),
                _ => None,
            })
            .collect();
        assert!(
            reasons.iter().any(|r| r.contains(why)),
            "expected a refusal for {why:?}, got {out:?}"
        );
        assert!(
            !out.iter().any(|o| matches!(o, Output::Send { .. })),
            "a refused message is not acknowledged"
        );
        assert_eq!(self.b.state, before, "a refused message changes nothing");
    }

    /// Feeds `bytes` to B and checks it was accepted and acknowledged.
    fn accepted(&mut self, bytes: Vec<u8>) -> Vec<Output> {
        let out = step(&mut self.b, Input::Receive(bytes));
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::Event(Notification::MessageRejected { .. }))),
            "unexpected refusal: {out:?}"
        );
        assert!(
            out.iter().any(|o| matches!(o, Output::Send { .. })),
            "accepted messages are acknowledged"
        );
        out
    }

    fn b_view_of_a(&self) -> (TokenAmount, Nonce) {
        let ch = self.b.state.channel(&self.channel).unwrap();
        (ch.partner.transferred_amount, ch.partner.nonce)
    }
}

fn direct(bp: BalanceProof) -> Message {
    Message::DirectTransfer(DirectTransfer {
        balance_proof: bp,
        payment_identifier: 7,
    })
}

fn lock(expiration: u64, value: u64, secret: u8) -> (Lock, Secret) {
    let s = Secret(H256([secret; 32]));
    (
        Lock {
            expiration: BlockNumber(expiration),
            amount: amount(value),
            secrethash: s.hash(),
        },
        s,
    )
}

fn mediated(p: &Pair, bp: BalanceProof, l: Lock) -> Message {
    Message::MediatedTransfer(MediatedTransfer {
        balance_proof: bp,
        lock: l,
        initiator: p.ka.address(),
        target: p.b.address(),
        fee: TokenAmount::ZERO,
    })
}

#[test]
fn a_valid_direct_transfer_is_accepted_and_its_replay_is_acknowledged_but_not_applied_twice() {
    let mut p = pair();
    let bytes = p.signed_by_a(direct(p.bp(1, 30, &[])));
    p.accepted(bytes.clone());
    assert_eq!(p.b_view_of_a(), (amount(30), Nonce(1)));
    let before = p.b.state.clone();
    let out = step(&mut p.b, Input::Receive(bytes));
    assert!(
        out.iter().any(|o| matches!(o, Output::Send { .. })),
        "the replay is acknowledged again"
    );
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Event(Notification::PaymentReceived { .. })))
    );
    assert_eq!(p.b.state, before, "the replay is not processed twice");
}

#[test]
fn a_skipped_nonce_is_refused() {
    let mut p = pair();
    let bytes = p.signed_by_a(direct(p.bp(2, 30, &[])));
    p.refused(bytes, "nonce 2, expected 1");
}

#[test]
fn a_message_signed_by_someone_else_is_refused() {
    let mut p = pair();
    let bytes = encode_signed(direct(p.bp(1, 30, &[])), &p.kc, CHAIN).bytes;
    p.refused(bytes, "is not the channel partner");
}

#[test]
fn a_forged_signature_over_tampered_bytes_is_refused() {
    let mut p = pair();
    let mut bytes = p.signed_by_a(direct(p.bp(1, 30, &[])));
    // Raise the amount in the body (150 → 250 would need a new signature).
    let at = bytes.iter().position(|b| *b == 30).unwrap();
    bytes[at] = 31;
    p.refused(bytes, "is not the channel partner");
}

#[test]
fn an_amount_above_the_distributable_balance_is_refused() {
    let mut p = pair();
    let bytes = p.signed_by_a(direct(p.bp(1, 101, &[])));
    p.refused(bytes, "exceeds the sender's distributable balance");
    let (l, _) = lock(30, 101, 7);
    let bytes = p.signed_by_a(mediated(&p, p.bp(1, 0, &[l]), l));
    p.refused(bytes, "exceeds the sender's distributable balance");
}

#[test]
fn a_decreasing_transferred_amount_is_refused() {
    let mut p = pair();
    let ok = p.signed_by_a(direct(p.bp(1, 30, &[])));
    p.accepted(ok);
    let bytes = p.signed_by_a(direct(p.bp(2, 20, &[])));
    p.refused(bytes, "transferred amount");
}

#[test]
fn a_wrong_locksroot_is_refused() {
    let mut p = pair();
    let (l, _) = lock(30, 10, 7);
    let (other, _) = lock(30, 11, 7);
    let bytes = p.signed_by_a(mediated(&p, p.bp(1, 0, &[other]), l));
    p.refused(bytes, "locksroot does not match");
    let bytes = p.signed_by_a(direct(p.bp(1, 5, &[l])));
    p.refused(bytes, "locksroot does not match");
}

#[test]
fn a_lock_beyond_the_settle_window_is_refused() {
    let mut p = pair();
    let (l, _) = lock(10 + 101, 10, 7);
    let bytes = p.signed_by_a(mediated(&p, p.bp(1, 0, &[l]), l));
    p.refused(bytes, "beyond block 110");
}

#[test]
fn removing_a_lock_that_has_not_expired_is_refused_and_after_expiry_accepted() {
    let mut p = pair();
    let (l, _) = lock(30, 10, 7);
    let m = p.signed_by_a(mediated(&p, p.bp(1, 0, &[l]), l));
    p.accepted(m);
    let remove = p.signed_by_a(Message::RemoveExpiredHashlock(RemoveExpiredHashlock {
        balance_proof: p.bp(2, 0, &[]),
        secrethash: l.secrethash,
    }));
    p.refused(remove.clone(), "not expired");
    step(&mut p.b, Input::Block(BlockNumber(31)));
    p.accepted(remove);
    assert!(
        p.b.state
            .channel(&p.channel)
            .unwrap()
            .partner
            .locks
            .is_empty()
    );
}

#[test]
fn removing_an_expired_lock_whose_secret_was_registered_in_time_is_refused() {
    let mut p = pair();
    let (l, secret) = lock(30, 10, 7);
    let m = p.signed_by_a(mediated(&p, p.bp(1, 0, &[l]), l));
    p.accepted(m);
    let reg = ChainEvent::SecretRegistered {
        secrethash: l.secrethash,
        secret,
        block_number: BlockNumber(29),
    };
    step(&mut p.b, Input::ContractReceive(reg));
    step(&mut p.b, Input::Block(BlockNumber(31)));
    let remove = p.signed_by_a(Message::RemoveExpiredHashlock(RemoveExpiredHashlock {
        balance_proof: p.bp(2, 0, &[]),
        secrethash: l.secrethash,
    }));
    p.refused(remove, "registered on chain");
}

#[test]
fn an_unlock_of_an_unknown_lock_or_with_the_wrong_amount_is_refused() {
    let mut p = pair();
    let (l, secret) = lock(30, 10, 7);
    let (_, other_secret) = lock(30, 10, 8);
    let m = p.signed_by_a(mediated(&p, p.bp(1, 0, &[l]), l));
    p.accepted(m);
    let unknown = p.signed_by_a(Message::Unlock(Unlock {
        balance_proof: p.bp(2, 10, &[]),
        secret: other_secret,
    }));
    p.refused(unknown, "no pending lock");
    let short = p.signed_by_a(Message::Unlock(Unlock {
        balance_proof: p.bp(2, 9, &[]),
        secret,
    }));
    p.refused(short, "transferred amount");
    let right = p.signed_by_a(Message::Unlock(Unlock {
        balance_proof: p.bp(2, 10, &[]),
        secret,
    }));
    p.accepted(right);
    assert_eq!(p.b_view_of_a(), (amount(10), Nonce(2)));
}

#[test]
fn a_disposed_response_for_a_lock_we_never_gave_back_is_refused() {
    let mut p = pair();
    let (l, _) = lock(30, 10, 7);
    let m = p.signed_by_a(mediated(&p, p.bp(1, 0, &[l]), l));
    p.accepted(m);
    let resp = p.signed_by_a(Message::AnnounceDisposedResponse(
        AnnounceDisposedResponse {
            balance_proof: p.bp(2, 0, &[]),
            secrethash: l.secrethash,
        },
    ));
    p.refused(resp, "was not disposed");
}

#[test]
fn a_proof_from_another_epoch_is_refused() {
    let mut p = pair();
    let mut bp = p.bp(1, 30, &[]);
    bp.open_block_number = BlockNumber(2);
    let bytes = p.signed_by_a(direct(bp));
    p.refused(bytes, "open block number 2");
}

#[test]
fn a_message_for_an_unknown_channel_is_refused() {
    let mut p = pair();
    let mut bp = p.bp(1, 30, &[]);
    bp.channel_identifier = ChannelId(H256([9; 32]));
    let bytes = p.signed_by_a(direct(bp));
    p.refused(bytes, "unknown channel");
}

#[test]
fn nothing_is_accepted_after_the_channel_closed() {
    let mut p = pair();
    let closed = ChainEvent::ChannelClosed {
        channel_identifier: p.channel,
        closing_participant: p.ka.address(),
        transferred_amount: TokenAmount::ZERO,
        locksroot: Locksroot(H256::ZERO),
        block_number: BlockNumber(11),
    };
    step(&mut p.b, Input::ContractReceive(closed));
    let bytes = p.signed_by_a(direct(p.bp(1, 30, &[])));
    p.refused(bytes, "not open for transfers");
}

#[test]
fn malformed_bytes_are_refused() {
    let mut p = pair();
    p.refused(vec![1, 2, 3], "truncated");
    let mut bytes = p.signed_by_a(direct(p.bp(1, 30, &[])));
    bytes[0] = 99;
    p.refused(bytes, "unknown message type");
}

#[test]
fn the_sender_side_refuses_bad_actions_and_changes_nothing() {
    let mut p = pair();
    let before = p.a.state.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut ctx = Ctx {
        now_ms: 0,
        rng: &mut rng,
    };
    let b = p.b.address();
    let pay = |amount: u64, is_direct: bool| {
        Action::Transfer(smartraiden::core::TransferRequest {
            token: TOKEN,
            target: b,
            amount: TokenAmount::from(amount),
            max_fee: None,
            is_direct,
            secret: None,
            identifier: None,
        })
    };
    assert!(matches!(
        p.a.act(pay(101, true), &mut ctx),
        Err(smartraiden::core::ActionError::InsufficientBalance { .. })
    ));
    assert!(matches!(
        p.a.act(pay(101, false), &mut ctx),
        Err(smartraiden::core::ActionError::InsufficientBalance { .. })
    ));
    assert!(matches!(
        p.a.act(pay(0, true), &mut ctx),
        Err(smartraiden::core::ActionError::Invalid(_))
    ));
    let to_self = Action::Transfer(smartraiden::core::TransferRequest {
        token: TOKEN,
        target: p.a.address(),
        amount: TokenAmount::from(1u64),
        max_fee: None,
        is_direct: false,
        secret: None,
        identifier: None,
    });
    assert!(matches!(
        p.a.act(to_self, &mut ctx),
        Err(smartraiden::core::ActionError::Invalid(_))
    ));
    let unknown_token = Action::Transfer(smartraiden::core::TransferRequest {
        token: Address([0x77; 20]),
        target: b,
        amount: TokenAmount::from(1u64),
        max_fee: None,
        is_direct: false,
        secret: None,
        identifier: None,
    });
    assert!(matches!(
        p.a.act(unknown_token, &mut ctx),
        Err(smartraiden::core::ActionError::UnknownToken(_))
    ));
    assert_eq!(p.a.state, before);
}
