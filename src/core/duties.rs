//! On-chain duties: what the node must get done on chain for a channel or a secret, issued
//! again after a restart (`Input::Resume`) or a failed transaction (`Input::ContractFailed`).
//! A duty is re-derived from the state each time it is performed, so a retry never submits a
//! stale transaction (an old proof, an unlock with an outdated transferred amount) and does
//! nothing once the chain shows the duty done.

use super::channel::{ChannelStatus, CosignedTerms};
use super::{ContractCall, ContractFailure, Core, Notification};
use crate::primitives::{BlockNumber, ChannelId, H256, SecretHash};
use crate::proofs::channel_identifier;
use serde::{Deserialize, Serialize};

/// Something to get done on chain, named by what it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Duty {
    /// Close the channel (it is `Closing`).
    Close(ChannelId),
    /// Put the partner's latest balance proof on chain after a close.
    UpdateProof(ChannelId),
    /// Unlock every claimable partner lock whose secret is registered in time.
    Unlocks(ChannelId),
    /// Settle the channel (it is `Settling`).
    Settle(ChannelId),
    /// Register a secret in the SecretRegistry.
    RegisterSecret(SecretHash),
    /// Submit withdraw or cooperative-settle terms we proposed and the partner co-signed.
    Cosigned(ChannelId),
    /// Punish the partner for unlocking on chain a lock (by lockhash) it had given back.
    Punish(ChannelId, H256),
}

/// When a failed duty is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// Failed attempts so far.
    pub attempts: u32,
    /// First block at which to try again.
    pub at: BlockNumber,
}

/// Longest pause between two attempts, in blocks.
const MAX_BACKOFF_BLOCKS: u64 = 8;

/// Reverts that mean the chain already holds what the duty wanted.
fn already_done(duty: &Duty, failure: &ContractFailure) -> bool {
    let Some(error) = failure.revert_error() else {
        return false;
    };
    matches!(
        (duty, error),
        (Duty::UpdateProof(_), "NonceNotHigher") | (Duty::Punish(..), "AlreadyPunished")
    )
}

impl Core {
    /// The duty a contract call serves (none for opening and depositing, which the user
    /// asked for and is told about instead).
    fn duty_of(&self, call: &ContractCall) -> Option<Duty> {
        let us = self.state.our_address;
        let channel = |tn, partner| ChannelId(channel_identifier(us, partner, tn).0);
        Some(match call {
            ContractCall::OpenChannel { .. } | ContractCall::Deposit { .. } => return None,
            ContractCall::Close {
                token_network,
                partner,
                ..
            } => Duty::Close(channel(*token_network, *partner)),
            ContractCall::UpdateBalanceProof {
                token_network,
                partner,
                ..
            } => Duty::UpdateProof(channel(*token_network, *partner)),
            ContractCall::Unlock {
                token_network,
                partner,
                ..
            } => Duty::Unlocks(channel(*token_network, *partner)),
            ContractCall::Settle {
                token_network,
                participant2,
                ..
            } => Duty::Settle(channel(*token_network, *participant2)),
            ContractCall::RegisterSecret { secret } => Duty::RegisterSecret(secret.hash()),
            ContractCall::Withdraw {
                token_network,
                partner,
                ..
            } => Duty::Cosigned(channel(*token_network, *partner)),
            ContractCall::CooperativeSettle {
                token_network,
                participant2,
                ..
            } => Duty::Cosigned(channel(*token_network, *participant2)),
            ContractCall::PunishObsoleteUnlock {
                token_network,
                partner,
                lockhash,
                ..
            } => Duty::Punish(channel(*token_network, *partner), *lockhash),
        })
    }

