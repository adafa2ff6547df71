//! Direct transfers: pay a channel partner by raising `transferred_amount`.

use crate::core::channel::Incoming;
use crate::core::{ActionError, Core, Notification, TransferRequest};
use crate::messages::{DirectTransfer, Message, SignedMessage};
use crate::primitives::H256;

impl Core {
    /// Sends a DirectTransfer; it succeeds when the partner acknowledges it.
    pub(crate) fn send_direct(
        &mut self,
        req: &TransferRequest,
        rng: &mut dyn rand_core::RngCore,
    ) -> Result<H256, ActionError> {
        let channel = self.direct_channel(req)?;
        let ch = self.state.channel(&channel).expect("checked");
        let transferred = ch
            .our
            .transferred_amount
            .checked_add(req.amount)
            .ok_or(ActionError::Invalid("overflow".into()))?;
        let locks = ch.our.locks.clone();
        let payment_identifier = req.identifier.unwrap_or_else(|| rng.next_u64());
        let signed = self
            .send_balance_proof(channel, transferred, locks, |bp| {
                Message::DirectTransfer(DirectTransfer {
                    balance_proof: bp,
                    payment_identifier,
                })
            })
            .expect("channel exists");
        self.state
            .direct_pending
            .insert(signed.hash, (channel, transferred));
        self.emit(Notification::TransferStarted {
            id: signed.hash,
            token: req.token,
            target: req.target,
            amount: req.amount,
            fee: Default::default(),
        });
        Ok(signed.hash)
    }

    /// A DirectTransfer from a partner.
    pub(crate) fn on_direct_transfer(&mut self, msg: &SignedMessage, m: &DirectTransfer) {
        let bp = &m.balance_proof;
        let Some(ch) = self.state.channel(&bp.channel_identifier) else {
            return self.reject(Some(msg.sender), "DirectTransfer", "unknown channel");
        };
        match ch.check_direct(msg, bp) {
            Err(e) => self.reject(Some(msg.sender), "DirectTransfer", e),
            Ok(Incoming::Duplicate) => self.ack(msg),
            Ok(fresh) => {
                if let Some(why) = self.refuse_receiving_offline(bp.channel_identifier) {
                    // Unacknowledged: the payer resends it, and it counts once we could
                    // defend the channel again.
                    return log::warn!(
                        "{}: not accepting a payment from {:?} yet: {why}",
                        bp.channel_identifier,
                        msg.sender
                    );
                }
                let amount = ch.direct_amount(bp);
                let token = ch.token;
                self.state
                    .channel_mut(&bp.channel_identifier)
                    .expect("exists")
                    .accept(fresh);
                self.emit(Notification::PaymentReceived {
                    id: msg.hash,
                    token,
                    initiator: msg.sender,
                    amount,
                });
                self.ack(msg);
            }
        }
    }
}
