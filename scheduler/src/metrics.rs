//! The scheduler's Prometheus metrics, under kube-scheduler's names and
//! labels so that its dashboards and alerts read skiff's scheduler as
//! they stand. The process keeps one [`prometheus_client`] registry,
//! served by the API server on `/metrics`; [`Metrics::register`] adds
//! these to it.
//!
//! * `scheduler_schedule_attempts_total{result, profile}`: scheduling
//!   attempts by outcome: `scheduled` (bound), `unschedulable` (no node
//!   fit) or `error` (a plugin failed, or the binding did); `profile` is
//!   the profile's scheduler name.
//! * `scheduler_scheduling_attempt_duration_seconds{result, profile}`:
//!   one attempt, from the start of its cycle to the end of its binding
//!   (or to the failure), kube-scheduler's buckets.
//! * `scheduler_pod_scheduling_sli_duration_seconds{attempts}`: from the
//!   time a pod entered the queue to its binding, over however many
//!   attempts it took (`attempts` is their number; 10 or more are
//!   reported as `10+`, to keep the label's values few).
//! * `scheduler_pending_pods{queue}`: pods waiting, by queue: `active`,
//!   `backoff`, `unschedulable`, and `gated` (pods this scheduler would
//!   serve that carry scheduling gates). Read from the running
//!   scheduler's queue when scraped; all four are 0 while none runs (on
//!   a server that does not hold the controllers' lease).
//!
//! One [`Metrics`] outlives the schedulers it is given to: `skiff server`
//! starts a new [`Scheduler`](crate::Scheduler) each time it wins the
//! lease, and hands each the same one.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How an attempt ended, as kube-scheduler's `result` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Scheduled,
    Unschedulable,
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Scheduled => "scheduled",
            Outcome::Unschedulable => "unschedulable",
            Outcome::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Attempt {
    result: &'static str,
    profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Attempts {
    attempts: String,
}

/// The attempts label: the number, or `10+`.
fn attempts_label(attempts: u32) -> String {
    if attempts >= 10 {
        "10+".to_string()
    } else {
        attempts.to_string()
    }
}

/// How many pods wait in each queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingPods {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub gated: usize,
}

/// What can say how many pods are pending: the running scheduler.
pub(crate) trait PendingSource: Send + Sync {
    fn pending(&self) -> PendingPods;
}

type Source = Arc<Mutex<Option<Weak<dyn PendingSource>>>>;

/// The scheduler's metrics. Cheap to clone; clones share their values.
#[derive(Clone)]
pub struct Metrics {
    attempts: Family<Attempt, Counter>,
    attempt_duration: Family<Attempt, Histogram>,
    sli_duration: Family<Attempts, Histogram>,
    /// The scheduler running now, if any.
    source: Source,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            attempts: Family::default(),
            attempt_duration: Family::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.001, 2.0, 15))) as fn() -> Histogram,
            ),
            sli_duration: Family::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.01, 2.0, 20))) as fn() -> Histogram,
            ),
            source: Arc::default(),
        }
    }
}

