//! The RocksDB adapter: one database per node holding both the raft log and
//! the MVCC state machine, so one WAL orders (and one fsync persists)
//! everything.
//!
//! Column families:
//!
//! | family    | key                                | value                         |
//! |-----------|------------------------------------|-------------------------------|
//! | `meta`    | fixed names (`log/vote`, `sm/revision`, …) | bincode                |
//! | `log`     | be64(index)                        | bincode raft entry            |
//! | `live`    | user key                           | [`Live`]: the latest version  |
//! | `history` | escaped user key ++ be64(!revision) | [`Version`]                  |
//! | `changes` | be64(revision) ++ be32(sub)        | user key                      |
//!
//! `live` serves reads at the latest revision, `history` reads at older
//! revisions, `changes` watch replay and compaction.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, DBRawIteratorWithThreadMode,
    Options, WriteBatch,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, change_key, decode_change_key, decode_history_key, history_key, history_prefix};
use crate::error::{Error, Result};
use crate::kv::{Event, EventKind, KeyRange, KeyValue, RangeRequest, RangeResponse, Revision};
use crate::mvcc::{Live, LiveState, Version, Write};

pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_LOG: &str = "log";
pub(crate) const CF_LIVE: &str = "live";
pub(crate) const CF_HISTORY: &str = "history";
pub(crate) const CF_CHANGES: &str = "changes";
const FAMILIES: [&str; 5] = [CF_META, CF_LOG, CF_LIVE, CF_HISTORY, CF_CHANGES];

/// The state-machine families, in the order snapshots carry them.
pub(crate) const SM_FAMILIES: [&str; 3] = [CF_LIVE, CF_HISTORY, CF_CHANGES];

const FORMAT_KEY: &[u8] = b"format";
const FORMAT: &[u8] = b"skiff-store/1";

pub(crate) mod meta {
    pub const VOTE: &[u8] = b"log/vote";
    pub const COMMITTED: &[u8] = b"log/committed";
    pub const LAST_PURGED: &[u8] = b"log/last_purged";
    pub const APPLIED: &[u8] = b"sm/applied";
    pub const MEMBERSHIP: &[u8] = b"sm/membership";
    pub const REVISION: &[u8] = b"sm/revision";
    pub const COMPACTED: &[u8] = b"sm/compacted";
    pub const SNAPSHOT: &[u8] = b"sm/snapshot";
}

type RawIter<'a> = DBRawIteratorWithThreadMode<'a, DB>;

