//! The node's ways to its peers: what the transports report goes into the event loop, and
//! what the core sends goes out over each transport that can carry it. The core never learns
//! which transport carried a message; a peer is reachable when any transport reaches it.

use super::handle::NodeHandle;
use super::runtime::Outbound;
use crate::core::Input;
use crate::primitives::Address;
use crate::storage::Store;
use crate::transport::lan::{LanTransport, PeerSource};
use crate::transport::xmpp::XmppTransport;
use crate::transport::{Transport, TransportEvent};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
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
    /// The LAN transport, if it runs.
    pub lan: Option<Arc<LanTransport>>,
    /// Shared link state.
    pub state: Arc<LinkState>,
}

impl Outbound for Links {
    fn send(&self, to: Address, bytes: Vec<u8>) {
        let on_lan = self.lan.as_ref().is_some_and(|lan| lan.reachable(to));
        let xmpp_up = self.state.xmpp_up.load(Ordering::Acquire);
        if on_lan {
            let lan = self.lan.as_ref().expect("checked");
            let copy = if xmpp_up { Some(bytes.clone()) } else { None };
            if let Err(e) = lan.send(to, bytes) {
                log::debug!("LAN: could not queue a message to {to:?}: {e}");
            }
            // Over XMPP too while it is up: whichever arrives first counts, acks absorb the
            // other. While it is down the LAN carries it alone (retransmission covers loss).
            if let Some(bytes) = copy {
                self.send_xmpp(to, bytes);
            }
        } else {
            // XMPP keeps it until it reconnects.
            self.send_xmpp(to, bytes);
        }
    }
}

impl Links {
    fn send_xmpp(&self, to: Address, bytes: Vec<u8>) {
        if let Err(e) = self.xmpp.send(to, bytes) {
            // The core resends until acknowledged; a full queue only delays delivery.
            log::warn!("could not queue a message to {to:?}: {e}");
        }
    }
}

/// The LAN peers the user manages through the API: persisted in the store, applied to the
/// transport.
pub(super) struct LanAdmin {
    /// The transport.
    pub lan: Arc<LanTransport>,
    /// Where the list persists.
    pub store: Arc<Store>,
    /// Serializes updates (read, merge, write).
    pub lock: Mutex<()>,
}

impl crate::api::LanPeers for LanAdmin {
    fn update(&self, peers: Vec<(Address, Option<SocketAddr>)>) -> Result<(), String> {
        let _guard = self.lock.lock().expect("not poisoned");
        let mut list = self.store.lan_peers().map_err(|e| e.to_string())?;
        for (address, at) in &peers {
            list.retain(|(a, _)| a != address);
            if let Some(at) = at {
                list.push((*address, *at));
            }
        }
        self.store.set_lan_peers(&list).map_err(|e| e.to_string())?;
        for (address, at) in peers {
            match at {
                Some(at) => self.lan.add_peer(address, at),
                None => self.lan.remove_peer(address),
            }
        }
        Ok(())
    }

    fn list(&self) -> Value {
        Value::Array(
            self.lan
                .peers()
                .into_iter()
                .map(|p| {
                    json!({
                        "address": p.address.to_checksum(),
                        "ip_port": p.socket.to_string(),
                        "source": match p.source {
                            PeerSource::Mdns => "mdns",
                            PeerSource::Manual => "manual",
                            PeerSource::Inbound => "inbound",
                        },
                        "connected": p.connected,
                        "last_seen_ms_ago": p.last_seen_ms_ago,
                    })
                })
                .collect(),
        )
    }

    fn listen_address(&self) -> SocketAddr {
        self.lan.local_addr()
    }
}
