//! The LAN transport (SPEC §4 no-internet mode) over real sockets on 127.0.0.1, and mDNS
//! discovery between two network namespaces: proven senders, exact bytes on the wire, hostile
//! input that must change nothing, reconnects, discovery. No sleep synchronises anything:
//! every wait is for a condition, with a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use smartraiden::crypto::PrivateKey;
use smartraiden::messages::{BalanceProof, DirectTransfer, Message, Ping, decode, encode_signed};
use smartraiden::primitives::*;
use smartraiden::transport::lan::frame::{self, FrameReader, FrameType};
use smartraiden::transport::lan::hello::{Challenge, Proof};
use smartraiden::transport::lan::{LanConfig, LanLimits, LanTransport, PeerSource};
use smartraiden::transport::{EventSink, Transport, TransportError, TransportEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

const CHAIN: u64 = 31337;
/// Generous: a loaded 2-core machine must not flake, a hang must still fail.
const DEADLINE: Duration = Duration::from_secs(30);

fn key(i: u8) -> PrivateKey {
    PrivateKey::from_bytes([i; 32]).unwrap()
}

/// Loopback timings: quick redials and hello timeouts keep the tests short.
fn limits() -> LanLimits {
    LanLimits {
        handshake_timeout: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..LanLimits::default()
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A signed SPEC §3 message from `from` (distinct per `n`).
fn signed(from: &PrivateKey, n: u64) -> Vec<u8> {
    encode_signed(Message::Ping(Ping { nonce: n }), from, ChainId(CHAIN)).bytes
}

/// Everything a transport reported, consumed in order.
struct Events {
    rx: mpsc::Receiver<TransportEvent>,
    log: Vec<TransportEvent>,
}

impl Events {
    /// Waits for the next event matching `pred` (every event seen is kept in `log`).
    async fn until(
        &mut self,
        what: &str,
        pred: impl Fn(&TransportEvent) -> bool,
    ) -> TransportEvent {
        let end = Instant::now() + DEADLINE;
        loop {
            match timeout(
                end.saturating_duration_since(Instant::now()),
                self.rx.recv(),
            )
            .await
            {
                Ok(Some(ev)) => {
                    self.log.push(ev.clone());
                    if pred(&ev) {
                        return ev;
                    }
                }
                Ok(None) => panic!(
                    "event channel closed waiting for {what}; saw {}",
                    self.summary()
                ),
                Err(_) => panic!("timed out waiting for {what}; saw {}", self.summary()),
            }
        }
    }

    /// The events seen so far, messages shown by size and sender only.
    fn summary(&self) -> String {
        let shown: Vec<String> = self
            .log
            .iter()
            .map(|e| match e {
                TransportEvent::Received {
                    bytes,
                    claimed_sender,
                } => format!("Received({} bytes from {claimed_sender:?})", bytes.len()),
                other => format!("{other:?}"),
            })
            .collect();
        format!("{} events: [{}]", shown.len(), shown.join(", "))
    }

    /// The next `n` received messages, as (bytes, claimed sender).
    async fn received(&mut self, n: usize) -> Vec<(Vec<u8>, Option<Address>)> {
        let mut out = Vec::new();
        while out.len() < n {
            if let TransportEvent::Received {
                bytes,
                claimed_sender,
            } = self
                .until("a message", |e| {
                    matches!(e, TransportEvent::Received { .. })
                })
                .await
            {
                out.push((bytes, claimed_sender));
            }
        }
        out
    }

    /// Takes what already arrived, without waiting.
    fn drain(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            self.log.push(ev);
        }
    }

    fn count(&self, pred: impl Fn(&TransportEvent) -> bool) -> usize {
        self.log.iter().filter(|e| pred(e)).count()
    }
}

struct Node {
    key: PrivateKey,
    t: LanTransport,
    events: Events,
}

impl Node {
    fn address(&self) -> Address {
        self.key.address()
    }
}

async fn start_at(key: PrivateKey, listen: SocketAddr, limits: LanLimits) -> Node {
    let (tx, rx) = mpsc::channel(100_000);
    let mut config = LanConfig::new(key.clone(), CHAIN, listen);
    config.limits = limits;
    let t = LanTransport::start(config, EventSink::Channel(tx))
        .await
        .expect("LAN transport starts");
    Node {
        key,
        t,
        events: Events {
            rx,
            log: Vec::new(),
        },
    }
}

async fn start(key: PrivateKey, limits: LanLimits) -> Node {
    start_at(key, loopback(), limits).await
}

/// Starts `a` and `b`, with `a` dialling `b`, and waits until both see the other online.
async fn pair(a: &mut Node, b: &mut Node) {
    a.t.add_peer(b.address(), b.t.local_addr());
    let (pa, pb) = (a.address(), b.address());
    a.events
        .until("a sees b online", |e| *e == TransportEvent::PeerOnline(pb))
        .await;
    b.events
        .until("b sees a online", |e| *e == TransportEvent::PeerOnline(pa))
        .await;
}

/// One message each way between two connected nodes arrives with the proven sender.
async fn round_trip(a: &mut Node, b: &mut Node, n: u64) {
    let (ma, mb) = (signed(&a.key, n), signed(&b.key, n));
    a.t.send(b.address(), ma.clone()).unwrap();
    b.t.send(a.address(), mb.clone()).unwrap();
    assert_eq!(b.events.received(1).await, vec![(ma, Some(a.address()))]);
    assert_eq!(a.events.received(1).await, vec![(mb, Some(b.address()))]);
}

/// Waits until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn manual_peers_exchange_messages_both_ways_with_proven_senders() {
    let mut a = start(key(1), limits()).await;
    let mut b = start(key(2), limits()).await;
    // Both dial at once: exactly one connection must survive, without an offline/online flap.
    a.t.add_peer(b.address(), b.t.local_addr());
    b.t.add_peer(a.address(), a.t.local_addr());
    let (pa, pb) = (a.address(), b.address());
    a.events
        .until("a sees b online", |e| *e == TransportEvent::PeerOnline(pb))
        .await;
    b.events
        .until("b sees a online", |e| *e == TransportEvent::PeerOnline(pa))
        .await;
    assert!(a.t.reachable(pb) && b.t.reachable(pa));

    let to_b: Vec<Vec<u8>> = (0..300).map(|n| signed(&a.key, n)).collect();
    let to_a: Vec<Vec<u8>> = (0..300).map(|n| signed(&b.key, 1000 + n)).collect();
    for (x, y) in to_b.iter().zip(&to_a) {
        a.t.send(pb, x.clone()).unwrap();
        b.t.send(pa, y.clone()).unwrap();
    }
    let got_b = b.events.received(to_b.len()).await;
    let got_a = a.events.received(to_a.len()).await;
    assert!(got_b.iter().all(|(_, from)| *from == Some(pa)));
    assert!(got_a.iter().all(|(_, from)| *from == Some(pb)));
    let mut got_b: Vec<Vec<u8>> = got_b.into_iter().map(|(m, _)| m).collect();
    let mut got_a: Vec<Vec<u8>> = got_a.into_iter().map(|(m, _)| m).collect();
    // Each side's bytes decode as signed by the other (the transport did not touch them).
    for m in &got_b {
        assert_eq!(decode(m, ChainId(CHAIN)).unwrap().sender, pa);
    }
    // Order is only promised per connection; when duplicates are resolved early messages may
    // travel on the retired one, so compare as sets (none lost, none invented).
    got_b.sort();
    got_a.sort();
    let (mut want_b, mut want_a) = (to_b.clone(), to_a.clone());
    want_b.sort();
    want_a.sort();
    assert_eq!(got_b, want_b);
    assert_eq!(got_a, want_a);

    // Once settled, a single live connection carries messages in order.
    round_trip(&mut a, &mut b, 9_999).await;
    let later: Vec<Vec<u8>> = (0..50).map(|n| signed(&a.key, 5_000 + n)).collect();
    for m in &later {
        a.t.send(pb, m.clone()).unwrap();
    }
    let got: Vec<Vec<u8>> = b
        .events
        .received(50)
        .await
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(got, later);

    a.events.drain();
    b.events.drain();
    for (n, peer) in [(&a, pb), (&b, pa)] {
        let online = |e: &TransportEvent| *e == TransportEvent::PeerOnline(peer);
        let offline = |e: &TransportEvent| *e == TransportEvent::PeerOffline(peer);
        assert_eq!(n.events.count(online), 1, "{}", n.events.summary());
        assert_eq!(n.events.count(offline), 0, "{}", n.events.summary());
        let peers = n.t.peers();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].address, peer);
        assert!(peers[0].connected);
        assert_eq!(peers[0].source, PeerSource::Manual);
    }
}

