//! Named fault points: places in the event loop where the node can be told to die at once, as
//! `kill -9` would, so tests can show that a node restarted after a crash at any protocol
//! step loses nothing. Armed by `smartraiden run --crash-at POINT` or `SMARTRAIDEN_CRASH_AT`;
//! unarmed (the default) each check is one comparison of an `Option`.
//!
//! Points (`<Message>` is a SPEC §3 name such as `MediatedTransfer` or `Secret`; `<Event>` a
//! chain event such as `ChannelClosed`):
//!
//! | point | where the process dies |
//! |---|---|
//! | `send-before:<Message>` | after the commit that queued the message, before it is handed to the transport |
//! | `send-after:<Message>` | right after it was handed to the transport |
//! | `receive:<Message>` | on receiving it, before it is processed (nothing committed) |
//! | `receive-after:<Message>` | after its processing is committed, before the Ack and other outputs leave |
//! | `ack:<Message>` | on receiving the Ack of a message of ours of that type, before processing it |
//! | `chain-before:<Event>` | on a chain event, before it is processed |
//! | `chain-after:<Event>` | after its processing is committed, before its outputs leave |
//!
//! Every point name the node passes is logged at debug level (`RUST_LOG=smartraiden::node::faults=debug`),
//! which is how the tests list the points a scenario reaches.

use crate::core::{ChainEvent, Input, NodeState};
use crate::messages::wire_kind;

/// The environment variable that arms a fault point.
pub const CRASH_AT_ENV: &str = "SMARTRAIDEN_CRASH_AT";

/// Which fault point, if any, kills the process.
#[derive(Clone, Debug, Default)]
pub struct FaultPoints {
    armed: Option<String>,
}

impl FaultPoints {
    /// Armed at `point` (`None`: never fires).
    pub fn new(point: Option<String>) -> Self {
        FaultPoints {
            armed: point.filter(|p| !p.is_empty()),
        }
    }

    /// Armed from `SMARTRAIDEN_CRASH_AT`, if set.
    pub fn from_env() -> Self {
        Self::new(std::env::var(CRASH_AT_ENV).ok())
    }

    /// Whether a point is armed.
    pub fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    /// Whether points are checked or logged at all (armed, or this module's debug log on); the
    /// runtime skips the bookkeeping otherwise.
    pub fn active(&self) -> bool {
        self.is_armed() || log::log_enabled!(log::Level::Debug)
    }

    /// Dies at once if `point` is the armed one.
    pub fn hit(&self, point: &str) {
        log::debug!("fault point {point}");
        if self.armed.as_deref() == Some(point) {
            log::error!("fault point {point} reached: exiting at once (--crash-at)");
            // SIGABRT: no destructors, no flushing, like a kill -9 (RocksDB's commits are
            // already fsync'd; anything not committed is lost, as it should be).
            std::process::abort();
        }
    }

    /// The points an input passes before it is processed: `receive:<Message>`,
    /// `ack:<Message>` (from our outbox in `state`), `chain-before:<Event>`.
    pub fn before_input(&self, input: &Input, state: &NodeState) {
        if !self.active() {
            return;
        }
        match input {
            Input::Receive(bytes) => {
                let kind = wire_kind(bytes);
                self.hit(&format!("receive:{kind}"));
                if kind == "Ack"
                    && let Ok(m) = crate::messages::decode(bytes, state.config.chain_id)
                    && let crate::messages::Message::Ack(ack) = m.message
                    && let Some(p) = state.delivery.all().find(|p| p.hash == ack.echo)
                {
                    self.hit(&format!("ack:{}", wire_kind(&p.bytes)));
                }
            }
            Input::ContractReceive(ev) => self.hit(&format!("chain-before:{}", event_name(ev))),
            _ => {}
        }
    }

    /// The point an input passes once its processing is committed (`receive-after:<Message>`,
    /// `chain-after:<Event>`), to [`FaultPoints::hit`] after the commit.
    pub fn after_input(&self, input: &Input) -> Option<String> {
        if !self.active() {
            return None;
        }
        match input {
            Input::Receive(bytes) => Some(format!("receive-after:{}", wire_kind(bytes))),
            Input::ContractReceive(ev) => Some(format!("chain-after:{}", event_name(ev))),
            _ => None,
        }
    }

    /// Around handing a message to the transport: `send-before:<Message>` or
    /// `send-after:<Message>`.
    pub fn send(&self, stage: &str, bytes: &[u8]) {
        if self.active() {
            self.hit(&format!("send-{stage}:{}", wire_kind(bytes)));
        }
    }
}

/// The name of a chain event, as fault points use it.
pub fn event_name(ev: &ChainEvent) -> &'static str {
    match ev {
        ChainEvent::TokenNetworkCreated { .. } => "TokenNetworkCreated",
        ChainEvent::ChannelOpened { .. } => "ChannelOpened",
        ChainEvent::ChannelDeposit { .. } => "ChannelDeposit",
        ChainEvent::ChannelWithdraw { .. } => "ChannelWithdraw",
        ChainEvent::ChannelClosed { .. } => "ChannelClosed",
        ChainEvent::BalanceProofUpdated { .. } => "BalanceProofUpdated",
        ChainEvent::ChannelUnlocked { .. } => "ChannelUnlocked",
        ChainEvent::ChannelSettled { .. } => "ChannelSettled",
        ChainEvent::ChannelCooperativeSettled { .. } => "ChannelCooperativeSettled",
        ChainEvent::ObsoleteUnlockPunished { .. } => "ObsoleteUnlockPunished",
        ChainEvent::SecretRegistered { .. } => "SecretRegistered",
    }
}
