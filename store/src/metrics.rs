//! The store's Prometheus metrics. The process keeps one
//! [`prometheus_client`] registry, which the API server serves on
//! `/metrics`; [`Metrics::register`] adds the store's to it. Names are
//! etcd's where etcd measures the same thing, so dashboards and alerts
//! written for the etcd under a Kubernetes cluster read a skiff store
//! as they stand; `skiff_store_*` where etcd has no counterpart:
//!
//! * `etcd_server_has_leader`, `etcd_server_is_leader`: whether this
//!   node knows a leader, and whether it is the leader.
//! * `etcd_server_leader_changes_seen_total`: how often this node saw a
//!   new leader (the first one after start included, as etcd counts).
//! * `skiff_store_raft_term`: the raft term.
//! * `etcd_server_proposals_committed_total`,
//!   `etcd_server_proposals_applied_total`: the raft log index committed
//!   and applied (gauges, as in etcd); `skiff_store_apply_lag_entries` is
//!   their difference.
//! * `etcd_server_proposals_pending`: transactions proposed on this node
//!   and waiting for their outcome; `etcd_server_proposals_failed_total`:
//!   raft proposals that failed (lost leadership, shutdown);
//!   `skiff_store_proposal_duration_seconds`: from a raft proposal
//!   (a batch of transactions, see `proposer`) to its applied result.
//! * `etcd_disk_wal_fsync_duration_seconds`: each fsync of RocksDB's WAL
//!   that makes appended raft entries durable (the log store's syncer).
//! * `etcd_mvcc_db_total_size_in_bytes`: the size of the database's
//!   files on disk (SSTs, WAL, manifest); `etcd_debugging_mvcc_current_revision`:
//!   the store's revision.
//! * `etcd_debugging_snap_save_total_duration_seconds`: each snapshot
//!   built (its count is the number built);
//!   `skiff_store_snapshot_installs_total`: snapshots received from a
//!   leader and installed.
//!
//! What happens is recorded where it happens into `Instruments` (shared
//! by the log store, the proposer and the state machine); what is a
//! state (term, leader, indexes, size) is read when scraped, from raft's
//! own metrics and the disk, so nothing is kept up to date between
//! scrapes. Every metric is for this node alone and has no labels.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::BasicNode;
use openraft::metrics::RaftMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::types::NodeId;
use crate::watch::WatchHub;

/// etcd's disk and snapshot buckets: 1 ms doubling to about 8 s.
fn disk_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 14)
}

/// What the store's parts record as it happens. One per store.
#[derive(Debug)]
pub(crate) struct Instruments {
    pub(crate) fsync: Histogram,
    /// The last committed log index openraft handed the log store, plus
    /// one (0: none yet).
    committed: AtomicU64,
    pub(crate) leader_changes: Counter,
    pub(crate) pending: Gauge,
    pub(crate) failed: Counter,
    pub(crate) proposal_duration: Histogram,
    pub(crate) snapshot_save: Histogram,
    pub(crate) snapshot_installs: Counter,
}

impl Default for Instruments {
    fn default() -> Self {
        Instruments {
            fsync: Histogram::new(disk_buckets()),
            committed: AtomicU64::new(0),
            leader_changes: Counter::default(),
            pending: Gauge::default(),
            failed: Counter::default(),
            proposal_duration: Histogram::new(disk_buckets()),
            snapshot_save: Histogram::new(disk_buckets()),
            snapshot_installs: Counter::default(),
        }
    }
}

impl Instruments {
    /// Records the committed log index (it only grows).
    pub(crate) fn committed(&self, index: Option<u64>) {
        if let Some(index) = index {
            self.committed.fetch_max(index.saturating_add(1), Ordering::Relaxed);
        }
    }

    fn committed_index(&self) -> Option<u64> {
        self.committed.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Counts a transaction in `etcd_server_proposals_pending` until the
    /// returned guard is dropped.
    pub(crate) fn pending(self: &Arc<Self>) -> Pending {
        self.pending.inc();
        Pending(self.clone())
    }
}

/// A transaction waiting for its outcome.
pub(crate) struct Pending(Arc<Instruments>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.dec();
    }
}