#[tokio::test]
async fn unknown_peers_are_unreachable_and_queues_are_bounded() {
    let mut l = limits();
    l.max_queued_per_peer = 3;
    let mut a = start(key(1), l).await;
    let stranger = key(9).address();
    assert_eq!(
        a.t.send(stranger, vec![1]),
        Err(TransportError::Unreachable(stranger))
    );
    // A known but unreachable peer (nothing listens there) queues up to the bound.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    a.t.add_peer(stranger, dead);
    for i in 0..3 {
        a.t.send(stranger, vec![i]).unwrap();
    }
    assert_eq!(
        a.t.send(stranger, vec![3]),
        Err(TransportError::QueueFull { capacity: 3 })
    );
    assert!(!a.t.reachable(stranger));
    a.t.remove_peer(stranger);
    eventually("the removed peer is forgotten", || a.t.peers().is_empty()).await;
    assert_eq!(
        a.t.send(stranger, vec![1]),
        Err(TransportError::Unreachable(stranger))
    );
    a.t.shutdown();
    assert_eq!(a.t.send(stranger, vec![1]), Err(TransportError::Closed));
    a.events.drain();
    assert!(a.events.log.is_empty(), "nothing was ever online");
}

#[tokio::test]
async fn shutdown_returns_while_the_node_takes_no_events() {
    // A node whose event channel holds one event and is never read.
    let (tx, _unread) = mpsc::channel(1);
    let ka = key(1);
    let mut config = LanConfig::new(ka.clone(), CHAIN, loopback());
    config.limits = limits();
    let a = LanTransport::start(config, EventSink::Channel(tx))
        .await
        .unwrap();
    let mut b = start(key(2), limits()).await;
    b.t.add_peer(ka.address(), a.local_addr());
    b.events
        .until("b sees a", |e| {
            *e == TransportEvent::PeerOnline(ka.address())
        })
        .await;
    for n in 0..100 {
        b.t.send(ka.address(), signed(&b.key, n)).unwrap();
    }
    // a's worker is now stuck handing over events; shutdown must still end it.
    eventually("b's queue drained", || b.t.queued(ka.address()) == 0).await;
    let mut a = a;
    let joined = tokio::task::spawn_blocking(move || a.shutdown());
    timeout(DEADLINE, joined)
        .await
        .expect("shutdown returns")
        .unwrap();
    b.events
        .until("b sees a go", |e| {
            *e == TransportEvent::PeerOffline(ka.address())
        })
        .await;
}

