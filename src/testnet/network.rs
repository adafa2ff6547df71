//! Starting and stopping a local testnet: anvil, Prosody, the contracts, funded node accounts
//! and `smartraiden run` processes.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use log::info;

use super::client::ApiClient;
use super::credentials::{NodeCredentials, write_node_credentials};
use super::info::{NodeInfo, TestnetInfo};
use super::rpc_gate::RpcGate;
use super::{TestnetError, io};
use crate::chain::bindings::StandardToken;
use crate::chain::deploy::deploy;
use crate::chain::{ChainClient, DeployOptions, Deployment, DevChain, DevChainOptions};
use crate::primitives::Address;
use crate::transport::xmpp::{ProsodyOptions, ProsodyServer};

/// How long a node may take from spawn to answering its REST API.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(60);

/// What to start.
#[derive(Debug, Clone)]
pub struct TestnetOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// Directory of `testnet.json`, the deployment, the servers' files and one folder per node.
    pub dir: PathBuf,
    /// The `smartraiden` binary the nodes run.
    pub binary: PathBuf,
    /// Leave everything running when the [`Testnet`] is dropped (`integration/testnet up`).
    pub detached: bool,
    /// REST port of node 1 (node i listens on `base + i - 1`); `None` picks free ports.
    pub api_base_port: Option<u16>,
    /// Fixed fee every node charges per mediated transfer.
    pub fee: u64,
    /// Mine an empty block every this many seconds besides one per transaction.
    pub block_time: Option<u64>,
    /// Test tokens (smallest units) each node receives.
    pub tokens_per_node: u64,
    /// More arguments for every `smartraiden run`.
    pub extra_node_args: Vec<String>,
    /// Have Prosody log every stanza whole (tests that decode the bytes on the wire).
    pub xmpp_stanza_log: bool,
    /// The nodes' `RUST_LOG` when the environment sets none.
    pub node_log: String,
    /// Put an [`RpcGate`] between the nodes and anvil (tests that take the RPC down); only
    /// for in-process testnets, the gate lives as long as the [`Testnet`].
    pub rpc_gate: bool,
    /// Key-bound logins (the verifier runs beside Prosody) and TLS with a private CA, instead
    /// of stored passwords over plain TCP (the verifier lives as
    /// long as the [`Testnet`] unless it is detached).
    pub secure_xmpp: bool,
    /// XMPP servers: 1, or 2 federating servers (`xmpp-a.test` on 127.0.0.2 and `xmpp-b.test`
    /// on 127.0.0.3, names from a private hosts file) with the later half of the nodes on the
    /// second.
    pub servers: usize,
    /// With two servers: even-numbered nodes on server B instead of the later half (every
    /// channel of a chain of nodes then crosses between the servers, as in the bench).
    pub alternate_servers: bool,
}

impl TestnetOptions {
    /// `nodes` nodes in `dir`, running `binary`, on free ports, killed on drop.
    pub fn new(nodes: usize, dir: impl Into<PathBuf>, binary: impl Into<PathBuf>) -> Self {
        TestnetOptions {
            nodes,
            dir: dir.into(),
            binary: binary.into(),
            detached: false,
            api_base_port: None,
            fee: 0,
            block_time: None,
            tokens_per_node: 1_000_000,
            extra_node_args: Vec::new(),
            xmpp_stanza_log: false,
            node_log: "info".into(),
            rpc_gate: false,
            secure_xmpp: false,
            servers: 1,
            alternate_servers: false,
        }
    }
}

/// One node process.
struct NodeProcess {
    child: Option<Child>,
    args: Vec<OsString>,
    log: PathBuf,
    info: NodeInfo,
    api: ApiClient,
}

/// A running testnet. Dropping it kills every process it started, unless it was started
/// detached; when dropped during a panic it prints the end of every node's log first.
pub struct Testnet {
    /// The chain (mine blocks, read balances).
    pub chain: DevChain,
    /// The XMPP server (kill and restart it); server A with [`TestnetOptions::servers`] = 2.
    pub prosody: ProsodyServer,
    /// Server B, federating with A, with [`TestnetOptions::servers`] = 2.
    pub prosody_b: Option<ProsodyServer>,
    /// The deployed contracts.
    pub deployment: Deployment,
    /// The gate between the nodes and anvil, when asked for.
    pub rpc_gate: Option<RpcGate>,
    /// The key-bound login verifier, with [`TestnetOptions::secure_xmpp`].
    pub verifier: Option<super::xmpp_security::VerifierProcess>,
    nodes: Vec<NodeProcess>,
    options: TestnetOptions,
    info: TestnetInfo,
}

