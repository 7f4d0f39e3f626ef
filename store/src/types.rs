//! The raft type configuration and the commands the log carries.

use std::fmt;

use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kv::{Revision, Txn, TxnResponse};

/// Node ids are small integers chosen by the operator (`--node-id`).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// skiff's raft configuration: MVCC commands in, their results out,
    /// snapshots as files on disk.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
pub type StorageError = openraft::StorageError<NodeId>;

/// A state-machine command: what one raft log entry asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Txn(Txn),
    /// Independent transactions proposed together; each gets its own
    /// revision and its own entry in the response.
    Batch(Vec<Txn>),
    /// Drop history below this revision.
    Compact {
        revision: Revision,
    },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Txn(txn) => write!(
                f,
                "txn({} compares, {}/{} ops)",
                txn.compares.len(),
                txn.success.len(),
                txn.failure.len()
            ),
            Command::Batch(txns) => write!(f, "batch({} txns)", txns.len()),
            Command::Compact { revision } => write!(f, "compact({revision})"),
        }
    }
}

/// What applying a [`Command`] produced. Rejections are deterministic
/// outcomes of the command against the state, not storage failures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Blank and membership entries.
    None,
    Txn(TxnResponse),
    Batch(Vec<CommandResponse>),
    Compacted {
        revision: Revision,
    },
    Rejected(Rejection),
}

impl CommandResponse {
    /// The answer to a single [`Command::Txn`]; anything else means the
    /// state machine and its caller disagree about what was proposed.
    pub(crate) fn into_txn(self) -> Result<TxnResponse> {
        match self {
            CommandResponse::Txn(resp) => Ok(resp),
            other => Err(Error::corrupt(format!("txn answered with {other:?}"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    AlreadyCompacted { compact_revision: Revision },
    FutureRevision { requested: Revision, current: Revision },
}
