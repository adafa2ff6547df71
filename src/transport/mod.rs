//! Carrying signed protocol messages between nodes.
//!
//! A transport is best effort: it delivers bytes to a peer if it can and reports what it
//! receives and who is online. Reliability (send/ack/retry, ordering, deduplication) lives in
//! the protocol core above it, so one core works over any transport: XMPP through a server
//! ([`xmpp`]), or later a direct LAN peer-to-peer transport for no-internet mode.
//!
//! Received bytes are untrusted: the sender is recovered from the message signature, never
//! taken from the transport's notion of who sent it.

pub mod lan;
pub mod ports;
pub mod xmpp;

use crate::primitives::Address;

/// What a transport reports to the node, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// A protocol message arrived.
    Received {
        /// The signed message bytes, exactly as the sender passed them to `send`.
        bytes: Vec<u8>,
        /// Who the transport says sent it (for logs only: trust the signature instead).
        claimed_sender: Option<Address>,
    },
    /// A watched peer became reachable.
    PeerOnline(Address),
    /// A watched peer became unreachable (also reported for every online peer on disconnect:
    /// while we are offline we know nothing about theirs).
    PeerOffline(Address),
    /// The transport is connected and sending; queued messages are being flushed.
    Connected,
    /// The transport lost its connection; it reconnects by itself and keeps queued messages.
    Disconnected,
}

/// Where a transport reports its [`TransportEvent`]s.
pub enum EventSink {
    /// A bounded channel: while it is full the transport stops reading the network.
    Channel(tokio::sync::mpsc::Sender<TransportEvent>),
    /// A function called on the transport's own thread, in order; it must not block. It
    /// returns false once nobody listens any more. The node hands received messages to its
    /// event loop this way, without a task in between.
    Direct(Box<dyn FnMut(TransportEvent) -> bool + Send>),
}

impl EventSink {
    /// Reports `event`; false if the listener is gone.
    pub async fn deliver(&mut self, event: TransportEvent) -> bool {
        match self {
            EventSink::Channel(tx) => tx.send(event).await.is_ok(),
            EventSink::Direct(f) => f(event),
        }
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventSink::Channel(_) => "EventSink::Channel",
            EventSink::Direct(_) => "EventSink::Direct",
        })
    }
}

/// Why a transport refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The outgoing queue holds its maximum; the caller should retry later.
    #[error("transport send queue is full ({capacity} messages waiting)")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The transport has been shut down (or its worker died).
    #[error("transport is shut down")]
    Closed,
    /// The transport knows no way to this peer (not connected, dialled or discovered).
    #[error("peer {0:?} is not reachable on this transport")]
    Unreachable(Address),
}

/// A way to reach other nodes; the node core talks to it only through this trait.
///
/// Events (received messages, presence, connectivity) go to the [`EventSink`] given to the
/// transport's constructor.
pub trait Transport: Send {
    /// Our own address on this transport.
    fn local_address(&self) -> Address;

    /// Queues `bytes` for best-effort delivery to `to`; returns at once, never blocks.
    fn send(&self, to: Address, bytes: Vec<u8>) -> Result<(), TransportError>;

    /// Starts reporting `peer`'s presence as [`TransportEvent::PeerOnline`]/`PeerOffline`.
    fn watch_presence(&self, peer: Address) -> Result<(), TransportError>;

    /// Stops the transport: says goodbye to the network, then ends its worker.
    fn shutdown(&mut self);
}
