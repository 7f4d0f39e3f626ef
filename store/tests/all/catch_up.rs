//! A follower that lags past a log purge catches up by snapshot while
//! writes go on, and SIGKILL while that snapshot reaches it (once while
//! it streams in, once while it is being installed) corrupts nothing.
//!
//! The follower is a child process ([`ProcessNode`]), so the kills are
//! real: no destructor runs, nothing is flushed that was not flushed
//! already. The moment of each kill is read from the outside, as the
//! node's files show it: the unlinked file a snapshot streams into (an
//! open descriptor of the process), then the copy being made
//! (`snapshot-…snap.partial`) or the received snapshot about to be
//! installed. After each kill the node's data directory is opened
//! offline and must hold one revision's state whole: every acknowledged
//! write at or below its revision, and nothing above it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skiff_store::{Client, KeyRange, KeyValue, RangeRequest, ReadConsistency, Store, StoreConfig, Txn, TxnOp};
use skiff_testing::eventually;

use crate::support::{Ack, LIMIT, ProcessNode, ProcessSettings, Writer, cluster, leader_index, missing};

/// Snapshots are built often and keep few log entries behind them, so a
/// follower down for a moment is past the purge.
fn settings() -> ProcessSettings {
    ProcessSettings {
        snapshot_every: 500,
        keep_logs: 20,
    }
}

/// State written before the follower falls behind, so the snapshot it is
/// sent takes a moment to stream (more than one chunk) and install: 120
/// transactions of 10 keys of 4 KiB, about 10 MB of snapshot with their
/// history.
const BULK: (usize, usize, usize) = (120, 10, 4096);

fn bulk_value(batch: usize, i: usize) -> Vec<u8> {
    format!("{batch:03}/{i:03}|").into_bytes().repeat(BULK.2 / 8)
}

/// The step of a snapshot's arrival a kill aims at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Chunks are being written into the (unlinked) incoming file.
    Streaming,
    /// The whole snapshot is in: it is being copied aside or installed.
    Installing,
}

/// The snapshot files in a node's `snapshots/` directory.
fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The last log index a snapshot file's name carries
/// (`snapshot-TERM-NODE-INDEX.snap`, maybe `.partial`).
fn snapshot_index(name: &str) -> Option<u64> {
    let id = name.strip_prefix("snapshot-")?.split(".snap").next()?;
    id.rsplit('-').next()?.parse().ok()
}

/// What shows that process `pid` (data in `dir`) is in `phase` of taking
/// a snapshot past log index `mark`, or `None`.
fn in_phase(pid: u32, dir: &Path, mark: u64, phase: Phase) -> Option<String> {
    match phase {
        Phase::Streaming => {
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
            fds.flatten().find_map(|fd| {
                let target = std::fs::read_link(fd.path()).ok()?;
                let target = target.to_string_lossy();
                let received = std::fs::metadata(fd.path()).ok()?.len();
                (target.contains("/snapshots/incoming-") && target.ends_with("(deleted)") && received > 0)
                    .then(|| format!("{received} bytes streamed into {target}"))
            })
        }
        Phase::Installing => snapshot_files(dir)
            .into_iter()
            .find(|name| snapshot_index(name).is_some_and(|index| index > mark))
            .map(|name| format!("{name} in snapshots/")),
    }
}