    /// A transaction failed: tell the user, undo what assumed it in flight, and schedule the
    /// duty again (performed from the state then, so it may turn out to be done already).
    pub(super) fn on_contract_failed(&mut self, call: ContractCall, failure: ContractFailure) {
        log::warn!("transaction failed ({failure}): {call:?}");
        self.emit(Notification::TransactionFailed {
            call: call.clone(),
            reason: failure.to_string(),
        });
        let Some(duty) = self.duty_of(&call) else {
            return;
        };
        match duty {
            Duty::Unlocks(id) => {
                // The unlocks submitted after a failed one carried amounts that assumed it.
                if let Some(ch) = self.state.channel_mut(&id) {
                    ch.onchain.unlocking.clear();
                }
            }
            Duty::RegisterSecret(h) => {
                // Still in `registering`: the retry below re-submits it.
                log::warn!("registering the secret of {h:?} failed; retrying next block");
            }
            _ => {}
        }
        if already_done(&duty, &failure) {
            return;
        }
        let block = self.state.block;
        let attempts = self
            .state
            .chain_retries
            .get(&duty)
            .map_or(1, |r| r.attempts.saturating_add(1));
        // A secret registration races a lock's expiration: every block. The rest back off.
        let wait = match duty {
            Duty::RegisterSecret(_) => 1,
            _ => (1u64 << attempts.saturating_sub(1).min(3)).min(MAX_BACKOFF_BLOCKS),
        };
        self.state.chain_retries.insert(
            duty,
            Retry {
                attempts,
                at: block.plus(crate::primitives::BlockCount(wait)),
            },
        );
    }

    /// Performs the retries that are due at the current block.
    pub(super) fn retry_due_duties(&mut self) {
        let block = self.state.block;
        let due: Vec<Duty> = self
            .state
            .chain_retries
            .iter()
            .filter(|(_, r)| r.at <= block)
            .map(|(d, _)| *d)
            .collect();
        for duty in due {
            log::info!("retrying {duty:?}");
            self.perform(duty, true);
        }
    }

    /// Every duty the state implies (after a restart, when transactions may have died with
    /// the process). Duplicates of transactions that did go through revert and change nothing.
    pub(super) fn resume_chain_duties(&mut self) {
        let mut duties = Vec::new();
        for ch in self.state.channels() {
            let id = ch.identifier;
            match ch.status {
                ChannelStatus::Closing => duties.push(Duty::Close(id)),
                ChannelStatus::Closed { .. } => {
                    duties.push(Duty::UpdateProof(id));
                    duties.push(Duty::Unlocks(id));
                }
                ChannelStatus::Settling => duties.push(Duty::Settle(id)),
                ChannelStatus::Withdrawing | ChannelStatus::CooperativeSettling => {
                    duties.push(Duty::Cosigned(id))
                }
                ChannelStatus::Opened => {}
            }
            if ch.status.is_closed() {
                for lockhash in &ch.onchain.unlocked {
                    duties.push(Duty::Punish(id, *lockhash));
                }
            }
        }
        duties.extend(
            self.state
                .registering
                .keys()
                .map(|h| Duty::RegisterSecret(*h)),
        );
        if !duties.is_empty() {
            log::info!("resuming on-chain duties after the restart: {duties:?}");
        }
        for duty in duties {
            self.perform(duty, false);
        }
    }

