//! The core's [`ContractCall`]s → transactions, plus the few reads and registrations the node
//! needs around them (token networks, token balances, discovery, a channel's on-chain state).
//! Every transaction goes through [`ChainClient::send`] (local nonces, gas estimation, receipt
//! check); a revert is reported as [`ChainError::ContractRevert`] naming the custom error.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::primitives::{Bytes, TxHash, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::SolInterface;
use log::{debug, info};
use tokio::sync::Mutex;

use super::ChainError;
use super::bindings::{
    Discovery, SecretRegistry, StandardToken, TokenNetwork, TokenNetworkRegistry,
};
use super::client::{ChainClient, receipt_events};
use super::convert::{
    address, amount, b256, eth_address, h256, merkle_proof_bytes, signature_bytes,
};
use super::deploy::Deployment;
use crate::core::ContractCall;
use crate::core::io::OnChainBalanceProof;
use crate::primitives::{Address, BlockCount, BlockNumber, ChannelId, Locksroot, TokenAmount};

/// Addresses of the singleton contracts the executor talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainContracts {
    /// TokenNetworkRegistry.
    pub registry: Address,
    /// SecretRegistry.
    pub secret_registry: Address,
    /// Discovery.
    pub discovery: Address,
}

impl From<&Deployment> for ChainContracts {
    fn from(d: &Deployment) -> Self {
        ChainContracts {
            registry: address(d.registry),
            secret_registry: address(d.secret_registry),
            discovery: address(d.discovery),
        }
    }
}

/// A mined, successful transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxOutcome {
    /// Its hash.
    pub tx_hash: TxHash,
    /// The block it was mined in.
    pub block_number: u64,
    /// Gas it used.
    pub gas_used: u64,
}

impl TxOutcome {
    fn of(receipt: &TransactionReceipt) -> TxOutcome {
        TxOutcome {
            tx_hash: receipt.transaction_hash,
            block_number: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
        }
    }
}

/// A channel as the TokenNetwork stores it (all zero once settled or never opened).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnChainChannel {
    /// Its identifier.
    pub channel_identifier: ChannelId,
    /// 0 none/settled, 1 open, 2 closed.
    pub state: u8,
    /// Settle window.
    pub settle_timeout: BlockCount,
    /// Block of opening (or of the last withdraw).
    pub open_block_number: BlockNumber,
    /// Block after which the settle window is over (0 while open).
    pub settle_block_number: BlockNumber,
    /// Deposit of the first participant asked about.
    pub participant1_deposit: TokenAmount,
    /// Deposit of the second.
    pub participant2_deposit: TokenAmount,
}

/// Submits the core's contract calls as this node (`msg.sender` is the client's address).
pub struct ChainExecutor {
    client: Arc<ChainClient>,
    contracts: ChainContracts,
    // token network → its token; immutable on chain, so cached forever.
    tokens: Mutex<HashMap<Address, Address>>,
    // Held across allowance check, approve and deposit so that two concurrent deposits cannot
    // both see the same allowance and the second fail in transferFrom.
    deposit_lock: Mutex<()>,
}

impl ChainExecutor {
    /// An executor sending through `client` to the contracts of `contracts`.
    pub fn new(client: Arc<ChainClient>, contracts: ChainContracts) -> ChainExecutor {
        ChainExecutor {
            client,
            contracts,
            tokens: Mutex::new(HashMap::new()),
            deposit_lock: Mutex::new(()),
        }
    }

    /// The client (our address, chain id, provider).
    pub fn client(&self) -> &ChainClient {
        &self.client
    }

    /// Our address (core type).
    pub fn address(&self) -> Address {
        address(self.client.address())
    }

    /// The contract addresses used.
    pub fn contracts(&self) -> ChainContracts {
        self.contracts
    }

    fn tn(&self, tn: Address) -> TokenNetwork::TokenNetworkInstance<&DynProvider> {
        TokenNetwork::new(eth_address(tn), self.client.provider())
    }

    /// Sends `call` and names the custom error if it reverts.
    async fn send<P: Provider, D: CallDecoder>(
        &self,
        what: &'static str,
        call: CallBuilder<P, D>,
    ) -> Result<TxOutcome, ChainError> {
        match self.client.send(call).await {
            Ok(receipt) => Ok(TxOutcome::of(&receipt)),
            Err(e) => Err(name_revert(what, e)),
        }
    }

