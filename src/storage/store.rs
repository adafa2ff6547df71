//! [`Store`]: the RocksDB database of one node, held exclusively by one process.

use super::history::{Direction, RecordUpdate, TransferRecord};
use super::keys::{
    self, ALL_CFS, CF_META, CF_SECRETS, CF_STATE, CF_TRANSFER_INDEX, CF_TRANSFERS, FORMAT,
};
use super::{CommitBatch, StorageError};
use crate::core::NodeState;
use crate::primitives::{Address, BlockNumber, H256};
use rocksdb::{ColumnFamily, DB, IteratorMode, Options, WriteBatch, WriteOptions};
use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Our own advisory lock file beside RocksDB's: taking it first lets a second process get a
/// clear "in use" error instead of RocksDB's low-level one.
const LOCK_FILE: &str = "smartraiden.lock";

/// Memory for all memtables together.
const MEMTABLE_BUDGET: usize = 16 << 20;

/// One node's durable storage.
pub struct Store {
    // Field order matters: `db` is dropped (closed) before `_lock` releases the directory.
    db: DB,
    dir: PathBuf,
    address: Address,
    /// The next history sequence number; holding it also serializes commits, so sequence
    /// numbers and read-modify-write of records never race.
    next_seq: Mutex<u64>,
    _lock: File,
}

/// Options of every column family. They must be given per family: RocksDB opens a named
/// family with its defaults (64 MiB memtables, no filter) otherwise.
fn column_family_options() -> Options {
    let mut opts = Options::default();
    // Each new transfer first checks that its id is not in the history yet: a lookup of an
    // absent key, which without a filter reads a block of every table file that could
    // hold it. Bloom filters answer most such lookups from memory.
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    opts.set_block_based_table_factory(&table);
    opts
}

