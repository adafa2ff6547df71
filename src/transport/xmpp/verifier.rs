//! `smartraiden xmpp-auth`: the verifier an XMPP server asks whether a login is a valid
//! key-bound password ([`super::auth`]).
//!
//! Two faces over one [`Verifier`]:
//! - ejabberd's `extauth` protocol on stdin/stdout: each request is a 2-byte big-endian length
//!   and `auth:User:Server:Password`, `isuser:User:Server`, `setpass:…`, `tryregister:…`,
//!   `removeuser:…`, `removeuser3:…`; each answer is `\0\2\0\1` (yes) or `\0\2\0\0` (no).
//!   `isuser` answers yes for every well-formed address, so a message to a node that never
//!   logged in waits offline instead of bouncing; everything that changes accounts is refused.
//! - a local HTTP endpoint for Prosody's `mod_auth_smartraiden` (xmpp-server-config/):
//!   `POST /auth` with the body `user \n server \n password` answers 200 `ok` or 403 with the
//!   reason, so the server asks without blocking (an async HTTP call), and a verifier that is
//!   down shows as a refused login, not a hung server.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::auth::{LoginPolicy, LoginRefused, ReplayGuard, user_address};

/// The login checks with their replay memory; shared by every connection of one process.
#[derive(Debug, Default)]
pub struct Verifier {
    policy: LoginPolicy,
    guard: Mutex<ReplayGuard>,
}

impl Verifier {
    /// A verifier with `policy`.
    pub fn new(policy: LoginPolicy) -> Self {
        Verifier {
            policy,
            guard: Mutex::default(),
        }
    }

    /// Checks one login at `now_ms` (Unix ms).
    pub fn auth(
        &self,
        user: &str,
        server: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<(), LoginRefused> {
        let mut guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .check(user, server, password, now_ms, self.policy)
            .map(|_| ())
    }

    /// Answers one extauth request (without its length prefix); logs refusals.
    pub fn extauth_answer(&self, request: &str, now_ms: u64) -> bool {
        let mut parts = request.splitn(4, ':');
        let op = parts.next().unwrap_or("");
        let user = parts.next().unwrap_or("");
        let server = parts.next().unwrap_or("");
        match op {
            "auth" => {
                let password = parts.next().unwrap_or("");
                match self.auth(user, server, password, now_ms) {
                    Ok(()) => {
                        log::info!("xmpp-auth: login of {user}@{server} accepted");
                        true
                    }
                    Err(e) => {
                        log::warn!("xmpp-auth: login of {user}@{server} refused: {e}");
                        false
                    }
                }
            }
            "isuser" => user_address(user).is_some(),
            other => {
                log::warn!("xmpp-auth: {other:?} refused: accounts are the nodes' keys");
                false
            }
        }
    }
}

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Serves ejabberd's extauth protocol on `input`/`output` until `input` ends.
pub fn serve_extauth(
    verifier: &Verifier,
    mut input: impl Read,
    mut output: impl Write,
) -> io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut request = vec![0u8; u16::from_be_bytes(len) as usize];
        input.read_exact(&mut request)?;
        let yes = match std::str::from_utf8(&request) {
            Ok(text) => verifier.extauth_answer(text, unix_ms()),
            Err(_) => false,
        };
        output.write_all(&[0, 2, 0, u8::from(yes)])?;
        output.flush()?;
    }
}

/// Serves `POST /auth` (body `user\nserver\npassword`) on `listener` until the process ends.
pub async fn serve_http(
    verifier: Arc<Verifier>,
    listener: tokio::net::TcpListener,
) -> io::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/auth",
        post(move |body: String| {
            let verifier = verifier.clone();
            async move {
                let mut lines = body.splitn(3, '\n');
                let (user, server, password) = (
                    lines.next().unwrap_or(""),
                    lines.next().unwrap_or(""),
                    lines.next().unwrap_or(""),
                );
                match verifier.auth(user, server, password, unix_ms()) {
                    Ok(()) => {
                        log::info!("xmpp-auth: login of {user}@{server} accepted");
                        (StatusCode::OK, "ok".to_string())
                    }
                    Err(e) => {
                        log::warn!("xmpp-auth: login of {user}@{server} refused: {e}");
                        (StatusCode::FORBIDDEN, e.to_string())
                    }
                }
            }
        }),
    );
    axum::serve(listener, app).await
}

/// Binds the HTTP verifier's address (a port the Prosody module is configured with).
pub async fn bind_http(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::super::auth::login_password;
    use super::*;
    use crate::crypto::PrivateKey;

    fn frame(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn extauth_answers_each_request_with_a_four_byte_yes_or_no() {
        let key = PrivateKey::from_bytes([7; 32]).unwrap();
        let user = key.address().to_lower_hex();
        let now = unix_ms();
        let good = login_password(&key, "xmpp-a.test", now);
        let other = login_password(
            &PrivateKey::from_bytes([8; 32]).unwrap(),
            "xmpp-a.test",
            now,
        );
        let mut input = Vec::new();
        for req in [
            format!("auth:{user}:xmpp-a.test:{good}"),
            format!("auth:{user}:xmpp-a.test:{good}"), // replayed
            format!("auth:{user}:xmpp-a.test:{other}"),
            format!("isuser:{user}:xmpp-a.test"),
            "isuser:alice:xmpp-a.test".to_string(),
            format!("setpass:{user}:xmpp-a.test:x"),
            format!("tryregister:{user}:xmpp-a.test:x"),
            format!("removeuser:{user}:xmpp-a.test"),
        ] {
            input.extend(frame(&req));
        }
        let mut out = Vec::new();
        serve_extauth(&Verifier::default(), &input[..], &mut out).unwrap();
        let answers: Vec<u8> = out
            .chunks(4)
            .map(|c| {
                assert_eq!(&c[..3], &[0, 2, 0]);
                c[3]
            })
            .collect();
        assert_eq!(answers, vec![1, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn a_password_with_colons_reaches_the_check_whole() {
        // extauth splits on the first three colons only: the password is the rest.
        let v = Verifier::default();
        let user = PrivateKey::from_bytes([7; 32])
            .unwrap()
            .address()
            .to_lower_hex();
        assert!(!v.extauth_answer(&format!("auth:{user}:d:a:b:c"), unix_ms()));
        assert!(!v.extauth_answer("garbage", unix_ms()));
    }
}
