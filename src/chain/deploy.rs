//! Deployment of the SmartRaiden contracts to any RPC endpoint, and the deployment JSON the
//! node reads back.

use std::path::Path;

use alloy::primitives::{Address, U256};
use log::info;
use serde::{Deserialize, Serialize};

use super::ChainError;
use super::bindings::{Discovery, SecretRegistry, StandardToken, TokenNetworkRegistry};
use super::client::{ChainClient, receipt_events};

/// Addresses of a deployment, as written to the deployment JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Chain id of the network deployed to.
    pub chain_id: u64,
    /// TokenNetworkRegistry.
    pub registry: Address,
    /// SecretRegistry.
    pub secret_registry: Address,
    /// Discovery.
    pub discovery: Address,
    /// The token (deployed test token, or the one given).
    pub token: Address,
    /// The token's TokenNetwork, if one was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_network: Option<Address>,
}

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Punish window (blocks) of every TokenNetwork the registry creates.
    pub punish_block_number: u64,
    /// Use this existing token instead of deploying a test token.
    pub token: Option<Address>,
    /// Supply of the deployed test token (all to the deployer).
    pub token_supply: U256,
    /// Create the token's TokenNetwork through the registry.
    pub create_token_network: bool,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            punish_block_number: 5,
            token: None,
            // 10^9 tokens of 18 decimals.
            token_supply: U256::from(10u64).pow(U256::from(27u64)),
            create_token_network: true,
        }
    }
}

/// Deploys SecretRegistry, TokenNetworkRegistry, Discovery and (unless given) a test token, and
/// optionally creates the token's TokenNetwork.
pub async fn deploy(
    client: &ChainClient,
    options: &DeployOptions,
) -> Result<Deployment, ChainError> {
    let provider = client.provider();
    let (secret_registry, _) = client
        .deploy(SecretRegistry::deploy_builder(provider))
        .await?;
    info!("SecretRegistry at {secret_registry}");
    let (registry, _) = client
        .deploy(TokenNetworkRegistry::deploy_builder(
            provider,
            secret_registry,
            options.punish_block_number,
        ))
        .await?;
    info!("TokenNetworkRegistry at {registry}");
    let (discovery, _) = client.deploy(Discovery::deploy_builder(provider)).await?;
    info!("Discovery at {discovery}");
    let token = match options.token {
        Some(token) => token,
        None => {
            let (token, _) = client
                .deploy(StandardToken::deploy_builder(
                    provider,
                    options.token_supply,
                    "SmartRaiden Test Token".to_string(),
                    18,
                    "SRT".to_string(),
                ))
                .await?;
            info!("test token at {token}");
            token
        }
    };
    let token_network = if options.create_token_network {
        let registry_contract = TokenNetworkRegistry::new(registry, provider);
        let receipt = client
            .send(registry_contract.createERC20TokenNetwork(token))
            .await?;
        let created = receipt_events::<TokenNetworkRegistry::TokenNetworkCreated>(&receipt);
        let event = created.first().ok_or_else(|| ChainError::Receipt {
            tx_hash: receipt.transaction_hash,
            reason: "no TokenNetworkCreated event".to_string(),
        })?;
        info!("TokenNetwork of {token} at {}", event.token_network_address);
        Some(event.token_network_address)
    } else {
        None
    };
    Ok(Deployment {
        chain_id: client.chain_id(),
        registry,
        secret_registry,
        discovery,
        token,
        token_network,
    })
}

impl Deployment {
    /// Writes the deployment JSON (pretty-printed).
    pub fn write(&self, path: &Path) -> Result<(), ChainError> {
        let text = serde_json::to_string_pretty(self).expect("a Deployment always serializes");
        std::fs::write(path, text + "\n").map_err(|source| ChainError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a deployment JSON.
    pub fn read(path: &Path) -> Result<Self, ChainError> {
        let io = |source| ChainError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(io)?;
        serde_json::from_str(&text)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }
}
