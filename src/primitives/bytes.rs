//! Fixed-size byte newtypes: [`Address`], [`H256`], [`Signature`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A hex string that could not be parsed into a fixed-size value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseHexError {
    /// Not hexadecimal.
    #[error("not hexadecimal: {0}")]
    NotHex(String),
    /// Wrong number of bytes.
    #[error("expected {expected} bytes, got {got}")]
    Length {
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
}

/// Parses `0x`-prefixed (or bare) hex into exactly `N` bytes.
pub fn parse_fixed_hex<const N: usize>(s: &str) -> Result<[u8; N], ParseHexError> {
    let s = s.trim();
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let bytes = hex::decode(digits).map_err(|_| ParseHexError::NotHex(s.to_owned()))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| ParseHexError::Length {
        expected: N,
        got: bytes.len(),
    })
}

/// Serde for fixed-size arrays as MessagePack `bin` (compact, canonical).
pub(crate) mod fixed_bytes {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        serde_bytes::Bytes::new(v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        d.deserialize_bytes(FixedVisitor::<N>)
    }

    /// Accepts a byte string of exactly `N` bytes, borrowed or not.
    struct FixedVisitor<const N: usize>;

    impl<'de, const N: usize> serde::de::Visitor<'de> for FixedVisitor<N> {
        type Value = [u8; N];

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a byte string of {N} bytes")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            <[u8; N]>::try_from(v).map_err(|_| E::invalid_length(v.len(), &self))
        }

        /// Self-describing formats without a byte type (JSON) write bytes as a sequence.
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = [0u8; N];
            for (i, b) in out.iter_mut().enumerate() {
                *b = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
            }
            if seq.next_element::<u8>()?.is_some() {
                return Err(serde::de::Error::invalid_length(N + 1, &self));
            }
            Ok(out)
        }
    }
}

/// A 20-byte Ethereum account address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Address(#[serde(with = "fixed_bytes")] pub [u8; 20]);

impl Address {
    /// The zero address.
    pub const ZERO: Address = Address([0; 20]);

    /// Lowercase hex without `0x` (the XMPP node part).
    pub fn to_lower_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// EIP-55 mixed-case checksummed `0x` form.
    pub fn to_checksum(&self) -> String {
        let lower = self.to_lower_hex();
        let hash = crate::crypto::keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash.0[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// First bytes of the address, for logs.
    pub fn short(&self) -> String {
        format!("0x{}", hex::encode(&self.0[..4]))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl FromStr for Address {
    type Err = ParseHexError;
    /// Accepts any case; does not insist on a valid checksum.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_fixed_hex(s).map(Address)
    }
}

/// A 32-byte hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct H256(#[serde(with = "fixed_bytes")] pub [u8; 32]);

impl H256 {
    /// All zero bytes.
    pub const ZERO: H256 = H256([0; 32]);

    /// Whether every byte is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }

    /// First bytes, for logs.
    pub fn short(&self) -> String {
        format!("0x{}…", hex::encode(&self.0[..4]))
    }
}

impl fmt::Debug for H256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

impl fmt::Display for H256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl FromStr for H256 {
    type Err = ParseHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_fixed_hex(s).map(H256)
    }
}

/// A 65-byte secp256k1 signature `r ‖ s ‖ v` with `v ∈ {27, 28}`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "fixed_bytes")] pub [u8; 65]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(0x{}…)", hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl FromStr for Signature {
    type Err = ParseHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_fixed_hex(s).map(Signature)
    }
}
