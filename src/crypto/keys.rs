//! [`PrivateKey`]: a node's signing key.

use super::signer::SigningContext;
use super::{address_of, eip191_hash};
use crate::primitives::{Address, H256, ParseHexError, Signature};
use std::sync::Arc;

/// A secp256k1 private key with its cached address and signing context (shared by clones).
/// Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct PrivateKey {
    secret: secp256k1::SecretKey,
    address: Address,
    signer: Arc<SigningContext>,
}

/// A key that is not a valid secp256k1 scalar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 32 bytes of hex.
    #[error("private key: {0}")]
    Hex(#[from] ParseHexError),
    /// Zero or not below the curve order.
    #[error("private key is not a valid secp256k1 scalar")]
    OutOfRange,
}

impl PrivateKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
        let secret =
            secp256k1::SecretKey::from_secret_bytes(bytes).map_err(|_| KeyError::OutOfRange)?;
        let address = address_of(&secp256k1::PublicKey::from_secret_key(&secret));
        Ok(PrivateKey {
            secret,
            address,
            signer: Arc::new(SigningContext::new()),
        })
    }

    /// A key from 64 hex digits, `0x` optional.
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        Self::from_bytes(crate::primitives::bytes_from_hex::<32>(s)?)
    }

    /// A fresh random key from a caller-supplied randomness source.
    pub fn random(rng: &mut impl rand_core::RngCore) -> Self {
        loop {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            if let Ok(k) = Self::from_bytes(b) {
                return k;
            }
        }
    }

    /// The 32 secret bytes (for writing a keystore; never log them).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_secret_bytes()
    }

    /// The account address of this key.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte digest as `r ‖ s ‖ v` with `v ∈ {27, 28}` and low `s`.
    pub fn sign_digest(&self, digest: &H256) -> Signature {
        let rs = self.signer.sign(&digest.0, &self.secret);
        let (recid, compact) = rs.serialize_compact();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&compact);
        out[64] = 27 + recid.to_u8();
        Signature(out)
    }

    /// Signs `data` under EIP-191 prefixing.
    pub fn sign_eip191(&self, data: &[u8]) -> Signature {
        self.sign_digest(&eip191_hash(data))
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.address.short())
    }
}
