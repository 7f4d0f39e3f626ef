//! One cluster identity: a server that joins with the cluster's join
//! token gets the first server's CA, admin credentials and ServiceAccount
//! key, so the first server's kubeconfig works against it; a wrong token
//! or a token naming another CA is refused with a clear message, and the
//! server exits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::{Cluster, free_addr, until};

/// `skiff server` joining through `peer` with `token`; no agent, no
/// controllers (the first server runs those).
fn join(peer: &str, token: &str, data: &std::path::Path, listen: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skiff"));
    command
        .args(["server", "--node-id", "2", "--join", peer, "--token", token])
        .args(["--listen", listen, "--peer-listen", &free_addr()])
        .args(["--no-agent", "--no-controllers"])
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn");
    command
}

/// Kills a server on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn refused(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_joining_server_shares_the_clusters_identity_and_a_wrong_token_is_refused() {
    let first = Cluster::start_with(&["--no-agent"]);
    let token = std::fs::read_to_string(first.data.path().join("token")).unwrap();
    assert!(token.starts_with("K10"), "{token}");
    let secret = token.rsplit_once(':').unwrap().1.to_string();

    // A wrong secret, and the right secret with another CA's hash.
    let data = tempfile::tempdir().unwrap();
    let wrong = join(first.peer_addr(), "not-the-secret", data.path(), &free_addr())
        .output()
        .unwrap();
    assert!(refused(&wrong).contains("the join token is wrong"), "{wrong:?}");
    let other_ca = format!("K10{}::server:{secret}", "0".repeat(64));
    let mismatch = join(first.peer_addr(), &other_ca, data.path(), &free_addr())
        .output()
        .unwrap();
    assert!(
        refused(&mismatch).contains("the cluster's CA does not match the join token"),
        "{mismatch:?}"
    );
    assert!(!data.path().join("pki/ca.key").exists(), "nothing was installed");

    // The right token: the second server has the first one's CA, and the
    // first one's kubeconfig works against it.
    let listen = free_addr();
    let _second = Server(
        join(first.peer_addr(), token.trim(), data.path(), &listen)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let url = format!("https://{listen}");
    let on_second = |args: &[&str]| first.kubectl(&[&["--server", url.as_str()][..], args].concat());
    until(Duration::from_secs(60), "the second server to serve", || {
        on_second(&["get", "--raw", "/readyz"]).status.success().then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(data.path().join("pki/ca.crt")).unwrap(),
        std::fs::read_to_string(first.data.path().join("pki/ca.crt")).unwrap()
    );
    let created = on_second(&["create", "configmap", "via-second", "--from-literal=k=v"]);
    assert!(created.status.success(), "{created:?}");
    assert_eq!(
        first.ok(&["get", "configmap", "via-second", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    // It keeps the token too, and would let others join through it.
    assert_eq!(
        std::fs::read_to_string(data.path().join("token")).unwrap().trim(),
        token.trim()
    );
}

/// Every regular file under `dir`, read whole.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => found.extend(files(&path)),
            Ok(t) if t.is_file() => found.extend(std::fs::read(&path).ok().map(|b| (path, b))),
            _ => {}
        }
    }
    found
}

fn holds(files: &[(std::path::PathBuf, Vec<u8>)], needle: &str) -> Vec<std::path::PathBuf> {
    files
        .iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(path, _)| path.clone())
        .collect()
}

/// A Secret's value never reaches the data directory readable, in plain
/// text or base64; a ConfigMap's does (so the search would find it).
#[test]
fn secrets_are_encrypted_at_rest() {
    let cluster = Cluster::start_with(&["--no-agent"]);
    let secret = "correct-horse-battery-staple-7c1d";
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret);
    cluster.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        &format!("--from-literal=password={secret}"),
    ]);
    cluster.ok(&[
        "create",
        "configmap",
        "plain",
        "--from-literal=note=visible-marker-4e2a",
    ]);
    assert_eq!(
        cluster.ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]),
        encoded
    );
    until(Duration::from_secs(30), "the ConfigMap to reach the disk", || {
        (!holds(&files(cluster.data.path()), "visible-marker-4e2a").is_empty()).then_some(())
    });
    let on_disk = files(cluster.data.path());
    for needle in [secret, encoded.as_str()] {
        assert_eq!(holds(&on_disk, needle), Vec::<std::path::PathBuf>::new(), "{needle}");
    }
    // An update, a watch and a list still see the value.
    cluster.ok(&["label", "secret", "db", "tier=db"]);
    let listed = cluster.ok(&[
        "get",
        "secrets",
        "-l",
        "tier=db",
        "-o",
        "jsonpath={.items[0].data.password}",
    ]);
    assert_eq!(listed, encoded);
}
