//! `autoscale-bench`: what observing and scaling cost and how fast
//! scaling is, on real `skiff server` processes on this machine.
//!
//! Run with `cargo xtask bench autoscale` (release build). Three parts,
//! each reported on its own (one that fails is reported as an error and
//! the others still run):
//!
//! 1. **The cost of metrics on the request path** (`cost`). Two servers
//!    run side by side, the same flags but for `--no-request-metrics` on
//!    the second (no API request-metrics layer; Wasm services count no
//!    requests). The peer of each figure is the same load on the server
//!    that does not count. On each, 1,000 ConfigMaps to get and a Wasm
//!    HTTP pod behind a ClusterIP Service. Each cell (API get, API
//!    create, GETs at the Wasm pod's address through the node's gateway,
//!    GETs through the Service's ClusterIP and the service proxy) runs
//!    closed-loop for `--seconds` on each server in turn, the order
//!    flipped every round (on, off, off, on, …) so that drift on the
//!    machine falls on both alike; the rounds are pooled, and the ratio
//!    on/off is reported with the overhead in percent (aim: 3 % at most).
//!    The service proxy's own per-Service counters are not switched and
//!    count on both servers. A scrape of each server's `/metrics` shows
//!    the switch took effect.
//! 2. **HPA reaction** (`hpa`): on the counting server (`--metric-resolution
//!    1 --horizontal-pod-autoscaler-sync-period 1`), a Wasm Deployment of
//!    one replica behind a Service, with an autoscaling/v2 HPA on the Pods
//!    metric `requests-per-second`. From idle, keep-alive load through
//!    the ClusterIP starts at once (the step); a watch on the Deployment
//!    and its pods records replicas wanted and Ready over time. Reported
//!    per repetition: time to the autoscaler's decision (replicas raised),
//!    to the first new replica Ready and to all of them Ready, and the
//!    timeline (plotted); then the load stops and the Deployment is let
//!    back to one replica before the next repetition.
//! 3. **Scale-from-zero first request** (`zero`): a Wasm Deployment whose
//!    HPA has `minReplicas: 0`, scaled to zero through its `scale`
//!    subresource; once no pod is left and its Endpoints are empty, one
//!    GET to the Service's ClusterIP on a new connection is timed to its
//!    full response, the service proxy holding it while a replica comes
//!    up. Repeated `--zero-samples` times; p50/p99 and each sample (with
//!    when the Deployment was scaled to one and when its replica was
//!    Ready) are reported and plotted. There is no peer: the figure to
//!    compare is a first request to a running pod (`bench node`).
//!
//! The load generator shares the machine's cores with the servers, so the
//! absolute figures are this machine's; in part 1 the ratios are the
//! point. JSON goes to `--out`, the plots (`autoscale-hpa.svg`,
//! `autoscale-scale-from-zero.svg`) beside it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use http::Method;
use serde::Serialize;
use serde_json::{Value, json};
use skiff_bench::api::ApiClient;
use skiff_bench::autoscale::{self as scaling, Load, PlotRun, PlotSeries, Reaction, Recorder, Sample};
use skiff_bench::load::{self, Figures};
use skiff_bench::node;
use skiff_bench::procs;
use skiff_bench::scheduler::{self as sched, Server};

