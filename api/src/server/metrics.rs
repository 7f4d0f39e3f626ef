//! The API server's metrics, served on `/metrics` in the OpenMetrics text
//! format (which Prometheus scrapes), under kube-apiserver's names and
//! labels so that dashboards and alerts written for it keep working:
//!
//! * `apiserver_request_total{verb, dry_run, group, version, resource,
//!   subresource, scope, component, code}`: every request, once answered.
//! * `apiserver_request_duration_seconds{verb, dry_run, group, version,
//!   resource, subresource, scope, component}`: the time to the response
//!   head, kube-apiserver's buckets; long-running requests (watches and
//!   the streaming subresources) are left out, as there.
//! * `apiserver_longrunning_requests{verb, group, version, resource,
//!   subresource, scope, component}`: those open now (watch count).
//! * `apiserver_current_inflight_requests{request_kind}`: `readOnly` and
//!   `mutating` requests holding a slot of the in-flight limit
//!   ([`super::inflight`]) now, read when scraped (kube-apiserver reports
//!   the highest number over the last second instead).
//! * `apiserver_registered_watchers{group, version, kind}`: watches open
//!   now, by the kind they watch.
//! * `apiserver_watch_events_total{group, version, kind}` and
//!   `apiserver_watch_events_sizes{group, version, kind}`: the events
//!   sent to watchers, and their size in bytes (kube-apiserver's
//!   buckets, 1 KiB doubling to 128 KiB).
//!
//! The rest of the process registers its own metrics here too
//! ([`Metrics::register`]): `skiff server` adds the store's, the
//! scheduler's and the controllers', so one scrape of `/metrics` reads
//! them all.
//!
//! Labels come from the request line alone (`crate::request::parse`), so
//! their number stays bounded: no object names, no paths; a request for
//! no resource (discovery, health) has empty resource labels. The verb is
//! kube-apiserver's: `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`,
//! `APPLY`, `DELETE`, `CONNECT`. Encoding is `prometheus-client`'s.
//! Who may read `/metrics` is RBAC's (`nonResourceURLs`, the
//! `system:monitoring` role), as for any other path.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{Method, StatusCode, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::catalog::Resource;
use crate::request::{Verb, parse};

/// The path metrics are served on.
pub const PATH: &str = "/metrics";

/// kube-apiserver's request-duration buckets, in seconds.
const DURATION_BUCKETS: [f64; 22] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
    60.0,
];

/// What a request is, as the metrics label it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    verb: String,
    dry_run: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: String,
    component: String,
}

/// What a watch watches, as the watch metrics label it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Watched {
    group: String,
    version: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestKind {
    request_kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    #[prometheus(flatten)]
    kind: Kind,
    code: String,
}

/// The API server's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<Answered, Counter>,
    durations: Family<Kind, Histogram>,
    longrunning: Family<Kind, Gauge>,
    inflight: Family<RequestKind, Gauge>,
    watchers: Family<Watched, Gauge>,
    watch_events: Family<Watched, Counter>,
    watch_event_sizes: Family<Watched, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Answered, Counter>::default();
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
            requests.clone(),
        );
        let durations =
            Family::<Kind, Histogram>::new_with_constructor((|| Histogram::new(DURATION_BUCKETS)) as fn() -> Histogram);
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
            durations.clone(),
        );
        let longrunning = Family::<Kind, Gauge>::default();
        registry.register(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.",
            longrunning.clone(),
        );
        let inflight = Family::<RequestKind, Gauge>::default();
        registry.register(
            "apiserver_current_inflight_requests",
            "Number of requests of each kind holding a slot of this apiserver's inflight limit now.",
            inflight.clone(),
        );
        let watchers = Family::<Watched, Gauge>::default();
        registry.register(
            "apiserver_registered_watchers",
            "Number of currently registered watchers for a given resources",
            watchers.clone(),
        );
        let watch_events = Family::<Watched, Counter>::default();
        registry.register(
            "apiserver_watch_events",
            "Number of events sent in watch clients",
            watch_events.clone(),
        );
        let watch_event_sizes = Family::<Watched, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(1024.0, 2.0, 8))) as fn() -> Histogram,
        );
        registry.register(
            "apiserver_watch_events_sizes",
            "Watch event size distribution in bytes",
            watch_event_sizes.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            durations,
            longrunning,
            inflight,
            watchers,
            watch_events,
            watch_event_sizes,
        }
    }
}

