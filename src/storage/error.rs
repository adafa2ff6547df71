//! [`StorageError`]: everything that can go wrong opening, reading or committing the store.

use crate::primitives::{Address, H256};
use std::path::PathBuf;

/// Why a storage operation failed. A failed [`super::Store::commit`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Another process (or another `Store` in this one) holds the directory.
    #[error("data directory {dir} is in use by another smartraiden process")]
    InUse {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory was created for another account.
    #[error("data directory {dir} belongs to account {stored}, not to {requested}")]
    ForeignDataDir {
        /// The directory.
        dir: PathBuf,
        /// The account recorded at its first open.
        stored: Address,
        /// The account that tried to open it.
        requested: Address,
    },
    /// A batch carried the state of another account than the store's.
    #[error("refusing to commit the state of account {state} into the store of {store}")]
    ForeignState {
        /// The state's account.
        state: Address,
        /// The store's account.
        store: Address,
    },
    /// The directory was written by a build with another storage format.
    #[error("data directory {dir} has storage format {found}; this build reads format {expected}")]
    UnsupportedFormat {
        /// The directory.
        dir: PathBuf,
        /// The format found.
        found: u32,
        /// The format this build reads and writes.
        expected: u32,
    },
    /// A stored value does not decode.
    #[error("corrupt {what} in data directory {dir}: {detail}")]
    Corrupt {
        /// The directory.
        dir: PathBuf,
        /// Which value.
        what: String,
        /// The decoder's complaint.
        detail: String,
    },
    /// A history update names a transfer that has no record.
    #[error("transfer {0} has no history record to update")]
    UnknownTransfer(H256),
    /// A history record for this transfer already exists.
    #[error("transfer {0} already has a history record")]
    DuplicateTransfer(H256),
    /// A history update would rewrite an outcome already recorded.
    #[error("transfer {id} already ended as {recorded:?}; refusing to record it as {new:?}")]
    OutcomeChanged {
        /// The transfer.
        id: H256,
        /// The recorded final status.
        recorded: super::TransferStatus,
        /// The status the update asked for.
        new: super::TransferStatus,
    },
    /// A value could not be serialized (a bug: every persisted type serializes).
    #[error("cannot serialize {what}: {detail}")]
    Encode {
        /// Which value.
        what: &'static str,
        /// The encoder's complaint.
        detail: String,
    },
    /// The data directory or its lock file could not be created or opened.
    #[error("data directory {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// RocksDB failed (disk full, I/O error…).
    #[error("RocksDB in {dir}: {source}")]
    Db {
        /// The directory.
        dir: PathBuf,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
}
