//! The parts of `node-bench`: a watch that reports each pod's phase as it
//! changes, a keep-alive HTTP/1.1 client for the load, the `wasmtime
//! serve` peer, and the `skiff agent` child the density run measures.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Empty};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::ApiClient;
use crate::procs::free_port;

/// A pod as the watch saw it change.
#[derive(Clone, Debug)]
pub struct PodSeen {
    pub name: String,
    pub phase: String,
    pub pod_ip: Option<String>,
    pub at: Instant,
}

#[derive(Debug, Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: Value,
}

/// Watches the pods of `ns` from now on, sending every change; the watch
/// is resumed where it ended until `deadline`.
pub async fn watch_pods(
    api: ApiClient,
    ns: &str,
    deadline: Instant,
) -> anyhow::Result<mpsc::UnboundedReceiver<PodSeen>> {
    let list: Value = serde_json::from_slice(
        &api.call(
            Method::GET,
            &format!("/api/v1/namespaces/{ns}/pods?limit=1"),
            None,
            "application/json",
        )
        .await?,
    )?;
    let mut rv = list["metadata"]["resourceVersion"]
        .as_str()
        .context("a pod list without a resourceVersion")?
        .to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    let ns = ns.to_string();
    tokio::spawn(async move {
        while Instant::now() < deadline {
            let path = format!("/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}&allowWatchBookmarks=true");
            let Ok(mut body) = api.watch(&path).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let mut buffer = Vec::new();
            loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let Ok(Some(Ok(frame))) = tokio::time::timeout(remaining, body.frame()).await else {
                    break;
                };
                let Ok(data) = frame.into_data() else { continue };
                buffer.extend_from_slice(&data);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let Ok(event) = serde_json::from_slice::<WatchEvent>(&line) else {
                        continue;
                    };
                    if let Some(v) = event.object["metadata"]["resourceVersion"].as_str() {
                        rv = v.to_string();
                    }
                    if event.kind != "ADDED" && event.kind != "MODIFIED" {
                        continue;
                    }
                    let seen = PodSeen {
                        name: event.object["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        phase: event.object["status"]["phase"].as_str().unwrap_or_default().to_string(),
                        pod_ip: event.object["status"]["podIP"].as_str().map(str::to_string),
                        at: Instant::now(),
                    };
                    if tx.send(seen).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}

/// Waits on `seen` until pod `name` is Running (or has failed); returns
/// when the watch saw it and its pod IP.
pub async fn until_running(
    seen: &mut mpsc::UnboundedReceiver<PodSeen>,
    name: &str,
    deadline: Instant,
) -> anyhow::Result<(Instant, Option<String>)> {
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, seen.recv()).await {
            Ok(Some(pod)) if pod.name == name && pod.phase == "Running" => return Ok((pod.at, pod.pod_ip)),
            Ok(Some(pod)) if pod.name == name && (pod.phase == "Failed" || pod.phase == "Succeeded") => {
                bail!("pod {name} ended {} instead of running", pod.phase)
            }
            Ok(Some(_)) => {}
            Ok(None) => bail!("the pod watch ended"),
            Err(_) => bail!("pod {name} was not Running in time"),
        }
    }
}

/// A pod of one container, placed by the scheduler.
pub fn pod(name: &str, image: &str, runtime_class: &str, port: Option<u16>, command: &[&str]) -> Value {
    let mut container = json!({"name": "main", "image": image, "imagePullPolicy": "Never"});
    if let Some(port) = port {
        container["ports"] = json!([{"containerPort": port}]);
    }
    if !command.is_empty() {
        container["command"] = json!(command);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "node"}},
        "spec": {
            "runtimeClassName": runtime_class,
            "terminationGracePeriodSeconds": 0,
            "containers": [container],
        },
    })
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct HttpConn {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: String,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<HttpConn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(HttpConn {
            sender,
            host: addr.to_string(),
        })
    }

    /// GETs `path`; a non-200 answer is an error.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<Bytes> {
        self.sender.ready().await?;
        let request = http::Request::builder()
            .uri(path)
            .header(http::header::HOST, &self.host)
            .body(Empty::new())?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if status != http::StatusCode::OK {
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body)
    }
}

