//! The node's ways to its peers: what the transports report goes into the event loop, and
//! what the core sends goes out over each transport that can carry it. The core never learns
//! which transport carried a message; a peer is reachable when any transport reaches it.

use super::handle::NodeHandle;
use super::runtime::Outbound;
use crate::core::Input;
use crate::primitives::Address;
use crate::transport::xmpp::XmppTransport;
use crate::transport::{Transport, TransportEvent};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Which transport reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Via {
    /// Through the XMPP server.
    Xmpp,
    /// Directly on the local network.
    Lan,
}

/// Each peer's reachability per transport, merged.
#[derive(Default)]
pub(super) struct Reachability {
    peers: Mutex<HashMap<Address, (bool, bool)>>,
}

impl Reachability {
    /// Records what `via` says of `peer`; returns the merged reachability if it changed.
    fn update(&self, peer: Address, via: Via, online: bool) -> Option<bool> {
        let mut peers = self.peers.lock().expect("not poisoned");
        let entry = peers.entry(peer).or_default();
        let before = entry.0 || entry.1;
        match via {
            Via::Xmpp => entry.0 = online,
            Via::Lan => entry.1 = online,
        }
        let after = entry.0 || entry.1;
        (before != after || !before).then_some(after)
    }
}

/// What the transports share with the outbound side.
#[derive(Default)]
pub(super) struct LinkState {
    /// Whether the XMPP transport is logged in.
    pub xmpp_up: AtomicBool,
    /// Peer reachability.
    pub reachability: Reachability,
}

/// A transport's event sink: messages go to the event loop's receive queue, presence and link
/// changes become inputs. Returns false once the event loop is gone.
pub(super) fn event_sink(
    via: Via,
    handle: NodeHandle,
    links: Arc<LinkState>,
) -> impl FnMut(TransportEvent) -> bool + Send + 'static {
    move |ev: TransportEvent| {
        let input = match ev {
            TransportEvent::Received { bytes, .. } => {
                return match handle.receive(bytes) {
                    Ok(true) => true,
                    Ok(false) => {
                        log::warn!("receive queue full: dropped a message (its sender resends it)");
                        true
                    }
                    Err(_) => false,
                };
            }
            TransportEvent::PeerOnline(peer) | TransportEvent::PeerOffline(peer) => {
                let online = matches!(ev, TransportEvent::PeerOnline(_));
                match links.reachability.update(peer, via, online) {
                    Some(online) => Input::PeerReachability { peer, online },
                    None => return true,
                }
            }
            TransportEvent::Connected | TransportEvent::Disconnected => {
                let up = matches!(ev, TransportEvent::Connected);
                if via != Via::Xmpp {
                    return true;
                }
                links.xmpp_up.store(up, Ordering::Release);
                Input::XmppLink(up)
            }
        };
        handle.input(input).is_ok()
    }
}

/// Sends over the LAN when the peer is reachable there, and through XMPP when it is logged in
/// (or when the LAN cannot carry the message: XMPP keeps it until it reconnects).
pub(super) struct Links {
    /// The XMPP transport.
    pub xmpp: Arc<XmppTransport>,
    /// Shared link state.
    pub state: Arc<LinkState>,
}

impl Outbound for Links {
    fn send(&self, to: Address, bytes: Vec<u8>) {
        if let Err(e) = self.xmpp.send(to, bytes) {
            // The core resends until acknowledged; a full queue only delays delivery.
            log::warn!("could not queue a message to {to:?}: {e}");
        }
    }
}
