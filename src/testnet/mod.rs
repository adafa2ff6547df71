//! A local testnet on one machine: anvil, Prosody, our contracts and `smartraiden run`
//! processes, described by `testnet.json`. `integration/testnet up|down|seed` drives it from
//! the shell (through `smartraiden testnet …`); the integration tests start one per test.

pub mod bench;
pub mod client;
pub mod compose;
mod credentials;
pub mod ejabberd;
pub mod harness;
pub mod info;
pub mod lan_net;
pub mod limits;
pub mod monitor;
pub mod netns;
pub mod network;
pub mod rpc_gate;
pub mod seed;
pub mod xmpp_security;

pub use client::ApiClient;
pub use info::{NodeInfo, TestnetInfo};
pub use network::{Testnet, TestnetOptions, down};
pub use rpc_gate::RpcGate;

/// Why a testnet could not be started, stopped or driven.
#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    /// Files, processes or configuration.
    #[error("testnet: {0}")]
    Setup(String),
    /// The chain (anvil, deployment, funding).
    #[error("testnet chain: {0}")]
    Chain(#[from] crate::chain::ChainError),
    /// The XMPP server.
    #[error("testnet XMPP server: {0}")]
    Xmpp(#[from] crate::transport::xmpp::ServerError),
    /// A node's REST API answered unexpectedly or not at all.
    #[error("REST API: {0}")]
    Api(String),
}

/// Maps an I/O error on `path` to a setup error saying what was being done.
fn io(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TestnetError {
    let path = path.display().to_string();
    move |e| TestnetError::Setup(format!("{what} {path}: {e}"))
}
