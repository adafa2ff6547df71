//! The channel life cycle as the core sees it: block ticks, chain events, open, deposit, close
//! and settle. On-chain claims (secrets, unlocks, punishment) are in `claims.rs`, the co-signed
//! withdraw and cooperative settle in `cosign.rs`.

use super::channel::{ChannelState, ChannelStatus};
use super::duties::Duty;
use super::state::TokenNetwork;
use super::{ActionError, ChainEvent, ContractCall, Core, Notification};
use crate::primitives::H256;
use crate::primitives::{Address, BlockCount, BlockNumber, ChannelId, SecretHash, TokenAmount};
use std::collections::BTreeMap;

impl Core {
    /// A confirmed chain head.
    pub(super) fn on_block(&mut self, block: BlockNumber) {
        if block <= self.state.block {
            return;
        }
        let previous = self.state.block;
        self.state.block = block;
        self.sweep_locks();
        self.expire_waiting_forwards();
        self.expire_cosigned_terms();
        self.retry_due_duties();
        self.prune_registered_secrets();
        let mut due = Vec::new();
        for c in self.state.channels() {
            let Some(after) = c.settle_possible_after() else {
                continue;
            };
            if block > after {
                due.push(c.identifier);
            } else if let ChannelStatus::Closed { closed_block, .. } = c.status {
                // Progress through the settle window, once per quarter.
                let total = after.0.saturating_sub(closed_block.0).max(1);
                let quarter = |b: BlockNumber| b.0.saturating_sub(closed_block.0) * 4 / total;
                if quarter(block) != quarter(previous) {
                    log::info!(
                        "{}: settle window {}% over, {} blocks to go (settle after block {after})",
                        c.identifier,
                        quarter(block) * 25,
                        after.0 - block.0
                    );
                }
            }
        }
        if self.state.config.auto_settle {
            for id in due {
                let _ = self.settle_channel(id);
            }
        }
    }

    pub(super) fn network_of_edge(&self, id: &ChannelId) -> Option<Address> {
        self.state.channel_index.get(id).copied().or_else(|| {
            self.state
                .token_networks
                .values()
                .find(|tn| tn.graph.knows(id))
                .map(|tn| tn.address)
        })
    }

