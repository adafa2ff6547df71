//! `smartraiden run`: wires the event loop to RocksDB, the XMPP transport, the chain follower
//! and executor, and the REST API.

use super::links::{Links, Via};
use super::{
    ChainRequest, Durability, NodeHandle, Persist, PersistError, Runtime, RuntimeConfig, Work,
};
use crate::api::{ApiState, BoxFuture, ChainOps, TransferLog};
use crate::chain::{
    ChainClient, ChainContracts, ChainExecutor, ChainFollower, Deployment, FollowerConfig,
    FollowerProgress,
};
use crate::core::{ChainEvent, ContractCall, Core, Input, NodeConfig, NodeState, Notification};
use crate::crypto::PrivateKey;
use crate::primitives::{Address, ChainId, H256, TokenAmount};
use crate::storage::{CommitBatch, Direction, StorageError, Store, TransferRecord};
use crate::transport::lan::{LanConfig, LanTransport};
use crate::transport::xmpp::{XmppConfig, XmppTransport};
use crate::transport::{EventSink, Transport};
use alloy::providers::Provider;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Everything `smartraiden run` needs.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Data directory (RocksDB).
    pub datadir: PathBuf,
    /// Ethereum JSON-RPC endpoint.
    pub eth_rpc: String,
    /// The deployed contracts.
    pub deployment: Deployment,
    /// XMPP server (client port).
    pub xmpp_server: SocketAddr,
    /// XMPP domain.
    pub xmpp_domain: String,
    /// A stored XMPP account password; `None`: key-bound logins (SPEC §4).
    pub xmpp_password: Option<String>,
    /// TLS on the XMPP link, or plain TCP when asked for.
    pub xmpp_tls: crate::transport::xmpp::tls::XmppTls,
    /// REST API address.
    pub api_address: SocketAddr,
    /// Fixed mediation fee we charge (and assume others charge).
    pub fee: TokenAmount,
    /// Blocks a log must be buried under before the node acts on it.
    pub confirmations: u64,
    /// How long REST calls wait for the chain or a `sync` transfer.
    pub api_timeout: Duration,
    /// Settle timeout of channels opened without one.
    pub default_settle_timeout: u64,
    /// Fault point to die at (crash-safety tests; see [`crate::node::faults`]).
    pub crash_at: Option<String>,
    /// The LAN transport, if it runs.
    pub lan: Option<LanOptions>,
    /// The chain's expected time between blocks (see [`NodeConfig::block_time_ms`]).
    pub block_time_ms: u64,
    /// See [`NodeConfig::offline_share_percent`].
    pub offline_share_percent: u64,
    /// See [`NodeConfig::chain_stale_after_ms`].
    pub stale_after_ms: u64,
    /// A monitoring service to push delegation packages to (`--monitor URL`).
    pub monitor: Option<String>,
    /// Who may use the REST API besides clients on this machine, and its token.
    pub api_access: crate::api::ApiAccess,
}

/// How the LAN transport runs.
#[derive(Clone, Debug)]
pub struct LanOptions {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Announce and browse by mDNS.
    pub mdns: bool,
    /// The only interface mDNS uses.
    pub mdns_interface: Option<String>,
}

