//! A closed-loop load generator: N clients, each issuing its next request
//! when the last one returns, for a fixed time; latencies recorded per op.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The figures for one (system, workload, concurrency) cell.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub system: String,
    pub nodes: usize,
    pub op: String,
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A run's raw result: operations done, errors, seconds, and every
/// operation's latency, sorted.
pub type Run = (u64, u64, f64, Vec<Duration>);

/// Runs `op(client, seq)` from `clients` concurrent tasks for `duration`.
pub async fn run<F, Fut>(clients: usize, duration: Duration, op: F) -> Run
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    // The first error of a run is shown, so an error count says what failed.
    let reported = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let op = op.clone();
        let reported = reported.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut seq = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match op(client, seq).await {
                    Ok(()) => latencies.push(t.elapsed()),
                    Err(error) => {
                        if !reported.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            eprintln!("first error of this run: {error:#}");
                        }
                        errors += 1;
                    }
                }
                seq += 1;
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((lat, err)) = task.await {
            all.extend(lat);
            errors += err;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    (all.len() as u64, errors, elapsed, all)
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

pub fn figures(system: &str, nodes: usize, op: &str, clients: usize, run: (u64, u64, f64, Vec<Duration>)) -> Figures {
    let (ops, errors, seconds, lat) = run;
    Figures {
        system: system.into(),
        nodes,
        op: op.into(),
        clients,
        ops,
        errors,
        seconds,
        ops_per_sec: ops as f64 / seconds,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
    }
}