impl Testnet {
    /// Starts anvil and Prosody, deploys, funds `options.nodes` fresh accounts, starts the
    /// nodes, waits until every REST API answers, and writes `testnet.json`.
    pub async fn start(options: TestnetOptions) -> Result<Self, TestnetError> {
        let dir = absolute(&options.dir)?;
        std::fs::create_dir_all(&dir).map_err(io("creating the testnet directory", &dir))?;
        if !options.binary.is_file() {
            return Err(TestnetError::Setup(format!(
                "node binary {} not found (build it with `cargo build --release`)",
                options.binary.display()
            )));
        }

        info!("starting anvil");
        let chain = DevChain::start_with(DevChainOptions {
            block_time: options.block_time,
            log_file: Some(dir.join("anvil.log")),
            own_process_group: options.detached,
        })
        .await?;
        info!("starting prosody");
        let prosody_dir = dir.join("prosody");
        std::fs::create_dir_all(&prosody_dir).map_err(io("creating", &prosody_dir))?;
        let federated = options.servers == 2;
        let domains: &[&str] = if federated {
            &["xmpp-a.test", "xmpp-b.test"]
        } else {
            &["smartraiden.test"]
        };
        let (verifier, mut secure) = if options.secure_xmpp {
            let (verifier, secure) = super::xmpp_security::secure_options(
                &dir,
                &options.binary,
                domains,
                options.detached,
            )?;
            (Some(verifier), secure)
        } else {
            (None, vec![ProsodyOptions::default(); domains.len()])
        };
        if federated {
            let hosts = super::xmpp_security::write_federation_hosts(&dir)?;
            for (o, ip) in secure.iter_mut().zip([[127, 0, 0, 2], [127, 0, 0, 3]]) {
                o.federation_hosts = Some(hosts.clone());
                o.interface = ip.into();
            }
        }
        let mut started = Vec::new();
        for (i, (domain, secure)) in domains.iter().zip(secure).enumerate() {
            let server_dir = if i == 0 {
                prosody_dir.clone()
            } else {
                dir.join("prosody-b")
            };
            started.push(ProsodyServer::start_with(
                domain,
                ProsodyOptions {
                    dir: Some(server_dir),
                    own_process_group: options.detached,
                    stanza_log: options.xmpp_stanza_log,
                    ..secure
                },
            )?);
        }
        let prosody_b = if federated { started.pop() } else { None };
        let prosody = started.pop().expect("one server");

        let rpc_gate = if options.rpc_gate {
            let upstream = chain
                .url()
                .trim_start_matches("http://")
                .parse()
                .map_err(|e| TestnetError::Setup(format!("anvil's URL {}: {e}", chain.url())))?;
            Some(
                RpcGate::start(upstream)
                    .await
                    .map_err(|e| TestnetError::Setup(format!("RPC gate: {e}")))?,
            )
        } else {
            None
        };
        let node_rpc = rpc_gate
            .as_ref()
            .map_or_else(|| chain.url().to_owned(), RpcGate::url);

        info!("deploying the contracts");
        let (deployer, deployment, deployment_file) = deploy_into(&chain, &dir).await?;

        let mut nodes = Vec::with_capacity(options.nodes);
        for n in 1..=options.nodes {
            let node_dir = dir.join("nodes").join(n.to_string());
            // With two servers, the later half of the nodes log in to server B.
            let on_b = if options.alternate_servers {
                n % 2 == 0
            } else {
                n > options.nodes.div_ceil(2)
            };
            let server = match &prosody_b {
                Some(b) if on_b => b,
                _ => &prosody,
            };
            let address = provision_node(
                &chain,
                &deployer,
                &deployment,
                server,
                &node_dir,
                options.tokens_per_node,
            )
            .await?;

            let port = match options.api_base_port {
                Some(base) => base + (n as u16 - 1),
                None => free_port()?,
            };
            let datadir = node_dir.join("data");
            let mut args = node_args(&NodeArgs {
                node_dir: &node_dir,
                eth_rpc: &node_rpc,
                deployment_file: &deployment_file,
                prosody: server,
                api_address: &format!("127.0.0.1:{port}"),
            });
            // The LAN transport listens on loopback; peers are given by hand (mDNS off: the
            // nodes share one host and must not announce themselves on its networks).
            let lan = format!("127.0.0.1:{}", free_port()?);
            args.extend([
                "--lan-listen".into(),
                lan.clone().into(),
                "--no-mdns".into(),
            ]);
            args.extend(["--fee".into(), options.fee.to_string().into()]);
            args.extend(options.extra_node_args.iter().map(OsString::from));
            let log = node_dir.join("node.log");
            let restart = format!(
                "setsid -f {} {} >> {} 2>&1 < /dev/null",
                shell_quote(options.binary.as_os_str()),
                args.iter()
                    .map(|a| shell_quote(a))
                    .collect::<Vec<_>>()
                    .join(" "),
                shell_quote(log.as_os_str()),
            );
            let api_url = format!("http://127.0.0.1:{port}");
            nodes.push(NodeProcess {
                child: None,
                args,
                log,
                api: ApiClient::new(api_url.clone()),
                info: NodeInfo {
                    address: address.to_checksum(),
                    api_url,
                    datadir,
                    pid: 0,
                    restart,
                    lan: Some(lan),
                },
            });
        }
        let info = TestnetInfo {
            eth_rpc: chain.url().to_owned(),
            xmpp: prosody.addr().to_string(),
            xmpp_domain: prosody.domain().to_owned(),
            registry: format!("{:#x}", deployment.registry),
            token: crate::chain::convert::address(deployment.token).to_checksum(),
            deployment: deployment_file,
            anvil_pid: chain.pid().unwrap_or(0),
            prosody_pid: prosody.pid().unwrap_or(0),
            server_pids: prosody_b
                .iter()
                .filter_map(ProsodyServer::pid)
                .chain(verifier.iter().filter_map(|v| v.pid()))
                .collect(),
            nodes: nodes.iter().map(|n| n.info.clone()).collect(),
        };
        let mut testnet = Testnet {
            chain,
            prosody,
            prosody_b,
            deployment,
            rpc_gate,
            verifier,
            nodes,
            options: TestnetOptions { dir, ..options },
            info,
        };
        info!("starting {} nodes", testnet.nodes.len());
        for i in 0..testnet.nodes.len() {
            testnet.spawn_node(i)?;
        }
        for i in 0..testnet.nodes.len() {
            testnet.wait_node_ready(i).await?;
        }
        testnet.write_info()?;
        Ok(testnet)
    }

