//! [`SigningContext`]: recoverable ECDSA signatures from a libsecp256k1 context of our own.
//!
//! The `secp256k1` crate signs with a thread-local context and re-blinds that context after
//! every signature, which costs a second scalar multiplication: about half of each
//! signature's time, and a node signs every message and every Ack. libsecp256k1 asks for a
//! context to be randomized once after creation (Bitcoin Core does exactly that); we do that,
//! and re-blind again every [`REBLIND_EVERY`] signatures for defence in depth. The signatures
//! are the same bytes either way: RFC 6979 nonces do not depend on the blinding.

use rand_core::RngCore;
use secp256k1::ecdsa::RecoverableSignature;
use secp256k1::ffi::CPtr;
use secp256k1::{Secp256k1, SecretKey, SignOnly};
use std::sync::Mutex;

/// Signatures between two re-blindings of the context.
pub const REBLIND_EVERY: u32 = 1024;

struct Blinded {
    ctx: Secp256k1<SignOnly>,
    until_reblind: u32,
}

/// A signing context, blinded with randomness from the operating system.
pub struct SigningContext(Mutex<Blinded>);

impl SigningContext {
    /// A fresh context, blinded at once.
    pub fn new() -> Self {
        let mut ctx = Secp256k1::signing_only();
        ctx.seeded_randomize(&os_seed());
        SigningContext(Mutex::new(Blinded {
            ctx,
            until_reblind: REBLIND_EVERY,
        }))
    }

    /// Signs a 32-byte digest with RFC 6979 nonces (low `s`, as libsecp256k1 always does).
    pub fn sign(&self, digest: &[u8; 32], key: &SecretKey) -> RecoverableSignature {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if guard.until_reblind == 0 {
            guard.ctx.seeded_randomize(&os_seed());
            guard.until_reblind = REBLIND_EVERY;
        }
        guard.until_reblind -= 1;
        let mut sig = secp256k1::ffi::recovery::RecoverableSignature::new();
        // SAFETY: the context is a live signing context owned by this struct and used under
        // its lock; the message and key pointers are 32 readable bytes for the duration of the
        // call; `sig` is a writable 65-byte signature; a null nonce-data pointer is allowed.
        let ok = unsafe {
            secp256k1::ffi::recovery::secp256k1_ecdsa_sign_recoverable(
                guard.ctx.ctx().as_ptr(),
                &mut sig,
                digest.as_ptr(),
                key.as_c_ptr(),
                secp256k1::ffi::secp256k1_nonce_function_rfc6979,
                std::ptr::null(),
            )
        };
        // Fails only for an invalid key, which `SecretKey` rules out, or a nonce function
        // that gives up, which RFC 6979 never does.
        assert_eq!(ok, 1, "libsecp256k1 refused to sign with a valid key");
        RecoverableSignature::from(sig)
    }
}

impl Default for SigningContext {
    fn default() -> Self {
        Self::new()
    }
}

fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut seed);
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_exactly_as_the_crate_does_across_reblindings() {
        let ctx = SigningContext::new();
        let key = SecretKey::from_secret_bytes([0x42; 32]).unwrap();
        for i in 0..(2 * REBLIND_EVERY + 3) {
            let mut digest = [0u8; 32];
            digest[..4].copy_from_slice(&i.to_be_bytes());
            digest[31] = 0x5a;
            let ours = ctx.sign(&digest, &key);
            let theirs = RecoverableSignature::sign_ecdsa_recoverable(
                secp256k1::Message::from_digest(digest),
                &key,
            );
            assert_eq!(ours, theirs, "signature {i}");
        }
    }
}
