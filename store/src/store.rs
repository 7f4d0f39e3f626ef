//! [`Store`]: the handle the rest of skiff uses. It owns the raft node, the
//! database and the watch hub, proposes writes (forwarding them to the
//! leader when this node is a follower), serves reads at the requested
//! consistency and starts watches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ForwardToLeader, RaftError};
use openraft::{BasicNode, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use crate::compactor::{self, Compactable, CompactionPolicy};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::kv::{KeyRange, RangeRequest, RangeResponse, ReadConsistency, Revision, Txn, TxnResponse};
use crate::metrics::{Instruments, Metrics};
use crate::peer_client::PeerClient;
use crate::proposer::Proposer;
use crate::raft::log_store::LogStore;
use crate::raft::network::Network;
use crate::raft::state_machine::StateMachine;
use crate::transform::{self, ValueTransformer};
use crate::types::{Command, CommandResponse, NodeId, Raft, Rejection};
use crate::watch::{WatchHub, Watcher};
use crate::wire::{Forwarded, ForwardedReply};

mod membership;

pub(crate) use membership::MEMBERSHIP_TIMEOUT;
pub use membership::{Member, MemberRole};

/// How a node is set up. [`StoreConfig::new`] gives single-node defaults.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub node_id: NodeId,
    /// Holds `db/` (RocksDB) and `snapshots/`.
    pub data_dir: PathBuf,
    /// `host:port` at which peers reach this node's peer router.
    pub advertise_addr: String,
    pub heartbeat_interval: Duration,
    pub election_timeout: (Duration, Duration),
    /// Build a snapshot (and allow purging the log) after this many entries.
    pub snapshot_every: u64,
    /// Log entries kept behind the last snapshot for slow followers.
    pub keep_logs: u64,
    /// How long sending one snapshot chunk to a follower may take, and for
    /// the last chunk, the follower's install of the whole snapshot too.
    /// A transfer that runs out of time starts over, so this must cover
    /// the install of the largest state the store holds (openraft's own
    /// default, 200 ms, does not: a follower behind a purge never caught
    /// up once its state took longer than that to install).
    pub snapshot_timeout: Duration,
    /// Events a watcher may have queued before it is cut off.
    pub watch_buffer: usize,
    /// How long a write or linearizable read may wait for a leader.
    pub request_timeout: Duration,
    pub compaction: CompactionPolicy,
    /// TLS for calls to peers (trust and client certificate); plain HTTP
    /// without it. The peer router is served by the embedder, with the
    /// matching server side.
    pub peer_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl StoreConfig {
    pub fn new(node_id: NodeId, data_dir: impl Into<PathBuf>, advertise_addr: impl Into<String>) -> Self {
        StoreConfig {
            node_id,
            data_dir: data_dir.into(),
            advertise_addr: advertise_addr.into(),
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(400), Duration::from_millis(800)),
            snapshot_every: 50_000,
            keep_logs: 5_000,
            snapshot_timeout: Duration::from_secs(60),
            watch_buffer: 1024,
            request_timeout: Duration::from_secs(10),
            compaction: CompactionPolicy::default(),
            peer_tls: None,
        }
    }
}

/// A member's view of the cluster, for operators and tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node_id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    pub last_applied: Option<u64>,
    /// The last log index purged behind a snapshot.
    pub purged: Option<u64>,
    pub revision: Revision,
    pub compact_revision: Revision,
}

/// A handle to this node's store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    raft: Raft,
    db: Arc<Db>,
    hub: Arc<WatchHub>,
    peers: PeerClient,
    proposer: Proposer,
    config: StoreConfig,
    background: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Seals what is written and opens what is read, once set.
    transformer: std::sync::OnceLock<Arc<dyn ValueTransformer>>,
    instruments: Arc<Instruments>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("id", &self.id)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

fn leader_of(fwd: &ForwardToLeader<NodeId, BasicNode>) -> Option<(NodeId, String)> {
    match (fwd.leader_id, &fwd.leader_node) {
        (Some(id), Some(node)) => Some((id, node.addr.clone())),
        _ => None,
    }
}

