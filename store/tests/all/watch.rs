//! Watches: replay from the past, live events, ordering, and cut-off.

use std::time::Duration;

use skiff_store::{Error, EventKind, KeyRange, Txn, TxnOp};

use crate::support::{single, single_with};

#[tokio::test]
async fn watch_replays_from_a_past_revision_then_follows_live_writes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = &node.store;
    let start = s
        .txn(Txn::new().and_then([TxnOp::put("/w/a", "1")]))
        .await
        .unwrap()
        .revision;
    s.txn(Txn::new().and_then([TxnOp::put("/other", "x")])).await.unwrap();
    s.txn(Txn::new().and_then([TxnOp::put("/w/a", "2")])).await.unwrap();
    s.txn(Txn::new().and_then([TxnOp::delete("/w/a")])).await.unwrap();

    let mut w = s.watch(KeyRange::prefix("/w/"), start).await.unwrap();
    // Live writes race the replay; the stream must still be gap-free and in order.
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                s.txn(Txn::new().and_then([TxnOp::put(format!("/w/live{i}"), "v")]))
                    .await
                    .unwrap();
            }
        })
    };
    let mut events = Vec::new();
    while events.len() < 23 {
        let batch = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("events in time")
            .expect("stream open")
            .expect("no error");
        events.extend(batch);
    }
    writer.await.unwrap();
    let revs: Vec<u64> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert!(
        revs.windows(2).all(|p| p[0] < p[1]),
        "revisions strictly increase: {revs:?}"
    );
    assert_eq!(events[0].kind, EventKind::Put);
    assert_eq!(events[0].kv.value, b"1");
    assert_eq!(events[1].prev_kv.as_ref().unwrap().value, b"1");
    assert_eq!(events[2].kind, EventKind::Delete);
    assert_eq!(events[2].prev_kv.as_ref().unwrap().value, b"2");
    assert!(events.iter().all(|e| e.kv.key.starts_with(b"/w/")));
    node.stop().await;
}

#[tokio::test]
async fn a_watch_from_now_sees_only_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = &node.store;
    s.txn(Txn::new().and_then([TxnOp::put("/n/old", "1")])).await.unwrap();
    let mut w = s.watch(KeyRange::prefix("/n/"), 0).await.unwrap();
    let rev = s
        .txn(Txn::new().and_then([TxnOp::put("/n/new", "1")]))
        .await
        .unwrap()
        .revision;
    let batch = w.next().await.unwrap().unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(
        (batch[0].kv.key.as_slice(), batch[0].kv.mod_revision),
        (&b"/n/new"[..], rev)
    );

    // A watch that starts in the future waits for that revision.
    let mut future = s.watch(KeyRange::prefix("/n/"), rev + 2).await.unwrap();
    s.txn(Txn::new().and_then([TxnOp::put("/n/skipped", "1")]))
        .await
        .unwrap();
    let wanted = s
        .txn(Txn::new().and_then([TxnOp::put("/n/wanted", "1")]))
        .await
        .unwrap()
        .revision;
    let batch = future.next().await.unwrap().unwrap();
    assert_eq!(batch[0].kv.mod_revision, wanted);
    node.stop().await;
}

#[tokio::test]
async fn a_watcher_that_falls_behind_is_cut_off_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = single_with(dir.path(), |c| c.watch_buffer = 4).await;
    let s = &node.store;
    let mut w = s.watch(KeyRange::prefix("/slow/"), 0).await.unwrap();
    for i in 0..20 {
        s.txn(Txn::new().and_then([TxnOp::put(format!("/slow/{i}"), "v")]))
            .await
            .unwrap();
    }
    let mut received = 0;
    let outcome = loop {
        match w.next().await {
            Some(Ok(batch)) => received += batch.len(),
            Some(Err(e)) => break e,
            None => panic!("stream ended without an error after {received} events"),
        }
    };
    assert!(matches!(outcome, Error::WatchLagged { buffered: 4 }), "{outcome}");
    assert!(
        received <= 4,
        "at most the buffer is delivered before the cut-off: {received}"
    );
    node.stop().await;
}