/// A hand-made client speaking the wire protocol.
struct RawClient {
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl RawClient {
    async fn connect(to: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(to).await.unwrap();
        let (r, w) = stream.into_split();
        RawClient {
            reader: FrameReader::new(r, 1 << 20),
            writer: w,
        }
    }

    async fn write_raw(&mut self, bytes: &[u8]) {
        // The victim may already have closed: a failed write is fine, the test checks that.
        let _ = self.writer.write_all(bytes).await;
    }

    async fn frame(&mut self) -> frame::Frame {
        timeout(DEADLINE, self.reader.next_frame())
            .await
            .expect("a frame in time")
            .expect("a frame")
    }

    /// The victim's challenge.
    async fn challenge(&mut self) -> Challenge {
        let f = self.frame().await;
        assert_eq!(f.kind, FrameType::Challenge);
        Challenge::decode(&f.payload).unwrap()
    }

    /// Sends our challenge as hand-assembled bytes: length 45, type 1, chain id, nonce, and
    /// the frame rate we accept (1,000/s).
    async fn send_challenge(&mut self, chain_id: u64, nonce: [u8; 32]) {
        let mut bytes = vec![0, 0, 0, 45, 1];
        bytes.extend_from_slice(&chain_id.to_be_bytes());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&1000u32.to_be_bytes());
        self.write_raw(&bytes).await;
    }

    /// A full valid hello as `key`; returns the victim's proven address.
    async fn hello(&mut self, key: &PrivateKey, nonce: [u8; 32]) -> Address {
        self.send_challenge(CHAIN, nonce).await;
        let theirs = self.challenge().await;
        assert_eq!(theirs.chain_id, CHAIN);
        let proof = Proof::sign(key, CHAIN, 1, &theirs.nonce);
        self.write_raw(&frame::encode(FrameType::Proof, &proof.encode()))
            .await;
        let f = self.frame().await;
        assert_eq!(f.kind, FrameType::Proof);
        Proof::decode(&f.payload)
            .unwrap()
            .verify(CHAIN, &nonce)
            .expect("the victim proves itself over our nonce")
    }

