//! The Python `kubernetes` client (from PyPI) against a started `skiff
//! server`: CRUD, selectors, scale, watch resume, and 404/409/410 handling.
//! `cargo xtask test` installs the client into a virtualenv and points
//! `SKIFF_PYTHON` at its interpreter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::Duration;

/// A loopback address nothing listens on ([`skiff_testing::free_port`]).
fn free_addr() -> String {
    skiff_testing::free_addr().unwrap()
}

#[test]
fn python_client_round_trip() {
    let python = std::env::var("SKIFF_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import kubernetes"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "{python} cannot import the `kubernetes` package; run `cargo xtask test`, which installs it, or set SKIFF_PYTHON"
    );
    let data = tempfile::tempdir().unwrap();
    let api = free_addr();
    let mut server = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["server", "--listen", &api, "--peer-listen", &free_addr()])
        .args([
            "--compaction-interval",
            "1",
            "--compaction-keep-revisions",
            "5",
            "--compaction-min-age",
            "0",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let kubeconfig = data.path().join("kubeconfig");
    skiff_testing::eventually_blocking(Duration::from_secs(60), "the server to write its kubeconfig", || {
        kubeconfig.exists().then_some(())
    })
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client.py");
    let out = Command::new(&python)
        .arg(script)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        out.status.success(),
        "python client script failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