    /// Submits what `duty` still needs, if anything. `retry`: after a failure (a duty that
    /// needs nothing more is forgotten).
    fn perform(&mut self, duty: Duty, retry: bool) {
        let attempts = self.state.chain_retries.remove(&duty).map(|r| r.attempts);
        let block = self.state.block;
        let call = match duty {
            Duty::Close(id) => self.state.channel(&id).and_then(|ch| {
                (ch.status == ChannelStatus::Closing).then(|| ContractCall::Close {
                    token_network: ch.token_network,
                    partner: ch.partner.address,
                    balance_proof: ch.partner.latest_proof.map(|p| p.on_chain()),
                })
            }),
            Duty::UpdateProof(id) => self.update_proof_call(id),
            Duty::Unlocks(id) => {
                if let Some(ch) = self.state.channel_mut(&id) {
                    ch.onchain.unlocking.clear();
                }
                self.plan_unlocks(id);
                None
            }
            Duty::Settle(id) => self
                .state
                .channel(&id)
                .filter(|ch| ch.status == ChannelStatus::Settling)
                .map(super::lifecycle::settle_call),
            Duty::RegisterSecret(h) => {
                let registered = self.state.registered_secrets.contains_key(&h);
                match self.state.registering.get(&h) {
                    Some(secret) if !registered => {
                        Some(ContractCall::RegisterSecret { secret: *secret })
                    }
                    _ => {
                        self.state.registering.remove(&h);
                        None
                    }
                }
            }
            Duty::Cosigned(id) => self.cosigned_call(id),
            Duty::Punish(id, lockhash) => self.punish_call(id, lockhash),
        };
        if let Some(call) = call {
            if retry {
                log::info!(
                    "{duty:?}: attempt {} at block {block}",
                    attempts.unwrap_or(0) + 1
                );
            }
            // Keep the count: a further failure backs off longer.
            if let Some(attempts) = attempts {
                self.state.chain_retries.insert(
                    duty,
                    Retry {
                        attempts,
                        at: BlockNumber(u64::MAX),
                    },
                );
            }
            self.contract(call);
        }
    }

    /// `updateBalanceProof` with the partner's latest proof, if the chain holds an older one
    /// and the window is open.
    pub(super) fn update_proof_call(&self, id: ChannelId) -> Option<ContractCall> {
        let ch = self.state.channel(&id)?;
        if self.state.block > ch.settle_block()? {
            return None;
        }
        let p = ch.partner.latest_proof?;
        let bp = p.balance_proof;
        // Unlocks raise the amount on chain; only an older proof needs the update.
        let held = (bp.transferred_amount, bp.locksroot);
        (held.1 != ch.onchain.partner.1 || held.0 > ch.onchain.partner.0).then(|| {
            ContractCall::UpdateBalanceProof {
                token_network: ch.token_network,
                partner: ch.partner.address,
                balance_proof: p.on_chain(),
            }
        })
    }

    /// The withdraw or cooperative settle we proposed, once co-signed and still valid.
    pub(super) fn cosigned_call(&self, id: ChannelId) -> Option<ContractCall> {
        let ch = self.state.channel(&id)?;
        let n = ch.negotiation.as_ref().filter(|n| n.ours)?;
        let partner_signature = n.partner_signature?;
        if self.state.block > n.terms.expiration() || ch.status != n.terms.status() {
            return None;
        }
        Some(match n.terms {
            CosignedTerms::Withdraw(t) => ContractCall::Withdraw {
                token_network: ch.token_network,
                participant: ch.our.address,
                partner: ch.partner.address,
                participant_balance: t.participant_balance,
                participant_withdraw: t.participant_withdraw,
                expiration: t.expiration,
                participant_signature: n.our_signature,
                partner_signature,
            },
            CosignedTerms::Settle(t) => ContractCall::CooperativeSettle {
                token_network: ch.token_network,
                participant1: t.participant1,
                participant1_balance: t.participant1_balance,
                participant2: t.participant2,
                participant2_balance: t.participant2_balance,
                expiration: t.expiration,
                participant1_signature: n.our_signature,
                participant2_signature: partner_signature,
            },
        })
    }

    /// `punishObsoleteUnlock` of the partner's on-chain unlock of `lockhash`, a lock of ours it
    /// had given back, while the channel is closed and not yet punished.
    pub(super) fn punish_call(&self, id: ChannelId, lockhash: H256) -> Option<ContractCall> {
        let ch = self.state.channel(&id)?;
        if !ch.status.is_closed() || ch.onchain.punished || !ch.onchain.unlocked.contains(&lockhash)
        {
            return None;
        }
        let d = ch
            .disposed_to_us
            .values()
            .find(|d| d.lock.lockhash() == lockhash)?;
        Some(ContractCall::PunishObsoleteUnlock {
            token_network: ch.token_network,
            partner: ch.partner.address,
            lockhash,
            additional_hash: d.additional_hash,
            signature: d.signature,
        })
    }
}