impl Store {
    /// Opens the node's store, recovering whatever is on disk. The node
    /// takes part in no cluster until [`Store::initialize`] is called (on
    /// a new cluster) or a leader adds it.
    pub async fn open(config: StoreConfig) -> Result<Store> {
        let db = Arc::new(Db::open(&config.data_dir.join("db"))?);
        let (revision, _) = db.revisions()?;
        let hub = Arc::new(WatchHub::new(revision));
        let instruments = Arc::new(Instruments::default());
        let log = LogStore::new(db.clone(), instruments.clone()).map_err(|e| Error::io("syncer thread", e))?;
        let sm = StateMachine::open(
            db.clone(),
            hub.clone(),
            config.data_dir.join("snapshots"),
            instruments.clone(),
        )?;
        let raft_config = openraft::Config {
            cluster_name: "skiff".into(),
            heartbeat_interval: millis(config.heartbeat_interval),
            election_timeout_min: millis(config.election_timeout.0),
            election_timeout_max: millis(config.election_timeout.1),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.keep_logs,
            install_snapshot_timeout: millis(config.snapshot_timeout),
            max_payload_entries: 1024,
            snapshot_max_chunk_size: 4 << 20,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::invalid(format!("raft configuration: {e}")))?;
        let peers = PeerClient::new(config.peer_tls.clone())?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            Network::new(peers.clone()),
            log,
            sm,
        )
        .await
        .map_err(|e| {
            Error::corrupt(format!(
                "raft state in {} is inconsistent and cannot be recovered: {e}",
                config.data_dir.display()
            ))
        })?;
        let (proposer, proposing) = Proposer::spawn(raft.clone(), instruments.clone());
        let leaders = tokio::spawn(crate::metrics::count_leader_changes(
            raft.server_metrics(),
            instruments.clone(),
        ));
        let store = Store {
            inner: Arc::new(Inner {
                id: config.node_id,
                raft,
                db,
                hub,
                peers,
                proposer,
                config,
                background: std::sync::Mutex::new(vec![proposing, leaders]),
                transformer: std::sync::OnceLock::new(),
                instruments,
            }),
        };
        if store.inner.config.compaction.enabled {
            let task = tokio::spawn(compactor::run(store.clone(), store.inner.config.compaction.clone()));
            store.add_background(task);
        }
        Ok(store)
    }

    fn add_background(&self, task: tokio::task::JoinHandle<()>) {
        if let Ok(mut tasks) = self.inner.background.lock() {
            tasks.push(task);
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.id
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Makes this node the first member of a new cluster whose voters are
    /// `members` (id → peer address). Safe to call on every listed member
    /// and on restart: a node that is already part of a cluster ignores it.
    pub async fn initialize(&self, members: BTreeMap<NodeId, String>) -> Result<()> {
        if self.inner.raft.is_initialized().await.map_err(Error::raft)? {
            return Ok(());
        }
        let nodes: BTreeMap<NodeId, BasicNode> =
            members.into_iter().map(|(id, addr)| (id, BasicNode { addr })).collect();
        match self.inner.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(Error::raft(e)),
        }
    }

    /// Initializes a one-node cluster of just this node, if it is new.
    pub async fn initialize_single(&self) -> Result<()> {
        let me = BTreeMap::from([(self.inner.id, self.inner.config.advertise_addr.clone())]);
        self.initialize(me).await
    }

    /// Waits until some node is known as leader, or `timeout` passes.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId> {
        let metrics = self
            .inner
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(|e| Error::Unavailable {
                reason: format!("no leader elected: {e}"),
            })?;
        metrics.current_leader.ok_or_else(|| Error::Unavailable {
            reason: "no leader elected".into(),
        })
    }

    /// From now on, seals every value this handle writes and opens every
    /// value it reads with `transformer` (see [`ValueTransformer`]); set
    /// once, before the store is used. `false` if one was set already.
    pub fn set_transformer(&self, transformer: Arc<dyn ValueTransformer>) -> bool {
        self.inner.transformer.set(transformer).is_ok()
    }

    fn transformer(&self) -> Option<&dyn ValueTransformer> {
        self.inner.transformer.get().map(|t| t.as_ref())
    }

    /// Applies a transaction through raft and returns its outcome.
    pub async fn txn(&self, mut txn: Txn) -> Result<TxnResponse> {
        txn.validate().map_err(Error::invalid)?;
        if let Some(transformer) = self.transformer() {
            transform::seal_txn(transformer, &mut txn)?;
        }
        let mut response = self.write(Command::Txn(txn)).await?.into_txn()?;
        if let Some(transformer) = self.transformer() {
            transform::open_results(transformer, &mut response.results)?;
        }
        Ok(response)
    }

    /// Compacts history below `revision`. Reads and watches at older
    /// revisions fail with [`Error::Compacted`] afterwards.
    pub async fn compact(&self, revision: Revision) -> Result<Revision> {
        match self.write(Command::Compact { revision }).await? {
            CommandResponse::Compacted { revision } => Ok(revision),
            CommandResponse::Rejected(Rejection::AlreadyCompacted { compact_revision }) => {
                Err(Error::Compacted { compact_revision })
            }
            CommandResponse::Rejected(Rejection::FutureRevision { requested, current }) => {
                Err(Error::FutureRevision { requested, current })
            }
            other => Err(Error::corrupt(format!("compact answered with {other:?}"))),
        }
    }

    /// Proposes `command`, forwarding to the leader if this node is not it.
    /// A proposal that was handed over and then went unanswered is
    /// [`Error::Indeterminate`]: it may have been applied. Only a request
    /// that reached no leader is tried again.
    async fn write(&self, command: Command) -> Result<CommandResponse> {
        let deadline = Instant::now() + self.inner.config.request_timeout;
        loop {
            let leader = match self.write_local(command.clone(), deadline).await {
                Err(Error::NotLeader { leader }) => leader,
                other => return other.map_err(indeterminate),
            };
            let answer = match &leader {
                Some((id, addr)) if *id != self.inner.id => {
                    self.forward(addr, Forwarded::Write(command.clone()), deadline).await
                }
                _ => Err(Error::NotLeader { leader: None }),
            };
            match answer {
                Ok(ForwardedReply::Write(resp)) => return Ok(resp),
                Ok(other) => return Err(Error::corrupt(format!("leader answered a write with {other:?}"))),
                // Leadership moved, or none yet: wait a little and retry
                // until the deadline.
                Err(Error::NotLeader { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(Error::NotLeader { leader }) => {
                    return Err(match leader {
                        Some(_) => Error::NotLeader { leader },
                        None => Error::Unavailable {
                            reason: "no leader elected before the request timed out".into(),
                        },
                    });
                }
                Err(e) => return Err(indeterminate(e)),
            }
        }
    }

    /// Proposes `command` on this node; `NotLeader` if it is not the leader.
    pub(crate) async fn write_local(&self, command: Command, deadline: Instant) -> Result<CommandResponse> {
        if let Command::Txn(txn) = command {
            return self.inner.proposer.propose(txn, deadline).await;
        }
        let proposal = self.inner.raft.client_write(command);
        match tokio::time::timeout_at(deadline.into(), proposal).await {
            Err(_) => Err(Error::Unavailable {
                reason: "write not committed before the request timed out (it may still be applied)".into(),
            }),
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(e)) => Err(crate::proposer::write_error(&e)),
        }
    }

    async fn forward(&self, addr: &str, req: Forwarded, deadline: Instant) -> Result<ForwardedReply> {
        self.inner.peers.forward(addr, &req, deadline).await
    }

    /// Reads a range at the requested consistency.
    pub async fn range(&self, req: RangeRequest, consistency: ReadConsistency) -> Result<RangeResponse> {
        let mut response = self.range_stored(req, consistency).await?;
        if let Some(transformer) = self.transformer() {
            transform::open_kvs(transformer, &mut response.kvs)?;
        }
        Ok(response)
    }

    /// [`range`](Self::range) with values as stored (sealed), for remote
    /// clients.
    pub(crate) async fn range_stored(&self, req: RangeRequest, consistency: ReadConsistency) -> Result<RangeResponse> {
        if consistency == ReadConsistency::Linearizable {
            self.read_barrier().await?;
        }
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || db.range(&req))
            .await
            .map_err(Error::raft)?
    }

    /// Reads one key (latest, linearizable).
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<crate::kv::KeyValue>> {
        let resp = self
            .range(RangeRequest::new(KeyRange::key(key)), ReadConsistency::Linearizable)
            .await?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Waits until this node has applied everything committed before the
    /// call, as confirmed by the leader's quorum (raft read index).
    pub async fn read_barrier(&self) -> Result<()> {
        let deadline = Instant::now() + self.inner.config.request_timeout;
        loop {
            let index = match self.read_index_local().await {
                Err(Error::NotLeader {
                    leader: Some((id, addr)),
                }) if id != self.inner.id => match self.forward(&addr, Forwarded::ReadIndex, deadline).await {
                    Ok(ForwardedReply::ReadIndex(index)) => Ok(index),
                    Ok(other) => Err(Error::corrupt(format!("leader answered a read index with {other:?}"))),
                    Err(e) => Err(e),
                },
                other => other,
            };
            match index {
                Ok(index) => return self.wait_applied(index, deadline).await,
                Err(Error::NotLeader { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // The leader could not hear from a quorum in time (a busy
                // machine, a peer restarting): asking again is safe for a
                // read, and a leader cut off for good runs into the
                // deadline.
                Err(Error::Unavailable { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(Error::NotLeader { .. }) => {
                    return Err(Error::Unavailable {
                        reason: "no leader to confirm a linearizable read".into(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The leader's read index: the log index a linearizable read must see.
    pub(crate) async fn read_index_local(&self) -> Result<u64> {
        match self.inner.raft.get_read_log_id().await {
            Ok((read, _applied)) => Ok(read.map_or(0, |l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(fwd))) => Err(Error::NotLeader {
                leader: leader_of(&fwd),
            }),
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q))) => Err(Error::Unavailable {
                reason: format!("quorum not reachable: {q}"),
            }),
            Err(RaftError::Fatal(_)) => Err(Error::Shutdown),
        }
    }

    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<()> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.inner
            .raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|e| Error::Unavailable {
                reason: format!("replica did not catch up for a linearizable read: {e}"),
            })
    }

    /// Watches `range` from `from` (inclusive; `0` for "from now on").
    /// Events before the current revision are replayed from disk first.
    pub async fn watch(&self, range: KeyRange, from: Revision) -> Result<Watcher> {
        range.validate().map_err(Error::invalid)?;
        let (_, compacted) = self.inner.db.revisions()?;
        if from != 0 && from < compacted {
            return Err(Error::Compacted {
                compact_revision: compacted,
            });
        }
        let (mut watcher, slot) = Watcher::new(range, self.inner.config.watch_buffer);
        if let Some(transformer) = self.inner.transformer.get() {
            watcher.open_with(transformer.clone());
        }
        let hub = self.inner.hub.clone();
        let start = if from == 0 { hub.revision() + 1 } else { from };
        // Nothing to replay: register synchronously so no event can slip by.
        let slot = match hub.register_from(start, slot) {
            Ok(()) => return Ok(watcher),
            Err((slot, _)) => slot,
        };
        let db = self.inner.db.clone();
        tokio::spawn(async move {
            let mut next = start;
            let mut slot = slot;
            loop {
                let head = hub.revision();
                if next <= head {
                    let (db, range) = (db.clone(), slot.range().clone());
                    let replay = tokio::task::spawn_blocking(move || db.changes(&range, next, head, 1000)).await;
                    let (events, covered) = match replay {
                        Ok(Ok(found)) => found,
                        Ok(Err(e)) => {
                            slot.send(Err(e)).await;
                            return;
                        }
                        Err(e) => {
                            slot.send(Err(Error::raft(e))).await;
                            return;
                        }
                    };
                    if !events.is_empty() && !slot.send(Ok(events)).await {
                        return;
                    }
                    next = covered + 1;
                    continue;
                }
                match hub.register_from(next, slot) {
                    Ok(()) => return,
                    Err((back, _)) => slot = back,
                }
            }
        });
        Ok(watcher)
    }

    /// The store's metrics, to register in the process's registry (see
    /// [`crate::metrics`]).
    pub fn metrics(&self) -> Metrics {
        Metrics::new(
            self.inner.instruments.clone(),
            self.inner.raft.metrics(),
            self.inner.config.data_dir.join("db"),
            self.inner.hub.clone(),
        )
    }

    /// This node's view of the cluster.
    pub fn status(&self) -> ClusterStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        let (revision, compact_revision) = self.inner.db.revisions().unwrap_or((0, 0));
        ClusterStatus {
            node_id: self.inner.id,
            leader: m.current_leader,
            term: m.current_term,
            voters,
            learners,
            last_applied: m.last_applied.map(|l| l.index),
            purged: m.purged.map(|l| l.index),
            revision,
            compact_revision,
        }
    }

    /// The latest revision this node has applied.
    pub fn revision(&self) -> Revision {
        self.inner.hub.revision()
    }

    /// Reads every key in `range` as stored and, unless `dry_run`, writes
    /// again (sealed as the transformer seals now) each one whose stored
    /// form is not the current one: a key rotation's last step. A key
    /// written meanwhile is left alone, being current already. Every
    /// rewrite is a write like any other (a new revision, a MODIFIED
    /// event), as a `kubectl replace` of the object would be.
    pub async fn reseal(&self, range: KeyRange, dry_run: bool) -> Result<transform::Resealed> {
        let Some(transformer) = self.inner.transformer.get().cloned() else {
            return Ok(transform::Resealed::default());
        };
        let mut report = transform::Resealed::default();
        let mut start = range.start().to_vec();
        loop {
            let page = match &range {
                KeyRange::Key(_) => range.clone(),
                KeyRange::Between { end, .. } => KeyRange::between(start.clone(), end.clone()),
                KeyRange::From(_) => KeyRange::From(start.clone()),
            };
            let response = self
                .range_stored(RangeRequest::new(page).limit(500), ReadConsistency::Linearizable)
                .await?;
            for kv in &response.kvs {
                report.checked += 1;
                let form = transformer.form(&kv.key, &kv.value);
                *report.forms.entry(form.name).or_default() += 1;
                if form.current || dry_run {
                    continue;
                }
                let value = transformer.open(&kv.key, kv.value.clone()).map_err(|e| {
                    Error::corrupt(format!(
                        "the value of {} cannot be opened: {e}",
                        String::from_utf8_lossy(&kv.key)
                    ))
                })?;
                let txn = Txn::new()
                    .when([crate::kv::Compare::mod_revision(
                        kv.key.clone(),
                        crate::kv::CompareOp::Equal,
                        kv.mod_revision,
                    )])
                    .and_then([crate::kv::TxnOp::put(kv.key.clone(), value)]);
                if self.txn(txn).await?.succeeded {
                    report.rewritten += 1;
                }
            }
            match (response.more, response.kvs.last()) {
                (true, Some(last)) => {
                    start = last.key.clone();
                    start.push(0);
                }
                _ => return Ok(report),
            }
        }
    }

    /// The node's database, for what works on it directly (backups).
    pub(crate) fn inner_db(&self) -> Arc<Db> {
        self.inner.db.clone()
    }

    /// The current compaction point.
    pub fn compact_revision(&self) -> Result<Revision> {
        Ok(self.inner.db.revisions()?.1)
    }

    /// Asks raft to build a snapshot now (and purge the log behind it).
    pub async fn snapshot(&self) -> Result<()> {
        self.inner.raft.trigger().snapshot().await.map_err(Error::raft)
    }

    /// Stops the background tasks (waiting until they are gone) and the
    /// raft node, and ends every watch. The database closes when the last
    /// handle is dropped; [`Store::closed`] says when that has happened.
    pub async fn shutdown(&self) -> Result<()> {
        let tasks = match self.inner.background.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(_) => Vec::new(),
        };
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            // An aborted task ends as cancelled; any other ending is as good.
            let _ = task.await;
        }
        let stopped = self.inner.raft.shutdown().await.map_err(Error::raft);
        // Watches end cleanly, so what serves them lets go of the store.
        self.inner.hub.close();
        stopped
    }

    /// Resolves once the node's database is closed: after
    /// [`Store::shutdown`], when every handle (this one's clones, the peer
    /// router's, raft's storage) has been dropped. A process awaits it
    /// before it exits, because RocksDB aborts the process if it exits
    /// while a database is still closing on another thread.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.db.closed()
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().current_leader == Some(self.inner.id)
    }
}

impl Compactable for Store {
    fn is_leader(&self) -> bool {
        Store::is_leader(self)
    }

    fn revision(&self) -> Revision {
        Store::revision(self)
    }

    fn compact_revision(&self) -> Result<Revision> {
        Store::compact_revision(self)
    }

    async fn compact(&self, revision: Revision) -> Result<Revision> {
        Store::compact(self, revision).await
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A write error as its caller must read it: once a proposal was handed
/// to a leader, "unavailable" means its outcome is unknown.
fn indeterminate(error: Error) -> Error {
    match error {
        Error::Unavailable { reason } => Error::Indeterminate { reason },
        other => other,
    }
}