/// Polls, every millisecond for at most `limit`, until [`in_phase`]
/// shows the phase, then kills the process at once. A millisecond, not
/// the usual polling interval: a phase lasts a fraction of a second.
fn kill_in(node: &mut ProcessNode, mark: u64, phase: Phase, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(seen) = in_phase(node.pid(), &node.dir, mark, phase) {
            node.kill();
            return seen;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("node {} did not reach {phase:?} within {limit:?}", node.id);
}

/// What a node's data directory holds, read offline (the node opened in
/// this process, its peer port closed and its elections far off).
struct Offline {
    applied: Option<u64>,
    revision: u64,
    kvs: Vec<KeyValue>,
}

async fn offline(id: u64, dir: &Path) -> Offline {
    let mut config = StoreConfig::new(id, dir, "127.0.0.1:1");
    config.election_timeout = (Duration::from_secs(60), Duration::from_secs(120));
    config.compaction.enabled = false;
    settings().tune(&mut config);
    let store = Store::open(config).await.expect("the killed node's data opens");
    // The metrics show what was recovered once raft has started.
    let status = eventually(LIMIT, "the node's recovered state", || async {
        let status = store.status();
        status.last_applied.is_some().then_some(status)
    })
    .await
    .unwrap();
    let kvs = store
        .range(RangeRequest::new(KeyRange::prefix("/")), ReadConsistency::Serializable)
        .await
        .unwrap()
        .kvs;
    let _ = store.shutdown().await;
    let closed = store.closed();
    drop(store);
    tokio::time::timeout(LIMIT, closed).await.expect("the database closes");
    Offline {
        applied: status.last_applied,
        revision: status.revision,
        kvs,
    }
}

/// Asserts that `state` is one revision's state, whole: the bulk keys,
/// every acknowledged write at or below its revision, nothing newer.
fn assert_whole(state: &Offline, acks: &[Ack], what: &str) {
    let newer: Vec<&KeyValue> = state.kvs.iter().filter(|kv| kv.mod_revision > state.revision).collect();
    assert!(
        newer.is_empty(),
        "{what}: keys newer than revision {}: {newer:?}",
        state.revision
    );
    let bulk = state.kvs.iter().filter(|kv| kv.key.starts_with(b"/bulk/")).count();
    assert_eq!(bulk, BULK.0 * BULK.1, "{what}: the bulk keys");
    for kv in state.kvs.iter().filter(|kv| kv.key.starts_with(b"/bulk/")) {
        let name = String::from_utf8_lossy(&kv.key[6..]).into_owned();
        let (batch, i) = name.split_once('/').unwrap();
        assert_eq!(
            kv.value,
            bulk_value(batch.parse().unwrap(), i.parse().unwrap()),
            "{what}: {name}"
        );
    }
    let missing = missing(&state.kvs, acks, state.revision);
    assert!(missing.is_empty(), "{what}: acknowledged writes missing: {missing:?}");
}

/// What a node reports over its peer router.
async fn remote_status(addr: &str) -> Option<skiff_store::ClusterStatus> {
    Client::new(vec![addr.to_string()]).ok()?.status(addr).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_catches_up_by_snapshot_under_load_and_survives_sigkill() {
    // `RUST_LOG` shows the in-process nodes' logs, `SKIFF_CHILD_LOG` node 3's.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(root.path(), 2, |c| settings().tune(c)).await;
    let client = || Client::new(nodes.iter().map(|n| n.addr.clone()).collect()).unwrap();
    // Four transactions at a time, so raft entries stay small.
    let bulk = std::sync::Arc::new(client());
    for first in (0..BULK.0).step_by(4) {
        let mut writes = tokio::task::JoinSet::new();
        for batch in first..(first + 4).min(BULK.0) {
            let bulk = bulk.clone();
            writes.spawn(async move {
                let puts = (0..BULK.1).map(|i| TxnOp::put(format!("/bulk/{batch:03}/{i:03}"), bulk_value(batch, i)));
                bulk.txn(Txn::new().and_then(puts)).await.unwrap();
            });
        }
        while let Some(done) = writes.join_next().await {
            done.unwrap();
        }
    }

    println!("{:?}: bulk state written", started.elapsed());
    // Node 3, in a child process, joins and catches up.
    let addr = format!("127.0.0.1:{}", skiff_testing::free_port().unwrap());
    let dir: PathBuf = root.path().join("n3");
    let mut child = ProcessNode::spawn(3, &dir, &addr, Some(&nodes[0].addr), &settings());
    let leader = leader_index(&nodes).await;
    eventually(Duration::from_secs(30), "node 3 to join as a voter", || async {
        nodes[leader].store.status().voters.contains(&3).then_some(())
    })
    .await
    .unwrap();
    let writer = Writer::start(client(), "/load/", Duration::from_secs(120));
    writer.wait_for_more(50, "writes with three voters").await;
    let applied = nodes[leader].store.status().last_applied;
    eventually(LIMIT, "node 3 to catch up", || async {
        (remote_status(&addr).await?.last_applied >= applied).then_some(())
    })
    .await
    .unwrap();

    // It goes down; the others write on, snapshot and purge the log past it.
    child.kill();
    writer.wait_for_more(50, "writes while node 3 is down").await;
    let mark = nodes[leader].store.status().last_applied.unwrap();
    eventually(LIMIT, "the log to be purged past node 3", || async {
        for node in &nodes {
            let _ = node.store.snapshot().await;
        }
        nodes
            .iter()
            .all(|n| n.store.status().purged.is_some_and(|p| p > mark))
            .then_some(())
    })
    .await
    .unwrap();
    println!("{:?}: node 3 is behind the purge", started.elapsed());
    let before = offline(3, &dir).await;
    assert!(
        before.applied.is_some_and(|a| a < mark),
        "node 3 is behind the purge: applied {:?}, purged past {mark}",
        before.applied
    );
    assert_whole(&before, &writer.acks(), "before the snapshot");

    // Started again it is sent a snapshot: killed while it streams in.
    child.restart();
    let streaming = tokio::task::block_in_place(|| kill_in(&mut child, mark, Phase::Streaming, LIMIT));
    let files = snapshot_files(&dir);
    assert!(
        in_phase(0, &dir, mark, Phase::Installing).is_none(),
        "the kill came before the install began: {files:?}"
    );
    // Restarted, it may first apply entries its own log already held
    // committed; the snapshot itself must not have been taken in.
    let after_streaming = offline(3, &dir).await;
    assert!(
        after_streaming.applied >= before.applied && after_streaming.applied.is_some_and(|a| a < mark),
        "a kill while the snapshot streams in leaves the node whole and short of it: applied {:?} (before {:?}), snapshot past {mark}",
        after_streaming.applied,
        before.applied
    );
    assert_whole(
        &after_streaming,
        &writer.acks(),
        "after a kill while the snapshot streamed in",
    );
    assert_whole(&after_streaming, &writer.acks(), "killed while streaming");
    println!(
        "{:?}: killed while streaming: {streaming}; files then: {files:?}",
        started.elapsed()
    );

    // Again: killed while it is being installed.
    child.restart();
    let installing = tokio::task::block_in_place(|| kill_in(&mut child, mark, Phase::Installing, LIMIT));
    let files = snapshot_files(&dir);
    let after_installing = offline(3, &dir).await;
    assert_whole(&after_installing, &writer.acks(), "killed while installing");
    let installed = after_installing.applied > before.applied;
    println!(
        "{:?}: killed while installing: {installing}; files then: {files:?}; the install had {}",
        started.elapsed(),
        if installed {
            "committed (the kill came before openraft's own bookkeeping)"
        } else {
            "not committed"
        }
    );
    if !installed {
        assert_eq!(
            (after_installing.applied, after_installing.revision),
            (before.applied, before.revision),
            "an install cut short leaves the node as it was"
        );
    }

    // Started once more, it catches up by snapshot while writes go on.
    child.restart();
    let target = nodes[leader].store.status().last_applied;
    eventually(Duration::from_secs(30), "node 3 to catch up past the purge", || async {
        (remote_status(&addr).await?.last_applied >= target).then_some(())
    })
    .await
    .unwrap();
    writer.wait_for_more(50, "writes after node 3 caught up").await;
    let (acks, failures) = writer.stop().await;
    println!(
        "{:?}: node 3 caught up; {} writes acknowledged, {failures} failed",
        started.elapsed(),
        acks.len()
    );

    // It converges on the leader's revision, with the same objects.
    let leader_store = &nodes[leader_index(&nodes).await].store;
    leader_store.read_barrier().await.unwrap();
    let revision = leader_store.revision();
    eventually(LIMIT, "node 3 to reach the leader's revision", || async {
        (remote_status(&addr).await?.revision == revision).then_some(())
    })
    .await
    .unwrap();
    let everything = RangeRequest::new(KeyRange::prefix("/"));
    let on_leader = leader_store
        .range(everything.clone(), ReadConsistency::Serializable)
        .await
        .unwrap();
    let on_child = Client::new(vec![addr.clone()])
        .unwrap()
        .range(everything, ReadConsistency::Serializable)
        .await
        .unwrap();
    assert_eq!(on_child.revision, revision);
    assert!(on_child.kvs == on_leader.kvs, "node 3 holds what the leader holds");
    let converged = Offline {
        applied: None,
        revision,
        kvs: on_child.kvs,
    };
    assert_whole(&converged, &acks, "after catching up");
    // Nothing is left over from the transfers cut short.
    let files = snapshot_files(&dir);
    assert!(
        files
            .iter()
            .all(|f| !f.ends_with(".partial") && !f.starts_with("incoming-")),
        "{files:?}"
    );
    tokio::task::block_in_place(|| child.stop());
    for node in nodes {
        node.stop().await;
    }
    println!("took {:?}", started.elapsed());
}
