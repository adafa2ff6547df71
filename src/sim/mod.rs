//! A deterministic in-memory network of nodes for tests and benches: seeded loss,
//! duplication, reordering and delay of messages; a block clock; a small chain that executes
//! the core's transactions and reports their logs; crashes that restart a node from its last
//! persisted state. Each node persists (serializes) its state after every step and only then
//! releases the step's outputs, as the real shell does.

mod chain;
mod mesh;
mod monitor;

pub use chain::SimChain;
pub use mesh::Mesh;
pub use monitor::SimMonitor;

use crate::core::{
    Action, ActionError, ChainEvent, ContractCall, ContractFailure, Core, Ctx, Input, NodeConfig,
    NodeState, Notification, Output, TransferRequest,
};
use crate::crypto::PrivateKey;
use crate::primitives::{Address, BlockCount, BlockNumber, ChannelId, H256, TokenAmount};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

/// How hostile the simulated network is.
#[derive(Clone, Debug)]
pub struct NetworkConditions {
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Delivery delay range in ms (random delays reorder messages).
    pub delay_ms: (u64, u64),
}

impl NetworkConditions {
    /// Instant, lossless, ordered delivery.
    pub fn perfect() -> Self {
        NetworkConditions {
            loss: 0.0,
            duplicate: 0.0,
            delay_ms: (1, 1),
        }
    }

    /// Lossy, duplicating, reordering.
    pub fn hostile() -> Self {
        NetworkConditions {
            loss: 0.2,
            duplicate: 0.1,
            delay_ms: (1, 60),
        }
    }
}

/// One simulated node.
pub struct SimNode {
    /// The protocol core.
    pub core: Core,
    key: PrivateKey,
    /// The last committed state (what survives a crash).
    persisted: Vec<u8>,
    /// Chain events not yet consumed (a down node catches up on restart).
    pending_events: VecDeque<ChainEvent>,
    /// Whether the process is down.
    pub down: bool,
    /// Notifications seen, in order.
    pub notifications: Vec<Notification>,
    /// Kinds of messages this node never lets out (a dishonest node withholding answers,
    /// co-signatures or acknowledgements), as named by `Message::kind`.
    pub withholds: BTreeSet<&'static str>,
    /// Whether its chain follower lags: it learns the chain head but receives no blocks or
    /// logs until released.
    pub blocks_held: bool,
    /// Whether it has no route to the chain and the XMPP server (it still reaches the other
    /// nodes, as on a LAN): no head, blocks or logs, its transactions fail.
    pub internet_cut: bool,
    /// Every transaction it submitted, in order, with what the chain answered.
    pub transactions: Vec<(ContractCall, Result<Vec<ChainEvent>, String>)>,
    /// Transactions matching this are not mined: the node is told they failed as if its RPC
    /// endpoint were down (`Some(n)`: the next `n` only).
    #[allow(clippy::type_complexity)]
    failing: Option<(Box<dyn Fn(&ContractCall) -> bool>, Option<u32>)>,
    /// Its monitoring service, if it delegates (`Simulation::attach_monitor`).
    pub monitor: Option<SimMonitor>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at_ms: u64,
    seq: u64,
    to: usize,
    bytes: Vec<u8>,
}

/// The simulated world.
pub struct Simulation {
    /// The nodes.
    pub nodes: Vec<SimNode>,
    /// The chain.
    pub chain: SimChain,
    index: BTreeMap<Address, usize>,
    network: BinaryHeap<Reverse<InFlight>>,
    conditions: NetworkConditions,
    rng: ChaCha8Rng,
    seq: u64,
    /// Simulated clock.
    pub now_ms: u64,
    /// Milliseconds between blocks.
    pub block_time_ms: u64,
    next_block_ms: u64,
    /// Milliseconds between retransmission ticks.
    pub tick_ms: u64,
    next_tick_ms: u64,
    /// Messages handed to the network (for statistics).
    pub messages_sent: u64,
    /// Print every input and output (`SIM_TRACE=1`), to debug a failing scenario.
    trace: bool,
    /// Serialize each node's state after every step, as the real shell commits it (on by
    /// default; a bench building a huge state may turn it off, losing crash-restarts).
    pub persist_states: bool,
}

