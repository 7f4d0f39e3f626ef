//! The parts of `scheduler-bench`: a `skiff server` child with the flags
//! each phase needs, simulated Nodes (API objects with no agent behind
//! them, as kubemark and KWOK make), pods created with bounded
//! concurrency, and a watch that records when each pod was bound.
//!
//! Time is kept as nanoseconds since the start of a phase in one
//! `AtomicU64` per pod (0 = not yet), so the create tasks and the watch
//! write without locks and the figures are computed once at the end.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::ApiClient;
use crate::procs::free_port;

/// A `skiff server` child process, killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// The Kubernetes API address, `host:port`.
    pub addr: String,
    /// The data directory (store, `pki/`, `kubeconfig`, `agent/`).
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        crate::procs::stop(&mut self.child);
    }
}

impl Server {
    /// Starts `bin server` on free loopback ports with data in `dir` and
    /// the `extra` flags, and waits until `/readyz` answers.
    pub async fn start(bin: &Path, dir: &Path, extra: &[&str]) -> anyhow::Result<Server> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let child = Command::new(bin)
            .arg("server")
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", &addr])
            .args(["--peer-listen", &format!("127.0.0.1:{}", free_port()?)])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("SKIFF_BENCH_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Server {
            child,
            addr,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("skiff server exited during start-up: {status}");
            }
            if server.dir.join("kubeconfig").exists() {
                let api = server.client(1)?;
                if api.call(Method::GET, "/readyz", None, "text/plain").await.is_ok() {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                bail!("skiff server did not become ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A client with `connections` HTTP/2 connections.
    pub fn client(&self, connections: usize) -> anyhow::Result<ApiClient> {
        ApiClient::new(&self.addr, &self.dir, connections)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The name of simulated node `i`.
pub fn node_name(i: usize) -> String {
    format!("sim-{i:05}")
}

/// The name of measured pod `i`.
pub fn pod_name(i: usize) -> String {
    format!("p-{i:05}")
}

fn pod_index(name: &str) -> Option<usize> {
    name.strip_prefix("p-")?.parse().ok()
}

/// A simulated node as an agent would register it: hostname, OS and the
/// Wasm runtime label.
pub fn node_object(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "skiff.dev/runtime-wasm": "true",
        }},
        "spec": {},
    })
}

/// The status a simulated node reports once: 32 CPUs, 128 GiB, 110 pods,
/// Ready. Nothing renews it, and no Lease exists.
pub fn node_status(name: &str) -> Value {
    let capacity = json!({"cpu": "32", "memory": "128Gi", "pods": "110"});
    let now = now_rfc3339();
    json!({"status": {
        "capacity": capacity,
        "allocatable": capacity,
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "simulated node", "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
    }})
}

/// An unscheduled pod with small requests for the default scheduler.
pub fn pod_object(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "sched-bench"}},
        "spec": {
            "schedulerName": "default-scheduler",
            "containers": [{
                "name": "main",
                "image": "local/hello:1",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }],
        },
    })
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// Runs `op(i)` for every `i` in `0..n` from `concurrency` tasks; returns
/// how many failed.
pub async fn for_each_concurrent<F, Fut>(n: usize, concurrency: usize, op: F) -> u64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut errors = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if op(i).await.is_err() {
                    errors += 1;
                }
            }
            errors
        }));
    }
    let mut errors = 0;
    for task in tasks {
        errors += task.await.unwrap_or(1);
    }
    errors
}

/// Sends a request, retrying a few times on failure; a `409` on a retried
/// create means the first attempt got through.
pub async fn call_retrying(
    api: &ApiClient,
    method: Method,
    path: &str,
    body: &Value,
    content_type: &str,
) -> anyhow::Result<()> {
    let bytes = body.to_string().into_bytes();
    let mut last = None;
    for attempt in 0..5u32 {
        match api.call(method.clone(), path, Some(bytes.clone()), content_type).await {
            Ok(_) => return Ok(()),
            Err(error) if attempt > 0 && error.to_string().starts_with("409") => return Ok(()),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt + 1))).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("{method} {path} failed")))
}

/// Creates `n` simulated nodes (object, then status) and returns the
/// seconds it took and the failures.
pub async fn create_nodes(api: &ApiClient, n: usize, concurrency: usize) -> (f64, u64) {
    let start = Instant::now();
    let a = api.clone();
    let errors = for_each_concurrent(n, concurrency, move |i| {
        let a = a.clone();
        async move {
            let name = node_name(i);
            call_retrying(
                &a,
                Method::POST,
                "/api/v1/nodes",
                &node_object(&name),
                "application/json",
            )
            .await?;
            call_retrying(
                &a,
                Method::PATCH,
                &format!("/api/v1/nodes/{name}/status"),
                &node_status(&name),
                "application/merge-patch+json",
            )
            .await
        }
    })
    .await;
    (start.elapsed().as_secs_f64(), errors)
}

