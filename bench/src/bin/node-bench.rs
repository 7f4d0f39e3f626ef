//! `node-bench`: the node agent's runtimes, Wasm next to runc, and the
//! gateway against `wasmtime serve`.
//!
//! Run with `cargo xtask bench node` (release build; it installs the
//! `wasmtime` CLI for the peer and, as root, builds the busybox OCI
//! layout). Phases:
//!
//! 1. **Instantiate** (in this process, skiff's own `WasmRuntime` with the
//!    node's engine configuration): a fresh instance of the pre-compiled
//!    HTTP component from its `ProxyPre`, made and dropped, N times; then
//!    whole in-process requests (instance, handler, body); then the floor
//!    of an in-process Wasm -> Wasm call (wstd's `http_server_proxy`
//!    calling the component through a bare `Outgoing`), against each
//!    alone.
//! 2. **Pods** (a `skiff server` with its in-process agent): pods created
//!    one at a time through the API, each timed from the create request to
//!    the watch showing it Running: Wasm pods, then (as root, with runc)
//!    runc pods of busybox `sleep`, each in its own network namespace,
//!    alternately with as many with `hostNetwork` (what the namespace
//!    costs, neither kind meeting a fuller node than the other). After
//!    each Wasm pod is Running, its
//!    first request through the gateway (new connection) and a second.
//! 3. **Gateway throughput**: keep-alive GET load on one Wasm pod's
//!    address at 1, 16 and 64 connections, then the same load against
//!    `wasmtime serve` of the same component, side by side. The load
//!    generator shares the machine's cores with the server under test.
//!    Then the **CPU-limit neighbour**: the same load on one Wasm pod
//!    alone, while a Wasm command pod spinning under `limits.cpu`
//!    (`--spin-cpu-limit`, 100m) runs on the node, alone again, and, for
//!    contrast, while the same spinner runs without a limit; with the
//!    node process's CPU while each spinner runs without load, and what
//!    the node's summary (`/stats/summary`) reports each spinner used.
//! 4. **Density** (`skiff server --no-agent` plus a `skiff agent` process,
//!    so the agent's memory is its own): `--density` idle Wasm HTTP pods
//!    created through the API onto the one node, until all are Running or
//!    the timeout; the agent's RSS, threads and descriptors before and
//!    after, per pod; then a request to a sample of them.
//!
//! Figures go to stdout as JSON (or `--out`), a summary to stderr.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use http::Method;
use http_body_util::BodyExt;
use serde::Serialize;
use skiff_api::server::node_client::NodeClient;
use skiff_bench::api::ApiClient;
use skiff_bench::node::{self, AgentOptions, HttpConn, PodSeen};
use skiff_bench::procs;
use skiff_bench::scheduler::{self as sched, Server};
use skiff_wasm::{
    Environment, HttpService, Outgoing, OutgoingError, PoolConfig, RequestOptions, RuntimeConfig, Sending, WasiBody,
    WasmRuntime,
};

#[derive(Debug, Parser)]
struct Args {
    /// The skiff binary to run the server and agent with.
    #[arg(long)]
    skiff_bin: PathBuf,
    /// The Wasm HTTP component (wasi:http/proxy) every phase runs.
    #[arg(long, default_value = skiff_test_programs::HTTP_HELLO)]
    wasm: PathBuf,
    /// The `wasmtime` CLI for the gateway's peer; skipped when absent.
    #[arg(long)]
    wasmtime_bin: Option<PathBuf>,
    /// An OCI image layout with busybox (`sleep`) for the runc pods;
    /// skipped when absent or not root.
    #[arg(long)]
    oci_layout: Option<PathBuf>,
    /// Instances made and dropped in the instantiate phase.
    #[arg(long, default_value_t = 20_000)]
    instances: usize,
    /// Whole in-process requests in the instantiate phase.
    #[arg(long, default_value_t = 5_000)]
    requests: usize,
    /// Wasm pods created one at a time.
    #[arg(long, default_value_t = 50)]
    wasm_pods: usize,
    /// runc pods created one at a time.
    #[arg(long, default_value_t = 20)]
    runc_pods: usize,
    /// Connection counts of the gateway load.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    clients: Vec<usize>,
    /// Seconds per load cell.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// The Wasm caller of the in-process call floor: a component that
    /// forwards `/proxy/<rest>` to `$TARGET_URL<rest>`.
    #[arg(long, default_value = skiff_test_programs::WSTD_HTTP_SERVER_PROXY)]
    wasm_caller: PathBuf,
    /// The Wasm command (wasi:cli/command) that spins beside the HTTP pod
    /// in the CPU-limit neighbour measurement.
    #[arg(long, default_value = skiff_test_programs::CLI_SPIN)]
    spin_wasm: PathBuf,
    /// The spinner's `resources.limits.cpu`.
    #[arg(long, default_value = "100m")]
    spin_cpu_limit: String,
    /// Connections of the CPU-limit neighbour load.
    #[arg(long, default_value_t = 16)]
    neighbour_clients: usize,
    /// Idle Wasm pods on one node in the density phase; 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    density: usize,
    /// Requests in flight while creating the density pods.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds a phase may take before it is reported as unfinished.
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
    /// Write the JSON report here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Instantiate {
    component: String,
    component_bytes: u64,
    /// Compiling the component (no on-disk cache) and pre-instantiating.
    compile_ms: f64,
    instances: usize,
    instantiate_p50_us: f64,
    instantiate_p99_us: f64,
    instantiate_mean_us: f64,
    requests: usize,
    /// Instance, handler and response body, without the network.
    request_p50_us: f64,
    request_p99_us: f64,
    requests_per_sec_one_task: f64,
    /// RSS per idle service (pre-instantiated, no instance) over 1,000.
    idle_service_kib: f64,
    /// An in-process call without the agent: what the Wasm layer costs.
    call: CallFloor,
}

