//! The mediator: takes its fee, forwards a lock with an earlier expiration, pays the payee as
//! soon as the payee proves it knows the secret, passes the secret back to the payer, and
//! gives the lock back when no route onward is left.

use super::{Attempt, MediatorState};
use crate::core::Core;
use crate::messages::{MediatedTransfer, Message, RevealSecret};
use crate::primitives::{Address, ChannelId, Secret, SecretHash, TokenAmount};
use std::collections::BTreeSet;

impl Core {
    /// A lock toward someone else arrived on `channel`.
    pub(crate) fn mediator_on_transfer(
        &mut self,
        channel: ChannelId,
        payer: Address,
        m: &MediatedTransfer,
    ) {
        let h = m.lock.secrethash;
        if self.state.mediators.contains_key(&h)
            || self.state.initiators.contains_key(&h)
            || self.state.targets.contains_key(&h)
        {
            log::info!("{h:?} came back to us through a loop; giving it back");
            return self.dispose(channel, m.lock);
        }
        let ch = self.state.channel(&channel).expect("accepted on it");
        self.state.mediators.insert(
            h,
            MediatorState {
                token_network: ch.token_network,
                token: ch.token,
                payer_channel: channel,
                payer,
                payer_lock: m.lock,
                incoming_fee: m.fee,
                initiator: m.initiator,
                target: m.target,
                payee: None,
                tried: BTreeSet::from([channel]),
                secret: None,
                payer_done: false,
                payee_done: false,
                payer_paid: false,
                payee_paid: false,
            },
        );
        if self.wait_for_delegation(h, channel) {
            return;
        }
        if !self.mediator_forward(h) {
            self.mediator_give_up(h);
        }
    }

    /// Forwards a transfer not forwarded yet (it waited for the monitor), or gives its lock
    /// back when no route is left.
    pub(crate) fn forward_or_give_up(&mut self, h: SecretHash) {
        let pending = self
            .state
            .mediators
            .get(&h)
            .is_some_and(|m| m.payee.is_none() && m.secret.is_none());
        if pending && !self.mediator_forward(h) {
            self.mediator_give_up(h);
        }
    }

    /// Forwards over the best untried route; false if none works.
    fn mediator_forward(&mut self, h: SecretHash) -> bool {
        let med = self
            .state
            .mediators
            .get(&h)
            .expect("caller checked")
            .clone();
        let block = self.state.block;
        if med.payer_lock.expiration <= block || self.no_internet().is_some() {
            return false;
        }
        let Some(payment) = med.payer_lock.amount.checked_sub(med.incoming_fee) else {
            return false;
        };
        let avoid = BTreeSet::from([med.payer, med.initiator]);
        let routes = self.find_routes(
            &med.token_network,
            med.target,
            payment,
            &h,
            &med.tried,
            &avoid,
        );
        for r in routes {
            let ch = self
                .state
                .channel(&r.channel)
                .expect("route over our channel");
            let charge = self.state.config.fees.our_charge(&med.token, &r.channel);
            let Some(out_fee) = med.incoming_fee.checked_sub(charge) else {
                log::info!(
                    "{h:?}: fee {} below our charge {charge} on {}",
                    med.incoming_fee,
                    r.channel
                );
                continue;
            };
            if r.fee > out_fee {
                continue;
            }
            // The last mediator keeps whatever fee is left, so the target receives exactly
            // the payment amount.
            let (out_fee, kept) = if r.hops() == 1 {
                (TokenAmount::ZERO, med.incoming_fee)
            } else {
                (out_fee, charge)
            };
            let Some(amount) = med.payer_lock.amount.checked_sub(kept) else {
                continue;
            };
            if ch.our_distributable() < amount {
                continue;
            }
            // After learning the secret as late as this lock's expiration we still need our own
            // reveal timeout to register it and claim from the payer: the margin is ours to
            // set, whatever a short settle timeout gave the outgoing channel.
            let margin = ch.reveal_timeout.max(self.state.config.reveal_timeout);
            let expiration = med.payer_lock.expiration.minus(margin);
            if expiration <= block.plus(ch.reveal_timeout)
                || expiration > block.plus(ch.settle_timeout)
            {
                continue;
            }
            let lock = crate::proofs::Lock {
                expiration,
                amount,
                secrethash: h,
            };
            let mut locks = ch.our.locks.clone();
            locks.push(lock);
            let (transferred, partner, channel) =
                (ch.our.transferred_amount, ch.partner.address, r.channel);
            let (initiator, target) = (med.initiator, med.target);
            self.send_balance_proof(channel, transferred, locks, |bp| {
                Message::MediatedTransfer(MediatedTransfer {
                    balance_proof: bp,
                    lock,
                    initiator,
                    target,
                    fee: out_fee,
                })
            });
            let med = self.state.mediators.get_mut(&h).expect("present");
            med.payee = Some(Attempt {
                channel,
                partner,
                lock,
            });
            med.tried.insert(channel);
            return true;
        }
        false
    }

