//! The Wasm engine's metrics, for Prometheus (`prometheus-client`),
//! registered by the node agent into its registry ([`Metrics::register`]):
//!
//! * `skiff_wasm_requests_total{namespace, pod, code}`: requests a
//!   service answered, by HTTP status (a failed instance counts with the
//!   status the agent answers for it, [`crate::http::failure_status`]).
//! * `skiff_wasm_request_duration_seconds{namespace, pod}`: from the
//!   request's arrival to its response head.
//! * `skiff_wasm_instantiation_duration_seconds{namespace, pod}`: making
//!   the request's store and instance, before the guest's handler runs.
//! * `skiff_wasm_requests_in_flight{namespace, pod}`: requests not yet
//!   answered.
//! * `skiff_wasm_instances{namespace, pod}`: instances alive, including
//!   those still writing a body after they answered.
//! * `skiff_wasm_compile_duration_seconds`: compiling a component (not
//!   finding it compiled, in memory or on disk).
//!
//! The crate knows nothing of pods: the agent names each HTTP service by
//! its pod when it makes its [`Environment`](crate::Environment)
//! ([`Metrics::service`]), and the service's [`ServiceMetrics`] holds
//! every handle the request path needs, so serving a request costs a few
//! atomic operations and two histogram observations, no label lookup (but
//! for statuses other than 200, looked up once per service and status).
//! The same handle says how many requests the service answered and has in
//! flight ([`ServiceMetrics::requests`]), for readers other than
//! Prometheus (the agent's autoscaling figures). A pod's series go when
//! the last handle for it does (its containers stopped and their
//! instances ended), so pods that come and go leave no series behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Request-duration buckets, in seconds: Wasm requests take from tens of
/// microseconds to the request timeout.
const REQUEST_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Instantiation buckets, in seconds: microseconds with the pooling
/// allocator and copy-on-write images, more when the pool is cold.
const INSTANTIATION_BUCKETS: [f64; 12] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.1,
];

/// Compile buckets, in seconds.
const COMPILE_BUCKETS: [f64; 11] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Which pod's service a series is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodLabels {
    namespace: Arc<str>,
    pod: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    #[prometheus(flatten)]
    pod: PodLabels,
    code: u16,
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn instantiation_histogram() -> Histogram {
    Histogram::new(INSTANTIATION_BUCKETS)
}

/// The engine's metrics. Cheap to clone; [`Metrics::default`] counts
/// without being served anywhere.
#[derive(Clone)]
pub struct Metrics {
    requests: Family<Answered, Counter>,
    durations: Family<PodLabels, Histogram>,
    instantiations: Family<PodLabels, Histogram>,
    in_flight: Family<PodLabels, Gauge>,
    instances: Family<PodLabels, Gauge>,
    compiles: Histogram,
    /// The live handle of each pod's service, shared by its containers'
    /// runs while more than one is alive.
    services: Arc<Mutex<HashMap<PodLabels, Weak<Service>>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(request_histogram as fn() -> Histogram),
            instantiations: Family::new_with_constructor(instantiation_histogram as fn() -> Histogram),
            in_flight: Family::default(),
            instances: Family::default(),
            compiles: Histogram::new(COMPILE_BUCKETS),
            services: Arc::default(),
        }
    }
}

impl Metrics {
    /// The engine's metrics, registered into `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        registry.register(
            "skiff_wasm_requests",
            "Requests answered by Wasm HTTP services, by namespace, pod and HTTP status code",
            metrics.requests.clone(),
        );
        registry.register(
            "skiff_wasm_request_duration_seconds",
            "Time from a request's arrival at a Wasm HTTP service to its response head, in seconds",
            metrics.durations.clone(),
        );
        registry.register(
            "skiff_wasm_instantiation_duration_seconds",
            "Time to make a request's Wasm instance (store and instantiation), in seconds",
            metrics.instantiations.clone(),
        );
        registry.register(
            "skiff_wasm_requests_in_flight",
            "Requests a Wasm HTTP service has received and not yet answered",
            metrics.in_flight.clone(),
        );
        registry.register(
            "skiff_wasm_instances",
            "Wasm instances alive, by the pod whose service made them",
            metrics.instances.clone(),
        );
        registry.register(
            "skiff_wasm_compile_duration_seconds",
            "Time to compile a Wasm component to native code, in seconds (components found compiled are not counted)",
            metrics.compiles.clone(),
        );
        metrics
    }

    /// The handle of the HTTP service of pod `namespace/pod`: the one its
    /// earlier containers still hold, if any, else a new one.
    pub fn service(&self, namespace: &str, pod: &str) -> ServiceMetrics {
        let labels = PodLabels {
            namespace: namespace.into(),
            pod: pod.into(),
        };
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = services.get(&labels).and_then(Weak::upgrade) {
            return ServiceMetrics(live);
        }
        let service = Arc::new(Service {
            ok: self.requests.get_or_create_owned(&Answered {
                pod: labels.clone(),
                code: 200,
            }),
            others: Mutex::default(),
            duration: self.durations.get_or_create_owned(&labels),
            instantiation: self.instantiations.get_or_create_owned(&labels),
            in_flight: self.in_flight.get_or_create_owned(&labels),
            instances: self.instances.get_or_create_owned(&labels),
            answered: AtomicU64::new(0),
            metrics: self.clone(),
            labels: labels.clone(),
        });
        services.insert(labels, Arc::downgrade(&service));
        ServiceMetrics(service)
    }

    /// A component was compiled in `took`.
    pub(crate) fn compiled(&self, took: Duration) {
        self.compiles.observe(took.as_secs_f64());
    }
}

