//! Durable node storage in RocksDB (SPEC §5). The shell feeds a group of inputs to the core,
//! collects the resulting state and history into one [`CommitBatch`], commits it with one
//! fsync'd `WriteBatch`, and only then sends messages, submits transactions and answers the
//! user (persist, then send). On restart, [`Store::load`] gives the last committed
//! `NodeState`; `Core::restore` and `Core::resend_pending` resume from it.

mod batch;
mod error;
mod history;
mod keys;
mod store;

pub use batch::CommitBatch;
pub use error::StorageError;
pub use history::{Direction, RecordUpdate, TransferRecord, TransferStatus, records_from};
pub use keys::{ALL_CFS, FORMAT};
pub use store::Store;
