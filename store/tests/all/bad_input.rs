//! Bad input: malformed requests, garbage from peers, a second process
//! on the same data directory, corrupted data. Clear errors, no panics,
//! nothing changed.

use skiff_store::{Error, KeyRange, RangeRequest, ReadConsistency, Store, StoreConfig, Txn, TxnOp};

use crate::support::single;

#[tokio::test]
async fn malformed_transactions_are_rejected_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = &node.store;
    let before = s.revision();
    for txn in [
        Txn::new().and_then([TxnOp::put("", "v")]),
        Txn::new().and_then([TxnOp::put("/a", "1"), TxnOp::put("/a", "2")]),
        Txn::new().and_then([TxnOp::put("/a/x", "1"), TxnOp::Delete(KeyRange::prefix("/a/"))]),
        Txn::new().and_then([TxnOp::Delete(KeyRange::between("/z", "/a"))]),
    ] {
        let err = s.txn(txn).await.unwrap_err();
        assert!(matches!(err, Error::InvalidRequest { .. }), "{err}");
    }
    assert_eq!(s.revision(), before);
    node.stop().await;
}

#[tokio::test]
async fn garbage_from_a_peer_gets_400_and_the_node_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    for path in ["/raft/append", "/raft/vote", "/raft/snapshot", "/store/forward"] {
        for body in [&b""[..], b"garbage", &[0xff; 64], &u64::MAX.to_le_bytes()] {
            let status = post_raw(&node.addr, path, body).await;
            assert_eq!(status, 400, "{path} with {body:?}");
        }
    }
    // Still serving.
    node.store
        .txn(Txn::new().and_then([TxnOp::put("/ok", "1")]))
        .await
        .unwrap();
    node.stop().await;
}

#[tokio::test]
async fn a_second_process_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let second = Store::open(StoreConfig::new(1, dir.path(), "127.0.0.1:1")).await;
    assert!(matches!(second, Err(Error::DataDirLocked { .. })), "{:?}", second.err());
    node.stop().await;
}

#[tokio::test]
async fn corrupted_or_foreign_data_is_reported_not_served() {
    // Truncated files: every SST and manifest cut in half.
    let dir = tempfile::tempdir().unwrap();
    {
        let node = single(dir.path()).await;
        for i in 0..200 {
            node.store
                .txn(Txn::new().and_then([TxnOp::put(format!("/c/{i}"), vec![b'x'; 1000])]))
                .await
                .unwrap();
        }
        node.stop().await;
    }
    let db_dir = dir.path().join("db");
    let mut truncated = 0;
    for entry in std::fs::read_dir(&db_dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("MANIFEST") || name.ends_with(".log") || name.ends_with(".sst") {
            let len = entry.metadata().unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(entry.path()).unwrap();
            f.set_len(len / 2).unwrap();
            truncated += 1;
        }
    }
    assert!(truncated > 0);
    let reopened = Store::open(StoreConfig::new(1, dir.path(), "127.0.0.1:1")).await;
    match reopened {
        Err(e) => {
            assert!(matches!(e, Error::Corrupt { .. } | Error::Rocks { .. }), "{e}");
        }
        Ok(store) => {
            // RocksDB may recover a consistent prefix from a cut WAL; then
            // every read must still decode.
            let read = store
                .range(
                    RangeRequest::new(KeyRange::prefix("/c/")),
                    ReadConsistency::Serializable,
                )
                .await;
            assert!(read.is_ok() || matches!(read, Err(Error::Corrupt { .. })), "{read:?}");
            let _ = store.shutdown().await;
        }
    }

    // A RocksDB database that is not a skiff store.
    let foreign = tempfile::tempdir().unwrap();
    {
        let db = rocksdb::DB::open_default(foreign.path().join("db")).unwrap();
        db.put(b"someone", b"else").unwrap();
    }
    let opened = Store::open(StoreConfig::new(1, foreign.path(), "127.0.0.1:1")).await;
    assert!(
        matches!(opened, Err(Error::Corrupt { .. }) | Err(Error::Rocks { .. })),
        "{:?}",
        opened.err()
    );
}

/// POSTs `body` over a plain TCP connection and returns the status code.
async fn post_raw(addr: &str, path: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// A full disk (a small tmpfs the test mounts) stops writes with an error
/// that says so, and corrupts nothing: once space is freed, the store
/// opens again with every acknowledged write.
#[tokio::test]
async fn a_full_disk_stops_writes_and_corrupts_nothing() {
    let dir = skiff_testing::tmpfs::Tmpfs::mount("skiff-full-disk", "48m").unwrap();
    let store_dir = dir.path().join("store");
    let node = single(&store_dir).await;
    // Leave a few MiB free, then write until the disk is full.
    let filler = dir.path().join("filler");
    let df = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir.path())
        .output()
        .unwrap();
    let available: usize = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::write(&filler, vec![0u8; available.saturating_sub(6 << 20)]).unwrap();
    let value = vec![b'v'; 64 << 10];
    let mut acknowledged = Vec::new();
    let mut failure = None;
    for i in 0..1_000 {
        let key = format!("/full/{i:04}");
        match node
            .store
            .txn(Txn::new().and_then([TxnOp::put(key.clone(), value.clone())]))
            .await
        {
            Ok(_) => acknowledged.push(key),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    let failure = failure.expect("writes stop when the disk is full");
    let text = failure.to_string();
    assert!(
        text.contains("No space left") || text.contains("space") || text.contains("storage"),
        "{text}"
    );
    assert!(!acknowledged.is_empty());
    // No later write is acknowledged either.
    let later = node.store.txn(Txn::new().and_then([TxnOp::put("/after", "x")])).await;
    assert!(later.is_err(), "{later:?}");
    node.stop().await;

    std::fs::remove_file(&filler).unwrap();
    let node = crate::support::start_node(1, &store_dir, "127.0.0.1", None, |_| {}).await;
    node.store
        .wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .expect("the store comes back once there is space");
    for key in &acknowledged {
        let found = node.store.get(key.as_bytes().to_vec()).await.unwrap();
        assert_eq!(found.map(|kv| kv.value.len()), Some(value.len()), "{key}");
    }
    node.store
        .txn(Txn::new().and_then([TxnOp::put("/after", "x")]))
        .await
        .expect("writes resume");
    node.stop().await;
}
