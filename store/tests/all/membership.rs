//! Membership changes under load: a fourth node joins and an original
//! follower is removed while a writer keeps writing, and the two changes
//! overlap; every acknowledged write is on the members that remain, with
//! its value and revision. Bad removals are refused and change nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use skiff_store::{Client, Error, Member, MemberRole, ReadConsistency, Txn, TxnOp};
use skiff_testing::eventually;
use tokio::net::TcpListener;

use crate::support::{LIMIT, Writer, assert_holds, cluster, leader_index, open_unserved, single};

/// The ids of `members` with `role`.
fn with_role(members: &[Member], role: MemberRole) -> BTreeSet<u64> {
    members.iter().filter(|m| m.role == role).map(|m| m.id).collect()
}

/// Three nodes under a steady writer. Node 4 joins; while the leader
/// waits for it to catch up (its peer port is bound but not yet served,
/// so the wait is held open), an original follower is removed through
/// the other follower. Then node 4 catches up and becomes a voter: the
/// join does not undo the removal that was committed while it waited.
/// The removed node, still running, campaigns for a term of its own and
/// the cluster keeps taking writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_and_another_is_removed_while_writes_go_on() {
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(root.path(), 3, |_| {}).await;
    let leader = leader_index(&nodes).await;
    let (removed, kept) = ((leader + 1) % 3, (leader + 2) % 3);
    let leader_id = nodes[leader].store.node_id();
    let (removed_id, kept_id) = (nodes[removed].store.node_id(), nodes[kept].store.node_id());
    let client = Client::new(vec![nodes[leader].addr.clone(), nodes[kept].addr.clone()]).unwrap();
    let writer = Writer::start(client, "/load/", Duration::from_secs(60));
    writer.wait_for_more(50, "writes before any change").await;

    // An id that is no member is refused, through a follower as on the leader.
    for node in [&nodes[kept], &nodes[leader]] {
        let refused = node.store.remove_member(9).await;
        assert!(matches!(refused, Err(Error::NotAMember { node_id: 9 })), "{refused:?}");
    }
    assert_eq!(
        with_role(&nodes[leader].store.members(), MemberRole::Voter),
        BTreeSet::from([1, 2, 3])
    );

    // Node 4 asks to join; the leader adds it as a learner and waits.
    let listener = TcpListener::bind("127.0.0.4:0").await.unwrap();
    let newcomer = open_unserved(4, &root.path().join("n4"), listener, |_| {}).await;
    let joining = tokio::spawn({
        let (store, via) = (newcomer.store.clone(), nodes[kept].addr.clone());
        async move { store.join(&via).await }
    });
    eventually(LIMIT, "node 4 to be a learner", || async {
        nodes[leader].store.status().learners.contains(&4).then_some(())
    })
    .await
    .unwrap();

    // Meanwhile a follower is removed, asked of the other follower.
    nodes[kept].store.remove_member(removed_id).await.unwrap();
    let status = nodes[leader].store.status();
    assert_eq!(status.voters, BTreeSet::from([leader_id, kept_id]));
    assert_eq!(status.learners, BTreeSet::from([4]), "the removed node is no learner");
    writer.wait_for_more(50, "writes after the removal").await;
    // Removing it again: it is no member any more.
    let again = nodes[leader].store.remove_member(removed_id).await;
    assert!(
        matches!(again, Err(Error::NotAMember { node_id }) if node_id == removed_id),
        "{again:?}"
    );

    // Node 4 is reachable now: it catches up and becomes a voter, next to
    // the two that remain.
    let newcomer = newcomer.serve();
    tokio::time::timeout(Duration::from_secs(60), joining)
        .await
        .expect("the join finishes")
        .unwrap()
        .expect("node 4 joins");
    let members = nodes[leader].store.members();
    assert_eq!(
        with_role(&members, MemberRole::Voter),
        BTreeSet::from([leader_id, kept_id, 4])
    );
    assert_eq!(with_role(&members, MemberRole::Learner), BTreeSet::new());
    let newcomer_addr = members.iter().find(|m| m.id == 4).map(|m| m.addr.clone());
    assert_eq!(newcomer_addr.as_deref(), Some(newcomer.addr.as_str()));
    // A member lists what the leader lists, over the peer router too.
    let listed = eventually(LIMIT, "the follower to list the new configuration", || async {
        let listed = Client::new(vec![nodes[kept].addr.clone()])
            .unwrap()
            .members(&nodes[kept].addr)
            .await
            .ok()?;
        (listed == members).then_some(listed)
    })
    .await
    .unwrap();
    assert_eq!(listed.len(), 3);

    // The removed node hears from no leader: it campaigns, in vain, and
    // the cluster keeps taking writes.
    eventually(LIMIT, "the removed node to campaign", || async {
        (nodes[removed].store.status().term > nodes[leader].store.status().term).then_some(())
    })
    .await
    .unwrap();
    writer
        .wait_for_more(100, "writes while the removed node campaigns")
        .await;
    assert_eq!(nodes[leader].store.status().leader, Some(leader_id));

    let (acks, failures) = writer.stop().await;
    println!("{} writes acknowledged, {failures} failed", acks.len());
    assert!(acks.windows(2).all(|w| w[0].revision < w[1].revision));
    for store in [&nodes[leader].store, &nodes[kept].store, &newcomer.store] {
        assert_holds(store, "/load/", &acks, ReadConsistency::Linearizable).await;
    }
    // One more write, through the newcomer.
    newcomer
        .store
        .txn(Txn::new().and_then([TxnOp::put("/load/last", "x")]))
        .await
        .unwrap();

    newcomer.stop().await;
    for node in nodes {
        node.stop().await;
    }
}

/// A one-node cluster cannot remove its only voter, nor a node it never
/// had; either refusal leaves the cluster as it was, taking writes.
#[tokio::test]
async fn the_last_voter_and_unknown_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let last = node.store.remove_member(1).await;
    assert!(matches!(last, Err(Error::LastVoter { node_id: 1 })), "{last:?}");
    assert!(last.unwrap_err().to_string().contains("last voter"));
    let unknown = node.store.remove_member(2).await;
    assert!(matches!(unknown, Err(Error::NotAMember { node_id: 2 })), "{unknown:?}");
    let status = node.store.status();
    assert_eq!(
        (status.voters, status.learners, status.leader),
        (BTreeSet::from([1]), BTreeSet::new(), Some(1))
    );
    node.store
        .txn(Txn::new().and_then([TxnOp::put("/after", "x")]))
        .await
        .unwrap();
    // The same answers reach a remote client.
    let client = Client::new(vec![node.addr.clone()]).unwrap();
    let remote = client.remove_member(1).await;
    assert!(matches!(remote, Err(Error::LastVoter { node_id: 1 })), "{remote:?}");
    node.stop().await;
}