/// Why the node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The chain refused.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    /// The Ethereum RPC endpoint could not be used at start-up.
    #[error("cannot use the Ethereum RPC endpoint {url}")]
    Rpc {
        /// The endpoint.
        url: String,
        /// Why.
        source: crate::chain::ChainError,
    },
    /// The deployment's registry is not our TokenNetworkRegistry.
    #[error(
        "{registry} on chain {chain_id} is not a SmartRaiden registry matching the deployment file: {why}"
    )]
    NotOurRegistry {
        /// The registry address of the deployment.
        registry: String,
        /// The chain.
        chain_id: u64,
        /// What did not match.
        why: String,
    },
    /// The XMPP server refused or is unreachable.
    #[error(transparent)]
    Xmpp(#[from] crate::transport::xmpp::XmppError),
    /// The data directory belongs to another key.
    #[error(transparent)]
    Foreign(#[from] crate::core::ForeignState),
    /// The REST address could not be bound.
    #[error("REST API on {addr}: {source}")]
    Api {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The event loop stopped on a failed commit.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// Some other startup check failed.
    #[error("{0}")]
    Startup(String),
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Commits each batch to RocksDB: the state snapshot plus its transfer-history records.
/// Remembers the last snapshot written, so a batch that changed nothing (a tick with no timer
/// due) writes nothing.
struct StorePersist {
    store: Arc<Store>,
    last: Vec<u8>,
    /// Whether the last write was not fsync'd: a synced batch then writes (and fsyncs) even
    /// when it changed nothing, so what it releases never rests on a write still in flight.
    unsynced: bool,
}

impl StorePersist {
    fn new(store: Arc<Store>) -> Self {
        StorePersist {
            store,
            last: Vec::new(),
            unsynced: false,
        }
    }

    fn batch(state: &NodeState, durability: Durability) -> Result<CommitBatch, PersistError> {
        let mut batch = CommitBatch::new();
        batch
            .set_state(state)
            .map_err(|e| PersistError(e.to_string()))?;
        batch.set_synced(durability == Durability::Synced);
        Ok(batch)
    }
}

impl Persist for StorePersist {
    fn commit(
        &mut self,
        state: &NodeState,
        notes: &[Notification],
        _now_ms: u64,
        durability: Durability,
    ) -> Result<(), PersistError> {
        let started = std::time::Instant::now();
        let mut batch = Self::batch(state, durability)?;
        let snapshot = batch.state_bytes().unwrap_or_default().to_vec();
        let owed_sync = durability == Durability::Synced && self.unsynced;
        if notes.is_empty() && snapshot == self.last && !owed_sync {
            return Ok(());
        }
        batch.record_notifications(notes, wall_ms());
        match self.store.commit(batch) {
            Ok(()) => {}
            // History is bookkeeping: a record the store refuses (out of order, duplicate)
            // must not stop a node that holds channels. Commit the state alone.
            Err(
                e @ (StorageError::UnknownTransfer(..)
                | StorageError::DuplicateTransfer(..)
                | StorageError::OutcomeChanged { .. }),
            ) => {
                log::error!("transfer history not updated: {e}");
                self.store
                    .commit(Self::batch(state, durability)?)
                    .map_err(|e| PersistError(e.to_string()))?;
            }
            Err(e) => return Err(PersistError(e.to_string())),
        }
        log::trace!(
            "commit: snapshot {} bytes, {} notes, {durability:?}, {:?}",
            snapshot.len(),
            notes.len(),
            started.elapsed()
        );
        self.last = snapshot;
        self.unsynced = durability == Durability::Buffered;
        Ok(())
    }
}

/// Transfer history for the REST API, read from the store.
struct StoreLog(Arc<Store>);

/// The XMPP keepalive for a node that enters no-internet mode after `stale_after_ms` of
/// silence: a link that died without a word (a route gone, the TCP connection left hanging) is
/// noticed about 1.5 keepalives later, so the keepalive is two thirds of that time (at least
/// a second), and never longer than `default`.
fn xmpp_keepalive(stale_after_ms: u64, default: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis((stale_after_ms * 2 / 3).max(1000)).min(default)
}

fn record_json(r: &TransferRecord) -> Value {
    json!({
        "lock_secret_hash": r.id.to_string(),
        "direction": match r.direction { Direction::Sent => "sent", Direction::Received => "received" },
        "token_address": r.token.to_checksum(),
        "partner_address": r.partner.to_checksum(),
        "amount": crate::api::amount_json(r.amount),
        "fee": crate::api::amount_json(r.fee),
        "status": format!("{:?}", r.status).to_lowercase(),
        "reason": r.reason,
        "created_ms": r.created_ms,
        "updated_ms": r.updated_ms,
    })
}

impl StoreLog {
    /// A JSON array of the records of `direction`, written one record at a time.
    fn list(&self, direction: Direction) -> Result<Vec<u8>, String> {
        let mut out = b"[".to_vec();
        let mut written = Ok(());
        self.0
            .for_each_transfer(direction, |r| {
                if written.is_ok() {
                    if out.len() > 1 {
                        out.push(b',');
                    }
                    written = serde_json::to_writer(&mut out, &record_json(&r));
                }
            })
            .map_err(|e| e.to_string())?;
        written.map_err(|e| e.to_string())?;
        out.push(b']');
        Ok(out)
    }
}

impl TransferLog for StoreLog {
    fn get(&self, id: &H256) -> Option<Value> {
        self.0
            .get_transfer(id)
            .ok()
            .flatten()
            .as_ref()
            .map(record_json)
    }
    fn sent(&self) -> Result<Vec<u8>, String> {
        self.list(Direction::Sent)
    }
    fn received(&self) -> Result<Vec<u8>, String> {
        self.list(Direction::Received)
    }
}

/// Chain operations for the REST API.
struct ExecutorOps(Arc<ChainExecutor>);

impl ChainOps for ExecutorOps {
    fn register_token(&self, token: Address) -> BoxFuture<Result<Address, String>> {
        let ex = self.0.clone();
        Box::pin(async move {
            ex.register_token_network(token)
                .await
                .map_err(|e| e.to_string())
        })
    }
    fn token_balance(
        &self,
        token: Address,
        who: Address,
    ) -> BoxFuture<Result<TokenAmount, String>> {
        let ex = self.0.clone();
        Box::pin(async move {
            ex.token_balance(token, who)
                .await
                .map_err(|e| e.to_string())
        })
    }
    fn secret_registered(
        &self,
        secrethash: crate::primitives::SecretHash,
    ) -> BoxFuture<Result<Option<u64>, String>> {
        let ex = self.0.clone();
        Box::pin(async move {
            ex.secret_reveal_block(secrethash)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Checks that the deployment's registry is our TokenNetworkRegistry and uses the
/// deployment's secret registry.
async fn check_registry(client: &ChainClient, deployment: &Deployment) -> Result<(), RunError> {
    let not_ours = |why: String| RunError::NotOurRegistry {
        registry: format!("{:#x}", deployment.registry),
        chain_id: deployment.chain_id,
        why,
    };
    let code = client
        .provider()
        .get_code_at(deployment.registry)
        .await
        .map_err(|e| RunError::Chain(e.into()))?;
    if code.is_empty() {
        return Err(not_ours("no contract at that address".into()));
    }
    let registry =
        crate::chain::bindings::TokenNetworkRegistry::new(deployment.registry, client.provider());
    let secret_registry = registry
        .secret_registry()
        .call()
        .await
        .map_err(|e| not_ours(format!("it does not answer secret_registry() ({e})")))?;
    if secret_registry != deployment.secret_registry {
        return Err(not_ours(format!(
            "it uses secret registry {secret_registry:#x}, the deployment file says {:#x}",
            deployment.secret_registry
        )));
    }
    Ok(())
}

/// Waits until the core has followed the chain up to `target` and heard the follower report
/// the head (before that it takes on no lock), logging progress on long waits.
async fn sync_chain(handle: &NodeHandle, target: u64) -> Result<(), RunError> {
    let started = std::time::Instant::now();
    let mut last_report = started;
    loop {
        let (block, head_known) = handle
            .query_core(|c| (c.state.block.0, c.chain_view().head().is_some()))
            .await
            .map_err(|e| RunError::Startup(format!("the event loop stopped during sync: {e}")))?;
        if block >= target && head_known {
            if started.elapsed() > Duration::from_secs(1) {
                log::info!(
                    "chain followed up to block {block} in {:?}",
                    started.elapsed()
                );
            }
            return Ok(());
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            log::info!("following the chain: block {block} of {target}");
            last_report = std::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// For a node started without the chain: once the follower reaches it, follows it up to the
/// head it reported, then issues the on-chain duties again (`Input::Resume`).
async fn resume_when_chain_answers(handle: &NodeHandle) -> Result<(), RunError> {
    let stopped = |e| RunError::Startup(format!("the event loop stopped: {e}"));
    let head = loop {
        if let Some(head) = handle
            .query_core(|c| c.chain_view().head())
            .await
            .map_err(stopped)?
        {
            break head;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    log::info!("the chain answers again (head {head}): catching up");
    sync_chain(handle, head.0).await?;
    handle.input(Input::Resume).map_err(stopped)
}

/// Carries out the event loop's chain requests. Transactions go out one at a time (the client
/// keeps nonces in order), oldest first except that secret registrations go before the rest:
/// a lock's claim depends on the registration's block. A failure goes back to the core, which
/// decides what to do again. A watched secret is looked up in the store's index.
async fn serve_chain_requests(
    mut requests: tokio::sync::mpsc::UnboundedReceiver<ChainRequest>,
    executor: Arc<ChainExecutor>,
    store: Arc<Store>,
    handle: NodeHandle,
) {
    let mut queue: std::collections::VecDeque<ContractCall> = Default::default();
    loop {
        // Take everything waiting, so a registration can jump the queue.
        let next = if queue.is_empty() {
            requests.recv().await
        } else {
            requests.try_recv().ok()
        };
        match next {
            Some(ChainRequest::WatchSecret(h)) => {
                match store.registered_secret(&h) {
                    Ok(Some((secret, block_number))) => {
                        let _ =
                            handle.input(Input::ContractReceive(ChainEvent::SecretRegistered {
                                secrethash: h,
                                secret,
                                block_number,
                            }));
                    }
                    Ok(None) => {}
                    Err(e) => log::error!("looking up a registered secret: {e}"),
                }
                continue;
            }
            Some(ChainRequest::Submit(call)) => {
                if matches!(call, ContractCall::RegisterSecret { .. }) {
                    queue.push_front(call);
                } else {
                    queue.push_back(call);
                }
                continue;
            }
            None if queue.is_empty() => return,
            None => {}
        }
        let call = queue.pop_front().expect("not empty");
        match executor.execute(&call).await {
            Ok(o) => log::info!("transaction mined in block {:?}", o.block_number),
            Err(e) => {
                log::error!("transaction failed: {e}");
                let failure = e.as_failure();
                if handle
                    .input(Input::ContractFailed { call, failure })
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// How long start-up waits for the chain's RPC endpoint before carrying on without it (a node
/// with channels) or failing (a new node).
const CHAIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the LAN transport and gives it the peers the user added in earlier runs.
async fn start_lan(
    key: &PrivateKey,
    opts: &NodeOptions,
    lan_opts: &LanOptions,
    handle: &NodeHandle,
    link_state: &Arc<super::links::LinkState>,
    store: &Arc<Store>,
) -> Result<Arc<LanTransport>, RunError> {
    let mut config = LanConfig::new(key.clone(), opts.deployment.chain_id, lan_opts.listen);
    config.mdns = lan_opts.mdns;
    config.mdns_interface = lan_opts.mdns_interface.clone();
    let sink = super::links::event_sink(Via::Lan, handle.clone(), link_state.clone());
    let lan = LanTransport::start(config, EventSink::Direct(Box::new(sink)))
        .await
        .map_err(|e| RunError::Startup(format!("LAN transport on {}: {e}", lan_opts.listen)))?;
    let peers = store.lan_peers()?;
    for (address, at) in &peers {
        lan.add_peer(*address, *at);
    }
    log::info!(
        "LAN transport listening on {}{}; {} peer(s) given by hand",
        lan.local_addr(),
        if lan_opts.mdns {
            ", announced by mDNS"
        } else {
            ""
        },
        peers.len()
    );
    Ok(Arc::new(lan))
}

/// Reaches the chain's RPC endpoint: its chain id and head.
async fn reach_chain(
    opts: &NodeOptions,
    signer: alloy::signers::local::PrivateKeySigner,
) -> Result<(ChainClient, u64), RunError> {
    let rpc = |source| RunError::Rpc {
        url: opts.eth_rpc.clone(),
        source,
    };
    let reach = async {
        let client = ChainClient::connect(&opts.eth_rpc, signer)
            .await
            .map_err(rpc)?;
        let head = client.block_number().await.map_err(rpc)?;
        Ok((client, head))
    };
    match tokio::time::timeout(CHAIN_CONNECT_TIMEOUT, reach).await {
        Ok(reached) => reached,
        Err(_) => Err(RunError::Startup(format!(
            "the RPC endpoint {} did not answer within {CHAIN_CONNECT_TIMEOUT:?}",
            opts.eth_rpc
        ))),
    }
}

/// Checks the endpoint is the deployment's chain and holds our registry.
async fn check_chain(client: &ChainClient, opts: &NodeOptions) -> Result<(), RunError> {
    if client.chain_id() != opts.deployment.chain_id {
        return Err(RunError::Startup(format!(
            "the RPC endpoint {} is chain {}, the deployment is for chain {}",
            opts.eth_rpc,
            client.chain_id(),
            opts.deployment.chain_id
        )));
    }
    check_registry(client, &opts.deployment).await
}

/// Runs a node until `POST /api/1/stop` or a fatal error.
pub async fn run(key: PrivateKey, opts: NodeOptions) -> Result<(), RunError> {
    let us = key.address();
    let store = Arc::new(Store::open(&opts.datadir, us)?);
    let state = store.load()?;
    let mut config = NodeConfig::new(ChainId(opts.deployment.chain_id));
    config.fees = crate::core::routing::FeeSchedule::flat(opts.fee);
    config.block_time_ms = opts.block_time_ms;
    config.offline_share_percent = opts.offline_share_percent;
    config.chain_stale_after_ms = opts.stale_after_ms;
    config.delegate_before_forwarding = opts.monitor.is_some();
    let core = match state {
        Some(s) => {
            // The settings given now apply to a restarted node too.
            let mut core = Core::restore(key.clone(), s)?;
            core.state.config = config;
            core
        }
        None => Core::new(key.clone(), config),
    };
    let start_block = core.state.block.0;
    let known_networks: Vec<Address> = core.state.token_networks.keys().copied().collect();
    let partners: Vec<Address> = core.state.channels().map(|c| c.partner.address).collect();

    let signer = alloy::signers::local::PrivateKeySigner::from_bytes(&key.secret_bytes().into())
        .map_err(|e| RunError::Startup(format!("key: {e}")))?;
    // The REST port first: a busy port fails at once, before any login.
    let listener = tokio::net::TcpListener::bind(opts.api_address)
        .await
        .map_err(|source| RunError::Api {
            addr: opts.api_address,
            source,
        })?;
    // A node with channels starts without the chain (no-internet mode); a new one needs it.
    let (client, head_at_start) = match reach_chain(&opts, signer.clone()).await {
        Ok((client, head)) => {
            check_chain(&client, &opts).await?;
            (Arc::new(client), Some(head))
        }
        Err(e) if start_block > 0 => {
            log::warn!("{e}; starting without the chain: direct transfers only, until it answers");
            let client = ChainClient::for_chain(&opts.eth_rpc, signer, opts.deployment.chain_id)
                .map_err(|source| RunError::Rpc {
                    url: opts.eth_rpc.clone(),
                    source,
                })?;
            (Arc::new(client), None)
        }
        Err(e) => return Err(e),
    };
    let executor = Arc::new(ChainExecutor::new(
        client,
        ChainContracts::from(&opts.deployment),
    ));

    let (work_tx, work_rx) = std::sync::mpsc::channel::<Work>();
    let handle = NodeHandle::new(work_tx);

    // Messages and presence go from the transports' threads straight into the event loop's
    // queue (they wait there until the loop starts below).
    let link_state = Arc::new(super::links::LinkState::default());
    let to_core = super::links::event_sink(Via::Xmpp, handle.clone(), link_state.clone());
    let mut xmpp_config = XmppConfig::new(
        us,
        &opts.xmpp_domain,
        opts.xmpp_server,
        opts.xmpp_password.as_deref().unwrap_or(""),
    );
    if opts.xmpp_password.is_none() {
        xmpp_config.login_key = Some(key.clone());
    }
    xmpp_config.tls = opts.xmpp_tls.clone();
    // A node with channels keeps working without the server (no-internet mode).
    xmpp_config.keep_trying = start_block > 0;
    xmpp_config.keepalive = xmpp_keepalive(opts.stale_after_ms, xmpp_config.keepalive);
    let transport =
        XmppTransport::connect_with(xmpp_config, EventSink::Direct(Box::new(to_core))).await?;
    let lan = match &opts.lan {
        Some(lan_opts) => {
            Some(start_lan(&key, &opts, lan_opts, &handle, &link_state, &store).await?)
        }
        None => None,
    };
    let transport = Arc::new(transport);
    for p in &partners {
        let _ = transport.watch_presence(*p);
    }
    let (chain_tx, chain_rx) = tokio::sync::mpsc::unbounded_channel::<ChainRequest>();
    let (notes, _) = tokio::sync::broadcast::channel::<Notification>(4096);
    let runtime = Runtime::new(
        core,
        StorePersist::new(store.clone()),
        Links {
            xmpp: transport.clone(),
            lan: lan.clone(),
            state: link_state.clone(),
        },
        chain_tx,
        notes.clone(),
        RuntimeConfig {
            faults: super::faults::FaultPoints::new(opts.crash_at.clone()),
            ..RuntimeConfig::default()
        },
    );
    // Delegation packages go from the event loop to the monitor pushes (`--monitor`).
    let (delegation_tx, delegation_rx) = tokio::sync::mpsc::unbounded_channel();
    let runtime = match opts.monitor {
        Some(_) => runtime.with_delegations(delegation_tx),
        None => runtime,
    };
    let event_loop = std::thread::Builder::new()
        .name("smartraiden-core".into())
        .spawn(move || runtime.run(work_rx))
        .map_err(|e| RunError::Startup(e.to_string()))?;

    // Our JID in the Discovery contract, and every peer's domain from its events.
    tokio::spawn(super::discovery::run(
        executor.clone(),
        transport.clone(),
        us,
        opts.xmpp_domain.clone(),
    ));
    tokio::spawn(serve_chain_requests(
        chain_rx,
        executor.clone(),
        store.clone(),
        handle.clone(),
    ));

    // Chain logs and blocks, from where the persisted state left off.
    let progress = if start_block == 0 {
        FollowerProgress::from_block(0)
    } else {
        FollowerProgress::after(start_block, known_networks)
    };
    let mut follow_config = FollowerConfig::new(
        crate::chain::convert::address(opts.deployment.registry),
        crate::chain::convert::address(opts.deployment.secret_registry),
        opts.confirmations,
    );
    // Poll often: on a dev chain a block is mined per transaction and every poll is one cheap call.
    follow_config.poll_interval = Duration::from_millis(100);
    let follower = ChainFollower::new(&opts.eth_rpc, follow_config, progress)?;
    let (follow_tx, mut follow_rx) = tokio::sync::mpsc::channel::<Input>(1024);
    tokio::spawn(follower.run(follow_tx));
    let h = handle.clone();
    let t = transport.clone();
    let secrets = store.clone();
    tokio::spawn(async move {
        while let Some(input) = follow_rx.recv().await {
            // Every registration, for locks that arrive after their secret was registered.
            if let Input::ContractReceive(ChainEvent::SecretRegistered {
                secret,
                block_number,
                ..
            }) = &input
                && let Err(e) = secrets.record_secret(*secret, *block_number)
            {
                log::error!("recording a registered secret: {e}");
            }
            // Watch the presence of every new partner of ours.
            if let Input::ContractReceive(ChainEvent::ChannelOpened {
                participant1,
                participant2,
                ..
            }) = &input
            {
                if *participant1 == us {
                    let _ = t.watch_presence(*participant2);
                } else if *participant2 == us {
                    let _ = t.watch_presence(*participant1);
                }
            }
            if h.input(input).is_err() {
                break;
            }
        }
    });

    match head_at_start {
        Some(head) => {
            // Answer only once the chain is followed up to the head seen at start: a node that
            // says it is ready knows every token and channel that existed when it started.
            sync_chain(&handle, head.saturating_sub(opts.confirmations)).await?;
            // Transactions the previous run may not have sent go out again (duplicates revert).
            if start_block > 0 {
                handle
                    .input(Input::Resume)
                    .map_err(|e| RunError::Startup(format!("the event loop stopped: {e}")))?;
            }
        }
        None => {
            // Started without the chain: catch up and resume on-chain duties once it answers.
            let h = handle.clone();
            tokio::spawn(async move {
                if let Err(e) = resume_when_chain_answers(&h).await {
                    log::error!("{e}");
                }
            });
        }
    }

    let store_for_lan = store.clone();
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let monitor = opts.monitor.as_ref().map(|url| {
        let push = super::monitor_push::MonitorPush::new(url);
        tokio::spawn(super::monitor_push::run(
            push.clone(),
            handle.clone(),
            delegation_rx,
        ));
        push
    });
    let api = ApiState {
        monitor,
        node: handle.clone(),
        our_address: us,
        chain: Arc::new(ExecutorOps(executor)),
        history: Arc::new(StoreLog(store)),
        notifications: notes,
        shutdown: shutdown.clone(),
        timeout: opts.api_timeout,
        default_settle_timeout: opts.default_settle_timeout,
        xmpp_login_error: transport.login_error(),
        lan: lan.map(|lan| {
            Arc::new(super::links::LanAdmin {
                lan,
                store: store_for_lan,
                lock: std::sync::Mutex::new(()),
            }) as Arc<dyn crate::api::LanPeers>
        }),
    };
    log::info!(
        "node {} ready; REST API on http://{}",
        us.to_checksum(),
        opts.api_address
    );
    // SIGTERM (`kill`, `integration/testnet down`) and Ctrl-C stop the node as `POST /api/1/stop` does.
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            log::info!("signal received");
            on_signal.notify_one();
        }
    });
    let stop = shutdown.clone();
    let (app, closing) = crate::api::app(api, opts.api_access.clone());
    log::info!("desktop page: http://{}/ui/", opts.api_address);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.notified().await;
            closing.close();
        })
        .await
        .map_err(|source| RunError::Api {
            addr: opts.api_address,
            source,
        })?;
    log::info!("stopping");
    handle.stop();
    match event_loop.join() {
        Ok(Ok(())) => {
            log::info!("stopped");
            Ok(())
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(RunError::Startup("the event loop panicked".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::xmpp_keepalive;
    use std::time::Duration;

    #[test]
    fn the_xmpp_keepalive_notices_a_dead_link_within_the_stale_time() {
        let default = Duration::from_secs(30);
        // The default stale time (30 s): a dead link is noticed after ~1.5 × 20 s.
        assert_eq!(xmpp_keepalive(30_000, default), Duration::from_secs(20));
        assert_eq!(xmpp_keepalive(3_000, default), Duration::from_secs(2));
        assert_eq!(xmpp_keepalive(600, default), Duration::from_secs(1));
        assert_eq!(xmpp_keepalive(3_600_000, default), default);
    }
}
