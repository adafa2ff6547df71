//! The LAN transport (SPEC §4, no-internet mode): direct TCP between nodes on one local
//! network, found by mDNS (`_smartraiden._tcp.local.`) or given by hand.
//!
//! - [`frame`]: length-prefixed frames with a hard size cap.
//! - [`hello`]: the mutual challenge–response that binds a connection to a proven address
//!   and the chain id; nothing is sent or accepted before it completes.
//! - `connection`: the reader (rate limit, keepalive) and writer (paced) of a proven link.
//! - `setup`: the listener (connection and handshake limits) and outgoing dials.
//! - `peers`: the peer table shared by the handle and the worker; bounded send queues.
//! - `discovery`: mDNS announce and browse (crate `mdns-sd`, its own thread).
//! - `worker`: the single owner of the event sink and of every change to the table.
//!
//! Like the XMPP transport, [`LanTransport`] is a cheap handle; the worker runs on its own
//! thread with a current-thread tokio runtime. One live connection per peer: when both sides
//! dial at once, both keep the connection dialled by the lower address.

pub mod frame;
pub mod hello;

mod connection;
mod discovery;
mod peers;
mod setup;
mod worker;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use self::worker::{Command, Setup};
use super::{EventSink, Transport, TransportError};
use crate::crypto::PrivateKey;
use crate::primitives::Address;

pub use self::discovery::SERVICE_TYPE;
pub use self::peers::{LanPeer, PeerSource};

/// Limits that keep one peer (or a stranger) from exhausting the node. See
/// [`LanLimits::default`] for the production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanLimits {
    /// Largest frame accepted: length prefix value (type byte + payload). A larger frame
    /// drops the connection; a larger message is not sent.
    pub max_frame_bytes: usize,
    /// Most open TCP connections (proven, in hello, or being dialled); beyond it new inbound
    /// connections are closed at once and dials wait.
    pub max_connections: usize,
    /// Most inbound connections still in their hello; beyond it new ones are closed at once.
    pub max_pending_handshakes: usize,
    /// Time for the TCP connect and for the whole hello.
    pub handshake_timeout: Duration,
    /// Frames per second a peer may send on one connection (a one-second bucket); more
    /// drops the connection. We pace our own sending to half of it.
    pub max_frames_per_sec: u32,
    /// How long an mDNS-discovered peer stays known without being seen again while it is not
    /// connected.
    pub peer_expiry: Duration,
    /// First wait before redialling a peer.
    pub backoff_initial: Duration,
    /// Longest wait between dials.
    pub backoff_max: Duration,
    /// Silence after which we ping; a link silent for twice this long is dropped.
    pub keepalive: Duration,
    /// Most messages waiting for one peer; `send` fails with `QueueFull` beyond it.
    pub max_queued_per_peer: usize,
    /// Most proven connections from strangers (peers that dialled us and were neither given
    /// by the node nor seen on mDNS): anyone can make keys and complete hellos, so they get a
    /// share of `max_connections` and the rest stays free for the peers we know.
    pub max_stranger_connections: usize,
}

impl Default for LanLimits {
    /// Production values: frames up to 256 KiB (a bounded envelope of 4 KiB messages fits
    /// many times over), 64 connections, 16 pending hellos, 5 s to connect and say hello,
    /// 4,000 frames/s per connection (we send at most 2,000/s), mDNS peers forgotten 2 min
    /// after they were last seen, redial backoff 250 ms doubling to 10 s, keepalive ping after
    /// 15 s of silence (dead link dropped after 30 s), 10,000 messages queued per peer, 16
    /// connections from strangers.
    fn default() -> Self {
        LanLimits {
            max_frame_bytes: 256 * 1024,
            max_connections: 64,
            max_pending_handshakes: 16,
            handshake_timeout: Duration::from_secs(5),
            max_frames_per_sec: 4_000,
            peer_expiry: Duration::from_secs(120),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            keepalive: Duration::from_secs(15),
            max_queued_per_peer: 10_000,
            max_stranger_connections: 16,
        }
    }
}