#[derive(Debug, Parser)]
struct Args {
    /// The skiff binary to run the servers with.
    #[arg(long)]
    skiff_bin: PathBuf,
    /// The Wasm HTTP component (wasi:http/proxy) every Deployment runs.
    #[arg(long, default_value = skiff_test_programs::HTTP_HELLO)]
    wasm: PathBuf,
    /// The parts to run: cost, hpa, zero.
    #[arg(long, value_delimiter = ',', default_values_t = ["cost".to_string(), "hpa".to_string(), "zero".to_string()])]
    parts: Vec<String>,
    /// Seconds of each closed-loop run on one server (part 1).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Runs on each server per cell, the order flipped every round.
    #[arg(long, default_value_t = 4)]
    rounds: u32,
    /// Seconds of unmeasured load on each server before a cell.
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
    /// Concurrent clients of the API cells.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16])]
    api_clients: Vec<usize>,
    /// Keep-alive connections of the gateway and Service cells.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16])]
    gateway_clients: Vec<usize>,
    /// Load steps the HPA reacts to (part 2).
    #[arg(long, default_value_t = 5)]
    hpa_runs: usize,
    /// The HPA's maxReplicas.
    #[arg(long, default_value_t = 4)]
    hpa_max: u32,
    /// The HPA's target: requests per second per pod, on average.
    #[arg(long, default_value = "50")]
    hpa_target: String,
    /// Keep-alive connections of the load step.
    #[arg(long, default_value_t = 8)]
    hpa_clients: usize,
    /// Seconds a load step may run before it is reported unfinished.
    #[arg(long, default_value_t = 60)]
    hpa_timeout_seconds: u64,
    /// First requests to a Service scaled to zero (part 3).
    #[arg(long, default_value_t = 20)]
    zero_samples: usize,
    /// Seconds one first request may take (the proxy holds it up to 60).
    #[arg(long, default_value_t = 90)]
    zero_timeout_seconds: u64,
    /// Where the plots go; beside `--out` by default, else here.
    #[arg(long)]
    plots_dir: Option<PathBuf>,
    /// Write the JSON report here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Args {
    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

/// A part's figures, or why it has none.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Part<T> {
    Done(T),
    Failed { error: String },
    Skipped { skipped: bool },
}

