//! The monitor's shell: one task owns the [`MonitorState`] and applies, in order, the
//! follower's inputs, the HTTP API's requests and the sender's results. After each confirmed
//! block it writes the block's changes and the cursor in one synced batch, then hands the calls
//! that fell due to the sender, which re-reads the chain, sends, waits for the receipt and
//! reports back.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use log::{error, info, warn};
use tokio::sync::{mpsc, oneshot};

use super::decide::{
    CallResult, DutyKind, MonitorCall, MonitorInput, MonitorLimits, MonitorState, OnChainFacts,
    Refusal, Watch, stored_balance_hash,
};
use super::store::{MonitorStore, StoreError};
use crate::chain::convert::address;
use crate::chain::{
    ChainClient, ChainContracts, ChainError, ChainExecutor, ChainFollower, Deployment,
    FollowerConfig, FollowerProgress,
};
use crate::core::{ChainEvent, Input};
use crate::crypto::PrivateKey;
use crate::delegation::DelegationPackage;
use crate::primitives::{Address, BlockNumber, ChainId, ChannelId, H256, SecretHash};

/// How to run a monitor.
#[derive(Clone, Debug)]
pub struct MonitorOptions {
    /// Data directory (its RocksDB).
    pub datadir: PathBuf,
    /// Ethereum JSON-RPC endpoint.
    pub eth_rpc: String,
    /// The contracts.
    pub deployment: Deployment,
    /// HTTP API address.
    pub api_address: SocketAddr,
    /// Blocks a log must be buried under before the monitor acts on it.
    pub confirmations: u64,
    /// Limits.
    pub limits: MonitorLimits,
}

/// Why the monitor cannot run.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain could not be used.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// The chain is not the deployment's.
    #[error("the RPC serves chain {rpc}, the deployment is on chain {deployment}")]
    WrongChain {
        /// The RPC's chain id.
        rpc: u64,
        /// The deployment's.
        deployment: u64,
    },
    /// The API address could not be bound.
    #[error("API address {addr}: {source}")]
    Api {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A request to the task that owns the state.
pub(super) enum Command {
    /// A follower input.
    Follow(Input),
    /// A call's result.
    CallDone {
        channel: ChannelId,
        duty: DutyKind,
        result: CallResult,
    },
    /// A verified package with the chain's facts.
    Submit {
        package: Box<DelegationPackage>,
        facts: OnChainFacts,
        registered: Vec<(SecretHash, BlockNumber)>,
        obsolete: Vec<H256>,
        reply: oneshot::Sender<Result<Watch, Refusal>>,
    },
    /// A withdraw by the delegator.
    Withdraw {
        channel: ChannelId,
        delegator: Address,
        reply: oneshot::Sender<bool>,
    },
    /// A read of the state.
    Read(Box<dyn FnOnce(&MonitorState) + Send>),
}

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct MonitorContext {
    /// The chain (reads for submissions).
    pub executor: Arc<ChainExecutor>,
    /// The service's account.
    pub address: Address,
    /// The chain followed.
    pub chain_id: ChainId,
    /// Limits.
    pub limits: MonitorLimits,
    /// The chain follower's health.
    pub follower: tokio::sync::watch::Receiver<crate::chain::FollowerStatus>,
    pub(super) commands: mpsc::UnboundedSender<Command>,
}

impl MonitorContext {
    /// Runs `f` on the state inside the owning task.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&MonitorState) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Read(Box::new(move |s| {
                let _ = tx.send(f(s));
            })))
            .ok()?;
        rx.await.ok()
    }
}

