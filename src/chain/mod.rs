//! On-chain half of SmartRaiden: contract bindings, a transaction-sending client, deployment and
//! (for tests and local use) an anvil dev-chain harness.

pub mod bindings;
pub mod calls;
pub mod client;
pub mod convert;
pub mod delegate;
pub mod deploy;
pub mod devchain;
pub mod events;
pub mod follower;
pub mod queries;

pub use calls::{ChainContracts, ChainExecutor, TxOutcome};
pub use client::ChainClient;
pub use deploy::{DeployOptions, Deployment};
pub use devchain::{DevChain, DevChainOptions};
pub use follower::{ChainFollower, FollowerConfig, FollowerProgress, FollowerStatus};
pub use queries::OnChainChannel;

use alloy::primitives::{Bytes, TxHash};
use alloy::sol_types::SolInterface;
use alloy::transports::{RpcError, TransportErrorKind};

/// Everything that can go wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC endpoint URL does not parse.
    #[error("invalid RPC URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A private key or keystore could not be used.
    #[error("invalid key: {0}")]
    Key(String),
    /// The node rejected a request (for a transaction: usually a revert during gas estimation).
    #[error("RPC error: {0}")]
    Rpc(#[from] RpcError<TransportErrorKind>),
    /// A contract view call failed.
    #[error("contract call failed: {0}")]
    Call(#[from] alloy::contract::Error),
    /// The transaction was sent but its receipt could not be obtained.
    #[error("waiting for receipt of {tx_hash}: {reason}")]
    Receipt {
        /// Hash of the sent transaction.
        tx_hash: TxHash,
        /// What failed.
        reason: String,
    },
    /// The transaction was mined but reverted.
    #[error("transaction {tx_hash} reverted on chain (gas used {gas_used})")]
    Reverted {
        /// Hash of the mined transaction.
        tx_hash: TxHash,
        /// Gas it consumed.
        gas_used: u64,
    },
    /// A contract refused the call: `error` is the name of its custom error (e.g. `ChannelNotOpen`),
    /// `details` its decoded arguments.
    #[error("{call} reverted with {error}: {details}")]
    ContractRevert {
        /// The contract function called.
        call: &'static str,
        /// The custom error's name (`revert` for `Error(string)`/`Panic`, `unknown` otherwise).
        error: String,
        /// The decoded error with its arguments.
        details: String,
    },
    /// A deployment receipt names no contract address.
    #[error("deployment transaction {0} created no contract")]
    NoContractAddress(TxHash),
    /// The dev chain (anvil) could not be installed, started or driven.
    #[error("dev chain: {0}")]
    DevChain(String),
    /// Reading or writing a file (deployment JSON, keystore).
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl ChainError {
    /// The revert data the node returned, if this error is a contract revert.
    pub fn revert_data(&self) -> Option<Bytes> {
        match self {
            ChainError::Rpc(e) => e.as_error_resp().and_then(|p| p.as_revert_data()),
            ChainError::Call(e) => e.as_revert_data(),
            _ => None,
        }
    }

    /// The failure as the core sees it: a named revert (the contract refused), or anything
    /// else (the endpoint failed, the receipt did not come: the transaction may yet go through).
    pub fn as_failure(&self) -> crate::core::ContractFailure {
        use crate::core::ContractFailure;
        match self {
            ChainError::ContractRevert { error, .. } => ContractFailure::Reverted {
                error: error.clone(),
            },
            ChainError::Reverted { tx_hash, .. } => ContractFailure::Reverted {
                error: format!("reverted when mined (transaction {tx_hash})"),
            },
            other => ContractFailure::Unavailable {
                reason: other.to_string(),
            },
        }
    }

    /// The revert decoded as one of the custom errors of contract interface `E`.
    pub fn decode_revert<E: SolInterface>(&self) -> Option<E> {
        let data = self.revert_data()?;
        E::abi_decode(&data).ok()
    }
}
