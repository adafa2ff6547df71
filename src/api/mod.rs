//! The REST API of SPEC §6 (SmartRaiden's paths, JSON bodies, `{"error_code", "error_message"}`
//! errors). Handlers translate requests into core actions and state queries through the
//! [`NodeHandle`](crate::node::NodeHandle); they make no protocol decision.

mod app;
mod error;
pub mod events;
pub mod guard;
pub(crate) mod json;
mod offline;
pub mod openapi;
mod preview;
mod routes;
mod thirdparty;
mod ui;

pub use app::{Closing, app};
pub use error::ApiError;
pub use guard::ApiAccess;
pub use json::amount_json;
pub use offline::LanPeers;
pub use routes::{ApiState, BoxFuture, ChainOps, TransferLog, router};
