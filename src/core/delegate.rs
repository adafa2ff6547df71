//! The node's side of third-party delegation (SPEC §8), decided here with no I/O:
//! - the package a monitoring service needs to defend one of our channels
//!   (`GET /api/1/thirdparty/{channel}/{delegate}`, and `Output::Delegate`);
//! - when to hand a fresh package over: whenever what it would carry changes (a new balance
//!   proof from the partner, a secret learned for one of its locks, a lock the partner gave
//!   back, a lock we gave back — which the monitor must then never unlock), and
//!   every channel again on the way into no-internet mode;
//! - with `NodeConfig::delegate_before_forwarding`, a mediated transfer is forwarded only once
//!   the service holds the payer's proof that carries its lock: a mediator that then goes
//!   offline is still defended against a payer closing with an older proof. A transfer still
//!   waiting when too little time is left to forward it is given back to the payer.
//!
//! What the service acknowledged is not persisted: a restarted node hands every channel over
//! again (the service answers "not newer" for what it holds), and transfers it had not
//! forwarded wait again.

use super::{Core, Output};
use crate::delegation::{DelegatedProof, DelegatedUnlock, DelegationPackage, PunishEvidence};
use crate::primitives::{Address, BlockNumber, ChannelId, Nonce, SecretHash, Signature};
use crate::proofs::{DelegationData, Lock, SignedData, UnlockDelegationData};
use std::collections::BTreeMap;

use super::channel::ChannelState;

/// What a channel's package carries, in brief: a new package is handed over when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DelegationPrint {
    /// The channel's epoch (a withdraw or a reopened channel starts nonces again).
    pub open_block_number: BlockNumber,
    /// The partner's proof's nonce.
    pub nonce: Nonce,
    /// Unlock delegations (claimable locks of that proof whose secret we know).
    pub unlocks: usize,
    /// Punish evidence (locks the partner gave back).
    pub punishes: usize,
    /// Locks we gave back.
    pub given_back: usize,
}

/// What the shell learned from the monitoring service (`Input::Monitor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorReport {
    /// The service answered with its address: packages are made for it from now on, and
    /// every channel is handed over.
    Ready(Address),
    /// The service holds the package of `channel` described by `print` (it accepted it, or
    /// answered that it holds it or newer).
    Holds {
        /// The channel.
        channel: ChannelId,
        /// What the package carried.
        print: DelegationPrint,
    },
}

/// Where delegation to the monitoring service stands (not persisted).
#[derive(Debug, Default)]
pub(super) struct Delegations {
    /// The service's address, once the shell reported it.
    monitor: Option<Address>,
    /// What was last handed to the shell, per channel.
    handed: BTreeMap<ChannelId, DelegationPrint>,
    /// The newest proof the service acknowledged holding, per channel.
    held: BTreeMap<ChannelId, Position>,
    /// Mediated transfers waiting to be forwarded until the service holds the payer's proof
    /// with their lock: its channel, and the proof's position.
    waiting: BTreeMap<SecretHash, (ChannelId, Position)>,
    /// Whether the node was in no-internet mode at the end of the last step.
    was_offline: bool,
}

impl Delegations {
    /// After a restart: every mediated transfer not yet forwarded waits again, for the
    /// payer's latest proof.
    pub(super) fn restored(state: &super::NodeState) -> Delegations {
        let waiting = state
            .mediators
            .iter()
            .filter(|(_, m)| m.payee.is_none())
            .filter_map(|(h, m)| {
                let ch = state.channel(&m.payer_channel)?;
                Some((*h, (m.payer_channel, position(ch))))
            })
            .collect();
        Delegations {
            waiting,
            ..Delegations::default()
        }
    }
}

/// The partner's locks of `ch` an unlock delegation is given for: claimable locks of its
/// latest proof whose secret we know (none if that proof is not the one its locks belong to).
fn delegated_locks(ch: &ChannelState) -> impl Iterator<Item = &Lock> {
    let current = ch
        .partner
        .latest_proof
        .is_some_and(|p| p.balance_proof.locksroot == ch.partner.locksroot());
    ch.claimable_locks()
        .filter(move |l| current && ch.partner.secrets.contains_key(&l.secrethash))
}

/// Where a proof stands: its channel's epoch, then its nonce (nonces start again in a new
/// epoch).
type Position = (BlockNumber, Nonce);

