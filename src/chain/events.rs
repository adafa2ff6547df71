//! Contract logs → the core's [`ChainEvent`]s. One function per contract event, and
//! [`decode_log`], a dispatcher over a raw RPC log. Pure: no RPC, except that `ChannelPunished`
//! names only the beneficiary, so it decodes to [`DecodedLog::Punished`] and the follower finds
//! the cheater (see `follower.rs`).

use alloy::primitives::{B256, TxHash};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;

use super::bindings::{SecretRegistry, TokenNetwork, TokenNetworkRegistry};
use super::convert::{address, amount, h256};
use crate::core::ChainEvent;
use crate::primitives::{
    Address, BlockCount, BlockNumber, ChannelId, H256, Locksroot, Secret, SecretHash,
};

/// A log that could not be turned into events.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The node returned a log without a block number (a pending log: never asked for).
    #[error("log of {address} has no block number")]
    NoBlockNumber {
        /// Emitting contract.
        address: alloy::primitives::Address,
    },
    /// The log has a known event signature but its data does not decode.
    #[error("undecodable {event} log of {address}: {reason}")]
    Malformed {
        /// Event signature.
        event: &'static str,
        /// Emitting contract.
        address: alloy::primitives::Address,
        /// The ABI decoder's complaint.
        reason: String,
    },
}

/// What one log means to the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodedLog {
    /// Events ready for the core (none for a log the core does not care about).
    Events(Vec<ChainEvent>),
    /// `ChannelPunished`: the cheater is the beneficiary's partner, which the log does not name.
    Punished {
        /// The channel.
        channel_identifier: ChannelId,
        /// Who gained.
        beneficiary: Address,
        /// The transaction that punished (its calldata names the cheater).
        tx_hash: Option<TxHash>,
    },
    /// `TokenNetworkCreated`: the network's punish window is read from the network itself.
    TokenNetworkCreated {
        /// The token.
        token: Address,
        /// The new network.
        token_network: Address,
    },
}

fn cid(b: B256) -> ChannelId {
    ChannelId(h256(b))
}

/// `ChannelOpened` (no deposit) of token network `tn`, in block `block`.
pub fn channel_opened(tn: Address, e: &TokenNetwork::ChannelOpened, block: u64) -> ChainEvent {
    ChainEvent::ChannelOpened {
        token_network: tn,
        channel_identifier: cid(e.channel_identifier),
        participant1: address(e.participant1),
        participant2: address(e.participant2),
        settle_timeout: BlockCount(e.settle_timeout),
        open_block_number: BlockNumber(block),
    }
}

/// `ChannelOpenedAndDeposit`: the opening, then the opener's first deposit.
pub fn channel_opened_and_deposit(
    tn: Address,
    e: &TokenNetwork::ChannelOpenedAndDeposit,
    block: u64,
) -> [ChainEvent; 2] {
    [
        ChainEvent::ChannelOpened {
            token_network: tn,
            channel_identifier: cid(e.channel_identifier),
            participant1: address(e.participant),
            participant2: address(e.partner),
            settle_timeout: BlockCount(e.settle_timeout),
            open_block_number: BlockNumber(block),
        },
        ChainEvent::ChannelDeposit {
            channel_identifier: cid(e.channel_identifier),
            participant: address(e.participant),
            total_deposit: amount(e.participant_deposit),
        },
    ]
}

/// `ChannelNewDeposit`.
pub fn channel_new_deposit(e: &TokenNetwork::ChannelNewDeposit) -> ChainEvent {
    ChainEvent::ChannelDeposit {
        channel_identifier: cid(e.channel_identifier),
        participant: address(e.participant),
        total_deposit: amount(e.total_deposit),
    }
}

/// `ChannelWithdraw` in block `block` (the channel's new `open_block_number`).
pub fn channel_withdraw(e: &TokenNetwork::ChannelWithdraw, block: u64) -> ChainEvent {
    ChainEvent::ChannelWithdraw {
        channel_identifier: cid(e.channel_identifier),
        participant1: address(e.participant1),
        participant1_deposit: amount(e.participant1_balance),
        participant2: address(e.participant2),
        participant2_deposit: amount(e.participant2_balance),
        open_block_number: BlockNumber(block),
    }
}

/// `ChannelClosed` in block `block`.
pub fn channel_closed(e: &TokenNetwork::ChannelClosed, block: u64) -> ChainEvent {
    ChainEvent::ChannelClosed {
        channel_identifier: cid(e.channel_identifier),
        closing_participant: address(e.closing_participant),
        transferred_amount: amount(e.transferred_amount),
        locksroot: Locksroot(h256(e.locksroot)),
        block_number: BlockNumber(block),
    }
}

/// `BalanceProofUpdated`.
pub fn balance_proof_updated(e: &TokenNetwork::BalanceProofUpdated) -> ChainEvent {
    ChainEvent::BalanceProofUpdated {
        channel_identifier: cid(e.channel_identifier),
        participant: address(e.participant),
        transferred_amount: amount(e.transferred_amount),
        locksroot: Locksroot(h256(e.locksroot)),
    }
}