/// Runs the monitor until the process is stopped.
pub async fn run(key: PrivateKey, opts: MonitorOptions) -> Result<(), MonitorError> {
    std::fs::create_dir_all(&opts.datadir).map_err(|source| {
        MonitorError::Chain(ChainError::Io {
            path: opts.datadir.display().to_string(),
            source,
        })
    })?;
    let store = MonitorStore::open(&opts.datadir.join("db"))?;
    let restored = store.restore()?;
    let start_block = restored
        .cursor
        .as_ref()
        .map_or(0, |c| c.next_block.saturating_sub(1));
    let mut state = MonitorState::restore(
        restored.watches,
        restored.registered,
        BlockNumber(start_block),
    );
    let progress = restored
        .cursor
        .unwrap_or_else(|| FollowerProgress::from_block(0));
    let mut networks: BTreeSet<Address> = progress.token_networks.clone();

    let signer = alloy::signers::local::PrivateKeySigner::from_bytes(&key.secret_bytes().into())
        .map_err(|e| MonitorError::Chain(ChainError::Key(e.to_string())))?;
    let client = ChainClient::connect(&opts.eth_rpc, signer).await?;
    if client.chain_id() != opts.deployment.chain_id {
        return Err(MonitorError::WrongChain {
            rpc: client.chain_id(),
            deployment: opts.deployment.chain_id,
        });
    }
    let executor = Arc::new(ChainExecutor::new(
        Arc::new(client),
        ChainContracts::from(&opts.deployment),
    ));
    let listener = tokio::net::TcpListener::bind(opts.api_address)
        .await
        .map_err(|source| MonitorError::Api {
            addr: opts.api_address,
            source,
        })?;

    let mut config = FollowerConfig::new(
        address(opts.deployment.registry),
        address(opts.deployment.secret_registry),
        opts.confirmations,
    );
    config.poll_interval = Duration::from_millis(100);
    let follower = ChainFollower::new(&opts.eth_rpc, config, progress)?;

    let (commands, mut inbox) = mpsc::unbounded_channel::<Command>();
    let context = MonitorContext {
        executor: executor.clone(),
        address: key.address(),
        chain_id: ChainId(opts.deployment.chain_id),
        limits: opts.limits,
        follower: follower.status(),
        commands: commands.clone(),
    };
    let (follow_tx, mut follow_rx) = mpsc::channel::<Input>(1024);
    tokio::spawn(follower.run(follow_tx));
    let to_inbox = commands.clone();
    tokio::spawn(async move {
        while let Some(input) = follow_rx.recv().await {
            if to_inbox.send(Command::Follow(input)).is_err() {
                break;
            }
        }
    });

    let app = super::api::router(context.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!("monitor API stopped: {e}");
        }
    });
    info!(
        "monitor {} on chain {} watching {} delegations from block {start_block}; API on {}",
        key.address(),
        opts.deployment.chain_id,
        state.watches.len(),
        opts.api_address
    );

    let limits = opts.limits;
    while let Some(command) = inbox.recv().await {
        match command {
            Command::Follow(Input::ContractReceive(event)) => {
                if let ChainEvent::TokenNetworkCreated { token_network, .. } = &event {
                    networks.insert(*token_network);
                }
                state.step(MonitorInput::Chain(event), &limits);
            }
            Command::Follow(Input::Block(block)) => {
                let calls = state.step(MonitorInput::Block(block), &limits);
                let cursor = FollowerProgress::after(block.0, networks.iter().copied());
                // Decisions and cursor together, durable before anything is sent.
                store.commit(&state.take_changes(), Some(&cursor))?;
                for call in calls {
                    tokio::spawn(send(executor.clone(), call, commands.clone()));
                }
            }
            Command::Follow(_) => {}
            Command::CallDone {
                channel,
                duty,
                result,
            } => {
                state.step(
                    MonitorInput::CallDone {
                        channel,
                        duty,
                        result,
                    },
                    &limits,
                );
                store.commit(&state.take_changes(), None)?;
            }
            Command::Submit {
                package,
                facts,
                registered,
                obsolete,
                reply,
            } => {
                let channel = package.channel_identifier;
                let result = state
                    .submit(*package, facts, &registered, &limits)
                    .map(|()| {
                        state.obsolete_unlocks_found(&channel, &obsolete);
                        state.watches[&channel].clone()
                    });
                if result.is_ok() {
                    store.commit(&state.take_changes(), None)?;
                }
                let _ = reply.send(result);
            }
            Command::Withdraw {
                channel,
                delegator,
                reply,
            } => {
                let done = state.withdraw(&channel, delegator);
                if done {
                    store.commit(&state.take_changes(), None)?;
                }
                let _ = reply.send(done);
            }
            Command::Read(f) => f(&state),
        }
    }
    Ok(())
}

/// Re-reads the chain (the call may have been done meanwhile, by the node or by an earlier run
/// of ours), sends, waits for the receipt and reports the result.
async fn send(
    executor: Arc<ChainExecutor>,
    call: MonitorCall,
    done: mpsc::UnboundedSender<Command>,
) {
    let (channel, duty) = (call.channel(), call.duty());
    let result = match send_call(&executor, &call).await {
        Ok(r) => r,
        Err(e) => CallResult::Failed(e.to_string()),
    };
    match &result {
        CallResult::Mined(tx) => info!("{channel}: {duty:?} mined in {tx}"),
        CallResult::NotNeeded => info!("{channel}: {duty:?} not needed, the chain has it"),
        CallResult::Failed(e) => warn!("{channel}: {duty:?} failed: {e}"),
    }
    let _ = done.send(Command::CallDone {
        channel,
        duty,
        result,
    });
}