    /// Submits one of the core's calls and waits for its successful receipt.
    pub async fn execute(&self, call: &ContractCall) -> Result<TxOutcome, ChainError> {
        let me = self.client.address();
        debug!("executing {call:?}");
        match call {
            ContractCall::OpenChannel {
                token_network,
                partner,
                settle_timeout,
                deposit,
            } => {
                let tn = self.tn(*token_network);
                if deposit.is_zero() {
                    return self
                        .send(
                            "openChannel",
                            tn.openChannel(me, eth_address(*partner), settle_timeout.0),
                        )
                        .await;
                }
                let _guard = self.deposit_lock.lock().await;
                self.ensure_allowance(*token_network, deposit.0).await?;
                self.send(
                    "openChannelWithDeposit",
                    tn.openChannelWithDeposit(
                        me,
                        eth_address(*partner),
                        settle_timeout.0,
                        deposit.0,
                    ),
                )
                .await
            }
            ContractCall::Deposit {
                token_network,
                partner,
                amount,
            } => {
                let _guard = self.deposit_lock.lock().await;
                self.ensure_allowance(*token_network, amount.0).await?;
                self.send(
                    "deposit",
                    self.tn(*token_network)
                        .deposit(me, eth_address(*partner), amount.0),
                )
                .await
            }
            ContractCall::Close {
                token_network,
                partner,
                balance_proof,
            } => {
                // No proof: nonce 0 tells the contract to record none (the signature is not read).
                let bp = balance_proof.unwrap_or(OnChainBalanceProof {
                    transferred_amount: TokenAmount::ZERO,
                    locksroot: Locksroot::default(),
                    nonce: Default::default(),
                    additional_hash: Default::default(),
                    signature: crate::primitives::Signature([0; 65]),
                });
                let signature = if balance_proof.is_some() {
                    signature_bytes(&bp.signature)
                } else {
                    Bytes::new()
                };
                self.send(
                    "closeChannel",
                    self.tn(*token_network).closeChannel(
                        eth_address(*partner),
                        bp.transferred_amount.0,
                        b256(bp.locksroot.0),
                        bp.nonce.0,
                        b256(bp.additional_hash),
                        signature,
                    ),
                )
                .await
            }
            ContractCall::UpdateBalanceProof {
                token_network,
                partner,
                balance_proof: bp,
            } => {
                self.send(
                    "updateBalanceProof",
                    self.tn(*token_network).updateBalanceProof(
                        eth_address(*partner),
                        bp.transferred_amount.0,
                        b256(bp.locksroot.0),
                        bp.nonce.0,
                        b256(bp.additional_hash),
                        signature_bytes(&bp.signature),
                    ),
                )
                .await
            }
            ContractCall::Unlock {
                token_network,
                partner,
                transferred_amount,
                lock,
                merkle_proof,
            } => {
                self.send(
                    "unlock",
                    self.tn(*token_network).unlock(
                        eth_address(*partner),
                        transferred_amount.0,
                        U256::from(lock.expiration.0),
                        lock.amount.0,
                        b256(lock.secrethash.0),
                        merkle_proof_bytes(merkle_proof),
                    ),
                )
                .await
            }
            ContractCall::Settle {
                token_network,
                participant1,
                participant1_transferred_amount,
                participant1_locksroot,
                participant2,
                participant2_transferred_amount,
                participant2_locksroot,
            } => {
                self.send(
                    "settleChannel",
                    self.tn(*token_network).settleChannel(
                        eth_address(*participant1),
                        participant1_transferred_amount.0,
                        b256(participant1_locksroot.0),
                        eth_address(*participant2),
                        participant2_transferred_amount.0,
                        b256(participant2_locksroot.0),
                    ),
                )
                .await
            }
            ContractCall::RegisterSecret { secret } => {
                let registry = SecretRegistry::new(
                    eth_address(self.contracts.secret_registry),
                    self.client.provider(),
                );
                self.send("registerSecret", registry.registerSecret(b256(secret.0)))
                    .await
            }
            ContractCall::Withdraw {
                token_network,
                participant,
                partner,
                participant_balance,
                participant_withdraw,
                participant_signature,
                partner_signature,
            } => {
                self.send(
                    "withdraw",
                    self.tn(*token_network).withdraw(
                        eth_address(*participant),
                        eth_address(*partner),
                        participant_balance.0,
                        participant_withdraw.0,
                        signature_bytes(participant_signature),
                        signature_bytes(partner_signature),
                    ),
                )
                .await
            }
            ContractCall::PunishObsoleteUnlock {
                token_network,
                partner,
                lockhash,
                additional_hash,
                signature,
            } => {
                self.send(
                    "punishObsoleteUnlock",
                    self.tn(*token_network).punishObsoleteUnlock(
                        me,
                        eth_address(*partner),
                        b256(*lockhash),
                        b256(*additional_hash),
                        signature_bytes(signature),
                    ),
                )
                .await
            }
            ContractCall::CooperativeSettle {
                token_network,
                participant1,
                participant1_balance,
                participant2,
                participant2_balance,
                participant1_signature,
                participant2_signature,
            } => {
                self.send(
                    "cooperativeSettle",
                    self.tn(*token_network).cooperativeSettle(
                        eth_address(*participant1),
                        participant1_balance.0,
                        eth_address(*participant2),
                        participant2_balance.0,
                        signature_bytes(participant1_signature),
                        signature_bytes(participant2_signature),
                    ),
                )
                .await
            }
        }
    }

