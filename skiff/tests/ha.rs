//! One cluster identity: a server that joins with the cluster's join
//! token gets the first server's CA, admin credentials and ServiceAccount
//! key, so the first server's kubeconfig works against it; a wrong token
//! or a token naming another CA is refused with a clear message, and the
//! server exits. The peer port between them speaks mutual TLS and serves
//! no one else.

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

    // `skiff kubeconfig` names both servers, once the second has listed
    // itself; each context reaches its own server with the one credential.
    let both = data.path().join("both.kubeconfig");
    until(Duration::from_secs(60), "a kubeconfig naming both servers", || {
        let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["kubeconfig", "--output"])
            .arg(&both)
            .arg("--data-dir")
            .arg(first.data.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let named = std::fs::read_to_string(&both).unwrap();
        named.contains(&url).then_some(())
    });
    let with_both = |args: &[&str]| {
        Command::new(support::KUBECTL)
            .arg("--kubeconfig")
            .arg(&both)
            .arg("--request-timeout=30s")
            .args(args)
            .output()
            .unwrap()
    };
    let contexts = with_both(&["config", "get-contexts", "-o", "name"]);
    let contexts = String::from_utf8_lossy(&contexts.stdout).into_owned();
    let contexts: Vec<&str> = contexts.lines().collect();
    assert_eq!(contexts.len(), 2, "{contexts:?}");
    for context in contexts {
        let out = with_both(&[
            "--context",
            context,
            "get",
            "configmap",
            "via-second",
            "-o",
            "jsonpath={.data.k}",
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "v", "{context}: {out:?}");
    }

    // The peer port: mutual TLS with the peer CA, the same on both.
    let pki = first.data.path().join("pki");
    assert_eq!(
        std::fs::read_to_string(data.path().join("pki/peer-ca.crt")).unwrap(),
        std::fs::read_to_string(pki.join("peer-ca.crt")).unwrap()
    );
    let status = format!("https://{}/cluster/status", first.peer_addr());
    let curl = |args: &[&str]| {
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o", "/dev/stdout", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code(), text)
    };
    let path = |name: &str| pki.join(name).display().to_string();
    let peer_ca = path("peer-ca.crt");
    // A member's own certificate is let in.
    let (code, text) = curl(&[
        "--cacert",
        &peer_ca,
        "--cert",
        &path("peer.crt"),
        "--key",
        &path("peer.key"),
        &status,
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.ends_with("\n200") && text.contains("\"voters\""), "{text}");
    // No certificate: 401.
    let (_, text) = curl(&["--cacert", &peer_ca, &status]);
    assert!(text.ends_with("\n401") && text.contains("peer CA"), "{text}");
    // The cluster CA's admin certificate is not a peer's: the handshake fails.
    let (code, text) = curl(&[
        "--cacert",
        &peer_ca,
        "--cert",
        &path("admin.crt"),
        "--key",
        &path("admin.key"),
        &status,
    ]);
    assert_ne!(code, Some(0), "{text}");
    assert!(!text.contains("voters"), "{text}");
    // Plain HTTP gets nothing.
    let (code, text) = curl(&[&format!("http://{}/cluster/status", first.peer_addr())]);
    assert!(code != Some(0) || !text.ends_with("\n200"), "{text}");
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

    // Key rotation, as `skiff secrets-encrypt` does it.
    let mut cluster = cluster;
    let data_dir = cluster.data.path().to_str().unwrap().to_string();
    let secrets_encrypt = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .arg("secrets-encrypt")
            .args(args)
            .args(["--data-dir", &data_dir])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let status = secrets_encrypt(&["status"]);
    assert!(
        status.contains("writes aesgcm:key1; stored: aesgcm:key1: 1"),
        "{status}"
    );
    assert!(secrets_encrypt(&["rotate"]).contains("new key key2"));
    cluster.kill_and_restart();
    let status = secrets_encrypt(&["status"]);
    assert!(
        status.contains("writes aesgcm:key2; stored: aesgcm:key1: 1"),
        "{status}"
    );
    let reencrypted = secrets_encrypt(&["reencrypt"]);
    assert!(reencrypted.contains("rewritten: 1"), "{reencrypted}");
    let status = secrets_encrypt(&["status"]);
    assert!(
        status.contains("writes aesgcm:key2; stored: aesgcm:key2: 1"),
        "{status}"
    );
    assert_eq!(
        cluster.ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]),
        encoded
    );
}

