//! `net-bench`: what skiff's service proxy and Ingress cost, Wasm and
//! container backends side by side.
//!
//! Run with `cargo xtask bench net` (release build; it installs `wrk` and,
//! as root, builds the busybox httpd OCI layout). One `skiff server` with
//! its in-process agent runs one Wasm HTTP pod (the test component, a
//! fresh instance per request) and, as root, one busybox `httpd` pod in
//! runc, each behind a ClusterIP Service and an Ingress host. `wrk`
//! (keep-alive connections, `--latency`) then loads each backend three
//! ways: directly at the pod's address, through the Service's ClusterIP,
//! and through the node's Ingress listener. Every figure is given with its
//! ratio to the direct one, which is the proxy's overhead.
//!
//! The load generator shares the machine's cores with the server under
//! test, so absolute figures are the machine's; the ratios are the point.
//! busybox httpd closes each connection after one response, so its rows
//! include a TCP connect per request on every path.
//!
//! The second part measures calls out of pods (`calls` in the report),
//! each cell under load (16 connections) and alone (1 connection, whose
//! p50 is the latency of one request):
//!
//! * a Wasm caller (wstd's published `http_server_proxy` example) calling
//!   the Wasm test component through its Service: in-process, as skiff
//!   does it, and over loopback through the ClusterIP (the caller pod
//!   annotated `skiff.dev/in-process-calls: "false"`), against the callee
//!   alone and against the caller answering by itself (no call);
//! * a native caller in runc calling a native callee in runc through its
//!   Service (`call-peer`, this crate's native peer, as root only);
//! * the Wasm caller and the native `call-peer` proxy, as a process,
//!   calling a native server on another loopback address: outgoing HTTP
//!   from Wasm against a native client, request for request.
//!
//! Figures go to stdout as JSON (or `--out`), a summary to stderr.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use http::Method;
use serde::Serialize;
use serde_json::{Value, json};
use skiff_bench::procs;
use skiff_bench::scheduler::{self as sched, Server};

#[derive(Debug, Parser)]
struct Args {
    /// The skiff binary to run the server with.
    #[arg(long)]
    skiff_bin: PathBuf,
    /// The Wasm HTTP component (wasi:http/proxy) behind the Wasm Service.
    #[arg(long, default_value = skiff_test_programs::HTTP_HELLO)]
    wasm: PathBuf,
    /// An OCI layout with busybox `httpd` and `/www`; without it (or
    /// without root) only the Wasm backend is measured.
    #[arg(long)]
    oci_layout: Option<PathBuf>,
    /// The Wasm caller: a component that forwards `/proxy/<rest>` to
    /// `$TARGET_URL<rest>`.
    #[arg(long, default_value = skiff_test_programs::WSTD_HTTP_SERVER_PROXY)]
    wasm_caller: PathBuf,
    /// The native peer (`call-peer`); without it the calls are not
    /// measured.
    #[arg(long)]
    call_peer: Option<PathBuf>,
    /// An OCI layout running `call-peer`, for the runc → runc call.
    #[arg(long)]
    call_peer_layout: Option<PathBuf>,
    /// The `wrk` binary.
    #[arg(long, default_value = "wrk")]
    wrk: PathBuf,
    /// Seconds of load per cell.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Keep-alive connections per cell.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// wrk threads per cell.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Cell {
    backend: &'static str,
    path: &'static str,
    url: String,
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Non-2xx/3xx responses and socket errors wrk counted.
    errors: u64,
    /// Requests/s over the direct path's (1 = no overhead).
    throughput_vs_direct: f64,
    /// p50 over the direct path's.
    p50_vs_direct: f64,
    p99_vs_direct: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    cores: usize,
    wrk: String,
    seconds: u64,
    connections: u32,
    threads: u32,
    cells: Vec<Cell>,
    calls: Vec<Call>,
    /// What the calls' aims compare.
    call_figures: Value,
}

