//! [`NodeState`]: everything a node persists.

use super::channel::ChannelState;
use super::delivery::{Delivery, RetryPolicy};
use super::routing::{ChannelGraph, FeeSchedule};
use super::transfer::{InitiatorState, MediatorState, TargetState};
use crate::primitives::{
    Address, BlockCount, BlockNumber, ChainId, ChannelId, H256, Secret, SecretHash,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Settings that shape the node's decisions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// The chain signatures are bound to.
    pub chain_id: ChainId,
    /// Blocks we need to register a secret and claim on chain.
    pub reveal_timeout: BlockCount,
    /// Fixed mediation fees.
    pub fees: FeeSchedule,
    /// Retransmission timing.
    pub retry: RetryPolicy,
    /// Settle closed channels automatically once the window has passed.
    pub auto_settle: bool,
    /// Blocks after `settle_block_number` reserved for punishment before settling.
    pub punish_window: BlockCount,
    /// Give up on an unanswered withdraw/settle request after this long.
    pub request_timeout_ms: u64,
}

impl NodeConfig {
    /// Defaults for `chain_id`.
    pub fn new(chain_id: ChainId) -> NodeConfig {
        NodeConfig {
            chain_id,
            reveal_timeout: BlockCount(10),
            fees: FeeSchedule::default(),
            retry: RetryPolicy::default(),
            auto_settle: true,
            punish_window: BlockCount(5),
            request_timeout_ms: 30_000,
        }
    }
}

/// One token's network: our channels in it and the graph of everyone's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenNetwork {
    /// The contract.
    pub address: Address,
    /// The token.
    pub token: Address,
    /// Our channels.
    pub channels: BTreeMap<ChannelId, ChannelState>,
    /// All open channels.
    pub graph: ChannelGraph,
}

/// Everything a node persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Our account.
    pub our_address: Address,
    /// Settings.
    pub config: NodeConfig,
    /// Latest confirmed block.
    pub block: BlockNumber,
    /// Token networks by contract address.
    pub token_networks: BTreeMap<Address, TokenNetwork>,
    /// Token → token network.
    pub tokens: BTreeMap<Address, Address>,
    /// Channel → token network, for our channels.
    pub channel_index: BTreeMap<ChannelId, Address>,
    /// Transfers we initiated and that are still running.
    pub initiators: BTreeMap<SecretHash, InitiatorState>,
    /// Transfers we mediate.
    pub mediators: BTreeMap<SecretHash, MediatorState>,
    /// Transfers paying us.
    pub targets: BTreeMap<SecretHash, TargetState>,
    /// Direct transfers awaiting their Ack (message hash → channel).
    pub direct_pending: BTreeMap<H256, ChannelId>,
    /// Secrets registered on chain, with the block of registration.
    pub registered_secrets: BTreeMap<SecretHash, (Secret, BlockNumber)>,
    /// Secrets we asked the chain to register (so we ask once).
    pub registering: BTreeSet<SecretHash>,
    /// Peers known online (true) or offline (false); unknown counts as online.
    pub reachability: BTreeMap<Address, bool>,
    /// Unacknowledged outgoing messages.
    pub delivery: Delivery,
}

impl NodeState {
    /// Empty state.
    pub fn new(our_address: Address, config: NodeConfig) -> NodeState {
        NodeState {
            our_address,
            config,
            block: BlockNumber(0),
            token_networks: BTreeMap::new(),
            tokens: BTreeMap::new(),
            channel_index: BTreeMap::new(),
            initiators: BTreeMap::new(),
            mediators: BTreeMap::new(),
            targets: BTreeMap::new(),
            direct_pending: BTreeMap::new(),
            registered_secrets: BTreeMap::new(),
            registering: BTreeSet::new(),
            reachability: BTreeMap::new(),
            delivery: Delivery::default(),
        }
    }

    /// Our channel by id.
    pub fn channel(&self, id: &ChannelId) -> Option<&ChannelState> {
        let tn = self.channel_index.get(id)?;
        self.token_networks.get(tn)?.channels.get(id)
    }

    /// Our channel by id, mutable.
    pub fn channel_mut(&mut self, id: &ChannelId) -> Option<&mut ChannelState> {
        let tn = self.channel_index.get(id)?;
        self.token_networks.get_mut(tn)?.channels.get_mut(id)
    }

    /// Our channel with `partner` for `token`.
    pub fn channel_with(&self, token: &Address, partner: &Address) -> Option<&ChannelState> {
        let tn = self.tokens.get(token)?;
        self.token_networks
            .get(tn)?
            .channels
            .values()
            .find(|c| &c.partner.address == partner)
    }

    /// All our channels.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelState> {
        self.token_networks
            .values()
            .flat_map(|tn| tn.channels.values())
    }

    /// Whether `peer` is usable (not known offline).
    pub fn is_reachable(&self, peer: &Address) -> bool {
        self.reachability.get(peer).copied().unwrap_or(true)
    }

    /// Whether the secret was registered on chain at or before `expiration`.
    pub fn registered_by(&self, secrethash: &SecretHash, expiration: BlockNumber) -> bool {
        self.registered_secrets
            .get(secrethash)
            .is_some_and(|(_, b)| *b <= expiration)
    }

    /// Whether nothing is in flight: no running transfer, no unacknowledged message, no lock.
    pub fn is_quiet(&self) -> bool {
        self.initiators.is_empty()
            && self.mediators.is_empty()
            && self.targets.is_empty()
            && self.delivery.is_empty()
            && self
                .channels()
                .all(|c| c.our.locks.is_empty() && c.partner.locks.is_empty())
    }
}