    /// What `testnet.json` says.
    pub fn info(&self) -> &TestnetInfo {
        &self.info
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The REST client of node `i` (0-based).
    pub fn api(&self, i: usize) -> &ApiClient {
        &self.nodes[i].api
    }

    /// The checksummed address of node `i`.
    pub fn address(&self, i: usize) -> &str {
        &self.nodes[i].info.address
    }

    /// Where node `i`'s LAN transport listens, `ip:port`.
    pub fn lan(&self, i: usize) -> &str {
        self.nodes[i]
            .info
            .lan
            .as_deref()
            .expect("every local node listens on the LAN")
    }

    /// The token every node holds, checksummed.
    pub fn token(&self) -> &str {
        &self.info.token
    }

    /// Opens a channel from node `x` to node `y` with deposits `dx` and `dy` (see
    /// [`ApiClient::open_funded`], waiting up to a minute for `y` to see it); its id.
    pub async fn open_between(
        &self,
        x: usize,
        y: usize,
        dx: u64,
        dy: u64,
        settle_timeout: u64,
    ) -> Result<String, TestnetError> {
        let wait = Duration::from_secs(60);
        self.api(x)
            .open_funded(
                self.api(y),
                self.token(),
                self.address(y),
                dx,
                dy,
                settle_timeout,
                wait,
            )
            .await
    }

    /// The end of node `i`'s log.
    pub fn log_tail(&self, i: usize, bytes: usize) -> String {
        log_tail(&self.nodes[i].log, bytes)
    }

    /// The path of node `i`'s log.
    pub fn log_path(&self, i: usize) -> &Path {
        &self.nodes[i].log
    }

    /// Kills node `i` at once (SIGKILL), as a crash would.
    pub fn kill_node(&mut self, i: usize) -> Result<(), TestnetError> {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            child
                .wait()
                .map_err(io("waiting for a node", &self.nodes[i].log))?;
        }
        self.nodes[i].info.pid = 0;
        self.write_info()
    }

