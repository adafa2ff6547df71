//! Routes each received message and user action to the rule or role that handles it.

use super::channel::Incoming;
use super::{Action, ActionError, Core, Notification};
use crate::messages::{
    AnnounceDisposed, AnnounceDisposedResponse, AnnounceDisposedResponse as Adr, MediatedTransfer,
    Message, RemoveExpiredHashlock, SignedMessage, Unlock, decode,
};
use crate::primitives::{Address, Secret};

impl Core {
    /// Decodes, authenticates and handles one message.
    pub(super) fn on_receive(&mut self, bytes: &[u8]) {
        let msg = match decode(bytes, self.state.config.chain_id) {
            Ok(m) => m,
            Err(e) => return self.reject(None, "message", e),
        };
        log::debug!("received {} from {:?}", msg.message.kind(), msg.sender);
        if let Some(why) = self.defer_while_chain_behind(&msg.message) {
            // Not acknowledged: the sender sends it again, and by then the view may be current.
            log::info!(
                "deferring {} from {:?}: {why}",
                msg.message.kind(),
                msg.sender
            );
            return;
        }
        match msg.message.clone() {
            Message::Ack(a) => {
                if self.state.delivery.acknowledge(msg.sender, a.echo) {
                    if self.state.direct_pending.remove(&a.echo).is_some() {
                        self.emit(Notification::TransferSucceeded {
                            id: a.echo,
                            fee: Default::default(),
                        });
                    }
                } else {
                    log::debug!("ignoring Ack from {:?} for nothing we sent it", msg.sender);
                }
            }
            Message::Ping(_) => self.ack(&msg),
            Message::DirectTransfer(m) => self.on_direct_transfer(&msg, &m),
            Message::MediatedTransfer(m) => self.on_mediated_transfer(&msg, &m),
            Message::SecretRequest(m) => {
                self.on_secret_request(&msg, &m);
                self.ack(&msg);
            }
            Message::RevealSecret(m) => {
                self.on_reveal_secret(msg.sender, m.secret);
                self.ack(&msg);
            }
            Message::Unlock(m) => self.on_unlock(&msg, &m),
            Message::RemoveExpiredHashlock(m) => self.on_remove_expired(&msg, &m),
            Message::AnnounceDisposed(m) => self.on_announce_disposed(&msg, &m),
            Message::AnnounceDisposedResponse(m) => self.on_disposed_response(&msg, &m),
            Message::WithdrawRequest(t) => self.on_withdraw_request(&msg, t),
            Message::WithdrawResponse(t) => {
                self.on_cosigned_response(&msg, super::channel::CosignedTerms::Withdraw(t))
            }
            Message::SettleRequest(t) => self.on_settle_request(&msg, t),
            Message::SettleResponse(t) => {
                self.on_cosigned_response(&msg, super::channel::CosignedTerms::Settle(t))
            }
        }
    }

    /// Applies a checked balance-proof message; true when it was fresh (then the caller runs
    /// the role logic and acks), false when refused or a duplicate (already handled).
    fn apply_checked(
        &mut self,
        msg: &SignedMessage,
        verdict: Option<Result<Incoming, super::channel::ChannelError>>,
        channel: crate::primitives::ChannelId,
    ) -> bool {
        match verdict {
            None => {
                self.reject(Some(msg.sender), msg.message.kind(), "unknown channel");
                false
            }
            Some(Err(e)) => {
                self.reject(Some(msg.sender), msg.message.kind(), e);
                false
            }
            Some(Ok(Incoming::Duplicate)) => {
                self.ack(msg);
                false
            }
            Some(Ok(fresh)) => {
                self.state
                    .channel_mut(&channel)
                    .expect("checked")
                    .accept(fresh);
                true
            }
        }
    }

    fn on_mediated_transfer(&mut self, msg: &SignedMessage, m: &MediatedTransfer) {
        let bp = &m.balance_proof;
        let block = self.state.block;
        let max_locks = self.state.config.max_pending_locks;
        let verdict = self
            .state
            .channel(&bp.channel_identifier)
            .map(|c| c.check_mediated(msg, bp, &m.lock, block, max_locks));
        if !self.apply_checked(msg, verdict, bp.channel_identifier) {
            return;
        }
        let h = m.lock.secrethash;
        if let Some(mode) = self.no_internet() {
            // We could neither register its secret nor watch its expiry: give it back now, so
            // the payer stops resending and fails or routes around us.
            log::info!(
                "{h:?}: no-internet mode ({}): giving back a mediated transfer from {:?}",
                mode.describe(),
                msg.sender
            );
            self.dispose(bp.channel_identifier, m.lock);
            return self.ack(msg);
        }
        // The secret may have been registered long before the lock reached us.
        if !self.state.registered_secrets.contains_key(&h) {
            self.out.push(super::Output::WatchSecret(h));
        }
        if m.target == self.state.our_address {
            self.target_on_transfer(bp.channel_identifier, msg.sender, m);
        } else {
            self.mediator_on_transfer(bp.channel_identifier, msg.sender, m);
        }
        self.ack(msg);
    }

    /// A secret reached us: whoever waits on it acts.
    pub(super) fn on_reveal_secret(&mut self, sender: Address, secret: Secret) {
        let h = secret.hash();
        if self.state.initiators.contains_key(&h) {
            self.initiator_on_reveal(sender, secret);
        }
        if self.state.mediators.contains_key(&h) {
            self.mediator_on_reveal(sender, secret);
        }
        if self.state.targets.contains_key(&h) {
            self.target_on_reveal(secret);
        }
    }

