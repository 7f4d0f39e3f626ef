//! `api-bench`: skiff's Kubernetes API over TLS: create/get/list latency
//! and throughput at fixed concurrency, creates at a fixed rate, and watch
//! fan-out (N watchers, delivery latency of each event to each watcher).
//! The peer figure is the same writes made directly to the store, so the
//! ratio is what the API layer costs.
//!
//! Run with `cargo xtask bench api` (release build). Prints a table and
//! writes JSON (`--out`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use http::Method;
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::json;
use skiff_bench::api::ApiClient;
use skiff_bench::load::{self, Figures};
use skiff_bench::procs;
use skiff_store::{Client, Txn, TxnOp};

#[derive(Debug, Parser)]
struct Args {
    /// The skiff binary to run the server with.
    #[arg(long)]
    skiff_bin: PathBuf,
    /// Seconds per closed-loop measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients for create/get/list.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    clients: Vec<usize>,
    /// Creates per second for the open-loop run.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Watcher counts for the fan-out runs.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 10000])]
    watchers: Vec<usize>,
    /// Events written per fan-out run.
    #[arg(long, default_value_t = 50)]
    events: u64,
    /// Write the JSON report here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct RateRun {
    target_per_sec: u64,
    achieved_per_sec: f64,
    ops: u64,
    errors: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct FanOut {
    watchers: usize,
    events: u64,
    open_seconds: f64,
    deliveries: u64,
    expected: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    server_rss_mib: f64,
}

#[derive(Debug, Serialize)]
struct Ratio {
    op: String,
    clients: usize,
    throughput_api_over_store: f64,
    p99_api_over_store: f64,
}

/// The cost of authentication and RBAC: one operation at one client
/// count, as a non-admin ServiceAccount (token verified, bound objects
/// checked, RBAC rules walked) beside the admin (a static token in
/// `system:masters`, which RBAC does not consult), on the same server.
#[derive(Debug, Serialize)]
struct AccessCost {
    op: String,
    clients: usize,
    admin_ops_per_sec: f64,
    service_account_ops_per_sec: f64,
    /// Service account throughput over the admin's (1.0: no loss).
    throughput_ratio: f64,
    admin_p50_us: f64,
    service_account_p50_us: f64,
    p50_delta_us: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    seconds_per_cell: u64,
    closed_loop: Vec<Figures>,
    access: Vec<AccessCost>,
    /// On a fresh server, before any other load.
    fixed_rate_create_fresh: RateRun,
    /// After the closed-loop runs (a few hundred thousand writes, whose
    /// RocksDB flushes and compactions share the machine).
    fixed_rate_create_after_load: RateRun,
    watch_fan_out: Vec<FanOut>,
    ratios: Vec<Ratio>,
}

fn configmap(name: &str, data: serde_json::Value) -> Vec<u8> {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
        .to_string()
        .into_bytes()
}

fn payload() -> serde_json::Value {
    json!({"v": "x".repeat(256)})
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The send time a fan-out event carries in `data.t`, found without
/// parsing the whole event: the load generator shares the machine with the
/// server, and ten thousand full parses per event would be measured too.
fn sent_at(line: &[u8]) -> Option<u64> {
    const FIELD: &[u8] = b"\"t\":\"";
    let start = line.windows(FIELD.len()).position(|w| w == FIELD)? + FIELD.len();
    let digits = line[start..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[start..start + digits]).ok()?.parse().ok()
}

async fn namespace(api: &ApiClient, name: &str) -> anyhow::Result<()> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    api.call(
        Method::POST,
        "/api/v1/namespaces",
        Some(body.to_string().into_bytes()),
        "application/json",
    )
    .await
    .map(|_| ())
}

async fn closed_loop(args: &Args, api: &ApiClient, store: &Arc<Client>, out: &mut Vec<Figures>) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.seconds);
    for &clients in &args.clients {
        let ns = format!("create-{clients}");
        namespace(api, &ns).await?;
        let a = api.clone();
        let run = load::run(clients, duration, move |c, seq| {
            let a = a.clone();
            let path = format!("/api/v1/namespaces/{ns}/configmaps");
            async move {
                a.call(
                    Method::POST,
                    &path,
                    Some(configmap(&format!("c{c}-{seq}"), payload())),
                    "application/json",
                )
                .await
                .map(|_| ())
            }
        })
        .await;
        out.push(load::figures("skiff-api", 1, "create", clients, run));

        let s = store.clone();
        let run = load::run(clients, duration, move |c, seq| {
            let s = s.clone();
            async move {
                let value = configmap(&format!("c{c}-{seq}"), payload());
                s.txn(Txn::new().and_then([TxnOp::put(format!("/bench/{clients}/{c}/{seq}"), value)]))
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
        })
        .await;
        out.push(load::figures("skiff-store", 1, "put", clients, run));
    }

    namespace(api, "get").await?;
    for i in 0..1000 {
        api.call(
            Method::POST,
            "/api/v1/namespaces/get/configmaps",
            Some(configmap(&format!("g{i}"), payload())),
            "application/json",
        )
        .await?;
    }
    namespace(api, "list").await?;
    for i in 0..100 {
        api.call(
            Method::POST,
            "/api/v1/namespaces/list/configmaps",
            Some(configmap(&format!("l{i}"), payload())),
            "application/json",
        )
        .await?;
    }
    for &clients in &args.clients {
        let a = api.clone();
        let run = load::run(clients, duration, move |c, seq| {
            let a = a.clone();
            let name = format!("g{}", (c as u64 * 7919 + seq * 31) % 1000);
            async move {
                a.call(
                    Method::GET,
                    &format!("/api/v1/namespaces/get/configmaps/{name}"),
                    None,
                    "application/json",
                )
                .await
                .map(|_| ())
            }
        })
        .await;
        out.push(load::figures("skiff-api", 1, "get", clients, run));
        let a = api.clone();
        let run = load::run(clients, duration, move |_, _| {
            let a = a.clone();
            async move {
                a.call(
                    Method::GET,
                    "/api/v1/namespaces/list/configmaps?limit=500",
                    None,
                    "application/json",
                )
                .await
                .map(|_| ())
            }
        })
        .await;
        out.push(load::figures("skiff-api", 1, "list-100", clients, run));
    }
    Ok(())
}

