//! A `smartraiden monitor` process for tests and measurements: started on a free port with its
//! own data directory and account, killed (as `kill -9`) and restarted on the same directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::client::ApiClient;
use super::network::free_port;
use super::{Testnet, TestnetError};

/// The dev-chain key index of the testnet's monitor account (the nodes use others).
pub const MONITOR_KEY_INDEX: u32 = 9;

/// The monitor account's private key (hex) and address.
pub fn monitor_key() -> (String, alloy::primitives::Address) {
    let signer = crate::chain::DevChain::key(MONITOR_KEY_INDEX);
    (hex::encode(signer.to_bytes()), signer.address())
}

/// A running monitoring service.
pub struct MonitorProcess {
    child: Option<Child>,
    args: Vec<String>,
    binary: PathBuf,
    log: PathBuf,
    /// Its HTTP API.
    pub api: ApiClient,
}

impl MonitorProcess {
    /// Starts `binary monitor` in `dir` with the hex private key `key` (a funded account),
    /// following `eth_rpc` for the contracts of `deployment`, acting on logs at once
    /// (`--confirmations 0`); waits until its API answers.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        eth_rpc: &str,
        deployment: &Path,
        key: &str,
        extra: &[&str],
    ) -> Result<MonitorProcess, TestnetError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| TestnetError::Setup(format!("{}: {e}", dir.display())))?;
        let port = free_port()?;
        let mut args: Vec<String> = vec![
            "monitor".into(),
            "--datadir".into(),
            dir.join("data").display().to_string(),
            "--eth-rpc".into(),
            eth_rpc.into(),
            "--deployment".into(),
            deployment.display().to_string(),
            "--api-address".into(),
            format!("127.0.0.1:{port}"),
            "--confirmations".into(),
            "0".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut m = MonitorProcess {
            child: None,
            args,
            binary: binary.to_owned(),
            log: dir.join("monitor.log"),
            api: ApiClient::new(format!("http://127.0.0.1:{port}")),
        };
        m.spawn(key)?;
        m.wait_ready().await?;
        Ok(m)
    }

    fn spawn(&mut self, key: &str) -> Result<(), TestnetError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| TestnetError::Setup(format!("{}: {e}", self.log.display())))?;
        let err = log
            .try_clone()
            .map_err(|e| TestnetError::Setup(e.to_string()))?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .env("SMARTRAIDEN_PRIVATE_KEY", key)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| TestnetError::Setup(format!("starting the monitor: {e}")))?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<(), TestnetError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = self.api.get("monitor/info").await {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(TestnetError::Setup(format!(
                    "the monitor exited ({status}): {}",
                    self.log_tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(TestnetError::Setup(format!(
                    "the monitor did not answer: {}",
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same data directory and port.
    pub async fn restart(&mut self, key: &str) -> Result<(), TestnetError> {
        self.kill();
        self.spawn(key)?;
        self.wait_ready().await
    }

    /// The monitor of testnet `net` in `dir`: the dev chain's account
    /// [`MONITOR_KEY_INDEX`] (no node uses it), given 1,000 ether first.
    pub async fn start_for(
        net: &Testnet,
        binary: &Path,
        dir: &Path,
        extra: &[&str],
    ) -> Result<MonitorProcess, TestnetError> {
        let (key, address) = monitor_key();
        let ether = alloy::primitives::U256::from(10u64).pow(alloy::primitives::U256::from(21u64));
        net.chain
            .set_balance(address, ether)
            .await
            .map_err(|e| TestnetError::Setup(format!("funding the monitor: {e}")))?;
        MonitorProcess::start(
            binary,
            dir,
            net.chain.url(),
            &net.info().deployment,
            &key,
            extra,
        )
        .await
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        let start = bytes.len().saturating_sub(4000);
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }
}

impl Drop for MonitorProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- monitor log ---\n{}", self.log_tail());
        }
        self.kill();
    }
}
