//! SmartRaiden: an off-chain payment channel network for ERC-20 tokens.
pub mod chain;
