//! A testnet inside a [`LanLab`]: anvil and Prosody in the infra namespace, the contracts
//! deployed, funded accounts, and one `smartraiden run` per node namespace with its LAN
//! transport listening on the node's LAN address. The nodes reach the chain and the XMPP server
//! through the lab's router until [`LanLab::cut_internet`] (or `cut_internet_of`) takes the
//! route away; this process reaches each node's REST API through a portal.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use log::info;

use super::client::ApiClient;
use super::netns::LanLab;
use super::network::{NodeArgs, deploy_into, node_args, provision_node};
use super::{TestnetError, io};
use crate::chain::{Deployment, DevChain, DevChainOptions};
use crate::transport::xmpp::{ProsodyOptions, ProsodyServer};

/// The REST port of every node, on the loopback of its own namespace.
const API_PORT: u16 = 5001;
/// The LAN port of every node, on its LAN address.
const LAN_PORT: u16 = 40001;

/// How a node finds its LAN peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// mDNS on the node's LAN interface (`--mdns-interface`), which works without a route.
    Mdns,
    /// No mDNS (`--no-mdns`): peers come from `POST /api/1/updatenodes`.
    Manual,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct LanNetOptions {
    /// How each node finds its peers (one entry per node).
    pub discovery: Vec<Discovery>,
    /// Directory of the deployment, Prosody's files and one folder per node.
    pub dir: PathBuf,
    /// The `smartraiden` binary.
    pub binary: PathBuf,
    /// Test tokens (smallest units) each node receives.
    pub tokens_per_node: u64,
    /// More arguments for every `smartraiden run`.
    pub extra_node_args: Vec<String>,
    /// The nodes' `RUST_LOG` when the environment sets none.
    pub node_log: String,
}

impl LanNetOptions {
    /// Nodes finding their peers as `discovery` says, in `dir`, running `binary`.
    pub fn new(
        discovery: Vec<Discovery>,
        dir: impl Into<PathBuf>,
        binary: impl Into<PathBuf>,
    ) -> Self {
        LanNetOptions {
            discovery,
            dir: dir.into(),
            binary: binary.into(),
            tokens_per_node: 1_000_000,
            extra_node_args: Vec::new(),
            node_log: "info".into(),
        }
    }
}

struct LanNode {
    child: Option<Child>,
    args: Vec<OsString>,
    log: PathBuf,
    address: String,
    api: ApiClient,
    portal: SocketAddr,
    lan: SocketAddr,
}

/// A running testnet in a LAN lab. Dropping it kills the nodes (printing the end of their
/// logs first during a panic), then the lab, which removes the servers and the namespaces.
pub struct LanNet {
    // Declared first, dropped first: it kills whatever still runs in its namespaces; the
    // server handles then only reap their processes.
    /// The namespaces (cut and restore routes, portals).
    pub lab: LanLab,
    /// The chain, in the infra namespace (mine blocks; this process reaches it via a portal).
    pub chain: DevChain,
    /// The XMPP server, in the infra namespace.
    pub prosody: ProsodyServer,
    /// The deployed contracts.
    pub deployment: Deployment,
    token: String,
    nodes: Vec<LanNode>,
    options: LanNetOptions,
}