    /// No route onward: give the payer's lock back and forget the transfer.
    pub(crate) fn mediator_give_up(&mut self, h: SecretHash) {
        let med = self.state.mediators.remove(&h).expect("present");
        log::info!("{h:?}: no route onward to {:?}; disposing", med.target);
        self.dispose(med.payer_channel, med.payer_lock);
    }

    /// The payee proves it knows the secret: pay it, and pass the secret to the payer.
    pub(crate) fn mediator_on_reveal(&mut self, sender: Address, secret: Secret) {
        let h = secret.hash();
        let Some(med) = self.state.mediators.get_mut(&h) else {
            return;
        };
        let Some(payee) = med.payee else { return };
        if payee.partner != sender || med.secret.is_some() {
            return;
        }
        let (payer, payer_channel, payer_lock) = (med.payer, med.payer_channel, med.payer_lock);
        // Pay onward off chain only with time left to claim from the payer on chain should it
        // not pay us: our reveal timeout before its lock expires.
        let reveal = self.state.config.reveal_timeout;
        if self.state.block.plus(reveal) > payer_lock.expiration {
            log::warn!(
                "{h:?}: the payer's lock expires at block {} , too soon to claim; not paying the payee off chain",
                payer_lock.expiration
            );
            return;
        }
        // Claim from the payer only what we pay onward: if our lock to the payee is already
        // gone (it expired while the payee was away), the payment did not reach the target and
        // the payer's lock must expire too, so the initiator learns it failed.
        let claimable_on_chain = self
            .state
            .channel(&payee.channel)
            .is_some_and(|c| c.status.is_closed() && c.our_lock(&h).is_some());
        if !self.pay_payee(payee.channel, secret) && !claimable_on_chain {
            log::warn!(
                "{h:?}: payee revealed the secret after its lock was gone; not claiming from the payer"
            );
            return;
        }
        if let Some(med) = self.state.mediators.get_mut(&h) {
            med.secret = Some(secret);
        }
        self.learn_partner_secret(payer_channel, secret);
        self.send_message(payer, Message::RevealSecret(RevealSecret { secret }), None);
    }

    /// The payer unlocked its lock to us.
    pub(crate) fn mediator_on_payer_unlock(&mut self, channel: ChannelId, h: SecretHash) {
        let Some(med) = self.state.mediators.get_mut(&h) else {
            return;
        };
        if med.payer_channel == channel {
            med.payer_paid = true;
            med.payer_done = true;
            self.finish_mediator_if_done(h);
        }
    }

    /// The payer's lock to us is gone without payment (expired or disposed back).
    pub(crate) fn mediator_on_payer_lock_gone(&mut self, channel: ChannelId, h: SecretHash) {
        let Some(med) = self.state.mediators.get_mut(&h) else {
            return;
        };
        if med.payer_channel == channel {
            med.payer_done = true;
            self.finish_mediator_if_done(h);
        }
    }

    /// The payee gave our lock back: try another route, or give the payer's lock back.
    pub(crate) fn mediator_on_disposed(&mut self, channel: ChannelId, h: SecretHash) {
        let Some(med) = self.state.mediators.get_mut(&h) else {
            return;
        };
        if med.payee.is_none_or(|a| a.channel != channel) || med.secret.is_some() {
            return;
        }
        med.payee = None;
        if !self.mediator_forward(h) {
            self.mediator_give_up(h);
        }
    }
}
