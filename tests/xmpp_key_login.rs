//! Key-bound logins and TLS against a real Prosody with `mod_auth_smartraiden`, asking the real
//! verifier process (`smartraiden xmpp-auth --http`), SPEC §4.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smartraiden::crypto::PrivateKey;
use smartraiden::testnet::xmpp_security::{PrivateCa, VerifierProcess};
use smartraiden::transport::xmpp::auth::login_password;
use smartraiden::transport::xmpp::tls::XmppTls;
use smartraiden::transport::xmpp::verifier::unix_ms;
use smartraiden::transport::xmpp::{
    ProsodyOptions, ProsodyServer, ServerCert, XmppConfig, XmppError, XmppTransport,
};
use smartraiden::transport::{Transport, TransportEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DOMAIN: &str = "xmpp-a.test";
/// Generous: a loaded 2-core CI machine must not flake, a hang must still fail.
const DEADLINE: Duration = Duration::from_secs(30);

fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes([n; 32]).unwrap()
}

/// The verifier and a Prosody that asks it; `tls`: STARTTLS with this certificate.
fn servers(dir: &Path, tls: Option<ServerCert>) -> (VerifierProcess, ProsodyServer) {
    let verifier = VerifierProcess::start(
        Path::new(env!("CARGO_BIN_EXE_smartraiden")),
        &dir.join("verifier.log"),
    )
    .expect("verifier starts");
    let prosody = ProsodyServer::start_with(
        DOMAIN,
        ProsodyOptions {
            key_bound_auth: Some(verifier.url()),
            tls,
            ..ProsodyOptions::default()
        },
    )
    .expect("prosody starts");
    (verifier, prosody)
}

/// A node config logging in with its key.
fn node(server: SocketAddr, k: &PrivateKey) -> XmppConfig {
    let mut cfg = XmppConfig::new(k.address(), DOMAIN, server, "");
    cfg.login_key = Some(k.clone());
    cfg.login_timeout = Duration::from_secs(10);
    cfg
}

/// A config logging in as `k`'s address with a fixed (stored, captured) password.
fn stored(server: SocketAddr, k: &PrivateKey, password: String) -> XmppConfig {
    XmppConfig::new(k.address(), DOMAIN, server, &password)
}

async fn refused(cfg: XmppConfig) -> String {
    match XmppTransport::connect(cfg).await {
        Ok(_) => panic!("login must be refused"),
        Err(e @ XmppError::LoginFailed { .. }) => e.to_string(),
        Err(e) => panic!("expected a refused login, got {e}"),
    }
}

async fn expect_event(
    rx: &mut tokio::sync::mpsc::Receiver<TransportEvent>,
    what: &str,
    pred: impl Fn(&TransportEvent) -> bool,
) {
    smartraiden::testnet::harness::expect_event(rx, what, DEADLINE, pred).await;
}

#[tokio::test]
async fn the_keys_holder_logs_in_and_a_message_to_a_node_never_seen_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_verifier, prosody) = servers(dir.path(), None);
    let (a, b) = (key(1), key(2));
    let (ta, _a_rx) = XmppTransport::connect(node(prosody.addr(), &a))
        .await
        .expect("the key's own login is accepted");
    // B never logged in: the server must keep the message (every well-formed address
    // exists), not bounce it.
    ta.send(b.address(), b"for b, before it ever logged in".to_vec())
        .unwrap();
    let started = std::time::Instant::now();
    let (_tb, mut b_rx) = XmppTransport::connect(node(prosody.addr(), &b))
        .await
        .expect("B logs in");
    println!("key-bound login took {:?}", started.elapsed());
    expect_event(&mut b_rx, "the offline message", |e| {
        matches!(e, TransportEvent::Received { bytes, .. } if bytes == b"for b, before it ever logged in")
    })
    .await;
}

#[tokio::test]
async fn stored_replayed_foreign_and_malformed_logins_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_verifier, prosody) = servers(dir.path(), None);
    let (a, other) = (key(1), key(2));
    let now = unix_ms();

    // A password stored (or captured) ten minutes ago has expired.
    let old = login_password(&a, DOMAIN, now - 10 * 60 * 1000);
    let err = refused(stored(prosody.addr(), &a, old)).await;
    assert!(err.contains("expired"), "{err}");

    // A fresh password works once; the same bytes again are a replay.
    let fresh = login_password(&a, DOMAIN, now);
    let (mut first, _rx) = XmppTransport::connect(stored(prosody.addr(), &a, fresh.clone()))
        .await
        .expect("a fresh password logs in once");
    first.shutdown();
    let err = refused(stored(prosody.addr(), &a, fresh)).await;
    assert!(err.contains("replayed"), "{err}");

    // Another key's signature does not log in as A.
    let err = refused(stored(
        prosody.addr(),
        &a,
        login_password(&other, DOMAIN, now),
    ))
    .await;
    assert!(err.contains("signed by"), "{err}");

    // A user name that is not an address is refused before the verifier is asked.
    let reply = raw_plain_login(prosody.addr(), "alice", &login_password(&a, DOMAIN, now));
    assert!(reply.contains("<failure"), "{reply}");
    assert!(reply.contains("not a node address"), "{reply}");
}

