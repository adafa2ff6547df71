//! Claims on chain: secrets registered in the SecretRegistry, unlocks of the partner's locks on
//! a closed channel, and the balance hashes the contract holds. Only locks
//! [`ChannelState::claimable_lock`] allows are ever registered for or unlocked: a lock we gave
//! back stays out of every path.
//!
//! [`ChannelState::claimable_lock`]: super::channel::ChannelState::claimable_lock

use super::channel::ChannelStatus;
use super::{ContractCall, Core, Notification};
use crate::primitives::TokenAmount;
use crate::primitives::{Address, BlockNumber, ChannelId, H256, Locksroot, Secret, SecretHash};
use crate::proofs::{Lock, MerkleTree};
use std::collections::BTreeSet;

impl Core {
    /// Whether a secrethash concerns us: a lock in one of our channels or a running transfer.
    fn concerns_us(&self, h: &SecretHash) -> bool {
        self.state.initiators.contains_key(h)
            || self.state.mediators.contains_key(h)
            || self.state.targets.contains_key(h)
            || self
                .state
                .channels()
                .any(|c| c.our.lock(h).is_some() || c.claimable_lock(h).is_some())
    }

    /// A secret was registered on chain (a follower event, or the shell's answer to
    /// `Output::WatchSecret`).
    pub(super) fn on_secret_registered(
        &mut self,
        h: SecretHash,
        secret: Secret,
        block: BlockNumber,
    ) {
        if secret.hash() != h {
            return;
        }
        self.state.registering.remove(&h);
        self.state
            .chain_retries
            .remove(&super::duties::Duty::RegisterSecret(h));
        if !self.concerns_us(&h) {
            return;
        }
        self.state.registered_secrets.insert(h, (secret, block));
        let ids: Vec<ChannelId> = self.state.channels().map(|c| c.identifier).collect();
        for id in ids {
            let ch = self.state.channel(&id).expect("listed");
            let ours = ch.our_lock(&h).is_some_and(|l| l.expiration >= block);
            let theirs = ch.claimable_lock(&h).is_some();
            let closed = ch.status.is_closed();
            if ours {
                // The payee can claim on chain anyway: settle it off chain instead.
                self.pay_payee(id, secret);
            }
            if theirs {
                self.learn_partner_secret(id, secret);
                if closed {
                    self.plan_unlocks(id);
                }
            }
        }
        if let Some(t) = self.state.targets.get_mut(&h) {
            t.secret.get_or_insert(secret);
        }
        // A mediator that learns the secret from the chain claims from its payer like one
        // the payee told: its transfer stays open until the payer's lock is resolved.
        if let Some(m) = self.state.mediators.get_mut(&h) {
            m.secret.get_or_insert(secret);
        }
    }

    /// Forgets registrations no lock or transfer of ours refers to any more.
    pub(super) fn prune_registered_secrets(&mut self) {
        if self.state.registered_secrets.is_empty() {
            return;
        }
        let mut live: BTreeSet<SecretHash> = self
            .state
            .initiators
            .keys()
            .chain(self.state.mediators.keys())
            .chain(self.state.targets.keys())
            .copied()
            .collect();
        for c in self.state.channels() {
            live.extend(c.our.locks.iter().map(|l| l.secrethash));
            live.extend(c.claimable_locks().map(|l| l.secrethash));
        }
        self.state
            .registered_secrets
            .retain(|h, _| live.contains(h));
    }

    /// Registers the known secrets of the claimable locks of a channel that just closed, while
    /// their registration still counts.
    pub(super) fn register_claimable_secrets(&mut self, id: ChannelId) {
        let block = self.state.block;
        let Some(ch) = self.state.channel(&id) else {
            return;
        };
        let secrets: Vec<Secret> = ch
            .claimable_locks()
            .filter(|l| block <= l.expiration)
            .filter(|l| !self.state.registered_by(&l.secrethash, l.expiration))
            .filter_map(|l| ch.partner.secrets.get(&l.secrethash).copied())
            .collect();
        for secret in secrets {
            self.register_secret(secret);
        }
    }

    /// Asks the chain to register `secret` unless we already are.
    pub(super) fn register_secret(&mut self, secret: Secret) {
        let h = secret.hash();
        if self.state.registered_secrets.contains_key(&h)
            || self.state.registering.insert(h, secret).is_some()
        {
            return;
        }
        log::info!("registering the secret of {h:?} on chain");
        self.contract(ContractCall::RegisterSecret { secret });
    }

