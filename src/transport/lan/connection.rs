//! A proven connection: one task reads frames (rate-limited, keepalive), one writes the peer's
//! queued messages (paced below the peer's rate limit). Either ending is reported to the
//! worker through [`TaskMsg::Ended`].
//!
//! A connection that is no longer wanted (a duplicate, or its reader saw the peer close) is
//! *retired*, not cut: its writer finishes the write in progress and closes our side (FIN),
//! its reader keeps delivering what the peer had already sent until the peer closes too. So
//! resolving duplicate connections loses no message.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, sleep, timeout};

use super::LanLimits;
use super::frame::{FrameReader, FrameType, encode_into};
use super::peers::{ConnId, Outbox};
use super::worker::TaskMsg;
use crate::primitives::Address;

/// Most messages written in one go.
const WRITE_BATCH: usize = 256;

/// One unit of a bounded counter (open sockets, pending handshakes), given back on drop.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a unit if fewer than `max` are taken.
    pub fn try_take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(counter.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection whose hello proved `peer`, ready to carry messages.
#[derive(Debug)]
pub struct Link {
    /// Unique id of this connection.
    pub id: ConnId,
    /// The proven address.
    pub peer: Address,
    /// The peer's address and announced listen port.
    pub seen_at: SocketAddr,
    /// The frames per second the peer accepts (we pace below it).
    pub peer_frame_limit: u32,
    /// Who dialled: us or the peer (decides between duplicate connections).
    pub dialled_by: Address,
    /// Frames from the peer (may hold bytes read past the hello).
    pub reader: FrameReader<OwnedReadHalf>,
    /// Our half for writing.
    pub writer: OwnedWriteHalf,
    /// The open-socket slot, released when both tasks have ended.
    pub slot: Slot,
}

/// Requests from the reader to the writer.
#[derive(Debug, Clone, Copy)]
enum Control {
    Ping,
    Pong,
}

/// Which task of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The reader: the peer closed, broke the protocol, flooded, or went silent.
    Reader,
    /// The writer: a write failed or stalled.
    Writer,
}

/// The running tasks of a connection, so the worker can retire or close it.
#[derive(Debug)]
pub struct Running {
    /// The proven peer.
    pub peer: Address,
    /// Set once retired: the connection is cut if still open at this time.
    pub retired_until: Option<Instant>,
    reader: AbortHandle,
    writer: AbortHandle,
    finish: Option<oneshot::Sender<()>>,
}

impl Running {
    /// Ends both tasks at once (the socket closes once both have dropped their half).
    pub fn close(&self) {
        self.reader.abort();
        self.writer.abort();
    }

    /// Stops taking queued messages: the writer finishes its current write and closes our
    /// side; the reader goes on until the peer closes (or `until`, when the worker cuts it).
    pub fn retire(&mut self, until: Instant) {
        if let Some(finish) = self.finish.take() {
            let _ = finish.send(());
        }
        self.retired_until.get_or_insert(until);
    }
}

/// Starts the reader and writer of `link` in `set`.
pub fn spawn(
    link: Link,
    me: Address,
    outbox: Arc<Outbox>,
    limits: &LanLimits,
    tasks: mpsc::Sender<TaskMsg>,
    set: &mut JoinSet<()>,
) -> Running {
    let (ctl_tx, ctl_rx) = mpsc::channel(4);
    let (finish_tx, finish_rx) = oneshot::channel();
    let slot = Arc::new(link.slot);
    let reader = Reader {
        id: link.id,
        me,
        peer: link.peer,
        frames: link.reader,
        keepalive: limits.keepalive,
        rate: RateLimit::new(limits.max_frames_per_sec),
        ctl: ctl_tx,
        tasks: tasks.clone(),
        _slot: slot.clone(),
    };
    let writer = Writer {
        id: link.id,
        me,
        peer: link.peer,
        socket: link.writer,
        outbox,
        ctl: ctl_rx,
        finish: finish_rx,
        pacer: Pacer::new(link.peer_frame_limit),
        write_timeout: limits.keepalive.max(Duration::from_secs(1)) * 2,
        tasks,
        _slot: slot,
    };
    Running {
        peer: link.peer,
        retired_until: None,
        reader: set.spawn(reader.run()),
        writer: set.spawn(writer.run()),
        finish: Some(finish_tx),
    }
}

/// Receiver-side frame budget: a token bucket holding one second of `max_frames_per_sec`.
/// Time spent waiting for the node to take a message is credited back, so a backlog that
/// built up while the node was busy is not mistaken for a flood.
#[derive(Debug)]
struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn new(per_sec: u32) -> Self {
        RateLimit {
            rate: f64::from(per_sec),
            tokens: f64::from(per_sec),
            last: Instant::now(),
        }
    }

    /// Spends one frame; false if the budget is exhausted.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        if self.tokens < self.rate {
            let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.rate);
        }
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Credits a stall of `d` during which we did not read.
    fn credit(&mut self, d: Duration) {
        self.tokens += d.as_secs_f64() * self.rate;
        self.last = Instant::now();
    }
}

