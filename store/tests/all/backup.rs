//! Backups: taken while writes go on, restored into a new one-node
//! cluster that serves every key at its revision, continues past a bumped
//! revision, and answers watches from the old cluster's revisions with
//! `Compacted`; damaged files are refused.

use std::time::Duration;

use skiff_store::backup;
use skiff_store::{Error, KeyRange, RangeRequest, ReadConsistency, Store, Txn, TxnOp};

use crate::support::single;

/// Every key under `/b/` at `revision` (the latest with `None`), with its
/// value and revisions.
async fn dump(store: &Store, revision: Option<u64>) -> Vec<(Vec<u8>, Vec<u8>, u64, u64)> {
    let mut request = RangeRequest::new(KeyRange::prefix("/b/"));
    if let Some(revision) = revision {
        request = request.at_revision(revision);
    }
    let response = store.range(request, ReadConsistency::Linearizable).await.unwrap();
    assert!(!response.more);
    response
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value, kv.create_revision, kv.mod_revision))
        .collect()
}

#[tokio::test]
async fn a_backup_taken_under_writes_restores_into_a_new_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = node.store.clone();
    for i in 0..40 {
        s.txn(Txn::new().and_then([TxnOp::put(format!("/b/{i:02}"), format!("v{i}"))]))
            .await
            .unwrap();
    }
    s.txn(Txn::new().and_then([TxnOp::delete("/b/07")])).await.unwrap();
    let acknowledged = s
        .txn(Txn::new().and_then([TxnOp::put("/b/03", "updated")]))
        .await
        .unwrap()
        .revision;
    // Writes go on while the backup is taken.
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                s.txn(Txn::new().and_then([TxnOp::put(format!("/b/live{i}"), "x")]))
                    .await
                    .unwrap();
            }
        })
    };
    let file = dir.path().join("backup.snap");
    let saved = s.save_backup(&file).await.unwrap();
    writer.await.unwrap();
    assert!(
        saved.revision >= acknowledged,
        "{saved:?} misses revision {acknowledged}"
    );
    assert_eq!(backup::verify(&file).unwrap(), saved);
    let expected = dump(&s, Some(saved.revision)).await;
    drop(s);
    node.stop().await;

    // A new cluster from it.
    let restored_dir = tempfile::tempdir().unwrap();
    let restored = backup::restore(&file, restored_dir.path(), 1_000).unwrap();
    assert_eq!(restored.backup_revision, saved.revision);
    assert_eq!(restored.revision, saved.revision + 1_000);
    let again = backup::restore(&file, restored_dir.path(), 1_000).unwrap_err();
    assert!(again.to_string().contains("already holds a store"), "{again}");
    let node = single(restored_dir.path()).await;
    let r = &node.store;
    assert_eq!(dump(r, None).await, expected, "every key at its revision");
    assert!(expected.iter().any(|(k, v, ..)| k == b"/b/03" && v == b"updated"));
    assert!(!expected.iter().any(|(k, ..)| k == b"/b/07"));
    // Watches from the old cluster's revisions are told to list again.
    for from in [acknowledged, saved.revision, saved.revision + 500] {
        match r.watch(KeyRange::prefix("/b/"), from).await {
            Err(Error::Compacted { compact_revision }) => assert_eq!(compact_revision, restored.revision),
            other => panic!("a watch from {from} got {:?}", other.map(|_| "a stream")),
        }
    }
    // New writes continue past the bump.
    let next = r
        .txn(Txn::new().and_then([TxnOp::put("/b/new", "1")]))
        .await
        .unwrap()
        .revision;
    assert!(next > restored.revision, "{next} after {restored:?}");
    let mut w = r.watch(KeyRange::prefix("/b/"), next).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), w.next()).await.unwrap();
    assert!(event.is_some());
    node.stop().await;
}

#[test]
fn truncated_or_damaged_backups_are_refused_and_create_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.snap");
    runtime.block_on(async {
        let node = single(&dir.path().join("source")).await;
        for i in 0..20 {
            node.store
                .txn(Txn::new().and_then([TxnOp::put(format!("/b/{i}"), "v")]))
                .await
                .unwrap();
        }
        node.store.save_backup(&file).await.unwrap();
        node.stop().await;
    });
    let whole = std::fs::read(&file).unwrap();
    let truncated = dir.path().join("truncated.snap");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let mut flipped = whole.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let damaged = dir.path().join("damaged.snap");
    std::fs::write(&damaged, &flipped).unwrap();
    let foreign = dir.path().join("foreign.snap");
    std::fs::write(&foreign, b"not a backup at all").unwrap();
    for (bad, says) in [
        (&truncated, "truncated"),
        (&damaged, "backup"),
        (&foreign, "not a skiff snapshot"),
    ] {
        let error = backup::verify(bad).unwrap_err().to_string();
        assert!(error.contains(says), "{bad:?}: {error}");
        let target = dir.path().join("restored");
        let error = backup::restore(bad, &target, 10).unwrap_err().to_string();
        assert!(error.contains("not a usable backup"), "{error}");
        assert!(!target.join("db").exists(), "nothing was created for {bad:?}");
    }
}
