//! `store-bench`: skiff's store against etcd, side by side.
//!
//! Run with `cargo xtask bench store` (it builds skiff in release mode and
//! installs etcd). Prints a table and writes JSON (`--out`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::Serialize;
use skiff_bench::load::{self, Figures};
use skiff_bench::procs;
use skiff_store::{Client, KeyRange, RangeRequest, ReadConsistency, Txn, TxnOp};

#[derive(Debug, Parser)]
struct Args {
    /// The skiff binary to run nodes with.
    #[arg(long)]
    skiff_bin: PathBuf,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Concurrent clients for writes.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 256])]
    clients: Vec<usize>,
    /// Write the JSON report here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    value_size: usize,
    seconds_per_cell: u64,
    results: Vec<Figures>,
    ratios: Vec<Ratio>,
}

#[derive(Debug, Serialize)]
struct Ratio {
    nodes: usize,
    op: String,
    clients: usize,
    throughput_skiff_over_etcd: f64,
    p99_skiff_over_etcd: f64,
}

async fn bench_skiff(args: &Args, nodes: usize, out: &mut Vec<Figures>) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let cluster = procs::skiff(&args.skiff_bin, root.path(), nodes)?;
    let client = Arc::new(Client::new(cluster.endpoints.clone())?);
    // Wait until the cluster accepts writes.
    for _ in 0..200 {
        if client
            .txn(Txn::new().and_then([TxnOp::put("/warmup", "x")]))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let value = Arc::new(vec![b'v'; args.value_size]);
    for &clients in &args.clients {
        let (c, v) = (client.clone(), value.clone());
        let run = load::run(clients, Duration::from_secs(args.seconds), move |id, seq| {
            let (c, v) = (c.clone(), v.clone());
            async move {
                c.txn(Txn::new().and_then([TxnOp::put(format!("/bench/{id}/{seq}"), v.as_slice())]))
                    .await?;
                Ok(())
            }
        })
        .await;
        out.push(load::figures("skiff", nodes, "put", clients, run));
        print_last(out);
    }
    for &clients in &[16usize, 256] {
        let c = client.clone();
        let run = load::run(clients, Duration::from_secs(args.seconds), move |id, seq| {
            let c = c.clone();
            async move {
                let key = format!("/bench/{}/{}", id % 16, seq % 64);
                c.range(RangeRequest::new(KeyRange::key(key)), ReadConsistency::Linearizable)
                    .await?;
                Ok(())
            }
        })
        .await;
        out.push(load::figures("skiff", nodes, "linearizable-get", clients, run));
        print_last(out);
    }
    drop(cluster);
    Ok(())
}

async fn bench_etcd(args: &Args, nodes: usize, out: &mut Vec<Figures>) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let cluster = procs::etcd(root.path(), nodes)?;
    let endpoints: Vec<String> = cluster.endpoints.iter().map(|e| format!("http://{e}")).collect();
    let client = etcd_client::Client::connect(&endpoints, None)
        .await
        .context("connecting to etcd")?;
    let value = Arc::new(vec![b'v'; args.value_size]);
    for &clients in &args.clients {
        let (c, v) = (client.clone(), value.clone());
        let run = load::run(clients, Duration::from_secs(args.seconds), move |id, seq| {
            let (mut c, v) = (c.clone(), v.clone());
            async move {
                c.put(format!("/bench/{id}/{seq}"), v.as_slice(), None).await?;
                Ok(())
            }
        })
        .await;
        out.push(load::figures("etcd", nodes, "put", clients, run));
        print_last(out);
    }
    for &clients in &[16usize, 256] {
        let c = client.clone();
        let run = load::run(clients, Duration::from_secs(args.seconds), move |id, seq| {
            let mut c = c.clone();
            async move {
                c.get(format!("/bench/{}/{}", id % 16, seq % 64), None).await?;
                Ok(())
            }
        })
        .await;
        out.push(load::figures("etcd", nodes, "linearizable-get", clients, run));
        print_last(out);
    }
    drop(cluster);
    Ok(())
}

fn print_last(out: &[Figures]) {
    if let Some(f) = out.last() {
        eprintln!(
            "{:<6} {} node(s) {:<17} {:>4} clients: {:>9.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} errors)",
            f.system, f.nodes, f.op, f.clients, f.ops_per_sec, f.p50_ms, f.p99_ms, f.errors
        );
    }
}

fn ratios(results: &[Figures]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for s in results.iter().filter(|f| f.system == "skiff") {
        if let Some(e) = results
            .iter()
            .find(|e| e.system == "etcd" && e.nodes == s.nodes && e.op == s.op && e.clients == s.clients)
        {
            out.push(Ratio {
                nodes: s.nodes,
                op: s.op.clone(),
                clients: s.clients,
                throughput_skiff_over_etcd: s.ops_per_sec / e.ops_per_sec.max(f64::MIN_POSITIVE),
                p99_skiff_over_etcd: s.p99_ms / e.p99_ms.max(f64::MIN_POSITIVE),
            });
        }
    }
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut results = Vec::new();
    for nodes in [1, 3] {
        bench_skiff(&args, nodes, &mut results).await?;
        bench_etcd(&args, nodes, &mut results).await?;
    }
    let report = Report {
        machine: format!("{} cores, {}", procs::cores(), std::env::consts::ARCH),
        value_size: args.value_size,
        seconds_per_cell: args.seconds,
        ratios: ratios(&results),
        results,
    };
    println!("\n| nodes | op | clients | skiff ops/s | etcd ops/s | ratio | skiff p50/p99 ms | etcd p50/p99 ms |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &report.ratios {
        let s = report
            .results
            .iter()
            .find(|f| f.system == "skiff" && f.nodes == r.nodes && f.op == r.op && f.clients == r.clients);
        let e = report
            .results
            .iter()
            .find(|f| f.system == "etcd" && f.nodes == r.nodes && f.op == r.op && f.clients == r.clients);
        if let (Some(s), Some(e)) = (s, e) {
            println!(
                "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2}/{:.2} | {:.2}/{:.2} |",
                r.nodes,
                r.op,
                r.clients,
                s.ops_per_sec,
                e.ops_per_sec,
                r.throughput_skiff_over_etcd,
                s.p50_ms,
                s.p99_ms,
                e.p50_ms,
                e.p99_ms
            );
        }
    }
    let json = procs::write_report(args.out.as_deref(), &report)?;
    println!("{json}");
    Ok(())
}
