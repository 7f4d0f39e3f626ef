//! `store-bench`: skiff's store against etcd, side by side.
//!
//! Run with `cargo xtask bench store` (it builds skiff in release mode and
//! installs etcd). Prints a table and writes JSON (`--out`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde::Serialize;
use skiff_bench::load::{self, Figures};
use skiff_bench::procs::{self, PeerTransport};
use skiff_store::{KeyRange, RangeRequest, ReadConsistency, Txn, TxnOp};

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
    /// Measure failover only (skip the throughput phases).
    #[arg(long)]
    failover_only: bool,
    /// Leader kills in the failover measurement (0 skips it).
    #[arg(long, default_value_t = 10)]
    failover_kills: usize,
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
    /// Writes with mutual TLS on the peer port over plain HTTP, same run.
    peer_tls: Vec<TlsCost>,
    /// Three nodes, the leader killed (SIGKILL) under a stream of writes:
    /// from the kill to the first write acknowledged after it.
    failover: Option<Failover>,
}

#[derive(Debug, Serialize)]
struct Failover {
    kills: usize,
    /// Each kill's time to the first acknowledged write, ms, in order.
    ms: Vec<f64>,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Kills the leader of a three-node cluster `kills` times while one
/// client writes in a loop, restarting the killed node (and waiting until
/// it has caught up) before the next kill.
async fn bench_failover(args: &Args) -> anyhow::Result<Failover> {
    let root = tempfile::tempdir()?;
    let mut cluster = procs::skiff(&args.skiff_bin, root.path(), 3)?;
    let client = Arc::new(cluster.store_client(PeerTransport::MutualTls)?);
    let ready = Instant::now() + Duration::from_secs(30);
    while client
        .txn(Txn::new().and_then([TxnOp::put("/warmup", "x")]))
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < ready, "the cluster took no write within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acks = Arc::new(std::sync::Mutex::new(Vec::<(u64, Instant)>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (client, acks, stop) = (client.clone(), acks.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let put = TxnOp::put(format!("/failover/{seq}"), "v");
                if client.txn(Txn::new().and_then([put])).await.is_ok() {
                    if let Ok(mut acks) = acks.lock() {
                        acks.push((seq, Instant::now()));
                    }
                    seq += 1;
                }
            }
        })
    };
    let last_ack = |acks: &std::sync::Mutex<Vec<(u64, Instant)>>| acks.lock().ok().and_then(|a| a.last().copied());
    let mut ms = Vec::new();
    for kill in 0..args.failover_kills {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The leader, as the members see it once they agree on one.
        let settled = Instant::now() + Duration::from_secs(30);
        let index = loop {
            let mut leaders = Vec::new();
            for endpoint in &cluster.endpoints {
                leaders.push(client.status(endpoint).await.ok().and_then(|s| s.leader));
            }
            if let Some(Some(id)) = leaders.first()
                && leaders.iter().all(|l| *l == Some(*id))
            {
                break usize::try_from(*id)? - 1;
            }
            anyhow::ensure!(Instant::now() < settled, "the members agree on no leader: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let leader = cluster.endpoints[index].clone();
        let killed_at = Instant::now();
        cluster.kill(index);
        let deadline = killed_at + Duration::from_secs(30);
        let resumed = loop {
            if let Some((_, at)) = last_ack(&acks).filter(|(_, at)| *at > killed_at) {
                break at;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no write was acknowledged within 30 s of kill {kill}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let took = resumed.duration_since(killed_at).as_secs_f64() * 1000.0;
        eprintln!(
            "failover {}: leader {leader} killed; writes resumed after {took:.0} ms",
            kill + 1
        );
        ms.push(took);
        // Back to three members, caught up, before the next kill.
        cluster.restart(index)?;
        let restarted = skiff_store::Client::with_tls(
            vec![leader.clone()],
            Some(skiff_api::pki::peer::PeerPki::read(&cluster.api[0].1.join("pki"))?.client_config()?),
        )?;
        let (seq, _) = last_ack(&acks).context("no writes")?;
        let caught_up = Instant::now() + Duration::from_secs(60);
        loop {
            let request = RangeRequest::new(KeyRange::key(format!("/failover/{seq}")));
            if let Ok(found) = restarted.range(request, ReadConsistency::Serializable).await
                && !found.kvs.is_empty()
            {
                break;
            }
            anyhow::ensure!(
                Instant::now() < caught_up,
                "the restarted node did not catch up within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.await;
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(i).copied().unwrap_or(0.0)
    };
    Ok(Failover {
        kills: ms.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: sorted.last().copied().unwrap_or(0.0),
        ms,
    })
}

#[derive(Debug, Serialize)]
struct TlsCost {
    nodes: usize,
    clients: usize,
    mtls_ops_per_sec: f64,
    plain_ops_per_sec: f64,
    /// 1 − mTLS/plain: the share of write throughput TLS costs.
    cost: f64,
}

fn tls_costs(results: &[Figures]) -> Vec<TlsCost> {
    let mut out = Vec::new();
    for plain in results.iter().filter(|f| f.system == "skiff-plain") {
        let mtls = results
            .iter()
            .find(|f| f.system == "skiff" && f.nodes == plain.nodes && f.op == plain.op && f.clients == plain.clients);
        if let Some(mtls) = mtls {
            out.push(TlsCost {
                nodes: plain.nodes,
                clients: plain.clients,
                mtls_ops_per_sec: mtls.ops_per_sec,
                plain_ops_per_sec: plain.ops_per_sec,
                cost: 1.0 - mtls.ops_per_sec / plain.ops_per_sec.max(f64::MIN_POSITIVE),
            });
        }
    }
    out
}

#[derive(Debug, Serialize)]
struct Ratio {
    nodes: usize,
    op: String,
    clients: usize,
    throughput_skiff_over_etcd: f64,
    p99_skiff_over_etcd: f64,
}

async fn bench_skiff(
    args: &Args,
    nodes: usize,
    transport: PeerTransport,
    out: &mut Vec<Figures>,
) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let cluster = procs::skiff_with(&args.skiff_bin, root.path(), nodes, transport)?;
    let client = Arc::new(cluster.store_client(transport)?);
    // The plain-HTTP baseline is measured for writes only: what TLS costs.
    let system = match transport {
        PeerTransport::MutualTls => "skiff",
        PeerTransport::Plain => "skiff-plain",
    };
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
        out.push(load::figures(system, nodes, "put", clients, run));
        print_last(out);
    }
    if transport == PeerTransport::Plain {
        return Ok(());
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
    for nodes in [1, 3].into_iter().filter(|_| !args.failover_only) {
        bench_skiff(&args, nodes, PeerTransport::MutualTls, &mut results).await?;
        if nodes > 1 {
            bench_skiff(&args, nodes, PeerTransport::Plain, &mut results).await?;
        }
        bench_etcd(&args, nodes, &mut results).await?;
    }
    let failover = if args.failover_kills > 0 {
        Some(bench_failover(&args).await?)
    } else {
        None
    };
    let report = Report {
        machine: format!("{} cores, {}", procs::cores(), std::env::consts::ARCH),
        value_size: args.value_size,
        seconds_per_cell: args.seconds,
        ratios: ratios(&results),
        peer_tls: tls_costs(&results),
        failover,
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
    println!("\n| nodes | clients | writes/s, mTLS | writes/s, plain | TLS cost |");
    println!("|---|---|---|---|---|");
    for c in &report.peer_tls {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.1}% |",
            c.nodes,
            c.clients,
            c.mtls_ops_per_sec,
            c.plain_ops_per_sec,
            c.cost * 100.0
        );
    }
    if let Some(f) = &report.failover {
        println!(
            "\nfailover over {} leader kills (SIGKILL → first acknowledged write): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            f.kills, f.p50_ms, f.p99_ms, f.max_ms
        );
    }
    let json = procs::write_report(args.out.as_deref(), &report)?;
    println!("{json}");
    Ok(())
}
