//! The target: asks the initiator for the secret, passes it back to its payer, and is paid
//! when the payer unlocks.

use super::TargetState;
use crate::core::{Core, Notification};
use crate::messages::{MediatedTransfer, Message, RevealSecret, SecretRequest};
use crate::primitives::{Address, ChannelId, Secret, SecretHash};

impl Core {
    /// A lock toward us arrived on `channel`.
    pub(crate) fn target_on_transfer(
        &mut self,
        channel: ChannelId,
        payer: Address,
        m: &MediatedTransfer,
    ) {
        let h = m.lock.secrethash;
        if self.state.targets.contains_key(&h)
            || self.state.initiators.contains_key(&h)
            || self.state.mediators.contains_key(&h)
        {
            return self.dispose(channel, m.lock);
        }
        let Some(amount) = m.lock.amount.checked_sub(m.fee) else {
            return self.dispose(channel, m.lock);
        };
        let ch = self.state.channel(&channel).expect("accepted on it");
        let (token_network, token, reveal_timeout) =
            (ch.token_network, ch.token, ch.reveal_timeout);
        self.state.targets.insert(
            h,
            TargetState {
                token_network,
                token,
                initiator: m.initiator,
                payer_channel: channel,
                payer,
                lock: m.lock,
                amount,
                secret: None,
            },
        );
        if m.lock.expiration > self.state.block.plus(reveal_timeout) {
            let req = SecretRequest {
                secrethash: h,
                amount,
            };
            self.send_message(m.initiator, Message::SecretRequest(req), None);
        } else {
            log::warn!("{h:?}: lock expires too soon to claim safely; not asking for the secret");
        }
    }

    /// The initiator revealed the secret: pass it to our payer so it unlocks.
    pub(crate) fn target_on_reveal(&mut self, secret: Secret) {
        let h = secret.hash();
        let Some(t) = self.state.targets.get_mut(&h) else {
            return;
        };
        if t.secret.is_some() {
            return;
        }
        t.secret = Some(secret);
        let (payer, channel) = (t.payer, t.payer_channel);
        self.learn_partner_secret(channel, secret);
        self.send_message(payer, Message::RevealSecret(RevealSecret { secret }), None);
    }

    /// The payer unlocked: we are paid.
    pub(crate) fn target_on_unlock(&mut self, channel: ChannelId, h: SecretHash) {
        if self
            .state
            .targets
            .get(&h)
            .is_some_and(|t| t.payer_channel == channel)
        {
            let t = self.state.targets.remove(&h).expect("present");
            log::info!("received {} for {h:?}", t.amount);
            self.emit(Notification::PaymentReceived {
                id: h.0,
                token: t.token,
                initiator: t.initiator,
                amount: t.amount,
            });
        }
    }

    /// The payer's lock is gone unpaid (expired or disposed).
    pub(crate) fn target_on_lock_gone(&mut self, channel: ChannelId, h: SecretHash) {
        if self
            .state
            .targets
            .get(&h)
            .is_some_and(|t| t.payer_channel == channel)
        {
            self.state.targets.remove(&h);
        }
    }
}
