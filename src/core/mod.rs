//! The protocol core: deterministic, free of I/O. `(state, input) -> (state, outputs)`, with
//! time and randomness passed in through [`Ctx`]. The shell persists the state after each
//! step and only then carries out the outputs (persist, then send).

mod chain_view;
pub mod channel;
mod claims;
mod cosign;
mod delegate;
pub mod delivery;
mod dispatch;
pub mod duties;
mod effects;
pub mod io;
mod lifecycle;
mod offline;
pub mod routing;
mod state;
pub mod transfer;

pub use chain_view::ChainView;
pub use delegate::{DelegationPrint, MonitorReport};
pub use io::{
    Action, ChainEvent, ContractCall, ContractFailure, Input, Notification, OnChainBalanceProof,
    Output, TransferRequest,
};
pub use offline::NoInternet;
pub use state::{NodeConfig, NodeState, TokenNetwork};

use crate::crypto::PrivateKey;
use crate::primitives::{Address, ChannelId, H256, SecretHash};

/// Time and randomness for one step: the only ways the world enters the core besides inputs.
pub struct Ctx<'a> {
    /// Milliseconds on a clock that never goes back (drives retransmission; the node uses
    /// Unix time, so times persisted by an earlier run compare with this run's).
    pub now_ms: u64,
    /// Randomness (secrets).
    pub rng: &'a mut dyn rand_core::RngCore,
}

/// Why a user action was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No token network for this token.
    #[error("token {0} is not registered")]
    UnknownToken(Address),
    /// No such channel.
    #[error("unknown channel {0}")]
    UnknownChannel(ChannelId),
    /// A channel with this partner already exists.
    #[error("a channel with {0} already exists")]
    ChannelExists(Address),
    /// Bad arguments (zero amount, paying ourselves…).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The channel cannot do this in its current state.
    #[error("channel is {0}")]
    ChannelState(&'static str),
    /// Not enough balance.
    #[error("insufficient balance: can send {available}, asked for {requested}")]
    InsufficientBalance {
        /// Distributable balance.
        available: String,
        /// Requested (amount + fees).
        requested: String,
    },
    /// No usable route to the target.
    #[error("no route to {0} with enough capacity")]
    NoRoute(Address),
    /// No transfer with this secrethash.
    #[error("unknown transfer {0:?}")]
    UnknownTransfer(SecretHash),
    /// The transfer has gone too far for this.
    #[error("transfer {0:?} can no longer be changed: its secret is revealed")]
    TooLate(SecretHash),
    /// A transfer with this secret already exists.
    #[error("a transfer with this secret already exists")]
    DuplicateSecret,
    /// A transfer with the same caller identifier to the same target is still running.
    #[error("transfer {0} with this identifier to this target is still running")]
    DuplicateTransfer(H256),
    /// The node is in no-internet mode: it takes on no lock.
    #[error(
        "no-internet mode ({0}): only direct transfers on open channels; mediated transfers need the chain"
    )]
    NoInternet(&'static str),
    /// The node's view of the chain trails the chain: it takes on no new lock until it
    /// catches up.
    #[error("the node's view of the chain is behind ({0}); retry once it has caught up")]
    ChainBehind(String),
}

/// Persisted state that belongs to another account than the key given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the data directory belongs to {state}, not to the key's account {key}")]
pub struct ForeignState {
    /// The state's account.
    pub state: Address,
    /// The key's account.
    pub key: Address,
}

/// A node's protocol state machine.
pub struct Core {
    /// Everything that is persisted.
    pub state: NodeState,
    key: PrivateKey,
    out: Vec<Output>,
    now_ms: u64,
    /// What the chain follower last told us (not persisted: a restarted node knows nothing
    /// of the chain until the follower speaks).
    chain: ChainView,
    /// What the transports last told us (not persisted).
    links: offline::Links,
    /// The clock at this run's first step.
    started_ms: u64,
    /// Delegation to a monitoring service (not persisted).
    delegations: delegate::Delegations,
}

impl Core {
    /// A new node with empty state.
    pub fn new(key: PrivateKey, config: NodeConfig) -> Core {
        let state = NodeState::new(key.address(), config);
        Core {
            state,
            key,
            out: Vec::new(),
            now_ms: 0,
            chain: ChainView::default(),
            links: offline::Links::default(),
            started_ms: 0,
            delegations: delegate::Delegations::default(),
        }
    }

    /// A node restored from persisted state. Call [`Core::resend_pending`] to resume delivery.
    pub fn restore(key: PrivateKey, state: NodeState) -> Result<Core, ForeignState> {
        if state.our_address != key.address() {
            return Err(ForeignState {
                state: state.our_address,
                key: key.address(),
            });
        }
        Ok(Core {
            delegations: delegate::Delegations::restored(&state),
            state,
            key,
            out: Vec::new(),
            now_ms: 0,
            chain: ChainView::default(),
            links: offline::Links::default(),
            started_ms: 0,
        })
    }

    /// Sets the clock for a step (the first one starts this run's clock).
    fn set_clock(&mut self, now_ms: u64) {
        if self.started_ms == 0 {
            self.started_ms = now_ms;
        }
        self.now_ms = now_ms;
    }

    /// Our address.
    pub fn address(&self) -> crate::primitives::Address {
        self.state.our_address
    }

    /// Applies one input and returns what to do once the new state is persisted.
    pub fn step(&mut self, input: Input, ctx: &mut Ctx<'_>) -> Vec<Output> {
        self.set_clock(ctx.now_ms);
        match input {
            Input::Receive(bytes) => self.on_receive(&bytes),
            Input::ContractReceive(event) => self.on_chain_event(event),
            Input::Block(block) => self.on_block(block),
            Input::ChainHead(head) => self.on_chain_head(head),
            Input::XmppLink(up) => self.on_xmpp_link(up),
            Input::ContractFailed { call, failure } => self.on_contract_failed(call, failure),
            Input::Tick => {
                let resend = self
                    .state
                    .delivery
                    .due(self.now_ms, &self.state.config.retry);
                self.out.extend(resend);
            }
            Input::PeerReachability { peer, online } => {
                self.state.reachability.insert(peer, online);
            }
            Input::Resume => self.resume_chain_duties(),
            Input::Monitor(report) => self.on_monitor(report),
        }
        self.hand_over_delegations();
        std::mem::take(&mut self.out)
    }

    /// Carries out a user action, or refuses it without changing anything.
    pub fn act(&mut self, action: Action, ctx: &mut Ctx<'_>) -> Result<Vec<Output>, ActionError> {
        self.set_clock(ctx.now_ms);
        let result = self.on_action(action, ctx.rng);
        if result.is_ok() {
            self.hand_over_delegations();
        }
        let out = std::mem::take(&mut self.out);
        result.map(|_| out)
    }

    /// When the core next needs an `Input::Tick` (a retransmission falls due), on the
    /// clock of `Ctx::now_ms`; `None` while nothing awaits an Ack.
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        self.state.delivery.next_due_ms()
    }

    /// Every unacknowledged message again (after a restart).
    pub fn resend_pending(&self) -> Vec<Output> {
        self.state
            .delivery
            .all()
            .map(|p| Output::Send {
                to: p.to,
                bytes: p.bytes.clone(),
            })
            .collect()
    }
}