impl Store {
    /// Opens (creating if needed) the data directory `dir` for the account `address`.
    /// Refuses a directory held by another process or created for another account.
    pub fn open(dir: impl AsRef<Path>, address: Address) -> Result<Store, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |source| StorageError::Io {
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StorageError::InUse { dir }),
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // RocksDB's info logs would otherwise accumulate one file per open.
        opts.set_keep_log_file_num(4);
        // Every commit rewrites the few-KB snapshot key, so memtables fill with superseded
        // versions: RocksDB's defaults (64 MiB per family, two each) let a busy node grow by
        // hundreds of MiB. This bounds all memtables together; a flush keeps one version.
        opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        let cf_opts = column_family_options();
        let families = ALL_CFS
            .iter()
            .chain(std::iter::once(&rocksdb::DEFAULT_COLUMN_FAMILY_NAME))
            .map(|name| rocksdb::ColumnFamilyDescriptor::new(*name, cf_opts.clone()));
        let db = DB::open_cf_descriptors(&opts, &dir, families).map_err(|source| {
            // Our lock makes this unlikely, but a process that bypasses it still gets the
            // clear error when RocksDB refuses its own LOCK.
            let msg = source.to_string();
            if msg.contains("While lock file") || msg.contains("lock hold by current process") {
                StorageError::InUse { dir: dir.clone() }
            } else {
                StorageError::Db {
                    dir: dir.clone(),
                    source,
                }
            }
        })?;
        let mut store = Store {
            db,
            dir,
            address,
            next_seq: Mutex::new(0),
            _lock: lock,
        };
        store.check_or_init_meta()?;
        let next = match store.get(CF_META, keys::META_NEXT_SEQ)? {
            None => 0,
            Some(b) => keys::decode_u64(&b)
                .ok_or_else(|| store.corrupt("history sequence", "not 8 bytes"))?,
        };
        *store.next_seq.get_mut().expect("not shared yet") = next;
        log::info!("opened store {} for {}", store.dir.display(), address);
        Ok(store)
    }

    /// On first open records format and owner; afterwards insists on both.
    fn check_or_init_meta(&self) -> Result<(), StorageError> {
        let format = self.get(CF_META, keys::META_FORMAT)?;
        let owner = self.get(CF_META, keys::META_ADDRESS)?;
        match (format, owner) {
            (None, None) => {
                let mut wb = WriteBatch::default();
                wb.put_cf(self.cf(CF_META), keys::META_FORMAT, FORMAT.to_be_bytes());
                wb.put_cf(self.cf(CF_META), keys::META_ADDRESS, self.address.0);
                self.write_synced(wb)
            }
            (Some(f), Some(a)) => {
                let found = <[u8; 4]>::try_from(f.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| self.corrupt("storage format", "not 4 bytes"))?;
                if found != FORMAT {
                    return Err(StorageError::UnsupportedFormat {
                        dir: self.dir.clone(),
                        found,
                        expected: FORMAT,
                    });
                }
                let stored = <[u8; 20]>::try_from(a.as_slice())
                    .map(Address)
                    .map_err(|_| self.corrupt("owner address", "not 20 bytes"))?;
                if stored != self.address {
                    return Err(StorageError::ForeignDataDir {
                        dir: self.dir.clone(),
                        stored,
                        requested: self.address,
                    });
                }
                Ok(())
            }
            _ => Err(self.corrupt("metadata", "format and owner must both be present")),
        }
    }

    /// The account this store belongs to.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `batch` atomically with one fsync (unless the batch asks for none); when this
    /// returns `Ok`, everything in it survives a crash. On error nothing of it was written.
    pub fn commit(&self, batch: CommitBatch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut next_seq = self.next_seq.lock().unwrap_or_else(|p| p.into_inner());
        let mut wb = WriteBatch::default();
        if let Some((owner, bytes)) = &batch.state {
            if *owner != self.address {
                return Err(StorageError::ForeignState {
                    state: *owner,
                    store: self.address,
                });
            }
            wb.put_cf(self.cf(CF_STATE), keys::STATE_KEY, bytes);
        }
        if let Some(b) = batch.chain_block {
            wb.put_cf(self.cf(CF_META), keys::META_CHAIN_BLOCK, b.0.to_be_bytes());
        }
        let seq_after = self.stage_records(&batch.records, *next_seq, &mut wb)?;
        if seq_after != *next_seq {
            wb.put_cf(
                self.cf(CF_META),
                keys::META_NEXT_SEQ,
                seq_after.to_be_bytes(),
            );
        }
        if batch.unsynced {
            self.db.write(wb).map_err(|e| self.db_err(e))?;
        } else {
            self.write_synced(wb)?;
        }
        *next_seq = seq_after;
        Ok(())
    }

    /// Applies history updates in order into `wb` (reading only the records they touch) and
    /// returns the next sequence number after the records created.
    fn stage_records(
        &self,
        updates: &[RecordUpdate],
        mut seq: u64,
        wb: &mut WriteBatch,
    ) -> Result<u64, StorageError> {
        // Records touched by this batch, by id: their key, current value, and whether new.
        let mut touched: HashMap<H256, ([u8; keys::TRANSFER_KEY_LEN], TransferRecord, bool)> =
            HashMap::new();
        let mut order = Vec::new();
        for u in updates {
            match u {
                RecordUpdate::Create(r) => {
                    if touched.contains_key(&r.id) || self.transfer_key_of(&r.id)?.is_some() {
                        return Err(StorageError::DuplicateTransfer(r.id));
                    }
                    let key = keys::transfer_key(r.direction, seq);
                    seq += 1;
                    touched.insert(r.id, (key, r.clone(), true));
                    order.push(r.id);
                }
                RecordUpdate::Finish {
                    id,
                    status,
                    fee,
                    reason,
                    at_ms,
                } => {
                    if !touched.contains_key(id) {
                        let key = self
                            .transfer_key_of(id)?
                            .ok_or(StorageError::UnknownTransfer(*id))?;
                        let record = self.read_record(&key)?.ok_or_else(|| {
                            self.corrupt(
                                &format!("history of transfer {id}"),
                                "indexed but missing",
                            )
                        })?;
                        touched.insert(*id, (key, record, false));
                        order.push(*id);
                    }
                    let (_, record, _) = touched.get_mut(id).expect("just ensured");
                    RecordUpdate::finish(record, *status, *fee, reason.clone(), *at_ms)?;
                }
            }
        }
        for id in order {
            let (key, record, new) = &touched[&id];
            let bytes = rmp_serde::to_vec(record).map_err(|e| StorageError::Encode {
                what: "transfer record",
                detail: e.to_string(),
            })?;
            wb.put_cf(self.cf(CF_TRANSFERS), key, bytes);
            if *new {
                wb.put_cf(self.cf(CF_TRANSFER_INDEX), keys::index_key(&id), key);
            }
        }
        Ok(seq)
    }

    /// Records a secret registered on chain at `block` (idempotent; the first registration
    /// is the one the contract counts, and the follower delivers them in chain order).
    pub fn record_secret(
        &self,
        secret: crate::primitives::Secret,
        block: BlockNumber,
    ) -> Result<(), StorageError> {
        let key = secret.hash().0.0;
        if self.get(CF_SECRETS, &key)?.is_some() {
            return Ok(());
        }
        let mut value = Vec::with_capacity(40);
        value.extend_from_slice(&secret.0.0);
        value.extend_from_slice(&block.0.to_be_bytes());
        // Not synced: after a crash the follower reads the chain again from the core's last
        // block, and records it again.
        self.db
            .put_cf(self.cf(CF_SECRETS), key, value)
            .map_err(|e| self.db_err(e))
    }

    /// The secret registered on chain for `secrethash`, and the block of its registration.
    pub fn registered_secret(
        &self,
        secrethash: &crate::primitives::SecretHash,
    ) -> Result<Option<(crate::primitives::Secret, BlockNumber)>, StorageError> {
        let Some(v) = self.get(CF_SECRETS, &secrethash.0.0)? else {
            return Ok(None);
        };
        let (Ok(secret), Some(block)) = (
            <[u8; 32]>::try_from(&v[..v.len().min(32)]),
            v.get(32..).and_then(keys::decode_u64),
        ) else {
            return Err(self.corrupt("registered secret", "not 40 bytes"));
        };
        Ok(Some((
            crate::primitives::Secret(H256(secret)),
            BlockNumber(block),
        )))
    }

    /// The LAN peers the user gave, in the order given.
    pub fn lan_peers(&self) -> Result<Vec<(Address, std::net::SocketAddr)>, StorageError> {
        let Some(raw) = self.get(CF_META, keys::META_LAN_PEERS)? else {
            return Ok(Vec::new());
        };
        let mut peers = Vec::new();
        let mut rest = &raw[..];
        while let Some((&len, tail)) = rest.split_first() {
            let (entry, tail) = tail
                .split_at_checked(usize::from(len))
                .ok_or_else(|| self.corrupt("LAN peers", "truncated entry"))?;
            let (address, at) = entry
                .split_at_checked(20)
                .ok_or_else(|| self.corrupt("LAN peers", "entry shorter than an address"))?;
            let address = Address(address.try_into().expect("20 bytes"));
            let at = std::str::from_utf8(at)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.corrupt("LAN peers", "not ip:port"))?;
            peers.push((address, at));
            rest = tail;
        }
        Ok(peers)
    }

    /// Replaces the LAN peers the user gave (synced: the API answers after it).
    pub fn set_lan_peers(
        &self,
        peers: &[(Address, std::net::SocketAddr)],
    ) -> Result<(), StorageError> {
        let mut raw = Vec::new();
        for (address, at) in peers {
            let at = at.to_string();
            raw.push((20 + at.len()) as u8);
            raw.extend_from_slice(&address.0);
            raw.extend_from_slice(at.as_bytes());
        }
        let mut wb = WriteBatch::default();
        wb.put_cf(self.cf(CF_META), keys::META_LAN_PEERS, raw);
        self.write_synced(wb)
    }

    /// The last committed state, or `None` in a fresh directory.
    pub fn load(&self) -> Result<Option<NodeState>, StorageError> {
        let Some(bytes) = self.get(CF_STATE, keys::STATE_KEY)? else {
            return Ok(None);
        };
        let state: NodeState = rmp_serde::from_slice(&bytes)
            .map_err(|e| self.corrupt("node state snapshot", &e.to_string()))?;
        if state.our_address != self.address {
            return Err(self.corrupt(
                "node state snapshot",
                &format!(
                    "it belongs to {}, not to the owner {}",
                    state.our_address, self.address
                ),
            ));
        }
        Ok(Some(state))
    }

    /// The last chain block the shell recorded with [`CommitBatch::set_chain_block`].
    pub fn chain_block(&self) -> Result<Option<BlockNumber>, StorageError> {
        self.get(CF_META, keys::META_CHAIN_BLOCK)?
            .map(|b| {
                keys::decode_u64(&b)
                    .map(BlockNumber)
                    .ok_or_else(|| self.corrupt("chain block", "not 8 bytes"))
            })
            .transpose()
    }

    /// One transfer's history record.
    pub fn get_transfer(&self, id: &H256) -> Result<Option<TransferRecord>, StorageError> {
        match self.transfer_key_of(id)? {
            None => Ok(None),
            Some(key) => self.read_record(&key),
        }
    }

    /// Transfers we initiated, oldest first.
    pub fn sent_transfers(&self) -> Result<Vec<TransferRecord>, StorageError> {
        self.transfers(Direction::Sent)
    }

    /// Payments we received, oldest first.
    pub fn received_transfers(&self) -> Result<Vec<TransferRecord>, StorageError> {
        self.transfers(Direction::Received)
    }

    fn transfers(&self, direction: Direction) -> Result<Vec<TransferRecord>, StorageError> {
        let mut out = Vec::new();
        self.for_each_transfer(direction, |r| out.push(r))?;
        Ok(out)
    }

    /// Calls `f` with each transfer of `direction`, oldest first, holding one record at a
    /// time (a long history is listed without loading all of it).
    pub fn for_each_transfer(
        &self,
        direction: Direction,
        mut f: impl FnMut(TransferRecord),
    ) -> Result<(), StorageError> {
        let first = [keys::direction_byte(direction)];
        for item in self.db.iterator_cf(
            self.cf(CF_TRANSFERS),
            IteratorMode::From(&first, rocksdb::Direction::Forward),
        ) {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            if k.first() != Some(&first[0]) {
                break;
            }
            f(self.decode_record(&v)?);
        }
        Ok(())
    }

    fn transfer_key_of(
        &self,
        id: &H256,
    ) -> Result<Option<[u8; keys::TRANSFER_KEY_LEN]>, StorageError> {
        self.get(CF_TRANSFER_INDEX, &keys::index_key(id))?
            .map(|k| {
                <[u8; keys::TRANSFER_KEY_LEN]>::try_from(k.as_slice())
                    .map_err(|_| self.corrupt(&format!("index of transfer {id}"), "bad key length"))
            })
            .transpose()
    }

    fn read_record(&self, key: &[u8]) -> Result<Option<TransferRecord>, StorageError> {
        self.get(CF_TRANSFERS, key)?
            .map(|v| self.decode_record(&v))
            .transpose()
    }

    fn decode_record(&self, bytes: &[u8]) -> Result<TransferRecord, StorageError> {
        rmp_serde::from_slice(bytes).map_err(|e| self.corrupt("transfer record", &e.to_string()))
    }

    fn write_synced(&self, wb: WriteBatch) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        // The whole point: a commit that returned survives power loss, not just a crash.
        wo.set_sync(true);
        self.db.write_opt(wb, &wo).map_err(|e| self.db_err(e))
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get_cf(self.cf(cf), key).map_err(|e| self.db_err(e))
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        // Every family in ALL_CFS is created or opened by `open`.
        self.db.cf_handle(name).expect("column family opened")
    }

    fn corrupt(&self, what: &str, detail: &str) -> StorageError {
        StorageError::Corrupt {
            dir: self.dir.clone(),
            what: what.to_owned(),
            detail: detail.to_owned(),
        }
    }

    fn db_err(&self, source: rocksdb::Error) -> StorageError {
        StorageError::Db {
            dir: self.dir.clone(),
            source,
        }
    }
}
