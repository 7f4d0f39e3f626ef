//! The MVCC state machine on RocksDB.
//!
//! `apply` runs a whole batch of committed entries through the pure
//! [`Batch`] core and persists the result, the last-applied log id and the
//! membership in one RocksDB `WriteBatch`, then publishes the events to the
//! watch hub. The state machine is durable on its own, so a restart resumes
//! from the last applied entry instead of replaying the log; it is not
//! fsync'd itself, because the raft log's fsync of the shared WAL covers it.
//!
//! Snapshots live in `snapshots/`, the current one named by the
//! `sm/snapshot` record. A received snapshot is copied to a `.partial`
//! file and verified; then, under [`Db::snapshot_lock`], it is renamed
//! and installed in one synced write with its record and the purge of
//! the log it covers. openraft builds snapshots on a task of their own,
//! so a build can end after a newer snapshot was installed: it is then
//! handed back without replacing the newer one. Whatever a crash cuts
//! short (a `.partial` file, a snapshot no record names) is removed when
//! the node opens.

use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::db::{Db, meta};
use crate::error::{Error, Result};
use crate::kv::{Event, Revision};
use crate::metrics::Instruments;
use crate::mvcc::Batch;
use crate::raft::log_store::stage_purge;
use crate::snapshot;
use crate::types::{
    Command, CommandResponse, Entry, LogId, Rejection, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::watch::WatchHub;

/// What the `sm/snapshot` meta key records about the current snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta,
    file: String,
}

/// The state machine of one node.
#[derive(Debug)]
pub struct StateMachine {
    db: Arc<Db>,
    hub: Arc<WatchHub>,
    snapshot_dir: PathBuf,
    applied: Option<LogId>,
    membership: StoredMembership,
    revision: Revision,
    compacted: Revision,
    instruments: Arc<Instruments>,
}

fn sm_err(e: Error) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

fn read_sm_err(e: Error) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}

impl StateMachine {
    pub(crate) fn open(
        db: Arc<Db>,
        hub: Arc<WatchHub>,
        snapshot_dir: PathBuf,
        instruments: Arc<Instruments>,
    ) -> Result<StateMachine> {
        std::fs::create_dir_all(&snapshot_dir).map_err(|e| Error::io(&snapshot_dir, e))?;
        let current = db.get_meta::<SnapshotRecord>(meta::SNAPSHOT)?.map(|r| r.file);
        StateMachine::remove_leftovers(&snapshot_dir, current.as_deref());
        let (revision, compacted) = db.revisions()?;
        Ok(StateMachine {
            applied: db.get_meta(meta::APPLIED)?.flatten(),
            membership: db.get_meta(meta::MEMBERSHIP)?.unwrap_or_default(),
            revision,
            compacted,
            db,
            hub,
            snapshot_dir,
            instruments,
        })
    }

    /// Persists what `batch` produced together with the applied pointer,
    /// then publishes its events.
    fn flush(&mut self, wb: &mut WriteBatch, events: Vec<Event>, revision: Revision) -> Result<()> {
        self.db.put_meta(wb, meta::APPLIED, &self.applied)?;
        self.db.put_meta(wb, meta::MEMBERSHIP, &self.membership)?;
        self.db.put_meta(wb, meta::REVISION, &revision)?;
        self.db.raw().write(std::mem::take(wb))?;
        self.revision = revision;
        self.hub.publish(revision, &events);
        Ok(())
    }

