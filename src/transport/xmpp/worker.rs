//! The XMPP client loop: connect, pump messages both ways, reconnect with backoff.
//!
//! It runs on its own thread with a current-thread tokio runtime (tokio-xmpp stalls on the
//! multi-thread runtime) and talks to [`super::XmppTransport`] through channels only.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_xmpp::xmlstream::{FallibleStreamElement, ReadError, Timeouts, XmppStreamElement};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};
use xmpp_parsers::message::{Message, MessageType};
use xmpp_parsers::ns;
use xmpp_parsers::ping::Ping;
use xmpp_parsers::presence::{Presence, Type as PresenceType};
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use super::link::{Link, Outbox, Step};
use super::presence::PresenceTracker;
use super::session::{self, OpenError, Stream};
use super::stanza::{DecodeError, address_of, decode_message, jid_for};
use super::{XmppConfig, XmppError};
use crate::primitives::Address;
use crate::transport::{EventSink, TransportEvent};

/// Most commands taken in one go before the loop looks at the socket again.
const COMMAND_BATCH: usize = 1024;
/// A session that lasted this long counts as healthy: reconnect at once, reset the backoff.
const STABLE_SESSION: Duration = Duration::from_secs(10);
/// How long a clean close may take before the socket is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A request from the transport handle to the worker.
#[derive(Debug)]
pub enum Command {
    /// Queue a protocol message.
    Send(Address, Vec<u8>),
    /// Report this peer's presence.
    Watch(Address),
    /// Address this peer on another (federated) domain.
    PeerDomain(Address, String),
    /// Say goodbye and stop.
    Shutdown,
}

/// Why the connected loop ended.
enum End {
    /// The node asked to stop.
    Shutdown,
    /// The connection broke.
    Lost(String),
}

/// State that survives reconnects.
pub struct Worker {
    config: XmppConfig,
    jid: BareJid,
    commands: mpsc::UnboundedReceiver<Command>,
    events: EventSink,
    outbox: Outbox,
    presence: PresenceTracker,
    domains: HashMap<Address, String>,
    /// Events produced while applying commands, emitted after the batch.
    owed_events: Vec<TransportEvent>,
    /// The TLS client configuration; `None`: plain TCP.
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// The last login refusal, for the node's status.
    login_error: super::LoginErrorSlot,
}

