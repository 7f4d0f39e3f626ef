//! The MVCC semantics, pinned against a real single-node store.

use skiff_store::{Compare, CompareOp, Error, KeyRange, OpResult, RangeRequest, ReadConsistency, Txn, TxnOp};

use crate::support::single;

fn put(key: &str, value: &str) -> Txn {
    Txn::new().and_then([TxnOp::put(key, value)])
}

#[tokio::test]
async fn cas_succeeds_on_the_expected_revision_and_fails_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = &node.store;

    let created = s
        .txn(
            Txn::new()
                .when([Compare::absent("/k")])
                .and_then([TxnOp::put("/k", "v1")]),
        )
        .await
        .unwrap();
    assert!(created.succeeded);

    // Create again: the guard fails, nothing is written, the revision stays.
    let again = s
        .txn(
            Txn::new()
                .when([Compare::absent("/k")])
                .and_then([TxnOp::put("/k", "v2")])
                .or_else([TxnOp::get("/k")]),
        )
        .await
        .unwrap();
    assert!(!again.succeeded);
    assert_eq!(again.revision, created.revision);
    let OpResult::Get { kvs } = &again.results[0] else {
        panic!("{again:?}")
    };
    assert_eq!(kvs[0].value, b"v1");

    // Update on the right mod revision succeeds and returns the previous value.
    let update = s
        .txn(
            Txn::new()
                .when([Compare::mod_revision("/k", CompareOp::Equal, created.revision)])
                .and_then([TxnOp::put("/k", "v2")]),
        )
        .await
        .unwrap();
    assert!(update.succeeded);
    assert_eq!(update.revision, created.revision + 1);
    let OpResult::Put { prev: Some(prev) } = &update.results[0] else {
        panic!("{update:?}")
    };
    assert_eq!(prev.value, b"v1");

    // A stale update fails.
    let stale = s
        .txn(
            Txn::new()
                .when([Compare::mod_revision("/k", CompareOp::Equal, created.revision)])
                .and_then([TxnOp::put("/k", "v3")]),
        )
        .await
        .unwrap();
    assert!(!stale.succeeded);

    let kv = s.get("/k").await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.version, kv.create_revision, kv.mod_revision),
        (&b"v2"[..], 2, created.revision, update.revision)
    );
    node.stop().await;
}

#[tokio::test]
async fn every_write_advances_one_global_revision() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = &node.store;
    let r0 = s.revision();
    let a = s.txn(put("/a", "1")).await.unwrap().revision;
    let b = s.txn(put("/b", "1")).await.unwrap().revision;
    assert_eq!((a, b), (r0 + 1, r0 + 2));
    // One transaction with several writes is one revision.
    let many = s
        .txn(Txn::new().and_then([TxnOp::put("/c", "1"), TxnOp::put("/d", "1"), TxnOp::delete("/a")]))
        .await
        .unwrap();
    assert_eq!(many.revision, r0 + 3);
    let c = s.get("/c").await.unwrap().unwrap();
    let d = s.get("/d").await.unwrap().unwrap();
    assert_eq!((c.mod_revision, d.mod_revision), (r0 + 3, r0 + 3));
    // Deleting what is not there, and reading, are not writes.
    let none = s.txn(Txn::new().and_then([TxnOp::delete("/missing")])).await.unwrap();
    assert_eq!(none.revision, r0 + 3);
    let read = s.txn(Txn::new().and_then([TxnOp::get("/c")])).await.unwrap();
    assert_eq!(read.revision, r0 + 3);
    assert_eq!(s.revision(), r0 + 3);
    node.stop().await;
}

#[tokio::test]
async fn range_reads_an_old_revision_and_pages_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = &node.store;
    for i in 0..10 {
        s.txn(put(&format!("/p/{i}"), &format!("v{i}"))).await.unwrap();
    }
    let snapshot_rev = s.revision();
    // Change the world after the revision we will page at.
    s.txn(put("/p/3", "changed")).await.unwrap();
    s.txn(Txn::new().and_then([TxnOp::delete("/p/5")])).await.unwrap();
    s.txn(put("/p/99", "new")).await.unwrap();

    let mut seen = Vec::new();
    let mut range = KeyRange::prefix("/p/");
    loop {
        let page = s
            .range(
                RangeRequest::new(range.clone()).at_revision(snapshot_rev).limit(3),
                ReadConsistency::Linearizable,
            )
            .await
            .unwrap();
        assert_eq!(page.revision, snapshot_rev);
        let last = page.kvs.last().map(|kv| kv.key.clone());
        seen.extend(
            page.kvs
                .into_iter()
                .map(|kv| (String::from_utf8(kv.key).unwrap(), String::from_utf8(kv.value).unwrap())),
        );
        if !page.more {
            break;
        }
        let mut next = last.unwrap();
        next.push(0);
        range = range.resume_at(&next).unwrap();
    }
    let expected: Vec<(String, String)> = (0..10).map(|i| (format!("/p/{i}"), format!("v{i}"))).collect();
    assert_eq!(seen, expected);

    // The latest view has the changes, and counts.
    let latest = s
        .range(
            RangeRequest::new(KeyRange::prefix("/p/")).limit(2).with_count(),
            ReadConsistency::Serializable,
        )
        .await
        .unwrap();
    assert_eq!(latest.count, Some(10));
    assert!(latest.more);
    let three = s.get("/p/3").await.unwrap().unwrap();
    assert_eq!(three.value, b"changed");
    assert!(s.get("/p/5").await.unwrap().is_none());

    // A revision that does not exist yet is refused.
    let future = s
        .range(
            RangeRequest::new(KeyRange::prefix("/p/")).at_revision(s.revision() + 10),
            ReadConsistency::Linearizable,
        )
        .await;
    assert!(matches!(future, Err(Error::FutureRevision { .. })), "{future:?}");
    node.stop().await;
}

