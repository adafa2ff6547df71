//! Lock housekeeping every role shares: paying a payee (Unlock), removing expired locks,
//! registering secrets on chain before a claim would be lost, and giving locks back.

use crate::core::channel::ChannelStatus;
use crate::core::routing::Route;
use crate::core::{Core, Notification};
use crate::messages::{AnnounceDisposed, Message, RemoveExpiredHashlock, Unlock};
use crate::primitives::{Address, BlockCount, ChannelId, H256, Secret, SecretHash, TokenAmount};
use crate::proofs::Lock;
use std::collections::BTreeSet;

impl Core {
    /// Candidate routes to `target` for the lock of `secrethash` over our channels of token
    /// network `tn`, best first: one per first-hop channel not in `exclude`, never through
    /// `avoid` or offline mediators, and never to a partner that already gave this lock back
    /// (the same lock again would make its old AnnounceDisposed ambiguous).
    pub(crate) fn find_routes(
        &self,
        tn: &Address,
        target: Address,
        amount: TokenAmount,
        secrethash: &SecretHash,
        exclude: &BTreeSet<ChannelId>,
        avoid: &BTreeSet<Address>,
    ) -> Vec<Route> {
        let Some(net) = self.state.token_networks.get(tn) else {
            return Vec::new();
        };
        let mut avoid = avoid.clone();
        avoid.insert(self.state.our_address);
        let fees = &self.state.config.fees;
        let max_locks = self.state.config.max_pending_locks;
        let mut routes: Vec<Route> = net
            .channels
            .values()
            .filter(|ch| ch.can_transfer() && !exclude.contains(&ch.identifier))
            .filter(|ch| ch.our.locks.len() < max_locks)
            .filter(|ch| !ch.disposed_to_us.contains_key(secrethash))
            .filter(|ch| {
                !avoid.contains(&ch.partner.address) && self.state.is_reachable(&ch.partner.address)
            })
            .filter_map(|ch| {
                let first = ch.partner.address;
                let path = if first == target {
                    vec![target]
                } else {
                    net.graph
                        .shortest_path(first, target, amount, &avoid, |n| {
                            self.state.is_reachable(n)
                        })?
                };
                let fee = path[..path.len() - 1]
                    .iter()
                    .fold(TokenAmount::ZERO, |acc, m| {
                        acc.saturating_add(fees.expected_charge(m))
                    });
                Some(Route {
                    channel: ch.identifier,
                    path,
                    fee,
                })
            })
            .collect();
        routes.sort_by_key(|a| (a.hops(), a.fee, a.channel));
        routes
    }

    /// Pays the payee of our lock `secret` on `channel` off chain (an Unlock message) and
    /// updates the initiator or mediator waiting on it. False if there is no such lock or the
    /// channel is not open.
    pub(crate) fn pay_payee(&mut self, channel: ChannelId, secret: Secret) -> bool {
        let h = secret.hash();
        let Some(ch) = self.state.channel(&channel) else {
            return false;
        };
        let Some(lock) = ch.our_lock(&h).copied() else {
            return false;
        };
        if !ch.can_transfer() {
            return false;
        }
        let Some(transferred) = ch.our.transferred_amount.checked_add(lock.amount) else {
            return false;
        };
        let locks = ch.our.locks_without(&h);
        self.send_balance_proof(channel, transferred, locks, |bp| {
            Message::Unlock(Unlock {
                balance_proof: bp,
                secret,
            })
        });
        self.our_lock_paid(channel, lock);
        true
    }

    /// Our lock on `channel` reached its payee (off chain, or claimed on chain): the initiator
    /// or mediator waiting on it is paid up.
    pub(crate) fn our_lock_paid(&mut self, channel: ChannelId, lock: Lock) {
        let h = lock.secrethash;
        if self
            .state
            .initiators
            .get(&h)
            .is_some_and(|i| i.current.is_some_and(|a| a.channel == channel))
        {
            let init = self.state.initiators.remove(&h).expect("present");
            let fee = lock.amount.saturating_sub(init.amount);
            log::info!("transfer {h:?} succeeded");
            self.emit(Notification::TransferSucceeded { id: h.0, fee });
        }
        if let Some(m) = self.state.mediators.get_mut(&h)
            && m.payee.is_some_and(|a| a.channel == channel)
        {
            m.payee_paid = true;
            m.payee_done = true;
            self.finish_mediator_if_done(h);
        }
    }

