//! End to end: a real Prometheus (Debian's `prometheus` package, which
//! `cargo xtask test` installs) scrapes a running `skiff server`'s
//! `/metrics` over TLS, with the bearer token of a ServiceAccount that
//! RBAC lets read it (bound to the `system:monitoring` ClusterRole), and
//! PromQL over what it scraped returns the API server's, the store's,
//! the scheduler's and the controllers' metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{Cluster, free_addr, http_get, until};

/// What Prometheus scrapes: the API server every second, over TLS with
/// the cluster CA, with a bearer token.
const CONFIG: &str = r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: skiff
    scheme: https
    scrape_interval: 1s
    scrape_timeout: 1s
    tls_config:
      ca_file: CA_FILE
    authorization:
      credentials_file: TOKEN_FILE
    static_configs:
      - targets: ["TARGET"]
"#;

/// How long Prometheus may take to start, scrape and answer.
const WAIT: Duration = Duration::from_secs(90);

/// A Prometheus child process, killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `prometheus` on a free loopback port with `config`, its
    /// database and log in `dir`. Fails the test, naming what is
    /// missing, when the binary is not installed.
    fn start(dir: &Path, config: &Path) -> Prometheus {
        let installed = Command::new("prometheus")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            installed,
            "`prometheus` is not installed: this test needs Debian's `prometheus` package \
             (`apt-get install prometheus`; `cargo xtask test` installs it)"
        );
        let addr = free_addr();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr, log }
    }

    /// `GET path` on Prometheus' HTTP API, as JSON; `None` until it
    /// answers.
    fn api(&mut self, path: &str) -> Option<Value> {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "prometheus exited ({status}):\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        let (code, body) = http_get(&self.addr, path, true).ok()?;
        (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
    }

    /// The samples PromQL `query` returns now (an instant vector).
    fn query(&mut self, query: &str) -> Vec<Value> {
        self.api(&format!("/api/v1/query?query={}", encode(query)))
            .and_then(|reply| reply["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits until `query` returns a sample whose value passes `test`;
    /// that value.
    fn value_until(&mut self, query: &str, test: impl Fn(f64) -> bool) -> f64 {
        until(WAIT, &format!("PromQL {query} to return data"), || {
            self.query(query)
                .iter()
                .filter_map(|sample| sample["value"][1].as_str()?.parse::<f64>().ok())
                .find(|value| test(*value))
        })
    }
}

/// `text` percent-encoded for a query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_every_control_plane_component() {
    let cluster = Cluster::start_with(&["--no-agent"]);
    // A monitoring identity, as an operator would make one: a
    // ServiceAccount bound to system:monitoring, and a token for it.
    cluster.ok(&["create", "serviceaccount", "prometheus", "-n", "kube-system"]);
    cluster.ok(&[
        "create",
        "clusterrolebinding",
        "prometheus-monitoring",
        "--clusterrole=system:monitoring",
        "--serviceaccount=kube-system:prometheus",
    ]);
    let token = cluster.ok(&["create", "token", "prometheus", "-n", "kube-system"]);
    // A pod with no node to go to: the scheduler has something to count.
    cluster.ok(&["run", "lonely", "--image=registry.local/nothing:1", "--restart=Never"]);

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token.trim()).unwrap();
    let target = cluster.url.trim_start_matches("https://");
    let config = CONFIG
        .replace("CA_FILE", &cluster.data.path().join("pki/ca.crt").display().to_string())
        .replace("TOKEN_FILE", &token_file.display().to_string())
        .replace("TARGET", target);
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(&config_file, config).unwrap();
    let mut prometheus = Prometheus::start(dir.path(), &config_file);

    // The target is up: scraped over TLS, authorized, and parsed.
    let mut last = Value::Null;
    let up = skiff_testing::eventually_blocking(WAIT, "the skiff target to be up", || {
        let targets = prometheus.api("/api/v1/targets")?;
        let target = targets["data"]["activeTargets"][0].clone();
        last = target.clone();
        (target["health"] == "up").then_some(())
    });
    assert!(up.is_ok(), "the target never came up; last seen: {last}");

    // The API server's requests, as a rate over the scrapes.
    let rate = prometheus.value_until("sum(rate(apiserver_request_total[1m]))", |v| v > 0.0);
    assert!(rate > 0.0);
    // The store: a leader, and a raft term.
    prometheus.value_until("etcd_server_has_leader", |v| v == 1.0);
    prometheus.value_until("skiff_store_raft_term", |v| v >= 1.0);
    prometheus.value_until("etcd_disk_wal_fsync_duration_seconds_count", |v| v >= 1.0);
    // The scheduler tried the pod and found no node.
    prometheus.value_until(
        "scheduler_schedule_attempts_total{result=\"unschedulable\",profile=\"default-scheduler\"}",
        |v| v >= 1.0,
    );
    prometheus.value_until(
        "sum(scheduler_pending_pods{queue=~\"unschedulable|backoff|active\"})",
        |v| v >= 0.0,
    );
    // The controllers' work queues: the namespace controller has
    // reconciled the system namespaces.
    prometheus.value_until("workqueue_adds_total{name=\"namespace\"}", |v| v >= 1.0);
}
