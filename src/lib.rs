//! SmartRaiden: an off-chain payment channel network for ERC-20 tokens.
//!
//! The protocol core ([`core`]) is deterministic and free of I/O; everything else is a thin shell
//! that carries out what the core decides.

pub mod api;
pub mod chain;
pub mod core;
pub mod crypto;
pub mod delegation;
pub mod messages;
pub mod monitor;
pub mod node;
pub mod primitives;
pub mod proofs;
pub mod sim;
pub mod storage;
pub mod testnet;
pub mod transport;