    /// Approves the token network for `needed` if our allowance is short (caller holds `deposit_lock`).
    async fn ensure_allowance(
        &self,
        token_network: Address,
        needed: U256,
    ) -> Result<(), ChainError> {
        let token = self.token_of(token_network).await?;
        let token = StandardToken::new(eth_address(token), self.client.provider());
        let spender = eth_address(token_network);
        let allowance = token
            .allowance(self.client.address(), spender)
            .call()
            .await?;
        if allowance < needed {
            debug!("allowance {allowance} < {needed}: approving {token_network}");
            self.send("approve", token.approve(spender, needed)).await?;
        }
        Ok(())
    }

    /// The token of a token network (read once, then cached: it is immutable).
    pub async fn token_of(&self, token_network: Address) -> Result<Address, ChainError> {
        if let Some(t) = self.tokens.lock().await.get(&token_network) {
            return Ok(*t);
        }
        let token = address(self.tn(token_network).token().call().await?);
        self.tokens.lock().await.insert(token_network, token);
        Ok(token)
    }

    /// The token network of `token`, if the registry created one.
    pub async fn token_network_of(&self, token: Address) -> Result<Option<Address>, ChainError> {
        let registry =
            TokenNetworkRegistry::new(eth_address(self.contracts.registry), self.client.provider());
        let tn = registry
            .token_to_token_networks(eth_address(token))
            .call()
            .await?;
        Ok((!tn.is_zero()).then(|| address(tn)))
    }

    /// Creates the token network of `token` through the registry; returns its address.
    pub async fn register_token_network(&self, token: Address) -> Result<Address, ChainError> {
        let registry =
            TokenNetworkRegistry::new(eth_address(self.contracts.registry), self.client.provider());
        let receipt = self
            .client
            .send(registry.createERC20TokenNetwork(eth_address(token)))
            .await
            .map_err(|e| name_revert("createERC20TokenNetwork", e))?;
        let created = receipt_events::<TokenNetworkRegistry::TokenNetworkCreated>(&receipt);
        let tn = created.first().ok_or_else(|| ChainError::Receipt {
            tx_hash: receipt.transaction_hash,
            reason: "no TokenNetworkCreated event in the receipt".into(),
        })?;
        info!(
            "token network {} created for token {token}",
            tn.token_network_address
        );
        Ok(address(tn.token_network_address))
    }

    /// `token.balanceOf(holder)`.
    pub async fn token_balance(
        &self,
        token: Address,
        holder: Address,
    ) -> Result<TokenAmount, ChainError> {
        let token = StandardToken::new(eth_address(token), self.client.provider());
        Ok(amount(token.balanceOf(eth_address(holder)).call().await?))
    }

