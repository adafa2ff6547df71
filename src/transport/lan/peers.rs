//! The peer table shared by the transport handle and its worker: who is known, where to dial
//! them, whether a proven connection is up, and each peer's bounded send queue.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::primitives::Address;
use crate::transport::TransportError;

/// How the transport learnt about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerSource {
    /// Announced on mDNS (expires when no longer seen and not connected).
    Mdns,
    /// Given by the node ([`super::LanTransport::add_peer`]); never expires.
    Manual,
    /// Neither: it dialled us and proved its address. Forgotten when that connection ends.
    Inbound,
}

/// A peer as the node sees it ([`super::LanTransport::peers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanPeer {
    /// The peer's address (proven only while `connected`).
    pub address: Address,
    /// Where it is dialled (or where its proven connection comes from and its listen port).
    pub socket: SocketAddr,
    /// How we learnt about it.
    pub source: PeerSource,
    /// Whether a connection whose hello proved `address` is up.
    pub connected: bool,
    /// Milliseconds since the last sign of life (mDNS sighting, hello, message), if any.
    pub last_seen_ms_ago: Option<u64>,
}

/// Identifies one TCP connection for the lifetime of a transport.
pub type ConnId = u64;

/// A peer's outgoing messages: bounded, survives reconnects, drained by the live connection.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<VecDeque<Vec<u8>>>,
    ready: Notify,
    capacity: usize,
}

impl Outbox {
    /// An empty queue holding at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Outbox {
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            capacity,
        }
    }

    /// Appends a message and wakes the writer; fails when `capacity` messages wait.
    pub fn push(&self, bytes: Vec<u8>) -> Result<(), TransportError> {
        {
            let mut q = self.queue.lock().expect("outbox lock");
            if q.len() >= self.capacity {
                return Err(TransportError::QueueFull {
                    capacity: self.capacity,
                });
            }
            q.push_back(bytes);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// Takes up to `max` messages from the front.
    pub fn pop(&self, max: usize) -> Vec<Vec<u8>> {
        let mut q = self.queue.lock().expect("outbox lock");
        let n = max.min(q.len());
        q.drain(..n).collect()
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().expect("outbox lock").len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves after the next [`Outbox::push`] (or at once if one happened unobserved).
    pub async fn ready(&self) {
        self.ready.notified().await
    }
}

/// Everything known about one peer.
#[derive(Debug)]
pub struct Peer {
    /// Where to dial it; `None` for a peer we only accept.
    pub dial: Option<SocketAddr>,
    /// Where its live connection comes from, with its announced listen port.
    pub seen_at: Option<SocketAddr>,
    /// How we learnt about it.
    pub source: PeerSource,
    /// Last mDNS sighting.
    pub mdns_seen: Option<Instant>,
    /// Last sign of life of any kind.
    pub last_seen: Option<Instant>,
    /// The live proven connection and who dialled it.
    pub live: Option<(ConnId, Address)>,
    /// When the live connection was accepted.
    pub live_since: Option<Instant>,
    /// Whether the node was last told `PeerOnline` (so `PeerOffline` is owed when it drops).
    pub online_reported: bool,
    /// A `PeerOffline` held back until this deadline while a new connection may still prove
    /// this peer (avoids an offline/online flap when duplicate connections are resolved).
    pub offline_due: Option<Instant>,
    /// An outgoing dial is in flight.
    pub dialing: bool,
    /// Earliest time of the next dial.
    pub next_dial: Instant,
    /// Wait after the next failed dial.
    pub backoff: Duration,
    /// Messages waiting for this peer.
    pub outbox: Arc<Outbox>,
}

impl Peer {
    /// A peer with nothing known yet but its source.
    pub fn new(source: PeerSource, queue_capacity: usize, backoff: Duration) -> Self {
        Peer {
            dial: None,
            seen_at: None,
            source,
            mdns_seen: None,
            last_seen: None,
            live: None,
            live_since: None,
            online_reported: false,
            offline_due: None,
            dialing: false,
            next_dial: Instant::now(),
            backoff,
            outbox: Arc::new(Outbox::new(queue_capacity)),
        }
    }

    /// Whether a proven connection is up.
    pub fn connected(&self) -> bool {
        self.live.is_some()
    }

    /// Whether the worker should dial it now (or at `next_dial`).
    pub fn wants_dial(&self) -> bool {
        self.dial.is_some() && self.live.is_none() && !self.dialing
    }

    /// The view given to the node.
    pub fn view(&self, address: Address, now: Instant) -> Option<LanPeer> {
        let socket = match (self.live.is_some(), self.seen_at, self.dial) {
            (true, Some(at), _) | (_, _, Some(at)) | (_, Some(at), None) => at,
            _ => return None,
        };
        Some(LanPeer {
            address,
            socket,
            source: self.source,
            connected: self.connected(),
            last_seen_ms_ago: self
                .last_seen
                .map(|t| now.saturating_duration_since(t).as_millis() as u64),
        })
    }
}

/// All peers by address.
pub type PeerTable = HashMap<Address, Peer>;

/// Which of two proven connections to the same peer stays: the one dialled by the lower
/// address, so both ends pick the same one without talking about it. Between two connections
/// dialled by the same side the newer one wins (the dialler knows the old one is gone).
pub fn keep_new_connection(old_dialler: Address, new_dialler: Address) -> bool {
    new_dialler <= old_dialler
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_keep_the_connection_dialled_by_the_lower_address() {
        let (low, high) = (Address([1; 20]), Address([2; 20]));
        // Old dialled by high, new by low: replace. Old by low, new by high: keep old.
        assert!(keep_new_connection(high, low));
        assert!(!keep_new_connection(low, high));
        // A redial by the same side replaces the stale connection.
        assert!(keep_new_connection(low, low));
        assert!(keep_new_connection(high, high));
    }

    #[test]
    fn outbox_is_bounded() {
        let o = Outbox::new(2);
        o.push(vec![1]).unwrap();
        o.push(vec![2]).unwrap();
        assert_eq!(
            o.push(vec![3]),
            Err(TransportError::QueueFull { capacity: 2 })
        );
        assert_eq!(o.pop(5), vec![vec![1], vec![2]]);
        assert!(o.is_empty());
    }
}
