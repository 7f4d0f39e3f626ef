//! skiff's replicated, durable MVCC key-value store: what etcd is to
//! Kubernetes, built on openraft and RocksDB. It knows nothing of
//! Kubernetes; the API server maps objects onto it.
//!
//! # The model
//!
//! Keys and values are bytes. Every write transaction advances one global
//! [`Revision`]; each key carries its `create_revision`, `mod_revision` and
//! `version` ([`KeyValue`]). [`Store::txn`] applies compare-and-swap
//! transactions ([`Txn`]) atomically; [`Store::range`] reads a key range at
//! the latest or an older revision, a page at a time
//! ([`RangeRequest`]); [`Store::watch`] streams changes from any retained
//! revision ([`Watcher`]); [`Store::compact`] drops history below a revision,
//! after which older reads and watches fail with [`Error::Compacted`].
//!
//! # How a write flows
//!
//! ```text
//! Store::txn ──(follower: forward over HTTP)──► leader: Raft::client_write
//!   raft log append ── LogStore: RocksDB write, group fsync (log_store.rs)
//!   replication    ── raft::network over peer_client (HTTP, bincode)
//!   commit → apply ── StateMachine: mvcc::Batch (pure) → one WriteBatch (db.rs)
//!                   └► WatchHub::publish → Watcher streams (watch.rs)
//! ```
//!
//! One RocksDB database per node holds the log and the state machine in
//! separate column families (see [`db`](crate::db) for the layout), so the
//! log's fsync also makes every earlier state-machine write durable, and a
//! restarted node resumes from its last applied entry. Snapshots
//! ([`snapshot`](crate::snapshot)) stream the state-machine families into a
//! checksummed file that openraft ships to lagging followers.
//!
//! # Modules
//!
//! * [`kv`]: the public data model; [`types`]: the raft type configuration
//!   and the commands its log carries.
//! * `mvcc`: the pure apply core; `db`: its RocksDB adapter; `codec`: key
//!   and value encodings; `snapshot`: the snapshot file format.
//! * `raft`: openraft storage and network implementations.
//! * `store`: [`Store`], the handle that ties them together, with its
//!   membership changes (joins, [`Store::remove_member`], [`Store::members`])
//!   in `store/membership.rs`; `proposer` batches the leader's proposals;
//!   `compactor`: automatic compaction.
//! * `watch`: fan-out with bounded per-watcher queues.
//! * [`metrics`]: the store's Prometheus metrics under etcd's names
//!   ([`Store::metrics`]).
//! * [`backup`]: backups of a running store ([`Store::save_backup`]) and
//!   new stores restored from them.
//! * `wire`: the peer protocol (paths, encoding, forwarded requests and
//!   their errors); [`http`]: the peer router that serves it;
//!   `peer_client`: the HTTP client that calls it (raft RPC, forwarding,
//!   and [`Client`]), over TLS when configured.
//!
//! Modules depend downwards only: `wire` and `types` know nothing of the
//! router, the raft adapters or the [`Store`], so the router, the peer
//! client and raft's network can all use them without a cycle.

pub mod backup;
mod client;
mod codec;
mod compactor;
mod db;
mod error;
pub mod http;
pub mod kv;
pub mod metrics;
mod mvcc;
mod peer_client;
mod proposer;
mod raft;
mod snapshot;
mod store;
mod transform;
pub mod types;
mod watch;
mod wire;

pub use client::Client;
pub use compactor::CompactionPolicy;
pub use error::{Error, Result};
pub use kv::{
    Compare, CompareOp, CompareTarget, Event, EventKind, KeyRange, KeyValue, OpResult, RangeRequest, RangeResponse,
    ReadConsistency, Revision, Txn, TxnOp, TxnResponse, prefix_end,
};
pub use store::{ClusterStatus, Member, MemberRole, Store, StoreConfig};
pub use transform::{Resealed, StoredForm, ValueTransformer};
pub use types::NodeId;
pub use watch::Watcher;

/// openraft's storage conformance suite needs the raw storage types.
#[doc(hidden)]
pub mod testing {
    pub use crate::raft::log_store::LogStore;
    pub use crate::raft::state_machine::StateMachine;

    /// Opens the log store and state machine over one fresh database in `dir`.
    pub fn open_storage(dir: &std::path::Path) -> crate::Result<(LogStore, StateMachine)> {
        use std::sync::Arc;
        let db = Arc::new(crate::db::Db::open(&dir.join("db"))?);
        let hub = Arc::new(crate::watch::WatchHub::new(0));
        let instruments = Arc::new(crate::metrics::Instruments::default());
        let log = LogStore::new(db.clone(), instruments.clone()).map_err(|e| crate::Error::io("syncer thread", e))?;
        let sm = StateMachine::open(db, hub, dir.join("snapshots"), instruments)?;
        Ok((log, sm))
    }
}
