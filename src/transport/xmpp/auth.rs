//! Key-bound XMPP logins (SPEC §4): the password is a signature by the node's key, so only the
//! key's holder can log in as `<address>@domain`, and it expires, so a captured one soon stops
//! working.
//!
//! Password: `sr1.<issued_at_ms>.<130 hex digits of r ‖ s ‖ v>` where the signature is
//! EIP-191 over `"smartraiden-xmpp-login-v1" ‖ 0x00 ‖ "<user>@<domain>" ‖ 0x00 ‖
//! issued_at_ms (u64 big-endian)`. The verifier (the XMPP server's side, `smartraiden
//! xmpp-auth`) accepts it when the user name is 40 lowercase hex digits, the signer recovered
//! from the signature is that address, the domain is the server's own, `issued_at` is at most
//! [`LoginPolicy::validity`] old and at most [`LoginPolicy::max_future`] ahead (clock skew), and
//! — with a [`ReplayGuard`] — it is newer than the last password accepted for that user.
//!
//! Everything here is pure: time comes in as an argument.

use std::collections::HashMap;

use crate::crypto::{PrivateKey, recover_eip191};
use crate::primitives::{Address, Signature};

/// Domain separation: this signature can be nothing but an XMPP login.
const LOGIN_TAG: &[u8] = b"smartraiden-xmpp-login-v1";
/// Prefix and version of the password format.
const PASSWORD_PREFIX: &str = "sr1";

/// How old (and how far ahead) a password may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Oldest accepted `issued_at`, in ms before now.
    pub validity_ms: u64,
    /// Furthest accepted `issued_at`, in ms after now (the node's clock runs ahead).
    pub max_future_ms: u64,
}

impl Default for LoginPolicy {
    /// Five minutes old, one minute ahead: a node makes a fresh password for every login, so
    /// the window only has to absorb clock skew and a slow login.
    fn default() -> Self {
        LoginPolicy {
            validity_ms: 5 * 60 * 1000,
            max_future_ms: 60 * 1000,
        }
    }
}

/// Why the verifier refused a login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginRefused {
    /// The user name is not 40 lowercase hex digits.
    #[error("user name {0:?} is not a node address (40 lowercase hex digits)")]
    MalformedUser(String),
    /// The password is not `sr1.<ms>.<signature>`.
    #[error("password is not a key-bound login ({0})")]
    MalformedPassword(&'static str),
    /// The signature does not recover to any key.
    #[error("login signature is invalid: {0}")]
    BadSignature(String),
    /// The password was signed by another key.
    #[error("login signed by {signer}, not by {user}")]
    WrongSigner {
        /// The address the signature recovers to.
        signer: String,
        /// The user name.
        user: String,
    },
    /// The password is too old (a stored or captured one).
    #[error("login password expired ({age_ms} ms old, at most {validity_ms} ms allowed)")]
    Expired {
        /// Its age.
        age_ms: u64,
        /// The policy's limit.
        validity_ms: u64,
    },
    /// The password claims a time too far ahead of the verifier's clock.
    #[error("login password is {ahead_ms} ms in the future (clock skew?)")]
    FromTheFuture {
        /// How far ahead.
        ahead_ms: u64,
    },
    /// The password is not newer than one already accepted for this user (a replay).
    #[error("login password replayed (not newer than the last accepted login)")]
    Replayed,
}

/// The address a user name stands for, if it is 40 lowercase hex digits.
pub fn user_address(user: &str) -> Option<Address> {
    let well_formed = user.len() == 40
        && user
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return None;
    }
    user.parse().ok()
}

/// The bytes a login signature covers.
fn login_data(user: &str, domain: &str, issued_at_ms: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(LOGIN_TAG.len() + user.len() + domain.len() + 11);
    data.extend_from_slice(LOGIN_TAG);
    data.push(0);
    data.extend_from_slice(user.as_bytes());
    data.push(b'@');
    data.extend_from_slice(domain.as_bytes());
    data.push(0);
    data.extend_from_slice(&issued_at_ms.to_be_bytes());
    data
}

