//! SmartRaiden node binary: `run` a node, `deploy` the contracts, manage `account`s.

use std::path::PathBuf;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use smartraiden::chain::{ChainClient, DeployOptions, deploy::deploy};

/// SmartRaiden: off-chain payment channels for ERC-20 tokens.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: channels on the chain, payments over XMPP, the REST API.
    Run(Box<RunArgs>),
    /// Deploy the registry, secret registry, discovery and a test token; write a deployment JSON.
    Deploy(DeployArgs),
    /// Create or list keystore accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// A local testnet on this machine: anvil, Prosody, the contracts and N nodes.
    #[command(subcommand)]
    Testnet(TestnetCommand),
    /// Channels of a running node, through its REST API.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// A monitoring service: defends delegated channels of nodes that are away (SPEC §8).
    Monitor(Box<MonitorArgs>),
    /// The XMPP server's login verifier for key-bound passwords (SPEC §4): ejabberd extauth
    /// on stdin/stdout, or a local HTTP endpoint for Prosody's mod_auth_smartraiden.
    XmppAuth(XmppAuthArgs),
}

#[derive(Args)]
#[group(required = true, multiple = false, id = "xmpp_auth_mode")]
struct XmppAuthMode {
    /// Speak ejabberd's extauth protocol on stdin/stdout (`extauth_program`).
    #[arg(long)]
    extauth: bool,
    /// Serve `POST /auth` on this address for Prosody's mod_auth_smartraiden.
    #[arg(long)]
    http: Option<std::net::SocketAddr>,
}

#[derive(Args)]
struct XmppAuthArgs {
    #[command(flatten)]
    mode: XmppAuthMode,
    /// Seconds a key-bound password stays valid after the node made it.
    #[arg(long, default_value_t = 300)]
    validity_secs: u64,
    /// Seconds a node's clock may run ahead of the verifier's.
    #[arg(long, default_value_t = 60)]
    max_future_secs: u64,
}

/// The account and chain of a node or the monitor service.
#[derive(Args)]
struct ChainArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// File holding the keystore password (first line).
    #[arg(long, requires = "keystore")]
    password_file: Option<PathBuf>,
    /// Ethereum JSON-RPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    eth_rpc: String,
    /// Deployment JSON written by `smartraiden deploy` (registry, secret registry, chain id).
    #[arg(long)]
    deployment: PathBuf,
}

impl ChainArgs {
    /// The account's key and the deployment.
    fn load(
        &self,
    ) -> Result<(
        smartraiden::crypto::PrivateKey,
        smartraiden::chain::Deployment,
    )> {
        let key = load_key(&self.key, self.password_file.as_ref())?;
        let deployment = smartraiden::chain::Deployment::read(&self.deployment)
            .with_context(|| format!("reading deployment {}", self.deployment.display()))?;
        Ok((key, deployment))
    }
}

#[derive(Args)]
struct MonitorArgs {
    /// Data directory of the service (its own, not a node's).
    #[arg(long, default_value = ".smartraiden-monitor")]
    datadir: PathBuf,
    #[command(flatten)]
    chain: ChainArgs,
    /// HTTP API address.
    #[arg(long, default_value = "127.0.0.1:5100")]
    api_address: std::net::SocketAddr,
    /// Blocks a chain log must be buried under before the service acts on it.
    #[arg(long, default_value_t = 1)]
    confirmations: u64,
    /// Delegations one delegator may hold.
    #[arg(long, default_value_t = 1_000)]
    max_per_delegator: usize,
    /// Blocks after settling becomes allowed before the monitor settles a delegated channel
    /// nobody settled (the participants go first).
    #[arg(long, default_value_t = 20)]
    settle_grace: u64,
}

