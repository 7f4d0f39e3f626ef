//! Crash safety: `skiff server` is killed with SIGKILL in the middle of a
//! write load; after a restart every acknowledged write is there and
//! revisions continue monotonically.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skiff_store::{Client, KeyRange, RangeRequest, ReadConsistency, Txn, TxnOp};

fn start(data_dir: &Path, peer: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["server", "--peer-listen", peer, "--listen", &free_addr()])
        // The store is what these tests kill; an agent would leave its
        // node's network behind each SIGKILL.
        .arg("--no-agent")
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start skiff server")
}

/// A loopback address nothing listens on ([`skiff_testing::free_port`]).
fn free_addr() -> String {
    skiff_testing::free_addr().unwrap()
}

/// A store client for the server whose data is in `data_dir`: mutual TLS
/// with the peer certificate it writes early in its start.
async fn client(data_dir: &Path, peer: &str) -> Client {
    let pki = data_dir.join("pki");
    skiff_testing::eventually(Duration::from_secs(30), "the server's peer certificate", || async {
        pki.join("peer.crt").exists().then_some(())
    })
    .await
    .unwrap();
    let tls = skiff_api::pki::peer::PeerPki::read(&pki)
        .unwrap()
        .client_config()
        .unwrap();
    Client::with_tls(vec![peer.to_string()], Some(tls)).unwrap()
}

async fn wait_writable(client: &Client) {
    skiff_testing::eventually(Duration::from_secs(30), "the server to become writable", || async {
        client
            .txn(Txn::new().and_then([TxnOp::put("/ready", "1")]))
            .await
            .is_ok()
            .then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let peer = free_addr();
    let mut child = start(dir.path(), &peer);
    let client = Arc::new(client(dir.path(), &peer).await);
    wait_writable(&client).await;

    let acked: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..16 {
        let (client, acked) = (client.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            // Bounded: stops at the first error (the kill) or after 100k writes.
            for i in 0..100_000u32 {
                let key = format!("/crash/{w:02}/{i:06}");
                match client
                    .txn(Txn::new().and_then([TxnOp::put(key.clone(), vec![b'x'; 128])]))
                    .await
                {
                    Ok(resp) => {
                        acked.lock().unwrap().insert(key, resp.revision);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill once the load is well under way, while every writer still runs.
    skiff_testing::eventually(Duration::from_secs(60), "1000 acknowledged writes", || async {
        (acked.lock().unwrap().len() >= 1000).then_some(())
    })
    .await
    .unwrap();
    let all_running = writers.iter().all(|w| !w.is_finished());
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "the load ran before the kill: {} writes",
        acked.len()
    );
    assert!(
        all_running,
        "the kill came in the middle of the load, no writer had stopped"
    );

    let mut child = start(dir.path(), &peer);
    wait_writable(&client).await;
    let all = client
        .range(
            RangeRequest::new(KeyRange::prefix("/crash/")),
            ReadConsistency::Linearizable,
        )
        .await
        .unwrap();
    let present: BTreeMap<String, u64> = all
        .kvs
        .into_iter()
        .map(|kv| (String::from_utf8(kv.key).unwrap(), kv.mod_revision))
        .collect();
    for (key, rev) in &acked {
        assert_eq!(
            present.get(key),
            Some(rev),
            "acknowledged write {key} at revision {rev} survived"
        );
    }
    let max_acked = acked.values().max().copied().unwrap();
    let after = client
        .txn(Txn::new().and_then([TxnOp::put("/after", "1")]))
        .await
        .unwrap();
    assert!(
        after.revision > max_acked,
        "revision {} continues after {max_acked}",
        after.revision
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_exits_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let peer = free_addr();
    let mut first = start(dir.path(), &peer);
    wait_writable(&client(dir.path(), &peer).await).await;

    let second = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["server", "--peer-listen", &free_addr(), "--listen", &free_addr()])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use by another process"), "{stderr}");
    first.kill().unwrap();
    first.wait().unwrap();
}

/// A data directory that cannot be written (a tmpfs the test mounts,
/// remounted read-only) is refused at start with a message that names
/// it, within seconds, and nothing is lost: made writable again, the
/// server serves every write it acknowledged before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_dir_is_refused_clearly_and_loses_nothing() {
    let mount = skiff_testing::tmpfs::Tmpfs::mount("skiff-read-only", "256m").unwrap();
    let data = mount.path().join("data");
    let peer = free_addr();
    let mut child = start(&data, &peer);
    let client = client(&data, &peer).await;
    wait_writable(&client).await;
    let mut acked = BTreeMap::new();
    for i in 0..50 {
        let key = format!("/kept/{i:02}");
        let written = client
            .txn(Txn::new().and_then([TxnOp::put(key.clone(), "v")]))
            .await
            .unwrap();
        acked.insert(key, written.revision);
    }
    child.kill().unwrap();
    child.wait().unwrap();

    mount.remount("ro").unwrap();
    let mut refused = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["server", "--no-agent", "--peer-listen", &peer, "--listen", &free_addr()])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = refused.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = refused.kill();
            panic!("a server on a read-only data dir did not exit within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut refused.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Read-only file system") && stderr.contains(&data.display().to_string()),
        "the error names the directory and the cause: {stderr}"
    );

    mount.remount("rw").unwrap();
    let mut child = start(&data, &peer);
    wait_writable(&client).await;
    for (key, revision) in &acked {
        let found = client
            .range(
                RangeRequest::new(KeyRange::key(key.clone())),
                ReadConsistency::Linearizable,
            )
            .await
            .unwrap();
        assert_eq!(found.kvs.first().map(|kv| kv.mod_revision), Some(*revision), "{key}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["server", "--peers", "1=nohost"][..],
        &["server", "--node-id", "0"],
        &["server", "--peers", "x=127.0.0.1:1"],
        &["server", "--node-id", "3", "--peers", "1=127.0.0.1:1,2=127.0.0.1:2"],
        // Joining, or forming a cluster, needs the cluster's join token.
        &["server", "--join", "127.0.0.1:1"],
        &["server", "--node-id", "2", "--peers", "1=127.0.0.1:1,2=127.0.0.1:2"],
        &["server", "--token", "two words"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_skiff")).args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
