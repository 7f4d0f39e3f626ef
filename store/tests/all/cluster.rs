//! Three nodes on 127.0.0.1-3: replication, forwarding, failover, joins
//! and snapshot transfer.

use skiff_store::{Client, KeyRange, RangeRequest, ReadConsistency, Txn, TxnOp};
use skiff_testing::eventually;
use std::collections::BTreeSet;

use crate::support::{LIMIT, cluster, leader_index, start_node};

async fn count(store: &skiff_store::Store, prefix: &str, consistency: ReadConsistency) -> u64 {
    store
        .range(RangeRequest::new(KeyRange::prefix(prefix)).with_count(), consistency)
        .await
        .unwrap()
        .count
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_fail_over_and_lose_no_acknowledged_write() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = cluster(root.path(), 3, |_| {}).await;
    let leader = leader_index(&nodes).await;
    let follower = (leader + 1) % 3;

    // Writes through a follower are forwarded to the leader.
    let mut acked = Vec::new();
    for i in 0..100 {
        let resp = nodes[follower]
            .store
            .txn(Txn::new().and_then([TxnOp::put(format!("/ha/{i:03}"), format!("{i}"))]))
            .await
            .unwrap();
        acked.push((format!("/ha/{i:03}"), resp.revision));
    }
    // A linearizable read on any node sees all of them.
    for node in &nodes {
        assert_eq!(count(&node.store, "/ha/", ReadConsistency::Linearizable).await, 100);
    }

    // Stop the leader: a new one is elected and writes continue.
    let old = nodes.remove(leader);
    let old_id = old.store.node_id();
    old.stop().await;
    let survivors = nodes;
    // The metrics may still name the old leader for a moment.
    let new_leader = eventually(LIMIT, "a new leader", || async {
        survivors[0].store.status().leader.filter(|&id| id != old_id)
    })
    .await
    .unwrap();
    assert_ne!(new_leader, old_id, "a new leader was elected");
    for i in 100..150 {
        let resp = survivors[i % 2]
            .store
            .txn(Txn::new().and_then([TxnOp::put(format!("/ha/{i:03}"), format!("{i}"))]))
            .await
            .unwrap();
        acked.push((format!("/ha/{i:03}"), resp.revision));
    }
    for node in &survivors {
        let all = node
            .store
            .range(
                RangeRequest::new(KeyRange::prefix("/ha/")),
                ReadConsistency::Linearizable,
            )
            .await
            .unwrap();
        let have: BTreeSet<(String, u64)> = all
            .kvs
            .iter()
            .map(|kv| (String::from_utf8(kv.key.clone()).unwrap(), kv.mod_revision))
            .collect();
        for ack in &acked {
            assert!(
                have.contains(ack),
                "acknowledged write {ack:?} present on node {}",
                node.store.node_id()
            );
        }
    }
    let revs: Vec<u64> = acked.iter().map(|(_, r)| *r).collect();
    assert!(
        revs.windows(2).all(|p| p[0] < p[1]),
        "revisions increase across the failover"
    );
    for node in survivors {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_joins_through_a_snapshot_and_the_client_follows_the_leader() {
    let root = tempfile::tempdir().unwrap();
    // Snapshot often so the newcomer must be sent one.
    let tune = |c: &mut skiff_store::StoreConfig| {
        c.snapshot_every = 50;
        c.keep_logs = 0;
    };
    let nodes = cluster(root.path(), 3, tune).await;
    let client = Client::new(nodes.iter().rev().map(|n| n.addr.clone()).collect()).unwrap();
    for i in 0..200 {
        client
            .txn(Txn::new().and_then([TxnOp::put(format!("/j/{i:03}"), "v")]))
            .await
            .unwrap();
    }
    let leader = leader_index(&nodes).await;
    nodes[leader].store.snapshot().await.unwrap();
    // The log behind the snapshot is gone: a newcomer can only catch up by snapshot.
    eventually(LIMIT, "the leader to purge its log behind the snapshot", || async {
        nodes[leader].store.status().purged.filter(|&p| p > 100)
    })
    .await
    .unwrap();

    let newcomer = start_node(4, &root.path().join("n4"), "127.0.0.4", None, tune).await;
    newcomer.store.join(&nodes[(leader + 1) % 3].addr).await.unwrap();
    let status = nodes[leader].store.status();
    assert_eq!(status.voters, BTreeSet::from([1, 2, 3, 4]));
    assert_eq!(count(&newcomer.store, "/j/", ReadConsistency::Linearizable).await, 200);
    let (rev, _) = (newcomer.store.revision(), ());
    assert_eq!(rev, nodes[leader].store.revision());

    // The client reads through any node; linearizable reads go to the leader.
    let page = client
        .range(
            RangeRequest::new(KeyRange::prefix("/j/")).limit(10),
            ReadConsistency::Linearizable,
        )
        .await
        .unwrap();
    assert_eq!(page.kvs.len(), 10);
    assert!(page.more);
    newcomer.stop().await;
    for node in nodes {
        node.stop().await;
    }
}
