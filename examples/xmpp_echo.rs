//! Raw XMPP echo through a private Prosody: the machine's limit for message exchange.
//!
//! Starts Prosody with the harness, logs in two transports, and measures
//! 1. ping-pong round trips (one message in flight): round trips/s, p50/p99/max latency;
//! 2. pipelined echo (many in flight): echoes/s;
//! 3. one-way throughput (A sends back to back, B counts): messages/s.
//!
//! Run: `cargo run --profile test --example xmpp_echo [round_trips] [one_way] [bytes]`
//! (the test profile reuses the optimised dependencies the tests built).

use std::time::{Duration, Instant};

use smartraiden::primitives::Address;
use smartraiden::transport::xmpp::{ProsodyServer, XmppConfig, XmppTransport};
use smartraiden::transport::{Transport, TransportEvent};
use tokio::sync::mpsc::Receiver;

/// Longest wait for any one reply before the measurement is declared stuck.
const STALL: Duration = Duration::from_secs(10);

fn addr(n: u8) -> Address {
    Address([n; 20])
}

async fn login(server: &ProsodyServer, n: u8) -> (XmppTransport, Receiver<TransportEvent>) {
    let a = addr(n);
    server.register(&a.to_lower_hex(), "pw").expect("register");
    XmppTransport::connect(XmppConfig::new(a, server.domain(), server.addr(), "pw"))
        .await
        .expect("login")
}

/// The next received message, skipping presence and connectivity events; panics (which
/// drops, and so kills, the server) if none comes within `wait`.
async fn next_message(
    rx: &mut Receiver<TransportEvent>,
    wait: Duration,
    phase: &str,
    a: &XmppTransport,
) -> Vec<u8> {
    loop {
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(TransportEvent::Received { bytes, .. })) => return bytes,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("{phase}: transport closed"),
            Err(_) => panic!(
                "{phase}: no message within {wait:?} (A queued {})",
                a.queued()
            ),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Prints this crate's warnings (and debug lines with XMPP_ECHO_DEBUG=1) to stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target().starts_with("smartraiden")
            && (m.level() <= log::Level::Warn || std::env::var_os("XMPP_ECHO_DEBUG").is_some())
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("{} {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    log::set_logger(&StderrLog).expect("logger");
    log::set_max_level(log::LevelFilter::Debug);
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("number"))
        .collect();
    let round_trips = args.first().copied().unwrap_or(5_000);
    let one_way = args.get(1).copied().unwrap_or(20_000);
    let size = args.get(2).copied().unwrap_or(270);

    let server = ProsodyServer::start("echo.test").expect("prosody");
    let (a, mut a_rx) = login(&server, 1).await;
    let (b, mut b_rx) = login(&server, 2).await;

    // B echoes every message back to A, on its own task; messages tagged ONE_WAY are only
    // counted, and the last one of a one-way run is answered once.
    const ONE_WAY: u8 = 0x0c;
    let echo = tokio::spawn(async move {
        let mut counted = 0;
        while let Some(ev) = b_rx.recv().await {
            if let TransportEvent::Received { bytes, .. } = ev {
                if bytes.first() == Some(&0xee) {
                    break;
                }
                if bytes.first() == Some(&ONE_WAY) {
                    counted += 1;
                    if counted < one_way {
                        continue;
                    }
                    counted = 0;
                }
                if let Err(e) = b.send(addr(1), bytes) {
                    eprintln!("echo: B cannot send: {e}");
                    break;
                }
            }
        }
        b
    });

    // Warm-up, so connection set-up is not measured.
    let msg = vec![0x55u8; size.max(9)];
    for _ in 0..200 {
        a.send(addr(2), msg.clone()).unwrap();
        next_message(&mut a_rx, STALL, "warm-up", &a).await;
    }

    let mut lat = Vec::with_capacity(round_trips);
    let started = Instant::now();
    for i in 0..round_trips {
        let mut m = msg.clone();
        m[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let t = Instant::now();
        a.send(addr(2), m.clone()).unwrap();
        let back = next_message(&mut a_rx, STALL, "ping-pong", &a).await;
        lat.push(t.elapsed());
        assert_eq!(back, m, "echo {i} intact");
    }
    let rt_elapsed = started.elapsed();
    lat.sort();

    // Pipelined: A sends everything at once, B echoes; count echoes back at A.
    let started = Instant::now();
    for i in 0..one_way {
        let mut m = msg.clone();
        m[..8].copy_from_slice(&(i as u64).to_be_bytes());
        a.send(addr(2), m).unwrap();
    }
    for _ in 0..one_way {
        next_message(&mut a_rx, STALL, "pipelined", &a).await;
    }
    let pipe_elapsed = started.elapsed();

    let started = Instant::now();
    for i in 0..one_way {
        let mut m = msg.clone();
        m[0] = ONE_WAY;
        m[1..9].copy_from_slice(&(i as u64).to_be_bytes());
        a.send(addr(2), m).unwrap();
    }
    // B answers only after the last one: allow for all of them (1 ms each is ~10x slack).
    let wait = STALL + Duration::from_millis(one_way as u64);
    next_message(&mut a_rx, wait, "one-way", &a).await;
    let one_way_elapsed = started.elapsed();

    a.send(addr(2), vec![0xee]).unwrap();
    let _b = echo.await.expect("echo task");

    println!(
        "XMPP echo through Prosody (loopback, one client thread per side, {size}-byte payloads)"
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| ping-pong round trips | {round_trips} |");
    println!(
        "| round trips/s | {:.0} |",
        round_trips as f64 / rt_elapsed.as_secs_f64()
    );
    println!(
        "| latency p50 | {:.3} ms |",
        percentile(&lat, 0.50).as_secs_f64() * 1e3
    );
    println!(
        "| latency p99 | {:.3} ms |",
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "| latency max | {:.3} ms |",
        lat[lat.len() - 1].as_secs_f64() * 1e3
    );
    println!(
        "| pipelined echoes/s ({one_way} in flight, each crosses the server twice) | {:.0} |",
        one_way as f64 / pipe_elapsed.as_secs_f64()
    );
    println!(
        "| one-way messages/s ({one_way} sent back to back, A→B) | {:.0} |",
        one_way as f64 / one_way_elapsed.as_secs_f64()
    );
}
