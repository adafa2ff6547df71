//! Sending transactions: one signing key per [`ChainClient`], nonces tracked locally, every
//! receipt checked, logs decoded into the typed events of [`super::bindings`].

use std::time::Duration;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, TxHash};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use alloy::transports::http::reqwest::Url;
use log::{debug, warn};
use tokio::sync::Mutex;

use super::ChainError;

/// How often receipts are polled. alloy's default (250 ms, tuned for public chains) would dominate
/// every transaction on a local node; 10 ms costs nothing on a remote one either.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Longest wait for a transaction's receipt before it counts as failed (the caller decides
/// whether to try again; a duplicate of a transaction that went through reverts harmlessly).
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to an Ethereum JSON-RPC endpoint that signs with one key.
pub struct ChainClient {
    provider: DynProvider,
    address: Address,
    chain_id: u64,
    // Next nonce to use; None = ask the node. Held across signing+submission so that concurrent
    // sends get consecutive nonces in submission order.
    next_nonce: Mutex<Option<u64>>,
}

impl ChainClient {
    /// Connects to `url` (http/https) and signs with `signer`; fetches the chain id once.
    pub async fn connect(url: &str, signer: PrivateKeySigner) -> Result<Self, ChainError> {
        let probe = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(parse_url(url)?);
        let chain_id = probe.get_chain_id().await?;
        Self::for_chain(url, signer, chain_id)
    }

    /// A client for chain `chain_id` that asks the endpoint nothing yet (also for a node
    /// starting while the endpoint is unreachable: its calls fail until it answers).
    pub fn for_chain(
        url: &str,
        signer: PrivateKeySigner,
        chain_id: u64,
    ) -> Result<Self, ChainError> {
        let address = signer.address();
        // Nonces are ours (see `send_request`); gas is filled by alloy.
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_chain_id(chain_id)
            .wallet(EthereumWallet::from(signer))
            .connect_http(parse_url(url)?);
        provider.client().set_poll_interval(POLL_INTERVAL);
        Ok(ChainClient {
            provider: provider.erased(),
            address,
            chain_id,
            next_nonce: Mutex::new(None),
        })
    }

    /// The provider, for view calls and for building contract calls with the bindings.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The address transactions are sent from.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The chain id of the endpoint.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Current block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        Ok(self.provider.get_block_number().await?)
    }

    /// Sends a contract call built with the bindings and returns its successful receipt.
    /// A call that reverts during gas estimation fails with [`ChainError::Rpc`] carrying the revert data.
    pub async fn send<P, D>(
        &self,
        call: CallBuilder<P, D>,
    ) -> Result<TransactionReceipt, ChainError>
    where
        P: Provider,
        D: CallDecoder,
    {
        self.send_request(call.into_transaction_request()).await
    }

    /// Deploys a contract from a deploy builder of the bindings; returns its address and receipt.
    pub async fn deploy<P, D>(
        &self,
        call: CallBuilder<P, D>,
    ) -> Result<(Address, TransactionReceipt), ChainError>
    where
        P: Provider,
        D: CallDecoder,
    {
        let receipt = self.send(call).await?;
        let address = receipt
            .contract_address
            .ok_or(ChainError::NoContractAddress(receipt.transaction_hash))?;
        Ok((address, receipt))
    }

    /// Signs and submits `tx` with the next nonce, waits for the receipt and checks its status.
    pub async fn send_request(
        &self,
        mut tx: TransactionRequest,
    ) -> Result<TransactionReceipt, ChainError> {
        tx.set_from(self.address);
        let pending = {
            let mut next = self.next_nonce.lock().await;
            let nonce = match *next {
                Some(n) => n,
                None => {
                    self.provider
                        .get_transaction_count(self.address)
                        .pending()
                        .await?
                }
            };
            tx.set_nonce(nonce);
            match self.provider.send_transaction(tx).await {
                Ok(pending) => {
                    *next = Some(nonce + 1);
                    pending
                }
                Err(e) => {
                    // A revert during estimation consumed no nonce, but other failures (a lost
                    // response, "nonce too low" after another sender used the key) may have:
                    // ask the node again next time rather than guess.
                    *next = None;
                    return Err(e.into());
                }
            }
        };
        let tx_hash = *pending.tx_hash();
        let receipt = match pending
            .with_timeout(Some(RECEIPT_TIMEOUT))
            .get_receipt()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // Still pending, or dropped: the node's pending count knows which nonce is next.
                *self.next_nonce.lock().await = None;
                return Err(ChainError::Receipt {
                    tx_hash,
                    reason: e.to_string(),
                });
            }
        };
        debug!(
            "tx {tx_hash} mined in block {:?}, gas used {}",
            receipt.block_number, receipt.gas_used
        );
        if !receipt.status() {
            warn!("tx {tx_hash} reverted on chain");
            return Err(ChainError::Reverted {
                tx_hash,
                gas_used: receipt.gas_used,
            });
        }
        Ok(receipt)
    }

    /// Typed events of `address` between two blocks (inclusive), with their block numbers and tx hashes.
    pub async fn events<E: SolEvent>(
        &self,
        address: Address,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<(E, u64, TxHash)>, ChainError> {
        let filter = Filter::new()
            .address(address)
            .event_signature(E::SIGNATURE_HASH)
            .from_block(from_block)
            .to_block(to_block);
        let logs = self.provider.get_logs(&filter).await?;
        let mut out = Vec::with_capacity(logs.len());
        for log in logs {
            let block = log.block_number.unwrap_or_default();
            let hash = log.transaction_hash.unwrap_or_default();
            match log.log_decode::<E>() {
                Ok(decoded) => out.push((decoded.inner.data, block, hash)),
                // A log with the right topic but undecodable data is not from our contract's ABI: skip it, loudly.
                Err(e) => warn!("undecodable {} log in tx {hash}: {e}", E::SIGNATURE),
            }
        }
        Ok(out)
    }
}

/// The typed events `E` a receipt's logs decode to, in log order.
pub fn receipt_events<E: SolEvent>(receipt: &TransactionReceipt) -> Vec<E> {
    receipt
        .inner
        .logs()
        .iter()
        .filter(|log| log.topics().first() == Some(&E::SIGNATURE_HASH))
        .filter_map(|log| E::decode_log(&log.inner).ok().map(|l| l.data))
        .collect()
}

fn parse_url(url: &str) -> Result<Url, ChainError> {
    Url::parse(url).map_err(|e| ChainError::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })
}
