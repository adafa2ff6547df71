//! Reads and registrations around the core's calls: token networks, token balances, discovery
//! and a channel's on-chain state (for bootstrapping the node and for its API).

use super::ChainError;
use super::bindings::{Discovery, SecretRegistry, StandardToken, TokenNetworkRegistry};
use super::calls::{ChainExecutor, TxOutcome, name_revert};
use super::client::receipt_events;
use super::convert::{address, amount, b256, eth_address, h256};
use crate::primitives::{Address, BlockCount, BlockNumber, ChannelId, TokenAmount};
use log::info;

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

impl ChainExecutor {
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

    /// The block in which the SecretRegistry registered the secret of `secrethash`, if it did.
    pub async fn secret_reveal_block(
        &self,
        secrethash: crate::primitives::SecretHash,
    ) -> Result<Option<u64>, ChainError> {
        let registry = SecretRegistry::new(
            eth_address(self.contracts.secret_registry),
            self.client.provider(),
        );
        let block = registry
            .getSecretRevealBlockHeight(b256(secrethash.0))
            .call()
            .await?;
        Ok((block > alloy::primitives::U256::ZERO).then(|| block.saturating_to::<u64>()))
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

    /// Every endpoint published between two blocks (inclusive), in chain order, as
    /// (address, endpoint): the Discovery contract's `AddressRegistered` events.
    pub async fn discovery_published(
        &self,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<(Address, String)>, ChainError> {
        let events = self
            .client()
            .events::<Discovery::AddressRegistered>(
                eth_address(self.contracts.discovery),
                from_block,
                to_block,
            )
            .await?;
        Ok(events
            .into_iter()
            .map(|(e, _, _)| (address(e.eth_address), e.endpoint))
            .collect())
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
