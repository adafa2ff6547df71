//! A simulated monitoring service per node (`--monitor`): it checks every package as the real
//! service does (each signature, the delegate, the chain, a nonce that never goes back) and,
//! while up, acknowledges it at once; while down, the newest package per channel waits, as the
//! shell's retries do. The simulation also holds a gated node to its promise: a mediated
//! transfer leaves it only once its monitor holds the payer's proof with that lock.

use super::Simulation;
use crate::core::{DelegationPrint, Input, MonitorReport};
use crate::crypto::PrivateKey;
use crate::delegation::DelegationPackage;
use crate::messages::Message;
use crate::primitives::{Address, ChannelId, Nonce, SecretHash};
use std::collections::BTreeMap;

/// Most items a simulated service takes in one package.
const MAX_ITEMS: usize = 10_000;

/// One node's monitoring service.
#[derive(Debug)]
pub struct SimMonitor {
    /// The service's address.
    pub address: Address,
    /// Whether it answers.
    pub up: bool,
    /// The package it holds per channel.
    pub held: BTreeMap<ChannelId, DelegationPackage>,
    /// Packages handed over while it was down, newest per channel.
    backlog: BTreeMap<ChannelId, (DelegationPrint, Box<DelegationPackage>)>,
    /// Every package it accepted, in order: (sim time, channel, nonce).
    pub accepted: Vec<(u64, ChannelId, Nonce)>,
    /// The nonce of the payer's proof each incoming lock arrived with, per channel (a lock
    /// given back may come again over another route).
    lock_nonces: BTreeMap<(ChannelId, SecretHash), Nonce>,
}

impl SimMonitor {
    /// Forgets what waited for it (the node's process died with it).
    pub(super) fn clear_backlog(&mut self) {
        self.backlog.clear();
    }
}

impl Simulation {
    /// Gives node `i` a monitoring service that is up; returns its address.
    pub fn attach_monitor(&mut self, i: usize) -> Address {
        let key = PrivateKey::random(&mut self.rng);
        let address = key.address();
        self.nodes[i].monitor = Some(SimMonitor {
            address,
            up: true,
            held: BTreeMap::new(),
            backlog: BTreeMap::new(),
            accepted: Vec::new(),
            lock_nonces: BTreeMap::new(),
        });
        self.input(i, Input::Monitor(MonitorReport::Ready(address)));
        address
    }

    /// Node `i`'s monitoring service.
    pub fn monitor(&self, i: usize) -> &SimMonitor {
        self.nodes[i].monitor.as_ref().expect("a monitor attached")
    }

    /// Takes node `i`'s monitoring service down, or brings it back (it then takes what
    /// waited).
    pub fn set_monitor_up(&mut self, i: usize, up: bool) {
        let m = self.nodes[i].monitor.as_mut().expect("a monitor attached");
        m.up = up;
        if up {
            let backlog = std::mem::take(&mut m.backlog);
            for (print, package) in backlog.into_values() {
                if let Some(reply) = self.delegate(i, print, package) {
                    self.input(i, reply);
                }
            }
        }
    }

    /// Node `i` handed a package over: the service takes it (and the reply is returned) or
    /// keeps it for when it is back.
    pub(super) fn delegate(
        &mut self,
        i: usize,
        print: DelegationPrint,
        package: Box<DelegationPackage>,
    ) -> Option<Input> {
        let chain_id = self.chain.chain_id;
        let now = self.now_ms;
        let m = self.nodes[i].monitor.as_mut()?;
        let channel = package.channel_identifier;
        if !m.up {
            m.backlog.insert(channel, (print, package));
            return None;
        }
        package
            .verify(m.address, chain_id, MAX_ITEMS)
            .expect("the node hands over packages the service accepts");
        // A withdraw or a reopened channel starts a new epoch, whose nonces start again (the
        // real service forgets the channel on the withdraw or settle).
        if let Some(old) = m.held.get(&channel) {
            assert!(
                (package.open_block_number, package.nonce())
                    >= (old.open_block_number, old.nonce()),
                "{channel}: the node handed over nonce {} of epoch {} after nonce {} of epoch {}",
                package.nonce(),
                package.open_block_number,
                old.nonce(),
                old.open_block_number
            );
        }
        assert_eq!(
            (package.open_block_number, package.nonce()),
            (print.open_block_number, print.nonce),
            "the print names the package"
        );
        m.accepted.push((now, channel, package.nonce()));
        m.held.insert(channel, *package);
        Some(Input::Monitor(MonitorReport::Holds { channel, print }))
    }

    /// Node `i` receives `bytes`: the nonce an incoming lock arrives with is noted.
    pub(super) fn note_incoming_lock(&mut self, i: usize, bytes: &[u8]) {
        let chain_id = self.chain.chain_id;
        let Some(m) = self.nodes[i].monitor.as_mut() else {
            return;
        };
        if let Ok(signed) = crate::messages::decode(bytes, chain_id)
            && let Message::MediatedTransfer(t) = &signed.message
        {
            let bp = t.balance_proof;
            m.lock_nonces
                .entry((bp.channel_identifier, t.lock.secrethash))
                .or_insert(bp.nonce);
        }
    }

    /// Node `i` sends `bytes`: a gated mediator's onward lock must find its payer's proof held
    /// by the monitor.
    pub(super) fn check_forward(&self, i: usize, bytes: &[u8]) {
        let node = &self.nodes[i];
        let Some(m) = node.monitor.as_ref() else {
            return;
        };
        if !node.core.state.config.delegate_before_forwarding {
            return;
        }
        let Ok(signed) = crate::messages::decode(bytes, self.chain.chain_id) else {
            return;
        };
        let Message::MediatedTransfer(t) = &signed.message else {
            return;
        };
        let h = t.lock.secrethash;
        let Some(channel) = node.core.state.mediators.get(&h).map(|m| m.payer_channel) else {
            return;
        };
        let nonce = m.lock_nonces[&(channel, h)];
        let epoch = node
            .core
            .state
            .channel(&channel)
            .map(|c| c.open_block_number);
        let held = m
            .held
            .get(&channel)
            .filter(|p| Some(p.open_block_number) == epoch)
            .map(|p| p.nonce());
        assert!(
            held >= Some(nonce),
            "node {i} forwarded {h:?} while its monitor held {held:?} of {channel}, the lock came with nonce {nonce}"
        );
    }
}
