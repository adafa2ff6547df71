//! Hashing, EIP-191 prefixing, secp256k1 signing and public-key recovery, keys.

mod keys;
pub mod keystore;
mod signer;

pub use keys::PrivateKey;

use crate::primitives::{Address, H256, Signature};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};

/// Why a signature did not yield a signer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// `v` is neither 27 nor 28.
    #[error("signature v byte is {0}, expected 27 or 28")]
    BadV(u8),
    /// `s` is in the upper half of the curve order (a malleated signature).
    #[error("signature s value is not canonical (high s)")]
    HighS,
    /// r/s out of range or no public key recovers from it.
    #[error("signature does not recover to a public key")]
    Unrecoverable,
}

/// keccak256 of `data`.
pub fn keccak256(data: impl AsRef<[u8]>) -> H256 {
    H256(alloy_primitives::keccak256(data.as_ref()).0)
}

/// `keccak256("\x19Ethereum Signed Message:\n" ‖ decimal len(data) ‖ data)` (EIP-191 v0x45).
pub fn eip191_hash(data: &[u8]) -> H256 {
    let mut hasher = alloy_primitives::Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n");
    hasher.update(data.len().to_string().as_bytes());
    hasher.update(data);
    H256(hasher.finalize().0)
}

/// The Ethereum address of an uncompressed public key: last 20 bytes of keccak(x ‖ y).
pub(crate) fn address_of(pk: &secp256k1::PublicKey) -> Address {
    let uncompressed = pk.serialize_uncompressed();
    let hash = keccak256(&uncompressed[1..]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&hash.0[12..]);
    Address(a)
}

/// Half the secp256k1 group order, big-endian: the largest canonical `s`.
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

/// The signer of a 32-byte digest.
pub fn recover_digest(digest: &H256, sig: &Signature) -> Result<Address, SignatureError> {
    let v = sig.0[64];
    if v != 27 && v != 28 {
        return Err(SignatureError::BadV(v));
    }
    if sig.0[32..64] > HALF_ORDER[..] {
        return Err(SignatureError::HighS);
    }
    let recid = RecoveryId::from_u8_masked(v - 27);
    let rs = RecoverableSignature::from_compact(&sig.0[..64], recid)
        .map_err(|_| SignatureError::Unrecoverable)?;
    let pk = rs
        .recover_ecdsa(secp256k1::Message::from_digest(digest.0))
        .map_err(|_| SignatureError::Unrecoverable)?;
    Ok(address_of(&pk))
}

/// The signer of `data` under EIP-191 prefixing.
pub fn recover_eip191(data: &[u8], sig: &Signature) -> Result<Address, SignatureError> {
    recover_digest(&eip191_hash(data), sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// anvil's first account (the well-known test mnemonic).
    const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn known_key_has_known_address() {
        let k = PrivateKey::from_hex(KEY).unwrap();
        assert_eq!(
            k.address().to_checksum(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
    }

    #[test]
    fn sign_then_recover_gives_signer() {
        let k = PrivateKey::from_hex(KEY).unwrap();
        let sig = k.sign_eip191(b"hello");
        assert!(sig.0[64] == 27 || sig.0[64] == 28);
        assert_eq!(recover_eip191(b"hello", &sig).unwrap(), k.address());
        assert_ne!(recover_eip191(b"hellp", &sig).unwrap(), k.address());
    }

    #[test]
    fn eip191_matches_known_personal_sign_hash() {
        // web3.eth.accounts.hashMessage("hello")
        assert_eq!(
            eip191_hash(b"hello").to_string(),
            "0x50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750"
        );
    }

    #[test]
    fn malformed_signatures_are_rejected() {
        let k = PrivateKey::from_hex(KEY).unwrap();
        let mut sig = k.sign_eip191(b"x");
        sig.0[64] = 29;
        assert_eq!(recover_eip191(b"x", &sig), Err(SignatureError::BadV(29)));
        let mut high = k.sign_eip191(b"x");
        high.0[32] = 0xff;
        assert_eq!(recover_eip191(b"x", &high), Err(SignatureError::HighS));
        let zero = Signature([0; 65]);
        assert!(recover_eip191(b"x", &zero).is_err());
    }
}
