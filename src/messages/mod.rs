//! The signed protocol messages of SPEC §3 and their wire encoding.
//!
//! Wire form: `body ‖ signature(65)`, where `body = type byte ‖ MessagePack array of fields`.
//! Encoding is deterministic and decoding insists on it (a re-encode must give the same bytes),
//! so every message has exactly one byte form and `keccak256(body)` names it.
//! Balance-proof messages sign the SPEC §2 balance-proof data with
//! `additional_hash = keccak256(body)`; AnnounceDisposed signs the disposed-lock data, withdraw
//! and settle messages sign their proof data, and the rest sign `body` under EIP-191.

mod body;
mod codec;

pub use body::*;
pub use codec::{
    DecodeError, MAX_MESSAGE_SIZE, SignedMessage, balance_proof_data, decode, encode_body,
    encode_signed, settle_data, wire_kind, withdraw_data,
};