/// The store's metrics, to [`register`](Metrics::register) in the
/// process's registry. From [`Store::metrics`](crate::Store::metrics);
/// cheap to clone. It holds no handle on the database, so a registry
/// that outlives the store keeps nothing open (the store's metrics then
/// read as they last were).
#[derive(Clone)]
pub struct Metrics {
    instruments: Arc<Instruments>,
    raft: watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    db_dir: PathBuf,
    hub: Arc<WatchHub>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("db_dir", &self.db_dir)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new(
        instruments: Arc<Instruments>,
        raft: watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
        db_dir: PathBuf,
        hub: Arc<WatchHub>,
    ) -> Metrics {
        Metrics {
            instruments,
            raft,
            db_dir,
            hub,
        }
    }

    /// Adds the store's metrics to `registry`. Once per registry.
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.instruments;
        registry.register(
            "etcd_server_leader_changes_seen",
            "The number of leader changes seen.",
            i.leader_changes.clone(),
        );
        registry.register(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            i.pending.clone(),
        );
        registry.register(
            "etcd_server_proposals_failed",
            "The total number of failed proposals seen.",
            i.failed.clone(),
        );
        registry.register(
            "skiff_store_proposal_duration_seconds",
            "The time from a raft proposal (a batch of transactions) to its applied result.",
            i.proposal_duration.clone(),
        );
        registry.register(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            i.fsync.clone(),
        );
        registry.register(
            "etcd_debugging_snap_save_total_duration_seconds",
            "The total latency distributions of save called by snapshot.",
            i.snapshot_save.clone(),
        );
        registry.register(
            "skiff_store_snapshot_installs",
            "Snapshots received from the leader and installed.",
            i.snapshot_installs.clone(),
        );
        registry.register_collector(Box::new(Current(self.clone())));
    }
}

/// Follows raft's view of the leader and counts each new one, as etcd's
/// `leader_changes_seen_total` does: a change to a known leader other
/// than the last one seen. Ends when raft stops.
pub(crate) async fn count_leader_changes(
    mut server: watch::Receiver<openraft::metrics::RaftServerMetrics<NodeId, BasicNode>>,
    instruments: Arc<Instruments>,
) {
    let mut last = None;
    loop {
        let leader = server.borrow_and_update().current_leader;
        if leader.is_some() && leader != last {
            instruments.leader_changes.inc();
        }
        last = leader;
        if server.changed().await.is_err() {
            return;
        }
    }
}

/// The sum of the sizes of the files under `dir` (one level of
/// subdirectories, which RocksDB does not make, is enough).
fn size_on_disk(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.metadata().ok())
        .filter(|meta| meta.is_file())
        .map(|meta| meta.len())
        .sum()
}

/// The states read at scrape time.
struct Current(Metrics);

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Current").field(&self.0).finish()
    }
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &'static str, help: &str, value: i64) -> std::fmt::Result {
    let gauge = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for Current {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let (id, term, leader, applied) = {
            let m = self.0.raft.borrow();
            (m.id, m.current_term, m.current_leader, m.last_applied.map(|l| l.index))
        };
        let committed = self.0.instruments.committed_index();
        gauge(
            &mut encoder,
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            i64::from(leader.is_some()),
        )?;
        gauge(
            &mut encoder,
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            i64::from(leader == Some(id)),
        )?;
        gauge(&mut encoder, "skiff_store_raft_term", "The raft term.", signed(term))?;
        gauge(
            &mut encoder,
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed (the raft log index committed).",
            signed(committed.unwrap_or(0)),
        )?;
        gauge(
            &mut encoder,
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied (the raft log index applied).",
            signed(applied.unwrap_or(0)),
        )?;
        gauge(
            &mut encoder,
            "skiff_store_apply_lag_entries",
            "Raft log entries committed and not yet applied on this node.",
            signed(committed.unwrap_or(0).saturating_sub(applied.unwrap_or(0))),
        )?;
        gauge(
            &mut encoder,
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            signed(size_on_disk(&self.0.db_dir)),
        )?;
        gauge(
            &mut encoder,
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store.",
            signed(self.0.hub.revision()),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_index_only_grows() {
        let instruments = Instruments::default();
        assert_eq!(instruments.committed_index(), None);
        instruments.committed(Some(0));
        assert_eq!(instruments.committed_index(), Some(0));
        instruments.committed(Some(7));
        instruments.committed(Some(5));
        instruments.committed(None);
        assert_eq!(instruments.committed_index(), Some(7));
    }

    #[test]
    fn pending_proposals_are_counted_while_they_wait() {
        let instruments = Arc::new(Instruments::default());
        let first = instruments.pending();
        let second = instruments.pending();
        assert_eq!(instruments.pending.get(), 2);
        drop(first);
        drop(second);
        assert_eq!(instruments.pending.get(), 0);
    }
}
