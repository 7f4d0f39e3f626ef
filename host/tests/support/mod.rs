//! What the agent's integration tests share: a real API server (skiff-api
//! on a one-node store, over TLS, through kube-rs) with one node agent,
//! bounded polling, and small pod helpers.
//!
//! Each test binary uses part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use skiff_host::agent::{Agent, AgentConfig};
use skiff_testing::TestApi;

pub struct Cluster {
    pub client: kube::Client,
    pub agent: Agent,
    pub agent_dir: PathBuf,
    pub api: TestApi,
}

/// An API server and an agent named `node-a`, whose Wasm pods get
/// addresses from `127.<cidr>.0.0/16` (distinct per test: tests run in
/// parallel), restarting containers after 200 ms, then up to 1 s.
pub async fn cluster(cidr: u8) -> Cluster {
    cluster_with(cidr, |_| {}).await
}

/// The same, with the agent's configuration changed by `tune` first.
pub async fn cluster_with(cidr: u8, tune: impl FnOnce(&mut AgentConfig)) -> Cluster {
    start_agent(TestApi::start().await.unwrap(), cidr, tune).await
}

/// Starts the agent against `api`, keeping its state in `api.path("agent")`
/// (which a test may have prepared).
pub async fn start_agent(api: TestApi, cidr: u8, tune: impl FnOnce(&mut AgentConfig)) -> Cluster {
    let agent_dir = api.path("agent");
    let mut agent_config = AgentConfig::new("node-a", &agent_dir);
    agent_config.pod_cidr = Ipv4Addr::new(127, cidr, 0, 0);
    agent_config.backoff_initial = Duration::from_millis(200);
    agent_config.backoff_max = Duration::from_secs(1);
    tune(&mut agent_config);
    let agent = Agent::start(skiff_host::agent::Clients::shared(api.client.clone()), agent_config)
        .await
        .unwrap();
    Cluster {
        client: api.client.clone(),
        agent,
        agent_dir,
        api,
    }
}

impl Cluster {
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Imports a test program as `local/<name>:1`, returning the reference.
    pub fn import(&self, program: &str, name: &str) -> String {
        let bytes = std::fs::read(program).unwrap();
        let reference = format!("local/{name}:1");
        self.agent.images().import_component(&bytes, &reference).unwrap();
        reference
    }

    /// The (reason, message) of the events about pod `name`.
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let selector = format!("involvedObject.name={name},involvedObject.namespace=default");
        let listed = events.list(&ListParams::default().fields(&selector)).await.unwrap();
        listed
            .items
            .iter()
            .map(|e| {
                (
                    e.reason.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// How many times events about pod `name` with `reason` were recorded
    /// (repeats are counted on one Event).
    pub async fn event_count(&self, name: &str, reason: &str) -> i32 {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let selector = format!("involvedObject.name={name},involvedObject.namespace=default");
        let listed = events.list(&ListParams::default().fields(&selector)).await.unwrap();
        listed
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.count.unwrap_or(1))
            .sum()
    }

    /// Waits for an event about pod `name` with `reason` whose message
    /// contains `text`, and returns that message.
    pub async fn event_where(&self, name: &str, reason: &str, text: &str) -> String {
        eventually(
            Duration::from_secs(60),
            &format!("a {reason} event about {name}"),
            || async {
                self.events(name)
                    .await
                    .into_iter()
                    .find(|(r, m)| r == reason && m.contains(text))
                    .map(|(_, m)| m)
            },
        )
        .await
    }

    /// Deletes the pods and waits until they are released.
    pub async fn delete_all(&self, names: &[&str]) {
        let pods = self.pods();
        for name in names {
            pods.delete(name, &DeleteParams::default()).await.unwrap();
        }
        for name in names {
            eventually(Duration::from_secs(30), &format!("{name} released"), || async {
                pods.get_opt(name).await.unwrap().is_none().then_some(())
            })
            .await;
        }
    }
}

/// Polls `f` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    skiff_testing::eventually(limit, what, f).await.unwrap()
}

/// Polls the pod until `test` holds, for at most a minute.
pub async fn pod_where(pods: &Api<Pod>, name: &str, what: &str, test: impl Fn(&Pod) -> bool) -> Pod {
    eventually(Duration::from_secs(60), what, || async {
        pods.get_opt(name).await.unwrap().filter(|p| test(p))
    })
    .await
}

pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default()
}

pub fn ready(pod: &Pod) -> bool {
    condition(pod, "Ready") == Some("True")
}

/// The status (`True`, `False`) of a pod condition.
pub fn condition<'a>(pod: &'a Pod, kind: &str) -> Option<&'a str> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == kind))
        .map(|c| c.status.as_str())
}

/// The status of the pod's `index`th container.
pub fn container(pod: &Pod, index: usize) -> Option<&ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.get(index)
}

/// The status of the pod's `index`th init container.
pub fn init_container(pod: &Pod, index: usize) -> Option<&ContainerStatus> {
    pod.status.as_ref()?.init_container_statuses.as_ref()?.get(index)
}

pub fn restarts(pod: &Pod) -> i32 {
    container(pod, 0).map_or(0, |c| c.restart_count)
}

/// The waiting reason of a container, if it is waiting.
pub fn waiting_reason(status: Option<&ContainerStatus>) -> Option<&str> {
    status?.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

pub fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

/// A plain HTTP/1.0 GET; the whole reply, head and body.
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await?;
    Ok(out)
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// busybox-static as an OCI layout (built with umoci), with the applets
/// the tests run. `cargo xtask test` installs the tools.
pub fn busybox_layout(dir: &Path) -> PathBuf {
    assert!(
        Command::new("sh")
            .args(["-c", "command -v runc"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "runc is missing; run `cargo xtask test` as root, or: apt-get install -y runc"
    );
    skiff_testing::busybox_layout(dir, &["sh", "echo", "sleep", "cat"]).unwrap()
}

/// The agent's metrics at `path` (`/metrics`, `/metrics/resource`), in
/// the OpenMetrics text format.
pub async fn scrape(c: &Cluster, path: &str) -> String {
    let reply = http_get(&c.agent.daemon_addr().to_string(), path).await.unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(" 200 "), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    body.to_string()
}

/// The value of the sample `name` whose labels include `labels`, from a
/// scrape.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        let pairs = rest.strip_suffix('}')?;
        let matches = metric == name
            && labels
                .iter()
                .all(|(k, v)| pairs.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
        matches.then(|| value.parse().ok())?
    })
}
