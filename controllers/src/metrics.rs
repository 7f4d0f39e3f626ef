//! The controllers' Prometheus metrics, under client-go's work-queue
//! names (`workqueue_*{name}`, as kube-controller-manager serves them) so
//! that its dashboards and alerts read skiff's controllers as they stand.
//! The process keeps one [`prometheus_client`] registry, served by the
//! API server on `/metrics`; [`Metrics::register`] adds these to it.
//! `name` is the controller's (`replicaset`, `deployment`, `job`, …), so
//! the label has one value per controller.
//!
//! skiff's controllers are kube-runtime `Controller`s, which have no
//! client-go work queue: a request to reconcile an object (a watch event,
//! a requeue, a retry) waits in kube-runtime's scheduler until it is due,
//! then starts at once (concurrency is unbounded), unless the same
//! object's reconcile is still running, when it waits for that one.
//! Nothing of that scheduler can be seen from outside, so the metrics
//! are taken around each reconcile (`metered` wraps the reconcile
//! function each controller hands to `Controller::run`) and mean:
//!
//! * `workqueue_adds_total`: reconciles started, one per object taken
//!   from the queue (kube-runtime merges requests for an object that
//!   is already waiting, as client-go's queue does);
//! * `workqueue_retries_total`: reconciles that failed, each of which
//!   the error policy (`retry_later`) retries;
//! * `workqueue_work_duration_seconds`: how long each reconcile took;
//! * `workqueue_depth`: reconciles running now. With every due object
//!   started at once, a controller that falls behind shows it here, as
//!   in-flight work, rather than as a backlog waiting in a queue;
//! * `workqueue_queue_duration_seconds`: how late a retry started after
//!   it fell due (the failure plus the error policy's fixed delay). Only
//!   retries are timed: for any other request, when it was made is not
//!   known. An object whose retry was overtaken by a watch event (started
//!   before it was due) is not timed either.
//!
//! Buckets are client-go's (10 ns to 10 s, by tens). The controllers that
//! are not kube-runtime `Controller`s (the node lifecycle controller, the
//! garbage collector, the APIService registrar) run their own loops and
//! have no work-queue metrics.
//!
//! [`start`](crate::start) runs every controller inside a
//! [`scope`](Metrics::scope) of the [`Metrics`] it is given, where
//! `metered` picks it up, so the controllers' own signatures need not
//! carry it; a controller run outside one records into metrics no one
//! reads.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::runtime::controller::Action;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Retries whose due time is remembered, at most; past it the oldest
/// half is forgotten (their objects were most likely deleted).
const REMEMBERED_RETRIES: usize = 4096;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Name {
    name: &'static str,
}

fn client_go_buckets() -> Histogram {
    Histogram::new(exponential_buckets(10e-9, 10.0, 10))
}

/// The controllers' metrics. Cheap to clone; clones share their values.
#[derive(Clone)]
pub struct Metrics {
    depth: Family<Name, Gauge>,
    adds: Family<Name, Counter>,
    retries: Family<Name, Counter>,
    queue_duration: Family<Name, Histogram>,
    work_duration: Family<Name, Histogram>,
    /// (controller, namespace/name) → when its retry falls due.
    retries_due: Arc<Mutex<HashMap<(&'static str, String), Instant>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            depth: Family::default(),
            adds: Family::default(),
            retries: Family::default(),
            queue_duration: Family::new_with_constructor(client_go_buckets as fn() -> Histogram),
            work_duration: Family::new_with_constructor(client_go_buckets as fn() -> Histogram),
            retries_due: Arc::default(),
        }
    }
}

tokio::task_local! {
    static CURRENT: Metrics;
}

impl Metrics {
    /// Adds the controllers' metrics to `registry`. Once per registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "workqueue_depth",
            "Current depth of workqueue (here: reconciles running)",
            self.depth.clone(),
        );
        registry.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            self.adds.clone(),
        );
        registry.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            self.retries.clone(),
        );
        registry.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested (here: retries only)",
            self.queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            self.work_duration.clone(),
        );
    }

    /// Runs `future` with these metrics as the ones the controllers'
    /// reconciles record into.
    pub fn scope<F: Future>(&self, future: F) -> tokio::task::futures::TaskLocalFuture<Metrics, F> {
        CURRENT.scope(self.clone(), future)
    }

    /// The metrics of the scope this runs in, or ones no one reads.
    fn current() -> Metrics {
        CURRENT.try_with(Metrics::clone).unwrap_or_default()
    }

    /// A reconcile of `object` by `controller` starts.
    fn started(&self, controller: &'static str, object: &str, now: Instant) -> Running {
        let name = Name { name: controller };
        self.adds.get_or_create(&name).inc();
        let due = self
            .retries_due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(controller, object.to_string()));
        // Created with the first reconcile, so the series is there (at 0)
        // before any retry.
        let queued = self.queue_duration.get_or_create(&name);
        if let Some(late) = due.and_then(|due| now.checked_duration_since(due)) {
            queued.observe(late.as_secs_f64());
        }
        drop(queued);
        let depth = self.depth.get_or_create(&name).clone();
        depth.inc();
        Running {
            depth,
            started: now,
            name,
        }
    }

    /// That reconcile ended at `now`; `failed`, it is retried after
    /// `retry_after`.
    fn finished(&self, running: &Running, object: String, failed: bool, now: Instant, retry_after: Duration) {
        self.work_duration
            .get_or_create(&running.name)
            .observe(now.saturating_duration_since(running.started).as_secs_f64());
        if !failed {
            return;
        }
        self.retries.get_or_create(&running.name).inc();
        let mut due = self.retries_due.lock().unwrap_or_else(PoisonError::into_inner);
        if due.len() >= REMEMBERED_RETRIES {
            let mut oldest: Vec<Instant> = due.values().copied().collect();
            oldest.sort_unstable();
            let cut = oldest[oldest.len() / 2];
            due.retain(|_, at| *at > cut);
        }
        due.insert((running.name.name, object), now + retry_after);
    }
}