#[derive(Subcommand)]
enum ChannelCommand {
    /// List the node's channels with their balances and states.
    List {
        /// The node's REST API.
        #[arg(long, default_value = "http://127.0.0.1:5001")]
        api: String,
    },
    /// Close a channel on chain with the partner's latest balance proof; with --wait, follow
    /// the settle window (progress every few seconds) until the node has settled it.
    Close {
        /// The channel identifier (0x…).
        channel: String,
        /// The node's REST API.
        #[arg(long, default_value = "http://127.0.0.1:5001")]
        api: String,
        /// Wait for the settle and show the progress.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
enum TestnetCommand {
    /// Start anvil, Prosody and N funded nodes, detached; write <dir>/testnet.json.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Directory of testnet.json and every file of the testnet.
        #[arg(long, default_value = "integration/.testnet")]
        dir: PathBuf,
        /// REST port of node 1; node i listens on this + i - 1.
        #[arg(long, default_value_t = 5001)]
        api_port: u16,
        /// Fixed fee each node charges per mediated transfer.
        #[arg(long, default_value_t = 0)]
        fee: u64,
        /// Seconds between empty blocks (transactions are mined at once either way); 0: none.
        #[arg(long, default_value_t = 1)]
        block_time: u64,
        /// 2: two federating Prosody servers (xmpp-a.test on 127.0.0.2, xmpp-b.test on
        /// 127.0.0.3), the later half of the nodes on the second; implies --secure-xmpp.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        servers: u8,
        /// Key-bound logins (a verifier beside Prosody) over TLS with a private CA the testnet
        /// makes (<dir>/ca/ca.pem), instead of stored passwords over plain TCP.
        #[arg(long)]
        secure_xmpp: bool,
    },
    /// Stop every process of the testnet in <dir> (also nodes restarted by hand).
    Down {
        /// Directory of testnet.json.
        #[arg(long, default_value = "integration/.testnet")]
        dir: PathBuf,
    },
    /// Throughput and latency on a fresh four-node testnet of its own (A–B–C–D); prints a
    /// Markdown table and writes JSON.
    Bench {
        /// Small counts: checks the tool in seconds; the figures mean little.
        #[arg(long)]
        quick: bool,
        /// Direct transfers stored before the "after history" runs (default: 100,000; 0 in --quick).
        #[arg(long)]
        history: Option<usize>,
        /// Where to write the JSON report.
        #[arg(long, default_value = "integration/bench.json")]
        out: PathBuf,
        /// Only the transfer runs whose name contains this text (e.g. "direct", "A→B→C,"),
        /// for profiling one of them; the limits are still measured.
        #[arg(long)]
        only: Option<String>,
        /// Run the testnet in this directory and keep it (node logs, stores) instead of a
        /// temporary one; set RUST_LOG for the nodes' log level.
        #[arg(long)]
        keep_dir: Option<PathBuf>,
        /// 2: two federating Prosody servers (xmpp-a.test on 127.0.0.2, xmpp-b.test on
        /// 127.0.0.3) with A, C on one and B, D on the other, so every hop crosses servers.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        servers: u8,
        /// The mediators B and C run with a monitor (`smartraiden monitor` on this testnet):
        /// each forwards a mediated transfer only once the monitor holds the payer's proof.
        #[arg(long)]
        monitor: bool,
    },
    /// The docker-compose testnet's one-shot setup (docker-compose.yml): deploy the contracts
    /// on the compose chain, make and fund one account per node in <nodes-dir>/<i>, write
    /// deployment.json, testnet.json and the XMPP account list to <out>. Does nothing when the
    /// chain already has the deployment in <out>.
    Provision {
        /// The chain's RPC, as this process reaches it.
        #[arg(long, default_value = "http://anvil:8545")]
        eth_rpc: String,
        /// Node i's keystore and passwords go to <nodes-dir>/<i>.
        #[arg(long)]
        nodes_dir: PathBuf,
        /// Directory of deployment.json, testnet.json and xmpp-accounts.
        #[arg(long)]
        out: PathBuf,
        /// The XMPP server as the nodes reach it (recorded in testnet.json).
        #[arg(long, default_value = "xmpp:5222")]
        xmpp_server: String,
        /// The XMPP domain the nodes log in to.
        #[arg(long, default_value = "smartraiden.test")]
        xmpp_domain: String,
        /// The chain's RPC as the host reaches it (recorded in testnet.json).
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        host_eth_rpc: String,
        /// Each node's REST API as the host reaches it, comma-separated, node 1 first: one
        /// URL per node.
        #[arg(long, value_delimiter = ',', required = true)]
        host_api_urls: Vec<String>,
        /// Test tokens (smallest units) each node receives.
        #[arg(long, default_value_t = 1_000_000)]
        tokens_per_node: u64,
    },
    /// On a fresh five-node testnet: open the seed's channels, pay 50 from node 1 to node 5,
    /// print every channel's balances before and after.
    Seed {
        /// Directory of testnet.json.
        #[arg(long, default_value = "integration/.testnet")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create a new key and write it as an encrypted V3 keystore file into the keystore dir.
    New {
        /// Directory of keystore files.
        #[arg(long, default_value = "keystore")]
        keystore_path: PathBuf,
        /// File holding the new password (first line).
        #[arg(long)]
        password_file: PathBuf,
    },
    /// List the accounts of the keystore files in a directory.
    List {
        /// Directory of keystore files.
        #[arg(long, default_value = "keystore")]
        keystore_path: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Data directory (channel state, history); one node per directory.
    #[arg(long, default_value = ".smartraiden")]
    datadir: PathBuf,
    #[command(flatten)]
    chain: ChainArgs,
    /// XMPP server client port, host:port.
    #[arg(long, default_value = "127.0.0.1:5222")]
    xmpp_server: std::net::SocketAddr,
    /// XMPP domain the node logs in to as <lowercase address>@<domain>.
    #[arg(long, default_value = "localhost")]
    xmpp_domain: String,
    /// File holding a stored XMPP account password (first line); without it the node logs in
    /// with key-bound passwords (signatures by its key; the server runs `xmpp-auth`).
    #[arg(long)]
    xmpp_password_file: Option<PathBuf>,
    /// Plain TCP to the XMPP server, unencrypted (loopback tests and the local testnet only).
    #[arg(long, conflicts_with = "xmpp_ca_file")]
    xmpp_plaintext: bool,
    /// Verify the XMPP server's certificate against the CA certificates in this PEM file
    /// instead of the system's roots.
    #[arg(long)]
    xmpp_ca_file: Option<PathBuf>,
    /// REST API address.
    #[arg(long, default_value = "127.0.0.1:5001")]
    api_address: std::net::SocketAddr,
    /// Fixed fee this node charges per mediated transfer (and assumes others charge).
    #[arg(long, default_value_t = 0)]
    fee: u64,
    /// Blocks a chain log must be buried under before the node acts on it.
    #[arg(long, default_value_t = 1)]
    confirmations: u64,
    /// Seconds a REST call waits for the chain or a `sync` transfer.
    #[arg(long, default_value_t = 120)]
    api_timeout: u64,
    /// Settle timeout (blocks) of channels opened without one.
    #[arg(long, default_value_t = 100)]
    settle_timeout: u64,
    /// Listen for LAN peers (no-internet payments) on this ip:port, e.g. 0.0.0.0:40001.
    #[arg(long)]
    lan_listen: Option<std::net::SocketAddr>,
    /// Do not announce or look for LAN peers by mDNS (peers come from POST /api/1/updatenodes).
    #[arg(long, requires = "lan_listen")]
    no_mdns: bool,
    /// Use only this network interface for mDNS (needed without a default route).
    #[arg(long, requires = "lan_listen")]
    mdns_interface: Option<String>,
    /// The chain's expected time between blocks, in milliseconds (turns settle windows into
    /// time while the chain cannot be reached).
    #[arg(long, default_value_t = 15_000)]
    block_time_ms: u64,
    /// Percent of a channel's settle window the chain may stay unreachable while the node
    /// still accepts payments on it.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100))]
    offline_share: u64,
    /// Milliseconds without word from the chain before the node counts its view stale (it
    /// takes on no lock), and without the chain and the XMPP server before it enters
    /// no-internet mode.
    #[arg(long, default_value_t = 30_000)]
    stale_after_ms: u64,
    /// Host names (besides IP addresses and localhost) the REST API answers to, e.g. a
    /// docker-compose service name; `*` for any. Other names are refused (DNS rebinding).
    #[arg(long, env = "SMARTRAIDEN_API_ALLOW_HOST", value_delimiter = ',')]
    api_allow_host: Vec<String>,
    /// Origins (http://host:port) whose web pages may change the node through the REST API
    /// besides its own page at /ui/.
    #[arg(long, value_delimiter = ',')]
    api_allow_origin: Vec<String>,
    /// File whose first line is a token every REST request must carry as
    /// `Authorization: Bearer <token>` (the page at /ui/ asks for it).
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// Testing only: exit at once, as `kill -9` would, when the node reaches this fault point
    /// (e.g. `send-before:Secret`, `receive:MediatedTransfer`, `chain-after:ChannelClosed`).
    #[arg(long, env = "SMARTRAIDEN_CRASH_AT", hide = true)]
    crash_at: Option<String>,
    /// A monitoring service (`smartraiden monitor`) to hand delegation packages to, e.g.
    /// http://127.0.0.1:5100: it defends our channels while we are offline.
    #[arg(long, env = "SMARTRAIDEN_MONITOR")]
    monitor: Option<String>,
}

/// The signing key: a hex private key, or a keystore file with its password.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct KeyArgs {
    /// Hex private key (0x optional); prefer the environment variable over the command line.
    #[arg(long, env = "SMARTRAIDEN_PRIVATE_KEY", hide_env_values = true)]
    private_key: Option<String>,
    /// Encrypted JSON keystore (Web3 secret storage); the password is read from --password-file.
    #[arg(long)]
    keystore: Option<PathBuf>,
}

#[derive(Args)]
struct DeployArgs {
    /// Ethereum JSON-RPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    eth_rpc: String,
    #[command(flatten)]
    key: KeyArgs,
    /// File holding the keystore password (first line).
    #[arg(long, requires = "keystore")]
    password_file: Option<PathBuf>,
    /// Where to write the deployment JSON.
    #[arg(long, default_value = "deployment.json")]
    out: PathBuf,
    /// Use this existing ERC-20 token instead of deploying a test token.
    #[arg(long)]
    token: Option<Address>,
    /// Punish window in blocks of the token networks.
    #[arg(long, default_value_t = 5)]
    punish_blocks: u64,
    /// Do not create the token's TokenNetwork.
    #[arg(long)]
    no_token_network: bool,
}

fn first_line(path: &std::path::Path, what: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// The node key from `--private-key` or `--keystore` + `--password-file`.
fn load_key(
    key: &KeyArgs,
    password_file: Option<&PathBuf>,
) -> Result<smartraiden::crypto::PrivateKey> {
    if let Some(hex) = &key.private_key {
        return smartraiden::crypto::PrivateKey::from_hex(hex)
            .context("--private-key is not a valid hex private key");
    }
    let keystore = key.keystore.as_ref().expect("clap requires one key source");
    let Some(password_file) = password_file else {
        bail!("--keystore needs --password-file");
    };
    let password = first_line(password_file, "password")?;
    let json = std::fs::read_to_string(keystore)
        .with_context(|| format!("reading keystore {}", keystore.display()))?;
    smartraiden::crypto::keystore::decrypt(&json, &password)
        .with_context(|| format!("opening keystore {}", keystore.display()))
}

async fn run_node(args: RunArgs) -> Result<()> {
    let (key, deployment) = args.chain.load()?;
    let opts = smartraiden::node::NodeOptions {
        datadir: args.datadir,
        eth_rpc: args.chain.eth_rpc,
        deployment,
        xmpp_server: args.xmpp_server,
        xmpp_domain: args.xmpp_domain,
        xmpp_password: match &args.xmpp_password_file {
            Some(file) => Some(first_line(file, "XMPP password")?),
            None => None,
        },
        xmpp_tls: if args.xmpp_plaintext {
            smartraiden::transport::xmpp::tls::XmppTls::Plaintext
        } else {
            smartraiden::transport::xmpp::tls::XmppTls::Verify {
                ca_file: args.xmpp_ca_file,
            }
        },
        api_address: args.api_address,
        fee: smartraiden::primitives::TokenAmount::from(args.fee),
        confirmations: args.confirmations,
        api_timeout: std::time::Duration::from_secs(args.api_timeout),
        default_settle_timeout: args.settle_timeout,
        crash_at: args.crash_at,
        lan: args.lan_listen.map(|listen| smartraiden::node::LanOptions {
            listen,
            mdns: !args.no_mdns,
            mdns_interface: args.mdns_interface,
        }),
        block_time_ms: args.block_time_ms,
        offline_share_percent: args.offline_share,
        stale_after_ms: args.stale_after_ms,
        monitor: args.monitor,
        api_access: smartraiden::api::ApiAccess {
            allow_hosts: args.api_allow_host,
            allow_origins: args.api_allow_origin,
            token: match &args.api_token_file {
                Some(f) => {
                    let token = first_line(f, "API token")?;
                    if token.trim().is_empty() {
                        bail!("the API token file {} is empty", f.display());
                    }
                    Some(token.trim().to_owned())
                }
                None => None,
            },
        },
    };
    smartraiden::node::run(key, opts).await?;
    Ok(())
}

async fn run_monitor(args: MonitorArgs) -> Result<()> {
    let (key, deployment) = args.chain.load()?;
    let opts = smartraiden::monitor::MonitorOptions {
        datadir: args.datadir,
        eth_rpc: args.chain.eth_rpc,
        deployment,
        api_address: args.api_address,
        confirmations: args.confirmations,
        limits: smartraiden::monitor::MonitorLimits {
            per_delegator: args.max_per_delegator,
            settle_grace: smartraiden::primitives::BlockCount(args.settle_grace),
            ..Default::default()
        },
    };
    smartraiden::monitor::run(key, opts).await?;
    Ok(())
}

fn run_account(cmd: AccountCommand) -> Result<()> {
    match cmd {
        AccountCommand::New {
            keystore_path,
            password_file,
        } => {
            let password = first_line(&password_file, "password")?;
            let key = smartraiden::crypto::PrivateKey::random(&mut rand_core::OsRng);
            let json =
                smartraiden::crypto::keystore::encrypt(&key, &password, 18, &mut rand_core::OsRng);
            std::fs::create_dir_all(&keystore_path)?;
            let file = keystore_path.join(format!("UTC--{}", key.address().to_lower_hex()));
            std::fs::write(&file, json).with_context(|| format!("writing {}", file.display()))?;
            println!("{} {}", key.address().to_checksum(), file.display());
            Ok(())
        }
        AccountCommand::List { keystore_path } => {
            let entries = std::fs::read_dir(&keystore_path)
                .with_context(|| format!("reading {}", keystore_path.display()))?;
            for entry in entries {
                let path = entry?.path();
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                if let Some(addr) = v.get("address").and_then(|a| a.as_str()) {
                    match addr.parse::<smartraiden::primitives::Address>() {
                        Ok(a) => println!("{} {}", a.to_checksum(), path.display()),
                        Err(_) => println!("? {}", path.display()),
                    }
                }
            }
            Ok(())
        }
    }
}

fn load_signer(args: &DeployArgs) -> Result<PrivateKeySigner> {
    if let Some(hex) = &args.key.private_key {
        return hex
            .trim()
            .parse::<PrivateKeySigner>()
            .context("--private-key is not a valid hex private key");
    }
    let keystore = args
        .key
        .keystore
        .as_ref()
        .expect("clap requires one key source");
    let Some(password_file) = &args.password_file else {
        bail!("--keystore needs --password-file");
    };
    let password = std::fs::read_to_string(password_file)
        .with_context(|| format!("reading password file {}", password_file.display()))?;
    let password = password.lines().next().unwrap_or("");
    let json = std::fs::read_to_string(keystore)
        .with_context(|| format!("reading keystore {}", keystore.display()))?;
    let key = smartraiden::crypto::keystore::decrypt(&json, password)
        .with_context(|| format!("decrypting keystore {}", keystore.display()))?;
    PrivateKeySigner::from_bytes(&key.secret_bytes().into())
        .context("keystore key is not a valid signing key")
}

async fn run_deploy(args: DeployArgs) -> Result<()> {
    let signer = load_signer(&args)?;
    let client = ChainClient::connect(&args.eth_rpc, signer)
        .await
        .with_context(|| format!("connecting to {}", args.eth_rpc))?;
    let options = DeployOptions {
        punish_block_number: args.punish_blocks,
        token: args.token,
        create_token_network: !args.no_token_network,
        ..DeployOptions::default()
    };
    let deployment = deploy(&client, &options)
        .await
        .context("deploying contracts")?;
    deployment.write(&args.out)?;
    println!("{}", serde_json::to_string_pretty(&deployment)?);
    Ok(())
}

async fn run_testnet(cmd: TestnetCommand) -> Result<()> {
    use smartraiden::testnet::{self, ApiClient, Testnet, TestnetInfo, TestnetOptions};
    match cmd {
        TestnetCommand::Up {
            nodes,
            dir,
            api_port,
            fee,
            block_time,
            servers,
            secure_xmpp,
        } => {
            if let Ok(old) = TestnetInfo::read(&dir)
                && (ApiClient::new(
                    old.nodes
                        .first()
                        .map(|n| n.api_url.clone())
                        .unwrap_or_default(),
                )
                .address()
                .await
                .is_ok()
                    || testnet::network::is_running(old.anvil_pid))
            {
                bail!(
                    "a testnet is already running in {} (stop it with `integration/testnet down`)",
                    dir.display()
                );
            }
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing the old testnet in {}", dir.display()))?;
            }
            let mut options = TestnetOptions::new(nodes, &dir, std::env::current_exe()?);
            options.detached = true;
            options.api_base_port = Some(api_port);
            options.fee = fee;
            options.block_time = (block_time > 0).then_some(block_time);
            options.servers = usize::from(servers);
            options.secure_xmpp = secure_xmpp || servers == 2;
            let info = Testnet::start(options).await?.detach()?;
            println!("testnet up: {} nodes", info.nodes.len());
            println!("  chain   {} (anvil pid {})", info.eth_rpc, info.anvil_pid);
            println!(
                "  xmpp    {} domain {} (prosody pid {})",
                info.xmpp, info.xmpp_domain, info.prosody_pid
            );
            println!("  token   {}", info.token);
            for (i, n) in info.nodes.iter().enumerate() {
                println!(
                    "  node {} {} {} (pid {})",
                    i + 1,
                    n.address,
                    n.api_url,
                    n.pid
                );
            }
            println!("  details {}", dir.join(TestnetInfo::FILE).display());
            Ok(())
        }
        TestnetCommand::Down { dir } => {
            let stopped = testnet::down(&dir)?;
            if stopped.is_empty() {
                println!("nothing of the testnet in {} was running", dir.display());
            }
            for s in stopped {
                println!("stopped {s}");
            }
            Ok(())
        }
        TestnetCommand::Bench {
            quick,
            history,
            out,
            only,
            keep_dir,
            servers,
            monitor,
        } => {
            let mut bench = if quick {
                testnet::bench::BenchOptions::quick()
            } else {
                testnet::bench::BenchOptions::full()
            };
            if let Some(h) = history {
                bench.history = h;
            }
            bench.only = only;
            // Removed when dropped at the end, unless the user keeps a directory of their own.
            let mut temp = None;
            let dir = match keep_dir {
                Some(d) if d.exists() => {
                    anyhow::bail!("{} exists; --keep-dir wants a new directory", d.display());
                }
                Some(d) => d,
                None => temp
                    .insert(
                        tempfile::Builder::new()
                            .prefix("smartraiden-bench-")
                            .tempdir()?,
                    )
                    .path()
                    .to_owned(),
            };
            let mut options = TestnetOptions::new(4, &dir, std::env::current_exe()?);
            options.node_log = "warn".into();
            options.servers = usize::from(servers);
            options.alternate_servers = true;
            let mut net = Testnet::start(options).await?;
            // Kept alive (and killed on drop) for the whole run.
            let _monitor = match monitor {
                true => Some(testnet::bench::with_monitor(&mut net, &dir).await?),
                false => None,
            };
            let report = testnet::bench::run(&mut net, &bench).await?;
            print!("{}", report.table());
            std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
                .with_context(|| format!("writing {}", out.display()))?;
            println!("\nJSON: {}", out.display());
            Ok(())
        }
        TestnetCommand::Provision {
            eth_rpc,
            nodes_dir,
            out,
            xmpp_server,
            xmpp_domain,
            host_eth_rpc,
            host_api_urls,
            tokens_per_node,
        } => {
            use testnet::compose::{ProvisionOptions, Provisioned, provision};
            let options = ProvisionOptions {
                eth_rpc,
                nodes_dir,
                out,
                xmpp_server,
                xmpp_domain,
                host_eth_rpc,
                host_api_urls,
                tokens_per_node,
            };
            let (what, info) = match provision(&options).await? {
                Provisioned::Fresh(info) => ("provisioned", info),
                Provisioned::Existing(info) => ("already provisioned, unchanged", info),
            };
            println!(
                "compose testnet {what}: {} nodes, token {}",
                info.nodes.len(),
                info.token
            );
            for (i, n) in info.nodes.iter().enumerate() {
                println!("  node {} {} {}", i + 1, n.address, n.api_url);
            }
            Ok(())
        }
        TestnetCommand::Seed { dir } => {
            let info = TestnetInfo::read(&dir)?;
            let nodes: Vec<ApiClient> = info
                .nodes
                .iter()
                .map(|n| ApiClient::new(&n.api_url))
                .collect();
            let report = testnet::seed::run_seed_payment(&nodes, &info.token).await?;
            println!(
                "node 1 paid node 5 {} tokens through nodes 2 and 4 ({} ms for the sync REST call)\n",
                testnet::seed::SEED_AMOUNT,
                report.elapsed.as_millis()
            );
            print!("{}", report.table());
            let agree = report.after.iter().all(|c| c.agrees());
            println!(
                "\n{}",
                if agree {
                    "both ends of every channel agree"
                } else {
                    "the two ends of some channel DISAGREE"
                }
            );
            if !agree {
                bail!("the channels did not converge");
            }
            Ok(())
        }
    }
}

/// An error and its causes on one line, each cause once (wrapped errors often repeat their
/// source's text in their own).
async fn run_channel(cmd: ChannelCommand) -> Result<()> {
    use smartraiden::testnet::ApiClient;
    use smartraiden::testnet::client::{amount, balances};
    match cmd {
        ChannelCommand::List { api } => {
            let api = ApiClient::new(api);
            println!("| channel | partner | balance / partner's | state |");
            println!("|---|---|---|---|");
            for c in api.channels().await? {
                let (b, p) = balances(&c).unwrap_or_default();
                println!(
                    "| {} | {} | {b} / {p} | {} |",
                    c["channel_identifier"].as_str().unwrap_or("?"),
                    c["partner_address"].as_str().unwrap_or("?"),
                    c["state"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        ChannelCommand::Close { channel, api, wait } => {
            let api = ApiClient::new(api);
            let path = format!("channels/{channel}");
            let closed = api
                .expect(
                    200,
                    reqwest::Method::PATCH,
                    &path,
                    Some(serde_json::json!({"state": "closed", "force": true})),
                )
                .await?;
            let (b, p) = balances(&closed).unwrap_or_default();
            println!("closed {channel}: our balance {b}, the partner's {p}");
            if !wait {
                return Ok(());
            }
            let mut last = None;
            loop {
                let (status, ch) = api.get(&path).await?;
                if status == 404 {
                    println!("settled: the node paid both sides out on chain");
                    return Ok(());
                }
                let now = amount(&ch["block_number"]);
                let after = amount(&ch["settle_after_block"]);
                if let (Some(now), Some(after)) = (now, after)
                    && last != Some(now)
                {
                    let to_go = after.saturating_sub(now);
                    println!(
                        "settle window: block {now}, settles after block {after} ({to_go} blocks to go)"
                    );
                    last = Some(now);
                }
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            }
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// `smartraiden xmpp-auth`: serves login checks until stdin ends (extauth) or forever (HTTP).
async fn run_xmpp_auth(args: XmppAuthArgs) -> Result<()> {
    use smartraiden::transport::xmpp::{auth::LoginPolicy, verifier};
    let policy = LoginPolicy {
        validity_ms: args.validity_secs * 1000,
        max_future_ms: args.max_future_secs * 1000,
    };
    let verifier = std::sync::Arc::new(verifier::Verifier::new(policy));
    if let Some(addr) = args.mode.http {
        let listener = verifier::bind_http(addr)
            .await
            .with_context(|| format!("binding the verifier on {addr}"))?;
        log::info!("xmpp-auth: verifying logins on http://{addr}/auth");
        verifier::serve_http(verifier, listener).await?;
        return Ok(());
    }
    // ejabberd talks to us over blocking pipes: one request at a time, in order.
    tokio::task::spawn_blocking(move || {
        verifier::serve_extauth(&verifier, std::io::stdin().lock(), std::io::stdout().lock())
    })
    .await??;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_micros()
        .init();
    let result = match Cli::parse().command {
        Command::Run(args) => run_node(*args).await,
        Command::Deploy(args) => run_deploy(args).await,
        Command::Account(cmd) => run_account(cmd),
        Command::Testnet(cmd) => run_testnet(cmd).await,
        Command::Channel(cmd) => run_channel(cmd).await,
        Command::Monitor(args) => run_monitor(*args).await,
        Command::XmppAuth(args) => run_xmpp_auth(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smartraiden: error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