    fn apply_all(&mut self, entries: Vec<Entry>) -> Result<Vec<CommandResponse>> {
        let db = self.db.clone();
        let mut responses = Vec::with_capacity(entries.len());
        let mut wb = WriteBatch::default();
        let mut batch = Batch::new(&*db, self.revision);
        for entry in entries {
            self.applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => CommandResponse::None,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    CommandResponse::None
                }
                EntryPayload::Normal(Command::Txn(txn)) => match txn.validate() {
                    // Proposers validate first; a bad entry from an old or
                    // foreign leader still must not corrupt the state.
                    Err(_) => CommandResponse::None,
                    Ok(()) => CommandResponse::Txn(batch.apply_txn(&txn)?),
                },
                EntryPayload::Normal(Command::Batch(txns)) => {
                    let mut each = Vec::with_capacity(txns.len());
                    for txn in &txns {
                        each.push(match txn.validate() {
                            Err(_) => CommandResponse::None,
                            Ok(()) => CommandResponse::Txn(batch.apply_txn(txn)?),
                        });
                    }
                    CommandResponse::Batch(each)
                }
                EntryPayload::Normal(Command::Compact { revision }) => {
                    // Compaction reads RocksDB directly: persist what this
                    // batch holds so far first.
                    let current = batch.revision();
                    let done = std::mem::replace(&mut batch, Batch::new(&*db, current));
                    db.stage(&mut wb, &done.writes)?;
                    self.flush(&mut wb, done.events, current)?;
                    self.compact(&mut wb, revision)?
                }
            };
            responses.push(response);
        }
        db.stage(&mut wb, &batch.writes)?;
        let revision = batch.revision();
        self.flush(&mut wb, batch.events, revision)?;
        Ok(responses)
    }

    fn compact(&mut self, wb: &mut WriteBatch, revision: Revision) -> Result<CommandResponse> {
        if revision <= self.compacted {
            return Ok(CommandResponse::Rejected(Rejection::AlreadyCompacted {
                compact_revision: self.compacted,
            }));
        }
        if revision > self.revision {
            return Ok(CommandResponse::Rejected(Rejection::FutureRevision {
                requested: revision,
                current: self.revision,
            }));
        }
        self.db.compact(wb, self.compacted, revision)?;
        self.compacted = revision;
        tracing::info!(revision, "compacted store history");
        Ok(CommandResponse::Compacted { revision })
    }

    fn snapshot_path(&self, file: &str) -> PathBuf {
        self.snapshot_dir.join(file)
    }

    /// Removes what a build, transfer or install cut short (a crash, a
    /// kill) left behind: partial files, and snapshot files other than
    /// the current one. Only when the node opens, as nothing is being
    /// built or installed then; [`remove_old_snapshots`] runs later, and
    /// must leave a build or install in progress alone.
    ///
    /// [`remove_old_snapshots`]: StateMachine::remove_old_snapshots
    fn remove_leftovers(dir: &std::path::Path, current: Option<&str>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.ends_with(".partial")
                || name.starts_with("incoming-")
                || (name.starts_with("snapshot-") && name.ends_with(".snap"));
            if ours && Some(name.as_str()) != current {
                tracing::info!(file = %name, "removing a snapshot file left over from before a restart");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Removes snapshot files other than `keep`.
    fn remove_old_snapshots(dir: &std::path::Path, keep: &str) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy() != keep && !name.to_string_lossy().ends_with(".partial") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Builds snapshots from a RocksDB snapshot, concurrently with apply.
#[derive(Debug)]
pub struct SnapshotBuilder {
    db: Arc<Db>,
    snapshot_dir: PathBuf,
    instruments: Arc<Instruments>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> std::result::Result<Snapshot<TypeConfig>, StorageError> {
        let db = self.db.clone();
        let dir = self.snapshot_dir.clone();
        let started = std::time::Instant::now();
        let built = tokio::task::spawn_blocking(move || -> Result<(SnapshotMeta, std::fs::File)> {
            let tmp = dir.join("building.snap.partial");
            let written = snapshot::write(&db, &tmp)?;
            let id = match written.applied {
                Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
                None => "0-0-0".to_string(),
            };
            let record = SnapshotRecord {
                file: format!("snapshot-{id}.snap"),
                meta: SnapshotMeta {
                    last_log_id: written.applied,
                    last_membership: written.membership,
                    snapshot_id: id,
                },
            };
            let _guard = db.snapshot_lock();
            // A snapshot installed while this one was being built is newer:
            // it stays the current one, and this one is handed to raft
            // (which keeps the newer) from an unlinked file.
            if snapshot_log_id(&db)? >= record.meta.last_log_id {
                let file = std::fs::File::open(&tmp).map_err(|e| Error::io(&tmp, e))?;
                std::fs::remove_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
                return Ok((record.meta, file));
            }
            let path = dir.join(&record.file);
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&tmp, e))?;
            let mut wb = WriteBatch::default();
            db.put_meta(&mut wb, meta::SNAPSHOT, &record)?;
            db.raw().write(wb)?;
            StateMachine::remove_old_snapshots(&dir, &record.file);
            let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            Ok((record.meta, file))
        })
        .await
        .map_err(|e| sm_err(Error::raft(e)))?
        .map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, &e)))?;
        self.instruments.snapshot_save.observe(started.elapsed().as_secs_f64());
        let (meta, file) = built;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }
}

