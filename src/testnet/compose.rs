//! The docker-compose testnet's one-shot `setup` service (`docker-compose.yml`,
//! `integration/compose`): `smartraiden testnet provision` deploys our contracts on the
//! compose network's anvil, makes one account per node (keystore, keystore password, XMPP
//! password) in that node's volume, funds it, lists the XMPP accounts for Prosody to register
//! and writes `testnet.json` with the URLs the host reaches, so `smartraiden testnet seed
//! --dir DIR` runs unchanged against the containers. Run again on a provisioned testnet it
//! changes nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::Provider;
use log::info;

use super::credentials::{NodeCredentials, write_node_credentials};
use super::info::{NodeInfo, TestnetInfo};
use super::{TestnetError, io};
use crate::chain::bindings::StandardToken;
use crate::chain::deploy::deploy;
use crate::chain::{ChainClient, DeployOptions, Deployment, DevChain};

/// How long the setup waits for the chain's RPC to answer.
const CHAIN_WAIT: Duration = Duration::from_secs(60);

/// The file that lists the nodes' XMPP accounts, one `user domain password` a line.
pub const XMPP_ACCOUNTS_FILE: &str = "xmpp-accounts";

/// What `smartraiden testnet provision` makes.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// The chain's RPC as the setup service reaches it (`http://anvil:8545`).
    pub eth_rpc: String,
    /// Node `i`'s files go to `<nodes_dir>/<i>` (its volume), `i` from 1.
    pub nodes_dir: PathBuf,
    /// Where `deployment.json`, `testnet.json` and the XMPP account list go (the volume the
    /// nodes and Prosody mount).
    pub out: PathBuf,
    /// The XMPP server as the nodes reach it (written to `testnet.json` for people to read).
    pub xmpp_server: String,
    /// The XMPP domain the nodes log in to.
    pub xmpp_domain: String,
    /// The chain's RPC as the host reaches it (`testnet.json`).
    pub host_eth_rpc: String,
    /// Each node's REST API as the host reaches it (`testnet.json`), node 1 first; one per node.
    pub host_api_urls: Vec<String>,
    /// Test tokens (smallest units) each node receives.
    pub tokens_per_node: u64,
}

/// What the setup did.
#[derive(Debug, Clone)]
pub enum Provisioned {
    /// Deployed and made the accounts now.
    Fresh(TestnetInfo),
    /// The chain already holds the deployment in `out`: nothing changed.
    Existing(TestnetInfo),
}

