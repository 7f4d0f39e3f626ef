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
//!
//! The log is never purged on disk past the snapshot on disk. When a
//! follower is sent a snapshot, openraft asks for the log it covers to be
//! purged at once, while the state machine is still installing it; a
//! crash between the two left a node whose log was gone and whose state
//! was older, which could not start again (openraft refuses a purged log
//! past its snapshot), and whose acknowledged entries were lost. So
//! `purge` removes from disk no further than the snapshot recorded there;
//! the rest is purged for raft at once (hidden from every read) and on
//! disk by the install, in the same write as the new state
//! ([`stage_purge`]), or by a later purge. After a crash the node sees
//! the log on disk, which goes with its state.

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
use crate::metrics::Instruments;
use crate::raft::state_machine::snapshot_log_id;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// The raft log of one node. Cheap to clone; clones share the database and syncer.
#[derive(Clone, Debug)]
pub struct LogStore {
    // Declared before `db`, so the syncer thread is joined before this
    // store lets go of the database.
    syncer: Arc<Syncer>,
    db: Arc<Db>,
    /// How far raft has asked the log to be purged, when that is past what
    /// the disk could purge yet: entries up to it are not read.
    purged: Arc<std::sync::Mutex<Option<LogId>>>,
    instruments: Arc<Instruments>,
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
    pub(crate) fn new(db: Arc<Db>, instruments: Arc<Instruments>) -> std::io::Result<LogStore> {
        // The committed index as of the last run, until raft commits more.
        if let Ok(Some(Some(committed))) = db.get_meta::<Option<LogId>>(meta::COMMITTED) {
            instruments.committed(Some(committed.index));
        }
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        // A weak handle: the database closes where the store's last user
        // lets go of it, not later on this thread (a database still open
        // while the process exits makes RocksDB abort).
        let sync_db = Arc::downgrade(&db);
        let timed = instruments.clone();
        let thread = std::thread::Builder::new()
            .name("skiff-store-fsync".into())
            .spawn(move || sync_loop(&sync_db, rx, &timed))?;
        let syncer = Arc::new(Syncer {
            queue: Some(tx),
            thread: Some(thread),
        });
        Ok(LogStore {
            syncer,
            db,
            purged: Arc::default(),
            instruments,
        })
    }

    /// How far the log is purged: on disk, or further for raft.
    fn last_purged(&self) -> Result<Option<LogId>, Error> {
        let on_disk: Option<LogId> = self.db.get_meta(meta::LAST_PURGED)?;
        let asked = *self.purged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(std::cmp::max(on_disk, asked))
    }
}

/// Completes append callbacks in batches, one WAL fsync per batch, each
/// timed into `etcd_disk_wal_fsync_duration_seconds`.
fn sync_loop(db: &std::sync::Weak<Db>, rx: mpsc::Receiver<LogFlushed<TypeConfig>>, instruments: &Instruments) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        let result = match db.upgrade() {
            Some(db) => {
                let started = std::time::Instant::now();
                let synced = db.raw().flush_wal(true).map_err(|e| e.to_string());
                instruments.fsync.observe(started.elapsed().as_secs_f64());
                synced
            }
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

/// About how many bytes of entries one append RPC carries to a follower.
///
/// openraft gives an append RPC one heartbeat interval to be sent,
/// appended and fsynced by the follower, and answered; one that takes
/// longer is sent again, whole, and never gets through. So a follower
/// catching up is sent a run of entries of about this size at a time
/// (at least one entry, however large), not `max_payload_entries` of
/// them whatever their size.
pub(crate) const APPEND_BATCH_BYTES: usize = 256 << 10;

impl LogStore {
    /// The entries in `range`, in order, stopping after the first one that
    /// brings their encoded size to `budget` bytes.
    fn read_entries<RB: RangeBounds<u64>>(&self, range: RB, budget: usize) -> Result<Vec<Entry>, Error> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        // Purged entries still on disk are not there for raft.
        let first_kept = self.last_purged()?.map_or(0, |l| l.index + 1);
        let mut it = self.db.raw().raw_iterator_cf(self.db.cf(CF_LOG)?);
        it.seek(log_key(start.max(first_kept)));
        let mut out = Vec::new();
        let mut size = 0;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !range.contains(&decode_log_key(k)?) || size >= budget {
                break;
            }
            size += v.len();
            out.push(codec::decode::<Entry>("raft log entry", v)?);
            it.next();
        }
        it.status()?;
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(range, usize::MAX).map_err(read_err)
    }

    /// What replication sends next: see [`APPEND_BATCH_BYTES`].
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(start..end, APPEND_BATCH_BYTES).map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged = self.last_purged().map_err(read_err)?;
        let cf = self.db.cf(CF_LOG).map_err(read_err)?;
        let mut it = self.db.raw().raw_iterator_cf(cf);
        it.seek_to_last();
        let last = match it.value() {
            Some(raw) => std::cmp::max(
                Some(
                    *codec::decode::<Entry>("raft log entry", raw)
                        .map_err(read_err)?
                        .get_log_id(),
                ),
                last_purged,
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
        self.instruments.committed(committed.map(|l| l.index));
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
        {
            let mut purged = self.purged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *purged = std::cmp::max(*purged, Some(log_id));
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            let _guard = db.snapshot_lock();
            // On disk, not past the snapshot on disk (see the module's
            // doc); the rest, the install of that snapshot or a later
            // purge removes.
            let Some(snapshot) = snapshot_log_id(&db)? else {
                return Ok(());
            };
            let mut batch = WriteBatch::default();
            if stage_purge(&db, &mut batch, std::cmp::min(snapshot, log_id))? {
                db.raw().write(batch)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| write_err(Error::raft(e)))?
        .map_err(write_err)
    }
}

/// Stages, in `batch`, purging the log up to and including `upto`, unless
/// it is purged that far already; whether there was anything to stage.
/// The caller holds [`Db::snapshot_lock`] until the batch is written.
pub(crate) fn stage_purge(db: &Db, batch: &mut WriteBatch, upto: LogId) -> Result<bool, Error> {
    let purged: Option<LogId> = db.get_meta(meta::LAST_PURGED)?;
    if purged >= Some(upto) {
        return Ok(false);
    }
    db.put_meta(batch, meta::LAST_PURGED, &upto)?;
    batch.delete_range_cf(db.cf(CF_LOG)?, log_key(0), log_key(upto.index + 1));
    Ok(true)
}
