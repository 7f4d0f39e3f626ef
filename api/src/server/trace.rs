//! A span per API request, for OpenTelemetry export (`skiff server
//! --otlp-endpoint`): named after the verb and resource as the metrics
//! label them ([`super::metrics`]), so names stay bounded (`LIST pods`,
//! `GET pods/log`); the path is an attribute. A W3C `traceparent` the
//! client sent makes it a child of the client's span. Writes proposed to
//! the store while it is open are its children.
//!
//! The span covers the request until its response head: a watch's
//! stream is not part of it.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry_http::HeaderExtractor;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The request's span around the rest of the stack.
pub async fn layer(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "api.request",
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        http.request.method = %request.method(),
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    if span.is_disabled() {
        return next.run(request).await;
    }
    span.record("otel.name", super::metrics::span_name(&request));
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    // Before the span is first entered: it is started then.
    let _ = span.set_parent(parent);
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}