/// One call path: under load and alone.
#[derive(Debug, Serialize)]
struct Call {
    path: &'static str,
    url: String,
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// One connection: one request at a time.
    alone_requests_per_second: f64,
    alone_p50_ms: f64,
    alone_p99_ms: f64,
    errors: u64,
}

/// wrk's latency line value (`812.00us`, `1.20ms`, `2.01s`) in ms.
fn millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

/// (requests/s, p50 ms, p99 ms, errors) from wrk's `--latency` output.
fn parse_wrk(output: &str) -> Option<(f64, f64, f64, u64)> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let mut errors = 0u64;
    for line in output.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => rps = value.parse().ok(),
            ["50%", value] => p50 = millis(value),
            ["99%", value] => p99 = millis(value),
            ["Non-2xx", "or", "3xx", "responses:", count] => errors += count.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    Some((rps?, p50?, p99?, errors))
}

fn wrk(args: &Args, url: &str, host: Option<&str>) -> anyhow::Result<(f64, f64, f64, u64)> {
    wrk_with(args, url, host, args.threads, args.connections)
}

fn wrk_with(
    args: &Args,
    url: &str,
    host: Option<&str>,
    threads: u32,
    connections: u32,
) -> anyhow::Result<(f64, f64, f64, u64)> {
    let mut command = Command::new(&args.wrk);
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", args.seconds))
        .arg("--latency");
    if let Some(host) = host {
        command.args(["-H", &format!("Host: {host}")]);
    }
    let out = command
        .arg(url)
        .output()
        .with_context(|| format!("running {}", args.wrk.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk {url}: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text).with_context(|| format!("cannot read wrk's output: {text}"))
}

async fn create(api: &skiff_bench::api::ApiClient, path: &str, object: Value) -> anyhow::Result<Value> {
    let bytes = api
        .call(
            Method::POST,
            path,
            Some(object.to_string().into_bytes()),
            "application/json",
        )
        .await?;
    Ok(serde_json::from_slice(&bytes)?)
}

async fn get(api: &skiff_bench::api::ApiClient, path: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_slice(
        &api.call(Method::GET, path, None, "application/json").await?,
    )?)
}

/// A pod and a ClusterIP Service for it, named `name`.
fn pod_and_service(name: &str, image: &str, class: &str, port: u16, command: &[&str]) -> (Value, Value) {
    let mut pod = skiff_bench::node::pod(name, image, class, Some(port), command);
    pod["metadata"]["labels"] = json!({"app": name});
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": port}]}});
    (pod, service)
}

