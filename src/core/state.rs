//! [`NodeState`]: everything a node persists.

use super::channel::ChannelState;
use super::delivery::{Delivery, RetryPolicy};
use super::duties::{Duty, Retry};
use super::routing::{ChannelGraph, FeeSchedule};
use super::transfer::{InitiatorState, MediatorState, TargetState};
use crate::primitives::TokenAmount;
use crate::primitives::{
    Address, BlockCount, BlockNumber, ChainId, ChannelId, H256, Secret, SecretHash,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// Blocks our withdraw and cooperative-settle terms stay valid on chain: the partner has
    /// this long to co-sign and us to submit; the channel is frozen meanwhile.
    pub cosign_window: BlockCount,
    /// Longest validity we accept in terms the partner proposes (our channel is frozen until
    /// they are executed or expire).
    pub max_cosign_window: BlockCount,
    /// How far the blocks we have processed may trail the chain head the follower saw before
    /// the node stops taking on locks (it could not judge their expirations).
    pub max_block_lag: BlockCount,
    /// How long without word from the chain follower before the chain view counts as stale.
    pub chain_stale_after_ms: u64,
    /// Most pending locks one end of a channel may hold (each is a leaf the on-chain unlocks
    /// prove against, and state any partner could otherwise grow without bound).
    pub max_pending_locks: usize,
    /// The chain's expected time between blocks (turns settle windows into time while the
    /// chain cannot be asked).
    #[serde(default = "default_block_time_ms")]
    pub block_time_ms: u64,
    /// Share (percent) of a channel's settle window the chain may stay silent while the node
    /// still accepts payments on it: a close by the partner must find us back in time.
    #[serde(default = "default_offline_share_percent")]
    pub offline_share_percent: u64,
    /// Forward a mediated transfer only once the monitoring service holds the payer's proof
    /// that carries its lock (on with `--monitor`).
    #[serde(default)]
    pub delegate_before_forwarding: bool,
}

fn default_block_time_ms() -> u64 {
    15_000
}

fn default_offline_share_percent() -> u64 {
    50
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
            cosign_window: BlockCount(20),
            max_cosign_window: BlockCount(200),
            max_block_lag: BlockCount(2),
            chain_stale_after_ms: 30_000,
            max_pending_locks: 160,
            block_time_ms: default_block_time_ms(),
            offline_share_percent: default_offline_share_percent(),
            delegate_before_forwarding: false,
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
    /// Its `punish_block_number`: blocks after a settle window reserved for punishment.
    pub punish_window: BlockCount,
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
    /// Direct transfers awaiting their Ack (message hash → channel and our new cumulative
    /// `transferred_amount`).
    pub direct_pending: BTreeMap<H256, (ChannelId, TokenAmount)>,
    /// Secrets registered on chain that concern our locks or transfers, with the block of
    /// registration (others are not kept: the shell answers `Output::WatchSecret` for them).
    pub registered_secrets: BTreeMap<SecretHash, (Secret, BlockNumber)>,
    /// Secrets we asked the chain to register and have not seen registered yet.
    pub registering: BTreeMap<SecretHash, Secret>,
    /// Running transfers started with a caller's identifier: transfer id → (target, identifier).
    pub running_identifiers: BTreeMap<H256, (Address, u64)>,
    /// On-chain duties whose transaction failed, with when to try again.
    pub chain_retries: BTreeMap<Duty, Retry>,
    /// Peers known online (true) or offline (false); unknown counts as online.
    pub reachability: BTreeMap<Address, bool>,
    /// Unacknowledged outgoing messages.
    pub delivery: Delivery,
    /// The user switched no-internet mode on.
    #[serde(default)]
    pub no_internet_switch: bool,
    /// The newest chain head the follower reported, and when (core clock) the chain last
    /// answered, refreshed at least once a minute: how old our view is, across restarts.
    #[serde(default)]
    pub chain_seen: Option<(BlockNumber, u64)>,
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
            registering: BTreeMap::new(),
            running_identifiers: BTreeMap::new(),
            chain_retries: BTreeMap::new(),
            reachability: BTreeMap::new(),
            delivery: Delivery::default(),
            no_internet_switch: false,
            chain_seen: None,
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