    /// True once the victim closed the connection (EOF or reset), reading past any frames.
    async fn closed_by_peer(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let sock = self.reader.get_mut();
        loop {
            match timeout(DEADLINE, sock.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

#[tokio::test]
async fn a_raw_client_reads_a_signed_message_frame_after_a_valid_hello() {
    let mut v = start(key(1), limits()).await;
    let client = key(7);
    let mut raw = RawClient::connect(v.t.local_addr()).await;
    assert_eq!(raw.hello(&client, [42; 32]).await, v.address());
    v.events
        .until("the raw client is online", |e| {
            *e == TransportEvent::PeerOnline(client.address())
        })
        .await;
    assert!(v.t.reachable(client.address()));

    // A real signed SPEC §3 message from the victim travels as one Message frame, unchanged.
    let m = Message::DirectTransfer(DirectTransfer {
        balance_proof: BalanceProof {
            channel_identifier: ChannelId(H256([1; 32])),
            open_block_number: BlockNumber(7),
            nonce: Nonce(3),
            transferred_amount: TokenAmount::from(150u64),
            locksroot: Locksroot(H256([2; 32])),
        },
        payment_identifier: 7,
    });
    let signed_m = encode_signed(m.clone(), &v.key, ChainId(CHAIN));
    v.t.send(client.address(), signed_m.bytes.clone()).unwrap();
    let f = raw.frame().await;
    assert_eq!(f.kind, FrameType::Message);
    assert_eq!(f.payload, signed_m.bytes);
    let back = decode(&f.payload, ChainId(CHAIN)).unwrap();
    assert_eq!(back.sender, v.address());
    assert_eq!(back.message, m);

    // And the other way: a hand-made Message frame arrives with the proven sender.
    let mine = signed(&client, 5);
    raw.write_raw(&frame::encode(FrameType::Message, &mine))
        .await;
    assert_eq!(
        v.events.received(1).await,
        vec![(mine, Some(client.address()))]
    );
}

#[tokio::test]
async fn a_dialled_peer_proving_another_address_is_dropped_before_we_prove_ourselves() {
    let mut a = start(key(1), limits()).await;
    let expected = key(5).address();
    let impostor = key(6);
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    a.t.add_peer(expected, listener.local_addr().unwrap());
    // Twice: the first attempt and a redial after the backoff.
    for attempt in 0..2 {
        let (stream, _) = timeout(DEADLINE, listener.accept())
            .await
            .expect("a dials")
            .unwrap();
        let (r, w) = stream.into_split();
        let mut raw = RawClient {
            reader: FrameReader::new(r, 1 << 20),
            writer: w,
        };
        // Acceptor side, genuinely signed by the impostor.
        let ours = [attempt as u8; 32];
        raw.send_challenge(CHAIN, ours).await;
        let theirs = raw.challenge().await;
        let proof = Proof::sign(&impostor, CHAIN, 1, &theirs.nonce);
        raw.write_raw(&frame::encode(FrameType::Proof, &proof.encode()))
            .await;
        // The dialler hangs up without a proof of its own.
        match timeout(DEADLINE, raw.reader.next_frame()).await {
            Ok(Err(_)) => {}
            other => panic!("expected a to hang up without proving itself, got {other:?}"),
        }
    }
    assert!(!a.t.reachable(expected) && !a.t.reachable(impostor.address()));
    let peers = a.t.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].address, expected);
    assert!(!peers[0].connected);
    a.events.drain();
    assert!(a.events.log.is_empty(), "{}", a.events.summary());
}

#[tokio::test]
async fn keepalive_pings_a_quiet_peer_and_drops_a_dead_one() {
    let mut lv = limits();
    lv.keepalive = Duration::from_millis(300);
    let mut v = start(key(1), lv).await;
    let peer = key(8);
    let mut raw = RawClient::connect(v.t.local_addr()).await;
    raw.hello(&peer, [3; 32]).await;
    v.events
        .until("the quiet peer is online", |e| {
            *e == TransportEvent::PeerOnline(peer.address())
        })
        .await;
    // A quiet peer that answers every ping stays connected.
    for _ in 0..3 {
        assert_eq!(raw.frame().await.kind, FrameType::Ping);
        raw.write_raw(&frame::encode(FrameType::Pong, &[])).await;
    }
    assert!(v.t.reachable(peer.address()));
    // Then it plays dead: the next ping goes unanswered and the link is dropped.
    assert_eq!(raw.frame().await.kind, FrameType::Ping);
    v.events
        .until("the dead peer goes offline", |e| {
            *e == TransportEvent::PeerOffline(peer.address())
        })
        .await;
    assert!(raw.closed_by_peer().await);
    assert!(!v.t.reachable(peer.address()));
}

/// Victim `v` with a legitimate, connected peer `l`.
async fn victim_and_peer(limits_v: LanLimits) -> (Node, Node) {
    let mut v = start(key(1), limits_v).await;
    let mut l = start(key(2), limits()).await;
    pair(&mut l, &mut v).await;
    (v, l)
}

/// Checks that `raw` was dropped, the legitimate peer still works both ways, and nothing
/// but the legitimate peer's messages reached the victim.
async fn dropped_and_nothing_changed(
    what: &str,
    raw: &mut RawClient,
    v: &mut Node,
    l: &mut Node,
    n: u64,
) {
    assert!(raw.closed_by_peer().await, "{what}: connection not dropped");
    round_trip(l, v, n).await;
    assert!(v.t.reachable(l.address()), "{what}");
    v.events.drain();
    let la = l.address();
    let bad: Vec<&TransportEvent> = v
        .events
        .log
        .iter()
        .filter(|e| match e {
            TransportEvent::Received { claimed_sender, .. } => *claimed_sender != Some(la),
            TransportEvent::PeerOnline(p) => *p != la,
            TransportEvent::PeerOffline(_) => true,
            _ => true,
        })
        .collect();
    assert!(bad.is_empty(), "{what}: victim saw {bad:?}");
    assert_eq!(v.t.peers().len(), 1, "{what}: {:?}", v.t.peers());
}

#[tokio::test]
async fn hostile_connections_are_dropped_and_change_nothing() {
    let (mut v, mut l) = victim_and_peer(limits()).await;
    let va = v.t.local_addr();
    let attacker = key(66);

    // Garbage: an HTTP request (its first bytes read as a 1.2 GB length).
    let mut raw = RawClient::connect(va).await;
    raw.write_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    dropped_and_nothing_changed("http garbage", &mut raw, &mut v, &mut l, 1).await;

    // Garbage: a well-sized frame of an unknown type.
    let mut raw = RawClient::connect(va).await;
    raw.write_raw(&[0, 0, 0, 3, 0xee, 1, 2]).await;
    dropped_and_nothing_changed("unknown frame type", &mut raw, &mut v, &mut l, 2).await;

    // An oversized length prefix (1 MiB > 256 KiB), followed by data.
    let mut raw = RawClient::connect(va).await;
    raw.write_raw(&[0, 0x10, 0, 0, 3]).await;
    raw.write_raw(&[0u8; 4096]).await;
    dropped_and_nothing_changed("oversized frame", &mut raw, &mut v, &mut l, 3).await;

    // A message before the hello.
    let mut raw = RawClient::connect(va).await;
    raw.write_raw(&frame::encode(FrameType::Message, &signed(&attacker, 1)))
        .await;
    dropped_and_nothing_changed("message before hello", &mut raw, &mut v, &mut l, 4).await;

    // A forged proof: claims to be the legitimate peer, signed by the attacker's key.
    let mut raw = RawClient::connect(va).await;
    raw.send_challenge(CHAIN, [1; 32]).await;
    let theirs = raw.challenge().await;
    let mut forged = Proof::sign(&attacker, CHAIN, 1, &theirs.nonce);
    forged.address = l.address();
    raw.write_raw(&frame::encode(FrameType::Proof, &forged.encode()))
        .await;
    raw.write_raw(&frame::encode(FrameType::Message, &signed(&l.key, 77)))
        .await;
    dropped_and_nothing_changed("forged signature", &mut raw, &mut v, &mut l, 5).await;

    // Another chain id in the challenge (with a proof that is otherwise valid): the victim
    // drops the connection before it sends its own proof.
    let mut raw = RawClient::connect(va).await;
    raw.send_challenge(CHAIN + 1, [2; 32]).await;
    let theirs = raw.challenge().await;
    let proof = Proof::sign(&attacker, CHAIN, 1, &theirs.nonce);
    raw.write_raw(&frame::encode(FrameType::Proof, &proof.encode()))
        .await;
    match timeout(DEADLINE, raw.reader.next_frame()).await {
        Ok(Err(_)) => {} // closed without a proof
        other => panic!("other chain: expected the connection closed, got {other:?}"),
    }
    dropped_and_nothing_changed("other chain", &mut raw, &mut v, &mut l, 6).await;

    // Our chain id in the challenge but a proof signed for another chain.
    let mut raw = RawClient::connect(va).await;
    raw.send_challenge(CHAIN, [3; 32]).await;
    let theirs = raw.challenge().await;
    let other_chain = Proof::sign(&attacker, CHAIN + 1, 1, &theirs.nonce);
    raw.write_raw(&frame::encode(FrameType::Proof, &other_chain.encode()))
        .await;
    dropped_and_nothing_changed("proof for another chain", &mut raw, &mut v, &mut l, 7).await;

    // A replayed hello: the legitimate peer's genuine proof, obtained by challenging it
    // with nonce N, replayed to the victim (whose challenge is a different nonce).
    let mut to_l = RawClient::connect(l.t.local_addr()).await;
    to_l.send_challenge(CHAIN, [9; 32]).await;
    let _ = to_l.challenge().await;
    let f = to_l.frame().await;
    assert_eq!(f.kind, FrameType::Proof);
    let genuine = Proof::decode(&f.payload).unwrap();
    assert_eq!(genuine.verify(CHAIN, &[9; 32]).unwrap(), l.address());
    drop(to_l);
    let mut raw = RawClient::connect(va).await;
    raw.send_challenge(CHAIN, [9; 32]).await;
    let _ = raw.challenge().await;
    raw.write_raw(&frame::encode(FrameType::Proof, &genuine.encode()))
        .await;
    raw.write_raw(&frame::encode(FrameType::Message, &signed(&l.key, 78)))
        .await;
    dropped_and_nothing_changed("replayed hello", &mut raw, &mut v, &mut l, 8).await;

    // A proof of the victim's own address (its own signature, replayed back at it).
    let mut raw = RawClient::connect(va).await;
    raw.send_challenge(CHAIN, [4; 32]).await;
    let theirs = raw.challenge().await;
    let own = Proof::sign(&v.key, CHAIN, 1, &theirs.nonce);
    raw.write_raw(&frame::encode(FrameType::Proof, &own.encode()))
        .await;
    dropped_and_nothing_changed("own address", &mut raw, &mut v, &mut l, 9).await;

    // A hello never finished: dropped after the handshake timeout.
    let mut raw = RawClient::connect(va).await;
    raw.send_challenge(CHAIN, [5; 32]).await;
    dropped_and_nothing_changed("silent after challenge", &mut raw, &mut v, &mut l, 10).await;

    // After a valid hello: a frame over the cap (256 KiB) drops the connection.
    let big = key(69);
    let mut raw = RawClient::connect(va).await;
    raw.hello(&big, [7; 32]).await;
    let len = (LanLimits::default().max_frame_bytes + 1) as u32;
    let mut header = len.to_be_bytes().to_vec();
    header.push(3);
    raw.write_raw(&header).await;
    raw.write_raw(&vec![0u8; 64 * 1024]).await;
    assert!(raw.closed_by_peer().await, "oversized frame after hello");
    v.events
        .until("the oversized sender goes offline", |e| {
            *e == TransportEvent::PeerOffline(big.address())
        })
        .await;

    // A second hello after the first (protocol violation on a proven link).
    let mut raw = RawClient::connect(va).await;
    let a2 = key(67);
    raw.hello(&a2, [6; 32]).await;
    raw.send_challenge(CHAIN, [6; 32]).await;
    assert!(raw.closed_by_peer().await, "hello after hello");
    v.events
        .until("the violator goes offline", |e| {
            *e == TransportEvent::PeerOffline(a2.address())
        })
        .await;
    round_trip(&mut l, &mut v, 11).await;
    assert!(
        v.events.count(|e| matches!(e,
            TransportEvent::Received { claimed_sender, .. } if *claimed_sender != Some(l.address())))
            == 0
    );
}

#[tokio::test]
async fn a_frame_flood_drops_the_flooder_only() {
    let mut lv = limits();
    lv.max_frames_per_sec = 200;
    let (mut v, mut l) = victim_and_peer(lv).await;
    let flooder = key(68);
    let mut raw = RawClient::connect(v.t.local_addr()).await;
    raw.hello(&flooder, [8; 32]).await;
    v.events
        .until("the flooder is online", |e| {
            *e == TransportEvent::PeerOnline(flooder.address())
        })
        .await;
    // 2,000 keepalive answers at once: ten times the victim's one-second budget.
    let mut flood = Vec::new();
    for _ in 0..2_000 {
        frame::encode_into(FrameType::Pong, &[], &mut flood);
    }
    raw.write_raw(&flood).await;
    assert!(raw.closed_by_peer().await, "flooder not dropped");
    v.events
        .until("the flooder goes offline", |e| {
            *e == TransportEvent::PeerOffline(flooder.address())
        })
        .await;
    assert!(!v.t.reachable(flooder.address()));
    // The legitimate peer (default limits) sends more than the victim's one-second budget at
    // once: it paces itself by the limit the victim announced in its hello, so it is never
    // dropped.
    let ms: Vec<Vec<u8>> = (0..250).map(|n| signed(&l.key, n)).collect();
    for m in &ms {
        l.t.send(v.address(), m.clone()).unwrap();
    }
    let got: Vec<Vec<u8>> = v
        .events
        .received(250)
        .await
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(got, ms);
    round_trip(&mut l, &mut v, 1_000).await;
    assert_eq!(
        v.events.count(
            |e| matches!(e, TransportEvent::Received { claimed_sender, .. }
            if *claimed_sender != Some(l.address()))
        ),
        0
    );
    assert_eq!(
        v.events
            .count(|e| *e == TransportEvent::PeerOffline(l.address())),
        0
    );
}

/// Opens `n` connections that say nothing; returns how many the victim accepted (those get
/// its challenge; refused ones are closed before a byte is sent).
async fn flood_connections(to: SocketAddr, n: usize) -> (usize, Vec<RawClient>) {
    let mut raws = Vec::new();
    for _ in 0..n {
        raws.push(RawClient::connect(to).await);
    }
    let mut accepted = Vec::new();
    for mut raw in raws {
        let first = timeout(DEADLINE, raw.reader.next_frame())
            .await
            .expect("accepted or closed in time");
        // Refused connections are closed at once, before the victim sends a byte.
        if let Ok(f) = first {
            assert_eq!(f.kind, FrameType::Challenge);
            accepted.push(raw);
        }
    }
    (accepted.len(), accepted)
}

#[tokio::test]
async fn a_connection_flood_is_bounded_by_the_pending_handshake_limit() {
    let mut lv = limits();
    lv.max_pending_handshakes = 4;
    let (mut v, mut l) = victim_and_peer(lv).await;
    let (accepted, mut held) = flood_connections(v.t.local_addr(), 20).await;
    assert_eq!(accepted, 4, "only max_pending_handshakes hellos at a time");
    // The established peer is not affected while the slots are taken.
    round_trip(&mut l, &mut v, 1).await;
    // The held ones are cut at the handshake timeout; then newcomers get in again.
    for raw in &mut held {
        assert!(raw.closed_by_peer().await);
    }
    let newcomer = key(70);
    let mut raw = RawClient::connect(v.t.local_addr()).await;
    raw.hello(&newcomer, [1; 32]).await;
    v.events
        .until("a newcomer gets in after the flood", |e| {
            *e == TransportEvent::PeerOnline(newcomer.address())
        })
        .await;
    round_trip(&mut l, &mut v, 2).await;
}

#[tokio::test]
async fn a_connection_flood_is_bounded_by_the_connection_limit() {
    let mut lv = limits();
    lv.max_connections = 3;
    let (mut v, mut l) = victim_and_peer(lv).await;
    // The legitimate peer's connection holds one of the three slots (once duplicates settle).
    eventually("one connection to the victim", || v.t.peers().len() == 1).await;
    let (accepted, mut held) = flood_connections(v.t.local_addr(), 12).await;
    assert_eq!(accepted, 2, "only max_connections sockets in total");
    round_trip(&mut l, &mut v, 1).await;
    for raw in &mut held {
        assert!(raw.closed_by_peer().await);
    }
    round_trip(&mut l, &mut v, 2).await;
    v.events.drain();
    assert_eq!(
        v.events
            .count(|e| matches!(e, TransportEvent::PeerOnline(p) if *p != l.address())),
        0
    );
}

#[tokio::test]
async fn strangers_get_a_share_of_the_connections_and_known_peers_the_rest() {
    // Four strangers with keys of their own complete hellos with the victim; only two are kept.
    let mut lv = limits();
    lv.max_stranger_connections = 2;
    let mut v = start(key(1), lv).await;
    let mut strangers = Vec::new();
    for i in 0..4 {
        let s = start(key(10 + i), limits()).await;
        s.t.add_peer(v.address(), v.t.local_addr());
        strangers.push(s);
    }
    // Every stranger's hello completed at least once (the victim proves itself first).
    for s in &mut strangers {
        let pv = v.address();
        s.events
            .until("the stranger saw the victim", |e| {
                *e == TransportEvent::PeerOnline(pv)
            })
            .await;
    }
    // A stranger sees the victim online as soon as the victim proved itself; the victim counts
    // the stranger once it has checked the stranger's proof, which may still be on its way.
    eventually("the victim keeps two strangers", || {
        v.t.peers().iter().filter(|p| p.connected).count() == 2
    })
    .await;
    v.events.drain();
    let online: std::collections::BTreeSet<Address> = v
        .events
        .log
        .iter()
        .filter_map(|e| match e {
            TransportEvent::PeerOnline(p) => Some(*p),
            _ => None,
        })
        .collect();
    assert_eq!(
        online.len(),
        2,
        "the victim never took more than two strangers"
    );
    // A peer the victim knows still gets in, and works both ways.
    let mut known = start(key(2), limits()).await;
    pair(&mut v, &mut known).await;
    round_trip(&mut v, &mut known, 1).await;
}

#[tokio::test]
async fn a_restarted_peer_on_the_same_port_is_reconnected() {
    let mut a = start(key(1), limits()).await;
    let mut b = start(key(2), limits()).await;
    let b_at = b.t.local_addr();
    pair(&mut a, &mut b).await;
    round_trip(&mut a, &mut b, 1).await;

    let pb = b.address();
    b.t.shutdown();
    a.events
        .until("b goes offline", |e| *e == TransportEvent::PeerOffline(pb))
        .await;
    assert!(!a.t.reachable(pb));
    // Queued while b is away: delivered after the reconnect.
    let waiting = signed(&a.key, 2);
    a.t.send(pb, waiting.clone()).unwrap();

    let mut b2 = start_at(key(2), b_at, limits()).await;
    a.events
        .until("b online again", |e| *e == TransportEvent::PeerOnline(pb))
        .await;
    let pa = a.address();
    b2.events
        .until("the new b sees a", |e| *e == TransportEvent::PeerOnline(pa))
        .await;
    assert_eq!(b2.events.received(1).await, vec![(waiting, Some(pa))]);
    round_trip(&mut a, &mut b2, 3).await;
    let offline_then_online: Vec<&TransportEvent> = a
        .events
        .log
        .iter()
        .filter(|e| {
            matches!(
                e,
                TransportEvent::PeerOnline(_) | TransportEvent::PeerOffline(_)
            )
        })
        .collect();
    assert_eq!(
        offline_then_online,
        vec![
            &TransportEvent::PeerOnline(pb),
            &TransportEvent::PeerOffline(pb),
            &TransportEvent::PeerOnline(pb)
        ]
    );
}

// ---- mDNS discovery between two network namespaces -------------------------------------

/// What a side of the mDNS test reports to the test thread.
#[derive(Debug)]
enum Report {
    /// Its peer was proven, this long after the transport started.
    Discovered(u64),
    /// It received its peer's message.
    Delivered,
    /// (Side a only) the stopped peer went offline and was forgotten this long after.
    Forgotten(u64),
}

/// One side, run on a thread inside its node's namespace (so the transport's threads and the
/// mDNS daemon live there too): no manual peer, mDNS on one interface only, then a message
/// each way. Side b stops when `stop` fires; side a then reports b offline and forgotten.
fn mdns_side(
    me: PrivateKey,
    other: PrivateKey,
    iface: String,
    report: std::sync::mpsc::Sender<Report>,
    stop: std::sync::mpsc::Receiver<()>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (tx, rx) = mpsc::channel(1000);
        let mut config = LanConfig::new(me.clone(), CHAIN, "0.0.0.0:0".parse().unwrap());
        config.mdns = true;
        config.mdns_interface = Some(iface);
        config.limits = limits();
        config.limits.peer_expiry = Duration::from_secs(2);
        let started = Instant::now();
        let mut t = LanTransport::start(config, EventSink::Channel(tx))
            .await
            .unwrap();
        let mut events = Events {
            rx,
            log: Vec::new(),
        };
        let peer = other.address();
        events
            .until("the peer found by mDNS", |e| {
                *e == TransportEvent::PeerOnline(peer)
            })
            .await;
        report
            .send(Report::Discovered(started.elapsed().as_millis() as u64))
            .unwrap();
        // Each side resolves the other on mDNS itself (the first connection may come from the
        // other side's dial, before our own sighting).
        eventually("the peer is known from mDNS", || {
            t.peers()
                .iter()
                .any(|p| p.address == peer && p.connected && p.source == PeerSource::Mdns)
        })
        .await;
        t.send(peer, signed(&me, 1)).unwrap();
        let got = events.received(1).await;
        assert_eq!(got, vec![(signed(&other, 1), Some(peer))]);
        report.send(Report::Delivered).unwrap();
        if me.address() < other.address() {
            // Side a watches b go.
            events
                .until("the peer offline", |e| {
                    *e == TransportEvent::PeerOffline(peer)
                })
                .await;
            let offline = Instant::now();
            eventually("the peer is forgotten", || {
                t.peers().iter().all(|p| p.address != peer)
            })
            .await;
            report
                .send(Report::Forgotten(offline.elapsed().as_millis() as u64))
                .unwrap();
        } else {
            tokio::task::spawn_blocking(move || stop.recv())
                .await
                .unwrap()
                .ok();
        }
        t.shutdown();
    });
}

