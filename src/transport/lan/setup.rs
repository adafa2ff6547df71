//! Opening connections up to a proven [`Link`]: the listener (inbound, bounded by the
//! connection and pending-handshake limits) and outgoing dials. Nothing here touches the peer
//! table; results go to the worker as [`TaskMsg`]s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::LanLimits;
use super::connection::{Link, Slot};
use super::frame::FrameReader;
use super::hello::{HelloError, MAX_HELLO_FRAME, Role, handshake};
use super::worker::TaskMsg;
use crate::crypto::PrivateKey;
use crate::primitives::Address;

/// What every connection-opening task needs.
#[derive(Debug)]
pub struct Context {
    /// Our key (signs our hello proofs).
    pub key: PrivateKey,
    /// Our address.
    pub me: Address,
    /// The chain both sides must be on.
    pub chain_id: u64,
    /// The port we listen on (announced in our proofs).
    pub listen_port: u16,
    /// The limits in force.
    pub limits: LanLimits,
    /// Where tasks report.
    pub tasks: mpsc::Sender<TaskMsg>,
    /// Open sockets (pending and proven, both directions).
    pub open: Arc<AtomicUsize>,
    /// Inbound connections still in their hello.
    pub pending: Arc<AtomicUsize>,
    next_id: AtomicU64,
}

impl Context {
    /// A context with no connections yet.
    pub fn new(
        key: PrivateKey,
        chain_id: u64,
        listen_port: u16,
        limits: LanLimits,
        tasks: mpsc::Sender<TaskMsg>,
    ) -> Self {
        Context {
            me: key.address(),
            key,
            chain_id,
            listen_port,
            limits,
            tasks,
            open: Arc::new(AtomicUsize::new(0)),
            pending: Arc::new(AtomicUsize::new(0)),
            next_id: AtomicU64::new(1),
        }
    }

    /// Claims one open-socket slot, if under `max_connections`.
    pub fn open_slot(&self) -> Option<Slot> {
        Slot::try_take(&self.open, self.limits.max_connections)
    }

    /// Runs our hello on `stream` within the handshake timeout.
    async fn hello(
        &self,
        stream: TcpStream,
        remote: SocketAddr,
        slot: Slot,
        expected: Option<Address>,
    ) -> Result<Link, HelloError> {
        let _ = stream.set_nodelay(true);
        let (r, mut w) = stream.into_split();
        let mut reader = FrameReader::new(r, MAX_HELLO_FRAME);
        let hello = timeout(
            self.limits.handshake_timeout,
            handshake(
                &mut reader,
                &mut w,
                &self.key,
                self.chain_id,
                self.listen_port,
                self.limits.max_frames_per_sec,
                match expected {
                    Some(peer) => Role::Dialler(peer),
                    None => Role::Acceptor,
                },
            ),
        )
        .await
        .map_err(|_| HelloError::Timeout)??;
        reader.set_max_frame_bytes(self.limits.max_frame_bytes);
        Ok(Link {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer: hello.peer,
            seen_at: SocketAddr::new(remote.ip(), hello.listen_port),
            peer_frame_limit: hello.max_frames_per_sec,
            dialled_by: if expected.is_some() {
                self.me
            } else {
                hello.peer
            },
            reader,
            writer: w,
            slot,
        })
    }
}

/// Accepts connections for ever; each one over a limit is closed at once, the others get a
/// hello task of their own.
pub async fn listen(ctx: Arc<Context>, listener: TcpListener) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                log::warn!("lan {:?}: accept failed: {e}", ctx.me);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(pending) = Slot::try_take(&ctx.pending, ctx.limits.max_pending_handshakes) else {
            log::debug!(
                "lan {:?}: refusing {remote}: too many pending hellos",
                ctx.me
            );
            continue;
        };
        let Some(slot) = ctx.open_slot() else {
            log::debug!("lan {:?}: refusing {remote}: too many connections", ctx.me);
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let result = ctx.hello(stream, remote, slot, None).await;
            drop(pending);
            match result {
                Ok(link) => {
                    let _ = ctx.tasks.send(TaskMsg::Proven(link)).await;
                }
                Err(e) => log::debug!("lan {:?}: inbound {remote} dropped: {e}", ctx.me),
            }
        });
    }
}

/// Dials `peer` at `at` and runs the hello; reports [`TaskMsg::Proven`] or
/// [`TaskMsg::DialFailed`].
pub async fn dial(ctx: Arc<Context>, peer: Address, at: SocketAddr, slot: Slot) {
    let result = async {
        let stream = timeout(ctx.limits.handshake_timeout, TcpStream::connect(at))
            .await
            .map_err(|_| HelloError::Timeout)??;
        ctx.hello(stream, at, slot, Some(peer)).await
    }
    .await;
    let msg = match result {
        Ok(link) => TaskMsg::Proven(link),
        Err(e) => {
            if matches!(e, HelloError::WrongPeer { .. }) {
                log::warn!("lan {:?}: dialled {peer:?} at {at}: {e}", ctx.me);
            } else {
                log::debug!("lan {:?}: dial {peer:?} at {at} failed: {e}", ctx.me);
            }
            TaskMsg::DialFailed {
                peer,
                reason: e.to_string(),
            }
        }
    };
    let _ = ctx.tasks.send(msg).await;
}
