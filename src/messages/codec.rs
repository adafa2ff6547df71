//! Deterministic encoding, signing, decoding and signer recovery.

use super::body::*;
use crate::crypto::{PrivateKey, SignatureError, keccak256, recover_eip191};
use crate::primitives::{Address, ChainId, H256, Signature};
use crate::proofs::{
    BalanceProofData, ChannelBinding, CooperativeSettleData, DisposedLockData, SignedData,
    WithdrawData,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest wire message accepted; real messages are a few hundred bytes.
pub const MAX_MESSAGE_SIZE: usize = 4096;
const SIG_LEN: usize = 65;

/// Why bytes are not a valid signed message. Decoding never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than a type byte plus a signature.
    #[error("message truncated: {0} bytes")]
    Truncated(usize),
    /// Larger than [`MAX_MESSAGE_SIZE`].
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_SIZE}-byte limit")]
    Oversized(usize),
    /// Unknown type byte.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// Fields do not decode (wrong types, out-of-range values, missing fields).
    #[error("malformed {kind} body: {reason}")]
    Malformed {
        /// Which message.
        kind: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// Decodes, but is not the one canonical encoding (trailing bytes, wide integers…).
    #[error("non-canonical {0} encoding")]
    NonCanonical(&'static str),
    /// The signature yields no signer.
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
}

/// A decoded message with the signer recovered from its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedMessage {
    /// The message.
    pub message: Message,
    /// Who signed it (never taken from the transport).
    pub sender: Address,
    /// The signature as received.
    pub signature: Signature,
    /// `keccak256(body)`: the message's identity and the echo its Ack carries.
    pub hash: H256,
    /// The exact wire bytes.
    pub bytes: Vec<u8>,
}

fn type_byte(m: &Message) -> u8 {
    match m {
        Message::DirectTransfer(_) => 1,
        Message::MediatedTransfer(_) => 2,
        Message::SecretRequest(_) => 3,
        Message::RevealSecret(_) => 4,
        Message::Unlock(_) => 5,
        Message::RemoveExpiredHashlock(_) => 6,
        Message::AnnounceDisposed(_) => 7,
        Message::AnnounceDisposedResponse(_) => 8,
        Message::WithdrawRequest(_) => 9,
        Message::WithdrawResponse(_) => 10,
        Message::SettleRequest(_) => 11,
        Message::SettleResponse(_) => 12,
        Message::Ping(_) => 13,
        Message::Ack(_) => 14,
    }
}

/// The SPEC §3 name of the message in signed wire `bytes`, from its type byte alone (no
/// decoding, no signature check): for logs and fault points.
pub fn wire_kind(bytes: &[u8]) -> &'static str {
    match bytes.first() {
        Some(1) => "DirectTransfer",
        Some(2) => "MediatedTransfer",
        Some(3) => "SecretRequest",
        Some(4) => "RevealSecret",
        Some(5) => "Secret",
        Some(6) => "RemoveExpiredHashlock",
        Some(7) => "AnnounceDisposed",
        Some(8) => "AnnounceDisposedResponse",
        Some(9) => "WithdrawRequest",
        Some(10) => "WithdrawResponse",
        Some(11) => "SettleRequest",
        Some(12) => "SettleResponse",
        Some(13) => "Ping",
        Some(14) => "Ack",
        _ => "Unknown",
    }
}

fn push_fields<T: Serialize>(out: &mut Vec<u8>, v: &T) {
    rmp_serde::encode::write(out, v).expect("encoding to a Vec cannot fail");
}

/// The canonical body bytes of a message.
pub fn encode_body(m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(type_byte(m));
    match m {
        Message::DirectTransfer(b) => push_fields(&mut out, b),
        Message::MediatedTransfer(b) => push_fields(&mut out, b),
        Message::SecretRequest(b) => push_fields(&mut out, b),
        Message::RevealSecret(b) => push_fields(&mut out, b),
        Message::Unlock(b) => push_fields(&mut out, b),
        Message::RemoveExpiredHashlock(b) => push_fields(&mut out, b),
        Message::AnnounceDisposed(b) => push_fields(&mut out, b),
        Message::AnnounceDisposedResponse(b) => push_fields(&mut out, b),
        Message::WithdrawRequest(b) | Message::WithdrawResponse(b) => push_fields(&mut out, b),
        Message::SettleRequest(b) | Message::SettleResponse(b) => push_fields(&mut out, b),
        Message::Ping(b) => push_fields(&mut out, b),
        Message::Ack(b) => push_fields(&mut out, b),
    }
    out
}

/// The SPEC §2 data a message's signature covers.
fn signed_data(m: &Message, body_hash: H256, chain_id: ChainId) -> Option<Vec<u8>> {
    let binding = |c, o| ChannelBinding {
        channel_identifier: c,
        open_block_number: o,
        chain_id,
    };
    Some(match m {
        Message::AnnounceDisposed(d) => DisposedLockData {
            lockhash: d.lock.lockhash(),
            binding: binding(d.channel_identifier, d.open_block_number),
            additional_hash: body_hash,
        }
        .packed(),
        Message::WithdrawRequest(w) | Message::WithdrawResponse(w) => {
            withdraw_data(w, chain_id).packed()
        }
        Message::SettleRequest(s) | Message::SettleResponse(s) => settle_data(s, chain_id).packed(),
        other => {
            let bp = other.balance_proof()?;
            balance_proof_data(bp, body_hash, chain_id).packed()
        }
    })
}