impl Metrics {
    /// Lets `add` register more metrics (another component's) in the
    /// registry `/metrics` serves. Each metric once.
    pub fn register(&self, add: impl FnOnce(&mut Registry)) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        add(&mut registry);
    }

    /// A watch of `resource` starts. The returned handle counts the events
    /// sent to it, and the watch as a registered watcher until dropped.
    pub fn watch(&self, resource: &Resource) -> WatchSent {
        let watched = Watched {
            group: resource.group.clone(),
            version: resource.version.clone(),
            kind: resource.kind.clone(),
        };
        let watcher = self.watchers.get_or_create(&watched).clone();
        watcher.inc();
        WatchSent {
            events: self.watch_events.get_or_create(&watched).clone(),
            sizes: self.watch_event_sizes.get_or_create(&watched).clone(),
            watcher,
        }
    }

    /// Reads the in-flight limit's slots in use.
    fn read_inflight(&self, inflight: &super::inflight::InFlight) {
        let (read_only, mutating) = inflight.in_use();
        for (request_kind, used) in [("readOnly", read_only), ("mutating", mutating)] {
            self.inflight
                .get_or_create(&RequestKind { request_kind })
                .set(i64::try_from(used).unwrap_or(i64::MAX));
        }
    }

    /// Everything, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!(%error, "cannot encode the metrics");
        }
        text
    }
}

/// How a request is labelled, from its method, path and query.
fn kind(request: &Request) -> (Kind, bool) {
    let query = request.uri().query().unwrap_or_default();
    let flag = |name: &str| {
        form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == name && (v == "true" || v == "1" || v == "All"))
    };
    let watch = flag("watch");
    let dry_run = if flag("dryRun") { "All" } else { "" };
    let component = "apiserver".to_string();
    let Some(parsed) = parse(request.method(), request.uri().path(), watch) else {
        let verb = if request.method() == Method::HEAD {
            "GET"
        } else {
            request.method().as_str()
        };
        let kind = Kind {
            verb: verb.to_string(),
            dry_run: String::new(),
            group: String::new(),
            version: String::new(),
            resource: String::new(),
            subresource: String::new(),
            scope: String::new(),
            component,
        };
        return (kind, false);
    };
    let subresource = parsed.subresource.clone().unwrap_or_default();
    let streaming = super::inflight::LONG_RUNNING.contains(&subresource.as_str());
    let apply = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/apply-patch"));
    let verb = match parsed.verb {
        _ if streaming && subresource != "log" => "CONNECT",
        Verb::Get => "GET",
        Verb::List => "LIST",
        Verb::Watch => "WATCH",
        Verb::Create => "POST",
        Verb::Update => "PUT",
        Verb::Patch if apply => "APPLY",
        Verb::Patch => "PATCH",
        Verb::Delete | Verb::DeleteCollection => "DELETE",
    };
    let scope = match (&parsed.name, &parsed.namespace) {
        (Some(_), _) => "resource",
        (None, Some(_)) => "namespace",
        (None, None) => "cluster",
    };
    let longrunning = super::inflight::long_running(request.method(), request.uri().path(), request.uri().query());
    let kind = Kind {
        verb: verb.to_string(),
        dry_run: dry_run.to_string(),
        group: parsed.group,
        version: parsed.version,
        resource: parsed.resource,
        subresource,
        scope: scope.to_string(),
        component,
    };
    (kind, longrunning)
}

