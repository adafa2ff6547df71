//! The event loop: batch, step, persist, then send.

use super::faults::FaultPoints;
use super::handle::{TransferOutcome, Work};
use crate::core::ContractCall;
use crate::core::{Core, Ctx, DelegationPrint, Input, NodeState, Notification, Output};
use crate::delegation::DelegationPackage;
use crate::primitives::{Address, H256, SecretHash};
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Shortest time between two retransmission ticks.
const MIN_TICK_SPACING_MS: u64 = 20;

/// How many ended transfers' outcomes are kept for late waiters.
const FINISHED_KEPT: usize = 100_000;

/// A commit that did not become durable: the node must stop (it cannot send what it could
/// not persist).
#[derive(Debug, thiserror::Error)]
#[error("persisting node state failed: {0}")]
pub struct PersistError(pub String);

/// How durable a commit must be before the event loop goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage (fsync) before returning: the batch releases messages, transactions
    /// or answers to user actions, which must never get ahead of the state behind them.
    Synced,
    /// Written in order (it survives a crash of the process, and a later synced commit makes
    /// it durable too) but not yet fsync'd: the batch releases nothing the world could hold us
    /// to. Losing it to a power cut only repeats work: an Ack we then never saw is replayed
    /// by the peer when we resend, a chain event is read again from the older block.
    Buffered,
}

/// Durable storage of the core's state (RocksDB in the node, memory in tests).
pub trait Persist: Send + 'static {
    /// Writes `state` and the batch's notifications atomically, at least as durably as
    /// `durability` asks, before returning. May skip a write that would change nothing.
    fn commit(
        &mut self,
        state: &NodeState,
        notifications: &[Notification],
        now_ms: u64,
        durability: Durability,
    ) -> Result<(), PersistError>;
}

/// What the event loop asks of the chain side of the shell (short-lived: passed straight to
/// the chain task, so the variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainRequest {
    /// Submit a transaction; a failure comes back as `Input::ContractFailed`.
    Submit(ContractCall),
    /// If the SecretRegistry holds this secret, feed its registration back in.
    WatchSecret(SecretHash),
}

/// Where messages leave the node (a transport; best effort, never blocks).
pub trait Outbound: Send + 'static {
    /// Queues signed bytes for a peer.
    fn send(&self, to: Address, bytes: Vec<u8>);
}

/// Shell settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Most work items stepped per commit.
    pub max_batch: usize,
    /// Longest the loop sleeps without work; it wakes earlier when the core's next
    /// retransmission falls due (`Core::next_wakeup_ms`).
    pub tick: Duration,
    /// Where to die on purpose (crash-safety tests); unarmed by default.
    pub faults: FaultPoints,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_batch: 256,
            tick: Duration::from_millis(50),
            faults: FaultPoints::default(),
        }
    }
}

/// The event loop's owned parts.
pub struct Runtime<P: Persist, O: Outbound> {
    core: Core,
    persist: P,
    outbound: O,
    chain: tokio::sync::mpsc::UnboundedSender<ChainRequest>,
    config: RuntimeConfig,
    waiters: HashMap<H256, Vec<tokio::sync::oneshot::Sender<TransferOutcome>>>,
    /// Outcomes of recently ended transfers, so a waiter that arrives after the end (the Ack
    /// can beat the request to wait) is answered at once. Bounded, oldest dropped first.
    finished: HashMap<H256, TransferOutcome>,
    finished_order: std::collections::VecDeque<H256>,
    notifications: tokio::sync::broadcast::Sender<Notification>,
    rng: rand_chacha::ChaCha20Rng,
    started: Instant,
    /// Unix time (ms) at `started`: the core's clock is Unix time advanced monotonically, so
    /// times an earlier run persisted (the last word from the chain) compare with this run's.
    started_unix_ms: u64,
    /// Where delegation packages go (`--monitor`); dropped without one.
    delegations: Option<tokio::sync::mpsc::UnboundedSender<Delegation>>,
}

/// A delegation package for the monitoring service, with what it carries in brief.
pub type Delegation = (DelegationPrint, Box<DelegationPackage>);