/// One pod's HTTP service, as its requests count themselves.
struct Service {
    labels: PodLabels,
    /// Answered with 200: the status nearly all are.
    ok: Counter,
    /// Answered with another status, each looked up once.
    others: Mutex<Vec<(u16, Counter)>>,
    duration: Histogram,
    instantiation: Histogram,
    in_flight: Gauge,
    instances: Gauge,
    /// Requests answered, whatever the status.
    answered: AtomicU64,
    metrics: Metrics,
}

impl Drop for Service {
    fn drop(&mut self) {
        let mut services = self.metrics.services.lock().unwrap_or_else(PoisonError::into_inner);
        // A newer handle for the same pod (made after this one's last
        // holder let go) keeps the series.
        let current = services
            .get(&self.labels)
            .is_some_and(|weak| std::ptr::eq(weak.as_ptr(), self));
        if !current {
            return;
        }
        services.remove(&self.labels);
        let metrics = &self.metrics;
        let others = self.others.get_mut().unwrap_or_else(PoisonError::into_inner);
        for code in std::iter::once(200).chain(others.iter().map(|(code, _)| *code)) {
            metrics.requests.remove(&Answered {
                pod: self.labels.clone(),
                code,
            });
        }
        metrics.durations.remove(&self.labels);
        metrics.instantiations.remove(&self.labels);
        metrics.in_flight.remove(&self.labels);
        metrics.instances.remove(&self.labels);
    }
}

/// A pod's HTTP service's metrics, held by its containers'
/// [`Environment`](crate::Environment)s. Cheap to clone.
#[derive(Clone)]
pub struct ServiceMetrics(Arc<Service>);

impl std::fmt::Debug for ServiceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceMetrics")
            .field("namespace", &self.0.labels.namespace)
            .field("pod", &self.0.labels.pod)
            .finish_non_exhaustive()
    }
}

/// What a service has served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    /// Requests answered since the handle was made (the pod's first HTTP
    /// container started, or a later one after all earlier ones ended):
    /// a counter, whose rate is the requests per second.
    pub total: u64,
    /// Requests received and not yet answered.
    pub in_flight: u64,
}

impl ServiceMetrics {
    /// What the service has served so far.
    pub fn requests(&self) -> Requests {
        Requests {
            total: self.0.answered.load(Ordering::Relaxed),
            in_flight: u64::try_from(self.0.in_flight.get()).unwrap_or(0),
        }
    }

    /// A request arrived; it counts when the returned guard is answered,
    /// or (as a failure) dropped.
    pub(crate) fn arrived(&self) -> InFlight {
        self.0.in_flight.inc();
        InFlight {
            service: self.0.clone(),
            since: Instant::now(),
            answered: false,
        }
    }

    /// A request's instance took `took` to make.
    pub(crate) fn instantiated(&self, took: Duration) {
        self.0.instantiation.observe(took.as_secs_f64());
    }

    /// An instance is alive until the guard is dropped.
    pub(crate) fn instance(&self) -> Alive {
        self.0.instances.inc();
        Alive(self.0.instances.clone())
    }
}

/// A request being served.
pub(crate) struct InFlight {
    service: Arc<Service>,
    since: Instant,
    answered: bool,
}

impl InFlight {
    /// The request was answered with `code`.
    pub(crate) fn answered(mut self, code: u16) {
        self.count(code);
    }

    fn count(&mut self, code: u16) {
        if std::mem::replace(&mut self.answered, true) {
            return;
        }
        let service = &self.service;
        service.in_flight.dec();
        service.answered.fetch_add(1, Ordering::Relaxed);
        service.duration.observe(self.since.elapsed().as_secs_f64());
        if code == 200 {
            service.ok.inc();
            return;
        }
        let mut others = service.others.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counter)) = others.iter().find(|(c, _)| *c == code) {
            counter.inc();
            return;
        }
        let counter = service.metrics.requests.get_or_create_owned(&Answered {
            pod: service.labels.clone(),
            code,
        });
        counter.inc();
        others.push((code, counter));
    }
}

impl Drop for InFlight {
    /// A request given up before it was answered (its caller went away)
    /// counts as a 499, as proxies log a client that closed the request.
    fn drop(&mut self) {
        self.count(499);
    }
}

/// An instance alive.
pub(crate) struct Alive(Gauge);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn encoded(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn a_pods_series_count_and_go_with_its_last_handle() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let first = metrics.service("default", "web");
        let second = metrics.service("default", "web");
        first.arrived().answered(200);
        second.arrived().answered(404);
        let pending = first.arrived();
        drop(first.arrived());
        let alive = second.instance();
        second.instantiated(Duration::from_micros(30));
        assert_eq!(second.requests(), Requests { total: 3, in_flight: 1 });
        let text = encoded(&registry);
        for line in [
            r#"skiff_wasm_requests_total{namespace="default",pod="web",code="200"} 1"#,
            r#"skiff_wasm_requests_total{namespace="default",pod="web",code="404"} 1"#,
            r#"skiff_wasm_requests_total{namespace="default",pod="web",code="499"} 1"#,
            r#"skiff_wasm_requests_in_flight{namespace="default",pod="web"} 1"#,
            r#"skiff_wasm_instances{namespace="default",pod="web"} 1"#,
            r#"skiff_wasm_request_duration_seconds_count{namespace="default",pod="web"} 3"#,
            r#"skiff_wasm_instantiation_duration_seconds_count{namespace="default",pod="web"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        pending.answered(200);
        drop(alive);
        drop(first);
        assert!(encoded(&registry).contains(r#"pod="web""#), "one handle is left");
        drop(second);
        let text = encoded(&registry);
        assert!(!text.contains(r#"pod="web""#), "{text}");
        // A new run of the pod starts afresh.
        assert_eq!(metrics.service("default", "web").requests(), Requests::default());
    }
}
