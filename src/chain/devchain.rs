//! Dev-chain harness: a real anvil (npm `@foundry-rs/anvil-linux-amd64`, installed by
//! `integration/deps.sh anvil`) on a free loopback port, killed when dropped. Tests move past
//! settle timeouts with [`DevChain::mine`] instead of waiting, and isolate cases with
//! [`DevChain::snapshot`]/[`DevChain::revert`].

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use alloy::primitives::{Address, U256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest::Url;
use log::{debug, info, trace};

use super::{ChainClient, ChainError};

/// How long anvil may take to start listening (it needs ~0.1 s; a cold npm install is separate).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running anvil instance on 127.0.0.1, killed on drop.
pub struct DevChain {
    child: Child,
    url: String,
    rpc: DynProvider,
}

impl DevChain {
    /// Path of the anvil binary: `$SMARTRAIDEN_ANVIL`, else the pinned npm package under
    /// `integration/node_modules`, installed on demand by `integration/deps.sh anvil`.
    pub fn anvil_path() -> Result<PathBuf, ChainError> {
        if let Ok(path) = std::env::var("SMARTRAIDEN_ANVIL") {
            return Ok(PathBuf::from(path));
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let bin = root.join("integration/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
        if !bin.exists() {
            info!("anvil not installed; running integration/deps.sh anvil");
            let status = Command::new("bash")
                .arg(root.join("integration/deps.sh"))
                .arg("anvil")
                .status()
                .map_err(|e| {
                    ChainError::DevChain(format!("cannot run integration/deps.sh: {e}"))
                })?;
            if !status.success() || !bin.exists() {
                return Err(ChainError::DevChain(format!(
                    "integration/deps.sh anvil failed ({status})"
                )));
            }
        }
        Ok(bin)
    }

    /// Starts anvil on a free loopback port (chosen by anvil itself: `--port 0`, no race) and
    /// returns once it listens.
    pub async fn start() -> Result<Self, ChainError> {
        let bin = Self::anvil_path()?;
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", "0", "--accounts", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ChainError::DevChain(format!("cannot start {}: {e}", bin.display())))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // The reader keeps draining stdout after the port is known, so anvil never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut announced = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                trace!("anvil: {line}");
                if !announced && let Some(addr) = line.strip_prefix("Listening on ") {
                    announced = true;
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ChainError::DevChain(format!(
                    "anvil did not report a listening port within {START_TIMEOUT:?}"
                )));
            }
        };
        let url = format!("http://{addr}");
        let rpc = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(
                Url::parse(&url)
                    .map_err(|e| ChainError::DevChain(format!("anvil address {addr:?}: {e}")))?,
            )
            .erased();
        debug!("anvil (pid {}) listening at {url}", child.id());
        Ok(DevChain { child, url, rpc })
    }

    /// The JSON-RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A provider without a wallet (views, raw anvil methods).
    pub fn provider(&self) -> &DynProvider {
        &self.rpc
    }

    /// Mines `blocks` empty blocks at once (`anvil_mine`).
    pub async fn mine(&self, blocks: u64) -> Result<(), ChainError> {
        let _: serde_json::Value = self
            .rpc
            .raw_request("anvil_mine".into(), (U256::from(blocks),))
            .await?;
        Ok(())
    }

    /// Mines until the chain's head is at least `block`.
    pub async fn mine_to(&self, block: u64) -> Result<(), ChainError> {
        let head = self.rpc.get_block_number().await?;
        if block > head {
            self.mine(block - head).await?;
        }
        Ok(())
    }

    /// Current block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        Ok(self.rpc.get_block_number().await?)
    }

    /// Records the chain state; [`DevChain::revert`] goes back to it (once per snapshot).
    pub async fn snapshot(&self) -> Result<U256, ChainError> {
        Ok(self.rpc.raw_request("evm_snapshot".into(), ()).await?)
    }

    /// Restores a snapshot taken by [`DevChain::snapshot`].
    pub async fn revert(&self, id: U256) -> Result<(), ChainError> {
        let ok: bool = self.rpc.raw_request("evm_revert".into(), (id,)).await?;
        if ok {
            Ok(())
        } else {
            Err(ChainError::DevChain(format!("evm_revert({id}) refused")))
        }
    }

    /// Sets the ether balance of `address` (`anvil_setBalance`).
    pub async fn set_balance(&self, address: Address, wei: U256) -> Result<(), ChainError> {
        let _: serde_json::Value = self
            .rpc
            .raw_request("anvil_setBalance".into(), (address, wei))
            .await?;
        Ok(())
    }

    /// Deterministic test key number `index` (keccak256 of a fixed label): the same on every run.
    pub fn key(index: u32) -> PrivateKeySigner {
        let secret = keccak256(format!("smartraiden devchain key {index}"));
        PrivateKeySigner::from_bytes(&secret).expect("a keccak output is a valid secp256k1 scalar")
    }

    /// A client signing with `signer`, its address funded with 1,000,000 ether first.
    pub async fn client(&self, signer: PrivateKeySigner) -> Result<ChainClient, ChainError> {
        self.set_balance(signer.address(), U256::from(10u64).pow(U256::from(24u64)))
            .await?;
        ChainClient::connect(&self.url, signer).await
    }
}

impl Drop for DevChain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