/// get and create as the admin and as a ServiceAccount bound to `edit`
/// in the namespace, alternating so both see the same server state.
async fn access_cost(args: &Args, api: &ApiClient) -> anyhow::Result<Vec<AccessCost>> {
    let ns = "access";
    namespace(api, ns).await?;
    let json = "application/json";
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bench"}});
    api.call(
        Method::POST,
        &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
        Some(sa.to_string().into_bytes()),
        json,
    )
    .await?;
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bench-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": ns}],
    });
    api.call(
        Method::POST,
        &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
        Some(binding.to_string().into_bytes()),
        json,
    )
    .await?;
    let request =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 86400}});
    let reply = api
        .call(
            Method::POST,
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/bench/token"),
            Some(request.to_string().into_bytes()),
            json,
        )
        .await?;
    let token = serde_json::from_slice::<serde_json::Value>(&reply)?["status"]["token"]
        .as_str()
        .context("TokenRequest returned no token")?
        .to_string();
    let service_account = api.with_token(&token);
    for i in 0..1000 {
        api.call(
            Method::POST,
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            Some(configmap(&format!("g{i}"), payload())),
            json,
        )
        .await?;
    }
    let duration = Duration::from_secs(args.seconds);
    let mut out = Vec::new();
    for &clients in &args.clients {
        for op in ["get", "create"] {
            let mut figures = Vec::new();
            for (who, client) in [("admin", api), ("serviceaccount", &service_account)] {
                let c = client.clone();
                let run = load::run(clients, duration, move |task, seq| {
                    let c = c.clone();
                    async move {
                        let result = if op == "get" {
                            let name = format!("g{}", (task as u64 * 7919 + seq * 31) % 1000);
                            c.call(
                                Method::GET,
                                &format!("/api/v1/namespaces/{ns}/configmaps/{name}"),
                                None,
                                json,
                            )
                            .await
                        } else {
                            let name = format!("{who}-{clients}-{task}-{seq}");
                            c.call(
                                Method::POST,
                                &format!("/api/v1/namespaces/{ns}/configmaps"),
                                Some(configmap(&name, payload())),
                                json,
                            )
                            .await
                        };
                        result.map(|_| ())
                    }
                })
                .await;
                figures.push(load::figures(who, 1, op, clients, run));
            }
            let (admin, sa) = (&figures[0], &figures[1]);
            anyhow::ensure!(
                sa.errors == 0,
                "the ServiceAccount's {op}s failed: {} errors",
                sa.errors
            );
            out.push(AccessCost {
                op: op.into(),
                clients,
                admin_ops_per_sec: admin.ops_per_sec,
                service_account_ops_per_sec: sa.ops_per_sec,
                throughput_ratio: sa.ops_per_sec / admin.ops_per_sec.max(f64::MIN_POSITIVE),
                admin_p50_us: admin.p50_ms * 1000.0,
                service_account_p50_us: sa.p50_ms * 1000.0,
                p50_delta_us: (sa.p50_ms - admin.p50_ms) * 1000.0,
            });
        }
    }
    Ok(out)
}

