//! The LAN worker: owns the event sink and the connections, applies everything that changes
//! the peer table (proven connections, ends, dial results, mDNS sightings, expiry) and starts
//! dials with backoff. It runs on the transport's own thread.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use super::connection::{self, Link, Running, Side};
use super::discovery::Discovery;
use super::peers::{ConnId, Peer, PeerSource, keep_new_connection};
use super::setup::{self, Context};
use super::{LanConfig, LanError, Shared};
use crate::primitives::Address;
use crate::transport::{EventSink, TransportEvent};

/// How many task reports may wait for the worker (then readers stop reading).
const TASK_CAPACITY: usize = 1024;
/// Most task reports handled between two looks at the table.
const TASK_BATCH: usize = 256;
/// A connection that lasted this long counts as healthy: redial at once, reset the backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);
/// Longest sleep of the worker loop (expiry is checked at least this often).
const TICK: Duration = Duration::from_secs(1);

/// A request from the transport handle.
#[derive(Debug)]
pub enum Command {
    /// The peer table changed (a manual peer was added): look at it now.
    Wake,
    /// Forget a peer and close its connection.
    Remove(Address),
    /// Close everything and stop.
    Shutdown,
}

/// A report from a task of the worker.
#[derive(Debug)]
pub enum TaskMsg {
    /// A connection completed its hello.
    Proven(Link),
    /// A dial or its hello failed.
    DialFailed {
        /// Whom we dialled.
        peer: Address,
        /// Why it failed.
        reason: String,
    },
    /// A message arrived on a proven connection.
    Received {
        /// The connection.
        id: ConnId,
        /// Its proven peer.
        peer: Address,
        /// The frame payload.
        bytes: Vec<u8>,
    },
    /// A task of a proven connection ended.
    Ended {
        /// The connection.
        id: ConnId,
        /// Its proven peer.
        peer: Address,
        /// Which task.
        side: Side,
        /// Why.
        reason: String,
    },
    /// mDNS resolved a node on our chain.
    Sighting {
        /// The address it announces (unproven).
        peer: Address,
        /// Where to dial it.
        at: SocketAddr,
    },
}

/// Everything the worker thread is started with.
pub struct Setup {
    /// The configuration.
    pub config: LanConfig,
    /// The bound listening socket (non-blocking).
    pub listener: std::net::TcpListener,
    /// The port it is bound to.
    pub listen_port: u16,
    /// The table shared with the handle.
    pub shared: Arc<Shared>,
    /// Commands from the handle.
    pub commands: mpsc::UnboundedReceiver<Command>,
    /// Turns true when the handle shuts down (also while events cannot be delivered).
    pub stop: watch::Receiver<bool>,
    /// Where events go.
    pub events: EventSink,
}

/// Runs the transport until [`Command::Shutdown`]; reports start-up success on `ready`.
pub async fn run(setup: Setup, ready: oneshot::Sender<Result<(), LanError>>) {
    let Setup {
        config,
        listener,
        listen_port,
        shared,
        commands,
        stop,
        events,
    } = setup;
    let me = config.key.address();
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(LanError::Worker(format!("listener: {e}"))));
            return;
        }
    };
    let discovery = if config.mdns {
        match Discovery::start(
            me,
            config.chain_id,
            listen_port,
            config.mdns_interface.as_deref(),
        ) {
            Ok(d) => Some(d),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    } else {
        None
    };
    let (tasks_tx, tasks_rx) = mpsc::channel(TASK_CAPACITY);
    let ctx = Arc::new(Context::new(
        config.key.clone(),
        config.chain_id,
        listen_port,
        config.limits.clone(),
        tasks_tx.clone(),
    ));
    let mut set = JoinSet::new();
    set.spawn(setup::listen(ctx.clone(), listener));
    if let Some(d) = &discovery {
        let refresh = (config.limits.peer_expiry / 3).max(Duration::from_secs(1));
        set.spawn(d.browser(config.chain_id, refresh, tasks_tx));
    }
    log::info!("lan {me:?}: listening on port {listen_port}");
    let _ = ready.send(Ok(()));
    let mut hub = Hub {
        ctx,
        shared,
        events,
        commands,
        stop,
        tasks: tasks_rx,
        conns: HashMap::new(),
        set,
        owed: Vec::new(),
        sink_gone: false,
    };
    hub.run().await;
    hub.set.shutdown().await;
    if let Some(d) = discovery {
        d.shutdown().await;
    }
    log::info!("lan {me:?}: stopped");
}

struct Hub {
    ctx: Arc<Context>,
    shared: Arc<Shared>,
    events: EventSink,
    commands: mpsc::UnboundedReceiver<Command>,
    stop: watch::Receiver<bool>,
    tasks: mpsc::Receiver<TaskMsg>,
    conns: HashMap<ConnId, Running>,
    set: JoinSet<()>,
    owed: Vec<TransportEvent>,
    sink_gone: bool,
}