#[tokio::test]
async fn compaction_drops_old_revisions_but_keeps_reads_at_and_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = &node.store;
    let first = s.txn(put("/c/a", "1")).await.unwrap().revision;
    s.txn(put("/c/a", "2")).await.unwrap();
    s.txn(put("/c/b", "1")).await.unwrap();
    s.txn(Txn::new().and_then([TxnOp::delete("/c/b")])).await.unwrap();
    let keep = s.txn(put("/c/a", "3")).await.unwrap().revision;
    s.txn(put("/c/z", "1")).await.unwrap();

    assert_eq!(s.compact(keep).await.unwrap(), keep);
    let old = s
        .range(
            RangeRequest::new(KeyRange::prefix("/c/")).at_revision(first),
            ReadConsistency::Serializable,
        )
        .await;
    assert!(
        matches!(old, Err(Error::Compacted { compact_revision }) if compact_revision == keep),
        "{old:?}"
    );
    let watch = s.watch(KeyRange::prefix("/c/"), first).await;
    assert!(matches!(watch, Err(Error::Compacted { .. })), "{:?}", watch.err());

    // At the compaction point everything still reads as it was.
    let at = s
        .range(
            RangeRequest::new(KeyRange::prefix("/c/")).at_revision(keep),
            ReadConsistency::Serializable,
        )
        .await
        .unwrap();
    let got: Vec<_> = at.kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
    assert_eq!(got, vec![(b"/c/a".to_vec(), b"3".to_vec())]);
    let mut w = s.watch(KeyRange::prefix("/c/"), keep).await.unwrap();
    let events = w.next().await.unwrap().unwrap();
    assert_eq!(events[0].kv.key, b"/c/a");
    assert_eq!(events[0].prev_kv.as_ref().unwrap().value, b"2");

    // Compacting again at or below the point is refused.
    assert!(matches!(s.compact(keep).await, Err(Error::Compacted { .. })));
    assert!(matches!(
        s.compact(s.revision() + 5).await,
        Err(Error::FutureRevision { .. })
    ));
    node.stop().await;
}

#[tokio::test]
async fn a_restarted_node_recovers_its_state_and_continues_the_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    for i in 0..50 {
        node.store.txn(put(&format!("/r/{i}"), "x")).await.unwrap();
    }
    node.store.snapshot().await.unwrap();
    for i in 50..60 {
        node.store.txn(put(&format!("/r/{i}"), "x")).await.unwrap();
    }
    let before = node.store.revision();
    let addr = node.addr.clone();
    node.stop().await;

    let node = crate::support::start_node(1, dir.path(), "127.0.0.1", Some(&addr), |_| {}).await;
    // The state machine comes back from RocksDB as it was, not by replaying
    // the log (which was purged behind the snapshot).
    assert_eq!(node.store.revision(), before);
    node.store.initialize_single().await.unwrap();
    node.store
        .wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let all = node
        .store
        .range(
            RangeRequest::new(KeyRange::prefix("/r/")).with_count(),
            ReadConsistency::Linearizable,
        )
        .await
        .unwrap();
    assert_eq!(all.count, Some(60));
    assert!(node.store.revision() >= before);
    let next = node.store.txn(put("/r/next", "y")).await.unwrap();
    assert_eq!(next.revision, before + 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_batched_into_one_entry_each_get_their_own_revision() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let start = node.store.revision();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let s = node.store.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("/batch/{i:03}");
            let resp = s.txn(put(&key, "v")).await.unwrap();
            (key, resp.revision)
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        let (key, rev) = t.await.unwrap();
        let kv = node.store.get(key.clone()).await.unwrap().unwrap();
        assert_eq!(
            kv.mod_revision, rev,
            "{key}: the response names the revision that wrote it"
        );
        revs.push(rev);
    }
    revs.sort_unstable();
    let expected: Vec<u64> = (start + 1..=start + 300).collect();
    assert_eq!(revs, expected, "one distinct revision per transaction, no gaps");
    node.stop().await;
}
