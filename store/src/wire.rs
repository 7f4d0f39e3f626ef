//! The peer protocol: what nodes (and a [`Client`](crate::Client)) send
//! each other over HTTP, shared by the peer router that serves it (`http`)
//! and the client that calls it (`peer_client`), so neither depends on the
//! other.
//!
//! Bodies are bincode ([`BINCODE`]); [`paths`] names the endpoints. Raft
//! RPCs carry openraft's own request and response types; everything else a
//! follower or client asks of the leader is one [`Forwarded`] request,
//! answered with a [`ForwardedReply`] or a [`RemoteError`].
//!
//! A snapshot chunk (megabytes) is the exception: serde writes and reads a
//! byte vector one byte at a time, which took a debug build hundreds of
//! milliseconds per chunk on the async threads the raft core shares, long
//! enough to starve its heartbeats. So a chunk is framed by hand
//! ([`encode_snapshot_chunk`]): a magic, its other fields in bincode, then
//! its bytes as they are.

use serde::{Deserialize, Serialize};

use openraft::raft::InstallSnapshotRequest;

use crate::codec;
use crate::error::Error;
use crate::kv::{RangeRequest, RangeResponse, ReadConsistency, Revision};
use crate::types::{Command, CommandResponse, NodeId, SnapshotMeta, TypeConfig, Vote};

/// The content type of every peer body.
pub(crate) const BINCODE: &str = "application/x-skiff-bincode";

/// The endpoints of the peer router.
pub(crate) mod paths {
    pub const RAFT_APPEND: &str = "/raft/append";
    pub const RAFT_VOTE: &str = "/raft/vote";
    pub const RAFT_SNAPSHOT: &str = "/raft/snapshot";
    pub const FORWARD: &str = "/store/forward";
    pub const STATUS: &str = "/cluster/status";
    pub const MEMBERS: &str = "/cluster/members";
}

/// The start of a framed snapshot chunk, which no bincode
/// `InstallSnapshotRequest` (a term first) begins with.
const CHUNK_MAGIC: &[u8; 8] = b"SKIFFCH1";

/// A snapshot chunk's fields but its bytes.
#[derive(Serialize, Deserialize)]
struct ChunkHeader {
    vote: Vote,
    meta: SnapshotMeta,
    offset: u64,
    done: bool,
}

/// `magic | be32 header length | header (bincode) | data`.
pub(crate) fn encode_snapshot_chunk(req: &InstallSnapshotRequest<TypeConfig>) -> crate::Result<Vec<u8>> {
    let header = codec::encode(&ChunkHeader {
        vote: req.vote,
        meta: req.meta.clone(),
        offset: req.offset,
        done: req.done,
    })?;
    let len = u32::try_from(header.len()).map_err(|_| Error::invalid("snapshot chunk header too large"))?;
    let mut out = Vec::with_capacity(CHUNK_MAGIC.len() + 4 + header.len() + req.data.len());
    out.extend_from_slice(CHUNK_MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&req.data);
    Ok(out)
}

/// Reads a chunk [`encode_snapshot_chunk`] framed, or one in plain bincode
/// (as a node of an older build sends it).
pub(crate) fn decode_snapshot_chunk(body: &[u8]) -> crate::Result<InstallSnapshotRequest<TypeConfig>> {
    let Some(rest) = body.strip_prefix(CHUNK_MAGIC) else {
        return codec::decode("snapshot chunk", body);
    };
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| Error::corrupt("snapshot chunk: truncated"))?;
    let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| Error::corrupt("snapshot chunk: header length"))?;
    if rest.len() < len {
        return Err(Error::corrupt("snapshot chunk: truncated"));
    }
    let (header, data) = rest.split_at(len);
    let header: ChunkHeader = codec::decode("snapshot chunk header", header)?;
    Ok(InstallSnapshotRequest {
        vote: header.vote,
        meta: header.meta,
        offset: header.offset,
        data: data.to_vec(),
        done: header.done,
    })
}

/// A request a follower forwards to the leader, and the leader's answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Forwarded {
    Write(Command),
    ReadIndex,
    Range(RangeRequest, ReadConsistency),
    Join { node_id: NodeId, addr: String },
    Remove { node_id: NodeId },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ForwardedReply {
    Write(CommandResponse),
    ReadIndex(u64),
    Range(RangeResponse),
    Joined,
    Removed,
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
    NotAMember(NodeId),
    LastVoter(NodeId),
}

impl From<Error> for RemoteError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotLeader { leader } => RemoteError::NotLeader { leader },
            Error::Unavailable { reason } => RemoteError::Unavailable(reason),
            Error::InvalidRequest { reason } => RemoteError::Invalid(reason),
            Error::Compacted { compact_revision } => RemoteError::Compacted(compact_revision),
            Error::FutureRevision { requested, current } => RemoteError::FutureRevision { requested, current },
            Error::NotAMember { node_id } => RemoteError::NotAMember(node_id),
            Error::LastVoter { node_id } => RemoteError::LastVoter(node_id),
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
            RemoteError::NotAMember(node_id) => Error::NotAMember { node_id },
            RemoteError::LastVoter(node_id) => Error::LastVoter { node_id },
            RemoteError::Failed(reason) => Error::Unavailable {
                reason: format!("leader failed the request: {reason}"),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunk() -> InstallSnapshotRequest<TypeConfig> {
        InstallSnapshotRequest {
            vote: Vote::new_committed(3, 2),
            meta: SnapshotMeta {
                last_log_id: Some(openraft::LogId::new(openraft::CommittedLeaderId::new(3, 2), 41)),
                last_membership: Default::default(),
                snapshot_id: "3-2-41".into(),
            },
            offset: 4096,
            data: (0..=255u8).cycle().take(10_000).collect(),
            done: true,
        }
    }

    #[test]
    fn a_framed_chunk_reads_back_and_so_does_plain_bincode() {
        let sent = chunk();
        for raw in [encode_snapshot_chunk(&sent).unwrap(), codec::encode(&sent).unwrap()] {
            let got = decode_snapshot_chunk(&raw).unwrap();
            assert_eq!(
                (got.vote, got.meta, got.offset, got.done, got.data),
                (sent.vote, sent.meta.clone(), sent.offset, sent.done, sent.data.clone())
            );
        }
    }

    #[test]
    fn a_cut_or_garbled_chunk_is_refused() {
        let raw = encode_snapshot_chunk(&chunk()).unwrap();
        for bad in [
            &raw[..10],
            &raw[..20],
            b"SKIFFCH1\xff\xff\xff\xff".as_slice(),
            b"garbage".as_slice(),
        ] {
            assert!(decode_snapshot_chunk(bad).is_err(), "{bad:?}");
        }
    }
}
