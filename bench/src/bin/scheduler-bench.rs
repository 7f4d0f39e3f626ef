//! `scheduler-bench`: skiff's scheduler end to end through the API, with
//! simulated nodes (Node objects with no agent behind them, as kubemark
//! and KWOK make them), and the time a 100-replica Wasm Deployment takes
//! to become Ready on a real node agent.
//!
//! Run with `cargo xtask bench scheduler` (release build). Phases, each on
//! a fresh `skiff server` in a temporary directory:
//!
//! 0. **Core**: the default profile's scheduling cycle alone, in memory
//!    over the same simulated nodes, each pod placed before the next: what
//!    the end-to-end figure would be if the API cost nothing.
//! 1. **Scheduler** (`--no-agent`, scheduler and controllers running):
//!    create N simulated nodes, then `--pods` pods as fast as
//!    `--concurrency` requests in flight allow; a watch records when each
//!    pod gets `spec.nodeName`. Pods/s = pods bound / (last bind − first
//!    create). The simulated nodes renew no Lease, so the server runs with
//!    `--node-monitor-grace-period 86400` to keep them Ready for the run.
//! 2. **Raw bind path, the peer** (`--no-agent --no-controllers`): the same
//!    nodes and pods, but this program POSTs each pod's `binding` itself,
//!    round-robin over the nodes, right after creating it: the API's
//!    create+bind rate with no scheduling decision. The ratio scheduler /
//!    peer is what scheduling costs on top of the API writes.
//! 3. **Deployment** (in-process agent): `kubectl apply` of a
//!    `--replicas` Wasm Deployment (the hello-http component), timed until
//!    `status.readyReplicas` reaches the replica count.
//!
//! kube-scheduler cannot run here; its CI floor (scheduler_perf's
//! SchedulingBasic thresholds at 5,000 nodes) is printed as a cited
//! reference line, not a measurement. Figures go to stdout as JSON (or
//! `--out`), a summary to stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use http::Method;
use serde::Serialize;
use serde_json::json;
use skiff_bench::api::ApiClient;
use skiff_bench::scheduler::{
    self as sched, Server, Timeline, call_retrying, create_namespace, create_nodes, node_name, pod_name, pod_object,
};
use skiff_bench::{load, procs};