    /// A confirmed contract log.
    pub(super) fn on_chain_event(&mut self, event: ChainEvent) {
        let us = self.state.our_address;
        match event {
            ChainEvent::TokenNetworkCreated {
                token,
                token_network,
                punish_window,
            } => {
                self.state.tokens.insert(token, token_network);
                self.state
                    .token_networks
                    .entry(token_network)
                    .or_insert(TokenNetwork {
                        address: token_network,
                        token,
                        punish_window,
                        channels: BTreeMap::new(),
                        graph: Default::default(),
                    });
            }
            ChainEvent::ChannelOpened {
                token_network,
                channel_identifier: id,
                participant1,
                participant2,
                settle_timeout,
                open_block_number,
            } => {
                let chain_id = self.state.config.chain_id;
                let reveal = BlockCount(
                    self.state
                        .config
                        .reveal_timeout
                        .0
                        .min(settle_timeout.0 / 3)
                        .max(1),
                );
                let Some(tn) = self.state.token_networks.get_mut(&token_network) else {
                    return;
                };
                let partner = if participant1 == us {
                    participant2
                } else if participant2 == us {
                    participant1
                } else {
                    tn.graph.add(id, participant1, participant2, false);
                    return;
                };
                tn.graph.add(id, participant1, participant2, true);
                let ch = ChannelState::new(
                    id,
                    token_network,
                    tn.token,
                    chain_id,
                    us,
                    partner,
                    open_block_number,
                    settle_timeout,
                    tn.punish_window,
                    reveal,
                );
                tn.channels.insert(id, ch);
                self.state.channel_index.insert(id, token_network);
                self.emit(Notification::ChannelChanged {
                    channel: id,
                    what: "opened",
                });
            }
            ChainEvent::ChannelDeposit {
                channel_identifier: id,
                participant,
                total_deposit,
            } => {
                let Some(tn) = self.network_of_edge(&id) else {
                    return;
                };
                let net = self.state.token_networks.get_mut(&tn).expect("found");
                net.graph.set_deposit(id, participant, total_deposit);
                if let Some(ch) = net.channels.get_mut(&id) {
                    if ch.our.address == participant {
                        ch.our.deposit = total_deposit;
                    } else if ch.partner.address == participant {
                        ch.partner.deposit = total_deposit;
                    }
                    self.emit(Notification::ChannelChanged {
                        channel: id,
                        what: "deposit",
                    });
                }
            }
            ChainEvent::ChannelWithdraw {
                channel_identifier: id,
                participant1,
                participant1_deposit,
                participant2,
                participant2_deposit,
                open_block_number,
            } => {
                let Some(tn) = self.network_of_edge(&id) else {
                    return;
                };
                let net = self.state.token_networks.get_mut(&tn).expect("found");
                net.graph
                    .set_deposit(id, participant1, participant1_deposit);
                net.graph
                    .set_deposit(id, participant2, participant2_deposit);
                if let Some(ch) = net.channels.get_mut(&id) {
                    let (ours, theirs) = if participant1 == us {
                        (participant1_deposit, participant2_deposit)
                    } else {
                        (participant2_deposit, participant1_deposit)
                    };
                    ch.start_new_epoch(open_block_number, ours, theirs);
                    self.state.delivery.drop_channel(id);
                    self.state.chain_retries.remove(&Duty::Cosigned(id));
                    self.emit(Notification::ChannelChanged {
                        channel: id,
                        what: "withdraw",
                    });
                }
            }
            ChainEvent::ChannelClosed {
                channel_identifier: id,
                closing_participant,
                transferred_amount,
                locksroot,
                block_number,
            } => {
                // The closer submitted its partner's proof.
                let submitted_for = self.state.channel(&id).map(|ch| {
                    if closing_participant == ch.our.address {
                        ch.partner.address
                    } else {
                        ch.our.address
                    }
                });
                if let Some(p) = submitted_for {
                    self.record_onchain(id, p, Some(locksroot), transferred_amount);
                }
                self.on_channel_closed(id, closing_participant, block_number)
            }
            ChainEvent::BalanceProofUpdated {
                channel_identifier: id,
                participant,
                transferred_amount,
                locksroot,
            } => {
                log::info!("{id}: balance proof of {participant:?} updated on chain");
                self.record_onchain(id, participant, Some(locksroot), transferred_amount);
                if self
                    .state
                    .channel(&id)
                    .is_some_and(|c| c.partner.address == participant)
                {
                    self.state.chain_retries.remove(&Duty::UpdateProof(id));
                    // The partner's tree is now on chain: its claimable locks can be unlocked.
                    self.plan_unlocks(id);
                }
            }
            ChainEvent::ChannelUnlocked {
                channel_identifier: id,
                payer_participant,
                lockhash,
                transferred_amount,
            } => {
                self.record_onchain(id, payer_participant, None, transferred_amount);
                self.on_unlocked_on_chain(id, payer_participant, lockhash)
            }
            ChainEvent::ChannelSettled {
                channel_identifier: id,
            }
            | ChainEvent::ChannelCooperativeSettled {
                channel_identifier: id,
            } => self.forget_channel(id),
            ChainEvent::ObsoleteUnlockPunished {
                channel_identifier: id,
                beneficiary,
                cheater,
            } => {
                log::warn!("{id}: {cheater:?} punished in favour of {beneficiary:?}");
                if beneficiary == us
                    && let Some(ch) = self.state.channel_mut(&id)
                {
                    ch.onchain.punished = true;
                }
                self.state
                    .chain_retries
                    .retain(|d, _| !matches!(d, Duty::Punish(c, _) if *c == id));
                self.emit(Notification::ChannelChanged {
                    channel: id,
                    what: "punished",
                });
            }
            ChainEvent::SecretRegistered {
                secrethash,
                secret,
                block_number,
            } => self.on_secret_registered(secrethash, secret, block_number),
        }
    }