/// `ChannelUnlocked`.
pub fn channel_unlocked(e: &TokenNetwork::ChannelUnlocked) -> ChainEvent {
    ChainEvent::ChannelUnlocked {
        channel_identifier: cid(e.channel_identifier),
        payer_participant: address(e.payer_participant),
        lockhash: h256(e.lockhash),
        transferred_amount: amount(e.transferred_amount),
    }
}

/// `ChannelSettled`.
pub fn channel_settled(e: &TokenNetwork::ChannelSettled) -> ChainEvent {
    ChainEvent::ChannelSettled {
        channel_identifier: cid(e.channel_identifier),
    }
}

/// `ChannelCooperativeSettled`.
pub fn channel_cooperative_settled(e: &TokenNetwork::ChannelCooperativeSettled) -> ChainEvent {
    ChainEvent::ChannelCooperativeSettled {
        channel_identifier: cid(e.channel_identifier),
    }
}

/// `ChannelPunished`, once the cheater is known.
pub fn channel_punished(e: &TokenNetwork::ChannelPunished, cheater: Address) -> ChainEvent {
    ChainEvent::ObsoleteUnlockPunished {
        channel_identifier: cid(e.channel_identifier),
        beneficiary: address(e.beneficiary),
        cheater,
    }
}

/// `SecretRevealed` of the SecretRegistry in block `block`.
pub fn secret_revealed(e: &SecretRegistry::SecretRevealed, block: u64) -> ChainEvent {
    ChainEvent::SecretRegistered {
        secrethash: SecretHash(h256(e.secrethash)),
        secret: Secret(H256(e.secret.0)),
        block_number: BlockNumber(block),
    }
}

fn decode<E: SolEvent>(log: &Log) -> Result<E, DecodeError> {
    E::decode_log_data(log.data()).map_err(|e| DecodeError::Malformed {
        event: E::SIGNATURE,
        address: log.address(),
        reason: e.to_string(),
    })
}

/// Decodes any log of the registry, a token network or the secret registry (by its first topic).
/// Logs with other signatures decode to no events: the follower asks only for our contracts'
/// logs, and the core has no use for the others.
pub fn decode_log(log: &Log) -> Result<DecodedLog, DecodeError> {
    let block = log.block_number.ok_or(DecodeError::NoBlockNumber {
        address: log.address(),
    })?;
    let tn = address(log.address());
    let Some(topic) = log.topics().first() else {
        return Ok(DecodedLog::Events(vec![]));
    };
    let one = |e: ChainEvent| Ok(DecodedLog::Events(vec![e]));
    match *topic {
        TokenNetworkRegistry::TokenNetworkCreated::SIGNATURE_HASH => {
            let e: TokenNetworkRegistry::TokenNetworkCreated = decode(log)?;
            Ok(DecodedLog::TokenNetworkCreated {
                token: address(e.token_address),
                token_network: address(e.token_network_address),
            })
        }
        TokenNetwork::ChannelOpened::SIGNATURE_HASH => {
            one(channel_opened(tn, &decode(log)?, block))
        }
        TokenNetwork::ChannelOpenedAndDeposit::SIGNATURE_HASH => Ok(DecodedLog::Events(
            channel_opened_and_deposit(tn, &decode(log)?, block).to_vec(),
        )),
        TokenNetwork::ChannelNewDeposit::SIGNATURE_HASH => one(channel_new_deposit(&decode(log)?)),
        TokenNetwork::ChannelWithdraw::SIGNATURE_HASH => {
            one(channel_withdraw(&decode(log)?, block))
        }
        TokenNetwork::ChannelClosed::SIGNATURE_HASH => one(channel_closed(&decode(log)?, block)),
        TokenNetwork::BalanceProofUpdated::SIGNATURE_HASH => {
            one(balance_proof_updated(&decode(log)?))
        }
        TokenNetwork::ChannelUnlocked::SIGNATURE_HASH => one(channel_unlocked(&decode(log)?)),
        TokenNetwork::ChannelSettled::SIGNATURE_HASH => one(channel_settled(&decode(log)?)),
        TokenNetwork::ChannelCooperativeSettled::SIGNATURE_HASH => {
            one(channel_cooperative_settled(&decode(log)?))
        }
        TokenNetwork::ChannelPunished::SIGNATURE_HASH => {
            let e: TokenNetwork::ChannelPunished = decode(log)?;
            Ok(DecodedLog::Punished {
                channel_identifier: cid(e.channel_identifier),
                beneficiary: address(e.beneficiary),
                tx_hash: log.transaction_hash,
            })
        }
        SecretRegistry::SecretRevealed::SIGNATURE_HASH => {
            one(secret_revealed(&decode(log)?, block))
        }
        other => {
            log::debug!("ignoring log {other} of {}", log.address());
            Ok(DecodedLog::Events(vec![]))
        }
    }
}