    /// Submits, in tree order, an unlock for every claimable partner lock on a closed channel
    /// whose secret was registered in time and that is neither unlocked nor being unlocked.
    /// Each carries the partner's transferred amount as the chain will hold it when it is
    /// mined (the executor submits them in order), and a Merkle proof against the tree whose
    /// root the chain holds: the contract never changes that root, only the amount.
    pub(super) fn plan_unlocks(&mut self, id: ChannelId) {
        let block = self.state.block;
        let Some(ch) = self.state.channel(&id) else {
            return;
        };
        if !matches!(ch.status, ChannelStatus::Closed { .. })
            || ch.settle_block().is_none_or(|last| block > last)
        {
            return;
        }
        let Some(leaves) = ch.onchain.partner_leaves.as_ref() else {
            return;
        };
        let tree = MerkleTree::new(leaves.iter().map(Lock::lockhash).collect());
        let mut transferred = ch.onchain.partner.0;
        let mut calls = Vec::new();
        for (i, lock) in leaves.iter().enumerate() {
            let lockhash = lock.lockhash();
            if ch.onchain.unlocked.contains(&lockhash) {
                continue;
            }
            if ch.onchain.unlocking.contains(&lockhash) {
                // Submitted earlier: it is mined before anything submitted now.
                transferred = transferred.saturating_add(lock.amount);
                continue;
            }
            if ch.claimable_lock(&lock.secrethash) != Some(lock)
                || !self.state.registered_by(&lock.secrethash, lock.expiration)
            {
                continue;
            }
            let Some(proof) = tree.proof(i) else {
                continue;
            };
            calls.push((
                lockhash,
                ContractCall::Unlock {
                    token_network: ch.token_network,
                    partner: ch.partner.address,
                    transferred_amount: transferred,
                    lock: *lock,
                    merkle_proof: proof,
                },
            ));
            transferred = transferred.saturating_add(lock.amount);
        }
        if calls.is_empty() {
            return;
        }
        let ch = self.state.channel_mut(&id).expect("looked up above");
        ch.onchain.unlocking.extend(calls.iter().map(|(h, _)| *h));
        for (_, call) in calls {
            self.contract(call);
        }
    }

    pub(super) fn on_unlocked_on_chain(&mut self, id: ChannelId, payer: Address, lockhash: H256) {
        let Some(ch) = self.state.channel_mut(&id) else {
            return;
        };
        ch.onchain.unlocked.insert(lockhash);
        ch.onchain.unlocking.remove(&lockhash);
        let ours = payer == ch.our.address;
        // The off-chain view follows: the lock's amount counts as transferred.
        let end = if ours { &mut ch.our } else { &mut ch.partner };
        if let Some(i) = end.locks.iter().position(|l| l.lockhash() == lockhash) {
            let lock = end.locks.remove(i);
            end.transferred_amount = end.transferred_amount.saturating_add(lock.amount);
            if ours {
                self.our_lock_paid(id, lock);
            } else {
                self.partner_lock_paid(id, lock);
            }
        }
        // A lock of ours the partner gave back (and we removed) claimed anyway: punish it.
        if ours && let Some(call) = self.punish_call(id, lockhash) {
            log::warn!("{id}: the partner unlocked on chain a lock it had given back; punishing");
            self.emit(Notification::ChannelChanged {
                channel: id,
                what: "obsolete unlock",
            });
            self.contract(call);
        }
    }

    /// Records `participant`'s balance hash as the chain now holds it (an unlock changes only
    /// the transferred amount). For the partner, also which lock tree the root stands for.
    pub(super) fn record_onchain(
        &mut self,
        id: ChannelId,
        participant: Address,
        locksroot: Option<Locksroot>,
        transferred: TokenAmount,
    ) {
        let Some(ch) = self.state.channel_mut(&id) else {
            return;
        };
        if participant == ch.our.address {
            ch.onchain.our.0 = transferred;
            if let Some(root) = locksroot {
                ch.onchain.our.1 = root;
                ch.onchain.our_proof_transferred = transferred;
            }
        } else if participant == ch.partner.address {
            ch.onchain.partner.0 = transferred;
            if let Some(root) = locksroot {
                ch.onchain.partner.1 = root;
                // The chain only ever holds proofs of the partner's that we submitted; none
                // newer than the one we hold, whose leaves we know.
                ch.onchain.partner_leaves = if root == ch.partner.locksroot() {
                    Some(ch.partner.locks.clone())
                } else if root == Locksroot::default() {
                    Some(Vec::new())
                } else {
                    log::warn!("{id}: the chain holds a partner lock tree we do not know");
                    None
                };
                ch.onchain.unlocking.clear();
            }
        }
    }
}