impl Simulation {
    /// `n` nodes, each configured by `config(i)`, with deterministic keys and randomness.
    pub fn new(
        n: usize,
        seed: u64,
        conditions: NetworkConditions,
        config: impl Fn(usize) -> NodeConfig,
    ) -> Simulation {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut nodes = Vec::new();
        let mut index = BTreeMap::new();
        for i in 0..n {
            let key = PrivateKey::random(&mut rng);
            let core = Core::new(key.clone(), config(i));
            index.insert(key.address(), i);
            let persisted = rmp_serde::to_vec(&core.state).expect("state serializes");
            nodes.push(SimNode {
                core,
                key,
                persisted,
                pending_events: VecDeque::new(),
                down: false,
                notifications: Vec::new(),
                withholds: BTreeSet::new(),
                blocks_held: false,
                internet_cut: false,
                transactions: Vec::new(),
                failing: None,
                monitor: None,
            });
        }
        let mut sim = Simulation {
            nodes,
            chain: SimChain::new(),
            index,
            network: BinaryHeap::new(),
            conditions,
            rng,
            seq: 0,
            now_ms: 0,
            block_time_ms: 1_000,
            next_block_ms: 1_000,
            tick_ms: 100,
            next_tick_ms: 100,
            messages_sent: 0,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            persist_states: true,
        };
        for i in 0..n {
            sim.input(i, Input::XmppLink(true));
            sim.catch_up(i);
        }
        sim
    }

    /// Node `i`'s address.
    pub fn address(&self, i: usize) -> Address {
        self.nodes[i].key.address()
    }

    /// Node `i`'s state.
    pub fn state(&self, i: usize) -> &NodeState {
        &self.nodes[i].core.state
    }

    /// Node `i`'s core (its read-only questions, such as a transfer preview).
    pub fn core(&self, i: usize) -> &crate::core::Core {
        &self.nodes[i].core
    }

    /// Changes the network's behaviour from now on.
    pub fn set_conditions(&mut self, c: NetworkConditions) {
        self.conditions = c;
    }

    /// Registers a token network and tells everyone.
    pub fn register_token(&mut self) -> (Address, Address) {
        let (token, tn, events) = self.chain.register_token();
        self.broadcast(events);
        (token, tn)
    }

    /// Opens a channel between `a` and `b` with the given deposits (through the cores' own
    /// actions and the simulated chain) and returns its id.
    pub fn open_channel(
        &mut self,
        token: Address,
        a: usize,
        b: usize,
        deposit_a: u64,
        deposit_b: u64,
        settle_timeout: u64,
    ) -> ChannelId {
        let pb = self.address(b);
        self.act(
            a,
            Action::OpenChannel {
                token,
                partner: pb,
                deposit: TokenAmount::from(deposit_a),
                settle_timeout: BlockCount(settle_timeout),
            },
        )
        .expect("open accepted");
        let id = self
            .state(a)
            .channel_with(&token, &pb)
            .expect("opened")
            .identifier;
        if deposit_b > 0 {
            self.act(
                b,
                Action::Deposit {
                    channel: id,
                    amount: TokenAmount::from(deposit_b),
                },
            )
            .expect("deposit accepted");
        }
        id
    }

    /// Runs a user action on node `i`.
    pub fn act(&mut self, i: usize, action: Action) -> Result<(), ActionError> {
        assert!(!self.nodes[i].down, "node {i} is down");
        let mut rng = ChaCha8Rng::seed_from_u64(self.rng.next_u64());
        let mut ctx = Ctx {
            now_ms: self.now_ms,
            rng: &mut rng,
        };
        let outputs = self.nodes[i].core.act(action, &mut ctx)?;
        self.commit(i, outputs);
        Ok(())
    }

    /// Starts a payment from `from` to `to`; returns its id.
    pub fn pay(
        &mut self,
        token: Address,
        from: usize,
        to: usize,
        amount: u64,
        is_direct: bool,
    ) -> Result<H256, ActionError> {
        let req = TransferRequest {
            token,
            target: self.address(to),
            amount: TokenAmount::from(amount),
            max_fee: None,
            is_direct,
            secret: None,
            identifier: None,
        };
        let before = self.nodes[from].notifications.len();
        self.act(from, Action::Transfer(req))?;
        Ok(self.nodes[from].notifications[before..]
            .iter()
            .find_map(|n| match n {
                Notification::TransferStarted { id, .. } => Some(*id),
                _ => None,
            })
            .expect("a started transfer is announced"))
    }

