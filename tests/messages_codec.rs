//! Wire encoding of every SPEC §3 message: deterministic round trips, signer recovery, and
//! typed rejection (never a panic) of truncated, oversized, unknown, malformed, non-canonical
//! and badly signed input.

use proptest::prelude::*;
use smartraiden::crypto::PrivateKey;
use smartraiden::messages::*;
use smartraiden::primitives::*;
use smartraiden::proofs::{Lock, SignedData};

const CHAIN: ChainId = ChainId(31337);

fn key(i: u8) -> PrivateKey {
    PrivateKey::from_bytes([i; 32]).unwrap()
}

fn h(i: u8) -> H256 {
    H256([i; 32])
}

fn bp() -> BalanceProof {
    BalanceProof {
        channel_identifier: ChannelId(h(1)),
        open_block_number: BlockNumber(7),
        nonce: Nonce(3),
        transferred_amount: TokenAmount::from(150u64),
        locksroot: Locksroot(h(2)),
    }
}

fn lock() -> Lock {
    Lock {
        expiration: BlockNumber(99),
        amount: TokenAmount::from(50u64),
        secrethash: SecretHash(h(3)),
    }
}

fn every_message() -> Vec<Message> {
    let w = WithdrawTerms {
        channel_identifier: ChannelId(h(1)),
        open_block_number: BlockNumber(7),
        participant: key(1).address(),
        participant_balance: TokenAmount::from(100u64),
        participant_withdraw: TokenAmount::from(10u64),
        expiration: BlockNumber(27),
    };
    let s = SettleTerms {
        channel_identifier: ChannelId(h(1)),
        open_block_number: BlockNumber(7),
        participant1: key(1).address(),
        participant1_balance: TokenAmount::from(100u64),
        participant2: key(2).address(),
        participant2_balance: TokenAmount::from(200u64),
        expiration: BlockNumber(27),
    };
    vec![
        Message::DirectTransfer(DirectTransfer {
            balance_proof: bp(),
            payment_identifier: 7,
        }),
        Message::MediatedTransfer(MediatedTransfer {
            balance_proof: bp(),
            lock: lock(),
            initiator: key(1).address(),
            target: key(5).address(),
            fee: TokenAmount::from(6u64),
        }),
        Message::SecretRequest(SecretRequest {
            secrethash: SecretHash(h(3)),
            amount: TokenAmount::from(50u64),
        }),
        Message::RevealSecret(RevealSecret {
            secret: Secret(h(4)),
        }),
        Message::Unlock(Unlock {
            balance_proof: bp(),
            secret: Secret(h(4)),
        }),
        Message::RemoveExpiredHashlock(RemoveExpiredHashlock {
            balance_proof: bp(),
            secrethash: SecretHash(h(3)),
        }),
        Message::AnnounceDisposed(AnnounceDisposed {
            channel_identifier: ChannelId(h(1)),
            open_block_number: BlockNumber(7),
            lock: lock(),
        }),
        Message::AnnounceDisposedResponse(AnnounceDisposedResponse {
            balance_proof: bp(),
            secrethash: SecretHash(h(3)),
        }),
        Message::WithdrawRequest(w),
        Message::WithdrawResponse(w),
        Message::SettleRequest(s),
        Message::SettleResponse(s),
        Message::Ping(Ping { nonce: 42 }),
        Message::Ack(Ack { echo: h(9) }),
    ]
}

#[test]
fn every_message_round_trips_and_recovers_its_signer() {
    for m in every_message() {
        let signed = encode_signed(m.clone(), &key(1), CHAIN);
        let back = decode(&signed.bytes, CHAIN).unwrap();
        assert_eq!(back.message, m, "{}", m.kind());
        assert_eq!(back.sender, key(1).address(), "{}", m.kind());
        assert_eq!(back.hash, signed.hash);
        // Deterministic: signing again gives the same bytes.
        assert_eq!(encode_signed(m, &key(1), CHAIN).bytes, signed.bytes);
    }
}

#[test]
fn balance_proof_messages_sign_the_on_chain_digest_with_additional_hash_of_the_body() {
    let m = Message::DirectTransfer(DirectTransfer {
        balance_proof: bp(),
        payment_identifier: 7,
    });
    let signed = encode_signed(m, &key(1), CHAIN);
    let data = balance_proof_data(&bp(), signed.hash, CHAIN);
    assert_eq!(
        signed.hash,
        smartraiden::crypto::keccak256(encode_body(&signed.message))
    );
    assert_eq!(data.signer(&signed.signature).unwrap(), key(1).address());
}

