//! The monitoring service's transactions and reads (third-party delegation, SPEC §8):
//! `updateBalanceProofDelegate`, `unlockDelegate`, `punishObsoleteUnlock` on behalf of another
//! participant, and the views it re-reads just before sending.

use alloy::primitives::U256;

use super::ChainError;
use super::calls::{ChainExecutor, TxOutcome};
use super::convert::{b256, eth_address, merkle_proof_bytes, signature_bytes};
use crate::delegation::{DelegatedProof, DelegatedUnlock, PunishEvidence};
use crate::primitives::{Address, H256, Nonce, Secret, TokenAmount};

impl ChainExecutor {
    /// `updateBalanceProofDelegate`: submits `partner`'s proof for `participant`.
    pub async fn update_balance_proof_delegate(
        &self,
        token_network: Address,
        partner: Address,
        participant: Address,
        proof: &DelegatedProof,
    ) -> Result<TxOutcome, ChainError> {
        self.send(
            "updateBalanceProofDelegate",
            self.tn(token_network).updateBalanceProofDelegate(
                eth_address(partner),
                eth_address(participant),
                proof.transferred_amount.0,
                b256(proof.locksroot.0),
                proof.nonce.0,
                b256(proof.additional_hash),
                signature_bytes(&proof.partner_signature),
                signature_bytes(&proof.delegation_signature),
            ),
        )
        .await
    }

    /// `unlockDelegate`: unlocks for `participant` a lock of `partner`'s proof, whose
    /// transferred amount on chain is `transferred_amount`.
    pub async fn unlock_delegate(
        &self,
        token_network: Address,
        partner: Address,
        participant: Address,
        transferred_amount: TokenAmount,
        unlock: &DelegatedUnlock,
    ) -> Result<TxOutcome, ChainError> {
        self.send(
            "unlockDelegate",
            self.tn(token_network).unlockDelegate(
                eth_address(partner),
                eth_address(participant),
                transferred_amount.0,
                U256::from(unlock.expiration.0),
                unlock.amount.0,
                b256(unlock.secrethash.0),
                merkle_proof_bytes(&unlock.merkle_proof),
                signature_bytes(&unlock.signature),
            ),
        )
        .await
    }

    /// A token network's `punish_block_number`: blocks after a settle window reserved for
    /// punishment (immutable: read once per network).
    pub async fn punish_window(
        &self,
        token_network: Address,
    ) -> Result<crate::primitives::BlockCount, ChainError> {
        if let Some(w) = self.punish_windows.lock().await.get(&token_network) {
            return Ok(*w);
        }
        let w = crate::primitives::BlockCount(
            self.tn(token_network).punish_block_number().call().await?,
        );
        self.punish_windows.lock().await.insert(token_network, w);
        Ok(w)
    }

    /// `registerSecret` in the SecretRegistry (a delegated lock's secret nobody registered).
    pub async fn register_secret(&self, secret: Secret) -> Result<TxOutcome, ChainError> {
        let registry = super::bindings::SecretRegistry::new(
            eth_address(self.contracts.secret_registry),
            self.client.provider(),
        );
        self.send("registerSecret", registry.registerSecret(b256(secret.0)))
            .await
    }

    /// `punishObsoleteUnlock` in favour of `beneficiary`.
    pub async fn punish_obsolete_unlock(
        &self,
        token_network: Address,
        beneficiary: Address,
        cheater: Address,
        evidence: &PunishEvidence,
    ) -> Result<TxOutcome, ChainError> {
        self.send(
            "punishObsoleteUnlock",
            self.tn(token_network).punishObsoleteUnlock(
                eth_address(beneficiary),
                eth_address(cheater),
                b256(evidence.lockhash),
                b256(evidence.additional_hash),
                signature_bytes(&evidence.partner_signature),
            ),
        )
        .await
    }

    /// The nonce of `participant`'s balance proof the chain holds in its channel with `partner`.
    pub async fn participant_nonce(
        &self,
        token_network: Address,
        participant: Address,
        partner: Address,
    ) -> Result<Nonce, ChainError> {
        let info = self
            .tn(token_network)
            .getParticipantInfo(eth_address(participant), eth_address(partner))
            .call()
            .await?;
        Ok(Nonce(info.nonce))
    }

    /// The nonce and stored balance hash (24 bytes) of `participant`'s balance proof the
    /// chain holds in its channel with `partner`.
    pub async fn participant_balance(
        &self,
        token_network: Address,
        participant: Address,
        partner: Address,
    ) -> Result<(Nonce, [u8; 24]), ChainError> {
        let info = self
            .tn(token_network)
            .getParticipantInfo(eth_address(participant), eth_address(partner))
            .call()
            .await?;
        Ok((Nonce(info.nonce), info.balance_hash.0))
    }

    /// Whether `payer`'s lock `lockhash` was unlocked on chain in its channel with `partner`.
    pub async fn lock_unlocked(
        &self,
        token_network: Address,
        payer: Address,
        partner: Address,
        lockhash: H256,
    ) -> Result<bool, ChainError> {
        Ok(self
            .tn(token_network)
            .queryUnlockedLocks(eth_address(payer), eth_address(partner), b256(lockhash))
            .call()
            .await?)
    }

    /// Whether the channel of the pair was punished (settling pays one side everything).
    pub async fn punished(
        &self,
        token_network: Address,
        participant1: Address,
        participant2: Address,
    ) -> Result<bool, ChainError> {
        let who = self
            .tn(token_network)
            .getPunishedBeneficiary(eth_address(participant1), eth_address(participant2))
            .call()
            .await?;
        Ok(!who.is_zero())
    }
}