/// A reconcile in progress: counted in `workqueue_depth` until dropped
/// (also when the controller stops and cancels it).
struct Running {
    depth: Gauge,
    started: Instant,
    name: Name,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.depth.dec();
    }
}

/// `namespace/name` of an object.
fn object_key<K: kube::Resource>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// `reconcile`, counted and timed as `controller`'s work (see the module
/// documentation) in the metrics of the current [`Metrics::scope`].
pub(crate) fn metered<K, C, E, Fut>(
    controller: &'static str,
    mut reconcile: impl FnMut(Arc<K>, Arc<C>) -> Fut,
) -> impl FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, E>>
where
    K: kube::Resource,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
{
    let metrics = Metrics::current();
    move |object, context| {
        let key = object_key(object.as_ref());
        let running = metrics.started(controller, &key, Instant::now());
        let work = reconcile(object, context);
        let metrics = metrics.clone();
        async move {
            let result = work.await;
            metrics.finished(&running, key, result.is_err(), Instant::now(), crate::RETRY_AFTER);
            result
        }
        .boxed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    /// The line of `metric` whose labels include all of `labels`, and its value.
    fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
        text.lines()
            .filter(|line| line.starts_with(&format!("{metric}{{")))
            .find(|line| labels.iter().all(|label| line.contains(label)))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[tokio::test]
    async fn reconciles_are_counted_timed_and_retried_in_a_scrape() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let object = Arc::new(ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("a".into()),
                namespace: Some("d".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        let (release, held) = tokio::sync::oneshot::channel::<bool>();
        let held = Arc::new(Mutex::new(Some(held)));
        let mut reconcile = metrics
            .scope(async {
                metered("replicaset", move |_: Arc<ConfigMap>, _: Arc<()>| {
                    let held = held.lock().unwrap().take();
                    async move {
                        let fail = match held {
                            Some(held) => held.await.unwrap(),
                            None => false,
                        };
                        if fail {
                            Err(std::fmt::Error)
                        } else {
                            Ok(Action::await_change())
                        }
                    }
                })
            })
            .await;

        // Running: in the depth.
        let first = tokio::spawn(reconcile(object.clone(), Arc::new(())));
        let name = ["name=\"replicaset\""];
        skiff_testing::eventually(Duration::from_secs(10), "the reconcile to start", || async {
            (sample(&scrape(&registry), "workqueue_depth", &name) == Some(1.0)).then_some(())
        })
        .await
        .unwrap();
        // It fails: a retry, due two seconds later.
        release.send(true).unwrap();
        assert!(first.await.unwrap().is_err());
        let text = scrape(&registry);
        assert_eq!(sample(&text, "workqueue_depth", &name), Some(0.0), "{text}");
        assert_eq!(sample(&text, "workqueue_adds_total", &name), Some(1.0), "{text}");
        assert_eq!(sample(&text, "workqueue_retries_total", &name), Some(1.0), "{text}");
        assert_eq!(
            sample(&text, "workqueue_work_duration_seconds_count", &name),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "workqueue_queue_duration_seconds_count", &name),
            Some(0.0),
            "{text}"
        );

        // The retry is timed from when it fell due.
        let now = Instant::now() + crate::RETRY_AFTER + Duration::from_millis(5);
        let running = metrics.started("replicaset", "d/a", now);
        metrics.finished(&running, "d/a".into(), false, now, crate::RETRY_AFTER);
        drop(running);
        let text = scrape(&registry);
        assert_eq!(
            sample(&text, "workqueue_queue_duration_seconds_count", &name),
            Some(1.0),
            "{text}"
        );
        assert_eq!(sample(&text, "workqueue_adds_total", &name), Some(2.0), "{text}");
        assert_eq!(sample(&text, "workqueue_retries_total", &name), Some(1.0), "{text}");
        assert!(metrics.retries_due.lock().unwrap().is_empty());

        // A reconcile that succeeds is no retry.
        assert!(reconcile(object, Arc::new(())).await.is_ok());
        let text = scrape(&registry);
        assert_eq!(sample(&text, "workqueue_adds_total", &name), Some(3.0), "{text}");
        assert_eq!(sample(&text, "workqueue_retries_total", &name), Some(1.0), "{text}");
    }

    #[test]
    fn remembered_retries_stay_bounded() {
        let metrics = Metrics::default();
        let now = Instant::now();
        for i in 0..(REMEMBERED_RETRIES + 10) {
            let running = metrics.started("job", "x", now);
            let at = now + Duration::from_millis(u64::try_from(i).unwrap());
            metrics.finished(&running, format!("d/{i}"), true, at, Duration::ZERO);
        }
        assert!(metrics.retries_due.lock().unwrap().len() <= REMEMBERED_RETRIES);
    }
}
