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
    let mut command = Command::new(&args.wrk);
    command
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
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
    drop(server);
    let report = Report {
        cores: procs::cores(),
        wrk: version,
        seconds: args.seconds,
        connections: args.connections,
        threads: args.threads,
        cells,
    };
    println!("{}", procs::write_report(args.out.as_deref(), &report)?);
    Ok(())
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
