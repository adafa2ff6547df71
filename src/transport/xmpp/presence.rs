//! Which peers are online, from the presence stanzas the server relays.
//!
//! Pure bookkeeping, so the rules (a peer is online while any of its resources is; only
//! watched peers are reported; everything is unknown after our own disconnect) are tested
//! without a server.

use std::collections::{BTreeSet, HashMap};

use crate::primitives::Address;
use crate::transport::TransportEvent;

/// Online resources per peer, and the set of peers the node asked about.
#[derive(Debug, Default)]
pub struct PresenceTracker {
    watched: BTreeSet<Address>,
    resources: HashMap<Address, BTreeSet<String>>,
}

impl PresenceTracker {
    /// Peers whose presence is reported.
    pub fn watched(&self) -> impl Iterator<Item = &Address> {
        self.watched.iter()
    }

    /// Starts reporting `peer`; reports it online at once if we already know it is.
    pub fn watch(&mut self, peer: Address) -> Option<TransportEvent> {
        let newly = self.watched.insert(peer);
        (newly && self.is_online(&peer)).then_some(TransportEvent::PeerOnline(peer))
    }

    /// Whether any resource of `peer` is online.
    pub fn is_online(&self, peer: &Address) -> bool {
        self.resources.get(peer).is_some_and(|r| !r.is_empty())
    }

    /// `peer/resource` sent available presence.
    pub fn available(&mut self, peer: Address, resource: &str) -> Option<TransportEvent> {
        let was = self.is_online(&peer);
        self.resources
            .entry(peer)
            .or_default()
            .insert(resource.to_owned());
        (!was && self.watched.contains(&peer)).then_some(TransportEvent::PeerOnline(peer))
    }

    /// `peer/resource` went away; `None` resource (a bare JID) means all of them.
    pub fn unavailable(&mut self, peer: Address, resource: Option<&str>) -> Option<TransportEvent> {
        let was = self.is_online(&peer);
        match (resource, self.resources.get_mut(&peer)) {
            (Some(r), Some(set)) => {
                set.remove(r);
            }
            (None, Some(set)) => set.clear(),
            (_, None) => {}
        }
        (was && !self.is_online(&peer) && self.watched.contains(&peer))
            .then_some(TransportEvent::PeerOffline(peer))
    }

    /// Forgets all presence (we lost our connection): watched online peers go offline.
    pub fn reset(&mut self) -> Vec<TransportEvent> {
        let events = self
            .watched
            .iter()
            .filter(|p| self.is_online(p))
            .map(|p| TransportEvent::PeerOffline(*p))
            .collect();
        self.resources.clear();
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransportEvent::{PeerOffline, PeerOnline};

    const A: Address = Address([0xa; 20]);
    const B: Address = Address([0xb; 20]);

    #[test]
    fn only_watched_peers_are_reported() {
        let mut t = PresenceTracker::default();
        assert_eq!(t.available(B, "r"), None);
        assert_eq!(t.watch(A), None);
        assert_eq!(t.available(A, "r"), Some(PeerOnline(A)));
        assert_eq!(t.unavailable(B, Some("r")), None);
    }

    #[test]
    fn watching_a_known_online_peer_reports_it() {
        let mut t = PresenceTracker::default();
        t.available(A, "r");
        assert_eq!(t.watch(A), Some(PeerOnline(A)));
        assert_eq!(t.watch(A), None, "second watch is silent");
    }

    #[test]
    fn online_while_any_resource_is() {
        let mut t = PresenceTracker::default();
        t.watch(A);
        assert_eq!(t.available(A, "r1"), Some(PeerOnline(A)));
        assert_eq!(t.available(A, "r2"), None);
        assert_eq!(t.available(A, "r1"), None);
        assert_eq!(t.unavailable(A, Some("r1")), None);
        assert_eq!(t.unavailable(A, Some("r2")), Some(PeerOffline(A)));
        assert_eq!(t.unavailable(A, Some("r2")), None);
        t.available(A, "r1");
        assert_eq!(t.unavailable(A, None), Some(PeerOffline(A)));
    }

    #[test]
    fn reset_takes_online_watched_peers_offline() {
        let mut t = PresenceTracker::default();
        t.watch(A);
        t.watch(B);
        t.available(A, "r");
        assert_eq!(t.reset(), vec![PeerOffline(A)]);
        assert!(!t.is_online(&A));
        assert_eq!(t.available(A, "r"), Some(PeerOnline(A)));
    }
}