/// The position of the partner's latest proof on `ch`.
fn position(ch: &ChannelState) -> Position {
    (ch.open_block_number, ch.partner.nonce)
}

/// What `ch`'s package would carry; `None` before the partner sent any proof.
fn print_of(ch: &ChannelState) -> Option<DelegationPrint> {
    let proof = ch.partner.latest_proof?;
    Some(DelegationPrint {
        open_block_number: ch.open_block_number,
        nonce: proof.balance_proof.nonce,
        unlocks: delegated_locks(ch).count(),
        punishes: ch.disposed_to_us.len(),
        given_back: ch.given_back.len(),
    })
}

impl Core {
    /// Feeds what the shell learned from the monitoring service.
    pub(super) fn on_monitor(&mut self, report: MonitorReport) {
        match report {
            MonitorReport::Ready(address) => {
                if self.delegations.monitor != Some(address) {
                    log::info!("delegating every channel to monitor {address:?}");
                    self.delegations.monitor = Some(address);
                    self.delegations.handed.clear();
                    self.delegations.held.clear();
                }
            }
            MonitorReport::Holds { channel, print } => {
                let at = (print.open_block_number, print.nonce);
                let held = self.delegations.held.entry(channel).or_insert(at);
                *held = (*held).max(at);
                let held = *held;
                log::debug!(
                    "{channel}: the monitor holds our delegation up to nonce {} of epoch {}",
                    held.1,
                    held.0
                );
                let released: Vec<SecretHash> = self
                    .delegations
                    .waiting
                    .iter()
                    .filter(|(_, (c, at))| *c == channel && *at <= held)
                    .map(|(h, _)| *h)
                    .collect();
                for h in released {
                    self.delegations.waiting.remove(&h);
                    log::info!("{h:?}: the monitor holds the payer's proof; forwarding");
                    self.forward_or_give_up(h);
                }
            }
        }
    }

    /// Whether a mediated transfer that arrived on `channel` must wait for the monitor before
    /// it is forwarded; if so, it is recorded as waiting.
    pub(crate) fn wait_for_delegation(&mut self, h: SecretHash, channel: ChannelId) -> bool {
        if !self.state.config.delegate_before_forwarding {
            return false;
        }
        let Some(at) = self.state.channel(&channel).map(position) else {
            return false;
        };
        if self
            .delegations
            .held
            .get(&channel)
            .is_some_and(|held| *held >= at)
        {
            return false;
        }
        log::info!(
            "{h:?}: forwarding once the monitor holds the payer's proof {} of {channel}",
            at.1
        );
        self.delegations.waiting.insert(h, (channel, at));
        true
    }

    /// Mediated transfers waiting for the monitor on `channel` (for the channel's JSON).
    pub fn forwards_waiting_for_monitor(&self, channel: &ChannelId) -> usize {
        self.delegations
            .waiting
            .values()
            .filter(|(c, _)| c == channel)
            .count()
    }

    /// A new block: a waiting transfer whose payer's lock leaves too little time to forward a
    /// lock of our own (ours must expire our reveal timeout earlier, and still leave the payee
    /// its own) is given back to the payer, which can then route around us.
    pub(super) fn expire_waiting_forwards(&mut self) {
        if self.delegations.waiting.is_empty() {
            return;
        }
        let reveal = self.state.config.reveal_timeout;
        let block = self.state.block;
        let late: Vec<SecretHash> = self
            .delegations
            .waiting
            .keys()
            .filter(|h| {
                self.state.mediators.get(h).is_none_or(|m| {
                    m.payee.is_some() || m.payer_lock.expiration <= block.plus(reveal).plus(reveal)
                })
            })
            .copied()
            .collect();
        for h in late {
            self.delegations.waiting.remove(&h);
            if self
                .state
                .mediators
                .get(&h)
                .is_some_and(|m| m.payee.is_none())
            {
                log::warn!(
                    "{h:?}: the monitor did not take the payer's proof in time; giving the lock back"
                );
                self.mediator_give_up(h);
            }
        }
    }

