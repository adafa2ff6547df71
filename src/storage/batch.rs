//! [`CommitBatch`]: what one durable commit writes. The shell feeds several inputs to the
//! core, adds each step's notifications here, sets the final state once, and commits once
//! (group commit: one fsync for many transitions).

use super::StorageError;
use super::history::{RecordUpdate, records_from};
use crate::core::{NodeState, Notification, Output};
use crate::primitives::{Address, BlockNumber};

/// Changes to write atomically and durably with [`super::Store::commit`].
#[derive(Debug, Default)]
pub struct CommitBatch {
    /// The owner and the serialized snapshot.
    pub(super) state: Option<(Address, Vec<u8>)>,
    pub(super) records: Vec<RecordUpdate>,
    pub(super) chain_block: Option<BlockNumber>,
    /// Written without fsync when set (see [`CommitBatch::set_synced`]).
    pub(super) unsynced: bool,
}

impl CommitBatch {
    /// An empty batch.
    pub fn new() -> CommitBatch {
        CommitBatch::default()
    }

    /// Snapshots `state` now (serialized at once, so the core may go on changing it); a later
    /// call replaces an earlier one. Call it after the last step of the group.
    pub fn set_state(&mut self, state: &NodeState) -> Result<(), StorageError> {
        let bytes = rmp_serde::to_vec(state).map_err(|e| StorageError::Encode {
            what: "node state",
            detail: e.to_string(),
        })?;
        self.state = Some((state.our_address, bytes));
        Ok(())
    }

    /// The serialized snapshot set by [`CommitBatch::set_state`].
    pub fn state_bytes(&self) -> Option<&[u8]> {
        self.state.as_ref().map(|(_, b)| b.as_slice())
    }

    /// Whether [`super::Store::commit`] fsyncs before returning (the default). Without, the
    /// batch is still written atomically and in order (it survives a crash of the process and
    /// becomes durable with the next synced commit) but a power cut may lose it.
    pub fn set_synced(&mut self, synced: bool) {
        self.unsynced = !synced;
    }

    /// Adds one history change.
    pub fn record(&mut self, update: RecordUpdate) {
        self.records.push(update);
    }

    /// Adds the history changes implied by one step's notifications (see
    /// [`super::records_from`]).
    pub fn record_notifications<'a>(
        &mut self,
        notifications: impl IntoIterator<Item = &'a Notification>,
        now_ms: u64,
    ) {
        self.records.extend(records_from(notifications, now_ms));
    }

    /// Adds the history changes implied by the notifications among one step's outputs.
    pub fn record_outputs(&mut self, outputs: &[Output], now_ms: u64) {
        self.record_notifications(
            outputs.iter().filter_map(|o| match o {
                Output::Event(n) => Some(n),
                _ => None,
            }),
            now_ms,
        );
    }

    /// Records the last chain block whose logs the shell has fed to the core.
    pub fn set_chain_block(&mut self, block: BlockNumber) {
        self.chain_block = Some(block);
    }

    /// Whether committing this would write nothing.
    pub fn is_empty(&self) -> bool {
        self.state.is_none() && self.records.is_empty() && self.chain_block.is_none()
    }

    /// History changes added so far.
    pub fn records(&self) -> &[RecordUpdate] {
        &self.records
    }
}
