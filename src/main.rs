//! SmartRaiden node binary. Subcommands: `deploy` (contracts); `run` and `account` come later.

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
    /// Deploy the registry, secret registry, discovery and a test token; write a deployment JSON.
    Deploy(DeployArgs),
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

#[tokio::main]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match Cli::parse().command {
        Command::Deploy(args) => run_deploy(args).await,
    }
}