    fn on_channel_closed(&mut self, id: ChannelId, closer: Address, block: BlockNumber) {
        if let Some(tn) = self.network_of_edge(&id) {
            self.state
                .token_networks
                .get_mut(&tn)
                .expect("found")
                .graph
                .remove(id);
        }
        let us = self.state.our_address;
        let Some(ch) = self.state.channel_mut(&id) else {
            return;
        };
        ch.status = ChannelStatus::Closed {
            closed_block: block,
            closed_by_us: closer == us,
        };
        // Co-signed terms need an open channel: they are dead now.
        ch.negotiation = None;
        self.state.delivery.drop_channel(id);
        self.state.chain_retries.remove(&Duty::Close(id));
        self.state.chain_retries.remove(&Duty::Cosigned(id));
        self.emit(Notification::ChannelChanged {
            channel: id,
            what: "closed",
        });
        if closer != us
            && let Some(call) = self.update_proof_call(id)
        {
            self.contract(call);
        }
        self.register_claimable_secrets(id);
        self.plan_unlocks(id);
        self.payments_on_closed_channel(id);
    }

    /// Drops a settled channel and everything that referred to it.
    fn forget_channel(&mut self, id: ChannelId) {
        let Some(tn) = self.network_of_edge(&id) else {
            return;
        };
        let net = self.state.token_networks.get_mut(&tn).expect("found");
        net.graph.remove(id);
        let Some(ch) = net.channels.remove(&id) else {
            return;
        };
        self.state.channel_index.remove(&id);
        self.state.chain_retries.retain(|d, _| match d {
            Duty::Close(c)
            | Duty::UpdateProof(c)
            | Duty::Unlocks(c)
            | Duty::Settle(c)
            | Duty::Cosigned(c)
            | Duty::Punish(c, _) => *c != id,
            Duty::RegisterSecret(_) => true,
        });
        // Direct transfers the partner never acknowledged count iff the proof of ours on chain
        // includes them (transferred amounts are cumulative; unlocks on chain add amounts
        // that are not part of that sequence, so they do not count here).
        let pending: Vec<(H256, TokenAmount)> = self
            .state
            .direct_pending
            .iter()
            .filter(|(_, (c, _))| *c == id)
            .map(|(h, (_, t))| (*h, *t))
            .collect();
        for (h, total) in pending {
            self.state.direct_pending.remove(&h);
            self.emit(if total <= ch.onchain.our_proof_transferred {
                Notification::TransferSucceeded {
                    id: h,
                    fee: TokenAmount::ZERO,
                }
            } else {
                Notification::TransferFailed {
                    id: h,
                    reason: "the partner never received it; the channel settled without it".into(),
                }
            });
        }
        self.state.delivery.drop_channel(id);
        self.forget_payments_on(id);
        self.emit(Notification::ChannelChanged {
            channel: id,
            what: "settled",
        });
    }

    /// A channel closed: transfers on it whose outcome can no longer change end now (no
    /// secret known to anyone who could claim); the rest wait for an on-chain unlock or the
    /// settlement.
    fn payments_on_closed_channel(&mut self, id: ChannelId) {
        let unrevealed: Vec<SecretHash> = self
            .state
            .initiators
            .iter()
            .filter(|(_, i)| !i.revealed && i.current.is_some_and(|a| a.channel == id))
            .map(|(h, _)| *h)
            .collect();
        for h in unrevealed {
            self.state.initiators.remove(&h);
            self.emit(Notification::TransferFailed {
                id: h.0,
                reason: "channel closed before the secret was revealed".into(),
            });
        }
        self.state
            .targets
            .retain(|_, t| t.payer_channel != id || t.secret.is_some());
        let meds: Vec<SecretHash> = self.state.mediators.keys().copied().collect();
        for h in meds {
            let m = self.state.mediators.get_mut(&h).expect("listed");
            if m.payer_channel == id && m.secret.is_none() {
                m.payer_done = true;
            }
            self.finish_mediator_if_done(h);
        }
    }