/// A fresh key-bound password for `key` logging in on `domain` at `now_ms` (Unix ms).
pub fn login_password(key: &PrivateKey, domain: &str, now_ms: u64) -> String {
    let user = key.address().to_lower_hex();
    let sig = key.sign_eip191(&login_data(&user, &domain.to_ascii_lowercase(), now_ms));
    format!("{PASSWORD_PREFIX}.{now_ms}.{}", hex::encode(sig.0))
}

/// Checks a login without replay state; the login's `issued_at_ms` and address on success.
pub fn verify_login(
    user: &str,
    domain: &str,
    password: &str,
    now_ms: u64,
    policy: LoginPolicy,
) -> Result<(Address, u64), LoginRefused> {
    let address = user_address(user).ok_or_else(|| LoginRefused::MalformedUser(user.into()))?;
    let mut parts = password.splitn(3, '.');
    if parts.next() != Some(PASSWORD_PREFIX) {
        return Err(LoginRefused::MalformedPassword("no sr1 prefix"));
    }
    let issued_at_ms: u64 = parts
        .next()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .ok_or(LoginRefused::MalformedPassword("bad time"))?;
    let sig_hex = parts
        .next()
        .ok_or(LoginRefused::MalformedPassword("no signature"))?;
    let mut sig = [0u8; 65];
    if sig_hex.len() != 130 || hex::decode_to_slice(sig_hex, &mut sig).is_err() {
        return Err(LoginRefused::MalformedPassword(
            "signature is not 65 bytes of hex",
        ));
    }
    if issued_at_ms > now_ms.saturating_add(policy.max_future_ms) {
        return Err(LoginRefused::FromTheFuture {
            ahead_ms: issued_at_ms - now_ms,
        });
    }
    let age_ms = now_ms.saturating_sub(issued_at_ms);
    if age_ms > policy.validity_ms {
        return Err(LoginRefused::Expired {
            age_ms,
            validity_ms: policy.validity_ms,
        });
    }
    let data = login_data(user, &domain.to_ascii_lowercase(), issued_at_ms);
    let signer = recover_eip191(&data, &Signature(sig))
        .map_err(|e| LoginRefused::BadSignature(e.to_string()))?;
    if signer != address {
        return Err(LoginRefused::WrongSigner {
            signer: signer.to_lower_hex(),
            user: user.into(),
        });
    }
    Ok((address, issued_at_ms))
}

/// Remembers the newest accepted login per user so a password works at most once: a node
/// makes a fresh one for every login. Entries older than the validity are forgotten (those
/// passwords are expired anyway), so memory stays bounded by the logins of one window.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    newest: HashMap<Address, u64>,
}

