//! Conversions between the core's primitive newtypes and alloy's types. The two sides share
//! `U256` (alloy-primitives), so amounts convert for free; byte types are copied.

use alloy::primitives::{Address as EthAddress, B256, Bytes};

use crate::primitives::{Address, H256, Signature, TokenAmount};

/// alloy address of a core address.
pub fn eth_address(a: Address) -> EthAddress {
    EthAddress::from(a.0)
}

/// Core address of an alloy address.
pub fn address(a: EthAddress) -> Address {
    Address(a.0.0)
}

/// alloy `bytes32` of a core 32-byte value.
pub fn b256(h: H256) -> B256 {
    B256::from(h.0)
}

/// Core 32-byte value of an alloy `bytes32`.
pub fn h256(b: B256) -> H256 {
    H256(b.0)
}

/// A signature as contract call data (`r ‖ s ‖ v`, 65 bytes).
pub fn signature_bytes(s: &Signature) -> Bytes {
    Bytes::copy_from_slice(&s.0)
}

/// A Merkle proof as the contracts take it: the sibling hashes concatenated.
pub fn merkle_proof_bytes(proof: &[H256]) -> Bytes {
    let mut out = Vec::with_capacity(proof.len() * 32);
    for node in proof {
        out.extend_from_slice(&node.0);
    }
    Bytes::from(out)
}

/// Core amount of an alloy `uint256`.
pub fn amount(v: alloy::primitives::U256) -> TokenAmount {
    TokenAmount(v)
}