impl LanLimits {
    fn check(&self) -> Result<(), LanError> {
        let bad = |what: &str| Err(LanError::InvalidLimits(what.to_owned()));
        if self.max_frame_bytes < frame::MIN_FRAME_CAP || self.max_frame_bytes > u32::MAX as usize {
            return bad("max_frame_bytes must be between 128 and 2^32-1");
        }
        if self.max_connections == 0 || self.max_pending_handshakes == 0 {
            return bad("max_connections and max_pending_handshakes must be positive");
        }
        if self.max_frames_per_sec < 2 || self.max_queued_per_peer == 0 {
            return bad("max_frames_per_sec must be at least 2 and max_queued_per_peer positive");
        }
        if [
            self.handshake_timeout,
            self.peer_expiry,
            self.backoff_initial,
            self.keepalive,
        ]
        .contains(&Duration::ZERO)
            || self.backoff_max < self.backoff_initial
        {
            return bad("timeouts must be positive and backoff_max >= backoff_initial");
        }
        Ok(())
    }
}

/// Everything the LAN transport needs.
#[derive(Debug, Clone)]
pub struct LanConfig {
    /// The node key: signs our hello (never logged; its `Debug` shows the address only).
    pub key: PrivateKey,
    /// The chain both ends of a connection must be on.
    pub chain_id: u64,
    /// Where to listen; port 0 picks a free one ([`LanTransport::local_addr`] tells which).
    pub listen: SocketAddr,
    /// Announce us and browse for peers on mDNS.
    pub mdns: bool,
    /// Use only this network interface for mDNS (e.g. in a namespace without default route).
    pub mdns_interface: Option<String>,
    /// Resource limits.
    pub limits: LanLimits,
}

impl LanConfig {
    /// A configuration with default limits, listening on `listen`, without mDNS.
    pub fn new(key: PrivateKey, chain_id: u64, listen: SocketAddr) -> Self {
        LanConfig {
            key,
            chain_id,
            listen,
            mdns: false,
            mdns_interface: None,
            limits: LanLimits::default(),
        }
    }
}

/// Why the LAN transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum LanError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The mDNS daemon could not start or register us.
    #[error("mDNS: {0}")]
    Mdns(String),
    /// The limits are unusable.
    #[error("invalid LAN limits: {0}")]
    InvalidLimits(String),
    /// The worker thread could not be started or died.
    #[error("LAN worker: {0}")]
    Worker(String),
}

/// State shared by the handle and the worker.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    table: Mutex<peers::PeerTable>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, peers::PeerTable> {
        self.table.lock().expect("LAN peer table lock")
    }
}

