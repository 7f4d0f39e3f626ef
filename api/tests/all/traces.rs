//! A span per API request, the child of the `traceparent` the client
//! sent, named by verb and resource; store proposals inside it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::support::Api;

/// Keeps every span that ends.
#[derive(Debug, Clone, Default)]
struct Ended(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Ended {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn requests_continue_the_callers_trace_under_bounded_names() {
    let ended = Ended::default();
    let provider = SdkTracerProvider::builder().with_span_processor(ended.clone()).build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    // The test's runtime has one thread: the subscriber holds for it all.
    let _default = tracing::subscriber::set_default(subscriber);

    let api = Api::start().await;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let reply = api
        .request(
            http::Method::POST,
            "/api/v1/namespaces/default/configmaps",
            &[("content-type", "application/json"), ("traceparent", &traceparent)],
            json!({"metadata": {"name": "traced"}}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(reply.status, http::StatusCode::CREATED, "{}", reply.text);

    let spans = ended.0.lock().unwrap().clone();
    let request = spans.iter().find(|s| s.name == "POST configmaps").unwrap_or_else(|| {
        panic!(
            "no request span: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    });
    assert_eq!(request.span_context.trace_id().to_string(), TRACE_ID);
    assert_eq!(request.parent_span_id.to_string(), CALLER_SPAN);
    assert!(request.parent_span_is_remote);
    assert_eq!(request.span_kind, opentelemetry::trace::SpanKind::Server);
    let proposal = spans
        .iter()
        .find(|s| s.name == "store.propose" && s.span_context.trace_id() == request.span_context.trace_id())
        .expect("the write's proposal is in the request's trace");
    assert_eq!(proposal.parent_span_id, request.span_context.span_id());
    assert!(
        spans.iter().all(|s| !s.name.contains("traced")),
        "names hold no object names"
    );
}
