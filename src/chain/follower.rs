//! Follows the contracts' logs and turns them into the core's inputs.
//!
//! [`ChainFollower`] polls `eth_getLogs` over block ranges of the registry, the secret registry
//! and every token network the registry created (learned from `TokenNetworkCreated` as it goes),
//! and only up to `head − confirmations`: a reorg shallower than that never shows. Each range
//! yields, in chain order, the events of a block followed by `Input::Block(n)` for that block,
//! and a final `Input::Block(to)` for the range's last block (empty blocks get no tick of their
//! own: `Block(n)` means "confirmed up to n", so the next tick covers them).
//!
//! Two ways to drive it: call [`ChainFollower::poll_once`] from the node's own loop, or hand it
//! to [`ChainFollower::run`], which polls forever into an mpsc channel, retrying RPC failures
//! with backoff. Progress ([`FollowerProgress`]) advances only when a whole range was fetched and
//! decoded, so a failure repeats the range: nothing is skipped and nothing delivered twice.
//! The node resumes from the last `Block(n)` it processed (`FollowerProgress::after(n, …)`).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use alloy::consensus::Transaction as _;
use alloy::primitives::{Address as EthAddress, TxHash};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::{SolCall, SolEvent};
use alloy::transports::http::reqwest::Url;
use log::{debug, info, warn};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::ChainError;
use super::bindings::{TokenNetwork, TokenNetworkRegistry};
use super::convert::{address, eth_address};
use super::events::{DecodeError, DecodedLog, decode_log};
use crate::core::{ChainEvent, Input};
use crate::primitives::{Address, BlockCount, BlockNumber, ChannelId};

/// How the follower polls.
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// The TokenNetworkRegistry (its `TokenNetworkCreated` adds token networks to follow).
    pub registry: Address,
    /// The SecretRegistry.
    pub secret_registry: Address,
    /// Blocks a log must be buried under before it is delivered (0: deliver the head's logs).
    pub confirmations: u64,
    /// Pause between polls once caught up.
    pub poll_interval: Duration,
    /// Most blocks asked for in one `eth_getLogs` (public nodes cap ranges).
    pub max_range: u64,
    /// Longest a whole poll may take before it counts as failed (an RPC that hangs).
    pub rpc_timeout: Duration,
    /// Longest pause between retries after repeated failures.
    pub max_backoff: Duration,
}

