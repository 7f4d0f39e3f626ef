//! The peer protocol: what nodes (and a [`Client`](crate::Client)) send
//! each other over HTTP, shared by the peer router that serves it (`http`)
//! and the client that calls it (`peer_client`), so neither depends on the
//! other.
//!
//! Bodies are bincode ([`BINCODE`]); [`paths`] names the endpoints. Raft
//! RPCs carry openraft's own request and response types; everything else a
//! follower or client asks of the leader is one [`Forwarded`] request,
//! answered with a [`ForwardedReply`] or a [`RemoteError`].

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::kv::{RangeRequest, RangeResponse, ReadConsistency, Revision};
use crate::types::{Command, CommandResponse, NodeId};

/// The content type of every peer body.
pub(crate) const BINCODE: &str = "application/x-skiff-bincode";

/// The endpoints of the peer router.
pub(crate) mod paths {
    pub const RAFT_APPEND: &str = "/raft/append";
    pub const RAFT_VOTE: &str = "/raft/vote";
    pub const RAFT_SNAPSHOT: &str = "/raft/snapshot";
    pub const FORWARD: &str = "/store/forward";
    pub const STATUS: &str = "/cluster/status";
}

/// A request a follower forwards to the leader, and the leader's answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Forwarded {
    Write(Command),
    ReadIndex,
    Range(RangeRequest, ReadConsistency),
    Join { node_id: NodeId, addr: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ForwardedReply {
    Write(CommandResponse),
    ReadIndex(u64),
    Range(RangeResponse),
    Joined,
}

/// An error as it crosses the wire between peers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RemoteError {
    NotLeader { leader: Option<(NodeId, String)> },
    Unavailable(String),
    Invalid(String),
    Compacted(Revision),
    FutureRevision { requested: Revision, current: Revision },
    Failed(String),
}

impl From<Error> for RemoteError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotLeader { leader } => RemoteError::NotLeader { leader },
            Error::Unavailable { reason } => RemoteError::Unavailable(reason),
            Error::InvalidRequest { reason } => RemoteError::Invalid(reason),
            Error::Compacted { compact_revision } => RemoteError::Compacted(compact_revision),
            Error::FutureRevision { requested, current } => RemoteError::FutureRevision { requested, current },
            other => RemoteError::Failed(other.to_string()),
        }
    }
}

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::NotLeader { leader } => Error::NotLeader { leader },
            RemoteError::Unavailable(reason) => Error::Unavailable { reason },
            RemoteError::Invalid(reason) => Error::InvalidRequest { reason },
            RemoteError::Compacted(compact_revision) => Error::Compacted { compact_revision },
            RemoteError::FutureRevision { requested, current } => Error::FutureRevision { requested, current },
            RemoteError::Failed(reason) => Error::Unavailable {
                reason: format!("leader failed the request: {reason}"),
            },
        }
    }
}