    /// Persists node `i`'s state, then releases its outputs (persist, then send). A refused
    /// transaction and a watched secret the chain already holds come back to the node as
    /// inputs, as the real shell feeds them.
    fn commit(&mut self, i: usize, outputs: Vec<Output>) {
        if self.persist_states {
            self.nodes[i].persisted =
                rmp_serde::to_vec(&self.nodes[i].core.state).expect("state serializes");
        }
        let mut replies = Vec::new();
        for o in outputs {
            match o {
                Output::Send { to, bytes } => {
                    if self.withheld(i, &bytes) {
                        continue;
                    }
                    self.check_forward(i, &bytes);
                    self.transmit(to, bytes)
                }
                Output::Delegate { print, package } => {
                    replies.extend(self.delegate(i, print, package));
                }
                Output::ContractSend(call) => {
                    if self.fails(i, &call) {
                        self.nodes[i]
                            .transactions
                            .push((call.clone(), Err("RPC unavailable".into())));
                        replies.push(Input::ContractFailed {
                            call,
                            failure: ContractFailure::Unavailable {
                                reason: "simulated RPC outage".into(),
                            },
                        });
                        continue;
                    }
                    let from = self.address(i);
                    let block = self.chain.block;
                    let result = self.chain.execute(from, call.clone(), block);
                    self.nodes[i]
                        .transactions
                        .push((call.clone(), result.clone()));
                    match result {
                        Ok(events) => self.broadcast(events),
                        Err(error) => replies.push(Input::ContractFailed {
                            call,
                            failure: ContractFailure::Reverted { error },
                        }),
                    }
                }
                Output::WatchSecret(h) => {
                    if let Some((secret, block_number)) = self.chain.registered_secret(&h) {
                        replies.push(Input::ContractReceive(ChainEvent::SecretRegistered {
                            secrethash: h,
                            secret,
                            block_number,
                        }));
                    }
                }
                Output::Event(n) => self.nodes[i].notifications.push(n),
            }
        }
        for input in replies {
            self.input(i, input);
        }
    }