/// `skiff snapshot <args>`; its output.
fn snapshot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("snapshot")
        .args(args)
        .output()
        .unwrap()
}

/// A backup saved from a running server restores into a new cluster that
/// serves the same objects at the same resourceVersions (Secrets
/// included, with the old cluster's keys), tells a watch from an old
/// revision that it is gone, and writes on past the bumped revision. A
/// damaged backup is refused and creates nothing.
#[test]
fn snapshot_save_then_restore_gives_the_same_objects() {
    let old = Cluster::start_with(&["--no-agent"]);
    old.ok(&["create", "configmap", "kept", "--from-literal=k=v1"]);
    old.ok(&[
        "create",
        "secret",
        "generic",
        "pw",
        "--from-literal=password=hunter2-restored",
    ]);
    old.ok(&["create", "namespace", "team"]);
    old.ok(&["create", "configmap", "other", "-n", "team", "--from-literal=x=y"]);
    let before = old.ok(&["get", "configmap", "kept", "-o", "jsonpath={.metadata.resourceVersion}"]);
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("cluster.snap");
    let data_dir = old.data.path().to_str().unwrap().to_string();
    let saved = snapshot(&["save", file.to_str().unwrap(), "--data-dir", &data_dir]);
    assert!(saved.status.success(), "{saved:?}");
    assert!(
        String::from_utf8_lossy(&saved.stdout).contains("saved a backup at revision"),
        "{saved:?}"
    );
    // Written after the backup: not in it.
    old.ok(&["create", "configmap", "later", "--from-literal=k=v"]);

    // Damaged copies are refused, and nothing is made.
    let whole = std::fs::read(&file).unwrap();
    let truncated = backups.path().join("truncated.snap");
    std::fs::write(&truncated, &whole[..whole.len() - 100]).unwrap();
    let target = tempfile::tempdir().unwrap();
    let target_dir = target.path().join("restored");
    let refused = snapshot(&[
        "restore",
        truncated.to_str().unwrap(),
        "--data-dir",
        target_dir.to_str().unwrap(),
        "--credentials-from",
        &data_dir,
    ]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a usable backup"),
        "{refused:?}"
    );
    assert!(!target_dir.join("store").exists());
    // Without the old cluster's credentials, a clear refusal.
    let no_keys = snapshot(&[
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        target_dir.to_str().unwrap(),
    ]);
    assert_eq!(no_keys.status.code(), Some(2), "{no_keys:?}");
    assert!(
        String::from_utf8_lossy(&no_keys.stderr).contains("--credentials-from"),
        "{no_keys:?}"
    );

    let restored_dir = tempfile::tempdir().unwrap();
    let restored = snapshot(&[
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        restored_dir.path().to_str().unwrap(),
        "--credentials-from",
        &data_dir,
    ]);
    assert!(restored.status.success(), "{restored:?}");
    drop(old);
    let new = Cluster::start_on(restored_dir, &["--no-agent"]);
    assert_eq!(new.ok(&["get", "configmap", "kept", "-o", "jsonpath={.data.k}"]), "v1");
    assert_eq!(
        new.ok(&["get", "configmap", "kept", "-o", "jsonpath={.metadata.resourceVersion}"]),
        before
    );
    assert_eq!(
        new.ok(&["get", "configmap", "other", "-n", "team", "-o", "jsonpath={.data.x}"]),
        "y"
    );
    let password = new.ok(&["get", "secret", "pw", "-o", "jsonpath={.data.password}"]);
    assert_eq!(
        password,
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "hunter2-restored")
    );
    let later = new.kubectl(&["get", "configmap", "later"]);
    assert!(!later.status.success(), "written after the backup: {later:?}");
    // A watch from the old cluster's revision is told it is gone.
    let watch = new.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={before}&timeoutSeconds=2"),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&watch.stdout),
        String::from_utf8_lossy(&watch.stderr)
    );
    assert!(
        text.contains("410") || text.contains("Expired") || text.contains("Gone"),
        "{text}"
    );
    // New writes continue past the bumped revision.
    new.ok(&["create", "configmap", "fresh", "--from-literal=k=v"]);
    let fresh: u64 = new
        .ok(&[
            "get",
            "configmap",
            "fresh",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .parse()
        .unwrap();
    assert!(fresh > 1_000_000_000, "{fresh}");
}

/// `skiff server` with node id `id` joining through `peer` with `token`,
/// as [`join`] starts node 2.
fn join_as(id: u64, peer: &str, token: &str, data: &std::path::Path, listen: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skiff"));
    command
        .args(["server", "--node-id", &id.to_string(), "--join", peer, "--token", token])
        .args(["--listen", listen, "--peer-listen", &free_addr()])
        .args(["--no-agent", "--no-controllers"])
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// `skiff member`: two servers join the first and all three are listed,
/// the leader marked; a removal naming no number, or no member, is
/// refused and changes nothing; removing the third server leaves the
/// other two as the voters, which keep taking writes.
#[test]
fn skiff_member_lists_the_servers_and_removes_one() {
    let first = Cluster::start_with(&["--no-agent"]);
    let token = std::fs::read_to_string(first.data.path().join("token")).unwrap();
    let data_dir = first.data.path().to_str().unwrap().to_string();
    let mut servers = Vec::new();
    let mut keep = Vec::new();
    for id in [2, 3] {
        let data = tempfile::tempdir().unwrap();
        let listen = free_addr();
        let server = join_as(id, first.peer_addr(), token.trim(), data.path(), &listen)
            .spawn()
            .unwrap();
        servers.push((Server(server), format!("https://{listen}")));
        keep.push(data);
    }
    for (_, url) in &servers {
        until(Duration::from_secs(60), "a joined server to serve", || {
            let ready = first.kubectl(&["--server", url.as_str(), "get", "--raw", "/readyz"]);
            ready.status.success().then_some(())
        });
    }
    let member = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_skiff"))
            .arg("member")
            .args(args)
            .args(["--data-dir", &data_dir])
            .output()
            .unwrap()
    };
    let voters = |listed: &str| -> Vec<String> {
        listed
            .lines()
            .skip(1)
            .filter(|line| line.contains("\tvoter"))
            .filter_map(|line| line.split('\t').next().map(String::from))
            .collect()
    };
    let listed = until(Duration::from_secs(30), "three voters listed", || {
        let output = member(&["list"]);
        let listed = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.success() && voters(&listed) == ["1", "2", "3"]).then_some(listed)
    });
    assert!(listed.starts_with("ID\tADDRESS\tROLE\n"), "{listed}");
    assert_eq!(listed.matches("(leader)").count(), 1, "{listed}");

    let not_a_number = member(&["remove", "three"]);
    assert_eq!(not_a_number.status.code(), Some(2), "{not_a_number:?}");
    let unknown = member(&["remove", "9"]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("members \"9\" not found"),
        "{unknown:?}"
    );
    let unchanged = String::from_utf8_lossy(&member(&["list"]).stdout).into_owned();
    assert_eq!(voters(&unchanged), ["1", "2", "3"], "{unchanged}");

    let removed = member(&["remove", "3"]);
    assert!(removed.status.success(), "{removed:?}");
    assert!(
        String::from_utf8_lossy(&removed.stdout).contains("node 3 is no longer a member"),
        "{removed:?}"
    );
    let listed = String::from_utf8_lossy(&member(&["list"]).stdout).into_owned();
    assert_eq!(voters(&listed), ["1", "2"], "{listed}");
    assert!(!listed.lines().any(|line| line.starts_with("3\t")), "{listed}");
    drop(servers.pop());
    // Two voters take writes, through either server.
    first.ok(&["create", "configmap", "after-removal", "--from-literal=k=v"]);
    let (_, second) = &servers[0];
    let created = first.kubectl(&[
        "--server",
        second.as_str(),
        "create",
        "configmap",
        "via-second",
        "--from-literal=k=v",
    ]);
    assert!(created.status.success(), "{created:?}");
}