#[derive(Debug, Parser)]
struct Args {
    /// The skiff binary to run the servers with.
    #[arg(long)]
    skiff_bin: PathBuf,
    /// Simulated node counts, one scheduler run (and one peer run) each.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 5000])]
    nodes: Vec<usize>,
    /// Pods created and scheduled per run.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Requests in flight while creating nodes and pods.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to let the server's watches take in the new nodes before
    /// the pods are created.
    #[arg(long, default_value_t = 5)]
    settle_seconds: u64,
    /// Seconds a run may take before it is reported as unfinished.
    #[arg(long, default_value_t = 600)]
    timeout_seconds: u64,
    /// Skip the peer runs.
    #[arg(long)]
    no_peer: bool,
    /// Replicas of the Wasm Deployment; 0 skips that phase.
    #[arg(long, default_value_t = 100)]
    replicas: usize,
    /// The Wasm component (wasi:http) the Deployment runs.
    #[arg(long, default_value = skiff_test_programs::HTTP_HELLO)]
    wasm: PathBuf,
    /// The kubectl to apply the Deployment with.
    #[arg(long, default_value = "/usr/bin/kubectl")]
    kubectl: PathBuf,
    /// Write the JSON report here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One run: N nodes, `pods` pods, bound by the scheduler or by the bench.
#[derive(Debug, Serialize)]
struct Run {
    system: &'static str,
    nodes: usize,
    pods: usize,
    concurrency: usize,
    node_setup_seconds: f64,
    node_setup_errors: u64,
    create_errors: u64,
    /// First create sent → last create answered.
    create_seconds: f64,
    creates_per_sec: f64,
    bound: usize,
    /// First create sent → last pod seen bound on the watch.
    seconds_to_all_bound: f64,
    /// Bound pods over `seconds_to_all_bound`: the figure of merit.
    pods_per_sec: f64,
    /// Last create answered → last pod bound.
    tail_after_creates_seconds: f64,
    create_to_bound_p50_ms: f64,
    create_to_bound_p99_ms: f64,
    create_to_bound_max_ms: f64,
    nodes_used: usize,
    max_pods_per_node: u32,
    /// CPU the server used during the pod phase (the machine's cores are
    /// shared with this load generator).
    server_cpu_seconds: f64,
    bench_cpu_seconds: f64,
    server_rss_mib: f64,
    finished: bool,
}

#[derive(Debug, Serialize)]
struct Ratio {
    nodes: usize,
    scheduler_pods_per_sec: f64,
    raw_bind_pods_per_sec: f64,
    /// Scheduler end to end / the raw API create+bind path.
    scheduler_over_raw_bind: f64,
}

#[derive(Debug, Serialize)]
struct Cited {
    note: &'static str,
    source: &'static str,
    scheduling_basic_5000_nodes_10000_pods: f64,
    scheduling_basic_5000_nodes_50000_pods: f64,
    aim_pods_per_sec_at_5000_nodes: f64,
}

#[derive(Debug, Serialize)]
struct DeploymentRun {
    replicas: usize,
    image: String,
    /// `kubectl apply` started → its process exited.
    apply_seconds: f64,
    /// `kubectl apply` started → the first replica Ready (includes
    /// compiling the component).
    first_ready_seconds: Option<f64>,
    /// `kubectl apply` started → `status.readyReplicas == replicas`.
    all_ready_seconds: Option<f64>,
    ready_replicas: i64,
    server_cpu_seconds: f64,
    server_rss_mib: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    build: &'static str,
    skiff_bin: String,
    settle_seconds: u64,
    core: Vec<sched::CoreRun>,
    scheduler: Vec<Run>,
    raw_bind_peer: Vec<Run>,
    ratios: Vec<Ratio>,
    kube_scheduler_cited: Cited,
    deployment: Option<DeploymentRun>,
}

/// How the pods get bound.
#[derive(Clone, Copy, Debug)]
enum Binder {
    /// The server's scheduler.
    Scheduler,
    /// This program, round-robin over `nodes`, right after each create.
    Direct { nodes: usize },
}

async fn pod_run(args: &Args, server: &Server, nodes: usize, binder: Binder) -> anyhow::Result<Run> {
    let api = server.client(4)?;
    let (node_setup_seconds, node_setup_errors) = create_nodes(&api, nodes, args.concurrency).await;
    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    let ns = "sched-bench";
    create_namespace(&api, ns).await?;

    let rv = sched::watch_start(&api, ns, &Timeline::new(0)).await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let watch_api = server.client(1)?;
    // The watch starts at `rv`, from before the first create, so it misses
    // nothing however soon the creates begin.
    let timeline = Arc::new(Timeline::new(args.pods));
    let watch = tokio::spawn(sched::watch_bindings(
        watch_api,
        ns.to_string(),
        rv,
        timeline.clone(),
        deadline,
    ));
    let pid = server.pid().to_string();
    let (server_cpu, bench_cpu) = (procs::cpu_seconds(&pid), procs::cpu_seconds("self"));

    let (a, t) = (api.clone(), timeline.clone());
    let create_errors = sched::for_each_concurrent(args.pods, args.concurrency, move |i| {
        let (a, t) = (a.clone(), t.clone());
        async move {
            let name = pod_name(i);
            t.stamp(&t.created[i]);
            call_retrying(
                &a,
                Method::POST,
                &format!("/api/v1/namespaces/{ns}/pods"),
                &pod_object(&name),
                "application/json",
            )
            .await?;
            if let Binder::Direct { nodes } = binder {
                let binding = json!({
                    "apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node_name(i % nodes.max(1))},
                });
                call_retrying(
                    &a,
                    Method::POST,
                    &format!("/api/v1/namespaces/{ns}/pods/{name}/binding"),
                    &binding,
                    "application/json",
                )
                .await?;
            }
            Ok(())
        }
    })
    .await;
    let create_seconds = timeline.start.elapsed().as_secs_f64();
    let placement = match tokio::time::timeout_at(deadline.into(), watch).await {
        Ok(Ok(Ok(placement))) => placement,
        Ok(Ok(Err(error))) => {
            eprintln!("watch failed: {error:#}");
            Default::default()
        }
        _ => Default::default(),
    };
    let server_cpu_seconds = procs::cpu_seconds(&pid) - server_cpu;
    let bench_cpu_seconds = procs::cpu_seconds("self") - bench_cpu;
    let bound = Timeline::count(&timeline.bound);
    let seconds_to_all_bound = Timeline::last(&timeline.bound);
    let latencies = timeline.latencies();
    Ok(Run {
        system: match binder {
            Binder::Scheduler => "skiff-scheduler",
            Binder::Direct { .. } => "api-create+bind",
        },
        nodes,
        pods: args.pods,
        concurrency: args.concurrency,
        node_setup_seconds,
        node_setup_errors,
        create_errors,
        create_seconds,
        creates_per_sec: (args.pods as u64 - create_errors) as f64 / create_seconds.max(f64::MIN_POSITIVE),
        bound,
        seconds_to_all_bound,
        pods_per_sec: bound as f64 / seconds_to_all_bound.max(f64::MIN_POSITIVE),
        tail_after_creates_seconds: (seconds_to_all_bound - create_seconds).max(0.0),
        create_to_bound_p50_ms: load::percentile(&latencies, 0.50),
        create_to_bound_p99_ms: load::percentile(&latencies, 0.99),
        create_to_bound_max_ms: load::percentile(&latencies, 1.0),
        nodes_used: placement.len(),
        max_pods_per_node: placement.values().copied().max().unwrap_or(0),
        server_cpu_seconds,
        bench_cpu_seconds,
        server_rss_mib: procs::rss_mib(server.pid()),
        finished: bound == args.pods,
    })
}

fn ready_replicas(deployment: &serde_json::Value) -> i64 {
    deployment["status"]["readyReplicas"].as_i64().unwrap_or(0)
}

async fn deployment_run(args: &Args, root: &Path) -> anyhow::Result<DeploymentRun> {
    let dir = root.join("deploy");
    let image = "local/hello:1";
    sched::import_image(&args.skiff_bin, &args.wasm, image, &dir.join("agent"))?;
    let server = Server::start(
        &args.skiff_bin,
        &dir,
        &["--node-name", "bench", "--pod-cidr", "127.31.0.0"],
    )
    .await?;
    let api: ApiClient = server.client(2)?;
    skiff_bench::node::node_ready(&api, "bench").await?;

    let manifest = root.join("deployment.json");
    std::fs::write(
        &manifest,
        sched::wasm_deployment("hello", args.replicas, image).to_string(),
    )?;
    let pid = server.pid().to_string();
    let cpu = procs::cpu_seconds(&pid);
    let start = Instant::now();
    let status = Command::new(&args.kubectl)
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(root.join("kubectl-cache"))
        .args(["apply", "--request-timeout=30s", "-f"])
        .arg(&manifest)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {}", args.kubectl.display()))?;
    let apply_seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "kubectl apply failed: {status}");

