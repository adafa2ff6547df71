//! A testnet node's credentials on disk: a fresh key in a keystore, the keystore's password and
//! the node's XMPP password (files `keystore.json`, `password`, `xmpp-password`).

use std::path::Path;

use super::{TestnetError, io};
use crate::crypto::{PrivateKey, keystore};

/// scrypt cost of testnet keystores: fast to unlock, never for real funds.
const TESTNET_SCRYPT_LOG_N: u8 = 10;

/// What [`write_node_credentials`] made.
pub(super) struct NodeCredentials {
    /// The node's key.
    pub key: PrivateKey,
    /// Its XMPP password (to register with the server).
    pub xmpp_password: String,
}

/// Makes a fresh key and writes the node's credential files into `dir` (created if missing).
pub(super) fn write_node_credentials(dir: &Path) -> Result<NodeCredentials, TestnetError> {
    let key = PrivateKey::random(&mut rand_core::OsRng);
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let password = random_hex();
    let xmpp_password = random_hex();
    let files = [
        (
            "keystore.json",
            keystore::encrypt(&key, &password, TESTNET_SCRYPT_LOG_N, &mut rand_core::OsRng),
        ),
        ("password", password),
        ("xmpp-password", xmpp_password.clone()),
    ];
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content + "\n").map_err(io("writing", &path))?;
    }
    Ok(NodeCredentials { key, xmpp_password })
}

/// 128 random bits in hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    hex::encode(bytes)
}
