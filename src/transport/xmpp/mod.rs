//! The XMPP transport: nodes log in to an XMPP server as `<lowercase hex address>@<domain>`
//! and exchange one `<message type="chat">` per protocol message (SPEC §4).
//!
//! The client runs on its own thread (a current-thread tokio runtime per client);
//! [`XmppTransport`] is a cheap handle that enqueues without blocking. Messages queued while disconnected wait (up to
//! [`XmppConfig::max_queued`]) and are sent after the reconnect.

pub mod auth;
mod link;
mod presence;
pub mod server;
mod session;
mod stanza;
pub mod tls;
pub mod verifier;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use xmpp_parsers::jid::FullJid;

use self::worker::{Command, Worker};
use super::{EventSink, Transport, TransportError, TransportEvent};
use crate::primitives::Address;

pub use self::server::{ProsodyOptions, ProsodyServer, ServerCert, ServerError};
pub use self::stanza::jid_for;

/// How many events may wait for the node before the transport stops reading the socket.
const EVENT_CAPACITY: usize = 8192;

/// Why the XMPP transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum XmppError {
    /// An address and domain do not form a valid JID.
    #[error("invalid XMPP identity: {0}")]
    InvalidJid(String),
    /// The server rejected the credentials.
    #[error("XMPP login as {jid} rejected by the server: {reason}")]
    LoginFailed {
        /// Who tried to log in.
        jid: String,
        /// The server's reason (SASL condition).
        reason: String,
    },
    /// No login completed before the deadline (server down, unreachable or too slow).
    #[error("XMPP server {server} not reachable within {timeout:?}: {reason}")]
    Unreachable {
        /// The server address tried.
        server: SocketAddr,
        /// How long we tried.
        timeout: Duration,
        /// The last failure.
        reason: String,
    },
    /// The TLS configuration could not be made (CA file, system roots).
    #[error("XMPP TLS: {0}")]
    Tls(#[from] tls::TlsSetupError),
    /// The worker thread could not be started or died.
    #[error("XMPP worker: {0}")]
    Worker(String),
}

/// Everything the XMPP transport needs to log in and behave.
#[derive(Debug, Clone)]
pub struct XmppConfig {
    /// Our address: the JID's local part.
    pub address: Address,
    /// Our XMPP domain (and the default domain of peers).
    pub domain: String,
    /// Where the server's client port is.
    pub server: SocketAddr,
    /// A stored account password; ignored when [`XmppConfig::login_key`] is set.
    pub password: String,
    /// Log in with a fresh key-bound password made by this key for every attempt
    /// ([`auth::login_password`], SPEC §4) instead of [`XmppConfig::password`].
    pub login_key: Option<crate::crypto::PrivateKey>,
    /// STARTTLS with certificate verification, or plain TCP when asked for explicitly.
    pub tls: tls::XmppTls,
    /// Deadline for the first login; also the limit on each later login attempt.
    pub login_timeout: Duration,
    /// First wait after a failed reconnect attempt.
    pub backoff_initial: Duration,
    /// Longest wait between reconnect attempts.
    pub backoff_max: Duration,
    /// Silence after which we ping the server (a dead link is noticed ~1.5× later).
    pub keepalive: Duration,
    /// Most messages kept while they cannot be sent; `send` fails beyond it.
    pub max_queued: usize,
    /// When the server cannot be reached by the first login's deadline, start anyway and
    /// keep trying in the background (a node that must work offline) instead of failing.
    /// A rejected login still fails.
    pub keep_trying: bool,
}

impl XmppConfig {
    /// A configuration with default timings: login 10 s, backoff 100 ms doubling to 5 s,
    /// keepalive 30 s, queue of 100,000 messages; a stored password and plain TCP (loopback
    /// tests; the node's command line asks for TLS and key-bound logins).
    pub fn new(address: Address, domain: &str, server: SocketAddr, password: &str) -> Self {
        XmppConfig {
            address,
            domain: domain.to_owned(),
            server,
            password: password.to_owned(),
            login_key: None,
            tls: tls::XmppTls::Plaintext,
            login_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            keepalive: Duration::from_secs(30),
            max_queued: 100_000,
            keep_trying: false,
        }
    }
}

/// The last login refusal of a running transport (cleared by a successful login), for the
/// node's status: a rejected login is reported, not retried silently.
#[derive(Debug, Clone, Default)]
pub struct LoginErrorSlot(Arc<std::sync::Mutex<Option<String>>>);

