//! `smartraiden monitor`: a third-party service that defends the channels of nodes that are
//! away (SPEC §8). Nodes submit signed delegation packages ([`crate::delegation`]) over HTTP;
//! the service follows the chain with the node's follower and, when a partner closes, submits
//! the delegator's latest proof in the second half of the settle window, unlocks what it may
//! and punishes obsolete unlocks.
//!
//! Layout: [`decide`] is the pure decision core, [`store`] its RocksDB, [`service`] the shell
//! (follower, sender, event loop), [`api`] the HTTP API.

pub mod api;
pub mod decide;
pub mod service;
pub mod store;

pub use decide::{MonitorLimits, MonitorState};
pub use service::{MonitorOptions, run};
