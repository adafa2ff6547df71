//! [`NodeHandle`]: how the REST API and the I/O tasks talk to the event loop.

use crate::core::{Action, ActionError, Core, Input, NodeState, Notification, TransferRequest};
use crate::primitives::{H256, TokenAmount};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

/// Most received messages waiting for the event loop. Beyond it a transport's new messages
/// are dropped (their senders resend until acknowledged), so a flood cannot grow the queue
/// without bound.
pub const MAX_QUEUED_RECEIVES: usize = 10_000;

/// A place in the bounded queue of received messages, freed when dropped.
pub struct QueueSlot(Arc<AtomicUsize>);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A unit of work for the event loop.
pub enum Work {
    /// An input from the network, the chain or the clock.
    Input(Input),
    /// A user action; the reply carries the notifications it produced (e.g. the transfer id).
    Action {
        /// The action.
        action: Action,
        /// Answered after the resulting state is durable.
        reply: tokio::sync::oneshot::Sender<Result<Vec<Notification>, ActionError>>,
        /// For a transfer: told when it ends (a `sync` REST transfer), without a second
        /// hand-off to the event loop.
        ended: Option<tokio::sync::oneshot::Sender<TransferOutcome>>,
    },
    /// A read of the committed state (and of the core's chain view).
    Query(Box<dyn FnOnce(&Core) + Send>),
    /// A message from a transport; its slot in the bounded receive queue is freed once the
    /// event loop has processed it.
    Receive {
        /// Wire bytes.
        bytes: Vec<u8>,
        /// The queue slot.
        slot: QueueSlot,
    },
    /// Tell `reply` when transfer `id` ends.
    WaitTransfer {
        /// Transfer id.
        id: H256,
        /// The outcome.
        reply: tokio::sync::oneshot::Sender<TransferOutcome>,
    },
    /// Commit what came before, then end the event loop.
    Stop,
}

/// How a transfer we initiated ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// The payee holds a balance proof paying it; `fee` went to mediators.
    Success {
        /// Fees actually paid.
        fee: TokenAmount,
    },
    /// It failed; nothing moved.
    Failed(String),
    /// The user canceled it before the reveal.
    Canceled,
}

/// Why a request to the node could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The core refused the action.
    #[error(transparent)]
    Action(#[from] ActionError),
    /// The event loop stopped.
    #[error("the node is shutting down")]
    Stopped,
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// A cheap, cloneable handle to the event loop.
#[derive(Clone)]
pub struct NodeHandle {
    work: Sender<Work>,
    queued_receives: Arc<AtomicUsize>,
}

impl NodeHandle {
    /// A handle feeding `work`.
    pub fn new(work: Sender<Work>) -> NodeHandle {
        NodeHandle {
            work,
            queued_receives: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Feeds a received message, unless [`MAX_QUEUED_RECEIVES`] already wait: then it is
    /// dropped (`Ok(false)`) and its sender's resend delivers it later.
    pub fn receive(&self, bytes: Vec<u8>) -> Result<bool, NodeError> {
        if self.queued_receives.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED_RECEIVES {
            self.queued_receives.fetch_sub(1, Ordering::Relaxed);
            return Ok(false);
        }
        let slot = QueueSlot(self.queued_receives.clone());
        self.work
            .send(Work::Receive { bytes, slot })
            .map_err(|_| NodeError::Stopped)?;
        Ok(true)
    }

    /// Ends the event loop once everything queued before is committed and sent.
    pub fn stop(&self) {
        let _ = self.work.send(Work::Stop);
    }

    /// Feeds an input (transport and chain tasks use this).
    pub fn input(&self, input: Input) -> Result<(), NodeError> {
        self.work
            .send(Work::Input(input))
            .map_err(|_| NodeError::Stopped)
    }

    /// Runs an action; answers once its effects are durable.
    pub async fn act(&self, action: Action) -> Result<Vec<Notification>, NodeError> {
        self.act_with(action, None).await
    }

    async fn act_with(
        &self,
        action: Action,
        ended: Option<tokio::sync::oneshot::Sender<TransferOutcome>>,
    ) -> Result<Vec<Notification>, NodeError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.work
            .send(Work::Action {
                action,
                reply,
                ended,
            })
            .map_err(|_| NodeError::Stopped)?;
        Ok(rx.await.map_err(|_| NodeError::Stopped)??)
    }

    /// Starts a transfer; answers once it is durable, with the notifications it produced
    /// and a receiver told when the transfer ends.
    pub async fn start_transfer(
        &self,
        request: TransferRequest,
    ) -> Result<(Vec<Notification>, TransferEnd), NodeError> {
        let (ended, end) = tokio::sync::oneshot::channel();
        let notes = self
            .act_with(Action::Transfer(request), Some(ended))
            .await?;
        Ok((notes, TransferEnd(end)))
    }

    /// Reads the committed state.
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&NodeState) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        self.query_core(move |c| f(&c.state)).await
    }

    /// Reads the core: its committed state and its view of the chain.
    pub async fn query_core<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Core) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Box::new(move |c: &Core| {
            let _ = tx.send(f(c));
        });
        self.work
            .send(Work::Query(job))
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Waits until transfer `id` ends, or `timeout`.
    pub async fn wait_transfer(
        &self,
        id: H256,
        timeout: Duration,
    ) -> Result<TransferOutcome, NodeError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.work
            .send(Work::WaitTransfer { id, reply })
            .map_err(|_| NodeError::Stopped)?;
        TransferEnd(rx).wait(timeout).await
    }
}

/// The end of a transfer started with [`NodeHandle::start_transfer`].
pub struct TransferEnd(tokio::sync::oneshot::Receiver<TransferOutcome>);

impl TransferEnd {
    /// Waits until the transfer ends, or `timeout`.
    pub async fn wait(self, timeout: Duration) -> Result<TransferOutcome, NodeError> {
        match tokio::time::timeout(timeout, self.0).await {
            Ok(r) => r.map_err(|_| NodeError::Stopped),
            Err(_) => Err(NodeError::Timeout(timeout)),
        }
    }
}