    /// Starts node `i` again on its data directory and waits until its API answers.
    pub async fn start_node(&mut self, i: usize) -> Result<(), TestnetError> {
        self.start_node_with(i, &[]).await
    }

    /// [`Testnet::start_node`] with extra environment variables for this start only (e.g.
    /// `SMARTRAIDEN_CRASH_AT`).
    pub async fn start_node_with(
        &mut self,
        i: usize,
        env: &[(&str, &str)],
    ) -> Result<(), TestnetError> {
        self.spawn_node_with(i, env)?;
        self.wait_node_ready(i).await?;
        self.write_info()
    }

    /// Whether node `i`'s process is alive.
    pub fn is_running(&mut self, i: usize) -> bool {
        matches!(
            self.nodes[i].child.as_mut().map(|c| c.try_wait()),
            Some(Ok(None))
        )
    }

    /// Waits up to `timeout` for node `i`'s process to exit; its exit status if it did.
    pub async fn wait_exit(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.nodes[i].child.as_mut()?.try_wait().ok().flatten();
            if let Some(status) = status {
                self.nodes[i].child = None;
                self.nodes[i].info.pid = 0;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills node `i` and starts it again.
    pub async fn restart_node(&mut self, i: usize) -> Result<(), TestnetError> {
        self.kill_node(i)?;
        self.start_node(i).await
    }

    /// Leaves every process running after this handle is gone; the final `testnet.json`.
    pub fn detach(mut self) -> Result<TestnetInfo, TestnetError> {
        self.chain.detach();
        self.prosody.detach();
        if let Some(b) = &mut self.prosody_b {
            b.detach();
        }
        if let Some(v) = &mut self.verifier {
            v.detach();
        }
        for n in &mut self.nodes {
            n.child = None;
        }
        self.write_info()?;
        Ok(self.info.clone())
    }

    fn spawn_node(&mut self, i: usize) -> Result<(), TestnetError> {
        self.spawn_node_with(i, &[])
    }

    fn spawn_node_with(&mut self, i: usize, env: &[(&str, &str)]) -> Result<(), TestnetError> {
        let node = &mut self.nodes[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(io("opening", &node.log))?;
        let log_err = log.try_clone().map_err(io("opening", &node.log))?;
        let mut cmd = Command::new(&self.options.binary);
        cmd.args(&node.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", &self.options.node_log);
        }
        cmd.envs(env.iter().copied());
        if self.options.detached {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(io("starting", &self.options.binary))?;
        node.info.pid = child.id();
        node.child = Some(child);
        self.info.nodes[i].pid = node.info.pid;
        Ok(())
    }

    async fn wait_node_ready(&mut self, i: usize) -> Result<(), TestnetError> {
        let n = &mut self.nodes[i];
        wait_node_ready(i, &n.api, &n.info.address, &mut n.child, &n.log).await
    }

    fn write_info(&mut self) -> Result<(), TestnetError> {
        self.info.nodes = self.nodes.iter().map(|n| n.info.clone()).collect();
        self.info.write(&self.options.dir)
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.nodes.len() {
                eprintln!(
                    "----- node {} ({}) log tail -----\n{}",
                    i + 1,
                    self.nodes[i].info.address,
                    self.log_tail(i, 6000)
                );
            }
        }
        for n in &mut self.nodes {
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The last `bytes` of a node's log.
pub(super) fn log_tail(log: &Path, bytes: usize) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let from = text.len().saturating_sub(bytes);
    String::from_utf8_lossy(&text[from..]).into_owned()
}

/// Waits until node `i` (0-based) answers its REST API as `address`; fails at once if its
/// process exits, or after [`NODE_START_TIMEOUT`], with the end of its `log`.
pub(super) async fn wait_node_ready(
    i: usize,
    api: &ApiClient,
    address: &str,
    child: &mut Option<Child>,
    log: &Path,
) -> Result<(), TestnetError> {
    let deadline = Instant::now() + NODE_START_TIMEOUT;
    loop {
        if let Ok(answered) = api.address().await {
            if !answered.eq_ignore_ascii_case(address) {
                return Err(TestnetError::Setup(format!(
                    "{} answers as {answered}, expected node {} ({address})",
                    api.base(),
                    i + 1,
                )));
            }
            return Ok(());
        }
        if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            *child = None;
            return Err(TestnetError::Setup(format!(
                "node {} exited during start-up ({status}); end of {}:\n{}",
                i + 1,
                log.display(),
                log_tail(log, 2000)
            )));
        }
        if Instant::now() >= deadline {
            return Err(TestnetError::Setup(format!(
                "node {} did not answer on {} within {NODE_START_TIMEOUT:?}; end of {}:\n{}",
                i + 1,
                api.base(),
                log.display(),
                log_tail(log, 2000)
            )));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Deploys the contracts with anvil's first key and writes `dir/deployment.json`: the
/// deployer's client, the deployment and the file.
pub(super) async fn deploy_into(
    chain: &DevChain,
    dir: &Path,
) -> Result<(ChainClient, Deployment, PathBuf), TestnetError> {
    let deployer = chain.client(DevChain::key(0)).await?;
    let deployment = deploy(&deployer, &DeployOptions::default()).await?;
    let deployment_file = dir.join("deployment.json");
    deployment
        .write(&deployment_file)
        .map_err(|e| TestnetError::Setup(format!("writing the deployment: {e}")))?;
    Ok((deployer, deployment, deployment_file))
}

/// Writes fresh credentials into `node_dir`, registers the node with `prosody`, and gives its
/// account ether and `tokens` test tokens; the node's address.
pub(super) async fn provision_node(
    chain: &DevChain,
    deployer: &ChainClient,
    deployment: &Deployment,
    prosody: &ProsodyServer,
    node_dir: &Path,
    tokens: u64,
) -> Result<Address, TestnetError> {
    let NodeCredentials { key, xmpp_password } = write_node_credentials(node_dir)?;
    let address = key.address();
    if !prosody.key_bound() {
        prosody.register(&address.to_lower_hex(), &xmpp_password)?;
    }
    let alloy_address = crate::chain::convert::eth_address(address);
    chain
        .set_balance(alloy_address, U256::from(10u64).pow(U256::from(21u64)))
        .await?;
    let token = StandardToken::new(deployment.token, deployer.provider());
    deployer
        .send(token.transfer(alloy_address, U256::from(tokens)))
        .await?;
    Ok(address)
}

/// What [`node_args`] needs.
pub(super) struct NodeArgs<'a> {
    /// The folder [`provision_node`] wrote the credentials into; the data directory is
    /// `data` inside it.
    pub node_dir: &'a Path,
    /// The chain's URL as the node reaches it.
    pub eth_rpc: &'a str,
    /// `deployment.json`.
    pub deployment_file: &'a Path,
    /// The XMPP server.
    pub prosody: &'a ProsodyServer,
    /// Where the REST API listens (`ip:port`).
    pub api_address: &'a str,
}

/// The `smartraiden run` arguments every testnet node has: files, chain, XMPP server, REST
/// address, and no confirmations (anvil does not reorganise).
pub(super) fn node_args(a: &NodeArgs<'_>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "run".into(),
        "--datadir".into(),
        a.node_dir.join("data").into(),
    ];
    args.extend(["--keystore".into(), a.node_dir.join("keystore.json").into()]);
    args.extend(["--password-file".into(), a.node_dir.join("password").into()]);
    args.extend(["--eth-rpc".into(), a.eth_rpc.into()]);
    args.extend(["--deployment".into(), a.deployment_file.into()]);
    args.extend(["--xmpp-server".into(), a.prosody.addr().to_string().into()]);
    args.extend(["--xmpp-domain".into(), a.prosody.domain().into()]);
    if !a.prosody.key_bound() {
        args.extend([
            "--xmpp-password-file".into(),
            a.node_dir.join("xmpp-password").into(),
        ]);
    }
    match a.prosody.tls_ca() {
        Some(ca) => args.extend(["--xmpp-ca-file".into(), ca.into()]),
        // The local testnet's Prosody listens on loopback only.
        None => args.push("--xmpp-plaintext".into()),
    }
    args.extend(["--api-address".into(), a.api_address.into()]);
    // anvil does not reorganise: act on a log as soon as it is mined.
    args.extend(["--confirmations".into(), "0".into()]);
    args
}

/// Stops the testnet described by `<dir>/testnet.json`: the nodes (also ones restarted by
/// hand), then Prosody and anvil; SIGTERM first, SIGKILL after 10 s. Returns what it stopped.
pub fn down(dir: &Path) -> Result<Vec<String>, TestnetError> {
    let info = TestnetInfo::read(dir)?;
    let mut stopped = Vec::new();
    let mut node_pids = Vec::new();
    for (i, n) in info.nodes.iter().enumerate() {
        let mut pids = processes_with_arg(&n.datadir);
        if n.pid != 0
            && cmdline(n.pid).is_some_and(|c| c.contains("smartraiden"))
            && !pids.contains(&n.pid)
        {
            pids.push(n.pid);
        }
        for pid in pids {
            node_pids.push(pid);
            stopped.push(format!("node {} {} (pid {pid})", i + 1, n.address));
        }
    }
    terminate(&node_pids);
    let mut servers = Vec::new();
    if cmdline(info.prosody_pid).is_some_and(|c| c.contains("prosody")) {
        servers.push(info.prosody_pid);
        stopped.push(format!("prosody (pid {})", info.prosody_pid));
    }
    for pid in &info.server_pids {
        if cmdline(*pid).is_some_and(|c| c.contains("prosody") || c.contains("xmpp-auth")) {
            servers.push(*pid);
            stopped.push(format!("server (pid {pid})"));
        }
    }
    if cmdline(info.anvil_pid).is_some_and(|c| c.contains("anvil")) {
        servers.push(info.anvil_pid);
        stopped.push(format!("anvil (pid {})", info.anvil_pid));
    }
    terminate(&servers);
    Ok(stopped)
}

/// SIGTERM to each pid, then SIGKILL to those still alive after 10 s.
fn terminate(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    signal("-TERM", pids);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if pids.iter().all(|p| cmdline(*p).is_none()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let alive: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| cmdline(*p).is_some())
        .collect();
    log::warn!("still running after SIGTERM, killing: {alive:?}");
    signal("-KILL", &alive);
}

fn signal(sig: &str, pids: &[u32]) {
    let _ = Command::new("kill")
        .arg(sig)
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether `pid` is a running process: gone and zombie (exited, not yet reaped by its parent,
/// which can take long or never happen in a container without an init) both count as not.
pub fn is_running(pid: u32) -> bool {
    cmdline(pid).is_some()
}

/// The command line of a live process (arguments joined by spaces); `None` if it is gone or
/// a zombie.
fn cmdline(pid: u32) -> Option<String> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state letter follows the parenthesised command name.
    let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
    if state == 'Z' || state == 'X' {
        return None;
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// Processes whose arguments include `path` exactly (a node's `--datadir`).
pub(super) fn processes_with_arg(path: &Path) -> Vec<u32> {
    let want = path.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|raw| raw.split(|b| *b == 0).any(|arg| arg == want))
                && cmdline(*pid).is_some()
        })
        .collect()
}

fn absolute(path: &Path) -> Result<PathBuf, TestnetError> {
    std::path::absolute(path).map_err(io("resolving", path))
}

/// A loopback port free now (see [`crate::transport::ports::free_loopback_port`]).
pub(super) fn free_port() -> Result<u16, TestnetError> {
    crate::transport::ports::free_loopback_port()
        .map_err(|e| TestnetError::Setup(format!("no free loopback port: {e}")))
}

/// `s` quoted for a POSIX shell.
fn shell_quote(s: &std::ffi::OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