impl Worker {
    /// A worker for `config`, fed by `commands`, reporting to `events`.
    pub fn new(
        config: XmppConfig,
        jid: BareJid,
        commands: mpsc::UnboundedReceiver<Command>,
        events: EventSink,
        queued: Arc<AtomicUsize>,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> Self {
        Worker {
            config,
            jid,
            commands,
            events,
            outbox: Outbox::new(queued),
            presence: PresenceTracker::default(),
            domains: HashMap::new(),
            owed_events: Vec::new(),
            tls,
            login_error: super::LoginErrorSlot::default(),
        }
    }

    /// Reports login refusals to `slot`.
    pub fn with_login_error(mut self, slot: super::LoginErrorSlot) -> Self {
        self.login_error = slot;
        self
    }

    /// Runs until shutdown; `ready` gets the outcome of the first login.
    pub async fn run(mut self, ready: oneshot::Sender<Result<FullJid, XmppError>>) {
        let mut ready = Some(ready);
        let first_deadline = Instant::now() + self.config.login_timeout;
        let mut backoff = self.config.backoff_initial;
        loop {
            let Some(attempt) = self.attempt().await else {
                return;
            };
            let mut no_route = false;
            let reason = match attempt {
                Ok(Ok((stream, bound))) => {
                    log::info!("xmpp: {} online at {}", bound, self.config.server);
                    self.login_error.set(None);
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(bound));
                    }
                    let since = Instant::now();
                    match self.connected(stream).await {
                        End::Shutdown => return,
                        End::Lost(reason) => {
                            if reason.contains("Conflict") {
                                // Same address, same resource: another process uses our key.
                                log::error!(
                                    "xmpp: {} replaced by another login: {reason}",
                                    self.jid
                                );
                            } else {
                                log::warn!("xmpp: {} disconnected: {reason}", self.jid);
                            }
                            self.emit(TransportEvent::Disconnected).await;
                            for ev in self.presence.reset() {
                                self.emit(ev).await;
                            }
                            if since.elapsed() >= STABLE_SESSION {
                                // Try again at once: after a long session the first attempt
                                // often works (server restarted); backoff covers the rest.
                                backoff = self.config.backoff_initial;
                                continue;
                            }
                            // A session that dies young (kicked, server flapping) must not
                            // turn into a tight reconnect loop.
                            reason
                        }
                    }
                }
                Ok(Err(OpenError::Rejected(reason))) => {
                    self.login_error.set(Some(reason.clone()));
                    if let Some(r) = ready.take() {
                        let jid = self.jid.to_string();
                        let _ = r.send(Err(XmppError::LoginFailed { jid, reason }));
                        return;
                    }
                    // Accepted before, rejected now (account reset?): keep trying, loudly.
                    log::error!("xmpp: server rejects login of {}: {reason}", self.jid);
                    reason
                }
                Ok(Err(OpenError::Transient(reason))) => reason,
                Ok(Err(OpenError::NoRoute(reason))) => {
                    // No route (a node in a basement): a node that may start without the
                    // server does so at once instead of waiting out the first login's deadline.
                    no_route = true;
                    reason
                }
                Err(_) => format!("login not finished within {:?}", self.config.login_timeout),
            };
            let give_up_waiting = no_route && self.config.keep_trying;
            if ready.is_some() && (give_up_waiting || Instant::now() >= first_deadline) {
                let _ = ready.take().map(|r| {
                    r.send(Err(XmppError::Unreachable {
                        server: self.config.server,
                        timeout: self.config.login_timeout,
                        reason: reason.clone(),
                    }))
                });
                if !self.config.keep_trying {
                    return;
                }
            }
            log::debug!(
                "xmpp: {} offline ({reason}); next attempt in {backoff:?}",
                self.jid
            );
            let mut until = Instant::now() + backoff;
            if ready.is_some() {
                until = until.min(first_deadline);
            }
            backoff = (backoff * 2).min(self.config.backoff_max);
            if self.idle_until(until).await {
                return;
            }
        }
    }

    /// One login attempt (bounded by the login timeout) while still serving commands;
    /// `None` if asked to shut down meanwhile.
    async fn attempt(
        &mut self,
    ) -> Option<Result<Result<(Stream, FullJid), OpenError>, tokio::time::error::Elapsed>> {
        // A key-bound password is made afresh for every attempt: the verifier accepts each
        // one once, and only for a few minutes.
        let password = match &self.config.login_key {
            Some(key) => super::auth::login_password(
                key,
                self.jid.domain().as_str(),
                super::verifier::unix_ms(),
            ),
            None => self.config.password.clone(),
        };
        let (server, jid, tls) = (self.config.server, self.jid.clone(), self.tls.clone());
        // A stored key-bound password (what a replay would use) takes the same PLAIN path.
        let key_bound = self.config.login_key.is_some() || password.starts_with("sr1.");
        let timeouts = self.timeouts();
        let open = timeout(self.config.login_timeout, async move {
            session::open(server, &jid, &password, timeouts, tls, key_bound).await
        });
        tokio::pin!(open);
        loop {
            tokio::select! {
                res = &mut open => return Some(res),
                cmd = self.commands.recv() => {
                    if self.apply(cmd).is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// The stream's silence timeouts: a soft timeout makes us ping the server.
    fn timeouts(&self) -> Timeouts {
        Timeouts {
            read_timeout: self.config.keepalive,
            response_timeout: (self.config.keepalive / 2).max(Duration::from_secs(5)),
        }
    }

    /// Serves commands while disconnected until `until`; true if asked to shut down.
    async fn idle_until(&mut self, until: Instant) -> bool {
        loop {
            tokio::select! {
                _ = sleep_until(until) => return false,
                cmd = self.commands.recv() => {
                    if self.apply(cmd).is_err() {
                        return true;
                    }
                }
            }
        }
    }

    /// Applies a command to the offline state; `Err` means shut down.
    fn apply(&mut self, cmd: Option<Command>) -> Result<Option<Stanza>, ()> {
        match cmd {
            Some(Command::Send(to, bytes)) => {
                match self.peer_jid(&to) {
                    Some(jid) => self.outbox.push(jid, bytes),
                    // Only a bad peer domain gets here (checked when set); count it out.
                    None => self.outbox.discard_one(),
                }
                Ok(None)
            }
            Some(Command::Watch(peer)) => {
                // A peer already known online is reported at once (emitted by the caller).
                self.owed_events.extend(self.presence.watch(peer));
                Ok(Some(self.subscribe(peer)?))
            }
            Some(Command::PeerDomain(peer, domain)) => {
                let moved = self.domains.insert(peer, domain.clone()) != Some(domain);
                // A watched peer on another server: ask for its presence there.
                if moved && self.presence.watched().any(|p| *p == peer) {
                    return Ok(Some(self.subscribe(peer)?));
                }
                Ok(None)
            }
            Some(Command::Shutdown) | None => Err(()),
        }
    }

    /// A subscription request to `peer`'s presence.
    fn subscribe(&self, peer: Address) -> Result<Stanza, ()> {
        let to = self.peer_jid(&peer).ok_or(())?;
        Ok(Presence::subscribe().with_to(to).into())
    }

    /// The bare JID of `peer`, on its known domain or ours.
    fn peer_jid(&self, peer: &Address) -> Option<BareJid> {
        let domain = self.domains.get(peer).unwrap_or(&self.config.domain);
        jid_for(peer, domain)
            .map_err(|e| log::error!("xmpp: {e}"))
            .ok()
    }

    /// Pumps one live connection until it breaks or we are told to stop.
    async fn connected(&mut self, stream: Stream) -> End {
        self.emit(TransportEvent::Connected).await;
        let mut link = Link::new(stream);
        link.push_control(Presence::available().into());
        for st in self
            .presence
            .watched()
            .filter_map(|p| self.subscribe(*p).ok())
            .collect::<Vec<_>>()
        {
            link.push_control(st);
        }
        loop {
            let step =
                std::future::poll_fn(|cx| link.poll_step(&mut self.outbox, &mut self.commands, cx))
                    .await;
            match step {
                Step::Lost(e) => return End::Lost(e),
                Step::Command(cmd) => {
                    // Take what is waiting in one go (cheap), but never more than a batch
                    // before writing and reading again.
                    let mut next = cmd;
                    let mut taken = 0;
                    loop {
                        match self.apply(next) {
                            Ok(Some(st)) => link.push_control(st),
                            Ok(None) => {}
                            Err(()) => return self.close(link).await,
                        }
                        taken += 1;
                        if taken == COMMAND_BATCH {
                            break;
                        }
                        match self.commands.try_recv() {
                            Ok(c) => next = Some(c),
                            Err(_) => break,
                        }
                    }
                    for ev in std::mem::take(&mut self.owed_events) {
                        self.emit(ev).await;
                    }
                }
                Step::Incoming(item) => match item {
                    None => return End::Lost("server closed the connection".into()),
                    Some(Err(ReadError::SoftTimeout)) => {
                        link.push_control(
                            Iq::from_get("keepalive", Ping)
                                .with_to(self.server_jid())
                                .into(),
                        );
                    }
                    Some(Err(ReadError::ParseError(e))) => {
                        log::warn!("xmpp: unparsable element ignored: {e}");
                    }
                    Some(Err(ReadError::StreamFooterReceived)) => {
                        return End::Lost("server ended the stream".into());
                    }
                    Some(Err(ReadError::HardError(e))) => return End::Lost(e.to_string()),
                    Some(Ok(FallibleStreamElement::Err(e))) => {
                        log::warn!("xmpp: malformed stanza ignored: {e}");
                    }
                    Some(Ok(FallibleStreamElement::Ok(el))) => match el {
                        XmppStreamElement::Stanza(st) => {
                            if let Some(reply) = self.incoming(st).await {
                                link.push_control(reply);
                            }
                        }
                        XmppStreamElement::StreamError(e) => {
                            return End::Lost(format!("stream error from server: {e:?}"));
                        }
                        other => log::debug!("xmpp: ignoring {other:?}"),
                    },
                },
            }
        }
    }

    /// Handles one incoming stanza; returns a reply to send, if any.
    async fn incoming(&mut self, stanza: Stanza) -> Option<Stanza> {
        match stanza {
            Stanza::Message(m) => {
                self.message(m).await;
                None
            }
            Stanza::Presence(p) => self.presence_stanza(p).await,
            Stanza::Iq(iq) => iq_reply(iq, &self.jid),
        }
    }

    /// Delivers a protocol message, or logs why not.
    async fn message(&mut self, m: Message) {
        let from = m.from.clone();
        let sender = from.as_ref().and_then(address_of);
        if m.type_ == MessageType::Error {
            log::debug!("xmpp: delivery error from {from:?}");
            return;
        }
        match decode_message(&m) {
            Ok(bytes) => {
                self.emit(TransportEvent::Received {
                    bytes,
                    claimed_sender: sender,
                })
                .await
            }
            Err(DecodeError::NoBody) => log::debug!("xmpp: bodiless message from {from:?} ignored"),
            Err(e) => log::warn!("xmpp: dropped malformed message from {from:?}: {e:?}"),
        }
    }

    /// Tracks presence and accepts subscription requests; returns a reply, if any.
    async fn presence_stanza(&mut self, p: Presence) -> Option<Stanza> {
        let from = p.from.clone()?;
        let Some(peer) = address_of(&from) else {
            log::debug!("xmpp: presence from non-node {from}");
            return None;
        };
        if from.to_bare() == self.jid {
            return None; // our own presence echoed back
        }
        let resource = from.resource().map(|r| r.as_str().to_owned());
        let event = match p.type_ {
            PresenceType::None => self
                .presence
                .available(peer, resource.as_deref().unwrap_or("")),
            PresenceType::Unavailable => self.presence.unavailable(peer, resource.as_deref()),
            PresenceType::Subscribe => {
                // Anyone may see whether we are online: the address is public anyway.
                return Some(Presence::subscribed().with_to(from.to_bare()).into());
            }
            PresenceType::Error => {
                log::warn!("xmpp: presence error from {from}: {:?}", p.payloads);
                None
            }
            other => {
                log::debug!("xmpp: presence {other:?} from {from}");
                None
            }
        };
        if let Some(ev) = event {
            self.emit(ev).await;
        }
        None
    }

    /// Our server's JID (for keepalive pings).
    fn server_jid(&self) -> Jid {
        Jid::from(self.jid.domain().to_owned())
    }

    /// Ends the session cleanly: remaining queue, unavailable presence, stream footer.
    async fn close(&mut self, link: Link) -> End {
        let goodbye = link.close(&mut self.outbox, Presence::unavailable().into());
        if let Err(e) = timeout(CLOSE_TIMEOUT, goodbye)
            .await
            .unwrap_or(Err("timed out".into()))
        {
            log::debug!("xmpp: unclean close of {}: {e}", self.jid);
        }
        End::Shutdown
    }

    /// Reports an event; a node that dropped its receiver simply hears nothing.
    async fn emit(&mut self, event: TransportEvent) {
        let _ = self.events.deliver(event).await;
    }
}

/// The answer to an IQ: pings and roster pushes get a result, other requests an error,
/// results and errors (answers to our keepalives) nothing.
fn iq_reply(iq: Iq, own: &BareJid) -> Option<Stanza> {
    let (from, id, payload, is_set) = match iq {
        Iq::Get {
            from, id, payload, ..
        } => (from, id, payload, false),
        Iq::Set {
            from, id, payload, ..
        } => (from, id, payload, true),
        Iq::Result { .. } | Iq::Error { .. } => return None,
    };
    let from_server = from.as_ref().is_none_or(|f| f.to_bare() == *own);
    let ok =
        payload.is("ping", ns::PING) || (is_set && from_server && payload.is("query", ns::ROSTER));
    let reply = if ok {
        Iq::Result {
            from: None,
            to: from,
            id,
            payload: None,
        }
    } else {
        let error = StanzaError::new(
            ErrorType::Cancel,
            DefinedCondition::ServiceUnavailable,
            "en",
            "not supported by a SmartRaiden node",
        );
        Iq::Error {
            from: None,
            to: from,
            id,
            error,
            payload: None,
        }
    };
    Some(reply.into())
}