#[test]
fn a_wrong_chain_id_recovers_someone_else() {
    let signed = encode_signed(
        Message::DirectTransfer(DirectTransfer {
            balance_proof: bp(),
            payment_identifier: 7,
        }),
        &key(1),
        CHAIN,
    );
    let other = decode(&signed.bytes, ChainId(1)).unwrap();
    assert_ne!(other.sender, key(1).address());
}

#[test]
fn truncated_oversized_and_unknown_input_is_rejected() {
    let signed = encode_signed(Message::Ping(Ping { nonce: 1 }), &key(1), CHAIN);
    assert_eq!(decode(&[], CHAIN), Err(DecodeError::Truncated(0)));
    assert_eq!(
        decode(&signed.bytes[..40], CHAIN),
        Err(DecodeError::Truncated(40))
    );
    assert_eq!(
        decode(&vec![1u8; MAX_MESSAGE_SIZE + 1], CHAIN),
        Err(DecodeError::Oversized(MAX_MESSAGE_SIZE + 1))
    );
    let mut unknown = signed.bytes.clone();
    unknown[0] = 200;
    assert_eq!(decode(&unknown, CHAIN), Err(DecodeError::UnknownType(200)));
}

#[test]
fn a_body_cut_short_is_malformed() {
    let signed = encode_signed(every_message()[1].clone(), &key(1), CHAIN);
    let body_len = signed.bytes.len() - 65;
    let mut cut = signed.bytes[..body_len - 5].to_vec();
    cut.extend_from_slice(&signed.signature.0);
    assert!(matches!(
        decode(&cut, CHAIN),
        Err(DecodeError::Malformed {
            kind: "MediatedTransfer",
            ..
        })
    ));
}

#[test]
fn trailing_bytes_and_wide_integers_are_non_canonical() {
    let signed = encode_signed(Message::Ping(Ping { nonce: 1 }), &key(1), CHAIN);
    let body_len = signed.bytes.len() - 65;
    let mut trailing = signed.bytes[..body_len].to_vec();
    trailing.push(0xc0);
    trailing.extend_from_slice(&signed.signature.0);
    assert_eq!(
        decode(&trailing, CHAIN),
        Err(DecodeError::NonCanonical("Ping"))
    );
    // Ping{nonce: 1} re-encoded with a uint64 marker instead of a fixint.
    let mut wide = vec![13u8, 0x91, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1];
    wide.extend_from_slice(&signed.signature.0);
    assert_eq!(decode(&wide, CHAIN), Err(DecodeError::NonCanonical("Ping")));
}

#[test]
fn out_of_range_amounts_are_malformed() {
    // DirectTransfer whose transferred_amount has 33 bytes.
    let signed = encode_signed(
        Message::DirectTransfer(DirectTransfer {
            balance_proof: bp(),
            payment_identifier: 7,
        }),
        &key(1),
        CHAIN,
    );
    let body = &signed.bytes[..signed.bytes.len() - 65];
    let amount_at = body.windows(2).position(|w| w == [0xc4, 1]).unwrap(); // bin8 of length 1 (150)
    let mut long = body[..amount_at].to_vec();
    long.extend_from_slice(&[0xc4, 33]);
    long.extend_from_slice(&[1u8; 33]);
    long.extend_from_slice(&body[amount_at + 3..]);
    long.extend_from_slice(&signed.signature.0);
    assert!(matches!(
        decode(&long, CHAIN),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn a_tampered_or_malformed_signature_is_rejected_or_names_another_signer() {
    let signed = encode_signed(Message::Ping(Ping { nonce: 1 }), &key(1), CHAIN);
    let mut bad_v = signed.bytes.clone();
    *bad_v.last_mut().unwrap() = 0;
    assert!(matches!(
        decode(&bad_v, CHAIN),
        Err(DecodeError::Signature(_))
    ));
    let mut flipped = signed.bytes.clone();
    flipped[1] ^= 1; // body changes: the signature no longer names key(1)
    if let Ok(m) = decode(&flipped, CHAIN) {
        assert_ne!(m.sender, key(1).address());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(&bytes, CHAIN);
    }

    #[test]
    fn mutated_valid_messages_never_panic_nor_keep_the_signer(i in 0usize..14, pos in any::<usize>(), bit in 0u8..8) {
        let signed = encode_signed(every_message()[i].clone(), &key(1), CHAIN);
        let mut b = signed.bytes.clone();
        let p = pos % b.len();
        b[p] ^= 1 << bit;
        if let Ok(m) = decode(&b, CHAIN) {
            prop_assert!(m.sender != key(1).address() || m.bytes == signed.bytes);
        }
    }
}