impl LoginErrorSlot {
    /// The refusal, if the last login attempt was refused.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the outcome of a login attempt.
    fn set(&self, error: Option<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
}

/// A node's XMPP connection; cheap to call from any thread or runtime.
#[derive(Debug)]
pub struct XmppTransport {
    address: Address,
    bound: Option<FullJid>,
    commands: mpsc::UnboundedSender<Command>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    thread: Option<JoinHandle<()>>,
    login_error: LoginErrorSlot,
}

impl XmppTransport {
    /// Logs in and starts the client thread; fails with [`XmppError::LoginFailed`] or
    /// [`XmppError::Unreachable`] within `config.login_timeout` instead of retrying forever.
    /// Events arrive on the returned channel.
    pub async fn connect(
        config: XmppConfig,
    ) -> Result<(Self, mpsc::Receiver<TransportEvent>), XmppError> {
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_CAPACITY);
        let transport = Self::connect_with(config, EventSink::Channel(ev_tx)).await?;
        Ok((transport, ev_rx))
    }

    /// As [`XmppTransport::connect`], reporting events to `events`.
    pub async fn connect_with(config: XmppConfig, events: EventSink) -> Result<Self, XmppError> {
        let jid = jid_for(&config.address, &config.domain).map_err(XmppError::InvalidJid)?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let (address, capacity, keep_trying) =
            (config.address, config.max_queued, config.keep_trying);
        let tls = tls::client_config(&config.tls)?;
        if tls.is_none() {
            log::warn!(
                "xmpp: plain TCP to {} as asked: the link is not encrypted (use TLS outside loopback)",
                config.server
            );
        }
        let login_error = LoginErrorSlot::default();
        let worker = Worker::new(config, jid, cmd_rx, events, queued.clone(), tls)
            .with_login_error(login_error.clone());
        let thread = std::thread::Builder::new()
            .name(format!("xmpp-{}", address.short()))
            .spawn(move || {
                // tokio-xmpp stalls on the multi-thread runtime (FIELD-NOTES): one
                // current-thread runtime per client.
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(worker.run(ready_tx)),
                    Err(e) => log::error!("xmpp: cannot build runtime: {e}"),
                }
            })
            .map_err(|e| XmppError::Worker(e.to_string()))?;
        let bound = match ready_rx.await {
            Ok(Ok(bound)) => Some(bound),
            Ok(Err(e @ XmppError::Unreachable { .. })) if keep_trying => {
                log::warn!("{e}; carrying on, and logging in once it answers");
                None
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(XmppError::Worker("worker ended before login".into())),
        };
        Ok(XmppTransport {
            address,
            bound,
            commands: cmd_tx,
            queued,
            capacity,
            thread: Some(thread),
            login_error,
        })
    }

    /// The full JID the server bound for us at the first login (`None` if the transport
    /// started without one, see [`XmppConfig::keep_trying`]).
    pub fn bound_jid(&self) -> Option<&FullJid> {
        self.bound.as_ref()
    }

    /// Where the transport reports a refused login while it keeps trying.
    pub fn login_error(&self) -> LoginErrorSlot {
        self.login_error.clone()
    }

    /// Messages accepted by `send` and not yet written to the server.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Addresses `peer` on another (federated) XMPP domain from now on.
    pub fn set_peer_domain(&self, peer: Address, domain: &str) -> Result<(), XmppError> {
        jid_for(&peer, domain).map_err(XmppError::InvalidJid)?;
        self.command(Command::PeerDomain(peer, domain.to_owned()))
            .map_err(|e| XmppError::Worker(e.to_string()))
    }

    /// Hands a command to the worker.
    fn command(&self, cmd: Command) -> Result<(), TransportError> {
        self.commands.send(cmd).map_err(|_| TransportError::Closed)
    }
}

impl Transport for XmppTransport {
    fn local_address(&self) -> Address {
        self.address
    }

    fn send(&self, to: Address, bytes: Vec<u8>) -> Result<(), TransportError> {
        // Count first so the bound holds however many threads send at once.
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(TransportError::QueueFull {
                capacity: self.capacity,
            });
        }
        self.command(Command::Send(to, bytes)).inspect_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        })
    }

    fn watch_presence(&self, peer: Address) -> Result<(), TransportError> {
        self.command(Command::Watch(peer))
    }

    /// Sends what is queued (if connected), goes offline and joins the worker thread
    /// (at most about two seconds).
    fn shutdown(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for XmppTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}