/// The on-chain balance-proof data of a message's balance proof.
pub fn balance_proof_data(
    bp: &BalanceProof,
    additional_hash: H256,
    chain_id: ChainId,
) -> BalanceProofData {
    BalanceProofData {
        transferred_amount: bp.transferred_amount,
        locksroot: bp.locksroot,
        nonce: bp.nonce,
        additional_hash,
        binding: ChannelBinding {
            channel_identifier: bp.channel_identifier,
            open_block_number: bp.open_block_number,
            chain_id,
        },
    }
}

/// The on-chain withdraw data of withdraw terms.
pub fn withdraw_data(w: &WithdrawTerms, chain_id: ChainId) -> WithdrawData {
    WithdrawData {
        participant: w.participant,
        participant_balance: w.participant_balance,
        participant_withdraw: w.participant_withdraw,
        expiration: w.expiration,
        binding: ChannelBinding {
            channel_identifier: w.channel_identifier,
            open_block_number: w.open_block_number,
            chain_id,
        },
    }
}

/// The on-chain cooperative-settle data of settle terms.
pub fn settle_data(s: &SettleTerms, chain_id: ChainId) -> CooperativeSettleData {
    CooperativeSettleData {
        participant1: s.participant1,
        participant1_balance: s.participant1_balance,
        participant2: s.participant2,
        participant2_balance: s.participant2_balance,
        expiration: s.expiration,
        binding: ChannelBinding {
            channel_identifier: s.channel_identifier,
            open_block_number: s.open_block_number,
            chain_id,
        },
    }
}

/// Encodes and signs `m`, returning the decoded view (hash, bytes) of what was produced.
pub fn encode_signed(m: Message, key: &PrivateKey, chain_id: ChainId) -> SignedMessage {
    let body = encode_body(&m);
    let hash = keccak256(&body);
    let signature = match signed_data(&m, hash, chain_id) {
        Some(data) => key.sign_eip191(&data),
        None => key.sign_eip191(&body),
    };
    let mut bytes = body;
    bytes.extend_from_slice(&signature.0);
    SignedMessage {
        message: m,
        sender: key.address(),
        signature,
        hash,
        bytes,
    }
}

fn fields<T: DeserializeOwned>(kind: &'static str, b: &[u8]) -> Result<T, DecodeError> {
    rmp_serde::from_slice(b).map_err(|e| DecodeError::Malformed {
        kind,
        reason: e.to_string(),
    })
}

/// Decodes wire bytes, checks the encoding is canonical and recovers the signer.
pub fn decode(bytes: &[u8], chain_id: ChainId) -> Result<SignedMessage, DecodeError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(DecodeError::Oversized(bytes.len()));
    }
    if bytes.len() < 1 + SIG_LEN {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    let (body, sig) = bytes.split_at(bytes.len() - SIG_LEN);
    let f = &body[1..];
    let message = match body[0] {
        1 => Message::DirectTransfer(fields("DirectTransfer", f)?),
        2 => Message::MediatedTransfer(fields("MediatedTransfer", f)?),
        3 => Message::SecretRequest(fields("SecretRequest", f)?),
        4 => Message::RevealSecret(fields("RevealSecret", f)?),
        5 => Message::Unlock(fields("Secret", f)?),
        6 => Message::RemoveExpiredHashlock(fields("RemoveExpiredHashlock", f)?),
        7 => Message::AnnounceDisposed(fields("AnnounceDisposed", f)?),
        8 => Message::AnnounceDisposedResponse(fields("AnnounceDisposedResponse", f)?),
        9 => Message::WithdrawRequest(fields("WithdrawRequest", f)?),
        10 => Message::WithdrawResponse(fields("WithdrawResponse", f)?),
        11 => Message::SettleRequest(fields("SettleRequest", f)?),
        12 => Message::SettleResponse(fields("SettleResponse", f)?),
        13 => Message::Ping(fields("Ping", f)?),
        14 => Message::Ack(fields("Ack", f)?),
        t => return Err(DecodeError::UnknownType(t)),
    };
    if encode_body(&message) != body {
        return Err(DecodeError::NonCanonical(message.kind()));
    }
    let signature = Signature(sig.try_into().expect("split at SIG_LEN"));
    let hash = keccak256(body);
    let sender = match signed_data(&message, hash, chain_id) {
        Some(data) => recover_eip191(&data, &signature)?,
        None => recover_eip191(body, &signature)?,
    };
    Ok(SignedMessage {
        message,
        sender,
        signature,
        hash,
        bytes: bytes.to_vec(),
    })
}