/// Deploys, makes and funds the nodes' accounts and writes the files (see the module doc);
/// leaves a testnet whose deployment the chain still has as it is. The deployment file is
/// written last, so a setup that died half way starts over.
pub async fn provision(options: &ProvisionOptions) -> Result<Provisioned, TestnetError> {
    let nodes = options.host_api_urls.len();
    if nodes == 0 {
        return Err(TestnetError::Setup(
            "provision: --host-api-urls names no node".into(),
        ));
    }
    let deployer = connect(&options.eth_rpc, DevChain::key(0)).await?;
    let deployment_file = options.out.join("deployment.json");

    if deployment_file.exists() {
        let deployment = Deployment::read(&deployment_file)?;
        let code = deployer
            .provider()
            .get_code_at(deployment.registry)
            .await
            .map_err(crate::chain::ChainError::from)?;
        if code.is_empty() {
            return Err(TestnetError::Setup(format!(
                "{} names registry {} but the chain at {} has no code there: the chain was \
                 reset while the volumes were kept; start afresh with `docker-compose down -v`",
                deployment_file.display(),
                deployment.registry,
                options.eth_rpc
            )));
        }
        let info = TestnetInfo::read(&options.out)?;
        return Ok(Provisioned::Existing(info));
    }
    for n in 1..=nodes {
        let db = node_dir(options, n).join("db");
        if db.exists() {
            return Err(TestnetError::Setup(format!(
                "node {n} already has a data directory ({}) but there is no deployment in {}: \
                 start afresh with `docker-compose down -v`",
                db.display(),
                options.out.display()
            )));
        }
    }

    std::fs::create_dir_all(&options.out).map_err(io("creating", &options.out))?;
    set_balance(
        &deployer,
        deployer.address(),
        U256::from(10u64).pow(U256::from(24u64)),
    )
    .await?;
    info!("deploying the contracts");
    let deployment = deploy(&deployer, &DeployOptions::default()).await?;
    let token = StandardToken::new(deployment.token, deployer.provider());

    let mut accounts = String::new();
    let mut infos = Vec::with_capacity(nodes);
    for (i, api_url) in options.host_api_urls.iter().enumerate() {
        let n = i + 1;
        let dir = node_dir(options, n);
        let NodeCredentials { key, xmpp_password } = write_node_credentials(&dir)?;
        let address = key.address();
        accounts.push_str(&format!(
            "{} {} {xmpp_password}\n",
            address.to_lower_hex(),
            options.xmpp_domain
        ));
        let alloy_address = crate::chain::convert::eth_address(address);
        set_balance(
            &deployer,
            alloy_address,
            U256::from(10u64).pow(U256::from(21u64)),
        )
        .await?;
        deployer
            .send(token.transfer(alloy_address, U256::from(options.tokens_per_node)))
            .await?;
        info!("node {n}: {} funded", address.to_checksum());
        infos.push(NodeInfo {
            address: address.to_checksum(),
            api_url: api_url.trim_end_matches('/').to_owned(),
            datadir: PathBuf::from("/data/db"),
            pid: 0,
            restart: format!("docker-compose restart node{n}"),
            lan: None,
        });
    }
    let accounts_file = options.out.join(XMPP_ACCOUNTS_FILE);
    std::fs::write(&accounts_file, accounts).map_err(io("writing", &accounts_file))?;
    let info = TestnetInfo {
        eth_rpc: options.host_eth_rpc.clone(),
        xmpp: options.xmpp_server.clone(),
        xmpp_domain: options.xmpp_domain.clone(),
        registry: format!("{:#x}", deployment.registry),
        token: crate::chain::convert::address(deployment.token).to_checksum(),
        // Beside testnet.json, wherever the host copies the two.
        deployment: PathBuf::from("deployment.json"),
        anvil_pid: 0,
        prosody_pid: 0,
        server_pids: Vec::new(),
        nodes: infos,
    };
    info.write(&options.out)?;
    let tmp = options.out.join("deployment.json.tmp");
    deployment.write(&tmp)?;
    std::fs::rename(&tmp, &deployment_file).map_err(io("writing", &deployment_file))?;
    Ok(Provisioned::Fresh(info))
}

fn node_dir(options: &ProvisionOptions, n: usize) -> PathBuf {
    options.nodes_dir.join(n.to_string())
}

/// A client of `url` once the chain answers (the compose file starts the setup once anvil
/// listens; this covers a slower start too).
async fn connect(
    url: &str,
    signer: alloy::signers::local::PrivateKeySigner,
) -> Result<ChainClient, TestnetError> {
    let deadline = Instant::now() + CHAIN_WAIT;
    let mut reported = false;
    loop {
        match ChainClient::connect(url, signer.clone()).await {
            Ok(client) => return Ok(client),
            Err(crate::chain::ChainError::InvalidUrl { url, reason }) => {
                return Err(TestnetError::Setup(format!("--eth-rpc {url}: {reason}")));
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(TestnetError::Setup(format!(
                    "the chain at {url} did not answer within {CHAIN_WAIT:?}: {e}"
                )));
            }
            Err(e) => {
                if !reported {
                    info!("waiting for the chain at {url} ({e})");
                    reported = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// `anvil_setBalance`: the compose chain is anvil.
async fn set_balance(
    client: &ChainClient,
    address: alloy::primitives::Address,
    wei: U256,
) -> Result<(), TestnetError> {
    let _: serde_json::Value = client
        .provider()
        .raw_request("anvil_setBalance".into(), (address, wei))
        .await
        .map_err(crate::chain::ChainError::from)?;
    Ok(())
}