    /// Whether node `i`'s transaction `call` is to fail (and counts it).
    fn fails(&mut self, i: usize, call: &ContractCall) -> bool {
        if self.nodes[i].internet_cut {
            return true;
        }
        let Some((pred, left)) = &mut self.nodes[i].failing else {
            return false;
        };
        if !pred(call) {
            return false;
        }
        match left {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    /// From now on node `i`'s transactions matching `pred` fail as if its RPC endpoint were
    /// down: all of them (`count: None`) or the next `count`.
    pub fn fail_transactions(
        &mut self,
        i: usize,
        pred: impl Fn(&ContractCall) -> bool + 'static,
        count: Option<u32>,
    ) {
        self.nodes[i].failing = Some((Box::new(pred), count));
    }

    /// Submits a transaction as node `i` (a test playing a node's owner by hand) and lets
    /// everyone see its logs.
    pub fn submit(&mut self, i: usize, call: ContractCall) -> Result<(), String> {
        let from = self.address(i);
        let block = self.chain.block;
        let events = self.chain.execute(from, call, block)?;
        self.broadcast(events);
        Ok(())
    }

    /// Signs `message` with node `from`'s key and puts it on the wire to node `to` (a test
    /// playing a dishonest node by hand).
    pub fn send_as(&mut self, from: usize, to: usize, message: crate::messages::Message) {
        let signed =
            crate::messages::encode_signed(message, &self.nodes[from].key, self.chain.chain_id);
        let to = self.address(to);
        self.transmit(to, signed.bytes);
    }

    /// Node `i`'s key (a test signing terms or proofs as that node).
    pub fn key(&self, i: usize) -> &PrivateKey {
        &self.nodes[i].key
    }

    /// Whether node `i` withholds these wire bytes.
    fn withheld(&self, i: usize, bytes: &[u8]) -> bool {
        let withholds = &self.nodes[i].withholds;
        !withholds.is_empty()
            && crate::messages::decode(bytes, self.chain.chain_id)
                .is_ok_and(|m| withholds.contains(m.message.kind()))
    }

    /// Node `i`'s follower lags (`true`: it sees the head but gets no blocks or logs) or
    /// catches up (`false`: everything held back is delivered).
    pub fn hold_blocks(&mut self, i: usize, held: bool) {
        self.nodes[i].blocks_held = held;
        if !held {
            self.catch_up(i);
        }
    }

    /// Node `i` loses (`true`) or regains its route to the chain and the XMPP server; the
    /// other nodes stay reachable, as on a LAN. Back online, it catches up with the chain.
    pub fn cut_internet(&mut self, i: usize, cut: bool) {
        self.nodes[i].internet_cut = cut;
        self.input(i, Input::XmppLink(!cut));
        if !cut {
            self.catch_up(i);
        }
    }

    /// Feeds node `i` the chain head, then the logs and the block it has not seen.
    fn catch_up(&mut self, i: usize) {
        if self.nodes[i].internet_cut {
            return;
        }
        let b = self.chain.block;
        self.input(i, Input::ChainHead(b));
        if self.nodes[i].blocks_held {
            return;
        }
        self.drain_events(i);
        self.input(i, Input::Block(b));
    }

    fn transmit(&mut self, to: Address, bytes: Vec<u8>) {
        self.messages_sent += 1;
        let Some(&idx) = self.index.get(&to) else {
            return;
        };
        let c = self.conditions.clone();
        let copies = if self.chance(c.loss) {
            0
        } else if self.chance(c.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = c.delay_ms.0 + self.rng.next_u64() % (c.delay_ms.1 - c.delay_ms.0 + 1);
            self.seq += 1;
            self.network.push(Reverse(InFlight {
                at_ms: self.now_ms + delay,
                seq: self.seq,
                to: idx,
                bytes: bytes.clone(),
            }));
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    /// Queues chain events for every node and feeds those that are up.
    fn broadcast(&mut self, events: Vec<ChainEvent>) {
        for e in events {
            for n in &mut self.nodes {
                n.pending_events.push_back(e.clone());
            }
        }
        for i in 0..self.nodes.len() {
            self.drain_events(i);
        }
    }

    fn drain_events(&mut self, i: usize) {
        while !self.nodes[i].down && !self.nodes[i].blocks_held && !self.nodes[i].internet_cut {
            let Some(e) = self.nodes[i].pending_events.pop_front() else {
                break;
            };
            self.input(i, Input::ContractReceive(e));
        }
    }

    /// Feeds one input to node `i` and commits.
    pub fn input(&mut self, i: usize, input: Input) {
        if self.nodes[i].down {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.rng.next_u64());
        let mut ctx = Ctx {
            now_ms: self.now_ms,
            rng: &mut rng,
        };
        if self.trace && !matches!(input, Input::Tick | Input::Block(_) | Input::ChainHead(_)) {
            eprintln!(
                "[{} ms, block {}] node {i} <- {}",
                self.now_ms,
                self.chain.block,
                self.describe(&input)
            );
        }
        if let Input::Receive(bytes) = &input {
            self.note_incoming_lock(i, bytes);
        }
        let outputs = self.nodes[i].core.step(input, &mut ctx);
        if self.trace {
            for o in &outputs {
                match o {
                    Output::Send { to, bytes } => {
                        eprintln!(
                            "    node {i} -> {}",
                            self.describe(&Input::Receive(bytes.clone()))
                        );
                        let _ = to;
                    }
                    other => eprintln!("    node {i} => {other:?}"),
                }
            }
        }
        self.commit(i, outputs);
    }

    /// Mines `n` blocks at once (everyone sees each, but nodes whose blocks are held).
    pub fn mine(&mut self, n: u64) {
        for _ in 0..n {
            self.chain.block = BlockNumber(self.chain.block.0 + 1);
            for i in 0..self.nodes.len() {
                self.catch_up(i);
            }
        }
    }

    /// Advances the clock by one event (a delivery, a tick or a block); false if there are
    /// none before `until_ms`.
    fn advance(&mut self, until_ms: u64) -> bool {
        let next_msg = self
            .network
            .peek()
            .map(|Reverse(m)| m.at_ms)
            .unwrap_or(u64::MAX);
        let next = next_msg.min(self.next_tick_ms).min(self.next_block_ms);
        if next > until_ms {
            self.now_ms = until_ms;
            return false;
        }
        self.now_ms = next;
        if next == next_msg {
            let Reverse(m) = self.network.pop().expect("peeked");
            self.input(m.to, Input::Receive(m.bytes));
        } else if next == self.next_tick_ms {
            self.next_tick_ms += self.tick_ms;
            for i in 0..self.nodes.len() {
                self.input(i, Input::Tick);
            }
        } else {
            self.next_block_ms += self.block_time_ms;
            self.mine(1);
        }
        true
    }

    /// Runs for `ms` of simulated time.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now_ms + ms;
        while self.advance(until) {}
    }

    /// Runs until every node is quiet and nothing is in flight, or `max_ms` passes; true if
    /// quiet.
    pub fn run_until_quiet(&mut self, max_ms: u64) -> bool {
        self.run_until(max_ms, |sim| sim.is_quiet())
    }

    /// Runs until `done` holds or `max_ms` passes; true if it holds.
    pub fn run_until(&mut self, max_ms: u64, done: impl Fn(&Simulation) -> bool) -> bool {
        let until = self.now_ms + max_ms;
        loop {
            if done(self) {
                return true;
            }
            if !self.advance(until) {
                return done(self);
            }
        }
    }

    /// Messages on the wire.
    pub fn in_flight(&self) -> usize {
        self.network.len()
    }

    /// No running transfer, lock or unacknowledged message anywhere (up nodes only), and
    /// nothing on the wire.
    pub fn is_quiet(&self) -> bool {
        self.network.is_empty() && self.nodes.iter().all(|n| n.down || n.core.state.is_quiet())
    }

    /// A one-line description of an input, for traces.
    fn describe(&self, input: &Input) -> String {
        match input {
            Input::Receive(b) => match crate::messages::decode(b, self.chain.chain_id) {
                Ok(m) => format!(
                    "{} signed by node {} {:?}",
                    m.message.kind(),
                    self.index.get(&m.sender).copied().unwrap_or(99),
                    m.message.balance_proof().map(|bp| bp.nonce)
                ),
                Err(e) => e.to_string(),
            },
            other => format!("{other:?}"),
        }
    }

    /// Kills node `i` (its in-memory state is lost; the persisted state remains).
    pub fn crash(&mut self, i: usize) {
        if self.trace {
            eprintln!("[{} ms] node {i} CRASH", self.now_ms);
        }
        self.nodes[i].down = true;
        if let Some(m) = &mut self.nodes[i].monitor {
            // The shell's packages waiting to be pushed die with the process.
            m.clear_backlog();
        }
    }

    /// Restarts node `i` from its persisted state, replays missed chain events and resends its
    /// unacknowledged messages.
    pub fn restart(&mut self, i: usize) {
        let state: NodeState =
            rmp_serde::from_slice(&self.nodes[i].persisted).expect("persisted state decodes");
        let key = self.nodes[i].key.clone();
        self.nodes[i].core = Core::restore(key, state).expect("the node's own state");
        self.nodes[i].down = false;
        let up = !self.nodes[i].internet_cut;
        self.input(i, Input::XmppLink(up));
        self.catch_up(i);
        // The shell asks its monitoring service for its address again.
        if let Some(address) = self.nodes[i].monitor.as_ref().map(|m| m.address) {
            self.input(
                i,
                Input::Monitor(crate::core::MonitorReport::Ready(address)),
            );
        }
        let resend = self.nodes[i].core.resend_pending();
        self.commit(i, resend);
    }

    /// (our balance, partner balance) of node `a`'s channel with node `b` in `token`, as `a`
    /// sees it.
    pub fn balances(&self, token: Address, a: usize, b: usize) -> (u64, u64) {
        let c = self
            .state(a)
            .channel_with(&token, &self.address(b))
            .expect("channel");
        let small = |v: TokenAmount| v.to_u128().and_then(|v| u64::try_from(v).ok());
        (
            small(c.our_balance()).expect("a small balance"),
            small(c.partner_balance()).expect("a small balance"),
        )
    }

    /// How node `node`'s transfer `id` ended (success, failure or cancel), if it did.
    pub fn outcome(&self, node: usize, id: H256) -> Option<&Notification> {
        self.nodes[node].notifications.iter().find(|n| match n {
            Notification::TransferSucceeded { id: i, .. }
            | Notification::TransferFailed { id: i, .. }
            | Notification::TransferCanceled { id: i } => *i == id,
            _ => false,
        })
    }

    /// Notifications of node `i` matching `f`.
    pub fn count_notifications(&self, i: usize, f: impl Fn(&Notification) -> bool) -> usize {
        self.nodes[i].notifications.iter().filter(|n| f(n)).count()
    }

    /// Contract calls the chain refused (they indicate a core bug in tests that expect none).
    pub fn failed_calls(&self) -> &[(Address, ContractCall, String)] {
        &self.chain.failed
    }
}