/// An open store database.
pub(crate) struct Db {
    db: DB,
    path: PathBuf,
    /// Held while the snapshot record or the log's purge point changes:
    /// see [`Db::snapshot_lock`].
    snapshot_lock: std::sync::Mutex<()>,
    /// Dropped after `db` (fields drop in order), so its receivers learn
    /// that RocksDB has finished closing.
    closed: tokio::sync::watch::Sender<()>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database in `path`.
    pub(crate) fn open(path: &Path) -> Result<Db> {
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let fresh = !path.join("CURRENT").exists();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_bottommost_compression_type(DBCompressionType::Lz4);
        opts.set_keep_log_file_num(4);
        // Fail loudly on on-disk corruption rather than serving bad data.
        opts.set_paranoid_checks(true);
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        let cfs = FAMILIES.iter().map(|name| {
            let mut cf_opts = opts.clone();
            cf_opts.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(*name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|source| {
            let text = source.to_string();
            if text.contains("lock") || text.contains("Resource temporarily unavailable") {
                Error::DataDirLocked {
                    path: path.to_path_buf(),
                    source,
                }
            } else if text.contains("Corruption") || text.contains("No such file") {
                Error::corrupt(format!("store data in {}: {text}", path.display()))
            } else {
                Error::Rocks { source }
            }
        })?;
        let this = Db {
            db,
            path: path.to_path_buf(),
            snapshot_lock: std::sync::Mutex::new(()),
            closed: tokio::sync::watch::Sender::new(()),
        };
        match this.db.get_cf(this.cf(CF_META)?, FORMAT_KEY)? {
            Some(found) if found == FORMAT => {}
            Some(found) => {
                return Err(Error::corrupt(format!(
                    "store format in {}: found {:?}, this build reads {:?}",
                    path.display(),
                    String::from_utf8_lossy(&found),
                    String::from_utf8_lossy(FORMAT)
                )));
            }
            None if fresh => this.db.put_cf(this.cf(CF_META)?, FORMAT_KEY, FORMAT)?,
            None => {
                return Err(Error::corrupt(format!(
                    "{} holds a RocksDB database that is not a skiff store",
                    path.display()
                )));
            }
        }
        Ok(this)
    }

    /// Resolves once this database has been dropped and RocksDB has
    /// closed it.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut closed = self.closed.subscribe();
        async move { while closed.changed().await.is_ok() {} }
    }

    /// Serializes what reads and then changes the snapshot record
    /// (`sm/snapshot`), the files it names and the log's purge point
    /// (`log/last_purged`): a snapshot being built, one being installed
    /// and the log being purged run on different threads, and each must
    /// see the others' changes whole. Taken on blocking threads only.
    pub(crate) fn snapshot_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.snapshot_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn raw(&self) -> &DB {
        &self.db
    }

    pub(crate) fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::corrupt(format!("missing column family {name}")))
    }

    pub(crate) fn get_meta<T: DeserializeOwned>(&self, key: &'static [u8]) -> Result<Option<T>> {
        match self.db.get_pinned_cf(self.cf(CF_META)?, key)? {
            Some(raw) => Ok(Some(codec::decode(meta_name(key), &raw)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn put_meta<T: Serialize>(&self, batch: &mut WriteBatch, key: &[u8], value: &T) -> Result<()> {
        batch.put_cf(self.cf(CF_META)?, key, codec::encode(value)?);
        Ok(())
    }

    /// Adds the writes the MVCC core produced to `batch`.
    pub(crate) fn stage(&self, batch: &mut WriteBatch, writes: &[Write]) -> Result<()> {
        let (live, history, changes) = (self.cf(CF_LIVE)?, self.cf(CF_HISTORY)?, self.cf(CF_CHANGES)?);
        for write in writes {
            match write {
                Write::SetLive { key, live: record } => batch.put_cf(live, key, codec::encode(record)?),
                Write::ClearLive { key } => batch.delete_cf(live, key),
                Write::AddVersion { key, revision, version } => {
                    batch.put_cf(history, history_key(key, *revision), codec::encode(version)?)
                }
                Write::LogChange { revision, sub, key } => batch.put_cf(changes, change_key(*revision, *sub), key),
            }
        }
        Ok(())
    }

    /// The revision and compaction point, as of the latest write.
    pub(crate) fn revisions(&self) -> Result<(Revision, Revision)> {
        Ok((
            self.get_meta(meta::REVISION)?.unwrap_or(0),
            self.get_meta(meta::COMPACTED)?.unwrap_or(0),
        ))
    }

    /// Serves a range read from a consistent RocksDB snapshot.
    pub(crate) fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        req.range.validate().map_err(Error::invalid)?;
        let snap = self.db.snapshot();
        let meta_cf = self.cf(CF_META)?;
        let read_meta = |key: &'static [u8]| -> Result<Revision> {
            match snap.get_cf(meta_cf, key)? {
                Some(raw) => codec::decode(meta_name(key), &raw),
                None => Ok(0),
            }
        };
        let current = read_meta(meta::REVISION)?;
        let compacted = read_meta(meta::COMPACTED)?;
        let at = if req.revision == 0 { current } else { req.revision };
        if at > current {
            return Err(Error::FutureRevision { requested: at, current });
        }
        if at < compacted {
            return Err(Error::Compacted {
                compact_revision: compacted,
            });
        }
        let mut out = RangeResponse {
            kvs: Vec::new(),
            revision: at,
            more: false,
            count: None,
        };
        let limit = if req.limit == 0 { usize::MAX } else { req.limit };
        let mut counted: u64 = 0;
        let mut visit = |kv: KeyValue| -> bool {
            counted += 1;
            if out.kvs.len() < limit {
                let mut kv = kv;
                if req.keys_only {
                    kv.value.clear();
                }
                out.kvs.push(kv);
                true
            } else {
                out.more = true;
                // Keep going only to count.
                req.count
            }
        };
        if at == current {
            let mut it = snap.raw_iterator_cf(self.cf(CF_LIVE)?);
            scan_live(&mut it, &req.range, &mut visit)?;
        } else {
            let mut it = snap.raw_iterator_cf(self.cf(CF_HISTORY)?);
            scan_history(&mut it, &req.range, at, &mut visit)?;
        }
        if req.count {
            out.count = Some(counted);
        }
        Ok(out)
    }

    /// The events of revisions `from..=to` whose keys fall in `range`, in
    /// order. Stops early (at a revision boundary) after about `budget`
    /// events and returns the last revision it covered.
    pub(crate) fn changes(
        &self,
        range: &KeyRange,
        from: Revision,
        to: Revision,
        budget: usize,
    ) -> Result<(Vec<Event>, Revision)> {
        let snap = self.db.snapshot();
        let compacted: Revision = match snap.get_cf(self.cf(CF_META)?, meta::COMPACTED)? {
            Some(raw) => codec::decode("compaction point", &raw)?,
            None => 0,
        };
        if from < compacted {
            return Err(Error::Compacted {
                compact_revision: compacted,
            });
        }
        let mut events = Vec::new();
        let mut covered = from.saturating_sub(1);
        let mut changes = snap.raw_iterator_cf(self.cf(CF_CHANGES)?);
        let mut history = snap.raw_iterator_cf(self.cf(CF_HISTORY)?);
        changes.seek(change_key(from, 0));
        while let (Some(k), Some(user_key)) = (changes.key(), changes.value()) {
            let rev = decode_change_key(k)?;
            if rev > to {
                break;
            }
            if rev != covered && events.len() >= budget {
                return Ok((events, covered));
            }
            covered = rev;
            if range.contains(user_key) {
                events.push(read_event(&mut history, user_key, rev)?);
            }
            changes.next();
        }
        changes.status()?;
        Ok((events, to.max(covered)))
    }

    /// Drops every version that no read at or after `revision` can see, and
    /// the change log below it. Keeps, for each key, its newest version
    /// below `revision` unless that is a tombstone, so reads at `revision`
    /// and `prev_kv` of later events still resolve.
    pub(crate) fn compact(&self, batch: &mut WriteBatch, from: Revision, revision: Revision) -> Result<()> {
        let history_cf = self.cf(CF_HISTORY)?;
        let changes_cf = self.cf(CF_CHANGES)?;
        let mut touched: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut changes = self.db.raw_iterator_cf(changes_cf);
        changes.seek(change_key(from, 0));
        while let (Some(k), Some(user_key)) = (changes.key(), changes.value()) {
            if decode_change_key(k)? >= revision {
                break;
            }
            touched.insert(user_key.to_vec());
            changes.next();
        }
        changes.status()?;
        let mut history = self.db.raw_iterator_cf(history_cf);
        for key in touched {
            // Newest version strictly below `revision` comes first.
            history.seek(history_key(&key, revision - 1));
            let mut newest = true;
            while let Some(raw) = history.key() {
                let (found, _) = decode_history_key(raw)?;
                if found != key {
                    break;
                }
                let keep = newest && !matches!(decode_version(history.value())?, Version::Tombstone);
                if !keep {
                    batch.delete_cf(history_cf, raw);
                }
                newest = false;
                history.next();
            }
            history.status()?;
        }
        batch.delete_range_cf(changes_cf, change_key(0, 0), change_key(revision, 0));
        self.put_meta(batch, meta::COMPACTED, &revision)?;
        Ok(())
    }

    /// Removes every key of the state-machine families (before installing a snapshot).
    pub(crate) fn clear_state_machine(&self, batch: &mut WriteBatch) -> Result<()> {
        for name in SM_FAMILIES {
            let cf = self.cf(name)?;
            let mut it = self.db.raw_iterator_cf(cf);
            it.seek_to_last();
            if let Some(last) = it.key() {
                batch.delete_range_cf(cf, &b""[..], last);
                batch.delete_cf(cf, last);
            }
            it.status()?;
        }
        Ok(())
    }
}

impl LiveState for Db {
    fn live(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        match self.db.get_pinned_cf(self.cf(CF_LIVE)?, key)? {
            Some(raw) => Ok(Some(codec::decode::<Live>("live key", &raw)?.into_kv(key.to_vec()))),
            None => Ok(None),
        }
    }

    fn scan_live(&self, range: &KeyRange) -> Result<Vec<KeyValue>> {
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(CF_LIVE)?);
        scan_live(&mut it, range, &mut |kv| {
            out.push(kv);
            true
        })?;
        Ok(out)
    }
}