impl ReplayGuard {
    /// Verifies a login and, if it is valid and new, records it.
    pub fn check(
        &mut self,
        user: &str,
        domain: &str,
        password: &str,
        now_ms: u64,
        policy: LoginPolicy,
    ) -> Result<Address, LoginRefused> {
        let (address, issued_at) = verify_login(user, domain, password, now_ms, policy)?;
        if self.newest.get(&address).is_some_and(|n| issued_at <= *n) {
            return Err(LoginRefused::Replayed);
        }
        let horizon = now_ms.saturating_sub(policy.validity_ms);
        if self.newest.len() > 1024 {
            self.newest.retain(|_, t| *t >= horizon);
        }
        self.newest.insert(address, issued_at);
        Ok(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn key(n: u8) -> PrivateKey {
        PrivateKey::from_bytes([n; 32]).unwrap()
    }

    fn user(k: &PrivateKey) -> String {
        k.address().to_lower_hex()
    }

    fn policy() -> LoginPolicy {
        LoginPolicy::default()
    }

    #[test]
    fn the_keys_own_fresh_password_logs_in() {
        let k = key(1);
        let pw = login_password(&k, "xmpp-a.test", NOW);
        assert!(pw.starts_with("sr1."));
        assert_eq!(
            verify_login(&user(&k), "xmpp-a.test", &pw, NOW + 10, policy()),
            Ok((k.address(), NOW))
        );
        // Domains compare case-insensitively, as JIDs do.
        assert!(verify_login(&user(&k), "XMPP-A.test", &pw, NOW, policy()).is_ok());
    }

    #[test]
    fn another_keys_signature_is_refused() {
        let (k, other) = (key(1), key(2));
        let pw = login_password(&other, "d", NOW);
        assert!(matches!(
            verify_login(&user(&k), "d", &pw, NOW, policy()),
            Err(LoginRefused::WrongSigner { .. })
        ));
    }

    #[test]
    fn a_password_for_another_server_is_refused() {
        let k = key(1);
        let pw = login_password(&k, "xmpp-a.test", NOW);
        assert!(matches!(
            verify_login(&user(&k), "xmpp-b.test", &pw, NOW, policy()),
            Err(LoginRefused::WrongSigner { .. })
        ));
    }

    #[test]
    fn an_old_password_expires_and_one_from_the_future_is_refused() {
        let k = key(1);
        let pw = login_password(&k, "d", NOW);
        let p = policy();
        assert!(verify_login(&user(&k), "d", &pw, NOW + p.validity_ms, p).is_ok());
        assert!(matches!(
            verify_login(&user(&k), "d", &pw, NOW + p.validity_ms + 1, p),
            Err(LoginRefused::Expired { .. })
        ));
        assert!(verify_login(&user(&k), "d", &pw, NOW - p.max_future_ms, p).is_ok());
        assert!(matches!(
            verify_login(&user(&k), "d", &pw, NOW - p.max_future_ms - 1, p),
            Err(LoginRefused::FromTheFuture { .. })
        ));
    }

    #[test]
    fn malformed_user_names_are_refused_before_anything_else() {
        let k = key(1);
        let pw = login_password(&k, "d", NOW);
        let upper = user(&k).to_ascii_uppercase();
        for bad in [
            "",
            "alice",
            &upper,
            &format!("{}0", user(&k)),
            &user(&k)[1..],
        ] {
            assert!(
                matches!(
                    verify_login(bad, "d", &pw, NOW, policy()),
                    Err(LoginRefused::MalformedUser(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(user_address(&user(&k)), Some(k.address()));
    }

    #[test]
    fn malformed_passwords_are_refused() {
        let k = key(1);
        let u = user(&k);
        let good = login_password(&k, "d", NOW);
        let tampered_time = good.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert!(matches!(
            verify_login(&u, "d", &tampered_time, NOW, policy()),
            Err(LoginRefused::WrongSigner { .. } | LoginRefused::BadSignature(_))
        ));
        for bad in [
            "",
            "secret",
            "sr1..00",
            "sr1.12x.00",
            &format!("sr1.{NOW}.abcd"),
            &format!("sr2{}", &good[3..]),
            &format!("{good}00"),
        ] {
            assert!(
                matches!(
                    verify_login(&u, "d", bad, NOW, policy()),
                    Err(LoginRefused::MalformedPassword(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_replay_guard_accepts_each_password_once_and_only_newer_ones() {
        let k = key(1);
        let u = user(&k);
        let mut guard = ReplayGuard::default();
        let first = login_password(&k, "d", NOW);
        let second = login_password(&k, "d", NOW + 1);
        assert_eq!(guard.check(&u, "d", &first, NOW, policy()), Ok(k.address()));
        assert_eq!(
            guard.check(&u, "d", &first, NOW + 5, policy()),
            Err(LoginRefused::Replayed)
        );
        assert!(guard.check(&u, "d", &second, NOW + 5, policy()).is_ok());
        assert_eq!(
            guard.check(&u, "d", &first, NOW + 6, policy()),
            Err(LoginRefused::Replayed)
        );
        // Another user's logins are independent.
        let other = key(2);
        let pw = login_password(&other, "d", NOW);
        assert!(guard.check(&user(&other), "d", &pw, NOW, policy()).is_ok());
    }
}
