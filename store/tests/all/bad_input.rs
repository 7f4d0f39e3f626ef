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