pub async fn create_namespace(api: &ApiClient, name: &str) -> anyhow::Result<()> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    call_retrying(api, Method::POST, "/api/v1/namespaces", &body, "application/json").await
}

/// When each of `n` pods was created and bound, as nanoseconds since
/// `start` plus one (0 = not yet).
#[derive(Debug)]
pub struct Timeline {
    pub start: Instant,
    pub created: Vec<AtomicU64>,
    pub bound: Vec<AtomicU64>,
}

impl Timeline {
    pub fn new(n: usize) -> Timeline {
        Timeline {
            start: Instant::now(),
            created: (0..n).map(|_| AtomicU64::new(0)).collect(),
            bound: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn stamp(&self, slot: &AtomicU64) {
        let nanos = self.start.elapsed().as_nanos() as u64 + 1;
        let _ = slot.compare_exchange(0, nanos, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The latest stamp in `slots`, seconds since the start.
    pub fn last(slots: &[AtomicU64]) -> f64 {
        slots.iter().map(|s| s.load(Ordering::Relaxed)).max().unwrap_or(0) as f64 / 1e9
    }

    pub fn count(slots: &[AtomicU64]) -> usize {
        slots.iter().filter(|s| s.load(Ordering::Relaxed) != 0).count()
    }

    /// Create→bound latency of every bound pod, sorted.
    pub fn latencies(&self) -> Vec<Duration> {
        let mut out: Vec<Duration> = self
            .created
            .iter()
            .zip(&self.bound)
            .filter_map(|(c, b)| {
                let (c, b) = (c.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
                (c != 0 && b != 0).then(|| Duration::from_nanos(b.saturating_sub(c)))
            })
            .collect();
        out.sort_unstable();
        out
    }
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Spec {
    #[serde(default, rename = "nodeName")]
    node_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Object {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: Option<Spec>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    object: Object,
}

#[derive(Debug, Deserialize)]
struct List {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    items: Vec<Object>,
}

/// How many pods each node got.
pub type Placement = HashMap<String, u32>;

fn record(object: &Object, timeline: &Timeline, placement: &mut Placement) -> bool {
    let Some(node) = object
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
    else {
        return false;
    };
    let Some(slot) = pod_index(&object.metadata.name).and_then(|i| timeline.bound.get(i)) else {
        return false;
    };
    if slot.load(Ordering::Relaxed) != 0 {
        return false;
    }
    timeline.stamp(slot);
    *placement.entry(node.to_string()).or_default() += 1;
    true
}

/// The current resourceVersion of the pods in `ns`, marking any already
/// bound (used to start, and to resume after a watch is cut off).
async fn relist(api: &ApiClient, ns: &str, timeline: &Timeline, placement: &mut Placement) -> anyhow::Result<String> {
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/namespaces/{ns}/pods?limit=500");
        if let Some(t) = &token {
            path.push_str(&format!("&continue={t}"));
        }
        let list: List = serde_json::from_slice(&api.call(Method::GET, &path, None, "application/json").await?)?;
        for item in &list.items {
            record(item, timeline, placement);
        }
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(next) => token = Some(next),
            None => return Ok(list.metadata.resource_version),
        }
    }
}

/// The resourceVersion to start watching `ns` from.
pub async fn watch_start(api: &ApiClient, ns: &str, timeline: &Timeline) -> anyhow::Result<String> {
    relist(api, ns, timeline, &mut Placement::new()).await
}

/// Watches the pods in `ns` from `rv` until all of `timeline`'s pods are
/// bound or `deadline` passes; re-lists and resumes if the watch ends.
/// Returns where pods were placed.
pub async fn watch_bindings(
    api: ApiClient,
    ns: String,
    mut rv: String,
    timeline: Arc<Timeline>,
    deadline: Instant,
) -> anyhow::Result<Placement> {
    let n = timeline.bound.len();
    let mut placement = Placement::new();
    let mut bound = Timeline::count(&timeline.bound);
    while bound < n && Instant::now() < deadline {
        let path = format!("/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}&timeoutSeconds=900");
        let mut body = match api.watch(&path).await {
            Ok(body) => body,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                rv = relist(&api, &ns, &timeline, &mut placement).await?;
                bound = Timeline::count(&timeline.bound);
                continue;
            }
        };
        let mut buffer = Vec::new();
        let mut expired = false;
        'stream: while bound < n {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let frame = match tokio::time::timeout(remaining, body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(_) => break,
                Err(_) => return Ok(placement),
            };
            let Ok(data) = frame.into_data() else { continue };
            buffer.extend_from_slice(&data);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<Event>(&line) else {
                    continue;
                };
                match event.kind.as_str() {
                    "ADDED" | "MODIFIED" => {
                        if record(&event.object, &timeline, &mut placement) {
                            bound += 1;
                        }
                        rv = event.object.metadata.resource_version;
                    }
                    "BOOKMARK" => rv = event.object.metadata.resource_version,
                    "ERROR" => {
                        expired = true;
                        break 'stream;
                    }
                    _ => {}
                }
            }
        }
        if expired {
            rv = relist(&api, &ns, &timeline, &mut placement).await?;
            bound = Timeline::count(&timeline.bound);
        }
    }
    Ok(placement)
}

/// Imports a Wasm component into an agent's image store with
/// `skiff image import`.
pub fn import_image(bin: &Path, file: &Path, name: &str, agent_dir: &Path) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .args(["image", "import"])
        .arg(file)
        .args(["--name", name])
        .arg("--data-dir")
        .arg(agent_dir)
        .output()
        .context("running skiff image import")?;
    if !out.status.success() {
        bail!("skiff image import: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A Deployment of `replicas` pods of a Wasm component image.
pub fn wasm_deployment(name: &str, replicas: usize, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    })
}

/// Polls `path` (a JSON object) until `done` holds for it or `deadline`
/// passes; returns the last object seen and whether `done` held.
pub async fn poll_until(
    api: &ApiClient,
    path: &str,
    every: Duration,
    deadline: Instant,
    mut done: impl FnMut(&Value) -> bool,
) -> (Value, bool) {
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(bytes) = api.call(Method::GET, path, None, "application/json").await
            && let Ok(value) = serde_json::from_slice::<Value>(&bytes)
        {
            if done(&value) {
                return (value, true);
            }
            last = value;
        }
        tokio::time::sleep(every).await;
    }
    (last, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_round_trip() {
        assert_eq!(pod_index(&pod_name(42)), Some(42));
        assert_eq!(pod_index("other"), None);
    }
}

/// The scheduling core alone, in memory: the cycles `scheduler-bench` runs
/// end to end, without the API around them.
#[derive(Debug, serde::Serialize)]
pub struct CoreRun {
    pub nodes: usize,
    pub pods: usize,
    /// Pods placed per second of cycles (each placed on its node before the
    /// next cycle, as the runner assumes them).
    pub cycles_per_sec: f64,
    pub cycle_p50_us: f64,
    pub cycle_p99_us: f64,
    /// Nodes each cycle looked at, on average (sampling).
    pub mean_nodes_examined: f64,
}

/// Runs the default profile's cycle for `pods` of [`pod_object`] over
/// `nodes` simulated nodes, on one thread.
pub fn core_cycles(nodes: usize, pods: usize) -> anyhow::Result<CoreRun> {
    let profile = skiff_scheduler::Profile::default_profile()?;
    core_cycles_with(&profile, nodes, pods, &|_, _| {}, &|_, _| {})
}

/// Runs `profile`'s cycle for `pods` of [`pod_object`] over `nodes`
/// simulated nodes, on one thread; `node_extra` and `pod_extra` may add
/// to the i-th node (with its status) and pod before they are decoded.
pub fn core_cycles_with(
    profile: &skiff_scheduler::Profile,
    nodes: usize,
    pods: usize,
    node_extra: &dyn Fn(usize, &mut Value),
    pod_extra: &dyn Fn(usize, &mut Value),
) -> anyhow::Result<CoreRun> {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use skiff_scheduler::{Decision, Snapshot, schedule_from};

    let mut snapshot = Snapshot::default();
    for i in 0..nodes {
        let name = node_name(i);
        let mut node = node_object(&name);
        if let (Some(node), Some(status)) = (node.as_object_mut(), node_status(&name).get("status")) {
            node.insert("status".into(), status.clone());
        }
        node_extra(i, &mut node);
        let node: Node = serde_json::from_value(node)?;
        snapshot.upsert_node(Arc::new(node));
    }
    let mut times = Vec::with_capacity(pods);
    let mut examined = 0usize;
    let mut start = 0usize;
    for i in 0..pods {
        let mut pod = pod_object(&pod_name(i));
        pod_extra(i, &mut pod);
        let mut pod: Pod = serde_json::from_value(pod)?;
        pod.metadata.uid = Some(format!("uid-{i}"));
        let began = Instant::now();
        let decision = schedule_from(profile, &pod, &snapshot, i as u64, start);
        let Decision::Scheduled(scheduled) = decision else {
            bail!("pod {i} was not scheduled: {decision:?}");
        };
        times.push(began.elapsed());
        examined += scheduled.examined;
        start = (start + scheduled.examined) % nodes.max(1);
        if let Some(spec) = pod.spec.as_mut() {
            spec.node_name = Some(scheduled.node);
        }
        snapshot.add_pod(Arc::new(pod));
    }
    let total: Duration = times.iter().sum();
    times.sort();
    let at = |q: f64| {
        times
            .get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Ok(CoreRun {
        nodes,
        pods,
        cycles_per_sec: pods as f64 / total.as_secs_f64().max(f64::MIN_POSITIVE),
        cycle_p50_us: at(0.5),
        cycle_p99_us: at(0.99),
        mean_nodes_examined: examined as f64 / pods.max(1) as f64,
    })
}
