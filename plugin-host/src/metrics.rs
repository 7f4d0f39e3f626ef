//! Call counts and latency of one loaded plugin, read by the status
//! reporter.

use std::sync::Mutex;
use std::time::Duration;

/// How many recent call latencies percentiles are computed over.
const WINDOW: usize = 1024;

/// Counters shared by a plugin's adapters and the status reporter.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    calls: u64,
    errors: u64,
    last_error: Option<String>,
    last_failed: bool,
    /// The latest [`WINDOW`] latencies in microseconds, as a ring.
    recent: Vec<u64>,
    next: usize,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub calls: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Whether the most recent call failed.
    pub last_failed: bool,
    pub p50_micros: Option<u64>,
    pub p99_micros: Option<u64>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one call that took `elapsed`, and its failure if it failed.
    pub fn record(&self, elapsed: Duration, failure: Option<String>) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let mut inner = self.lock();
        inner.calls += 1;
        inner.last_failed = failure.is_some();
        if let Some(failure) = failure {
            inner.errors += 1;
            inner.last_error = Some(failure);
        }
        if inner.recent.len() < WINDOW {
            inner.recent.push(micros);
        } else {
            let slot = inner.next;
            inner.recent[slot] = micros;
        }
        inner.next = (inner.next + 1) % WINDOW;
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let inner = self.lock();
        let mut sorted = inner.recent.clone();
        sorted.sort_unstable();
        let at = |q: f64| -> Option<u64> {
            let last = sorted.len().checked_sub(1)?;
            sorted.get(((last as f64) * q).round() as usize).copied()
        };
        MetricsSnapshot {
            calls: inner.calls,
            errors: inner.errors,
            last_error: inner.last_error.clone(),
            last_failed: inner.last_failed,
            p50_micros: at(0.50),
            p99_micros: at(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_over_the_window() {
        let metrics = Metrics::default();
        assert_eq!(metrics.snapshot().p50_micros, None);
        for micros in 1..=100 {
            metrics.record(Duration::from_micros(micros), None);
        }
        metrics.record(Duration::from_micros(5), Some("trap".into()));
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.calls, 101);
        assert_eq!(snapshot.errors, 1);
        assert_eq!(snapshot.last_error.as_deref(), Some("trap"));
        assert_eq!(snapshot.p50_micros, Some(50));
        assert_eq!(snapshot.p99_micros, Some(99));
        for _ in 0..2 * WINDOW {
            metrics.record(Duration::from_micros(7), None);
        }
        assert_eq!(metrics.snapshot().p99_micros, Some(7));
    }
}
