//! Co-signed channel changes: a withdraw (the channel stays open in a new epoch) and a
//! cooperative settle (paid out at once).
//!
//! The rule that keeps them safe: terms carry an expiration block the contract enforces, and
//! from the moment we sign terms until they are executed, expire on chain or the channel
//! closes, the channel takes no transfer and no deposit in either direction. The partner
//! holding our signature could have the terms executed at any block up to the expiration; they
//! fix both balances, so anything paid meanwhile would be voided and a deposit would go to
//! the partner. With the expiration the freeze is bounded: a partner that never answers, or
//! refuses, costs us `cosign_window` blocks, never tokens.

use super::channel::{ChannelState, ChannelStatus, CosignedTerms, Negotiation};
use super::duties::Duty;
use super::{ActionError, Core, Notification};
use crate::messages::{Message, SettleTerms, SignedMessage, WithdrawTerms};
use crate::primitives::{BlockNumber, ChannelId, Signature};

impl Core {
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

    /// The expiration of terms we propose now.
    fn our_terms_expiration(&self) -> BlockNumber {
        self.state.block.plus(self.state.config.cosign_window)
    }

    /// Records terms carrying our signature: the channel is frozen until they are settled.
    fn hold_terms(
        &mut self,
        id: ChannelId,
        terms: CosignedTerms,
        ours: bool,
        signed: SignedMessage,
        partner_signature: Option<Signature>,
    ) {
        let ch = self.state.channel_mut(&id).expect("checked by the caller");
        ch.status = terms.status();
        ch.negotiation = Some(Negotiation {
            terms,
            ours,
            our_signature: signed.signature,
            partner_signature,
            message: signed.hash,
        });
        log::info!(
            "{id}: {} terms signed, valid until block {}; no transfers or deposits until then",
            terms.kind(),
            terms.expiration()
        );
    }

    pub(super) fn request_withdraw(
        &mut self,
        id: ChannelId,
        amount: crate::primitives::TokenAmount,
    ) -> Result<(), ActionError> {
        let expiration = self.our_terms_expiration();
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
            expiration,
        };
        let partner = ch.partner.address;
        let signed = self.send_message(partner, Message::WithdrawRequest(terms), Some(id));
        self.hold_terms(id, CosignedTerms::Withdraw(terms), true, signed, None);
        Ok(())
    }

    pub(super) fn request_cooperative_settle(&mut self, id: ChannelId) -> Result<(), ActionError> {
        let expiration = self.our_terms_expiration();
        let ch = self.ready_for_cosign(id)?;
        let terms = SettleTerms {
            channel_identifier: id,
            open_block_number: ch.open_block_number,
            participant1: ch.our.address,
            participant1_balance: ch.our_balance(),
            participant2: ch.partner.address,
            participant2_balance: ch.partner_balance(),
            expiration,
        };
        let partner = ch.partner.address;
        let signed = self.send_message(partner, Message::SettleRequest(terms), Some(id));
        self.hold_terms(id, CosignedTerms::Settle(terms), true, signed, None);
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

    /// Whether terms the partner proposes expire in a window we accept: not already over, and
    /// not freezing our channel for longer than `max_cosign_window`.
    fn acceptable_expiration(&self, expiration: BlockNumber) -> bool {
        let block = self.state.block;
        expiration > block && expiration <= block.plus(self.state.config.max_cosign_window)
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
        if !self.acceptable_expiration(t.expiration) {
            return self.refuse_request(msg, id, "withdraw terms expire too soon or too late");
        }
        let partner = ch.partner.address;
        let signed = self.send_message(partner, Message::WithdrawResponse(t), Some(id));
        self.hold_terms(
            id,
            CosignedTerms::Withdraw(t),
            false,
            signed,
            Some(msg.signature),
        );
        self.ack(msg);
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
        if !self.acceptable_expiration(t.expiration) {
            return self.refuse_request(msg, id, "settle terms expire too soon or too late");
        }
        let partner = ch.partner.address;
        let signed = self.send_message(partner, Message::SettleResponse(t), Some(id));
        self.hold_terms(
            id,
            CosignedTerms::Settle(t),
            false,
            signed,
            Some(msg.signature),
        );
        self.ack(msg);
    }

    /// The partner co-signed terms we proposed: submit them.
    pub(super) fn on_cosigned_response(&mut self, msg: &SignedMessage, t: CosignedTerms) {
        self.ack(msg);
        let Some(id) = self.channel_of_terms(&t) else {
            return;
        };
        let ch = self.state.channel_mut(&id).expect("found");
        let Some(n) = ch.negotiation.as_mut() else {
            return;
        };
        if !n.ours || n.terms != t || msg.sender != ch.partner.address {
            return;
        }
        if n.partner_signature.is_some() {
            return; // a resend of the response: already submitted
        }
        n.partner_signature = Some(msg.signature);
        if let Some(call) = self.cosigned_call(id) {
            self.contract(call);
        }
    }

    fn channel_of_terms(&self, t: &CosignedTerms) -> Option<ChannelId> {
        let id = match t {
            CosignedTerms::Withdraw(w) => w.channel_identifier,
            CosignedTerms::Settle(s) => s.channel_identifier,
        };
        self.state.channel(&id).map(|c| c.identifier)
    }

    /// Terms whose expiration the chain has passed unexecuted are dead: the channel is open
    /// for transfers again. The confirmed block is past it, so the follower would already
    /// have delivered an execution at or before it.
    pub(super) fn expire_cosigned_terms(&mut self) {
        let block = self.state.block;
        let expired: Vec<(ChannelId, Negotiation)> = self
            .state
            .channels()
            .filter_map(|c| {
                let n = c.negotiation.as_ref()?;
                (block > n.terms.expiration()).then(|| (c.identifier, n.clone()))
            })
            .collect();
        for (id, n) in expired {
            let ch = self.state.channel_mut(&id).expect("listed");
            ch.negotiation = None;
            if ch.status == n.terms.status() {
                ch.status = ChannelStatus::Opened;
            }
            self.state.delivery.drop_where(|p| p.hash == n.message);
            self.state.chain_retries.remove(&Duty::Cosigned(id));
            let reason = if n.ours && n.partner_signature.is_none() {
                format!(
                    "the partner did not co-sign the {} before block {}",
                    n.terms.kind(),
                    n.terms.expiration()
                )
            } else {
                format!(
                    "the co-signed {} was not executed on chain by block {}",
                    n.terms.kind(),
                    n.terms.expiration()
                )
            };
            log::info!("{id}: {reason}; the channel is open for transfers again");
            self.emit(Notification::ChannelRequestRefused {
                channel: id,
                reason,
            });
        }
    }
}
