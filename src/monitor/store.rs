//! The service's RocksDB: one key per watched channel, one per secret registration of a watched
//! lock, and the chain cursor. A block's changes and the cursor past it are written in one
//! synced batch, so a restart resumes exactly after the last block whose decisions are durable.

use super::decide::{Changes, Watch};
use crate::chain::FollowerProgress;
use crate::primitives::{BlockNumber, H256, SecretHash};
use rocksdb::{DB, IteratorMode, Options, WriteBatch, WriteOptions};
use std::collections::BTreeMap;
use std::path::Path;

const CURSOR: &[u8] = b"cursor";
const WATCH: &[u8] = b"w/";
const SECRET: &[u8] = b"s/";

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed.
    #[error("monitor store: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored value does not decode.
    #[error("monitor store: undecodable {0}")]
    Corrupt(String),
}

/// What a restart reads back.
pub struct Restored {
    /// Watched channels.
    pub watches: Vec<Watch>,
    /// Registrations of watched locks' secrets.
    pub registered: BTreeMap<SecretHash, BlockNumber>,
    /// Where the follower resumes (none: a fresh store).
    pub cursor: Option<FollowerProgress>,
}

/// The monitor's store.
pub struct MonitorStore {
    db: DB,
}

fn key(prefix: &[u8], h: &H256) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&h.0);
    k
}

impl MonitorStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<MonitorStore, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        Ok(MonitorStore {
            db: DB::open(&opts, dir)?,
        })
    }

    /// Everything persisted.
    pub fn restore(&self) -> Result<Restored, StoreError> {
        let mut watches = Vec::new();
        let mut registered = BTreeMap::new();
        for item in self.db.iterator(IteratorMode::Start) {
            let (k, v) = item?;
            if let Some(rest) = k.strip_prefix(WATCH) {
                let w: Watch = rmp_serde::from_slice(&v).map_err(|e| {
                    StoreError::Corrupt(format!("watch {}: {e}", hex::encode(rest)))
                })?;
                watches.push(w);
            } else if let Some(rest) = k.strip_prefix(SECRET) {
                let h: [u8; 32] = rest
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("secret key".into()))?;
                let b: [u8; 8] = v[..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("secret block".into()))?;
                registered.insert(SecretHash(H256(h)), BlockNumber(u64::from_be_bytes(b)));
            }
        }
        let cursor = match self.db.get(CURSOR)? {
            Some(v) => Some(
                rmp_serde::from_slice(&v)
                    .map_err(|e| StoreError::Corrupt(format!("cursor: {e}")))?,
            ),
            None => None,
        };
        Ok(Restored {
            watches,
            registered,
            cursor,
        })
    }

    /// Writes `changes` and, when given, the cursor, in one synced batch.
    pub fn commit(
        &self,
        changes: &Changes,
        cursor: Option<&FollowerProgress>,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (channel, watch) in &changes.watches {
            let k = key(WATCH, &channel.0);
            match watch {
                Some(w) => batch.put(
                    k,
                    rmp_serde::to_vec_named(w).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ),
                None => batch.delete(k),
            }
        }
        for (h, b) in &changes.secrets {
            match b {
                Some(b) => batch.put(key(SECRET, &h.0), b.0.to_be_bytes()),
                None => batch.delete(key(SECRET, &h.0)),
            }
        }
        if let Some(c) = cursor {
            batch.put(
                CURSOR,
                rmp_serde::to_vec_named(c).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            );
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }
}