impl Hub {
    async fn run(&mut self) {
        loop {
            self.maintain();
            if !self.flush().await {
                return;
            }
            let wake = self.next_wake();
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => return,
                    Some(Command::Wake) => {}
                    Some(Command::Remove(peer)) => self.remove(peer),
                },
                Some(msg) = self.tasks.recv() => {
                    self.on_task(msg);
                    // Take what else is ready before the next look at the table.
                    for _ in 0..TASK_BATCH {
                        match self.tasks.try_recv() {
                            Ok(msg) => self.on_task(msg),
                            Err(_) => break,
                        }
                    }
                }
                Some(done) = self.set.join_next() => {
                    if let Err(e) = done
                        && e.is_panic()
                    {
                        log::error!("lan {:?}: a connection task panicked: {e}", self.ctx.me);
                    }
                }
                _ = sleep_until(wake) => {}
            }
        }
    }

    fn me(&self) -> Address {
        self.ctx.me
    }

    /// Hands owed events to the node, in order; false if asked to stop meanwhile (a full
    /// event channel must not keep `shutdown` waiting).
    async fn flush(&mut self) -> bool {
        for ev in std::mem::take(&mut self.owed) {
            if self.sink_gone {
                break;
            }
            let delivered = tokio::select! {
                ok = self.events.deliver(ev) => ok,
                _ = self.stop.wait_for(|stop| *stop) => return false,
            };
            if !delivered {
                log::warn!("lan {:?}: nobody takes events any more", self.ctx.me);
                self.sink_gone = true;
            }
        }
        true
    }

    fn on_task(&mut self, msg: TaskMsg) {
        match msg {
            TaskMsg::Proven(link) => self.proven(link),
            TaskMsg::DialFailed { peer, reason } => {
                let mut table = self.shared.lock();
                if let Some(p) = table.get_mut(&peer) {
                    p.dialing = false;
                    p.next_dial = Instant::now() + p.backoff;
                    log::debug!(
                        "lan {:?}: {peer:?} not reached ({reason}), next try in {:?}",
                        self.ctx.me,
                        p.backoff
                    );
                    p.backoff = (p.backoff * 2).min(self.ctx.limits.backoff_max);
                }
            }
            TaskMsg::Received { id, peer, bytes } => {
                if !self.conns.contains_key(&id) {
                    return; // closed meanwhile (duplicate or removed peer)
                }
                if let Some(p) = self.shared.lock().get_mut(&peer) {
                    p.last_seen = Some(Instant::now());
                }
                self.owed.push(TransportEvent::Received {
                    bytes,
                    claimed_sender: Some(peer),
                });
            }
            TaskMsg::Ended {
                id,
                peer,
                side,
                reason,
            } => self.ended(id, peer, side, &reason),
            TaskMsg::Sighting { peer, at } => self.sighting(peer, at),
        }
    }

    /// A hello completed: make it the peer's connection unless a preferred one is up. The
    /// loser is retired, not cut, so whatever the peer already sent on it is still delivered.
    fn proven(&mut self, link: Link) {
        let me = self.me();
        let now = Instant::now();
        let outbound = link.dialled_by == me;
        let retire_by = now + self.ctx.limits.handshake_timeout;
        let mut table = self.shared.lock();
        if outbound {
            match table.get_mut(&link.peer) {
                Some(p) => p.dialing = false,
                None => return, // removed while we dialled
            }
        }
        let limits = &self.ctx.limits;
        if !outbound && !table.contains_key(&link.peer) {
            let strangers = table
                .values()
                .filter(|p| p.source == PeerSource::Inbound && p.live.is_some())
                .count();
            if strangers >= limits.max_stranger_connections {
                log::debug!(
                    "lan {me:?}: {:?} refused: {strangers} strangers connected already",
                    link.peer
                );
                return; // dropping the link closes it and frees its slot
            }
        }
        let p = table.entry(link.peer).or_insert_with(|| {
            Peer::new(
                PeerSource::Inbound,
                limits.max_queued_per_peer,
                limits.backoff_initial,
            )
        });
        if outbound {
            p.backoff = limits.backoff_initial;
        }
        let (id, peer, dialled_by, seen_at) = (link.id, link.peer, link.dialled_by, link.seen_at);
        let keep = match p.live {
            None => true,
            Some((_, old_dialler)) => keep_new_connection(old_dialler, dialled_by),
        };
        let outbox = p.outbox.clone();
        let mut running = connection::spawn(
            link,
            me,
            outbox,
            &self.ctx.limits,
            self.ctx.tasks.clone(),
            &mut self.set,
        );
        if !keep {
            log::debug!(
                "lan {me:?}: duplicate connection with {peer:?} retired (keeping the one {:?} dialled)",
                p.live.map(|(_, d)| d)
            );
            running.retire(retire_by);
            self.conns.insert(id, running);
            return;
        }
        if let Some((old, _)) = p.live
            && let Some(r) = self.conns.get_mut(&old)
        {
            log::debug!(
                "lan {me:?}: connection with {peer:?} replaced by one {dialled_by:?} dialled"
            );
            r.retire(retire_by);
        }
        p.live = Some((id, dialled_by));
        p.live_since = Some(now);
        p.seen_at = Some(seen_at);
        p.last_seen = Some(now);
        p.offline_due = None;
        if !p.online_reported {
            p.online_reported = true;
            log::info!("lan {me:?}: {peer:?} online at {seen_at}");
            self.owed.push(TransportEvent::PeerOnline(peer));
        }
        self.conns.insert(id, running);
    }

    /// A task of a connection ended by itself: after the reader, the writer finishes its write
    /// and closes; after the writer (the socket failed), the reader is cut.
    fn ended(&mut self, id: ConnId, peer: Address, side: Side, reason: &str) {
        let now = Instant::now();
        let Some(mut running) = self.conns.remove(&id) else {
            return;
        };
        match side {
            Side::Reader => running.retire(now),
            Side::Writer => running.close(),
        }
        let limits = &self.ctx.limits;
        let mut table = self.shared.lock();
        let Some(p) = table.get_mut(&peer) else {
            return;
        };
        if p.live.map(|(live, _)| live) != Some(id) {
            return;
        }
        log::info!(
            "lan {:?}: connection with {peer:?} lost: {reason}",
            self.ctx.me
        );
        p.live = None;
        p.last_seen = Some(now);
        let stable = p
            .live_since
            .is_some_and(|t| now.duration_since(t) >= STABLE_CONNECTION);
        if stable {
            p.backoff = limits.backoff_initial;
            p.next_dial = now;
        } else {
            p.next_dial = now + p.backoff;
            p.backoff = (p.backoff * 2).min(limits.backoff_max);
        }
        // Reported in `maintain`, unless a connection proving this peer comes first.
        p.offline_due = Some(now + limits.handshake_timeout);
    }

    /// mDNS saw `peer` at `at`.
    fn sighting(&mut self, peer: Address, at: SocketAddr) {
        let now = Instant::now();
        let limits = &self.ctx.limits;
        let mut table = self.shared.lock();
        let p = table.entry(peer).or_insert_with(|| {
            log::info!("lan {:?}: discovered {peer:?} at {at} (mDNS)", self.ctx.me);
            Peer::new(
                PeerSource::Mdns,
                limits.max_queued_per_peer,
                limits.backoff_initial,
            )
        });
        if p.source == PeerSource::Inbound {
            p.source = PeerSource::Mdns;
        }
        if p.source == PeerSource::Mdns && p.dial != Some(at) {
            p.dial = Some(at);
            p.next_dial = now;
            p.backoff = limits.backoff_initial;
        }
        p.mdns_seen = Some(now);
        p.last_seen = Some(now);
    }

    /// The node forgot `peer`.
    fn remove(&mut self, peer: Address) {
        let entry = self.shared.lock().remove(&peer);
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, r)| r.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(r) = self.conns.remove(&id) {
                r.close();
            }
        }
        if entry.is_some_and(|p| p.online_reported) {
            self.owed.push(TransportEvent::PeerOffline(peer));
        }
    }

    /// Starts due dials, reports offline peers, forgets expired ones.
    fn maintain(&mut self) {
        let now = Instant::now();
        let me = self.me();
        let expiry = self.ctx.limits.peer_expiry;
        let pending = self.ctx.pending.load(Ordering::Acquire);
        self.conns.retain(|_, r| match r.retired_until {
            Some(t) if t <= now => {
                r.close();
                false
            }
            _ => true,
        });
        let mut table = self.shared.lock();
        for (addr, p) in table.iter_mut() {
            if p.wants_dial() && p.next_dial <= now {
                let (Some(at), Some(slot)) = (p.dial, self.ctx.open_slot()) else {
                    continue;
                };
                p.dialing = true;
                tokio::spawn(setup::dial(self.ctx.clone(), *addr, at, slot));
            }
        }
        for (addr, p) in table.iter_mut() {
            let Some(due) = p.offline_due else { continue };
            if p.connected() {
                p.offline_due = None;
            } else if now >= due || (!p.dialing && pending == 0) {
                p.offline_due = None;
                if p.online_reported {
                    p.online_reported = false;
                    log::info!("lan {me:?}: {addr:?} offline");
                    self.owed.push(TransportEvent::PeerOffline(*addr));
                }
            }
        }
        let owed = &mut self.owed;
        table.retain(|addr, p| {
            let busy = p.connected() || p.dialing || p.offline_due.is_some();
            let keep = busy
                || match p.source {
                    PeerSource::Manual => true,
                    PeerSource::Mdns => p.mdns_seen.is_some_and(|t| now.duration_since(t) < expiry),
                    PeerSource::Inbound => false,
                };
            if !keep {
                log::debug!("lan {me:?}: forgetting {addr:?}");
                if p.online_reported {
                    owed.push(TransportEvent::PeerOffline(*addr));
                }
            }
            keep
        });
    }

    /// When the loop must look at the table again at the latest.
    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let table = self.shared.lock();
        let mut wake = now + TICK;
        for r in self.conns.values() {
            if let Some(t) = r.retired_until {
                wake = wake.min(t.max(now));
            }
        }
        for p in table.values() {
            if p.wants_dial() && p.next_dial > now {
                wake = wake.min(p.next_dial);
            }
            if let Some(due) = p.offline_due {
                wake = wake.min(due.max(now));
            }
        }
        wake
    }
}