/// A request's span name ([`super::trace`]), from the same bounded labels
/// as the metrics: the verb, and the resource (`LIST pods`, `GET
/// pods/log`, `PATCH deployments.apps`), or the verb alone for a request
/// for no resource.
pub(super) fn span_name(request: &Request) -> String {
    let (kind, _) = kind(request);
    let mut name = kind.verb;
    if !kind.resource.is_empty() {
        name.push(' ');
        name.push_str(&kind.resource);
        if !kind.subresource.is_empty() {
            name.push('/');
            name.push_str(&kind.subresource);
        }
        if !kind.group.is_empty() {
            name.push('.');
            name.push_str(&kind.group);
        }
    }
    name
}

/// Counts and times every request; long-running ones are counted while
/// their response streams.
pub async fn layer(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let (kind, longrunning) = kind(&request);
    let started = Instant::now();
    let response = next.run(request).await;
    let answered = Answered {
        kind: kind.clone(),
        code: response.status().as_u16().to_string(),
    };
    metrics.requests.get_or_create(&answered).inc();
    if !longrunning {
        metrics
            .durations
            .get_or_create(&kind)
            .observe(started.elapsed().as_secs_f64());
        return response;
    }
    if !response.status().is_success() && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    // Open until the body is dropped: the stream ended or the client went.
    let open = Open(metrics.longrunning.get_or_create(&kind).clone());
    open.0.inc();
    let (parts, body) = response.into_parts();
    let body = Body::from_stream(body.into_data_stream().map(move |chunk| {
        let _open = &open;
        chunk
    }));
    Response::from_parts(parts, body)
}

/// One watch being served: counts the events sent to it, and counts it
/// out of the registered watchers when dropped.
#[derive(Debug)]
pub struct WatchSent {
    events: Counter,
    sizes: Histogram,
    watcher: Gauge,
}

impl WatchSent {
    /// An event of `bytes` bytes was sent.
    pub fn sent(&self, bytes: usize) {
        self.events.inc();
        self.sizes.observe(bytes as f64);
    }
}

impl Drop for WatchSent {
    fn drop(&mut self) {
        self.watcher.dec();
    }
}

/// A long-running request being served; dropping it counts it out.
struct Open(Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /metrics`.
pub async fn serve(State(server): State<Arc<super::ApiServer>>) -> Response {
    server.metrics.read_inflight(&server.inflight);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        server.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels(method: Method, uri: &str, content_type: Option<&str>) -> (Kind, bool) {
        let mut builder = http::Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        kind(&builder.body(Body::empty()).unwrap())
    }

    #[test]
    fn requests_are_labelled_as_kube_apiserver_labels_them() {
        let (list, long) = labels(Method::GET, "/api/v1/namespaces/a/pods?limit=5", None);
        assert_eq!(
            (list.verb.as_str(), list.resource.as_str(), list.scope.as_str()),
            ("LIST", "pods", "namespace")
        );
        assert!(!long);
        let (watch, long) = labels(Method::GET, "/apis/apps/v1/deployments?watch=true", None);
        assert_eq!(
            (watch.verb.as_str(), watch.group.as_str(), watch.scope.as_str()),
            ("WATCH", "apps", "cluster")
        );
        assert!(long);
        let (apply, _) = labels(
            Method::PATCH,
            "/api/v1/namespaces/a/configmaps/c?fieldManager=x&dryRun=All",
            Some("application/apply-patch+yaml"),
        );
        assert_eq!(
            (apply.verb.as_str(), apply.dry_run.as_str(), apply.scope.as_str()),
            ("APPLY", "All", "resource")
        );
        let (exec, long) = labels(Method::GET, "/api/v1/namespaces/a/pods/p/exec?command=ls", None);
        assert_eq!((exec.verb.as_str(), exec.subresource.as_str()), ("CONNECT", "exec"));
        assert!(long);
        let (health, long) = labels(Method::GET, "/readyz", None);
        assert_eq!((health.verb.as_str(), health.resource.as_str()), ("GET", ""));
        assert!(!long);
    }
}