    let deadline = start + Duration::from_secs(args.timeout_seconds);
    let path = "/apis/apps/v1/namespaces/default/deployments/hello";
    let mut first_ready_seconds = None;
    let replicas = args.replicas as i64;
    let (last, done) = sched::poll_until(&api, path, Duration::from_millis(50), deadline, |d| {
        if first_ready_seconds.is_none() && ready_replicas(d) > 0 {
            first_ready_seconds = Some(start.elapsed().as_secs_f64());
        }
        ready_replicas(d) >= replicas
    })
    .await;
    let all_ready_seconds = done.then(|| start.elapsed().as_secs_f64());
    if first_ready_seconds.is_none() && done {
        first_ready_seconds = all_ready_seconds;
    }
    Ok(DeploymentRun {
        replicas: args.replicas,
        image: args.wasm.display().to_string(),
        apply_seconds,
        first_ready_seconds,
        all_ready_seconds,
        ready_replicas: ready_replicas(&last).max(if done { replicas } else { 0 }),
        server_cpu_seconds: procs::cpu_seconds(&pid) - cpu,
        server_rss_mib: procs::rss_mib(server.pid()),
    })
}

fn summary(run: &Run) {
    eprintln!(
        "{:<16} {:>6} nodes: {}/{} bound in {:.2} s = {:.0} pods/s (creates {:.0}/s, tail {:.2} s), \
         create→bound p50 {:.0} ms p99 {:.0} ms; {} nodes used, max {}/node; server CPU {:.1} s, bench CPU {:.1} s",
        run.system,
        run.nodes,
        run.bound,
        run.pods,
        run.seconds_to_all_bound,
        run.pods_per_sec,
        run.creates_per_sec,
        run.tail_after_creates_seconds,
        run.create_to_bound_p50_ms,
        run.create_to_bound_p99_ms,
        run.nodes_used,
        run.max_pods_per_node,
        run.server_cpu_seconds,
        run.bench_cpu_seconds,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = tempfile::tempdir()?;
    let grace = ["--no-agent", "--node-monitor-grace-period", "86400"];
    let mut scheduler = Vec::new();
    let mut peer = Vec::new();
    let mut core = Vec::new();
    for &nodes in &args.nodes {
        let run = sched::core_cycles(nodes, args.pods)?;
        eprintln!(
            "{:<16} {:>6} nodes: {:.0} cycles/s, cycle p50 {:.0} µs p99 {:.0} µs, {:.0} nodes examined per cycle",
            "core (in memory)",
            run.nodes,
            run.cycles_per_sec,
            run.cycle_p50_us,
            run.cycle_p99_us,
            run.mean_nodes_examined
        );
        core.push(run);
    }
    for &nodes in &args.nodes {
        let server = Server::start(&args.skiff_bin, &root.path().join(format!("sched-{nodes}")), &grace).await?;
        let run = pod_run(&args, &server, nodes, Binder::Scheduler).await?;
        drop(server);
        summary(&run);
        scheduler.push(run);
        if !args.no_peer {
            let mut flags = grace.to_vec();
            flags.push("--no-controllers");
            let server = Server::start(&args.skiff_bin, &root.path().join(format!("peer-{nodes}")), &flags).await?;
            let run = pod_run(&args, &server, nodes, Binder::Direct { nodes }).await?;
            drop(server);
            summary(&run);
            peer.push(run);
        }
    }
    let ratios: Vec<Ratio> = scheduler
        .iter()
        .filter_map(|s| {
            let p = peer.iter().find(|p| p.nodes == s.nodes)?;
            Some(Ratio {
                nodes: s.nodes,
                scheduler_pods_per_sec: s.pods_per_sec,
                raw_bind_pods_per_sec: p.pods_per_sec,
                scheduler_over_raw_bind: s.pods_per_sec / p.pods_per_sec.max(f64::MIN_POSITIVE),
            })
        })
        .collect();
    for r in &ratios {
        eprintln!(
            "{} nodes: scheduler / raw API bind path = {:.0} / {:.0} = x{:.2}",
            r.nodes, r.scheduler_pods_per_sec, r.raw_bind_pods_per_sec, r.scheduler_over_raw_bind
        );
    }
    let cited = Cited {
        note: "cited, not measured: kube-scheduler cannot run here; its CI runs on other hardware",
        source: "kubernetes test/integration/scheduler_perf/misc/performance-config.yaml, \
                 SchedulingBasic thresholds (pods/s)",
        scheduling_basic_5000_nodes_10000_pods: 680.0,
        scheduling_basic_5000_nodes_50000_pods: 810.0,
        aim_pods_per_sec_at_5000_nodes: 1000.0,
    };
    eprintln!(
        "reference (cited, not measured): kube-scheduler CI floor at 5,000 nodes {:.0}–{:.0} pods/s; aim {:.0}",
        cited.scheduling_basic_5000_nodes_10000_pods,
        cited.scheduling_basic_5000_nodes_50000_pods,
        cited.aim_pods_per_sec_at_5000_nodes
    );
    let deployment = if args.replicas > 0 {
        let run = deployment_run(&args, root.path()).await?;
        eprintln!(
            "{}-replica Wasm Deployment: apply {:.2} s, first Ready {}, all Ready {} ({} ready)",
            run.replicas,
            run.apply_seconds,
            run.first_ready_seconds.map_or("never".into(), |s| format!("{s:.2} s")),
            run.all_ready_seconds.map_or("never".into(), |s| format!("{s:.2} s")),
            run.ready_replicas
        );
        Some(run)
    } else {
        None
    };
    let report = Report {
        machine: format!("{} cores", procs::cores()),
        build: if cfg!(debug_assertions) { "debug" } else { "release" },
        skiff_bin: args.skiff_bin.display().to_string(),
        settle_seconds: args.settle_seconds,
        core,
        scheduler,
        raw_bind_peer: peer,
        ratios,
        kube_scheduler_cited: cited,
        deployment,
    };
    let json = procs::write_report(args.out.as_deref(), &report)?;
    if args.out.is_none() {
        println!("{json}");
    }
    Ok(())
}
