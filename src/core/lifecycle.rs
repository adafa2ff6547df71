//! The channel life cycle as the core sees it: chain events, block ticks, open, deposit,
//! close, balance-proof update, on-chain unlock, settle, punish, and the co-signed withdraw and
//! cooperative settle.

use super::channel::{ChannelState, ChannelStatus, Negotiation};
use super::state::TokenNetwork;
use super::{ActionError, ChainEvent, ContractCall, Core, Notification};
use crate::messages::{Message, SettleTerms, SignedMessage, WithdrawTerms};
use crate::primitives::H256;
use crate::primitives::{
    Address, BlockCount, BlockNumber, ChannelId, Locksroot, Secret, SecretHash, TokenAmount,
};
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
        let window = self.state.config.punish_window;
        let mut due = Vec::new();
        for c in self.state.channels() {
            let Some(after) = c.settle_possible_after(window) else {
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

    fn network_of_edge(&self, id: &ChannelId) -> Option<Address> {
        self.state.channel_index.get(id).copied().or_else(|| {
            self.state
                .token_networks
                .values()
                .find(|tn| tn.graph.edge(id).is_some())
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
            } => {
                self.state.tokens.insert(token, token_network);
                self.state
                    .token_networks
                    .entry(token_network)
                    .or_insert(TokenNetwork {
                        address: token_network,
                        token,
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
                tn.graph.add(id, participant1, participant2);
                let partner = if participant1 == us {
                    participant2
                } else if participant2 == us {
                    participant1
                } else {
                    return;
                };
                let ch = ChannelState::new(
                    id,
                    token_network,
                    tn.token,
                    chain_id,
                    us,
                    partner,
                    open_block_number,
                    settle_timeout,
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
                channel_identifier,
                participant,
                transferred_amount,
                locksroot,
            } => {
                log::info!(
                    "{channel_identifier}: balance proof of {participant:?} updated on chain"
                );
                self.record_onchain(
                    channel_identifier,
                    participant,
                    Some(locksroot),
                    transferred_amount,
                );
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
                channel_identifier,
                beneficiary,
                cheater,
            } => {
                log::warn!(
                    "{channel_identifier}: {cheater:?} punished in favour of {beneficiary:?}"
                );
                self.emit(Notification::ChannelChanged {
                    channel: channel_identifier,
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

    fn on_secret_registered(&mut self, h: SecretHash, secret: Secret, block: BlockNumber) {
        if secret.hash() != h {
            return;
        }
        self.state.registered_secrets.insert(h, (secret, block));
        let ids: Vec<ChannelId> = self.state.channels().map(|c| c.identifier).collect();
        for id in ids {
            let ch = self.state.channel(&id).expect("listed");
            let ours = ch.our_lock(&h).is_some_and(|l| l.expiration >= block);
            let theirs = ch.partner_lock(&h).copied();
            let closed = ch.status.is_closed();
            if ours {
                // The payee can claim on chain anyway: settle it off chain instead.
                self.pay_payee(id, secret);
            }
            if let Some(lock) = theirs {
                self.learn_partner_secret(id, secret);
                if closed && lock.expiration >= block {
                    self.unlock_on_chain(id, h);
                }
            }
        }
        if let Some(t) = self.state.targets.get_mut(&h) {
            t.secret.get_or_insert(secret);
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
        ch.negotiation = None;
        let update = (closer != us).then_some(ch.partner.latest_proof).flatten();
        let (tn, partner) = (ch.token_network, ch.partner.address);
        let claimable: Vec<SecretHash> = ch.partner.locks.iter().map(|l| l.secrethash).collect();
        self.state.delivery.drop_channel(id);
        self.emit(Notification::ChannelChanged {
            channel: id,
            what: "closed",
        });
        if let Some(p) = update {
            self.contract(ContractCall::UpdateBalanceProof {
                token_network: tn,
                partner,
                balance_proof: p.on_chain(),
            });
        }
        for h in claimable {
            let ch = self.state.channel(&id).expect("exists");
            let lock = *ch.partner_lock(&h).expect("listed");
            if self.state.registered_by(&h, lock.expiration) {
                self.unlock_on_chain(id, h);
            } else if let Some(secret) = ch.partner.secrets.get(&h).copied()
                && block <= lock.expiration
                && self.state.registering.insert(h)
            {
                self.contract(ContractCall::RegisterSecret { secret });
            }
        }
        self.payments_on_closed_channel(id);
    }

    /// Claims the partner's lock `h` on a closed channel.
    fn unlock_on_chain(&mut self, id: ChannelId, h: SecretHash) {
        let Some(ch) = self.state.channel(&id) else {
            return;
        };
        let (Some(lock), Some(proof)) = (ch.partner_lock(&h).copied(), ch.partner.merkle_proof(&h))
        else {
            return;
        };
        let transferred_amount = ch.partner.transferred_amount;
        self.contract(ContractCall::Unlock {
            token_network: ch.token_network,
            partner: ch.partner.address,
            transferred_amount,
            lock,
            merkle_proof: proof,
        });
    }

    fn on_unlocked_on_chain(
        &mut self,
        id: ChannelId,
        payer: Address,
        lockhash: crate::primitives::H256,
    ) {
        let Some(ch) = self.state.channel_mut(&id) else {
            return;
        };
        let end = if ch.our.address == payer {
            &mut ch.our
        } else {
            &mut ch.partner
        };
        if let Some(i) = end.locks.iter().position(|l| l.lockhash() == lockhash) {
            let lock = end.locks.remove(i);
            end.transferred_amount = end.transferred_amount.saturating_add(lock.amount);
            if payer == ch.our.address {
                self.our_lock_paid(id, lock);
            } else {
                self.target_on_unlock(id, lock.secrethash);
                self.mediator_on_payer_unlock(id, lock.secrethash);
            }
        }
        // A lock of ours the partner gave back (and we removed) claimed anyway: punish it.
        let Some(ch) = self.state.channel(&id) else {
            return;
        };
        if payer == ch.our.address
            && let Some(d) = ch
                .disposed_to_us
                .values()
                .find(|d| d.lock.lockhash() == lockhash)
                .copied()
        {
            log::warn!(
                "{id}: {:?} unlocked on chain lock {:?} it had given back; punishing",
                ch.partner.address,
                d.lock.secrethash
            );
            let call = ContractCall::PunishObsoleteUnlock {
                token_network: ch.token_network,
                partner: ch.partner.address,
                lockhash,
                additional_hash: d.additional_hash,
                signature: d.signature,
            };
            self.contract(call);
        }
    }

    /// Records `participant`'s balance hash as the chain now holds it (an unlock changes only
    /// the transferred amount).
    fn record_onchain(
        &mut self,
        id: ChannelId,
        participant: Address,
        locksroot: Option<Locksroot>,
        transferred: TokenAmount,
    ) {
        let Some(ch) = self.state.channel_mut(&id) else {
            return;
        };
        let slot = if participant == ch.our.address {
            &mut ch.onchain.our
        } else if participant == ch.partner.address {
            &mut ch.onchain.partner
        } else {
            return;
        };
        slot.0 = transferred;
        if let Some(root) = locksroot {
            slot.1 = root;
        }
    }

    /// Drops a settled channel and everything that referred to it.
    fn forget_channel(&mut self, id: ChannelId) {
        if let Some(tn) = self.network_of_edge(&id) {
            let net = self.state.token_networks.get_mut(&tn).expect("found");
            net.graph.remove(id);
            if let Some(ch) = net.channels.remove(&id) {
                self.state.channel_index.remove(&id);
                // Direct transfers the partner never acknowledged count iff the proof on chain
                // includes them (transferred amounts are cumulative).
                let pending: Vec<(H256, TokenAmount)> = self
                    .state
                    .direct_pending
                    .iter()
                    .filter(|(_, (c, _))| *c == id)
                    .map(|(h, (_, t))| (*h, *t))
                    .collect();
                for (h, total) in pending {
                    self.state.direct_pending.remove(&h);
                    self.emit(if total <= ch.onchain.our.0 {
                        Notification::TransferSucceeded {
                            id: h,
                            fee: TokenAmount::ZERO,
                        }
                    } else {
                        Notification::TransferFailed {
                            id: h,
                            reason: "the partner never received it; the channel settled without it"
                                .into(),
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
        }
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

    /// Submits a close with the partner's latest balance proof.
    pub(super) fn close_channel(&mut self, id: ChannelId) {
        let Some(ch) = self.state.channel_mut(&id) else {
            return;
        };
        if ch.status.is_closed() || ch.status == ChannelStatus::Closing {
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
        let window = self.state.config.punish_window;
        let ch = self
            .state
            .channel_mut(&id)
            .ok_or(ActionError::UnknownChannel(id))?;
        let Some(after) = ch.settle_possible_after(window) else {
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

    /// After a restart: issues again every on-chain duty whose transaction may have been lost
    /// with the process (a close we started, the update of the partner's proof, unlocks of
    /// claimable locks, secrets we were registering, a settle). Idempotent: a duplicate of a
    /// transaction that did go through reverts and changes nothing.
    pub(super) fn resume_chain_duties(&mut self) {
        let block = self.state.block;
        let mut calls = Vec::new();
        let mut unlocks = Vec::new();
        for ch in self.state.channels() {
            match ch.status {
                ChannelStatus::Closing => calls.push(ContractCall::Close {
                    token_network: ch.token_network,
                    partner: ch.partner.address,
                    balance_proof: ch.partner.latest_proof.map(|p| p.on_chain()),
                }),
                ChannelStatus::Closed { closed_block, .. }
                    if block <= closed_block.plus(ch.settle_timeout) =>
                {
                    if let Some(p) = ch.partner.latest_proof {
                        let bp = p.balance_proof;
                        let held = (bp.transferred_amount, bp.locksroot);
                        // Unlocks raise the amount on chain; only an older proof needs the update.
                        if held.1 != ch.onchain.partner.1 || held.0 > ch.onchain.partner.0 {
                            calls.push(ContractCall::UpdateBalanceProof {
                                token_network: ch.token_network,
                                partner: ch.partner.address,
                                balance_proof: p.on_chain(),
                            });
                        }
                    }
                    for l in &ch.partner.locks {
                        if self.state.registered_by(&l.secrethash, l.expiration) {
                            unlocks.push((ch.identifier, l.secrethash));
                        }
                    }
                }
                ChannelStatus::Settling => calls.push(settle_call(ch)),
                _ => {}
            }
        }
        for h in &self.state.registering {
            if self.state.registered_secrets.contains_key(h) {
                continue;
            }
            let secret = self
                .state
                .channels()
                .find_map(|c| c.partner.secrets.get(h).or_else(|| c.our.secrets.get(h)))
                .copied();
            if let Some(secret) = secret {
                calls.push(ContractCall::RegisterSecret { secret });
            }
        }
        if !calls.is_empty() || !unlocks.is_empty() {
            log::info!(
                "resuming {} on-chain duties after the restart",
                calls.len() + unlocks.len()
            );
        }
        for call in calls {
            self.contract(call);
        }
        for (id, h) in unlocks {
            self.unlock_on_chain(id, h);
        }
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
        if ch.status.is_closed() || ch.status == ChannelStatus::Closing {
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

    /// Checks a channel may start a co-signed operation: open, idle and lock-free.
    fn ready_for_cosign(&self, id: ChannelId) -> Result<&ChannelState, ActionError> {
        let ch = self
            .state
            .channel(&id)
            .ok_or(ActionError::UnknownChannel(id))?;
        if ch.status != ChannelStatus::Opened {
            return Err(ActionError::ChannelState(ch.status.api_name()));
        }
        if !ch.our.locks.is_empty() || !ch.partner.locks.is_empty() {
            return Err(ActionError::Invalid(
                "channel has pending locks; retry when they are resolved".into(),
            ));
        }
        Ok(ch)
    }

    pub(super) fn request_withdraw(
        &mut self,
        id: ChannelId,
        amount: TokenAmount,
    ) -> Result<(), ActionError> {
        let ch = self.ready_for_cosign(id)?;
        let balance = ch.our_balance();
        if amount.is_zero() || amount > balance {
            return Err(ActionError::InsufficientBalance {
                available: balance.to_string(),
                requested: amount.to_string(),
            });
        }
        let terms = WithdrawTerms {
            channel_identifier: id,
            open_block_number: ch.open_block_number,
            participant: ch.our.address,
            participant_balance: balance,
            participant_withdraw: amount,
        };
        let partner = ch.partner.address;
        let signed = self.send_message(partner, Message::WithdrawRequest(terms), None);
        let ch = self.state.channel_mut(&id).expect("exists");
        ch.status = ChannelStatus::Withdrawing;
        ch.negotiation = Some(Negotiation::WithdrawRequested {
            terms,
            our_signature: signed.signature,
            at_ms: self.now_ms,
        });
        Ok(())
    }

    pub(super) fn request_cooperative_settle(&mut self, id: ChannelId) -> Result<(), ActionError> {
        let ch = self.ready_for_cosign(id)?;
        let terms = SettleTerms {
            channel_identifier: id,
            open_block_number: ch.open_block_number,
            participant1: ch.our.address,
            participant1_balance: ch.our_balance(),
            participant2: ch.partner.address,
            participant2_balance: ch.partner_balance(),
        };
        let partner = ch.partner.address;
        let signed = self.send_message(partner, Message::SettleRequest(terms), None);
        let ch = self.state.channel_mut(&id).expect("exists");
        ch.status = ChannelStatus::CooperativeSettling;
        ch.negotiation = Some(Negotiation::SettleRequested {
            terms,
            our_signature: signed.signature,
            at_ms: self.now_ms,
        });
        Ok(())
    }

    fn refuse_request(&mut self, msg: &SignedMessage, channel: ChannelId, reason: &'static str) {
        self.reject(Some(msg.sender), msg.message.kind(), reason);
        self.emit(Notification::ChannelRequestRefused {
            channel,
            reason: reason.into(),
        });
        self.ack(msg);
    }

    pub(super) fn on_withdraw_request(&mut self, msg: &SignedMessage, t: WithdrawTerms) {
        let id = t.channel_identifier;
        let ch = match self.ready_for_cosign(id) {
            Ok(ch) => ch,
            Err(_) => {
                return self.refuse_request(
                    msg,
                    id,
                    "channel busy, closed, unknown or holding locks",
                );
            }
        };
        if msg.sender != ch.partner.address
            || t.participant != msg.sender
            || t.open_block_number != ch.open_block_number
        {
            return self.refuse_request(
                msg,
                id,
                "withdraw not from the partner for itself in this epoch",
            );
        }
        if t.participant_balance != ch.partner_balance()
            || t.participant_withdraw.is_zero()
            || t.participant_withdraw > t.participant_balance
        {
            return self.refuse_request(msg, id, "withdraw terms disagree with our balances");
        }
        let partner = ch.partner.address;
        self.send_message(partner, Message::WithdrawResponse(t), None);
        let ch = self.state.channel_mut(&id).expect("exists");
        ch.status = ChannelStatus::Withdrawing;
        ch.negotiation = Some(Negotiation::WithdrawCosigned { terms: t });
        self.ack(msg);
    }

    pub(super) fn on_withdraw_response(&mut self, msg: &SignedMessage, t: WithdrawTerms) {
        self.ack(msg);
        let Some(ch) = self.state.channel_mut(&t.channel_identifier) else {
            return;
        };
        let Some(Negotiation::WithdrawRequested {
            terms,
            our_signature,
            ..
        }) = ch.negotiation.clone()
        else {
            return;
        };
        if terms != t || msg.sender != ch.partner.address {
            return;
        }
        ch.negotiation = Some(Negotiation::WithdrawCosigned { terms });
        let call = ContractCall::Withdraw {
            token_network: ch.token_network,
            participant: ch.our.address,
            partner: ch.partner.address,
            participant_balance: t.participant_balance,
            participant_withdraw: t.participant_withdraw,
            participant_signature: our_signature,
            partner_signature: msg.signature,
        };
        self.contract(call);
    }

    pub(super) fn on_settle_request(&mut self, msg: &SignedMessage, t: SettleTerms) {
        let id = t.channel_identifier;
        let ch = match self.ready_for_cosign(id) {
            Ok(ch) => ch,
            Err(_) => {
                return self.refuse_request(
                    msg,
                    id,
                    "channel busy, closed, unknown or holding locks",
                );
            }
        };
        let ours = t.participant2 == ch.our.address
            && t.participant1 == msg.sender
            && msg.sender == ch.partner.address;
        if !ours || t.open_block_number != ch.open_block_number {
            return self.refuse_request(
                msg,
                id,
                "settle not from the partner for this channel epoch",
            );
        }
        let sum = t.participant1_balance.checked_add(t.participant2_balance);
        if t.participant1_balance != ch.partner_balance()
            || t.participant2_balance != ch.our_balance()
            || sum != Some(ch.total_deposit())
        {
            return self.refuse_request(msg, id, "settle balances disagree with ours");
        }
        let partner = ch.partner.address;
        self.send_message(partner, Message::SettleResponse(t), None);
        let ch = self.state.channel_mut(&id).expect("exists");
        ch.status = ChannelStatus::CooperativeSettling;
        ch.negotiation = Some(Negotiation::SettleCosigned { terms: t });
        self.ack(msg);
    }

    pub(super) fn on_settle_response(&mut self, msg: &SignedMessage, t: SettleTerms) {
        self.ack(msg);
        let Some(ch) = self.state.channel_mut(&t.channel_identifier) else {
            return;
        };
        let Some(Negotiation::SettleRequested {
            terms,
            our_signature,
            ..
        }) = ch.negotiation.clone()
        else {
            return;
        };
        if terms != t || msg.sender != ch.partner.address {
            return;
        }
        ch.negotiation = Some(Negotiation::SettleCosigned { terms });
        let call = ContractCall::CooperativeSettle {
            token_network: ch.token_network,
            participant1: t.participant1,
            participant1_balance: t.participant1_balance,
            participant2: t.participant2,
            participant2_balance: t.participant2_balance,
            participant1_signature: our_signature,
            participant2_signature: msg.signature,
        };
        self.contract(call);
    }

    /// Gives up on withdraw/settle requests the partner never co-signed.
    pub(super) fn check_request_timeouts(&mut self) {
        let (now, timeout) = (self.now_ms, self.state.config.request_timeout_ms);
        let stale: Vec<ChannelId> = self
            .state
            .channels()
            .filter(|c| match c.negotiation {
                Some(Negotiation::WithdrawRequested { at_ms, .. })
                | Some(Negotiation::SettleRequested { at_ms, .. }) => now >= at_ms + timeout,
                _ => false,
            })
            .map(|c| c.identifier)
            .collect();
        for id in stale {
            let ch = self.state.channel_mut(&id).expect("listed");
            ch.negotiation = None;
            ch.status = ChannelStatus::Opened;
            self.emit(Notification::ChannelRequestRefused {
                channel: id,
                reason: "the partner did not co-sign in time".into(),
            });
        }
    }
}

/// `settleChannel` with the balance hashes the contract holds for both ends.
fn settle_call(ch: &ChannelState) -> ContractCall {
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