/// Creates issued on a fixed schedule, whatever the replies do (open loop).
async fn fixed_rate(args: &Args, api: &ApiClient, ns: &str) -> anyhow::Result<RateRun> {
    namespace(api, ns).await?;
    let total = args.rate * args.seconds;
    let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval * (i as u32);
        tokio::time::sleep_until(due.into()).await;
        let a = api.clone();
        let path = format!("/api/v1/namespaces/{ns}/configmaps");
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let result = a
                .call(
                    Method::POST,
                    &path,
                    Some(configmap(&format!("r{i}"), payload())),
                    "application/json",
                )
                .await;
            result.map(|_| t.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(latency)) => latencies.push(latency),
            _ => errors += 1,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok(RateRun {
        target_per_sec: args.rate,
        achieved_per_sec: latencies.len() as f64 / seconds,
        ops: latencies.len() as u64,
        errors,
        p50_ms: load::percentile(&latencies, 0.50),
        p99_ms: load::percentile(&latencies, 0.99),
        max_ms: load::percentile(&latencies, 1.0),
    })
}

/// `watchers` watches on one namespace; then `events` updates, each
/// carrying its send time; every watcher records when each one arrives.
async fn fan_out(
    args: &Args,
    addr: &str,
    dir: &std::path::Path,
    watchers: usize,
    server_pid: u32,
) -> anyhow::Result<FanOut> {
    // A server allows 1,000 streams per connection; leave headroom.
    let api = ApiClient::new(addr, dir, watchers.div_ceil(800) + 1)?;
    let ns = format!("watch-{watchers}");
    namespace(&api, &ns).await?;
    let created = api
        .call(
            Method::POST,
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            Some(configmap("w", json!({"t": "0"}))),
            "application/json",
        )
        .await?;
    let rv = serde_json::from_slice::<serde_json::Value>(&created)?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let opened = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(
        watchers * args.events as usize,
    )));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let body = api
            .watch(&format!(
                "/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=120"
            ))
            .await?;
        let (delivered, latencies, events) = (delivered.clone(), latencies.clone(), args.events);
        tasks.push(tokio::spawn(async move {
            let mut body = body;
            let mut buffer = Vec::new();
            let mut seen = 0;
            let mut mine = Vec::with_capacity(events as usize);
            while seen < events {
                let Some(Ok(frame)) = body.frame().await else { break };
                let Ok(data) = frame.into_data() else { continue };
                buffer.extend_from_slice(&data);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let arrived = now_nanos();
                    if let Some(sent) = sent_at(&line) {
                        mine.push(Duration::from_nanos(arrived.saturating_sub(sent)));
                        seen += 1;
                    }
                }
            }
            delivered.fetch_add(mine.len() as u64, Ordering::Relaxed);
            if let Ok(mut all) = latencies.lock() {
                all.extend(mine);
            }
        }));
    }
    let open_seconds = opened.elapsed().as_secs_f64();
    let rss = procs::rss_mib(server_pid);
    for _ in 0..args.events {
        let patch = json!({"data": {"t": now_nanos().to_string()}}).to_string().into_bytes();
        api.call(
            Method::PATCH,
            &format!("/api/v1/namespaces/{ns}/configmaps/w"),
            Some(patch),
            "application/merge-patch+json",
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for task in tasks {
        let _ = tokio::time::timeout_at(deadline, task).await;
    }
    let mut all = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    all.sort_unstable();
    Ok(FanOut {
        watchers,
        events: args.events,
        open_seconds,
        deliveries: delivered.load(Ordering::Relaxed),
        expected: watchers as u64 * args.events,
        p50_ms: load::percentile(&all, 0.50),
        p99_ms: load::percentile(&all, 0.99),
        max_ms: load::percentile(&all, 1.0),
        server_rss_mib: rss,
    })
}

fn ratios(results: &[Figures]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for api in results.iter().filter(|f| f.system == "skiff-api" && f.op == "create") {
        if let Some(store) = results
            .iter()
            .find(|f| f.system == "skiff-store" && f.clients == api.clients)
        {
            out.push(Ratio {
                op: "create vs store put".into(),
                clients: api.clients,
                throughput_api_over_store: api.ops_per_sec / store.ops_per_sec.max(f64::MIN_POSITIVE),
                p99_api_over_store: api.p99_ms / store.p99_ms.max(f64::MIN_POSITIVE),
            });
        }
    }
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = tempfile::tempdir()?;
    let cluster = procs::skiff(&args.skiff_bin, root.path(), 1)?;
    let (addr, dir) = cluster.api.first().cloned().context("no API endpoint")?;
    let server_pid = cluster.children.first().map(|c| c.id()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("kubeconfig").exists() {
        anyhow::ensure!(Instant::now() < deadline, "the server wrote no kubeconfig");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api = ApiClient::new(&addr, &dir, 4)?;
    while api.call(Method::GET, "/readyz", None, "text/plain").await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = Arc::new(cluster.store_client(procs::PeerTransport::MutualTls)?);

    let fresh = fixed_rate(&args, &api, "rate-fresh").await?;
    let mut closed = Vec::new();
    closed_loop(&args, &api, &store, &mut closed).await?;
    let access = access_cost(&args, &api).await?;
    let rate = fixed_rate(&args, &api, "rate-loaded").await?;
    let mut fan = Vec::new();
    for &watchers in &args.watchers {
        fan.push(fan_out(&args, &addr, &dir, watchers, server_pid).await?);
    }

    println!(
        "{:<12} {:<9} {:>7} {:>10} {:>8} {:>8} {:>6}",
        "system", "op", "clients", "ops/s", "p50 ms", "p99 ms", "errors"
    );
    for f in &closed {
        println!(
            "{:<12} {:<9} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>6}",
            f.system, f.op, f.clients, f.ops_per_sec, f.p50_ms, f.p99_ms, f.errors
        );
    }
    for (when, rate) in [("fresh server", &fresh), ("after the closed-loop load", &rate)] {
        println!(
            "fixed-rate create ({when}): target {}/s, achieved {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}",
            rate.target_per_sec, rate.achieved_per_sec, rate.p50_ms, rate.p99_ms, rate.max_ms, rate.errors
        );
    }
    for f in &fan {
        println!(
            "watch fan-out: {} watchers (opened in {:.1} s, server RSS {:.0} MiB), {}/{} deliveries, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            f.watchers, f.open_seconds, f.server_rss_mib, f.deliveries, f.expected, f.p50_ms, f.p99_ms, f.max_ms
        );
    }
    for a in &access {
        println!(
            "access: {} at {} clients: admin {:.0}/s p50 {:.0} us, serviceaccount {:.0}/s p50 {:.0} us: throughput x{:.3}, p50 {:+.0} us",
            a.op,
            a.clients,
            a.admin_ops_per_sec,
            a.admin_p50_us,
            a.service_account_ops_per_sec,
            a.service_account_p50_us,
            a.throughput_ratio,
            a.p50_delta_us
        );
    }
    let report = Report {
        machine: format!("{} cores", procs::cores()),
        seconds_per_cell: args.seconds,
        access,
        ratios: ratios(&closed),
        closed_loop: closed,
        fixed_rate_create_fresh: fresh,
        fixed_rate_create_after_load: rate,
        watch_fan_out: fan,
    };
    for r in &report.ratios {
        println!(
            "{} at {} clients: throughput x{:.2}, p99 x{:.2}",
            r.op, r.clients, r.throughput_api_over_store, r.p99_api_over_store
        );
    }
    procs::write_report(args.out.as_deref(), &report)?;
    Ok(())
}