/// Sender-side pacing at half the frame limit the peer announced in its hello (a quarter
/// second of burst), which keeps a legitimate sender well inside the limit the peer enforces.
#[derive(Debug)]
struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn new(peer_limit_per_sec: u32) -> Self {
        let rate = (f64::from(peer_limit_per_sec) / 2.0).max(1.0);
        let burst = (rate / 2.0).max(1.0);
        Pacer {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Whole frames that may go now.
    fn available(&mut self) -> usize {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens < 1.0 {
            0
        } else {
            self.tokens as usize
        }
    }

    fn spend(&mut self, n: usize) {
        self.tokens -= n as f64;
    }

    /// How long until one more frame may go.
    fn wait(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(0.0005))
    }
}

struct Reader {
    id: ConnId,
    me: Address,
    peer: Address,
    frames: FrameReader<OwnedReadHalf>,
    keepalive: Duration,
    rate: RateLimit,
    ctl: mpsc::Sender<Control>,
    tasks: mpsc::Sender<TaskMsg>,
    _slot: Arc<Slot>,
}

impl Reader {
    async fn run(mut self) {
        let reason = self.read_loop().await;
        let _ = self
            .tasks
            .send(TaskMsg::Ended {
                id: self.id,
                peer: self.peer,
                side: Side::Reader,
                reason,
            })
            .await;
    }

    /// Reads until the connection must end; returns why.
    async fn read_loop(&mut self) -> String {
        let mut probing = false;
        loop {
            let frame = match timeout(self.keepalive, self.frames.next_frame()).await {
                Err(_) if probing => return "no answer to keepalive".into(),
                Err(_) => {
                    // Silence: ask for a sign of life (the writer sends a ping).
                    probing = true;
                    let _ = self.ctl.try_send(Control::Ping);
                    continue;
                }
                Ok(Err(e)) => return e.to_string(),
                Ok(Ok(frame)) => frame,
            };
            probing = false;
            if !self.rate.take() {
                log::warn!(
                    "lan {:?}: dropping {:?}: more than {} frames/s",
                    self.me,
                    self.peer,
                    self.rate.rate
                );
                return "frame flood".into();
            }
            match frame.kind {
                FrameType::Message => {
                    let started = Instant::now();
                    let msg = TaskMsg::Received {
                        id: self.id,
                        peer: self.peer,
                        bytes: frame.payload,
                    };
                    if self.tasks.send(msg).await.is_err() {
                        return "transport stopping".into();
                    }
                    self.rate.credit(started.elapsed());
                }
                FrameType::Ping => {
                    let _ = self.ctl.try_send(Control::Pong);
                }
                FrameType::Pong => {}
                FrameType::Challenge | FrameType::Proof => {
                    return format!("protocol violation: {:?} after the hello", frame.kind);
                }
            }
        }
    }
}

struct Writer {
    id: ConnId,
    me: Address,
    peer: Address,
    socket: OwnedWriteHalf,
    outbox: Arc<Outbox>,
    ctl: mpsc::Receiver<Control>,
    finish: oneshot::Receiver<()>,
    pacer: Pacer,
    write_timeout: Duration,
    tasks: mpsc::Sender<TaskMsg>,
    _slot: Arc<Slot>,
}

impl Writer {
    async fn run(mut self) {
        let Some(reason) = self.write_loop().await else {
            // Retired: close our side; the reader drains what the peer still sends.
            let _ = timeout(self.write_timeout, self.socket.shutdown()).await;
            return;
        };
        log::debug!(
            "lan {:?}: writer to {:?} ends: {reason}",
            self.me,
            self.peer
        );
        let _ = self
            .tasks
            .send(TaskMsg::Ended {
                id: self.id,
                peer: self.peer,
                side: Side::Writer,
                reason,
            })
            .await;
    }

    /// Writes until retired (`None`) or failed (why).
    async fn write_loop(&mut self) -> Option<String> {
        let mut controls: Vec<Control> = Vec::new();
        let mut buf = Vec::new();
        let mut finishing = false;
        loop {
            if finishing {
                return None;
            }
            while let Ok(c) = self.ctl.try_recv() {
                controls.push(c);
            }
            buf.clear();
            for c in controls.drain(..) {
                let kind = match c {
                    Control::Ping => FrameType::Ping,
                    Control::Pong => FrameType::Pong,
                };
                encode_into(kind, &[], &mut buf);
                self.pacer.spend(1);
            }
            let allowed = self.pacer.available().min(WRITE_BATCH);
            if allowed > 0 {
                let batch = self.outbox.pop(allowed);
                self.pacer.spend(batch.len());
                for m in &batch {
                    encode_into(FrameType::Message, m, &mut buf);
                }
            }
            if !buf.is_empty() {
                match timeout(self.write_timeout, self.socket.write_all(&buf)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Some(format!("write failed: {e}")),
                    Err(_) => return Some("write stalled (peer not reading)".into()),
                }
            }
            let paced = !self.outbox.is_empty();
            tokio::select! {
                // Sent, or the worker dropped the connection's handle: either way, finish.
                _ = &mut self.finish => finishing = true,
                c = self.ctl.recv() => match c {
                    Some(c) => controls.push(c),
                    None => finishing = true,
                },
                _ = self.outbox.ready(), if !paced => {}
                _ = sleep(self.pacer.wait()), if paced => {}
            }
        }
    }
}
