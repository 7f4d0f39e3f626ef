//! End to end: OpenTelemetry spans and W3C trace context.
//!
//! * A `skiff server --otlp-endpoint` posts its spans to a small OTLP/HTTP
//!   receiver the test runs (protobuf `ExportTraceServiceRequest`s on
//!   `/v1/traces`): API requests, store proposals, scheduling cycles, and
//!   a Wasm gateway request in the trace of the `traceparent` it came with.
//! * Without an exporter, a Wasm component's outgoing call carries the
//!   trace of the request that made it, to a server the test runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{any, post};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;
use support::{Cluster, import, until};

/// The trace the test's requests belong to, and the caller's span.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{CALLER_SPAN}-01")
}

/// A runtime for the test's servers, and an axum `router` served on
/// `ip:0`; the address it listens on.
fn serve(runtime: &tokio::runtime::Runtime, ip: &str, router: axum::Router) -> SocketAddr {
    let listener = runtime.block_on(tokio::net::TcpListener::bind((ip, 0))).unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, router).await });
    addr
}

/// One exported span, as the checks need it.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: String,
    parent_span_id: String,
}

/// An OTLP/HTTP receiver: what it was sent, flattened to spans.
fn receiver(runtime: &tokio::runtime::Runtime) -> (SocketAddr, Arc<Mutex<Vec<Exported>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let router = axum::Router::new()
        .route(
            "/v1/traces",
            post(
                |State(spans): State<Arc<Mutex<Vec<Exported>>>>, body: Bytes| async move {
                    let request = ExportTraceServiceRequest::decode(body).unwrap();
                    let mut spans = spans.lock().unwrap();
                    for resource in request.resource_spans {
                        let service = resource
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|a| a.key == "service.name")
                            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                                Value::StringValue(s) => Some(s.clone()),
                                _ => None,
                            })
                            .unwrap_or_default();
                        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                            spans.push(Exported {
                                service: service.clone(),
                                name: span.name,
                                trace_id: hex(&span.trace_id),
                                parent_span_id: hex(&span.parent_span_id),
                            });
                        }
                    }
                    // An empty ExportTraceServiceResponse.
                    Bytes::new()
                },
            ),
        )
        .with_state(spans.clone());
    (serve(runtime, "127.0.0.1", router), spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Pod of one Wasm component on port 8080, left to the scheduler.
fn wasm_pod(name: &str, image: &str, env: serde_json::Value) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": image, "env": env,
            "ports": [{"containerPort": 8080}]}]}})
    .to_string()
}

/// `GET path` from the pod at `ip:8080` with the test's `traceparent`:
/// the raw response.
fn traced_get(ip: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(format!("{ip}:8080")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\ntraceparent: {}\r\nConnection: close\r\n\r\n",
        traceparent()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// Starts the pod and waits until it is ready; its IP.
fn ready_pod(cluster: &Cluster, manifest: &str, name: &str) -> String {
    cluster.ok_with_input(&["apply", "-f", "-"], manifest);
    cluster.ok(&["wait", "--for=condition=Ready", &format!("pod/{name}"), "--timeout=60s"]);
    cluster.ok(&["get", "pod", name, "-o", "jsonpath={.status.podIP}"])
}

#[test]
fn spans_are_exported_to_an_otlp_endpoint() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (collector, spans) = receiver(&runtime);
    let endpoint = format!("http://{collector}");
    let cluster = Cluster::start_with(&[
        "--node-name",
        "traced",
        "--pod-cidr",
        "127.68.0.0",
        "--otlp-endpoint",
        &endpoint,
    ]);
    import(
        skiff_test_programs::HTTP_HELLO,
        "local/hello:1",
        &cluster.data.path().join("agent"),
    );
    cluster.ok(&["wait", "--for=condition=Ready", "node/traced", "--timeout=60s"]);
    let ip = ready_pod(
        &cluster,
        &wasm_pod("web", "local/hello:1", serde_json::json!([])),
        "web",
    );
    assert!(ip.starts_with("127.68."), "{ip}");
    let reply = traced_get(&ip, "/traced");
    assert!(reply.contains("path: /traced"), "{reply}");

    let wanted = |spans: &[Exported]| {
        let ours: Vec<&Exported> = spans.iter().filter(|s| s.service == "skiff-server").collect();
        let named = |f: &dyn Fn(&str) -> bool| ours.iter().any(|s| f(&s.name));
        let api = named(&|n| n == "POST pods" || n == "GET pods");
        let proposal = named(&|n| n == "store.propose");
        let cycle = named(&|n| n == "scheduler.cycle");
        let gateway = ours
            .iter()
            .any(|s| s.name == "gateway.request" && s.trace_id == TRACE_ID && s.parent_span_id == CALLER_SPAN);
        (api && proposal && cycle && gateway).then_some(())
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        until(Duration::from_secs(30), "the server's spans to be exported", || {
            wanted(&spans.lock().unwrap())
        })
    }));
    if outcome.is_err() {
        let names: Vec<(String, String)> = spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.service.clone(), s.name.clone()))
            .collect();
        panic!("not all the spans arrived; those that did: {names:?}");
    }
    // Names stay bounded: no object names or paths in them.
    for span in spans.lock().unwrap().iter() {
        assert!(!span.name.contains("web") && !span.name.contains("traced"), "{span:?}");
    }
}

#[test]
fn a_wasm_components_call_out_continues_the_trace_of_its_request() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The component's destination: records the traceparent of each call.
    let received = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    let record = received.clone();
    let router = axum::Router::new().fallback(any(move |headers: http::HeaderMap| {
        let record = record.clone();
        async move {
            let traceparent = headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            record.lock().unwrap().push(traceparent);
            "reached\n"
        }
    }));
    // Not 127.0.0.1, which is the pod's own address to the pod.
    let target = serve(&runtime, "127.0.0.2", router);

    let cluster = Cluster::start_with(&["--node-name", "calling", "--pod-cidr", "127.69.0.0"]);
    import(
        skiff_test_programs::WSTD_HTTP_SERVER_PROXY,
        "local/wstd-proxy:1",
        &cluster.data.path().join("agent"),
    );
    cluster.ok(&["wait", "--for=condition=Ready", "node/calling", "--timeout=60s"]);
    let env = serde_json::json!([{"name": "TARGET_URL", "value": format!("http://{target}/")}]);
    let ip = ready_pod(&cluster, &wasm_pod("caller", "local/wstd-proxy:1", env), "caller");
    let reply = traced_get(&ip, "/proxy/called");
    assert!(reply.contains("reached"), "{reply}");

    let received = received.lock().unwrap().clone();
    let [Some(traceparent)] = received.as_slice() else {
        panic!("one call with a traceparent was expected: {received:?}");
    };
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    assert_eq!(fields[1], TRACE_ID, "the call is in the request's trace: {traceparent}");
    assert_ne!(
        fields[2], CALLER_SPAN,
        "the call's parent is the gateway's span, not the caller's: {traceparent}"
    );
    assert_eq!(fields[3], "01", "the caller's sampling decision holds: {traceparent}");
}