async fn send_call(executor: &ChainExecutor, call: &MonitorCall) -> Result<CallResult, ChainError> {
    let outcome = match call {
        MonitorCall::Update {
            token_network,
            partner,
            delegator,
            proof,
            ..
        } => {
            let held = executor
                .participant_nonce(*token_network, *partner, *delegator)
                .await?;
            if held >= proof.nonce {
                return Ok(CallResult::NotNeeded);
            }
            executor
                .update_balance_proof_delegate(*token_network, *partner, *delegator, proof)
                .await?
        }
        MonitorCall::Unlock {
            token_network,
            partner,
            delegator,
            transferred_amount,
            nonce,
            locksroot,
            unlock,
            ..
        } => {
            let lockhash = unlock.lock().lockhash();
            if executor
                .lock_unlocked(*token_network, *partner, *delegator, lockhash)
                .await?
            {
                return Ok(CallResult::NotNeeded);
            }
            // Unlock only against the proof the chain actually holds.
            let (held, hash) = executor
                .participant_balance(*token_network, *partner, *delegator)
                .await?;
            if held > *nonce {
                return Ok(CallResult::NotNeeded);
            }
            if held < *nonce || hash != stored_balance_hash(*transferred_amount, *locksroot) {
                return Ok(CallResult::Failed(format!(
                    "the chain holds nonce {held} with another balance hash than the delegated \
                     proof's (nonce {nonce}, transferred {transferred_amount})"
                )));
            }
            executor
                .unlock_delegate(
                    *token_network,
                    *partner,
                    *delegator,
                    *transferred_amount,
                    unlock,
                )
                .await?
        }
        MonitorCall::Settle {
            token_network,
            delegator,
            partner,
            ..
        } => {
            let ch = executor
                .channel(*token_network, delegator.0, partner.0)
                .await?;
            if ch.state != 2 {
                return Ok(CallResult::NotNeeded);
            }
            executor
                .execute(&crate::core::ContractCall::Settle {
                    token_network: *token_network,
                    participant1: delegator.0,
                    participant1_transferred_amount: delegator.1,
                    participant1_locksroot: delegator.2,
                    participant2: partner.0,
                    participant2_transferred_amount: partner.1,
                    participant2_locksroot: partner.2,
                })
                .await?
        }
        MonitorCall::RegisterSecret { secret, .. } => {
            if executor.secret_reveal_block(secret.hash()).await?.is_some() {
                return Ok(CallResult::NotNeeded);
            }
            executor.register_secret(*secret).await?
        }
        MonitorCall::Punish {
            token_network,
            delegator,
            partner,
            evidence,
            ..
        } => {
            if executor
                .punished(*token_network, *delegator, *partner)
                .await?
            {
                return Ok(CallResult::NotNeeded);
            }
            executor
                .punish_obsolete_unlock(*token_network, *delegator, *partner, evidence)
                .await?
        }
    };
    Ok(CallResult::Mined(crate::chain::convert::h256(
        outcome.tx_hash,
    )))
}

/// What the chain holds for the package's channel: state, epoch, settle block, the partner's
/// nonce, and the confirmed head.
pub(super) async fn chain_facts(
    ctx: &MonitorContext,
    package: &DelegationPackage,
) -> Result<OnChainFacts, ChainError> {
    let e = &ctx.executor;
    // Independent reads, in parallel.
    let (ch, (partner_nonce, partner_balance_hash), head, punish_window) = tokio::try_join!(
        e.channel(package.token_network, package.delegator, package.partner),
        e.participant_balance(package.token_network, package.partner, package.delegator),
        e.client().block_number(),
        e.punish_window(package.token_network),
    )?;
    Ok(OnChainFacts {
        punish_window,
        state: ch.state,
        open_block_number: ch.open_block_number,
        settle_block_number: ch.settle_block_number,
        partner_nonce,
        partner_balance_hash,
        head: BlockNumber(head),
    })
}

/// The package's punish items whose lock the partner already unlocked on chain (before the
/// delegation arrived, so the monitor saw no log of it).
pub(super) async fn obsolete_unlocks(
    ctx: &MonitorContext,
    package: &DelegationPackage,
) -> Result<Vec<H256>, ChainError> {
    let mut out = Vec::new();
    for e in &package.punishes {
        if ctx
            .executor
            .lock_unlocked(
                package.token_network,
                package.delegator,
                package.partner,
                e.lockhash,
            )
            .await?
        {
            out.push(e.lockhash);
        }
    }
    Ok(out)
}

/// The reveal blocks of the package's locks whose secrets are registered already.
pub(super) async fn registered_secrets(
    ctx: &MonitorContext,
    package: &DelegationPackage,
) -> Result<Vec<(SecretHash, BlockNumber)>, ChainError> {
    let mut out = Vec::new();
    for u in &package.unlocks {
        if let Some(b) = ctx.executor.secret_reveal_block(u.secrethash).await? {
            out.push((u.secrethash, BlockNumber(b)));
        }
    }
    Ok(out)
}