    /// Publishes our endpoint (XMPP JID) in the Discovery contract.
    pub async fn discovery_register(&self, endpoint: &str) -> Result<TxOutcome, ChainError> {
        let discovery = Discovery::new(
            eth_address(self.contracts.discovery),
            self.client.provider(),
        );
        self.send(
            "registerEndpoint",
            discovery.registerEndpoint(endpoint.to_string()),
        )
        .await
    }

    /// The endpoint `who` published, if any.
    pub async fn discovery_endpoint(&self, who: Address) -> Result<Option<String>, ChainError> {
        let discovery = Discovery::new(
            eth_address(self.contracts.discovery),
            self.client.provider(),
        );
        let endpoint = discovery
            .findEndpointByAddress(eth_address(who))
            .call()
            .await?;
        Ok((!endpoint.is_empty()).then_some(endpoint))
    }

    /// The address that published `endpoint`, checked against the authoritative reverse entry
    /// (the endpoint → address direction alone can be claimed by anyone).
    pub async fn discovery_address(&self, endpoint: &str) -> Result<Option<Address>, ChainError> {
        let discovery = Discovery::new(
            eth_address(self.contracts.discovery),
            self.client.provider(),
        );
        let who = discovery
            .findAddressByEndpoint(endpoint.to_string())
            .call()
            .await?;
        if who.is_zero() {
            return Ok(None);
        }
        let back = self.discovery_endpoint(address(who)).await?;
        Ok((back.as_deref() == Some(endpoint)).then(|| address(who)))
    }

    /// The channel between `participant1` and `participant2` as stored on chain (two view calls).
    pub async fn channel(
        &self,
        token_network: Address,
        participant1: Address,
        participant2: Address,
    ) -> Result<OnChainChannel, ChainError> {
        let tn = self.tn(token_network);
        let (p1, p2) = (eth_address(participant1), eth_address(participant2));
        let info = tn.getChannelInfo(p1, p2).call().await?;
        let d1 = tn.getParticipantInfo(p1, p2).call().await?;
        let d2 = tn.getParticipantInfo(p2, p1).call().await?;
        Ok(OnChainChannel {
            channel_identifier: ChannelId(h256(info.channel_identifier)),
            state: info.state,
            settle_timeout: BlockCount(info.settle_timeout),
            open_block_number: BlockNumber(info.open_block_number),
            settle_block_number: BlockNumber(info.settle_block_number),
            participant1_deposit: amount(d1.participant_deposit),
            participant2_deposit: amount(d2.participant_deposit),
        })
    }
}

/// Turns a revert of one of our contracts into [`ChainError::ContractRevert`] naming the error;
/// other errors pass through unchanged.
pub fn name_revert(call: &'static str, e: ChainError) -> ChainError {
    let Some(data) = e.revert_data() else {
        return e;
    };
    let (error, details) = if let Ok(d) = TokenNetwork::TokenNetworkErrors::abi_decode(&data) {
        (selector_name(d.selector()), format!("{d:?}"))
    } else if let Ok(d) = TokenNetworkRegistry::TokenNetworkRegistryErrors::abi_decode(&data) {
        (
            TokenNetworkRegistry::TokenNetworkRegistryErrors::name_by_selector(d.selector())
                .unwrap_or("?")
                .to_string(),
            format!("{d:?}"),
        )
    } else if let Ok(d) = Discovery::DiscoveryErrors::abi_decode(&data) {
        (
            Discovery::DiscoveryErrors::name_by_selector(d.selector())
                .unwrap_or("?")
                .to_string(),
            format!("{d:?}"),
        )
    } else if let Some(reason) = alloy::sol_types::decode_revert_reason(&data) {
        // Error(string) or Panic(uint256), e.g. from a token.
        ("revert".to_string(), reason)
    } else {
        ("unknown".to_string(), format!("revert data {data}"))
    };
    ChainError::ContractRevert {
        call,
        error,
        details,
    }
}

fn selector_name(selector: [u8; 4]) -> String {
    TokenNetwork::TokenNetworkErrors::name_by_selector(selector)
        .unwrap_or("?")
        .to_string()
}
