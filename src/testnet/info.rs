//! `testnet.json`: what a running local testnet consists of, for scripts, tests and `down`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TestnetError;

/// One node of the testnet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Checksummed address.
    pub address: String,
    /// Base URL of its REST API, e.g. `http://127.0.0.1:5001`.
    pub api_url: String,
    /// Its data directory.
    pub datadir: PathBuf,
    /// Its process id (0 once stopped).
    pub pid: u32,
    /// The shell command that starts it again, detached, on the same data directory.
    pub restart: String,
    /// Where its LAN transport listens, `ip:port` (the form `POST /api/1/updatenodes` takes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lan: Option<String>,
}

/// The whole testnet, as written to `<dir>/testnet.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestnetInfo {
    /// Ethereum JSON-RPC URL (anvil).
    pub eth_rpc: String,
    /// XMPP server client address, `host:port`.
    pub xmpp: String,
    /// XMPP domain the nodes log in to.
    pub xmpp_domain: String,
    /// TokenNetworkRegistry.
    pub registry: String,
    /// The test token every node holds.
    pub token: String,
    /// The deployment JSON the nodes read.
    pub deployment: PathBuf,
    /// anvil's process id.
    pub anvil_pid: u32,
    /// Prosody's process id.
    pub prosody_pid: u32,
    /// Further server processes (the second federating Prosody, the login verifier), for `down`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_pids: Vec<u32>,
    /// The nodes, in order (node 1 first).
    pub nodes: Vec<NodeInfo>,
}

impl TestnetInfo {
    /// The file name inside the testnet directory.
    pub const FILE: &'static str = "testnet.json";

    /// Reads `<dir>/testnet.json`.
    pub fn read(dir: &Path) -> Result<Self, TestnetError> {
        let path = dir.join(Self::FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            TestnetError::Setup(format!(
                "no testnet at {} ({e}); start one with `integration/testnet up`",
                path.display()
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| {
            TestnetError::Setup(format!("{} is not a testnet file: {e}", path.display()))
        })
    }

    /// Writes `<dir>/testnet.json` (atomically: a temporary file renamed over it).
    pub fn write(&self, dir: &Path) -> Result<(), TestnetError> {
        let path = dir.join(Self::FILE);
        let tmp = dir.join(format!("{}.tmp", Self::FILE));
        let text = serde_json::to_string_pretty(self).expect("testnet info serializes");
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| TestnetError::Setup(format!("writing {}: {e}", path.display())))
    }
}
