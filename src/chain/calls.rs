//! The core's [`ContractCall`]s → transactions (reads and registrations: `queries.rs`). Every transaction goes through [`ChainClient::send`] (local nonces, gas estimation, receipt
//! check); a revert is reported as [`ChainError::ContractRevert`] naming the custom error.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::primitives::{Bytes, TxHash, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::SolInterface;
use log::debug;
use tokio::sync::Mutex;

use super::ChainError;
use super::bindings::{
    Discovery, SecretRegistry, StandardToken, TokenNetwork, TokenNetworkRegistry,
};
use super::client::ChainClient;
use super::convert::{address, b256, eth_address, merkle_proof_bytes, signature_bytes};
use super::deploy::Deployment;
use crate::core::ContractCall;
use crate::core::io::OnChainBalanceProof;
use crate::primitives::{Address, Locksroot, TokenAmount};

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

/// Submits the core's contract calls as this node (`msg.sender` is the client's address).
pub struct ChainExecutor {
    pub(super) client: Arc<ChainClient>,
    pub(super) contracts: ChainContracts,
    // token network → its token; immutable on chain, so cached forever.
    pub(super) tokens: Mutex<HashMap<Address, Address>>,
    // token network → its punish window; immutable too.
    pub(super) punish_windows: Mutex<HashMap<Address, crate::primitives::BlockCount>>,
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
            punish_windows: Mutex::new(HashMap::new()),
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

    pub(super) fn tn(&self, tn: Address) -> TokenNetwork::TokenNetworkInstance<&DynProvider> {
        TokenNetwork::new(eth_address(tn), self.client.provider())
    }

    /// Sends `call` and names the custom error if it reverts.
    pub(super) async fn send<P: Provider, D: CallDecoder>(
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
                expiration,
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
                        expiration.0,
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
                expiration,
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
                        expiration.0,
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