/// The last log id of the snapshot recorded on disk, if any.
pub(crate) fn snapshot_log_id(db: &Db) -> Result<Option<LogId>> {
    Ok(db
        .get_meta::<SnapshotRecord>(meta::SNAPSHOT)?
        .and_then(|record| record.meta.last_log_id))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> std::result::Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> std::result::Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.apply_all(entries).map_err(sm_err)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            snapshot_dir: self.snapshot_dir.clone(),
            instruments: self.instruments.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> std::result::Result<Box<tokio::fs::File>, StorageError> {
        // An anonymous file: created, then unlinked, so nothing is left
        // behind if the transfer is abandoned. install_snapshot copies it.
        let path = self.snapshot_path(&format!("incoming-{}.snap", std::process::id()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .and_then(|f| std::fs::remove_file(&path).map(|()| f))
            .map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, &e)))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> std::result::Result<(), StorageError> {
        let snap_err = |e: Error| StorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &e));
        let record = SnapshotRecord {
            meta: meta.clone(),
            file: format!("snapshot-{}.snap", meta.snapshot_id),
        };
        let final_path = self.snapshot_path(&record.file);
        let partial = self.snapshot_path(&format!("{}.partial", record.file));
        let (db, dir, stored) = (self.db.clone(), self.snapshot_dir.clone(), record.clone());
        let mut source = snapshot.into_std().await;
        let revs = tokio::task::spawn_blocking(move || -> Result<snapshot::SnapshotRevisions> {
            // Keep a copy as this node's current snapshot, and install from it.
            use std::io::{Seek, SeekFrom};
            source
                .seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("received snapshot", e))?;
            let mut out = std::fs::File::create(&partial).map_err(|e| Error::io(&partial, e))?;
            std::io::copy(&mut source, &mut out).map_err(|e| Error::io(&partial, e))?;
            out.sync_all().map_err(|e| Error::io(&partial, e))?;
            let (mut batch, revs) = snapshot::stage(&db, &partial)?;
            db.put_meta(&mut batch, meta::APPLIED, &stored.meta.last_log_id)?;
            db.put_meta(&mut batch, meta::MEMBERSHIP, &stored.meta.last_membership)?;
            db.put_meta(&mut batch, meta::SNAPSHOT, &stored)?;
            let _guard = db.snapshot_lock();
            // The log the snapshot covers goes in the same write as the
            // state it becomes (see `log_store`'s doc).
            if let Some(last) = stored.meta.last_log_id {
                stage_purge(&db, &mut batch, last)?;
            }
            std::fs::rename(&partial, &final_path).map_err(|e| Error::io(&partial, e))?;
            snapshot::commit(&db, batch)?;
            StateMachine::remove_old_snapshots(&dir, &stored.file);
            Ok(revs)
        })
        .await
        .map_err(|e| snap_err(Error::raft(e)))?
        .map_err(snap_err)?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.revision = revs.revision;
        self.compacted = revs.compacted;
        self.hub.reset(revs.revision);
        self.instruments.snapshot_installs.inc();
        tracing::info!(snapshot = %meta.snapshot_id, revision = revs.revision, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> std::result::Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(record) = self
            .db
            .get_meta::<SnapshotRecord>(meta::SNAPSHOT)
            .map_err(read_sm_err)?
        else {
            return Ok(None);
        };
        let path = self.snapshot_path(&record.file);
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Some(Snapshot {
                meta: record.meta,
                snapshot: Box::new(file),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::from(StorageIOError::read_snapshot(
                Some(record.meta.signature()),
                &e,
            ))),
        }
    }
}