impl<T> Part<T> {
    fn from(result: anyhow::Result<T>, what: &str) -> Part<T> {
        match result {
            Ok(figures) => Part::Done(figures),
            Err(error) => {
                eprintln!("{what}: FAILED: {error:#}");
                Part::Failed {
                    error: format!("{error:#}"),
                }
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    build: &'static str,
    skiff_bin: String,
    component: String,
    cost: Part<Cost>,
    hpa: Part<Hpa>,
    scale_from_zero: Part<Zero>,
    plots: Vec<String>,
}

/// One load, on the counting server and on the other.
#[derive(Debug, Serialize)]
struct CostCell {
    /// `api`, `gateway` (the Wasm pod's address) or `service` (its
    /// ClusterIP).
    target: &'static str,
    op: &'static str,
    clients: usize,
    on: Figures,
    off: Figures,
    /// Throughput with metrics over without (1.0: no cost).
    throughput_on_over_off: f64,
    /// What counting takes off throughput, in percent (negative: within
    /// noise the other way).
    overhead_pct: f64,
    p50_on_over_off: f64,
    p99_on_over_off: f64,
}

#[derive(Debug, Serialize)]
struct Cost {
    seconds_per_run: u64,
    runs_per_side: u32,
    cells: Vec<CostCell>,
    worst_overhead_pct: f64,
    aim_overhead_pct: f64,
    /// `apiserver_request_total` summed over a scrape of each server
    /// after the runs: the switch took effect if `off` is 0.
    api_requests_counted_on: f64,
    api_requests_counted_off: f64,
    /// What counts on both servers alike.
    not_switched: &'static str,
}

#[derive(Debug, Serialize)]
struct HpaRun {
    #[serde(flatten)]
    reaction: Reaction,
    /// The load step: requests answered per second and failures.
    load_requests_per_sec: f64,
    load_errors: u64,
    /// When the load stopped, and when the Deployment was back at one
    /// Ready replica.
    load_stopped_s: f64,
    back_to_one_s: Option<f64>,
    timeline: Vec<Sample>,
}

#[derive(Debug, Serialize)]
struct Hpa {
    max_replicas: u32,
    target_requests_per_sec_per_pod: String,
    clients: usize,
    metric_resolution_s: f64,
    sync_period_s: f64,
    runs: Vec<HpaRun>,
    /// Over the runs that got there.
    decision_p50_s: Option<f64>,
    decision_max_s: Option<f64>,
    first_ready_p50_s: Option<f64>,
    all_ready_p50_s: Option<f64>,
    all_ready_max_s: Option<f64>,
}

#[derive(Debug, Serialize)]
struct ZeroSample {
    /// The full response, from the request sent.
    total_ms: Option<f64>,
    /// When the Deployment was seen scaled to one replica.
    scaled_up_ms: Option<f64>,
    /// When its replica was seen Ready.
    ready_ms: Option<f64>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Zero {
    asked: usize,
    answered: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    samples: Vec<ZeroSample>,
}

const NS_COST: &str = "cost";
const IMAGE: &str = "local/hello:1";
const METRIC_RESOLUTION_S: f64 = 1.0;
const SYNC_PERIOD_S: f64 = 1.0;

/// A `skiff server` with its in-process agent on its own pod and service
/// ranges, counting requests or not.
async fn server(args: &Args, root: &Path, name: &str, octet: u8, counting: bool) -> anyhow::Result<Server> {
    let dir = root.join(name);
    sched::import_image(&args.skiff_bin, &args.wasm, IMAGE, &dir.join("agent"))?;
    let pod_cidr = format!("127.{octet}.0.0");
    let services = format!("127.{}.0.0/16", octet + 17);
    let (resolution, sync) = (METRIC_RESOLUTION_S.to_string(), SYNC_PERIOD_S.to_string());
    let mut flags = vec![
        "--node-name",
        name,
        "--pod-cidr",
        &pod_cidr,
        "--service-cluster-ip-range",
        &services,
        "--ingress-http-port",
        "0",
        "--ingress-https-port",
        "0",
        "--metric-resolution",
        &resolution,
        "--horizontal-pod-autoscaler-sync-period",
        &sync,
    ];
    if !counting {
        flags.push("--no-request-metrics");
    }
    let server = Server::start(&args.skiff_bin, &dir, &flags).await?;
    node::node_ready(&server.client(1)?, name).await?;
    Ok(server)
}

async fn namespace(api: &ApiClient, name: &str) -> anyhow::Result<()> {
    sched::create_namespace(api, name).await
}

/// A Wasm Deployment of `replicas` and its Service in `ns`; returns the
/// Service's ClusterIP address (port 80).
async fn wasm_service(api: &ApiClient, ns: &str, name: &str, replicas: u32) -> anyhow::Result<SocketAddr> {
    scaling::create(
        api,
        &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
        &scaling::deployment(name, replicas, IMAGE),
    )
    .await?;
    let service = scaling::create(
        api,
        &format!("/api/v1/namespaces/{ns}/services"),
        &scaling::service(name),
    )
    .await?;
    let ip = service["spec"]["clusterIP"]
        .as_str()
        .context("the Service got no ClusterIP")?;
    Ok(SocketAddr::new(ip.parse()?, 80))
}

/// The address of a ready endpoint of Service `ns/name`, once it has one.
async fn ready_endpoint(api: &ApiClient, ns: &str, name: &str, deadline: Instant) -> anyhow::Result<String> {
    let (endpoints, found) = sched::poll_until(
        api,
        &format!("/api/v1/namespaces/{ns}/endpoints/{name}"),
        Duration::from_millis(100),
        deadline,
        |e| e.pointer("/subsets/0/addresses/0/ip").is_some(),
    )
    .await;
    anyhow::ensure!(found, "Service {ns}/{name} had no ready endpoint in time");
    Ok(endpoints
        .pointer("/subsets/0/addresses/0/ip")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

/// Waits until a GET of `/` at `addr` answers.
async fn answers(addr: SocketAddr, deadline: Instant) -> anyhow::Result<()> {
    loop {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), node::get_once(addr, "/")).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{addr} did not answer in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What part 1 loads on one server.
struct Target {
    api: ApiClient,
    pod: SocketAddr,
    cluster_ip: SocketAddr,
}

async fn cost_target(server: &Server) -> anyhow::Result<Target> {
    let api = server.client(4)?;
    namespace(&api, NS_COST).await?;
    for i in 0..1000 {
        sched::call_retrying(
            &api,
            Method::POST,
            &format!("/api/v1/namespaces/{NS_COST}/configmaps"),
            &configmap(&format!("g{i}")),
            "application/json",
        )
        .await?;
    }
    let cluster_ip = wasm_service(&api, NS_COST, "web", 1).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let pod_ip = ready_endpoint(&api, NS_COST, "web", deadline).await?;
    let pod = SocketAddr::new(pod_ip.parse()?, 8080);
    answers(pod, deadline).await?;
    answers(cluster_ip, deadline).await?;
    Ok(Target { api, pod, cluster_ip })
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": "x".repeat(256)}})
}

/// One closed-loop run of `op` on `target`; `tag` keeps created names
/// apart.
async fn cost_run(target: &Target, kind: &str, op: &str, clients: usize, seconds: u64, tag: String) -> load::Run {
    let duration = Duration::from_secs(seconds);
    match (kind, op) {
        ("api", "get") => {
            let api = target.api.clone();
            load::run(clients, duration, move |c, seq| {
                let api = api.clone();
                let name = format!("g{}", (c as u64 * 7919 + seq * 31) % 1000);
                async move {
                    api.call(
                        Method::GET,
                        &format!("/api/v1/namespaces/{NS_COST}/configmaps/{name}"),
                        None,
                        "application/json",
                    )
                    .await
                    .map(|_| ())
                }
            })
            .await
        }
        ("api", _) => {
            let api = target.api.clone();
            load::run(clients, duration, move |c, seq| {
                let api = api.clone();
                let body = configmap(&format!("c-{tag}-{c}-{seq}")).to_string().into_bytes();
                async move {
                    api.call(
                        Method::POST,
                        &format!("/api/v1/namespaces/{NS_COST}/configmaps"),
                        Some(body),
                        "application/json",
                    )
                    .await
                    .map(|_| ())
                }
            })
            .await
        }
        ("gateway", _) => scaling::http_run(target.pod, clients, duration).await,
        _ => scaling::http_run(target.cluster_ip, clients, duration).await,
    }
}

/// The sum of a counter's samples in a Prometheus text scrape.
fn counter_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .fold(0.0, |sum, v| sum + v)
}

async fn requests_counted(api: &ApiClient) -> anyhow::Result<f64> {
    let scrape = api.call(Method::GET, "/metrics", None, "text/plain").await?;
    Ok(counter_sum(
        &String::from_utf8_lossy(&scrape),
        "apiserver_request_total",
    ))
}

async fn cost(args: &Args, on: &Server, off: &Server) -> anyhow::Result<Cost> {
    let targets = [cost_target(on).await?, cost_target(off).await?];
    let mut cells = Vec::new();
    let mut plan: Vec<(&'static str, &'static str, usize)> = Vec::new();
    for &clients in &args.api_clients {
        plan.push(("api", "get", clients));
        plan.push(("api", "create", clients));
    }
    for &clients in &args.gateway_clients {
        plan.push(("gateway", "GET", clients));
        plan.push(("service", "GET", clients));
    }
    for (kind, op, clients) in plan {
        for (side, target) in targets.iter().enumerate() {
            let tag = format!("warm{side}-{clients}");
            cost_run(target, kind, op, clients, args.warmup_seconds, tag).await;
        }
        let mut runs: [Vec<load::Run>; 2] = [Vec::new(), Vec::new()];
        for round in 0..args.rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let tag = format!("{side}-{clients}-{round}");
                let run = cost_run(&targets[side], kind, op, clients, args.seconds, tag).await;
                runs[side].push(run);
            }
        }
        let [on_runs, off_runs] = runs;
        let on = load::figures("metrics on", 1, op, clients, scaling::merge(on_runs));
        let off = load::figures("metrics off", 1, op, clients, scaling::merge(off_runs));
        let ratio = on.ops_per_sec / off.ops_per_sec.max(f64::MIN_POSITIVE);
        let cell = CostCell {
            target: kind,
            op,
            clients,
            throughput_on_over_off: ratio,
            overhead_pct: (1.0 - ratio) * 100.0,
            p50_on_over_off: on.p50_ms / off.p50_ms.max(f64::MIN_POSITIVE),
            p99_on_over_off: on.p99_ms / off.p99_ms.max(f64::MIN_POSITIVE),
            on,
            off,
        };
        eprintln!(
            "cost {:<8} {:<6} {:>3} clients: on {:>8.0}/s p50 {:.3} p99 {:.3} ms | off {:>8.0}/s p50 {:.3} p99 {:.3} ms | x{:.3} ({:+.1} %){}",
            cell.target,
            cell.op,
            cell.clients,
            cell.on.ops_per_sec,
            cell.on.p50_ms,
            cell.on.p99_ms,
            cell.off.ops_per_sec,
            cell.off.p50_ms,
            cell.off.p99_ms,
            cell.throughput_on_over_off,
            cell.overhead_pct,
            if cell.on.errors + cell.off.errors > 0 {
                format!("  errors {} / {}", cell.on.errors, cell.off.errors)
            } else {
                String::new()
            }
        );
        cells.push(cell);
    }
    let [on_target, off_target] = &targets;
    let counted_on = requests_counted(&on_target.api).await?;
    let counted_off = requests_counted(&off_target.api).await?;
    eprintln!("apiserver_request_total after the runs: {counted_on:.0} counting, {counted_off:.0} not counting");
    Ok(Cost {
        seconds_per_run: args.seconds,
        runs_per_side: args.rounds,
        worst_overhead_pct: cells.iter().map(|c| c.overhead_pct).fold(f64::MIN, f64::max),
        cells,
        aim_overhead_pct: 3.0,
        api_requests_counted_on: counted_on,
        api_requests_counted_off: counted_off,
        not_switched: "the service proxy's per-Service request counters (service cells), on both servers",
    })
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len().saturating_sub(1) / 2).copied()
}

/// Waits until Deployment at `recorder` is at one Ready replica and no
/// other pod; scales it there if the autoscaler has not within a minute.
async fn back_to_one(api: &ApiClient, recorder: &Recorder, ns: &str, name: &str) -> anyhow::Result<()> {
    let one = |c: &scaling::Change| c.wanted == 1 && c.ready == 1 && c.present == 1;
    if recorder.until(Instant::now() + Duration::from_secs(60), one).await {
        return Ok(());
    }
    eprintln!("hpa: not back at one replica after a minute; scaling it there");
    scaling::scale(api, ns, name, 1).await?;
    anyhow::ensure!(
        recorder.until(Instant::now() + Duration::from_secs(60), one).await,
        "deployment {ns}/{name} did not return to one Ready replica"
    );
    Ok(())
}

async fn hpa(args: &Args, server: &Server) -> anyhow::Result<Hpa> {
    let (ns, name) = ("hpa", "step");
    let api = server.client(2)?;
    namespace(&api, ns).await?;
    let part_deadline =
        Instant::now() + Duration::from_secs(args.hpa_timeout_seconds.saturating_add(180) * args.hpa_runs as u64 + 300);
    let recorder = Recorder::start(&server.client(1)?, ns, name, part_deadline);
    let cluster_ip = wasm_service(&api, ns, name, 1).await?;
    scaling::create(
        &api,
        &format!("/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers"),
        &scaling::autoscaler(name, 1, args.hpa_max, &args.hpa_target, 1),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    answers(cluster_ip, deadline).await?;
    // The autoscaler reads the idle pod's rate before the first step.
    let (hpa, active) = sched::poll_until(
        &api,
        &format!("/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/{name}"),
        Duration::from_millis(200),
        Instant::now() + Duration::from_secs(60),
        |hpa| {
            hpa["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "ScalingActive" && c["status"] == "True"))
        },
    )
    .await;
    anyhow::ensure!(active, "the HPA never read its metric (status: {})", hpa["status"]);
    let timeout = Duration::from_secs(args.hpa_timeout_seconds);
    let mut runs = Vec::new();
    for run in 0..args.hpa_runs {
        back_to_one(&api, &recorder, ns, name).await?;
        // Idle long enough for the autoscaler to read the rate as idle.
        tokio::time::sleep(Duration::from_secs_f64(3.0 * METRIC_RESOLUTION_S.max(SYNC_PERIOD_S))).await;
        let step = Instant::now();
        let load = Load::start(cluster_ip, args.hpa_clients, timeout);
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = Instant::now();
            let so_far = scaling::reaction(&scaling::since(&recorder.changes(), step, now));
            let settled = so_far.all_ready_s.is_some_and(|all| {
                so_far.peak_wanted >= i64::from(args.hpa_max) || (now - step).as_secs_f64() - all > 3.0
            });
            if settled || now >= step + timeout {
                break;
            }
        }
        let stopped = Instant::now();
        let (answered, errors, seconds) = load.stop().await;
        let back = back_to_one(&api, &recorder, ns, name).await;
        let end = Instant::now();
        let timeline = scaling::since(&recorder.changes(), step, end);
        let reaction = scaling::reaction(&timeline);
        let figures = HpaRun {
            reaction,
            load_requests_per_sec: answered as f64 / seconds.max(f64::MIN_POSITIVE),
            load_errors: errors,
            load_stopped_s: (stopped - step).as_secs_f64(),
            back_to_one_s: back.is_ok().then(|| (end - step).as_secs_f64()),
            timeline,
        };
        let show = |v: Option<f64>| v.map_or("never".to_string(), |s| format!("{s:.2} s"));
        eprintln!(
            "hpa run {}: load {:.0} req/s; decision at {}, first new replica Ready at {}, {} Ready at {}",
            run + 1,
            figures.load_requests_per_sec,
            show(reaction.decision_s),
            show(reaction.first_ready_s),
            reaction.peak_wanted,
            show(reaction.all_ready_s),
        );
        runs.push(figures);
        back?;
    }
    let of = |f: fn(&Reaction) -> Option<f64>| -> Vec<f64> { runs.iter().filter_map(|r| f(&r.reaction)).collect() };
    let max = |v: Vec<f64>| v.into_iter().reduce(f64::max);
    Ok(Hpa {
        max_replicas: args.hpa_max,
        target_requests_per_sec_per_pod: args.hpa_target.clone(),
        clients: args.hpa_clients,
        metric_resolution_s: METRIC_RESOLUTION_S,
        sync_period_s: SYNC_PERIOD_S,
        decision_p50_s: median(of(|r| r.decision_s)),
        decision_max_s: max(of(|r| r.decision_s)),
        first_ready_p50_s: median(of(|r| r.first_ready_s)),
        all_ready_p50_s: median(of(|r| r.all_ready_s)),
        all_ready_max_s: max(of(|r| r.all_ready_s)),
        runs,
    })
}

/// Waits until Service `ns/name` lists no address, ready or not.
async fn no_endpoints(api: &ApiClient, ns: &str, name: &str) -> anyhow::Result<()> {
    let (_, empty) = sched::poll_until(
        api,
        &format!("/api/v1/namespaces/{ns}/endpoints/{name}"),
        Duration::from_millis(50),
        Instant::now() + Duration::from_secs(30),
        |e| {
            e["subsets"].as_array().is_none_or(|subsets| {
                subsets
                    .iter()
                    .all(|s| s["addresses"].is_null() && s["notReadyAddresses"].is_null())
            })
        },
    )
    .await;
    anyhow::ensure!(empty, "Service {ns}/{name} kept endpoints after scaling to zero");
    Ok(())
}

async fn scale_from_zero(args: &Args, server: &Server) -> anyhow::Result<Zero> {
    let (ns, name) = ("zero", "idle");
    let api = server.client(2)?;
    namespace(&api, ns).await?;
    let timeout = Duration::from_secs(args.zero_timeout_seconds);
    let part_deadline = Instant::now() + (timeout + Duration::from_secs(120)) * args.zero_samples.max(1) as u32;
    let recorder = Recorder::start(&server.client(1)?, ns, name, part_deadline);
    let cluster_ip = wasm_service(&api, ns, name, 1).await?;
    // Served once while it runs, so the proxy knows the Service; then
    // the autoscaler that lets it go to zero.
    answers(cluster_ip, Instant::now() + Duration::from_secs(120)).await?;
    scaling::create(
        &api,
        &format!("/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers"),
        &scaling::autoscaler(name, 0, 1, &args.hpa_target, 10),
    )
    .await?;
    let mut samples = Vec::new();
    let mut failures_in_a_row = 0;
    for i in 0..args.zero_samples {
        if recorder.now().is_none_or(|c| c.wanted != 0) {
            scaling::scale(&api, ns, name, 0).await?;
        }
        let gone = |c: &scaling::Change| c.wanted == 0 && c.present == 0;
        anyhow::ensure!(
            recorder.until(Instant::now() + Duration::from_secs(60), gone).await,
            "deployment {ns}/{name} kept pods after scaling to zero"
        );
        no_endpoints(&api, ns, name).await?;
        // The proxies follow the Endpoints; give them a moment to.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = Instant::now();
        let answer = tokio::time::timeout(timeout, node::get_once(cluster_ip, "/")).await;
        let took = sent.elapsed();
        let error = match answer {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(format!("{error:#}")),
            Err(_) => Some(format!("no answer within {timeout:?}")),
        };
        let changes = recorder.changes();
        let after = |f: &dyn Fn(&scaling::Change) -> bool| {
            changes
                .iter()
                .find(|c| c.at >= sent && f(c))
                .map(|c| (c.at - sent).as_secs_f64() * 1000.0)
        };
        let sample = ZeroSample {
            total_ms: error.is_none().then_some(took.as_secs_f64() * 1000.0),
            scaled_up_ms: after(&|c| c.wanted >= 1),
            ready_ms: after(&|c| c.ready >= 1),
            error,
        };
        match &sample.error {
            None => {
                failures_in_a_row = 0;
                eprintln!(
                    "scale from zero {}: answered in {:.1} ms (scaled to one at {:.1} ms, Ready at {:.1} ms)",
                    i + 1,
                    sample.total_ms.unwrap_or(0.0),
                    sample.scaled_up_ms.unwrap_or(f64::NAN),
                    sample.ready_ms.unwrap_or(f64::NAN)
                );
            }
            Some(error) => {
                failures_in_a_row += 1;
                eprintln!("scale from zero {}: failed after {took:?}: {error}", i + 1);
            }
        }
        samples.push(sample);
        if failures_in_a_row >= 2 && samples.iter().all(|s| s.error.is_some()) {
            bail!(
                "the first request to a Service scaled to zero was not answered ({}); the service proxy may not hold requests for scale from zero in this build",
                samples.last().and_then(|s| s.error.clone()).unwrap_or_default()
            );
        }
    }
    let times: Vec<Duration> = samples
        .iter()
        .filter_map(|s| s.total_ms)
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .collect();
    let answered = times.len();
    let (p50_ms, p99_ms, max_ms) = node::spread_ms(times);
    Ok(Zero {
        asked: args.zero_samples,
        answered,
        p50_ms,
        p99_ms,
        max_ms,
        samples,
    })
}

fn plots(dir: &Path, hpa: &Part<Hpa>, zero: &Part<Zero>) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    if let Part::Done(hpa) = hpa
        && !hpa.runs.is_empty()
    {
        let path = dir.join("autoscale-hpa.svg");
        let runs: Vec<PlotRun<'_>> = hpa
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| PlotRun {
                label: format!(
                    "run {}: decision {}, all Ready {}",
                    i + 1,
                    r.reaction.decision_s.map_or("-".into(), |s| format!("{s:.1} s")),
                    r.reaction.all_ready_s.map_or("-".into(), |s| format!("{s:.1} s"))
                ),
                timeline: &r.timeline,
                load_stopped_s: r.load_stopped_s,
                end_s: r.back_to_one_s.unwrap_or(r.load_stopped_s),
            })
            .collect();
        scaling::plot_replicas(
            &path,
            &format!(
                "HPA on requests-per-second (target {}/pod, max {}): replicas after a load step",
                hpa.target_requests_per_sec_per_pod, hpa.max_replicas
            ),
            &runs,
        )?;
        written.push(path.display().to_string());
    }
    if let Part::Done(zero) = zero
        && zero.answered > 0
    {
        let path = dir.join("autoscale-scale-from-zero.svg");
        let series = [
            PlotSeries {
                label: "response",
                values_ms: zero.samples.iter().map(|s| s.total_ms).collect(),
            },
            PlotSeries {
                label: "Deployment scaled to 1",
                values_ms: zero.samples.iter().map(|s| s.scaled_up_ms).collect(),
            },
            PlotSeries {
                label: "replica Ready",
                values_ms: zero.samples.iter().map(|s| s.ready_ms).collect(),
            },
        ];
        scaling::plot_samples(
            &path,
            &format!(
                "First request to a Service scaled to zero ({} of {} answered)",
                zero.answered, zero.asked
            ),
            &series,
            &[("p50", zero.p50_ms), ("p99", zero.p99_ms)],
        )?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = tempfile::tempdir()?;
    let counting = server(&args, root.path(), "autoscale-on", 81, true).await?;

    let cost = if args.runs("cost") {
        let result = async {
            let other = server(&args, root.path(), "autoscale-off", 82, false).await?;
            cost(&args, &counting, &other).await
        }
        .await;
        Part::from(result, "cost of metrics")
    } else {
        Part::Skipped { skipped: true }
    };
    let hpa = if args.runs("hpa") {
        Part::from(hpa(&args, &counting).await, "hpa reaction")
    } else {
        Part::Skipped { skipped: true }
    };
    let scale_from_zero = if args.runs("zero") {
        Part::from(scale_from_zero(&args, &counting).await, "scale from zero")
    } else {
        Part::Skipped { skipped: true }
    };
    drop(counting);

    let dir = match (&args.plots_dir, &args.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(out)) => out.parent().map(Path::to_path_buf).unwrap_or_default(),
        (None, None) => PathBuf::from("."),
    };
    let plots = match plots(&dir, &hpa, &scale_from_zero) {
        Ok(written) => written,
        Err(error) => {
            eprintln!("plots: {error:#}");
            Vec::new()
        }
    };
    if let Part::Done(h) = &hpa {
        eprintln!(
            "hpa: decision p50 {:?} s (max {:?}), first new replica Ready p50 {:?} s, all Ready p50 {:?} s (max {:?})",
            h.decision_p50_s, h.decision_max_s, h.first_ready_p50_s, h.all_ready_p50_s, h.all_ready_max_s
        );
    }
    if let Part::Done(z) = &scale_from_zero {
        eprintln!(
            "scale from zero: {}/{} answered, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            z.answered, z.asked, z.p50_ms, z.p99_ms, z.max_ms
        );
    }
    let report = Report {
        machine: format!("{} cores", procs::cores()),
        build: if cfg!(debug_assertions) { "debug" } else { "release" },
        skiff_bin: args.skiff_bin.display().to_string(),
        component: args.wasm.display().to_string(),
        cost,
        hpa,
        scale_from_zero,
        plots,
    };
    let json = procs::write_report(args.out.as_deref(), &report)?;
    if args.out.is_none() {
        println!("{json}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_summed_over_its_series_only() {
        let scrape = "# TYPE apiserver_request_total counter\n\
            apiserver_request_total{verb=\"GET\",code=\"200\"} 3\n\
            apiserver_request_total{verb=\"POST\",code=\"201\"} 4\n\
            apiserver_request_total_other 100\n\
            # EOF\n";
        assert_eq!(counter_sum(scrape, "apiserver_request_total"), 7.0);
        assert_eq!(counter_sum("# EOF\n", "apiserver_request_total"), 0.0);
    }
}
