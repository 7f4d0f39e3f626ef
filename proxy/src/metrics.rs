//! The proxy's metrics, for Prometheus (`prometheus-client`), registered
//! by the node agent into its registry ([`Metrics::register`]) through
//! [`ProxyConfig::metrics`](crate::ProxyConfig::metrics):
//!
//! * `skiff_proxy_requests_total{namespace, service, code}`: HTTP requests
//!   to a Service (through its ClusterIP or node port, or an Ingress that
//!   names it) answered, by status: the endpoint's, or the proxy's own 503
//!   (no endpoint took it), 403 (NetworkPolicy) or 502.
//! * `skiff_proxy_upstream_duration_seconds{namespace, service}`: from
//!   sending a request to an endpoint to its response head (endpoints
//!   that refused it first included).
//! * `skiff_proxy_connections_total{namespace, service}`: connections
//!   spliced as bytes to an endpoint (TCP, and undeclared protocols that
//!   did not start as HTTP).
//!
//! Labels are the Service's namespace and name, never a path or an
//! address. Each frontend resolves its handles on its first request
//! ([`crate::table::Frontend`] keeps them), so a request costs no label
//! lookup but for statuses other than 200. A deleted Service's series stay
//! until the agent restarts (there are as many as Services, not requests).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upstream-duration buckets, in seconds.
const UPSTREAM_BUCKETS: [f64; 15] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    namespace: Arc<str>,
    service: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    #[prometheus(flatten)]
    service: ServiceLabels,
    code: u16,
}

fn upstream_histogram() -> Histogram {
    Histogram::new(UPSTREAM_BUCKETS)
}

/// The proxy's metrics. Cheap to clone; [`Metrics::default`] counts
/// without being served anywhere.
#[derive(Clone)]
pub struct Metrics {
    requests: Family<Answered, Counter>,
    upstream: Family<ServiceLabels, Histogram>,
    connections: Family<ServiceLabels, Counter>,
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
            upstream: Family::new_with_constructor(upstream_histogram as fn() -> Histogram),
            connections: Family::default(),
        }
    }
}

impl Metrics {
    /// The proxy's metrics, registered into `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        registry.register(
            "skiff_proxy_requests",
            "HTTP requests the service proxy answered, by Service namespace, name and HTTP status code",
            metrics.requests.clone(),
        );
        registry.register(
            "skiff_proxy_upstream_duration_seconds",
            "Time from sending a request to a Service's endpoints to the response head, in seconds",
            metrics.upstream.clone(),
        );
        registry.register(
            "skiff_proxy_connections",
            "Connections the service proxy spliced to a Service's endpoints as bytes",
            metrics.connections.clone(),
        );
        metrics
    }

    /// The handles of Service `namespace/name`.
    pub(crate) fn service(&self, namespace: &str, name: &str) -> ServiceMetrics {
        let labels = ServiceLabels {
            namespace: namespace.into(),
            service: name.into(),
        };
        ServiceMetrics {
            ok: self.requests.get_or_create_owned(&Answered {
                service: labels.clone(),
                code: 200,
            }),
            others: Mutex::default(),
            upstream: self.upstream.get_or_create_owned(&labels),
            connections: self.connections.get_or_create_owned(&labels),
            requests: self.requests.clone(),
            labels,
        }
    }
}

/// One Service's handles, resolved once per frontend.
pub(crate) struct ServiceMetrics {
    labels: ServiceLabels,
    ok: Counter,
    others: Mutex<Vec<(u16, Counter)>>,
    upstream: Histogram,
    connections: Counter,
    requests: Family<Answered, Counter>,
}

impl std::fmt::Debug for ServiceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceMetrics")
            .field("namespace", &self.labels.namespace)
            .field("service", &self.labels.service)
            .finish_non_exhaustive()
    }
}

impl ServiceMetrics {
    /// A request was answered with `code`.
    pub(crate) fn answered(&self, code: u16) {
        if code == 200 {
            self.ok.inc();
            return;
        }
        let mut others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counter)) = others.iter().find(|(c, _)| *c == code) {
            counter.inc();
            return;
        }
        let counter = self.requests.get_or_create_owned(&Answered {
            service: self.labels.clone(),
            code,
        });
        counter.inc();
        others.push((code, counter));
    }

    /// An endpoint answered after `took`.
    pub(crate) fn upstream(&self, took: Duration) {
        self.upstream.observe(took.as_secs_f64());
    }

    /// A connection was spliced to an endpoint.
    pub(crate) fn connected(&self) {
        self.connections.inc();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_service_counts_by_status() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let web = metrics.service("default", "web");
        web.answered(200);
        web.answered(503);
        web.answered(503);
        web.upstream(Duration::from_millis(3));
        web.connected();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"skiff_proxy_requests_total{namespace="default",service="web",code="200"} 1"#,
            r#"skiff_proxy_requests_total{namespace="default",service="web",code="503"} 2"#,
            r#"skiff_proxy_upstream_duration_seconds_count{namespace="default",service="web"} 1"#,
            r#"skiff_proxy_connections_total{namespace="default",service="web"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