impl FollowerConfig {
    /// Defaults for the given contracts: 1 s polls, 1,000-block ranges, 10 s timeout, 30 s backoff.
    pub fn new(registry: Address, secret_registry: Address, confirmations: u64) -> Self {
        FollowerConfig {
            registry,
            secret_registry,
            confirmations,
            poll_interval: Duration::from_secs(1),
            max_range: 1_000,
            rpc_timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Where the follower is: what the node persists to resume without gaps or duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerProgress {
    /// First block not delivered yet.
    pub next_block: u64,
    /// Token networks followed (created before `next_block`).
    pub token_networks: BTreeSet<Address>,
}

impl FollowerProgress {
    /// Start from `block` (e.g. the deployment block) knowing no token network yet.
    pub fn from_block(block: u64) -> Self {
        FollowerProgress {
            next_block: block,
            token_networks: BTreeSet::new(),
        }
    }

    /// Resume after `Block(last_delivered)` was processed, following `token_networks`
    /// (every `TokenNetworkCreated` the node has seen).
    pub fn after(last_delivered: u64, token_networks: impl IntoIterator<Item = Address>) -> Self {
        FollowerProgress {
            next_block: last_delivered + 1,
            token_networks: token_networks.into_iter().collect(),
        }
    }
}

/// Health of the follower, for logs, the API and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowerStatus {
    /// First block not delivered yet.
    pub next_block: u64,
    /// Latest chain head seen.
    pub head: Option<u64>,
    /// Polls failed in a row (0: the last one worked).
    pub consecutive_failures: u32,
    /// The last failure, kept after recovery for diagnosis.
    pub last_error: Option<String>,
}

/// Polls the chain and turns confirmed logs into [`Input`]s (see the module docs).
pub struct ChainFollower {
    provider: DynProvider,
    config: FollowerConfig,
    progress: FollowerProgress,
    status: watch::Sender<FollowerStatus>,
    // Confirmed head at the last poll: the run loop polls again at once while behind it.
    confirmed: Option<u64>,
    // Participants of channels opened while following: a fallback to name a punished cheater.
    participants: HashMap<ChannelId, (Address, Address)>,
    // The head last reported to the core as `Input::ChainHead`, and when.
    head_reported: Option<(u64, std::time::Instant)>,
}

/// Longest the follower stays silent while the endpoint answers (the core's
/// `chain_stale_after_ms` must be well above it).
const HEAD_REPORT_INTERVAL: Duration = Duration::from_secs(2);

/// A poll failure.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The RPC failed (node down, timeout, refused request).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A log of our contracts does not decode: retrying will not help, but skipping it would
    /// lose a state change, so the follower stops at this block and says so.
    #[error("at block {block}: {source}")]
    Decode {
        /// The block whose log failed.
        block: u64,
        /// What failed.
        source: DecodeError,
    },
    /// The whole poll took longer than `rpc_timeout`.
    #[error("poll timed out after {0:?}")]
    Timeout(Duration),
}

impl ChainFollower {
    /// A follower reading from `url`, starting at `progress`.
    pub fn new(
        url: &str,
        config: FollowerConfig,
        progress: FollowerProgress,
    ) -> Result<Self, ChainError> {
        let parsed = Url::parse(url).map_err(|e| ChainError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(parsed)
            .erased();
        let (status, _) = watch::channel(FollowerStatus {
            next_block: progress.next_block,
            ..FollowerStatus::default()
        });
        Ok(ChainFollower {
            provider,
            config,
            progress,
            status,
            confirmed: None,
            participants: HashMap::new(),
            head_reported: None,
        })
    }

    /// Progress so far (after the last successful [`ChainFollower::poll_once`]).
    pub fn progress(&self) -> &FollowerProgress {
        &self.progress
    }

    /// A live view of the follower's health.
    pub fn status(&self) -> watch::Receiver<FollowerStatus> {
        self.status.subscribe()
    }

    /// Fetches the next confirmed range (at most `max_range` blocks) and returns its inputs;
    /// empty when no new block is confirmed. Progress moves only when this returns `Ok`.
    pub async fn poll_once(&mut self) -> Result<Vec<Input>, FollowError> {
        let result = self.fetch_next_range().await;
        self.record(&result);
        result
    }

    /// Whether confirmed blocks remain after the last poll (poll again without waiting).
    pub fn behind(&self) -> bool {
        self.confirmed
            .is_some_and(|confirmed| self.progress.next_block <= confirmed)
    }

    /// Polls forever, sending inputs to `tx` in order; returns when `tx`'s receiver is gone.
    /// Failures are logged and retried with exponential backoff (from `poll_interval` up to
    /// `max_backoff`); a poll that hangs is cut off after `rpc_timeout`.
    pub async fn run(mut self, tx: mpsc::Sender<Input>) {
        let mut backoff = self.config.poll_interval;
        loop {
            let timeout = self.config.rpc_timeout;
            let result = match tokio::time::timeout(timeout, self.fetch_next_range()).await {
                Ok(r) => r,
                Err(_) => Err(FollowError::Timeout(timeout)),
            };
            self.record(&result);
            match result {
                Ok(inputs) => {
                    backoff = self.config.poll_interval;
                    for input in inputs {
                        if tx.send(input).await.is_err() {
                            info!("chain follower stops: its receiver is gone");
                            return;
                        }
                    }
                    if self.behind() {
                        continue;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = tx.closed() => return,
                    }
                }
                Err(e) => {
                    let failures = self.status.borrow().consecutive_failures;
                    warn!(
                        "chain follower: {e} ({failures} in a row); retrying from block {} in {backoff:?}",
                        self.progress.next_block
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = tx.closed() => return,
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    fn record(&self, result: &Result<Vec<Input>, FollowError>) {
        let next_block = self.progress.next_block;
        let head = self.confirmed.map(|c| c + self.config.confirmations);
        self.status.send_modify(|s| {
            s.next_block = next_block;
            s.head = head.or(s.head);
            match result {
                Ok(_) => s.consecutive_failures = 0,
                Err(e) => {
                    s.consecutive_failures += 1;
                    s.last_error = Some(e.to_string());
                }
            }
        });
    }

    async fn get_logs(
        &self,
        addresses: Vec<EthAddress>,
        from: u64,
        to: u64,
    ) -> Result<Vec<Log>, ChainError> {
        let filter = Filter::new()
            .address(addresses)
            .from_block(from)
            .to_block(to);
        Ok(self.provider.get_logs(&filter).await?)
    }

    async fn fetch_next_range(&mut self) -> Result<Vec<Input>, FollowError> {
        let head = self
            .provider
            .get_block_number()
            .await
            .map_err(ChainError::from)?;
        let Some(confirmed) = head.checked_sub(self.config.confirmations) else {
            return Ok(vec![]);
        };
        // A lagging RPC replica may report an older head: never go backwards, just wait.
        let confirmed = self.confirmed.map_or(confirmed, |c| c.max(confirmed));
        self.confirmed = Some(confirmed);
        // The core judges lock timing by how far its blocks trail this head, and counts its
        // view stale when the follower falls silent: report it when it moves, and now and
        // then while the endpoint answers.
        let report = self
            .head_reported
            .is_none_or(|(h, at)| h != confirmed || at.elapsed() >= HEAD_REPORT_INTERVAL);
        let mut inputs = Vec::new();
        if report {
            self.head_reported = Some((confirmed, std::time::Instant::now()));
            inputs.push(Input::ChainHead(BlockNumber(confirmed)));
        }
        let from = self.progress.next_block;
        if from > confirmed {
            return Ok(inputs);
        }
        let to = confirmed.min(from + self.config.max_range.max(1) - 1);

        let mut addresses = vec![
            eth_address(self.config.registry),
            eth_address(self.config.secret_registry),
        ];
        addresses.extend(self.progress.token_networks.iter().map(|a| eth_address(*a)));
        let mut logs = self.get_logs(addresses, from, to).await?;

        // Token networks created in this range: their own logs from their creation block on.
        let registry = eth_address(self.config.registry);
        let mut new_networks = BTreeSet::new();
        let mut first_block = to;
        for log in &logs {
            if log.address() == registry
                && log.topics().first()
                    == Some(&TokenNetworkRegistry::TokenNetworkCreated::SIGNATURE_HASH)
                && let Ok(e) =
                    TokenNetworkRegistry::TokenNetworkCreated::decode_log_data(log.data())
            {
                let tn = address(e.token_network_address);
                if !self.progress.token_networks.contains(&tn) && new_networks.insert(tn) {
                    first_block = first_block.min(log.block_number.unwrap_or(from));
                }
            }
        }
        if !new_networks.is_empty() {
            debug!("following new token networks {new_networks:?} from block {first_block}");
            let more = self
                .get_logs(
                    new_networks.iter().map(|a| eth_address(*a)).collect(),
                    first_block,
                    to,
                )
                .await?;
            logs.extend(more);
        }
        logs.sort_by_key(|l| (l.block_number, l.log_index));

        inputs.reserve(logs.len() * 2 + 1);
        let mut participants = Vec::new();
        let mut current_block = None;
        for log in &logs {
            let block = log.block_number.unwrap_or(to);
            if let Some(previous) = current_block
                && previous != block
            {
                inputs.push(Input::Block(BlockNumber(previous)));
            }
            current_block = Some(block);
            let events = match decode_log(log)
                .map_err(|source| FollowError::Decode { block, source })?
            {
                DecodedLog::Events(events) => events,
                DecodedLog::TokenNetworkCreated {
                    token,
                    token_network,
                } => {
                    let punish_window = self.punish_window(token_network).await?;
                    vec![ChainEvent::TokenNetworkCreated {
                        token,
                        token_network,
                        punish_window,
                    }]
                }
                DecodedLog::Punished {
                    channel_identifier,
                    beneficiary,
                    tx_hash,
                } => {
                    let cheater = self
                        .punished_cheater(channel_identifier, beneficiary, tx_hash, &participants)
                        .await?;
                    vec![ChainEvent::ObsoleteUnlockPunished {
                        channel_identifier,
                        beneficiary,
                        cheater,
                    }]
                }
            };
            for event in events {
                if let ChainEvent::ChannelOpened {
                    channel_identifier,
                    participant1,
                    participant2,
                    ..
                } = &event
                {
                    participants.push((*channel_identifier, (*participant1, *participant2)));
                }
                inputs.push(Input::ContractReceive(event));
            }
        }
        if let Some(last) = current_block
            && last != to
        {
            inputs.push(Input::Block(BlockNumber(last)));
        }
        inputs.push(Input::Block(BlockNumber(to)));

        // The whole range is in hand: only now does progress move.
        self.participants.extend(participants);
        self.progress.token_networks.extend(new_networks);
        self.progress.next_block = to + 1;
        debug!(
            "blocks {from}..={to}: {} logs, {} inputs (head {head})",
            logs.len(),
            inputs.len()
        );
        Ok(inputs)
    }

    /// A token network's `punish_block_number` (immutable: read once per network).
    async fn punish_window(&self, token_network: Address) -> Result<BlockCount, ChainError> {
        let tn = TokenNetwork::new(eth_address(token_network), &self.provider);
        Ok(BlockCount(tn.punish_block_number().call().await?))
    }

    /// The partner of `beneficiary` in a punished channel: read from the punishing transaction's
    /// calldata, else from the channel's opening if we saw it. Unknown (zero address, warned)
    /// only if the punish came through another contract for a channel opened before we started:
    /// the core only reports the cheater, so this must not stall the follower.
    async fn punished_cheater(
        &self,
        channel: ChannelId,
        beneficiary: Address,
        tx_hash: Option<TxHash>,
        just_opened: &[(ChannelId, (Address, Address))],
    ) -> Result<Address, ChainError> {
        if let Some(hash) = tx_hash
            && let Some(tx) = self.provider.get_transaction_by_hash(hash).await?
            && let Ok(call) = TokenNetwork::punishObsoleteUnlockCall::abi_decode(tx.input())
        {
            return Ok(address(call.cheater));
        }
        let known = self.participants.get(&channel).or_else(|| {
            just_opened
                .iter()
                .find(|(c, _)| *c == channel)
                .map(|(_, p)| p)
        });
        match known {
            Some((p1, p2)) => Ok(if *p1 == beneficiary { *p2 } else { *p1 }),
            None => {
                warn!("{channel}: punished in favour of {beneficiary}, cheater unknown");
                Ok(Address::ZERO)
            }
        }
    }
}
