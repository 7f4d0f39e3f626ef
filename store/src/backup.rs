//! Backups: a consistent copy of a running store in one file, and a new
//! store made from one.
//!
//! A backup is a snapshot file in the format raft ships to slow followers
//! (`snapshot.rs`: every state-machine record under one RocksDB snapshot,
//! so at one revision, with a record count and checksum), taken after a
//! read barrier so that it holds every write acknowledged before it was
//! asked for. Writes go on while it is written.
//!
//! [`restore`] makes the store of a new one-node cluster from such a file,
//! offline: the records as they were (every object keeps its revision),
//! and a revision counter moved forward by `bump` and marked compacted
//! there, as etcd's `snapshot restore --bump-revision --mark-compacted`
//! does. No revision the old cluster may have handed out after the
//! backup is handed out again for something else, and a watch or list
//! from any revision of the old cluster is told its revision is gone
//! (410) and lists afresh. The raft log starts empty: the server that
//! opens the directory initializes a cluster of itself, and others join.

use std::path::Path;

use crate::db::{Db, meta};
use crate::error::{Error, Result};
use crate::kv::Revision;
use crate::snapshot;
use crate::store::Store;

/// What a backup file holds, once verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// The store's revision when it was taken.
    pub revision: Revision,
    /// The compaction point then.
    pub compacted: Revision,
    /// Records (keys at all their kept revisions, and index entries).
    pub records: u64,
}

impl Store {
    /// Writes a backup of the store to `path` (replacing it), holding at
    /// least every write acknowledged before the call.
    pub async fn save_backup(&self, path: &Path) -> Result<BackupInfo> {
        self.read_barrier().await?;
        let db = self.inner_db();
        let target = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            snapshot::write(&db, &target)?;
            verify(&target)
        })
        .await
        .map_err(|e| Error::io("backup task", std::io::Error::other(e.to_string())))?
    }
}

/// Reads a backup file through and checks its checksum.
pub fn verify(path: &Path) -> Result<BackupInfo> {
    let mut records = 0;
    let revisions = snapshot::read(path, |_, _, _| records += 1).map_err(explain)?;
    Ok(BackupInfo {
        revision: revisions.revision,
        compacted: revisions.compacted,
        records,
    })
}

/// The snapshot reader's corruption errors, said for a backup file.
fn explain(error: Error) -> Error {
    match error {
        Error::Corrupt { what } => {
            Error::corrupt(format!("not a usable backup ({what}); it may be truncated or damaged"))
        }
        other => other,
    }
}

/// What [`restore`] made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The backup's own revision.
    pub backup_revision: Revision,
    /// Where the new cluster's revisions continue from (also its
    /// compaction point).
    pub revision: Revision,
}

/// Makes the store in `store_dir` (a server's `DIR/store`, which must not
/// hold a database yet) from the backup at `backup`, with its revision
/// moved `bump` forward. The file is verified in full first; nothing is
/// created if it does not verify.
pub fn restore(backup: &Path, store_dir: &Path, bump: Revision) -> Result<Restored> {
    let info = verify(backup)?;
    let db_dir = store_dir.join("db");
    if db_dir.join("CURRENT").exists() {
        return Err(Error::invalid(format!(
            "{} already holds a store; restore into a new data directory",
            store_dir.display()
        )));
    }
    let revision = info
        .revision
        .checked_add(bump)
        .ok_or_else(|| Error::invalid("the revision bump overflows"))?;
    let db = Db::open(&db_dir)?;
    snapshot::install(&db, backup, |batch| {
        db.put_meta(batch, meta::REVISION, &revision)?;
        db.put_meta(batch, meta::COMPACTED, &revision)
    })
    .map_err(explain)?;
    Ok(Restored {
        backup_revision: info.revision,
        revision,
    })
}