impl Metrics {
    /// Adds the scheduler's metrics to `registry`. Once per registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
            self.attempts.clone(),
        );
        registry.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            self.attempt_duration.clone(),
        );
        registry.register(
            "scheduler_pod_scheduling_sli_duration_seconds",
            "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue and might involve multiple scheduling attempts.",
            self.sli_duration.clone(),
        );
        registry.register_collector(Box::new(Pending(self.source.clone())));
    }

    /// Records one attempt that ended as `outcome` after `took`.
    pub(crate) fn attempt(&self, outcome: Outcome, profile: &str, took: Duration) {
        let labels = Attempt {
            result: outcome.label(),
            profile: profile.to_string(),
        };
        self.attempts.get_or_create(&labels).inc();
        self.attempt_duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Records a pod bound `took` after it entered the queue, at its
    /// `attempts`th attempt.
    pub(crate) fn scheduled(&self, attempts: u32, took: Duration) {
        let labels = Attempts {
            attempts: attempts_label(attempts),
        };
        self.sli_duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Reads pending pods from `source` from now on.
    pub(crate) fn follow(&self, source: Weak<dyn PendingSource>) {
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = Some(source);
    }

    /// The pending pods as a scrape reads them.
    pub fn pending(&self) -> PendingPods {
        read(&self.source)
    }
}

fn read(source: &Source) -> PendingPods {
    let source = source.lock().unwrap_or_else(PoisonError::into_inner).clone();
    source
        .and_then(|weak| weak.upgrade())
        .map(|running| running.pending())
        .unwrap_or_default()
}

/// `scheduler_pending_pods`, read when scraped.
struct Pending(Source);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Queue {
    queue: &'static str,
}

impl Collector for Pending {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let pending = read(&self.0);
        let mut metric = encoder.encode_descriptor(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the scheduler never attempted to schedule because they are gated.",
            None,
            MetricType::Gauge,
        )?;
        for (queue, count) in [
            ("active", pending.active),
            ("backoff", pending.backoff),
            ("unschedulable", pending.unschedulable),
            ("gated", pending.gated),
        ] {
            let gauge = ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX));
            gauge.encode(metric.encode_family(&Queue { queue })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The line of `metric` whose labels include all of `labels`, and its value.
    fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
        text.lines()
            .filter(|line| line.starts_with(&format!("{metric}{{")) || line.starts_with(&format!("{metric} ")))
            .find(|line| labels.iter().all(|label| line.contains(label)))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }

    struct Fixed(PendingPods);

    impl PendingSource for Fixed {
        fn pending(&self) -> PendingPods {
            self.0
        }
    }

    #[test]
    fn a_scrape_shows_attempts_latencies_and_the_queues() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.attempt(Outcome::Scheduled, "default-scheduler", Duration::from_millis(3));
        metrics.attempt(Outcome::Unschedulable, "default-scheduler", Duration::from_millis(1));
        metrics.attempt(Outcome::Unschedulable, "default-scheduler", Duration::from_millis(1));
        metrics.scheduled(2, Duration::from_millis(1500));
        metrics.scheduled(40, Duration::from_secs(60));

        let scrape = |registry: &Registry| {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
            text
        };
        let text = scrape(&registry);
        let unschedulable = ["result=\"unschedulable\"", "profile=\"default-scheduler\""];
        assert_eq!(
            sample(&text, "scheduler_schedule_attempts_total", &unschedulable),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "scheduler_scheduling_attempt_duration_seconds_count",
                &["result=\"scheduled\""]
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "scheduler_pod_scheduling_sli_duration_seconds_bucket",
                &["attempts=\"2\"", "le=\"2.56\""]
            ),
            Some(1.0),
            "{text}"
        );
        assert!(text.contains("attempts=\"10+\""), "{text}");
        // No scheduler running: every queue reads 0.
        assert_eq!(
            sample(&text, "scheduler_pending_pods", &["queue=\"active\""]),
            Some(0.0),
            "{text}"
        );

        let running: Arc<dyn PendingSource> = Arc::new(Fixed(PendingPods {
            active: 1,
            backoff: 2,
            unschedulable: 3,
            gated: 4,
        }));
        metrics.follow(Arc::downgrade(&running));
        let text = scrape(&registry);
        for (queue, count) in [
            ("active", 1.0),
            ("backoff", 2.0),
            ("unschedulable", 3.0),
            ("gated", 4.0),
        ] {
            assert_eq!(
                sample(&text, "scheduler_pending_pods", &[&format!("queue=\"{queue}\"")]),
                Some(count),
                "{text}"
            );
        }
        drop(running);
        assert_eq!(
            metrics.pending(),
            PendingPods::default(),
            "a stopped scheduler has none"
        );
    }
}
