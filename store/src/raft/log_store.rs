//! The raft log on RocksDB, with group commit.
//!
//! `append` writes entries to RocksDB without waiting for the disk and hands
//! openraft's completion callback to a dedicated syncer thread. The syncer
//! takes every callback queued so far, makes the WAL durable with one
//! `fsync`, then completes them all, so an entry is never reported persisted
//! before it is. (openraft 0.9's core awaits each append's completion before
//! the next append, so today the syncer sees one append at a time; the
//! batching has to happen above raft, by putting many transactions in one
//! entry.)

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::mpsc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogId, RaftLogReader, StorageIOError};
use rocksdb::{WriteBatch, WriteOptions};

use crate::codec::{self, decode_log_key, log_key};
use crate::db::{CF_LOG, Db, meta};
use crate::error::Error;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// The raft log of one node. Cheap to clone; clones share the database and syncer.
#[derive(Clone, Debug)]
pub struct LogStore {
    // Declared before `db`, so the syncer thread is joined before this
    // store lets go of the database.
    syncer: Arc<Syncer>,
    db: Arc<Db>,
}

/// The syncer thread and its queue. Dropping it (with the last
/// [`LogStore`]) closes the queue and waits for the thread, so the thread
/// never outlives the log and never holds the database once the log is
/// gone.
#[derive(Debug)]
struct Syncer {
    queue: Option<mpsc::Sender<LogFlushed<TypeConfig>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // Waits for at most the fsync in progress.
            let _ = thread.join();
        }
    }
}

impl LogStore {
    pub(crate) fn new(db: Arc<Db>) -> std::io::Result<LogStore> {
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        // A weak handle: the database closes where the store's last user
        // lets go of it, not later on this thread (a database still open
        // while the process exits makes RocksDB abort).
        let sync_db = Arc::downgrade(&db);
        let thread = std::thread::Builder::new()
            .name("skiff-store-fsync".into())
            .spawn(move || sync_loop(&sync_db, rx))?;
        let syncer = Arc::new(Syncer {
            queue: Some(tx),
            thread: Some(thread),
        });
        Ok(LogStore { syncer, db })
    }
}

/// Completes append callbacks in batches, one WAL fsync per batch.
fn sync_loop(db: &std::sync::Weak<Db>, rx: mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        let result = match db.upgrade() {
            Some(db) => db.raw().flush_wal(true).map_err(|e| e.to_string()),
            None => Err("the store is closed".to_string()),
        };
        for callback in waiting {
            callback.log_io_completed(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.clone())),
            });
        }
    }
}

fn read_err(e: Error) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl Into<Error>) -> StorageError {
    StorageIOError::write_logs(&e.into()).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let cf = self.db.cf(CF_LOG).map_err(read_err)?;
        let mut it = self.db.raw().raw_iterator_cf(cf);
        it.seek(log_key(start));
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let index = decode_log_key(k).map_err(read_err)?;
            if !range.contains(&index) {
                break;
            }
            out.push(codec::decode::<Entry>("raft log entry", v).map_err(read_err)?);
            it.next();
        }
        it.status().map_err(|e| read_err(e.into()))?;
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.db.get_meta(meta::LAST_PURGED).map_err(read_err)?;
        let cf = self.db.cf(CF_LOG).map_err(read_err)?;
        let mut it = self.db.raw().raw_iterator_cf(cf);
        it.seek_to_last();
        let last = match it.value() {
            Some(raw) => Some(
                *codec::decode::<Entry>("raft log entry", raw)
                    .map_err(read_err)?
                    .get_log_id(),
            ),
            None => last_purged,
        };
        it.status().map_err(|e| read_err(e.into()))?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.db
            .put_meta(&mut batch, meta::VOTE, vote)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db
            .raw()
            .write_opt(batch, &opts)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.db
            .get_meta(meta::VOTE)
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.db
            .put_meta(&mut batch, meta::COMMITTED, &committed)
            .map_err(write_err)?;
        self.db.raw().write(batch).map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .db
            .get_meta::<Option<LogId>>(meta::COMMITTED)
            .map_err(read_err)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let cf = self.db.cf(CF_LOG).map_err(write_err)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            let raw = codec::encode(&entry).map_err(write_err)?;
            batch.put_cf(cf, log_key(entry.get_log_id().index), raw);
        }
        self.db.raw().write(batch).map_err(write_err)?;
        // Readable now; durable once the syncer's fsync returns.
        match &self.syncer.queue {
            Some(queue) => queue.send(callback).map_err(|_| write_err(Error::Shutdown)),
            None => Err(write_err(Error::Shutdown)),
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let cf = self.db.cf(CF_LOG).map_err(write_err)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, log_key(log_id.index), log_key(u64::MAX));
        batch.delete_cf(cf, log_key(u64::MAX));
        self.db.raw().write(batch).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let cf = self.db.cf(CF_LOG).map_err(write_err)?;
        let mut batch = WriteBatch::default();
        self.db
            .put_meta(&mut batch, meta::LAST_PURGED, &log_id)
            .map_err(write_err)?;
        batch.delete_range_cf(cf, log_key(0), log_key(log_id.index + 1));
        self.db.raw().write(batch).map_err(write_err)
    }
}
