//! [`TokenAmount`]: a 256-bit token quantity with checked arithmetic.

use alloy_primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// An amount of tokens (`uint256` on chain). Arithmetic is checked: callers decide what an
/// overflow means, nothing wraps silently.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TokenAmount(pub U256);

impl TokenAmount {
    /// Zero tokens.
    pub const ZERO: TokenAmount = TokenAmount(U256::ZERO);

    /// `self + rhs`, or `None` on overflow.
    pub fn checked_add(self, rhs: TokenAmount) -> Option<TokenAmount> {
        self.0.checked_add(rhs.0).map(TokenAmount)
    }

    /// `self - rhs`, or `None` if it would go negative.
    pub fn checked_sub(self, rhs: TokenAmount) -> Option<TokenAmount> {
        self.0.checked_sub(rhs.0).map(TokenAmount)
    }

    /// `self - rhs`, floored at zero.
    pub fn saturating_sub(self, rhs: TokenAmount) -> TokenAmount {
        TokenAmount(self.0.saturating_sub(rhs.0))
    }

    /// `self + rhs`, capped at the maximum.
    pub fn saturating_add(self, rhs: TokenAmount) -> TokenAmount {
        TokenAmount(self.0.saturating_add(rhs.0))
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// The 32-byte big-endian form used in signed digests.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_be_bytes()
    }

    /// The value as `u128` if it fits (for display and tests).
    pub fn to_u128(&self) -> Option<u128> {
        u128::try_from(self.0).ok()
    }
}

impl From<u64> for TokenAmount {
    fn from(v: u64) -> Self {
        TokenAmount(U256::from(v))
    }
}

impl From<u128> for TokenAmount {
    fn from(v: u128) -> Self {
        TokenAmount(U256::from(v))
    }
}

impl fmt::Debug for TokenAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for TokenAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An amount string that is not a non-negative decimal integer below 2^256.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a token amount (a non-negative decimal integer below 2^256): {0:?}")]
pub struct ParseAmountError(pub String);

impl FromStr for TokenAmount {
    type Err = ParseAmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseAmountError(s.to_owned()));
        }
        U256::from_str_radix(t, 10)
            .map(TokenAmount)
            .map_err(|_| ParseAmountError(s.to_owned()))
    }
}

/// On the wire an amount is its big-endian bytes without leading zeros (zero is empty), a
/// MessagePack `bin`. Decoding rejects leading zeros so every amount has one encoding.
impl Serialize for TokenAmount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let be = self.0.to_be_bytes::<32>();
        let first = be.iter().position(|b| *b != 0).unwrap_or(32);
        serde_bytes::Bytes::new(&be[first..]).serialize(s)
    }
}

impl<'de> Deserialize<'de> for TokenAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(AmountVisitor)
    }
}

/// Accepts the canonical big-endian byte form of an amount.
struct AmountVisitor;

impl<'de> serde::de::Visitor<'de> for AmountVisitor {
    type Value = TokenAmount;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("at most 32 big-endian bytes without a leading zero")
    }

    /// Self-describing formats without a byte type (JSON) write bytes as a sequence.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<TokenAmount, A::Error> {
        let mut bytes = Vec::with_capacity(32);
        while let Some(b) = seq.next_element::<u8>()? {
            if bytes.len() == 32 {
                return Err(serde::de::Error::custom(
                    "token amount longer than 32 bytes",
                ));
            }
            bytes.push(b);
        }
        self.visit_bytes(&bytes)
    }

    fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<TokenAmount, E> {
        if b.len() > 32 {
            return Err(E::custom("token amount longer than 32 bytes"));
        }
        if b.first() == Some(&0) {
            return Err(E::custom("token amount with a leading zero byte"));
        }
        let mut be = [0u8; 32];
        be[32 - b.len()..].copy_from_slice(b);
        Ok(TokenAmount(U256::from_be_bytes(be)))
    }
}