/// A Wasm caller (wstd's `http_server_proxy`) calling the component
/// in-process through an [`Outgoing`] that hands the request straight to
/// its handler (no routing, policy or limits), each request on a worker
/// thread as the gateway serves it: the floor under the agent's
/// in-process path.
#[derive(Debug, Serialize)]
struct CallFloor {
    caller: String,
    callee_alone_p50_us: f64,
    caller_alone_p50_us: f64,
    call_p50_us: f64,
    call_p99_us: f64,
    /// The call's p50 less the caller's and the callee's alone.
    added_p50_us: f64,
}

#[derive(Debug)]
struct Direct(HttpService);

impl Outgoing for Direct {
    fn send(&self, request: http::Request<WasiBody>, _: RequestOptions) -> Sending {
        let service = self.0.clone();
        Box::pin(async move {
            let response = service
                .handle(request)
                .await
                .map_err(|e| OutgoingError::InternalError(Some(e.to_string())))?;
            Ok(response.map(|body| body.map_err(OutgoingError::from).boxed_unsync()))
        })
    }
}

/// One whole in-process request for `path`: instance, handler, body.
async fn timed_request(service: &HttpService, path: &str) -> anyhow::Result<Duration> {
    let request = http::Request::builder()
        .uri(format!("http://pod.local{path}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let t = Instant::now();
    let response = service.handle(request).await?;
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the response: {e:?}"))?;
    Ok(t.elapsed())
}

/// `n` requests for `path`, one at a time on a worker thread: (p50, p99).
async fn requests_on_a_worker(service: &HttpService, path: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let (service, path) = (service.clone(), path.to_string());
    tokio::spawn(async move {
        let mut samples = Vec::with_capacity(n);
        for i in 0..n + n / 10 {
            let took = timed_request(&service, &path).await?;
            // The first tenth warms up.
            if i >= n / 10 {
                samples.push(took);
            }
        }
        let (p50, p99, _) = node::spread_ms(samples);
        Ok((us(p50), us(p99)))
    })
    .await?
}

async fn call_floor(args: &Args, runtime: &WasmRuntime, callee_bytes: &[u8]) -> anyhow::Result<CallFloor> {
    let env = || Environment {
        args: vec!["main".into()],
        ..Environment::default()
    };
    let callee = runtime.http_service(callee_bytes, env())?;
    let caller_bytes =
        std::fs::read(&args.wasm_caller).with_context(|| format!("reading {}", args.wasm_caller.display()))?;
    let caller = runtime.http_service(
        &caller_bytes,
        Environment {
            env: vec![("TARGET_URL".into(), "http://callee.local/".into())],
            outgoing: Some(Arc::new(Direct(callee.clone()))),
            ..env()
        },
    )?;
    let n = args.requests;
    let (callee_alone, _) = requests_on_a_worker(&callee, "/", n).await?;
    // wstd's proxy answers 404 to any other path, without a call.
    let (caller_alone, _) = requests_on_a_worker(&caller, "/none", n).await?;
    let (call_p50, call_p99) = requests_on_a_worker(&caller, "/proxy/", n).await?;
    Ok(CallFloor {
        caller: args.wasm_caller.display().to_string(),
        callee_alone_p50_us: callee_alone,
        caller_alone_p50_us: caller_alone,
        call_p50_us: call_p50,
        call_p99_us: call_p99,
        added_p50_us: call_p50 - caller_alone - callee_alone,
    })
}

#[derive(Debug, Serialize)]
struct CreateToRunning {
    runtime: &'static str,
    pods: usize,
    /// The first pod of the kind: it may load the component or unpack
    /// the image for the first time.
    first_ms: f64,
    /// The others, each created once the one before was Running.
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct FirstRequest {
    pods: usize,
    /// The first GET to a pod just seen Running, on a new connection.
    first_p50_ms: f64,
    first_p99_ms: f64,
    /// A second GET on another new connection.
    second_p50_ms: f64,
    second_p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct LoadCell {
    system: &'static str,
    clients: usize,
    requests: u64,
    errors: u64,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct GatewayRatio {
    clients: usize,
    skiff_requests_per_sec: f64,
    wasmtime_serve_requests_per_sec: f64,
    skiff_over_wasmtime_serve: f64,
}

/// An HTTP pod's request rate beside a spinning Wasm command pod.
#[derive(Debug, Serialize)]
struct CpuNeighbour {
    clients: usize,
    seconds: u64,
    spin_cpu_limit: String,
    /// The HTTP pod alone, before and after the limited spinner ran.
    alone_requests_per_sec: [f64; 2],
    /// While the limited spinner runs.
    limited_requests_per_sec: f64,
    limited_errors: u64,
    /// Over the mean of the two alone figures; the aim is at least 0.9.
    limited_over_alone: f64,
    /// While the same spinner runs without a limit.
    unlimited_requests_per_sec: f64,
    unlimited_over_alone: f64,
    /// The node process's CPU, in cores, without load: idle, then with
    /// each spinner.
    idle_cores: f64,
    limited_spinner_cores: f64,
    unlimited_spinner_cores: f64,
    /// What the node reports the spinners used over the same windows
    /// (`/stats/summary`, CPU in cores, working set in bytes).
    limited_spinner_reported: Option<Reported>,
    unlimited_spinner_reported: Option<Reported>,
}

/// One pod's use as the node's summary reports it, over a window.
#[derive(Debug, Serialize)]
struct Reported {
    cores: f64,
    working_set_bytes: u64,
}

#[derive(Debug, Serialize)]
struct ProcessFigures {
    rss_mib: f64,
    threads: u64,
    open_files: u64,
}

#[derive(Debug, Serialize)]
struct Density {
    asked: usize,
    running: usize,
    create_errors: u64,
    /// First create sent → last pod seen Running.
    seconds_to_all_running: f64,
    pods_per_sec: f64,
    agent_before: ProcessFigures,
    agent_after: ProcessFigures,
    /// (RSS after − RSS before) / pods Running.
    rss_per_pod_kib: f64,
    agent_cpu_seconds: f64,
    server_rss_mib: f64,
    sampled: usize,
    sample_ok: usize,
    sample_p50_ms: f64,
    sample_p99_ms: f64,
    finished: bool,
}

#[derive(Debug, Serialize)]
struct Aims {
    instantiate_p50_us: f64,
    wasm_create_to_running_p99_ms: f64,
    wasm_pods_on_one_node: usize,
    gateway_over_wasmtime_serve: f64,
    cpu_limited_neighbour_over_alone: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    build: &'static str,
    skiff_bin: String,
    wasmtime: Option<String>,
    instantiate: Instantiate,
    create_to_running: Vec<CreateToRunning>,
    first_request: Option<FirstRequest>,
    gateway: Vec<LoadCell>,
    ratios: Vec<GatewayRatio>,
    cpu_neighbour: Option<CpuNeighbour>,
    density: Option<Density>,
    aims: Aims,
}

fn us(d: f64) -> f64 {
    d * 1000.0
}

async fn instantiate(args: &Args, root: &Path) -> anyhow::Result<Instantiate> {
    let runtime = WasmRuntime::new(RuntimeConfig {
        cache_dir: root.join("compiled"),
        pool: PoolConfig::default(),
    })?;
    let bytes = std::fs::read(&args.wasm).with_context(|| format!("reading {}", args.wasm.display()))?;
    let start = Instant::now();
    let service = runtime.http_service(
        &bytes,
        Environment {
            args: vec!["main".into()],
            ..Environment::default()
        },
    )?;
    let compile_ms = start.elapsed().as_secs_f64() * 1000.0;
    for _ in 0..1000 {
        service.instantiate().await?;
    }
    let mut samples = Vec::with_capacity(args.instances);
    let all = Instant::now();
    for _ in 0..args.instances {
        let t = Instant::now();
        service.instantiate().await?;
        samples.push(t.elapsed());
    }
    let mean = all.elapsed().as_secs_f64() / args.instances.max(1) as f64 * 1e6;
    let (p50, p99, _) = node::spread_ms(samples);
    let mut requests = Vec::with_capacity(args.requests);
    let all = Instant::now();
    for _ in 0..args.requests {
        requests.push(timed_request(&service, "/").await?);
    }
    let per_sec = args.requests as f64 / all.elapsed().as_secs_f64();
    // What an idle service holds: a pre-instantiated component and its
    // environment, no instance.
    let before = procs::rss_mib(std::process::id());
    let services: Vec<_> = (0..1000)
        .map(|_| {
            runtime.http_service(
                &bytes,
                Environment {
                    args: vec!["main".into()],
                    ..Environment::default()
                },
            )
        })
        .collect::<Result<_, _>>()?;
    let service_kib = (procs::rss_mib(std::process::id()) - before) * 1024.0 / services.len() as f64;
    drop(services);
    let (r50, r99, _) = node::spread_ms(requests);
    let call = call_floor(args, &runtime, &bytes).await?;
    Ok(Instantiate {
        component: args.wasm.display().to_string(),
        component_bytes: bytes.len() as u64,
        compile_ms,
        instances: args.instances,
        instantiate_p50_us: us(p50),
        instantiate_p99_us: us(p99),
        instantiate_mean_us: mean,
        requests: args.requests,
        request_p50_us: us(r50),
        request_p99_us: us(r99),
        requests_per_sec_one_task: per_sec,
        idle_service_kib: service_kib,
        call,
    })
}

/// Creates pods one at a time and times each to Running; returns the
/// figures and the pods' IPs.
async fn one_at_a_time(
    api: &ApiClient,
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<PodSeen>,
    runtime: &'static str,
    names: &[String],
    make: impl Fn(&str) -> serde_json::Value,
    deadline: Instant,
) -> anyhow::Result<(CreateToRunning, Vec<Option<String>>)> {
    let (times, ips) = create_each(api, seen, names, make, deadline).await?;
    Ok((summarize(runtime, &times), ips))
}

/// Creates the pods one at a time, each once the one before is Running:
/// how long each took, and its address.
async fn create_each(
    api: &ApiClient,
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<PodSeen>,
    names: &[String],
    make: impl Fn(&str) -> serde_json::Value,
    deadline: Instant,
) -> anyhow::Result<(Vec<Duration>, Vec<Option<String>>)> {
    let mut times = Vec::new();
    let mut ips = Vec::new();
    for name in names {
        let body = make(name).to_string().into_bytes();
        let start = Instant::now();
        api.call(
            Method::POST,
            "/api/v1/namespaces/default/pods",
            Some(body),
            "application/json",
        )
        .await?;
        let (at, ip) = node::until_running(seen, name, deadline).await?;
        times.push(at.saturating_duration_since(start));
        ips.push(ip);
    }
    Ok((times, ips))
}

fn summarize(runtime: &'static str, times: &[Duration]) -> CreateToRunning {
    let first_ms = times.first().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let (p50_ms, p99_ms, max_ms) = node::spread_ms(times.iter().skip(1).copied().collect());
    CreateToRunning {
        runtime,
        pods: times.len(),
        first_ms,
        p50_ms,
        p99_ms,
        max_ms,
    }
}

fn process(pid: u32) -> ProcessFigures {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    ProcessFigures {
        rss_mib: procs::rss_mib(pid),
        threads,
        open_files,
    }
}

fn pod_addr(ip: &str, port: u16) -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::new(ip.parse()?, port))
}

async fn gateway_load(system: &'static str, addr: SocketAddr, args: &Args) -> Vec<LoadCell> {
    let mut cells = Vec::new();
    for &clients in &args.clients {
        let f = node::http_load(addr, "/", clients, Duration::from_secs(args.seconds)).await;
        eprintln!(
            "{system:<16} {clients:>3} connections: {:>8.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            f.ops_per_sec, f.p50_ms, f.p99_ms, f.errors
        );
        cells.push(LoadCell {
            system,
            clients,
            requests: f.ops,
            errors: f.errors,
            requests_per_sec: f.ops_per_sec,
            p50_ms: f.p50_ms,
            p99_ms: f.p99_ms,
        });
    }
    cells
}

struct PodsPhase {
    create_to_running: Vec<CreateToRunning>,
    first_request: Option<FirstRequest>,
    gateway: Vec<LoadCell>,
    cpu_neighbour: Option<CpuNeighbour>,
}

/// The node process's CPU use, in cores, over `seconds`.
/// The agent's endpoint (the kubelet's port), from the Node object.
/// The node agent's endpoint, and a client it takes calls from: one with
/// a certificate in `system:masters` from the cluster CA in `server_dir`.
async fn agent_endpoint(api: &ApiClient, server_dir: &Path) -> anyhow::Result<(SocketAddr, NodeClient)> {
    // The cluster's CA, from a copy of the server's credentials (loading
    // writes what it finds missing).
    let copy = tempfile::tempdir()?;
    std::fs::create_dir(copy.path().join("pki"))?;
    for file in ["ca.crt", "ca.key"] {
        std::fs::copy(server_dir.join("pki").join(file), copy.path().join("pki").join(file))?;
    }
    let pki = skiff_api::pki::Pki::load_or_create(copy.path(), &[])?;
    let until = i32::from(jiff::Zoned::now().year()) + 1;
    let (cert, key) = pki.issue_client("skiff-bench", Some("system:masters"), until)?;
    let client = NodeClient::with_certificate(&cert, &key).map_err(anyhow::Error::msg)?;
    Ok((agent_address(api).await?, client))
}

async fn agent_address(api: &ApiClient) -> anyhow::Result<SocketAddr> {
    let nodes: serde_json::Value =
        serde_json::from_slice(&api.call(Method::GET, "/api/v1/nodes", None, "application/json").await?)?;
    let node = &nodes["items"][0]["status"];
    let ip = node["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .context("the node has no InternalIP")?;
    let port = node["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .context("the node has no kubelet port")?;
    Ok(SocketAddr::new(ip.parse()?, u16::try_from(port)?))
}

/// Pod `name`'s cumulative CPU (ns) and working set in the node's summary.
async fn pod_usage(agent: &(SocketAddr, NodeClient), name: &str) -> Option<(u64, u64)> {
    let answer = agent.1.get(&agent.0.to_string(), "/stats/summary").await.ok()?;
    let body = skiff_api::server::node_client::text(answer.into_body()).await;
    let summary: serde_json::Value = serde_json::from_str(&body).ok()?;
    let pod = summary["pods"]
        .as_array()?
        .iter()
        .find(|p| p["podRef"]["name"] == name)?;
    Some((
        pod["cpu"]["usageCoreNanoSeconds"].as_u64()?,
        pod["memory"]["workingSetBytes"].as_u64()?,
    ))
}

/// [`cores_used`] for the node process, and what the node reports pod
/// `name` used over the same window.
async fn cores_and_reported(
    pid: u32,
    seconds: u64,
    agent: Option<&(SocketAddr, NodeClient)>,
    name: &str,
) -> (f64, Option<Reported>) {
    let Some(agent) = agent else {
        return (cores_used(pid, seconds).await, None);
    };
    let (first, start) = (pod_usage(agent, name).await, Instant::now());
    let cores = cores_used(pid, seconds).await;
    let last = pod_usage(agent, name).await;
    let reported = match (first, last) {
        (Some((cpu0, _)), Some((cpu1, bytes))) => Some(Reported {
            cores: cpu1.saturating_sub(cpu0) as f64 / start.elapsed().as_nanos() as f64,
            working_set_bytes: bytes,
        }),
        _ => None,
    };
    (cores, reported)
}

async fn cores_used(pid: u32, seconds: u64) -> f64 {
    let pid = pid.to_string();
    let (cpu, start) = (procs::cpu_seconds(&pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    (procs::cpu_seconds(&pid) - cpu) / start.elapsed().as_secs_f64()
}

/// Deletes pod `name` and waits until it is gone.
async fn delete_pod(api: &ApiClient, name: &str, deadline: Instant) -> anyhow::Result<()> {
    let path = format!("/api/v1/namespaces/default/pods/{name}");
    api.call(Method::DELETE, &path, None, "application/json").await?;
    while Instant::now() < deadline {
        if let Err(e) = api.call(Method::GET, &path, None, "application/json").await
            && e.to_string().starts_with("404")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("pod {name} was not gone in time")
}

/// The HTTP pod at `addr` under load alone and beside a spinning Wasm
/// command pod, limited and not.
async fn cpu_neighbour(
    args: &Args,
    api: &ApiClient,
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<PodSeen>,
    server_pid: u32,
    server_dir: &Path,
    addr: SocketAddr,
    deadline: Instant,
) -> anyhow::Result<CpuNeighbour> {
    let load = || node::http_load(addr, "/", args.neighbour_clients, Duration::from_secs(args.seconds));
    let spinner = |name: &str, limit: Option<&str>| {
        let mut pod = node::pod(name, "local/spin:1", "wasmtime", None, &[]);
        if let Some(limit) = limit {
            pod["spec"]["containers"][0]["resources"] = serde_json::json!({"limits": {"cpu": limit}});
        }
        pod.to_string().into_bytes()
    };
    let pods = "/api/v1/namespaces/default/pods";
    let agent = agent_endpoint(api, server_dir).await.ok();
    let idle_cores = cores_used(server_pid, args.seconds).await;
    let before = load().await;

    api.call(
        Method::POST,
        pods,
        Some(spinner("spin-limited", Some(&args.spin_cpu_limit))),
        "application/json",
    )
    .await?;
    node::until_running(seen, "spin-limited", deadline).await?;
    let (limited_spinner_cores, limited_spinner_reported) =
        cores_and_reported(server_pid, args.seconds, agent.as_ref(), "spin-limited").await;
    let limited = load().await;
    delete_pod(api, "spin-limited", deadline).await?;
    let after = load().await;

    api.call(
        Method::POST,
        pods,
        Some(spinner("spin-unlimited", None)),
        "application/json",
    )
    .await?;
    node::until_running(seen, "spin-unlimited", deadline).await?;
    let (unlimited_spinner_cores, unlimited_spinner_reported) =
        cores_and_reported(server_pid, args.seconds, agent.as_ref(), "spin-unlimited").await;
    let unlimited = load().await;
    delete_pod(api, "spin-unlimited", deadline).await?;

    let alone = (before.ops_per_sec + after.ops_per_sec) / 2.0;
    let figures = CpuNeighbour {
        clients: args.neighbour_clients,
        seconds: args.seconds,
        spin_cpu_limit: args.spin_cpu_limit.clone(),
        alone_requests_per_sec: [before.ops_per_sec, after.ops_per_sec],
        limited_requests_per_sec: limited.ops_per_sec,
        limited_errors: limited.errors,
        limited_over_alone: limited.ops_per_sec / alone.max(f64::MIN_POSITIVE),
        unlimited_requests_per_sec: unlimited.ops_per_sec,
        unlimited_over_alone: unlimited.ops_per_sec / alone.max(f64::MIN_POSITIVE),
        idle_cores,
        limited_spinner_cores,
        unlimited_spinner_cores,
        limited_spinner_reported,
        unlimited_spinner_reported,
    };
    eprintln!(
        "cpu-limit neighbour, {} connections: alone {:.0} / {:.0} req/s; beside a {} spinner {:.0} req/s (x{:.2}); beside an unlimited spinner {:.0} req/s (x{:.2}); node CPU without load: idle {:.2}, {} spinner {:.2}, unlimited spinner {:.2} cores",
        figures.clients,
        before.ops_per_sec,
        after.ops_per_sec,
        figures.spin_cpu_limit,
        figures.limited_requests_per_sec,
        figures.limited_over_alone,
        figures.unlimited_requests_per_sec,
        figures.unlimited_over_alone,
        figures.idle_cores,
        figures.spin_cpu_limit,
        figures.limited_spinner_cores,
        figures.unlimited_spinner_cores,
    );
    for (name, reported) in [
        ("limited", &figures.limited_spinner_reported),
        ("unlimited", &figures.unlimited_spinner_reported),
    ] {
        match reported {
            Some(r) => eprintln!(
                "  the node reports the {name} spinner at {:.3} cores, {:.1} KiB working set",
                r.cores,
                r.working_set_bytes as f64 / 1024.0
            ),
            None => eprintln!("  the node's summary has no figures for the {name} spinner"),
        }
    }
    Ok(figures)
}

async fn pods_phase(args: &Args, root: &Path) -> anyhow::Result<PodsPhase> {
    let dir = root.join("pods");
    let agent_dir = dir.join("agent");
    sched::import_image(&args.skiff_bin, &args.wasm, "local/hello:1", &agent_dir)?;
    sched::import_image(&args.skiff_bin, &args.spin_wasm, "local/spin:1", &agent_dir)?;
    let runc = match &args.oci_layout {
        Some(layout) if procs::is_root() => {
            sched::import_image(&args.skiff_bin, layout, "local/busybox:1", &agent_dir)?;
            true
        }
        _ => false,
    };
    let server = Server::start(
        &args.skiff_bin,
        &dir,
        &["--node-name", "bench", "--pod-cidr", "127.61.0.0"],
    )
    .await?;
    let api = server.client(2)?;
    node::node_ready(&api, "bench").await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let mut seen = node::watch_pods(server.client(1)?, "default", deadline).await?;

    let names: Vec<String> = (0..args.wasm_pods).map(|i| format!("w-{i:03}")).collect();
    let (wasm, ips) = one_at_a_time(
        &api,
        &mut seen,
        "wasmtime",
        &names,
        |name| node::pod(name, "local/hello:1", "wasmtime", Some(8080), &[]),
        deadline,
    )
    .await?;
    eprintln!(
        "create → Running, Wasm: first {:.1} ms, then p50 {:.1} ms p99 {:.1} ms (max {:.1}) over {} pods",
        wasm.first_ms,
        wasm.p50_ms,
        wasm.p99_ms,
        wasm.max_ms,
        wasm.pods.saturating_sub(1)
    );
    // The first requests, to pods that have served nothing yet.
    let mut first = Vec::new();
    let mut second = Vec::new();
    for ip in ips.iter().flatten() {
        let addr = pod_addr(ip, 8080)?;
        let t = Instant::now();
        node::get_once(addr, "/").await?;
        first.push(t.elapsed());
        let t = Instant::now();
        node::get_once(addr, "/").await?;
        second.push(t.elapsed());
    }
    let first_request = (!first.is_empty()).then(|| {
        let pods = first.len();
        let (f50, f99, _) = node::spread_ms(first);
        let (s50, s99, _) = node::spread_ms(second);
        eprintln!(
            "first request through the gateway: p50 {f50:.2} ms p99 {f99:.2} ms; second p50 {s50:.2} ms p99 {s99:.2} ms"
        );
        FirstRequest {
            pods,
            first_p50_ms: f50,
            first_p99_ms: f99,
            second_p50_ms: s50,
            second_p99_ms: s99,
        }
    });
    let mut create_to_running = vec![wasm];
    if runc {
        // Pods in their own network namespace and on the node's network,
        // alternately, so that neither kind meets a fuller node.
        let names: Vec<String> = (0..args.runc_pods)
            .flat_map(|i| [format!("r-{i:03}"), format!("h-{i:03}")])
            .collect();
        let (times, _) = create_each(
            &api,
            &mut seen,
            &names,
            |name| {
                let mut pod = node::pod(name, "local/busybox:1", "runc", None, &["sleep", "3600"]);
                if name.starts_with("h-") {
                    pod["spec"]["hostNetwork"] = serde_json::json!(true);
                }
                pod
            },
            deadline,
        )
        .await?;
        let of_kind = |prefix: &str| -> Vec<Duration> {
            names
                .iter()
                .zip(&times)
                .filter(|(n, _)| n.starts_with(prefix))
                .map(|(_, t)| *t)
                .collect()
        };
        let oci = summarize("runc", &of_kind("r-"));
        let host = summarize("runc, hostNetwork", &of_kind("h-"));
        eprintln!(
            "create → Running, runc: first {:.1} ms, then p50 {:.1} ms p99 {:.1} ms (max {:.1}) over {} pods",
            oci.first_ms,
            oci.p50_ms,
            oci.p99_ms,
            oci.max_ms,
            oci.pods.saturating_sub(1)
        );
        eprintln!(
            "create → Running, runc on the host network (created alternately with those): p50 {:.1} ms p99 {:.1} ms; the namespace adds {:.1} ms at p50",
            host.p50_ms,
            host.p99_ms,
            oci.p50_ms - host.p50_ms
        );
        create_to_running.push(oci);
        create_to_running.push(host);
    } else {
        eprintln!("runc pods skipped: needs root and --oci-layout");
    }

    let mut gateway = Vec::new();
    let mut neighbour = None;
    if let Some(ip) = ips.iter().flatten().next() {
        let addr = pod_addr(ip, 8080)?;
        gateway.extend(gateway_load("skiff gateway", addr, args).await);
        neighbour = Some(cpu_neighbour(args, &api, &mut seen, server.pid(), &server.dir, addr, deadline).await?);
    }
    drop(server);
    if let Some(bin) = &args.wasmtime_bin {
        let (serve, addr) = node::wasmtime_serve(bin, &args.wasm, "/").await?;
        gateway.extend(gateway_load("wasmtime serve", addr, args).await);
        drop(serve);
    } else {
        eprintln!("wasmtime serve skipped: no --wasmtime-bin");
    }
    Ok(PodsPhase {
        create_to_running,
        first_request,
        gateway,
        cpu_neighbour: neighbour,
    })
}

async fn density(args: &Args, root: &Path) -> anyhow::Result<Density> {
    let dir = root.join("density");
    let agent_dir = dir.join("dense-agent");
    sched::import_image(&args.skiff_bin, &args.wasm, "local/hello:1", &agent_dir)?;
    let server = Server::start(&args.skiff_bin, &dir, &["--no-agent"]).await?;
    let agent = node::skiff_agent(&AgentOptions {
        bin: &args.skiff_bin,
        server: &server.addr,
        server_dir: &dir,
        data_dir: agent_dir,
        name: "dense",
        pod_cidr: "127.62.0.0",
        max_pods: u32::try_from(args.density + 100).unwrap_or(u32::MAX),
    })?;
    let api = server.client(4)?;
    node::node_ready(&api, "dense").await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = process(agent.pid());
    let agent_pid = agent.pid().to_string();
    let cpu = procs::cpu_seconds(&agent_pid);
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let mut seen = node::watch_pods(server.client(1)?, "default", deadline).await?;

    let start = Instant::now();
    let a = api.clone();
    let creates = tokio::spawn(sched::for_each_concurrent(args.density, args.concurrency, move |i| {
        let a = a.clone();
        async move {
            let body = node::pod(&format!("d-{i:05}"), "local/hello:1", "wasmtime", Some(8080), &[]);
            sched::call_retrying(
                &a,
                Method::POST,
                "/api/v1/namespaces/default/pods",
                &body,
                "application/json",
            )
            .await
        }
    }));
    let mut running: HashMap<String, String> = HashMap::new();
    let mut last = start;
    while running.len() < args.density {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, seen.recv()).await {
            Ok(Some(pod)) if pod.phase == "Running" && pod.name.starts_with("d-") => {
                if let Some(ip) = pod.pod_ip
                    && running.insert(pod.name, ip).is_none()
                {
                    last = pod.at;
                    if running.len().is_multiple_of(1000) {
                        eprintln!(
                            "density: {} pods Running after {:.1} s",
                            running.len(),
                            start.elapsed().as_secs_f64()
                        );
                    }
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let create_errors = creates.await.unwrap_or(u64::MAX);
    let seconds = last.saturating_duration_since(start).as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = process(agent.pid());
    let agent_cpu_seconds = procs::cpu_seconds(&agent_pid) - cpu;
    // A request to an evenly spread sample of the idle pods.
    let mut ips: Vec<&String> = running.values().collect();
    ips.sort();
    let step = (ips.len() / 100).max(1);
    let mut times = Vec::new();
    let mut sampled = 0;
    for ip in ips.iter().step_by(step).take(100) {
        sampled += 1;
        let t = Instant::now();
        if let Ok(addr) = pod_addr(ip, 8080)
            && let Ok(mut conn) = HttpConn::connect(addr).await
            && conn.get("/").await.is_ok()
        {
            times.push(t.elapsed());
        }
    }
    let sample_ok = times.len();
    let (p50, p99, _) = node::spread_ms(times);
    let n = running.len();
    Ok(Density {
        asked: args.density,
        running: n,
        create_errors,
        seconds_to_all_running: seconds,
        pods_per_sec: n as f64 / seconds.max(f64::MIN_POSITIVE),
        rss_per_pod_kib: (after.rss_mib - before.rss_mib) * 1024.0 / n.max(1) as f64,
        agent_before: before,
        agent_after: after,
        agent_cpu_seconds,
        server_rss_mib: procs::rss_mib(server.pid()),
        sampled,
        sample_ok,
        sample_p50_ms: p50,
        sample_p99_ms: p99,
        finished: n == args.density,
    })
}

fn wasmtime_version(bin: &Path) -> Option<String> {
    let out = std::process::Command::new(bin).arg("--version").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = tempfile::tempdir()?;

    let inst = instantiate(&args, root.path()).await?;
    eprintln!(
        "instantiate (pre-compiled, pooling): p50 {:.1} µs p99 {:.1} µs mean {:.1} µs; in-process request p50 {:.1} µs p99 {:.1} µs ({:.0}/s on one task); {:.1} KiB per idle service",
        inst.instantiate_p50_us,
        inst.instantiate_p99_us,
        inst.instantiate_mean_us,
        inst.request_p50_us,
        inst.request_p99_us,
        inst.requests_per_sec_one_task,
        inst.idle_service_kib
    );
    eprintln!(
        "in-process call without the agent (on a worker): callee alone p50 {:.1} µs, caller alone p50 {:.1} µs, caller -> callee p50 {:.1} µs p99 {:.1} µs: the call adds {:.1} µs",
        inst.call.callee_alone_p50_us,
        inst.call.caller_alone_p50_us,
        inst.call.call_p50_us,
        inst.call.call_p99_us,
        inst.call.added_p50_us
    );
    let pods = pods_phase(&args, root.path()).await?;
    let ratios: Vec<GatewayRatio> = pods
        .gateway
        .iter()
        .filter(|c| c.system == "skiff gateway")
        .filter_map(|s| {
            let p = pods
                .gateway
                .iter()
                .find(|p| p.system == "wasmtime serve" && p.clients == s.clients)?;
            Some(GatewayRatio {
                clients: s.clients,
                skiff_requests_per_sec: s.requests_per_sec,
                wasmtime_serve_requests_per_sec: p.requests_per_sec,
                skiff_over_wasmtime_serve: s.requests_per_sec / p.requests_per_sec.max(f64::MIN_POSITIVE),
            })
        })
        .collect();
    for r in &ratios {
        eprintln!(
            "{:>3} connections: skiff gateway / wasmtime serve = {:.0} / {:.0} = x{:.2}",
            r.clients, r.skiff_requests_per_sec, r.wasmtime_serve_requests_per_sec, r.skiff_over_wasmtime_serve
        );
    }
    let density = if args.density > 0 {
        let d = density(&args, root.path()).await?;
        eprintln!(
            "density: {}/{} idle Wasm pods Running in {:.1} s ({:.0} pods/s); agent RSS {:.0} → {:.0} MiB ({:.1} KiB per pod), threads {} → {}, files {} → {}; sample {}/{} answered, p50 {:.2} ms p99 {:.2} ms",
            d.running,
            d.asked,
            d.seconds_to_all_running,
            d.pods_per_sec,
            d.agent_before.rss_mib,
            d.agent_after.rss_mib,
            d.rss_per_pod_kib,
            d.agent_before.threads,
            d.agent_after.threads,
            d.agent_before.open_files,
            d.agent_after.open_files,
            d.sample_ok,
            d.sampled,
            d.sample_p50_ms,
            d.sample_p99_ms
        );
        Some(d)
    } else {
        None
    };
    let report = Report {
        machine: format!("{} cores", procs::cores()),
        build: if cfg!(debug_assertions) { "debug" } else { "release" },
        skiff_bin: args.skiff_bin.display().to_string(),
        wasmtime: args.wasmtime_bin.as_deref().and_then(wasmtime_version),
        instantiate: inst,
        create_to_running: pods.create_to_running,
        first_request: pods.first_request,
        gateway: pods.gateway,
        ratios,
        cpu_neighbour: pods.cpu_neighbour,
        density,
        aims: Aims {
            instantiate_p50_us: 5.0,
            wasm_create_to_running_p99_ms: 50.0,
            wasm_pods_on_one_node: 10_000,
            gateway_over_wasmtime_serve: 1.0,
            cpu_limited_neighbour_over_alone: 0.9,
        },
    };
    let json = procs::write_report(args.out.as_deref(), &report)?;
    if args.out.is_none() {
        println!("{json}");
    }
    Ok(())
}