/// Polls until the Service has a ready endpoint; returns its address.
async fn ready_endpoint(api: &skiff_bench::api::ApiClient, name: &str, deadline: Instant) -> anyhow::Result<String> {
    loop {
        let endpoints = get(api, &format!("/api/v1/namespaces/default/endpoints/{name}")).await;
        if let Ok(endpoints) = endpoints
            && let Some(ip) = endpoints.pointer("/subsets/0/addresses/0/ip").and_then(Value::as_str)
        {
            return Ok(ip.to_string());
        }
        if Instant::now() > deadline {
            bail!("Service {name} never had a ready endpoint");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn answers(url: &str, host: &str) -> bool {
    Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "2",
            "-o",
            "/dev/null",
            "-H",
            &format!("Host: {host}"),
            url,
        ])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = tempfile::tempdir()?;
    let dir = root.path().join("server");
    let agent_dir = dir.join("agent");
    sched::import_image(&args.skiff_bin, &args.wasm, "local/hello:1", &agent_dir)?;
    let runc = match &args.oci_layout {
        Some(layout) if procs::is_root() => {
            sched::import_image(&args.skiff_bin, layout, "local/busybox:1", &agent_dir)?;
            true
        }
        _ => {
            eprintln!("the container backend is skipped: needs root and --oci-layout");
            false
        }
    };
    sched::import_image(&args.skiff_bin, &args.wasm_caller, "local/wasm-caller:1", &agent_dir)?;
    let runc_peer = match &args.call_peer_layout {
        Some(layout) if runc => {
            sched::import_image(&args.skiff_bin, layout, "local/call-peer:1", &agent_dir)?;
            true
        }
        _ => false,
    };
    let ingress_port = procs::free_port()?.to_string();
    let server = Server::start(
        &args.skiff_bin,
        &dir,
        &[
            "--node-name",
            "bench",
            "--pod-cidr",
            "127.63.0.0",
            "--ingress-http-port",
            &ingress_port,
            "--ingress-https-port",
            "0",
        ],
    )
    .await?;
    let api = server.client(1)?;
    skiff_bench::node::node_ready(&api, "bench").await?;

    let oci_port = procs::free_port()?;
    let mut backends = vec![(
        "wasm",
        pod_and_service("wasm", "local/hello:1", "wasmtime", 8080, &[]),
        8080u16,
    )];
    if runc {
        let port = oci_port.to_string();
        backends.push((
            "container",
            pod_and_service(
                "container",
                "local/busybox:1",
                "runc",
                oci_port,
                &["httpd", "-f", "-p", &port, "-h", "/www"],
            ),
            oci_port,
        ));
    }
    let mut rules = Vec::new();
    for (name, (pod, service), _) in &backends {
        create(&api, "/api/v1/namespaces/default/pods", pod.clone()).await?;
        create(&api, "/api/v1/namespaces/default/services", service.clone()).await?;
        rules.push(json!({"host": format!("{name}.bench.test"), "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}));
    }
    create(
        &api,
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "bench"},
            "spec": {"rules": rules}}),
    )
    .await?;

    let version = Command::new(&args.wrk).arg("--version").output().map(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        text.lines().next().unwrap_or_default().trim().to_string()
    })?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut cells = Vec::new();
    for (name, _, port) in &backends {
        let pod_ip = ready_endpoint(&api, name, deadline).await?;
        let service = get(&api, &format!("/api/v1/namespaces/default/services/{name}")).await?;
        let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap_or_default().to_string();
        let host = format!("{name}.bench.test");
        let paths: [(&'static str, String); 3] = [
            ("direct", format!("http://{pod_ip}:{port}/")),
            ("clusterip", format!("http://{cluster_ip}/")),
            ("ingress", format!("http://127.0.0.1:{ingress_port}/")),
        ];
        while !paths.iter().all(|(_, url)| answers(url, &host)) {
            if Instant::now() > deadline {
                bail!("{name} is not served on every path");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut direct = None;
        for (path, url) in paths {
            let host = (path == "ingress").then_some(host.as_str());
            let (rps, p50, p99, errors) = wrk(&args, &url, host)?;
            let (base_rps, base_p50, base_p99) = *direct.get_or_insert((rps, p50, p99));
            eprintln!(
                "{name:>9} {path:>9}: {rps:>9.0} req/s  p50 {p50:>7.3} ms  p99 {p99:>7.3} ms  ({:.2}× throughput, {:.2}× p50 of direct){}",
                rps / base_rps,
                p50 / base_p50,
                if errors > 0 {
                    format!("  {errors} errors")
                } else {
                    String::new()
                }
            );
            cells.push(Cell {
                backend: name,
                path,
                url,
                requests_per_second: rps,
                p50_ms: p50,
                p99_ms: p99,
                errors,
                throughput_vs_direct: rps / base_rps,
                p50_vs_direct: p50 / base_p50,
                p99_vs_direct: p99 / base_p99,
            });
        }
    }
    let (calls, call_figures) = match &args.call_peer {
        Some(peer) => calls(&args, &api, peer, runc_peer, deadline + Duration::from_secs(120)).await?,
        None => (Vec::new(), Value::Null),
    };
    drop(server);
    let report = Report {
        cores: procs::cores(),
        wrk: version,
        seconds: args.seconds,
        connections: args.connections,
        threads: args.threads,
        cells,
        calls,
        call_figures,
    };
    println!("{}", procs::write_report(args.out.as_deref(), &report)?);
    Ok(())
}

/// A process that ends with the benchmark.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn call_peer(peer: &std::path::Path, mode: &str, addr: &str, target: Option<&str>) -> anyhow::Result<Child> {
    let mut command = Command::new(peer);
    command.args([mode, addr]);
    if let Some(target) = target {
        command.env("TARGET_URL", target);
    }
    Ok(Child(
        command
            .spawn()
            .with_context(|| format!("starting {}", peer.display()))?,
    ))
}

/// A pod and its Service (from [`pod_and_service`]), the pod given `env`
/// and `annotations`.
async fn call_pod(
    api: &skiff_bench::api::ApiClient,
    (mut pod, service): (Value, Value),
    env: Value,
    annotations: Value,
) -> anyhow::Result<()> {
    pod["spec"]["containers"][0]["env"] = env;
    pod["metadata"]["annotations"] = annotations;
    create(api, "/api/v1/namespaces/default/pods", pod).await?;
    create(api, "/api/v1/namespaces/default/services", service).await?;
    Ok(())
}

/// The calls out of pods (see the crate doc): each path loaded, then alone.
async fn calls(
    args: &Args,
    api: &skiff_bench::api::ApiClient,
    peer: &std::path::Path,
    runc: bool,
    deadline: Instant,
) -> anyhow::Result<(Vec<Call>, Value)> {
    let server_addr = format!("127.0.0.2:{}", procs::free_port()?);
    let native_addr = format!("127.0.0.3:{}", procs::free_port()?);
    let _server = call_peer(peer, "serve", &server_addr, None)?;
    let _native = call_peer(peer, "proxy", &native_addr, Some(&format!("http://{server_addr}/")))?;
    let target = |url: &str| json!([{"name": "TARGET_URL", "value": url}]);
    let none = json!({});
    let wasm = |name: &'static str, url: String, annotations: Value| (name, url, annotations);
    for (name, url, annotations) in [
        wasm("caller-local", "http://wasm/".into(), none.clone()),
        wasm(
            "caller-loopback",
            "http://wasm/".into(),
            json!({"skiff.dev/in-process-calls": "false"}),
        ),
        wasm("caller-out", format!("http://{server_addr}/"), none.clone()),
    ] {
        call_pod(
            api,
            pod_and_service(name, "local/wasm-caller:1", "wasmtime", 8080, &[]),
            target(&url),
            annotations,
        )
        .await?;
    }
    let (callee_port, caller_port) = (procs::free_port()?, procs::free_port()?);
    if runc {
        let callee = format!("0.0.0.0:{callee_port}");
        let caller = format!("0.0.0.0:{caller_port}");
        call_pod(
            api,
            pod_and_service(
                "callee-runc",
                "local/call-peer:1",
                "runc",
                callee_port,
                &["/bin/call-peer", "serve", &callee],
            ),
            json!([]),
            none.clone(),
        )
        .await?;
        call_pod(
            api,
            pod_and_service(
                "caller-runc",
                "local/call-peer:1",
                "runc",
                caller_port,
                &["/bin/call-peer", "proxy", &caller],
            ),
            target("http://callee-runc/"),
            none.clone(),
        )
        .await?;
    }
    let mut paths: Vec<(&'static str, String)> = Vec::new();
    let ip = |name: &'static str| async move { ready_endpoint(api, name, deadline).await };
    paths.push(("wasm callee alone", format!("http://{}:8080/", ip("wasm").await?)));
    // The caller answering by itself (wstd's proxy: 404 for any other
    // path), to tell the call's cost from the caller's own.
    paths.push((
        "wasm caller alone (404, no call)",
        format!("http://{}:8080/none", ip("caller-local").await?),
    ));
    paths.push((
        "wasm -> wasm in-process",
        format!("http://{}:8080/proxy/", ip("caller-local").await?),
    ));
    paths.push((
        "wasm -> wasm over loopback (ClusterIP)",
        format!("http://{}:8080/proxy/", ip("caller-loopback").await?),
    ));
    if runc {
        paths.push((
            "runc callee alone",
            format!("http://{}:{callee_port}/", ip("callee-runc").await?),
        ));
        paths.push((
            "runc -> runc (ClusterIP)",
            format!("http://{}:{caller_port}/proxy/", ip("caller-runc").await?),
        ));
    }
    paths.push(("native server alone", format!("http://{server_addr}/")));
    paths.push((
        "wasm -> native server",
        format!("http://{}:8080/proxy/", ip("caller-out").await?),
    ));
    paths.push(("native -> native server", format!("http://{native_addr}/proxy/")));
    while !paths
        .iter()
        .filter(|(path, _)| !path.contains("404"))
        .all(|(_, url)| answers(url, "bench"))
    {
        if Instant::now() > deadline {
            bail!("not every call path answers: {paths:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut calls = Vec::new();
    for (path, url) in paths {
        let (rps, p50, p99, errors) = wrk(args, &url, None)?;
        let (alone_rps, alone_p50, alone_p99, alone_errors) = wrk_with(args, &url, None, 1, 1)?;
        eprintln!(
            "{path:>40}: {rps:>8.0} req/s p50 {p50:>6.3} ms | alone {alone_rps:>7.0} req/s p50 {:>6.1} µs p99 {:>6.1} µs",
            alone_p50 * 1000.0,
            alone_p99 * 1000.0
        );
        calls.push(Call {
            path,
            url,
            requests_per_second: rps,
            p50_ms: p50,
            p99_ms: p99,
            alone_requests_per_second: alone_rps,
            alone_p50_ms: alone_p50,
            alone_p99_ms: alone_p99,
            errors: errors + alone_errors,
        });
    }
    let find = |path: &str| calls.iter().find(|c| c.path == path);
    let added = |caller: &str, callee: &str| match (find(caller), find(callee)) {
        (Some(a), Some(b)) => json!((a.alone_p50_ms - b.alone_p50_ms) * 1000.0),
        _ => Value::Null,
    };
    let ratio = |a: &str, b: &str, f: fn(&Call) -> f64| match (find(a), find(b)) {
        (Some(a), Some(b)) => json!(f(a) / f(b)),
        _ => Value::Null,
    };
    let figures = json!({
        "in_process_added_p50_us": added("wasm -> wasm in-process", "wasm callee alone"),
        "in_process_call_p50_us": added("wasm -> wasm in-process", "wasm caller alone (404, no call)"),
        "loopback_call_p50_us": added("wasm -> wasm over loopback (ClusterIP)", "wasm caller alone (404, no call)"),
        "loopback_added_p50_us": added("wasm -> wasm over loopback (ClusterIP)", "wasm callee alone"),
        "runc_added_p50_us": added("runc -> runc (ClusterIP)", "runc callee alone"),
        "wasm_outgoing_added_p50_us": added("wasm -> native server", "native server alone"),
        "native_outgoing_added_p50_us": added("native -> native server", "native server alone"),
        "wasm_vs_native_outgoing_p50": ratio("wasm -> native server", "native -> native server", |c| c.alone_p50_ms),
        "wasm_vs_native_outgoing_throughput": ratio("wasm -> native server", "native -> native server", |c| c.requests_per_second),
    });
    eprintln!("{figures:#}");
    Ok((calls, figures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let output = "Running 10s test @ http://127.0.0.1:8080/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.34us  301.00us  12.00ms   90.00%
  Latency Distribution
     50%  750.00us
     75%    1.00ms
     90%    1.20ms
     99%    2.50ms
  123456 requests in 10.00s, 20.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  12345.60
Transfer/sec:      2.00MB
";
        assert_eq!(parse_wrk(output), Some((12345.6, 0.75, 2.5, 9)));
        assert_eq!(millis("2.5s"), Some(2500.0));
    }
}