impl<P: Persist, O: Outbound> Runtime<P, O> {
    /// A runtime around `core`; contract calls go to `chain`.
    pub fn new(
        core: Core,
        persist: P,
        outbound: O,
        chain: tokio::sync::mpsc::UnboundedSender<ChainRequest>,
        notifications: tokio::sync::broadcast::Sender<Notification>,
        config: RuntimeConfig,
    ) -> Self {
        use rand_core::SeedableRng;
        Runtime {
            core,
            persist,
            outbound,
            chain,
            config,
            waiters: HashMap::new(),
            finished: HashMap::new(),
            finished_order: std::collections::VecDeque::new(),
            notifications,
            // Secrets must be unpredictable: seed from the operating system.
            rng: rand_chacha::ChaCha20Rng::from_entropy(),
            started: Instant::now(),
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            delegations: None,
        }
    }

    /// Hands the core's delegation packages (`Output::Delegate`) to `to`.
    pub fn with_delegations(mut self, to: tokio::sync::mpsc::UnboundedSender<Delegation>) -> Self {
        self.delegations = Some(to);
        self
    }

    fn now_ms(&self) -> u64 {
        self.started_unix_ms + self.started.elapsed().as_millis() as u64
    }

    /// Runs until every sender of `work` is gone. Resends the outbox first (after a restart).
    pub fn run(mut self, work: Receiver<Work>) -> Result<(), PersistError> {
        for o in self.core.resend_pending() {
            self.release(o);
        }
        let mut last_tick_ms = self.now_ms();
        loop {
            let now = self.now_ms();
            // Timers due within a few ms of each other go out in one tick.
            let wake = self
                .core
                .next_wakeup_ms()
                .map(|at| at.max(last_tick_ms + MIN_TICK_SPACING_MS));
            let wait = wake.map_or(self.config.tick, |at| {
                Duration::from_millis(at.saturating_sub(now)).min(self.config.tick)
            });
            let mut batch = Vec::new();
            match work.recv_timeout(wait) {
                Ok(w) => batch.push(w),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            while batch.len() < self.config.max_batch {
                match work.try_recv() {
                    Ok(w) => batch.push(w),
                    Err(_) => break,
                }
            }
            // Timers only: a node with nothing to resend does no idle batches.
            if wake.is_some_and(|at| self.now_ms() >= at) {
                last_tick_ms = self.now_ms();
                batch.push(Work::Input(Input::Tick));
            }
            let stop = batch.iter().any(|w| matches!(w, Work::Stop));
            self.process(batch)?;
            if stop {
                return Ok(());
            }
        }
    }

    /// Steps the core through a batch, commits once, then releases outputs and replies.
    fn process(&mut self, batch: Vec<Work>) -> Result<(), PersistError> {
        let now_ms = self.now_ms();
        let mut outputs = Vec::new();
        let mut replies = Vec::new();
        let mut after_commit = Vec::new();
        let mut fault_points = Vec::new();
        // A user's command is answered only once durable, whatever it produced.
        let mut acted = false;
        // Queries and waits alone change nothing: no snapshot to compare or write.
        let mut stepped = false;
        let only_ticks = batch.iter().all(|w| matches!(w, Work::Input(Input::Tick)));
        for w in batch {
            let mut ctx = Ctx {
                now_ms,
                rng: &mut self.rng,
            };
            match w {
                Work::Input(input) => {
                    stepped = true;
                    self.config.faults.before_input(&input, &self.core.state);
                    fault_points.extend(self.config.faults.after_input(&input));
                    outputs.extend(self.core.step(input, &mut ctx));
                }
                Work::Receive { bytes, slot } => {
                    stepped = true;
                    let input = Input::Receive(bytes);
                    self.config.faults.before_input(&input, &self.core.state);
                    fault_points.extend(self.config.faults.after_input(&input));
                    outputs.extend(self.core.step(input, &mut ctx));
                    drop(slot);
                }
                Work::Action {
                    action,
                    reply,
                    ended,
                } => {
                    stepped = true;
                    match self.core.act(action, &mut ctx) {
                        Ok(out) => {
                            acted = true;
                            let notes = events(&out);
                            let started = notes.iter().find_map(|n| match n {
                                Notification::TransferStarted { id, .. } => Some(*id),
                                _ => None,
                            });
                            if let (Some(id), Some(ended)) = (started, ended) {
                                // Before this batch's outputs are released: an end among them
                                // reaches this waiter too.
                                self.wait_for(id, ended);
                            }
                            outputs.extend(out);
                            replies.push((reply, Ok(notes)));
                        }
                        Err(e) => replies.push((reply, Err(e))),
                    }
                }
                Work::Query(f) => after_commit.push(f),
                Work::WaitTransfer { id, reply } => self.wait_for(id, reply),
                Work::Stop => {}
            }
        }
        let notes = events(&outputs);
        let releases = outputs.iter().any(|o| {
            matches!(
                o,
                Output::Send { .. } | Output::ContractSend(_) | Output::Delegate { .. }
            )
        });
        let durability = if acted || releases {
            Durability::Synced
        } else {
            Durability::Buffered
        };
        // A batch of ticks only moved retransmission timers and resent messages whose bytes an
        // earlier commit made durable: nothing to write (a restart resends every queued
        // message anyway), so a node with many unanswered messages does not rewrite its
        // snapshot for each resend.
        if stepped && !only_ticks {
            self.persist
                .commit(&self.core.state, &notes, now_ms, durability)?;
        }
        for point in fault_points {
            self.config.faults.hit(&point);
        }
        for o in outputs {
            self.release(o);
        }
        for (reply, r) in replies {
            let _ = reply.send(r);
        }
        for f in after_commit {
            f(&self.core);
        }
        Ok(())
    }

    /// Tells `reply` when transfer `id` ends (at once if it already has).
    fn wait_for(&mut self, id: H256, reply: tokio::sync::oneshot::Sender<TransferOutcome>) {
        match self.finished.get(&id) {
            Some(outcome) => {
                let _ = reply.send(outcome.clone());
            }
            None => self.waiters.entry(id).or_default().push(reply),
        }
    }

    /// Carries out one committed output.
    fn release(&mut self, o: Output) {
        match o {
            Output::Send { to, bytes } => {
                let faults = &self.config.faults;
                if faults.active() {
                    let copy = bytes.clone();
                    faults.send("before", &copy);
                    self.outbound.send(to, bytes);
                    faults.send("after", &copy);
                } else {
                    self.outbound.send(to, bytes);
                }
            }
            Output::ContractSend(call) => {
                if self.chain.send(ChainRequest::Submit(call)).is_err() {
                    log::error!("chain executor is gone; transaction not submitted");
                }
            }
            Output::WatchSecret(h) => {
                let _ = self.chain.send(ChainRequest::WatchSecret(h));
            }
            Output::Delegate { print, package } => match &self.delegations {
                Some(to) => {
                    let _ = to.send((print, package));
                }
                None => log::debug!(
                    "{}: no monitoring service to hand the package to",
                    package.channel_identifier
                ),
            },
            Output::Event(n) => {
                let outcome = match &n {
                    Notification::TransferSucceeded { id, fee } => {
                        Some((*id, TransferOutcome::Success { fee: *fee }))
                    }
                    Notification::TransferFailed { id, reason } => {
                        Some((*id, TransferOutcome::Failed(reason.clone())))
                    }
                    Notification::TransferCanceled { id } => Some((*id, TransferOutcome::Canceled)),
                    _ => None,
                };
                if let Some((id, outcome)) = outcome {
                    for w in self.waiters.remove(&id).into_iter().flatten() {
                        let _ = w.send(outcome.clone());
                    }
                    if self.finished_order.len() >= FINISHED_KEPT
                        && let Some(old) = self.finished_order.pop_front()
                    {
                        self.finished.remove(&old);
                    }
                    self.finished.insert(id, outcome);
                    self.finished_order.push_back(id);
                }
                let _ = self.notifications.send(n);
            }
        }
    }
}

/// The notifications among `outputs`.
fn events(outputs: &[Output]) -> Vec<Notification> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}
