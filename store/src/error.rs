//! The store's one error type.
//!
//! Callers may retry [`Error::NotLeader`] (against the named leader) and
//! [`Error::Unavailable`] (after a pause; the write may or may not have been
//! applied, exactly as with etcd). [`Error::Compacted`] asks the caller to
//! re-list. Everything else is final for the request that produced it.

use std::path::PathBuf;

use crate::kv::Revision;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The requested revision is older than the compaction point.
    #[error("revision has been compacted; the oldest retained revision is {compact_revision}")]
    Compacted { compact_revision: Revision },

    /// The requested revision has not been written yet.
    #[error("revision {requested} is newer than the store's current revision {current}")]
    FutureRevision { requested: Revision, current: Revision },

    /// The request is malformed; nothing was changed.
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },

    /// This node is not the leader and could not forward the request.
    #[error("not the leader; the leader is {}", leader.as_ref().map(|(id, addr)| format!("node {id} at {addr}")).unwrap_or_else(|| "unknown".into()))]
    NotLeader { leader: Option<(u64, String)> },

    /// No leader could be reached in time, or the quorum is lost.
    #[error("store unavailable: {reason}")]
    Unavailable { reason: String },

    /// A write was handed to the leader, and no answer came back (the
    /// leader went away, or the deadline passed): it may or may not have
    /// been applied. Not to be retried blindly: a retry may apply it a
    /// second time after later writes; read to learn what happened.
    #[error("the write's outcome is unknown: {reason}")]
    Indeterminate { reason: String },

    /// A membership change names a node that is not a member; nothing
    /// was changed.
    #[error("node {node_id} is not a member of the cluster")]
    NotAMember { node_id: u64 },

    /// Removing this node would leave the cluster without a voter; nothing
    /// was changed.
    #[error("node {node_id} is the cluster's last voter: a cluster cannot remove its last voter")]
    LastVoter { node_id: u64 },

    /// A watcher did not keep up with the write rate and was cut off.
    #[error(
        "watcher fell more than {buffered} events behind and was cut off; restart the watch from the last revision seen"
    )]
    WatchLagged { buffered: usize },

    /// The data directory is already opened by another process.
    #[error("data directory {path} is in use by another process (RocksDB lock held)")]
    DataDirLocked {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },

    /// Data on disk (or from a peer) does not decode.
    #[error("corrupt {what}")]
    Corrupt { what: String },

    #[error("RocksDB: {source}")]
    Rocks {
        #[from]
        source: rocksdb::Error,
    },

    #[error("encoding: {source}")]
    Encode {
        #[source]
        source: bincode::Error,
    },

    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("raft: {source}")]
    Raft {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The store is shutting down.
    #[error("store is shutting down")]
    Shutdown,
}

impl Error {
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        Error::Corrupt { what: what.into() }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidRequest { reason: reason.into() }
    }

    pub(crate) fn raft(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Raft {
            source: Box::new(source),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