    /// The partner's lock on `channel` was paid to us (off chain, or claimed on chain): the
    /// target or mediator waiting on it is paid. A payment nobody waited for (a lock we had
    /// given back, paid by a payer that had not seen that yet) is money received all the same.
    pub(crate) fn partner_lock_paid(&mut self, channel: ChannelId, lock: Lock) {
        let h = lock.secrethash;
        let target = self
            .state
            .targets
            .get(&h)
            .is_some_and(|t| t.payer_channel == channel);
        let mediator = self
            .state
            .mediators
            .get(&h)
            .is_some_and(|m| m.payer_channel == channel);
        if target {
            self.target_on_unlock(channel, h);
        } else if mediator {
            self.mediator_on_payer_unlock(channel, h);
        } else if let Some(ch) = self.state.channel_mut(&channel) {
            ch.given_back.remove(&h);
            let (token, payer) = (ch.token, ch.partner.address);
            log::info!(
                "{h:?}: paid {} for a lock no transfer of ours waited on",
                lock.amount
            );
            self.emit(Notification::PaymentReceived {
                id: h.0,
                token,
                initiator: payer,
                amount: lock.amount,
            });
        }
    }

    /// Records the secret of the partner's lock on `channel`, so it can be claimed on chain
    /// (never for a lock we gave back).
    pub(crate) fn learn_partner_secret(&mut self, channel: ChannelId, secret: Secret) {
        let h = secret.hash();
        if let Some(ch) = self.state.channel_mut(&channel)
            && ch.claimable_lock(&h).is_some()
        {
            ch.partner.secrets.insert(h, secret);
        }
    }

    /// Gives the partner's lock on `channel` back (AnnounceDisposed). From here on the lock is
    /// out of every claim: we signed that we would not claim it.
    pub(crate) fn dispose(&mut self, channel: ChannelId, lock: Lock) {
        let Some(ch) = self.state.channel(&channel) else {
            return;
        };
        if !ch.can_transfer() || ch.claimable_lock(&lock.secrethash) != Some(&lock) {
            return;
        }
        let (partner, open_block_number) = (ch.partner.address, ch.open_block_number);
        log::info!("disposing lock {:?} on {channel}", lock.secrethash);
        let m = AnnounceDisposed {
            channel_identifier: channel,
            open_block_number,
            lock,
        };
        let signed = self.send_message(partner, Message::AnnounceDisposed(m), Some(channel));
        let ch = self.state.channel_mut(&channel).expect("looked up above");
        ch.given_back.insert(lock.secrethash, signed.hash);
        ch.partner.secrets.remove(&lock.secrethash);
    }