/// A node's LAN transport; cheap to call from any thread or runtime.
#[derive(Debug)]
pub struct LanTransport {
    address: Address,
    local_addr: SocketAddr,
    limits: LanLimits,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl LanTransport {
    /// Binds the listen address, starts the worker thread and (if asked) mDNS. Events go to
    /// `events`: `Received` (with the proven sender), `PeerOnline` after a hello, `PeerOffline`
    /// when the last connection to a proven peer ends.
    pub async fn start(config: LanConfig, events: EventSink) -> Result<LanTransport, LanError> {
        config.limits.check()?;
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| LanError::Bind {
                addr: config.listen,
                source,
            })?;
        let bound = |source| LanError::Bind {
            addr: config.listen,
            source,
        };
        listener.set_nonblocking(true).map_err(bound)?;
        let local_addr = listener.local_addr().map_err(bound)?;
        let address = config.key.address();
        let limits = config.limits.clone();
        let shared = Arc::new(Shared::default());
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = oneshot::channel();
        let setup = Setup {
            config,
            listener,
            listen_port: local_addr.port(),
            shared: shared.clone(),
            commands: cmd_rx,
            stop: stop_rx,
            events,
        };
        let thread = std::thread::Builder::new()
            .name(format!("lan-{}", address.short()))
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(worker::run(setup, ready_tx)),
                    Err(e) => {
                        let _ = ready_tx.send(Err(LanError::Worker(format!("runtime: {e}"))));
                    }
                }
            })
            .map_err(|e| LanError::Worker(e.to_string()))?;
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(LanError::Worker("worker ended during start".into()));
            }
        }
        Ok(LanTransport {
            address,
            local_addr,
            limits,
            shared,
            commands: cmd_tx,
            stop: stop_tx,
            thread: Some(thread),
        })
    }

    /// The bound listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Dials `peer` at `at` from now on (with backoff while it fails) and keeps it known for
    /// `send`; a manual peer never expires. Its hello must prove `peer`, else the connection
    /// is dropped.
    pub fn add_peer(&self, peer: Address, at: SocketAddr) {
        if peer == self.address {
            log::warn!("lan {:?}: not adding ourselves as a peer", self.address);
            return;
        }
        if self.thread.is_none() {
            return;
        }
        {
            let mut table = self.shared.lock();
            let p = table.entry(peer).or_insert_with(|| {
                peers::Peer::new(
                    PeerSource::Manual,
                    self.limits.max_queued_per_peer,
                    self.limits.backoff_initial,
                )
            });
            p.source = PeerSource::Manual;
            if p.dial != Some(at) {
                p.dial = Some(at);
                p.next_dial = tokio::time::Instant::now();
                p.backoff = self.limits.backoff_initial;
            }
        }
        log::info!("lan {:?}: peer {peer:?} added at {at}", self.address);
        let _ = self.commands.send(Command::Wake);
    }

    /// Forgets `peer` (manual or discovered), closes its connection and drops its queue.
    pub fn remove_peer(&self, peer: Address) {
        let _ = self.commands.send(Command::Remove(peer));
    }

    /// True only while a connection whose hello proved `peer` is up.
    pub fn reachable(&self, peer: Address) -> bool {
        self.shared.lock().get(&peer).is_some_and(|p| p.connected())
    }

    /// Every known peer, by address.
    pub fn peers(&self) -> Vec<LanPeer> {
        let now = tokio::time::Instant::now();
        let mut out: Vec<LanPeer> = self
            .shared
            .lock()
            .iter()
            .filter_map(|(a, p)| p.view(*a, now))
            .collect();
        out.sort_by_key(|p| p.address);
        out
    }

    /// Messages accepted for `peer` and not yet written to a socket.
    pub fn queued(&self, peer: Address) -> usize {
        self.shared.lock().get(&peer).map_or(0, |p| p.outbox.len())
    }
}

impl Transport for LanTransport {
    fn local_address(&self) -> Address {
        self.address
    }

    /// Queues `bytes` for `to` if it is known (connected, dialled, or discovered); else
    /// [`TransportError::Unreachable`]. A message that cannot fit in a frame is dropped with
    /// an error in the log (envelopes are bounded far below the frame cap).
    fn send(&self, to: Address, bytes: Vec<u8>) -> Result<(), TransportError> {
        // Shut down, or the worker ended (its command receiver is gone).
        if self.thread.is_none() || self.commands.is_closed() {
            return Err(TransportError::Closed);
        }
        if bytes.len() + 1 > self.limits.max_frame_bytes {
            log::error!(
                "lan {:?}: message of {} bytes to {to:?} exceeds the frame cap; dropped",
                self.address,
                bytes.len()
            );
            return Ok(());
        }
        let outbox = match self.shared.lock().get(&to) {
            Some(p) => p.outbox.clone(),
            None => return Err(TransportError::Unreachable(to)),
        };
        outbox.push(bytes)
    }

    /// Presence comes from the hello and connection ends; nothing to subscribe to.
    fn watch_presence(&self, _peer: Address) -> Result<(), TransportError> {
        Ok(())
    }

    /// Closes every connection, says goodbye on mDNS and joins the worker thread.
    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LanTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}