    fn on_unlock(&mut self, msg: &SignedMessage, m: &Unlock) {
        let bp = &m.balance_proof;
        let h = m.secret.hash();
        let lock = self
            .state
            .channel(&bp.channel_identifier)
            .and_then(|c| c.partner_lock(&h).copied());
        let verdict = self
            .state
            .channel(&bp.channel_identifier)
            .map(|c| c.check_unlock(msg, bp, &m.secret));
        if !self.apply_checked(msg, verdict, bp.channel_identifier) {
            return;
        }
        self.partner_lock_paid(
            bp.channel_identifier,
            lock.expect("checked: the lock exists"),
        );
        self.ack(msg);
    }

    fn on_remove_expired(&mut self, msg: &SignedMessage, m: &RemoveExpiredHashlock) {
        let bp = &m.balance_proof;
        let block = self.state.block;
        let verdict = self.state.channel(&bp.channel_identifier).map(|c| {
            let expiration = c
                .partner_lock(&m.secrethash)
                .map(|l| l.expiration)
                .unwrap_or_default();
            let registered = self.state.registered_by(&m.secrethash, expiration);
            c.check_remove_expired(msg, bp, &m.secrethash, block, registered)
        });
        if !self.apply_checked(msg, verdict, bp.channel_identifier) {
            return;
        }
        self.target_on_lock_gone(bp.channel_identifier, m.secrethash);
        self.mediator_on_payer_lock_gone(bp.channel_identifier, m.secrethash);
        self.ack(msg);
    }

    /// The payee gives our lock back: keep its signed statement, remove the lock, re-route.
    fn on_announce_disposed(&mut self, msg: &SignedMessage, m: &AnnounceDisposed) {
        let channel = m.channel_identifier;
        let h = m.lock.secrethash;
        let Some(ch) = self.state.channel(&channel) else {
            return self.reject(Some(msg.sender), "AnnounceDisposed", "unknown channel");
        };
        if msg.sender != ch.partner.address || m.open_block_number != ch.open_block_number {
            return self.reject(
                Some(msg.sender),
                "AnnounceDisposed",
                "not our partner or wrong epoch",
            );
        }
        if ch.our_lock(&h) != Some(&m.lock) || !ch.can_transfer() {
            // Already removed (a resend) or the channel is closing: nothing left to give back.
            return self.ack(msg);
        }
        let (transferred, locks) = (ch.our.transferred_amount, ch.our.locks_without(&h));
        let proof = super::channel::DisposedProof {
            lock: m.lock,
            additional_hash: msg.hash,
            signature: msg.signature,
        };
        self.state
            .channel_mut(&channel)
            .expect("exists")
            .disposed_to_us
            .insert(h, proof);
        self.send_balance_proof(channel, transferred, locks, |bp| {
            Message::AnnounceDisposedResponse(Adr {
                balance_proof: bp,
                secrethash: h,
            })
        });
        self.ack(msg);
        if self
            .state
            .initiators
            .get(&h)
            .is_some_and(|i| i.current.is_some_and(|a| a.channel == channel))
        {
            self.initiator_on_disposed(h);
        }
        self.mediator_on_disposed(channel, h);
    }

    fn on_disposed_response(&mut self, msg: &SignedMessage, m: &AnnounceDisposedResponse) {
        let bp = &m.balance_proof;
        let verdict = self.state.channel(&bp.channel_identifier).map(|c| {
            c.check_disposed_response(
                msg,
                bp,
                &m.secrethash,
                c.given_back.contains_key(&m.secrethash),
            )
        });
        if !self.apply_checked(msg, verdict, bp.channel_identifier) {
            return;
        }
        if let Some(ch) = self.state.channel_mut(&bp.channel_identifier)
            && let Some(announcement) = ch.given_back.remove(&m.secrethash)
        {
            // The lock left the partner's tree: nothing can claim it any more, and our
            // AnnounceDisposed is answered (its Ack may be lost; a resend could later match a
            // new lock with the same terms).
            self.state.delivery.drop_where(|p| p.hash == announcement);
        }
        self.target_on_lock_gone(bp.channel_identifier, m.secrethash);
        self.mediator_on_payer_lock_gone(bp.channel_identifier, m.secrethash);
        self.ack(msg);
    }

    /// Dispatches a user action.
    pub(super) fn on_action(
        &mut self,
        action: Action,
        rng: &mut dyn rand_core::RngCore,
    ) -> Result<(), ActionError> {
        match action {
            Action::Transfer(req) => {
                self.check_transfer(&req)?;
                let id = if req.is_direct {
                    self.send_direct(&req, rng)?
                } else {
                    self.start_mediated(&req, rng)?.0
                };
                if let Some(n) = req.identifier {
                    self.state.running_identifiers.insert(id, (req.target, n));
                }
                Ok(())
            }
            Action::CancelTransfer { secrethash } => self.cancel_transfer(secrethash),
            Action::AllowRevealSecret { secrethash } => self.allow_reveal_secret(secrethash),
            Action::OpenChannel {
                token,
                partner,
                deposit,
                settle_timeout,
            } => self.open_channel(token, partner, deposit, settle_timeout),
            Action::Deposit { channel, amount } => self.deposit(channel, amount),
            Action::Close { channel } => {
                let ch = self
                    .state
                    .channel(&channel)
                    .ok_or(ActionError::UnknownChannel(channel))?;
                if ch.status.is_closed() {
                    return Err(ActionError::ChannelState(ch.status.api_name()));
                }
                self.close_channel(channel);
                Ok(())
            }
            Action::Settle { channel } => self.settle_channel(channel),
            Action::Withdraw { channel, amount } => self.request_withdraw(channel, amount),
            Action::CooperativeSettle { channel } => self.request_cooperative_settle(channel),
            Action::RegisterSecret { secret } => {
                self.register_secret(secret);
                Ok(())
            }
            Action::SetNoInternet(on) => {
                self.switch_no_internet(on);
                Ok(())
            }
        }
    }
}
