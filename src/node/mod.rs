//! The node's shell around the protocol core: one thread owns the [`Core`](crate::core::Core),
//! takes work in batches (group commit), persists each batch's resulting state, and only then
//! releases its outputs: messages to the transport, transactions to the chain executor,
//! notifications to whoever waits (the REST API). It makes no protocol decision of its own.

mod discovery;
pub mod faults;
mod handle;
mod links;
pub mod monitor_push;
mod runtime;
mod service;

pub use handle::Work;
pub use handle::{MAX_QUEUED_RECEIVES, NodeError, NodeHandle, QueueSlot, TransferOutcome};
pub use runtime::{
    ChainRequest, Durability, Outbound, Persist, PersistError, Runtime, RuntimeConfig,
};
pub use service::{LanOptions, NodeOptions, RunError, run};
