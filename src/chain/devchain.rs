//! Dev-chain harness: a real anvil (npm `@foundry-rs/anvil-linux-amd64`, installed by
//! `integration/deps.sh anvil`) on a free loopback port, killed when dropped. Tests move past
//! settle timeouts with [`DevChain::mine`] instead of waiting, and isolate cases with
//! [`DevChain::snapshot`]/[`DevChain::revert`]. [`DevChain::start_in`] runs it inside a network
//! namespace instead (the LAN lab of `testnet::netns`).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
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

/// A running anvil instance (on 127.0.0.1 unless started with [`DevChain::start_in`]), killed on
/// drop unless [`DevChain::detach`]ed.
pub struct DevChain {
    child: Option<Child>,
    /// Where anvil listens: the URL the nodes are given.
    url: String,
    /// The URL this process reaches anvil by (differs from `url` inside a network namespace).
    harness_url: String,
    rpc: DynProvider,
}

/// Maps anvil's listening address to the URL this process uses for its own requests; see
/// [`DevChainPlacement::reach`].
pub type ReachFn = Box<dyn FnOnce(SocketAddr) -> Result<String, String> + Send>;

/// Where [`DevChain::start_in`] runs anvil and how this process reaches it. The default is what
/// [`DevChain::start_with`] does: this network namespace, 127.0.0.1.
pub struct DevChainPlacement {
    /// Run anvil in this network namespace (`ip netns exec NAME anvil …`); `None`: this one.
    pub netns: Option<String>,
    /// The address anvil listens on (`--host`).
    pub host: Ipv4Addr,
    /// Called once anvil reports its listening address: waits until that address is reachable
    /// where it matters (e.g. from a node's namespace) and returns the URL this process sends
    /// its own requests to (e.g. a forwarding port into the namespace). `None`:
    /// `http://<listening address>`.
    pub reach: Option<ReachFn>,
}

impl Default for DevChainPlacement {
    fn default() -> Self {
        DevChainPlacement {
            netns: None,
            host: Ipv4Addr::LOCALHOST,
            reach: None,
        }
    }
}

impl std::fmt::Debug for DevChainPlacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevChainPlacement")
            .field("netns", &self.netns)
            .field("host", &self.host)
            .field("reach", &self.reach.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

/// Options of [`DevChain::start_with`].
#[derive(Debug, Clone, Default)]
pub struct DevChainOptions {
    /// Also mine an empty block every this many seconds (anvil `--mixed-mining --block-time`),
    /// so block-based windows pass without traffic; transactions are still mined at once.
    pub block_time: Option<u64>,
    /// Write anvil's output to this file instead of a pipe; needed when anvil must outlive this
    /// process ([`DevChain::detach`]), since a closed pipe would kill it.
    pub log_file: Option<PathBuf>,
    /// Run anvil in its own process group, so a terminal's Ctrl-C or hang-up does not reach it.
    pub own_process_group: bool,
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
        Self::start_with(DevChainOptions::default()).await
    }

    /// [`DevChain::start`] with options.
    pub async fn start_with(options: DevChainOptions) -> Result<Self, ChainError> {
        Self::start_in(options, DevChainPlacement::default()).await
    }

    /// [`DevChain::start_with`], placed as `placement` says (e.g. inside a network namespace,
    /// listening on an address there). [`DevChain::url`] is then anvil's own address (for the
    /// nodes), [`DevChain::harness_url`] the one this process uses.
    pub async fn start_in(
        options: DevChainOptions,
        placement: DevChainPlacement,
    ) -> Result<Self, ChainError> {
        let bin = Self::anvil_path()?;
        let host = placement.host.to_string();
        let mut cmd = match &placement.netns {
            None => Command::new(&bin),
            Some(ns) => {
                // `ip netns exec` execs anvil in place: the child's pid is anvil's.
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(&bin);
                cmd
            }
        };
        cmd.args(["--host", &host, "--port", "0", "--accounts", "1"])
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        if let Some(seconds) = options.block_time {
            cmd.args(["--mixed-mining", "--block-time", &seconds.to_string()]);
        }
        if options.own_process_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let (tx, rx) = mpsc::channel();
        let mut child = match &options.log_file {
            None => {
                cmd.stdout(Stdio::piped());
                let mut child = cmd.spawn().map_err(|e| {
                    ChainError::DevChain(format!("cannot start {}: {e}", bin.display()))
                })?;
                let stdout = child.stdout.take().expect("stdout is piped");
                // The reader keeps draining stdout after the port is known, so anvil never
                // blocks on a full pipe.
                std::thread::spawn(move || {
                    let mut announced = false;
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        trace!("anvil: {line}");
                        if !announced && let Some(addr) = listening_on(&line) {
                            announced = true;
                            let _ = tx.send(addr);
                        }
                    }
                });
                child
            }
            Some(path) => {
                let file = std::fs::File::create(path).map_err(|e| {
                    ChainError::DevChain(format!("cannot create {}: {e}", path.display()))
                })?;
                cmd.stdout(file);
                let child = cmd.spawn().map_err(|e| {
                    ChainError::DevChain(format!("cannot start {}: {e}", bin.display()))
                })?;
                let path = path.clone();
                std::thread::spawn(move || {
                    let deadline = std::time::Instant::now() + START_TIMEOUT;
                    while std::time::Instant::now() < deadline {
                        let text = std::fs::read_to_string(&path).unwrap_or_default();
                        if let Some(addr) = text.lines().find_map(listening_on) {
                            let _ = tx.send(addr);
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                });
                child
            }
        };
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
        let harness_url = match placement.reach {
            None => url.clone(),
            Some(reach) => {
                let reached = addr
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("anvil's address {addr:?}: {e}"))
                    .and_then(reach);
                match reached {
                    Ok(harness_url) => harness_url,
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(ChainError::DevChain(format!(
                            "anvil listens on {addr} but is not reachable: {e}"
                        )));
                    }
                }
            }
        };
        let rpc = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(
                Url::parse(&harness_url)
                    .map_err(|e| ChainError::DevChain(format!("anvil URL {harness_url:?}: {e}")))?,
            )
            .erased();
        debug!(
            "anvil (pid {}) listening at {url} (reached at {harness_url})",
            child.id()
        );
        Ok(DevChain {
            child: Some(child),
            url,
            harness_url,
            rpc,
        })
    }

    /// The anvil process id, while this handle owns the process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Leaves anvil running after this handle is dropped; returns its process id. Start it
    /// with [`DevChainOptions::log_file`] so its output does not go to a pipe that closes.
    pub fn detach(&mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }

    /// The JSON-RPC URL: where anvil listens, the address its neighbours (nodes) use.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The JSON-RPC URL this process uses ([`DevChain::provider`], [`DevChain::client`]): the
    /// same as [`DevChain::url`] unless anvil runs in another network namespace.
    pub fn harness_url(&self) -> &str {
        &self.harness_url
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
        ChainClient::connect(&self.harness_url, signer).await
    }
}

impl Drop for DevChain {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The address in anvil's `Listening on 127.0.0.1:PORT` line.
fn listening_on(line: &str) -> Option<String> {
    line.strip_prefix("Listening on ")
        .map(|a| a.trim().to_string())
}
