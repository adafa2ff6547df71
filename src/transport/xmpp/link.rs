//! One live connection, read and written at the same time.
//!
//! Writing must never block reading: Prosody stops reading a client whose incoming buffer it
//! cannot drain, so a client that only writes while the server only writes to it deadlocks
//! (seen as a stall under pipelined echo). [`Link::poll_step`] therefore writes whatever the
//! socket takes without waiting, and always goes on to look at the socket and the commands.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::{Sink, Stream as _};
use tokio::sync::mpsc;
use tokio_xmpp::xmlstream::{FallibleStreamElement, ReadError, XmppStreamElement};
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::stanza::Stanza;

use super::session::Stream;
use super::stanza::encode_message;
use super::worker::Command;

/// Most elements handed to the socket in one poll, so reads get their turn.
const WRITE_BATCH: usize = 256;

/// Protocol messages waiting to be written, shared-counted with the transport handle.
#[derive(Debug)]
pub struct Outbox {
    items: VecDeque<(BareJid, Vec<u8>)>,
    /// Messages accepted by `send` and not yet flushed to a socket (the handle's bound).
    queued: Arc<AtomicUsize>,
}

impl Outbox {
    /// An empty outbox counting into `queued`.
    pub fn new(queued: Arc<AtomicUsize>) -> Self {
        Outbox {
            items: VecDeque::new(),
            queued,
        }
    }

    /// Queues a message (already counted by the handle).
    pub fn push(&mut self, to: BareJid, bytes: Vec<u8>) {
        self.items.push_back((to, bytes));
    }

    /// Uncounts a message that could not be queued.
    pub fn discard_one(&mut self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// Forgets the first `n` messages: they reached a socket.
    fn done(&mut self, n: usize) {
        self.items.drain(..n);
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }
}

/// What happened on a link.
// Moved once per event and never stored: boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// A command from the handle (`None`: the handle is gone).
    Command(Option<Command>),
    /// An element (or read error) from the server (`None`: connection closed).
    Incoming(Option<Result<FallibleStreamElement, ReadError>>),
    /// Writing failed: the connection is broken.
    Lost(String),
}

/// A connected stream plus what has been handed to it but not yet flushed.
pub struct Link {
    stream: Stream,
    /// Stanzas of our own (presence, IQ replies); not retried across reconnects.
    control: VecDeque<Stanza>,
    /// How many outbox messages (from its front) sit in the stream's buffer unflushed.
    handed: usize,
    /// Whether anything was handed since the last successful flush.
    dirty: bool,
}

impl Link {
    /// Wraps a freshly opened stream.
    pub fn new(stream: Stream) -> Self {
        Link {
            stream,
            control: VecDeque::new(),
            handed: 0,
            dirty: false,
        }
    }

    /// Queues one of our own stanzas ahead of protocol messages.
    pub fn push_control(&mut self, stanza: Stanza) {
        self.control.push_back(stanza);
    }

    /// Writes without blocking, then reports the next command or incoming element.
    pub fn poll_step(
        &mut self,
        outbox: &mut Outbox,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        cx: &mut Context<'_>,
    ) -> Poll<Step> {
        if let Err(e) = self.poll_write(outbox, cx) {
            return Poll::Ready(Step::Lost(e));
        }
        if let Poll::Ready(cmd) = commands.poll_recv(cx) {
            return Poll::Ready(Step::Command(cmd));
        }
        if let Poll::Ready(item) = Pin::new(&mut self.stream).poll_next(cx) {
            return Poll::Ready(Step::Incoming(item));
        }
        Poll::Pending
    }

    /// Hands control stanzas then outbox messages to the stream while it accepts them, and
    /// flushes; flushed messages leave the outbox, so a broken link keeps the rest.
    fn poll_write(&mut self, outbox: &mut Outbox, cx: &mut Context<'_>) -> Result<(), String> {
        let mut budget = WRITE_BATCH;
        while budget > 0 && (!self.control.is_empty() || self.handed < outbox.items.len()) {
            match Sink::<&XmppStreamElement>::poll_ready(Pin::new(&mut self.stream), cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Err(e.to_string()),
                Poll::Pending => break,
            }
            let element = match self.control.pop_front() {
                Some(st) => XmppStreamElement::Stanza(st),
                None => {
                    let (to, bytes) = &outbox.items[self.handed];
                    self.handed += 1;
                    XmppStreamElement::Stanza(encode_message(to.clone(), bytes).into())
                }
            };
            Pin::new(&mut self.stream)
                .start_send(&element)
                .map_err(|e| e.to_string())?;
            self.dirty = true;
            budget -= 1;
        }
        if budget == 0 {
            // More to write: come back after looking at reads and commands.
            cx.waker().wake_by_ref();
        }
        if self.dirty {
            match Sink::<&XmppStreamElement>::poll_flush(Pin::new(&mut self.stream), cx) {
                Poll::Ready(Ok(())) => {
                    outbox.done(self.handed);
                    self.handed = 0;
                    self.dirty = false;
                }
                Poll::Ready(Err(e)) => return Err(e.to_string()),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Writes everything left (bounded by the caller's timeout), then `last`, then closes.
    pub async fn close(mut self, outbox: &mut Outbox, last: Stanza) -> Result<(), String> {
        self.control.push_back(last);
        std::future::poll_fn(|cx| {
            match self.poll_write(outbox, cx) {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(()) if self.control.is_empty() && outbox.items.is_empty() && !self.dirty => {
                    return Poll::Ready(Ok(()));
                }
                Ok(()) => {}
            }
            // Keep reading so the server keeps reading us (see the module comment).
            loop {
                match Pin::new(&mut self.stream).poll_next(cx) {
                    Poll::Ready(Some(_)) => continue,
                    Poll::Ready(None) => return Poll::Ready(Err("closed by the server".into())),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await?;
        std::future::poll_fn(|cx| {
            Sink::<&XmppStreamElement>::poll_close(Pin::new(&mut self.stream), cx)
        })
        .await
        .map_err(|e| e.to_string())
    }
}