#[tokio::test]
async fn a_verifier_that_is_down_refuses_logins_and_they_work_again_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut verifier, prosody) = servers(dir.path(), None);
    let a = key(1);
    verifier.kill();
    let err = refused(node(prosody.addr(), &a)).await;
    assert!(err.contains("verifier unreachable"), "{err}");

    verifier.restart().expect("verifier restarts");
    XmppTransport::connect(node(prosody.addr(), &a))
        .await
        .expect("logins work again without touching Prosody");
}

#[tokio::test]
async fn tls_verifies_the_servers_certificate_and_the_wire_carries_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let ca = PrivateCa::create(&dir.path().join("ca")).expect("CA");
    let (_verifier, prosody) = servers(dir.path(), Some(ca.issue(DOMAIN).expect("cert")));
    let relay = Relay::start(prosody.addr()).await;
    let (a, b) = (key(1), key(2));
    let secure = |k: &PrivateKey, server: SocketAddr| {
        let mut cfg = node(server, k);
        cfg.tls = XmppTls::Verify {
            ca_file: Some(ca.cert_path()),
        };
        cfg
    };

    // Through the recording relay: A logs in with TLS and sends B a message.
    let (ta, _a_rx) = XmppTransport::connect(secure(&a, relay.addr))
        .await
        .expect("TLS login with the private CA");
    let (_tb, mut b_rx) = XmppTransport::connect(secure(&b, prosody.addr()))
        .await
        .expect("B logs in");
    let payload = b"SECRET-PAYLOAD-0123456789".repeat(4);
    ta.send(b.address(), payload.clone()).unwrap();
    expect_event(
        &mut b_rx,
        "A's message",
        |e| matches!(e, TransportEvent::Received { bytes, .. } if *bytes == payload),
    )
    .await;
    let wire = relay.bytes();
    let text = String::from_utf8_lossy(&wire);
    let proceed = text.find("<proceed").expect("STARTTLS happened");
    let after = &wire[proceed..];
    let user = a.address().to_lower_hex();
    for clear in [
        b"<message".as_slice(),
        b"<auth".as_slice(),
        b"sr1.".as_slice(),
        user.as_bytes(),
        b"U0VDUkVU".as_slice(), // base64 of "SECRET"
        b"SECRET".as_slice(),
    ] {
        assert!(
            !after.windows(clear.len()).any(|w| w == clear),
            "{:?} in the clear after STARTTLS",
            String::from_utf8_lossy(clear)
        );
    }
    assert!(!text[..proceed].contains("<auth"), "login before TLS");

    // A certificate from another CA does not verify: refused, not retried.
    let stranger = PrivateCa::create(&dir.path().join("stranger")).expect("CA");
    let mut cfg = node(prosody.addr(), &a);
    cfg.tls = XmppTls::Verify {
        ca_file: Some(stranger.cert_path()),
    };
    let err = refused(cfg).await;
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");

    // Plain TCP against a server that requires TLS does not log in either.
    let err = refused(node(prosody.addr(), &a)).await;
    assert!(err.contains("no PLAIN login"), "{err}");
}

/// A SASL PLAIN login by hand (the transport only logs in as addresses); the server's answer.
fn raw_plain_login(server: SocketAddr, user: &str, password: &str) -> String {
    use base64::Engine as _;
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let header = format!(
        "<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' \
         xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    );
    s.write_all(header.as_bytes()).unwrap();
    read_until(&mut s, "</stream:features>");
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    s.write_all(
        format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>")
            .as_bytes(),
    )
    .unwrap();
    read_until(&mut s, "</failure>")
}

fn read_until(s: &mut TcpStream, end: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(end) {
        let n = s.read(&mut buf).expect("server answers");
        assert!(n > 0, "server closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A TCP relay in front of the server that records every byte crossing it, both ways.
struct Relay {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, log.clone()));
                tokio::spawn(pump(sr, cw, log.clone()));
            }
        });
        Relay { addr, seen }
    }

    fn bytes(&self) -> Vec<u8> {
        self.seen.lock().unwrap().clone()
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16384];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                log.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