fn meta_name(key: &'static [u8]) -> &'static str {
    std::str::from_utf8(key).unwrap_or("meta")
}

fn decode_version(raw: Option<&[u8]>) -> Result<Version> {
    codec::decode("history value", raw.ok_or_else(|| Error::corrupt("history value"))?)
}

/// Visits the live keys of `range` in order until `visit` returns false.
fn scan_live(it: &mut RawIter<'_>, range: &KeyRange, visit: &mut dyn FnMut(KeyValue) -> bool) -> Result<()> {
    it.seek(range.start());
    while let (Some(key), Some(raw)) = (it.key(), it.value()) {
        if !range.contains(key) {
            break;
        }
        let live: Live = codec::decode("live key", raw)?;
        if !visit(live.into_kv(key.to_vec())) {
            break;
        }
        it.next();
    }
    it.status()?;
    Ok(())
}

/// Visits the keys of `range` as they were at revision `at`.
fn scan_history(
    it: &mut RawIter<'_>,
    range: &KeyRange,
    at: Revision,
    visit: &mut dyn FnMut(KeyValue) -> bool,
) -> Result<()> {
    // Every version of every key >= start sorts at or after start's prefix.
    it.seek(history_prefix(range.start()));
    while let Some(raw) = it.key() {
        let (key, rev) = decode_history_key(raw)?;
        if !range.contains(&key) {
            if range.is_past(&key) {
                break;
            }
            it.next();
            continue;
        }
        if rev > at {
            // Jump to this key's newest version at or below `at` (or past the key).
            it.seek(history_key(&key, at));
            continue;
        }
        if let Some(kv) = decode_version(it.value())?.into_kv(key.clone(), rev)
            && !visit(kv)
        {
            break;
        }
        // Skip this key's older versions: revision 0 sorts last and never exists.
        it.seek(history_key(&key, 0));
    }
    it.status()?;
    Ok(())
}

/// The event for `key` at `rev`, with the version before it as `prev_kv`.
fn read_event(history: &mut RawIter<'_>, key: &[u8], rev: Revision) -> Result<Event> {
    history.seek(history_key(key, rev));
    let found = history.key().map(decode_history_key).transpose()?;
    if found.as_ref().map(|(k, r)| (k.as_slice(), *r)) != Some((key, rev)) {
        return Err(Error::corrupt(format!(
            "history of {:?} lacks revision {rev}",
            String::from_utf8_lossy(key)
        )));
    }
    let version = decode_version(history.value())?;
    history.next();
    let prev_kv = match history.key().map(decode_history_key).transpose()? {
        Some((k, prev_rev)) if k == key => decode_version(history.value())?.into_kv(k, prev_rev),
        _ => None,
    };
    Ok(match version.into_kv(key.to_vec(), rev) {
        Some(kv) => Event {
            kind: EventKind::Put,
            kv,
            prev_kv,
        },
        None => Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_vec(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: rev,
                version: 0,
            },
            prev_kv,
        },
    })
}