    /// Per-block housekeeping: remove our expired locks, register secrets whose claim nears
    /// expiry, close channels whose payer ignores a registered secret.
    pub(crate) fn sweep_locks(&mut self) {
        let block = self.state.block;
        let mut expired: Vec<(ChannelId, SecretHash)> = Vec::new();
        let mut register: Vec<Secret> = Vec::new();
        let mut close: Vec<ChannelId> = Vec::new();
        let mut stale_announcements: Vec<H256> = Vec::new();
        let mut dead: Vec<(ChannelId, SecretHash)> = Vec::new();
        for ch in self.state.channels() {
            // A lock we gave back and whose payer never answered: once it has expired (and a
            // grace for a late answer passed) nobody can add it to a claim any more, so stop
            // resending the AnnounceDisposed. It stays out of our claims all the same.
            let grace = BlockCount(ch.reveal_timeout.0 * 2);
            for (h, message) in &ch.given_back {
                if ch
                    .partner
                    .lock(h)
                    .is_some_and(|l| block > l.expiration.plus(grace))
                {
                    stale_announcements.push(*message);
                }
            }
            if ch.status == ChannelStatus::Opened {
                for l in &ch.our.locks {
                    if block > l.expiration
                        && !self.state.registered_by(&l.secrethash, l.expiration)
                    {
                        expired.push((ch.identifier, l.secrethash));
                    }
                }
            }
            for l in ch.claimable_locks() {
                let h = l.secrethash;
                let registered = self.state.registered_by(&h, l.expiration);
                if let Some(secret) = ch.partner.secrets.get(&h) {
                    let near = block.plus(ch.reveal_timeout) >= l.expiration;
                    if near
                        && block <= l.expiration
                        && !registered
                        && !self.state.registering.contains_key(&h)
                    {
                        register.push(*secret);
                    }
                }
                // The payer had the lock's whole life plus a grace to unlock off chain after the
                // registration; past that, claim on chain.
                let grace = BlockCount(ch.reveal_timeout.0 * 2);
                if registered
                    && block > l.expiration.plus(grace)
                    && ch.status == ChannelStatus::Opened
                {
                    close.push(ch.identifier);
                }
                // Expired with its secret never registered in time: nobody can claim it any
                // more. The payer owes a RemoveExpiredHashlock; whatever waited on the lock
                // here is over, whether it ever comes or not.
                if !registered && block > l.expiration.plus(grace) {
                    dead.push((ch.identifier, h));
                }
            }
        }
        for (channel, h) in dead {
            self.target_on_lock_gone(channel, h);
            self.mediator_on_payer_lock_gone(channel, h);
        }
        for (channel, h) in expired {
            self.remove_expired_lock(channel, h);
        }
        for secret in register {
            log::info!(
                "{:?}: its lock nears expiry unpaid; registering the secret",
                secret.hash()
            );
            self.register_secret(secret);
        }
        if !stale_announcements.is_empty() {
            self.state
                .delivery
                .drop_where(|p| stale_announcements.contains(&p.hash));
        }
        close.dedup();
        for channel in close {
            log::warn!("closing {channel}: the payer ignores a secret registered on chain");
            self.close_channel(channel);
        }
    }

    /// Removes our expired lock `h` on `channel` (RemoveExpiredHashlock) and fails what waited
    /// on it.
    fn remove_expired_lock(&mut self, channel: ChannelId, h: SecretHash) {
        let Some(ch) = self.state.channel(&channel) else {
            return;
        };
        let transferred = ch.our.transferred_amount;
        let locks = ch.our.locks_without(&h);
        log::info!("lock {h:?} on {channel} expired; removing it");
        self.send_balance_proof(channel, transferred, locks, |bp| {
            Message::RemoveExpiredHashlock(RemoveExpiredHashlock {
                balance_proof: bp,
                secrethash: h,
            })
        });
        if let Some(init) = self.state.initiators.get(&h)
            && init.current.is_some_and(|a| a.channel == channel)
        {
            let canceled = init.canceled;
            self.state.initiators.remove(&h);
            self.emit(if canceled {
                Notification::TransferCanceled { id: h.0 }
            } else {
                Notification::TransferFailed {
                    id: h.0,
                    reason: "lock expired before the secret was revealed".into(),
                }
            });
        }
        if let Some(m) = self.state.mediators.get_mut(&h)
            && m.payee.is_some_and(|a| a.channel == channel)
        {
            m.payee_done = true;
            self.finish_mediator_if_done(h);
        }
    }

    /// Drops a mediator's state once both its locks are resolved.
    pub(crate) fn finish_mediator_if_done(&mut self, h: SecretHash) {
        let Some(m) = self.state.mediators.get(&h) else {
            return;
        };
        if !(m.payer_done && (m.payee.is_none() || m.payee_done)) {
            return;
        }
        let m = self.state.mediators.remove(&h).expect("present");
        // What the mediation left us: usually the fee; the whole payer lock if the payer paid
        // one we never had to pay onward (its secret went public after our lock was gone).
        let received = if m.payer_paid {
            m.payer_lock.amount
        } else {
            TokenAmount::ZERO
        };
        let paid = match m.payee {
            Some(a) if m.payee_paid => a.lock.amount,
            _ => TokenAmount::ZERO,
        };
        if m.payer_paid && received >= paid {
            self.emit(Notification::MediationCompleted {
                id: h.0,
                fee: received.saturating_sub(paid),
            });
        } else if paid > received {
            log::error!(
                "{h:?}: paid {paid} onward and received {received}: lost {}",
                paid.saturating_sub(received)
            );
        }
    }
}