impl LanNet {
    /// Creates the lab, starts anvil and Prosody in it, deploys, funds one fresh account per
    /// node, starts the nodes in their namespaces and waits until every REST API answers.
    pub async fn start(options: LanNetOptions) -> Result<LanNet, TestnetError> {
        let dir = std::path::absolute(&options.dir).map_err(io("resolving", &options.dir))?;
        std::fs::create_dir_all(&dir).map_err(io("creating the testnet directory", &dir))?;
        if !options.binary.is_file() {
            return Err(TestnetError::Setup(format!(
                "node binary {} not found",
                options.binary.display()
            )));
        }
        let lab = LanLab::create(options.discovery.len())?;
        info!("starting anvil and prosody in {}", lab.infra_ns());
        let chain = lab
            .start_anvil(DevChainOptions {
                log_file: Some(dir.join("anvil.log")),
                ..DevChainOptions::default()
            })
            .await?;
        let prosody_dir = dir.join("prosody");
        std::fs::create_dir_all(&prosody_dir).map_err(io("creating", &prosody_dir))?;
        let prosody = lab.start_prosody(
            "smartraiden.test",
            ProsodyOptions {
                dir: Some(prosody_dir),
                ..ProsodyOptions::default()
            },
        )?;
        let (deployer, deployment, deployment_file) = deploy_into(&chain, &dir).await?;
        let token = crate::chain::convert::address(deployment.token).to_checksum();

        let mut nodes = Vec::with_capacity(options.discovery.len());
        for (i, discovery) in options.discovery.iter().enumerate() {
            let node_dir = dir.join("nodes").join((i + 1).to_string());
            let address = provision_node(
                &chain,
                &deployer,
                &deployment,
                &prosody,
                &node_dir,
                options.tokens_per_node,
            )
            .await?;
            let mut args = node_args(&NodeArgs {
                node_dir: &node_dir,
                eth_rpc: chain.url(),
                deployment_file: &deployment_file,
                prosody: &prosody,
                api_address: &format!("127.0.0.1:{API_PORT}"),
            });
            let lan = SocketAddr::from((lab.node_ip(i), LAN_PORT));
            args.extend(["--lan-listen".into(), lan.to_string().into()]);
            match discovery {
                Discovery::Mdns => {
                    args.extend(["--mdns-interface".into(), lab.node_interface(i).into()])
                }
                Discovery::Manual => args.push("--no-mdns".into()),
            }
            args.extend(options.extra_node_args.iter().map(OsString::from));
            let portal =
                lab.portal(lab.node_ns(i), SocketAddr::from(([127, 0, 0, 1], API_PORT)))?;
            nodes.push(LanNode {
                child: None,
                args,
                log: node_dir.join("node.log"),
                address: address.to_checksum(),
                api: ApiClient::new(format!("http://{portal}")),
                portal,
                lan,
            });
        }
        let mut net = LanNet {
            lab,
            chain,
            prosody,
            deployment,
            token,
            nodes,
            options: LanNetOptions { dir, ..options },
        };
        info!("starting {} nodes", net.nodes.len());
        for i in 0..net.nodes.len() {
            net.spawn_node(i)?;
        }
        for i in 0..net.nodes.len() {
            net.wait_node_ready(i).await?;
        }
        Ok(net)
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
        &self.nodes[i].address
    }

    /// Where node `i`'s LAN transport listens (`ip:port` on the LAN).
    pub fn lan(&self, i: usize) -> SocketAddr {
        self.nodes[i].lan
    }

    /// The token every node holds, checksummed.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The directory of the deployment and the nodes' folders.
    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// The end of node `i`'s log.
    pub fn log_tail(&self, i: usize, bytes: usize) -> String {
        super::network::log_tail(&self.nodes[i].log, bytes)
    }

    /// Node `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// Kills node `i` at once with SIGKILL (`kill -9`), as a crash would, and reaps it.
    pub fn kill_node(&mut self, i: usize) -> Result<(), TestnetError> {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            child
                .wait()
                .map_err(io("waiting for a node", &self.nodes[i].log))?;
        }
        Ok(())
    }

    /// Starts node `i` again on its data directory (in its namespace, with the same flags)
    /// and waits until its API answers.
    pub async fn start_node(&mut self, i: usize) -> Result<(), TestnetError> {
        // A fresh client: pooled connections through the portal died with the old process.
        self.nodes[i].api = ApiClient::new(format!("http://{}", self.nodes[i].portal));
        self.spawn_node(i)?;
        self.wait_node_ready(i).await
    }

    fn spawn_node(&mut self, i: usize) -> Result<(), TestnetError> {
        let node = &self.nodes[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(io("opening", &node.log))?;
        let log_err = log.try_clone().map_err(io("opening", &node.log))?;
        let mut cmd = self
            .lab
            .command_in(self.lab.node_ns(i), &self.options.binary, &node.args);
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", &self.options.node_log);
        }
        let child = cmd.spawn().map_err(io("starting", &self.options.binary))?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    async fn wait_node_ready(&mut self, i: usize) -> Result<(), TestnetError> {
        let n = &mut self.nodes[i];
        super::network::wait_node_ready(i, &n.api, &n.address, &mut n.child, &n.log).await
    }
}

impl Drop for LanNet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.nodes.len() {
                eprintln!(
                    "----- node {} ({}) log tail -----\n{}",
                    i + 1,
                    self.nodes[i].address,
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