    /// After each step: transfers that waited for a monitor that is no longer asked for go on,
    /// those that waited when no-internet mode began are given back, and every channel whose package changed is handed to the shell (every channel on the
    /// way into no-internet mode).
    pub(super) fn hand_over_delegations(&mut self) {
        // Nothing to do on a node without a monitor and with nothing waiting (the usual step).
        if self.delegations.monitor.is_none() && self.delegations.waiting.is_empty() {
            return;
        }
        // Forwarded without the monitor, or (in no-internet mode, which holds no lock) given
        // back at once.
        let offline = self.no_internet().is_some();
        if (!self.state.config.delegate_before_forwarding || offline)
            && !self.delegations.waiting.is_empty()
        {
            for h in std::mem::take(&mut self.delegations.waiting).into_keys() {
                self.forward_or_give_up(h);
            }
        }
        let Some(monitor) = self.delegations.monitor else {
            return;
        };
        if offline && !self.delegations.was_offline {
            log::info!("entering no-internet mode: handing every channel to the monitor again");
            self.delegations.handed.clear();
        }
        self.delegations.was_offline = offline;
        let changed: Vec<(ChannelId, DelegationPrint)> = self
            .state
            .channels()
            .filter_map(|c| {
                let print = print_of(c)?;
                (self.delegations.handed.get(&c.identifier) != Some(&print))
                    .then_some((c.identifier, print))
            })
            .collect();
        for (channel, print) in changed {
            if let Some(package) = self.delegation_package(&channel, monitor) {
                self.delegations.handed.insert(channel, print);
                self.out.push(Output::Delegate {
                    print,
                    package: Box::new(package),
                });
            }
        }
        if self.delegations.handed.len() > self.state.channel_index.len() {
            let index = &self.state.channel_index;
            self.delegations.handed.retain(|c, _| index.contains_key(c));
            self.delegations.held.retain(|c, _| index.contains_key(c));
        }
    }

    /// The delegation package of `channel` for `delegate`, signed by us: the partner's latest
    /// balance proof with our delegation signature, an unlock delegation bound to `delegate` for
    /// every claimable lock whose secret we know, and the partner's statements of locks it gave
    /// back. `None` if we have no such channel.
    pub fn delegation_package(
        &self,
        channel: &ChannelId,
        delegate: Address,
    ) -> Option<DelegationPackage> {
        let ch = self.state.channel(channel)?;
        let binding = ch.binding();
        let balance_proof = ch.partner.latest_proof.map(|p| {
            let bp = p.balance_proof;
            DelegatedProof {
                transferred_amount: bp.transferred_amount,
                locksroot: bp.locksroot,
                nonce: bp.nonce,
                additional_hash: p.additional_hash,
                partner_signature: p.signature,
                delegation_signature: DelegationData {
                    transferred_amount: bp.transferred_amount,
                    locksroot: bp.locksroot,
                    nonce: bp.nonce,
                    binding,
                }
                .sign(&self.key),
            }
        });
        // Only locks of the proof handed over: their Merkle proofs are against its locksroot.
        let unlocks = match balance_proof {
            Some(_) => delegated_locks(ch)
                .filter_map(|l| {
                    Some(DelegatedUnlock {
                        expiration: l.expiration,
                        amount: l.amount,
                        secrethash: l.secrethash,
                        merkle_proof: ch.partner.merkle_proof(&l.secrethash)?,
                        signature: UnlockDelegationData {
                            delegatee: delegate,
                            expiration: l.expiration,
                            amount: l.amount,
                            secrethash: l.secrethash,
                            binding,
                        }
                        .sign(&self.key),
                        secret: ch.partner.secrets.get(&l.secrethash).copied(),
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        let punishes = ch
            .disposed_to_us
            .values()
            .map(|d| PunishEvidence {
                lockhash: d.lock.lockhash(),
                additional_hash: d.additional_hash,
                partner_signature: d.signature,
            })
            .collect();
        let mut package = DelegationPackage {
            chain_id: ch.chain_id,
            token_network: ch.token_network,
            channel_identifier: ch.identifier,
            open_block_number: ch.open_block_number,
            settle_timeout: ch.settle_timeout,
            delegator: self.address(),
            partner: ch.partner.address,
            delegate,
            balance_proof,
            unlocks,
            punishes,
            given_back: ch.given_back.keys().copied().collect(),
            signature: Signature([0; 65]),
        };
        package.sign(&self.key);
        Some(package)
    }
}