    /// Transfers whose locks sat on a settled channel are over: unclaimed locks went back to
    /// their payers.
    fn forget_payments_on(&mut self, id: ChannelId) {
        let initiators: Vec<SecretHash> = self
            .state
            .initiators
            .iter()
            .filter(|(_, i)| i.current.is_some_and(|a| a.channel == id))
            .map(|(h, _)| *h)
            .collect();
        for h in initiators {
            self.state.initiators.remove(&h);
            self.emit(Notification::TransferFailed {
                id: h.0,
                reason: "channel closed; the chain settles the lock".into(),
            });
        }
        self.state.targets.retain(|_, t| t.payer_channel != id);
        let meds: Vec<SecretHash> = self.state.mediators.keys().copied().collect();
        for h in meds {
            let m = self.state.mediators.get_mut(&h).expect("listed");
            if m.payer_channel == id {
                m.payer_done = true;
            }
            if m.payee.is_some_and(|a| a.channel == id) {
                m.payee_done = true;
            }
            self.finish_mediator_if_done(h);
        }
    }

    /// Submits a close with the partner's latest balance proof; on a channel already
    /// `Closing` (a close that failed or is slow), submits it again.
    pub(super) fn close_channel(&mut self, id: ChannelId) {
        let Some(ch) = self.state.channel_mut(&id) else {
            return;
        };
        if ch.status.is_closed() {
            return;
        }
        ch.status = ChannelStatus::Closing;
        let call = ContractCall::Close {
            token_network: ch.token_network,
            partner: ch.partner.address,
            balance_proof: ch.partner.latest_proof.map(|p| p.on_chain()),
        };
        self.contract(call);
    }

    /// Submits a settle once the settle window is over.
    pub(super) fn settle_channel(&mut self, id: ChannelId) -> Result<(), ActionError> {
        let block = self.state.block;
        let ch = self
            .state
            .channel_mut(&id)
            .ok_or(ActionError::UnknownChannel(id))?;
        let Some(after) = ch.settle_possible_after() else {
            return Err(ActionError::ChannelState(ch.status.api_name()));
        };
        if block <= after {
            return Err(ActionError::Invalid(format!(
                "the settle and punish windows last until block {after} (now {block})"
            )));
        }
        ch.status = ChannelStatus::Settling;
        let call = settle_call(ch);
        self.contract(call);
        Ok(())
    }

    pub(super) fn open_channel(
        &mut self,
        token: Address,
        partner: Address,
        deposit: TokenAmount,
        settle_timeout: BlockCount,
    ) -> Result<(), ActionError> {
        let tn = *self
            .state
            .tokens
            .get(&token)
            .ok_or(ActionError::UnknownToken(token))?;
        if partner == self.state.our_address || partner == Address::ZERO {
            return Err(ActionError::Invalid(
                "partner must be another account".into(),
            ));
        }
        if self.state.channel_with(&token, &partner).is_some() {
            return Err(ActionError::ChannelExists(partner));
        }
        let min = self.state.config.reveal_timeout.0 * 3;
        if settle_timeout.0 < min {
            return Err(ActionError::Invalid(format!(
                "settle_timeout must be at least {min} blocks"
            )));
        }
        self.contract(ContractCall::OpenChannel {
            token_network: tn,
            partner,
            settle_timeout,
            deposit,
        });
        Ok(())
    }

    pub(super) fn deposit(
        &mut self,
        id: ChannelId,
        amount: TokenAmount,
    ) -> Result<(), ActionError> {
        let ch = self
            .state
            .channel(&id)
            .ok_or(ActionError::UnknownChannel(id))?;
        if amount.is_zero() {
            return Err(ActionError::Invalid("deposit must be positive".into()));
        }
        // Outstanding withdraw terms would hand a new deposit to the partner (they fix the
        // balances, not the deposit): deposit only on a channel that is plainly open.
        if ch.status != ChannelStatus::Opened {
            return Err(ActionError::ChannelState(ch.status.api_name()));
        }
        let call = ContractCall::Deposit {
            token_network: ch.token_network,
            partner: ch.partner.address,
            amount,
        };
        self.contract(call);
        Ok(())
    }
}

/// `settleChannel` with the balance hashes the contract holds for both ends.
pub(super) fn settle_call(ch: &ChannelState) -> ContractCall {
    let (ot, ol) = ch.onchain.our;
    let (pt, pl) = ch.onchain.partner;
    ContractCall::Settle {
        token_network: ch.token_network,
        participant1: ch.our.address,
        participant1_transferred_amount: ot,
        participant1_locksroot: ol,
        participant2: ch.partner.address,
        participant2_transferred_amount: pt,
        participant2_locksroot: pl,
    }
}