/// Two nodes in separate network namespaces of a LAN lab (a bridge, no default route, mDNS
/// restricted to each node's LAN interface) find each other with no manual peer, prove
/// themselves, exchange a message; when b stops, a reports it offline and forgets it once it
/// is no longer announced.
#[test]
fn mdns_discovery_between_two_network_namespaces() {
    let lab = smartraiden::testnet::netns::LanLab::create(2).expect("the LAN lab (needs root)");
    lab.cut_internet().unwrap();
    // Side a is the lower address: it watches the other go.
    let (mut ka, mut kb) = (key(1), key(2));
    if kb.address() < ka.address() {
        std::mem::swap(&mut ka, &mut kb);
    }
    let (report_a, from_a) = std::sync::mpsc::channel();
    let (report_b, from_b) = std::sync::mpsc::channel();
    let (stop_b, stopped_b) = std::sync::mpsc::channel();
    let (_stop_a, stopped_a) = std::sync::mpsc::channel();
    let iface = |i: usize| lab.node_interface(i).to_owned();
    let a = lab.spawn_in(lab.node_ns(0), {
        let (ka, kb, iface) = (ka.clone(), kb.clone(), iface(0));
        move || mdns_side(ka, kb, iface, report_a, stopped_a)
    });
    let b = lab.spawn_in(lab.node_ns(1), {
        let iface = iface(1);
        move || mdns_side(kb, ka, iface, report_b, stopped_b)
    });
    let wait = Duration::from_secs(60);
    let next = |rx: &std::sync::mpsc::Receiver<Report>, what: &str| {
        rx.recv_timeout(wait)
            .unwrap_or_else(|e| panic!("no report of {what}: {e}"))
    };
    let (Report::Discovered(da), Report::Discovered(db)) = (
        next(&from_a, "a's discovery"),
        next(&from_b, "b's discovery"),
    ) else {
        panic!("discovery comes first");
    };
    assert!(matches!(next(&from_a, "a's delivery"), Report::Delivered));
    assert!(matches!(next(&from_b, "b's delivery"), Report::Delivered));
    stop_b.send(()).unwrap();
    b.join().unwrap().expect("b ran in its namespace");
    let Report::Forgotten(gone) = next(&from_a, "a forgetting b") else {
        panic!("a reports b forgotten");
    };
    a.join().unwrap().expect("a ran in its namespace");
    println!(
        "mDNS discovery to proven connection: a {da} ms, b {db} ms; b forgotten {gone} ms after \
         it went offline (peer_expiry 2 s)"
    );
}
