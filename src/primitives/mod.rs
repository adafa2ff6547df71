//! Domain newtypes: addresses, hashes, amounts, nonces, block numbers, secrets, signatures.
//!
//! Each type says what a value is, so a nonce cannot be passed where an amount is expected.

mod amount;
mod bytes;

pub use amount::ParseAmountError;
pub use amount::TokenAmount;
pub use bytes::{Address, H256, ParseHexError, Signature, parse_fixed_hex as bytes_from_hex};

use serde::{Deserialize, Serialize};

/// Defines a 32-byte newtype over [`H256`] with hex display and serde as raw bytes.
macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub H256);

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.short())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

hash_newtype!(
    /// `keccak256(lower_address ‖ higher_address ‖ token_network_address)`.
    ChannelId
);
hash_newtype!(
    /// `sha256(secret)`: names a hash-time lock and the payment it belongs to.
    SecretHash
);
hash_newtype!(
    /// The preimage that unlocks a hash-time lock. Never logged.
    Secret
);
hash_newtype!(
    /// Merkle root over the lockhashes of a participant's pending locks.
    Locksroot
);

impl Secret {
    /// `sha256(secret)`.
    pub fn hash(&self) -> SecretHash {
        use sha2::Digest;
        SecretHash(H256(sha2::Sha256::digest(self.0.0).into()))
    }
}

/// Defines a `u64` newtype with arithmetic helpers.
macro_rules! u64_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

u64_newtype!(
    /// Balance-proof sequence number: strictly previous + 1 per channel direction.
    Nonce
);
u64_newtype!(
    /// A block height of the chain.
    BlockNumber
);
u64_newtype!(
    /// EIP-155 chain id (a `uint256` in signed digests).
    ChainId
);
u64_newtype!(
    /// A count of blocks (settle timeout, reveal timeout).
    BlockCount
);

impl Nonce {
    /// The nonce that must follow this one.
    pub fn next(self) -> Nonce {
        Nonce(self.0 + 1)
    }
}

impl BlockNumber {
    /// This block plus `n` blocks (saturating).
    pub fn plus(self, n: BlockCount) -> BlockNumber {
        BlockNumber(self.0.saturating_add(n.0))
    }

    /// This block minus `n` blocks (saturating at 0).
    pub fn minus(self, n: BlockCount) -> BlockNumber {
        BlockNumber(self.0.saturating_sub(n.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newtypes_round_trip_through_json_and_messagepack() {
        let v = (
            Address([7; 20]),
            H256([9; 32]),
            TokenAmount::from(123_456u64),
            Nonce(5),
        );
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            serde_json::from_str::<(Address, H256, TokenAmount, Nonce)>(&json).unwrap(),
            v
        );
        let mp = rmp_serde::to_vec(&v).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<(Address, H256, TokenAmount, Nonce)>(&mp).unwrap(),
            v
        );
        assert!(
            serde_json::from_str::<Address>("[1,2,3]").is_err(),
            "wrong length is refused"
        );
    }
}