/// GET over a new connection: what a first request costs.
pub async fn get_once(addr: SocketAddr, path: &str) -> anyhow::Result<Bytes> {
    HttpConn::connect(addr).await?.get(path).await
}

/// Keep-alive GET load: `clients` connections to `addr` for `duration`.
pub async fn http_load(
    addr: SocketAddr,
    path: &'static str,
    clients: usize,
    duration: Duration,
) -> crate::load::Figures {
    let connections: Arc<Vec<tokio::sync::Mutex<Option<HttpConn>>>> =
        Arc::new((0..clients).map(|_| tokio::sync::Mutex::new(None)).collect());
    let run = crate::load::run(clients, duration, move |client, _| {
        let connections = connections.clone();
        async move {
            let mut slot = connections[client].lock().await;
            if slot.is_none() {
                *slot = Some(HttpConn::connect(addr).await?);
            }
            let Some(conn) = slot.as_mut() else {
                bail!("no connection")
            };
            if let Err(error) = conn.get(path).await {
                // A broken connection is replaced on the next request.
                *slot = None;
                return Err(error);
            }
            Ok(())
        }
    })
    .await;
    crate::load::figures("", 1, "GET", clients, run)
}

/// A child process killed when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
}

impl ChildProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_sink() -> Stdio {
    if std::env::var_os("SKIFF_BENCH_VERBOSE").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// `wasmtime serve` of `component` on a free loopback port, once it
/// answers `probe`.
pub async fn wasmtime_serve(bin: &Path, component: &Path, probe: &str) -> anyhow::Result<(ChildProcess, SocketAddr)> {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let child = Command::new(bin)
        .args([
            "serve",
            "-Scli",
            "--max-instance-reuse-count",
            "1",
            "--addr",
            &addr.to_string(),
        ])
        .arg(component)
        .stdout(Stdio::null())
        .stderr(log_sink())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut process = ChildProcess { child };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = process.exited() {
            bail!("wasmtime serve exited during start-up: {status}");
        }
        if get_once(addr, probe).await.is_ok() {
            return Ok((process, addr));
        }
        if Instant::now() > deadline {
            bail!("wasmtime serve did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a `skiff agent` child needs.
#[derive(Debug)]
pub struct AgentOptions<'a> {
    pub bin: &'a Path,
    /// The API server, `host:port`, and its data directory (for the CA
    /// and the admin token).
    pub server: &'a str,
    pub server_dir: &'a Path,
    pub data_dir: PathBuf,
    pub name: &'a str,
    pub pod_cidr: &'a str,
    pub max_pods: u32,
}

/// `skiff agent` in its own process, so its memory is its own.
pub fn skiff_agent(options: &AgentOptions<'_>) -> anyhow::Result<ChildProcess> {
    let child = Command::new(options.bin)
        .arg("agent")
        .args(["--server", &format!("https://{}", options.server)])
        .arg("--ca-file")
        .arg(options.server_dir.join("pki/ca.crt"))
        .arg("--token-file")
        .arg(options.server_dir.join("pki/admin.token"))
        .arg("--data-dir")
        .arg(&options.data_dir)
        .args(["--name", options.name, "--pod-cidr", options.pod_cidr])
        .args(["--max-pods", &options.max_pods.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log_sink())
        .spawn()
        .with_context(|| format!("starting {} agent", options.bin.display()))?;
    Ok(ChildProcess { child })
}

/// Waits until Node `name` reports Ready.
pub async fn node_ready(api: &ApiClient, name: &str) -> anyhow::Result<()> {
    let (_, ready) = crate::scheduler::poll_until(
        api,
        &format!("/api/v1/nodes/{name}"),
        Duration::from_millis(100),
        Instant::now() + Duration::from_secs(60),
        |node| {
            node["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        },
    )
    .await;
    anyhow::ensure!(ready, "node {name} did not become Ready");
    Ok(())
}

/// Sorted latencies' p50, p99 and max, in milliseconds.
pub fn spread_ms(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort_unstable();
    let max = samples.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    (
        crate::load::percentile(&samples, 0.50),
        crate::load::percentile(&samples, 0.99),
        max,
    )
}
