//! Logging and tracing for the process: the `tracing` subscriber, and
//! OpenTelemetry spans exported over OTLP when `--otlp-endpoint` is given.
//!
//! The subscriber has two layers, each with its own filter:
//!
//! * the log lines on stderr, filtered by `RUST_LOG` (`info,openraft=warn`
//!   by default);
//! * `tracing-opentelemetry`, which turns skiff's own spans (targets
//!   `skiff*`, level INFO and above, spans only; never events) into
//!   OpenTelemetry spans whatever `RUST_LOG` says.
//!
//! The second layer is installed even without an exporter, so that W3C
//! `traceparent` headers keep flowing through the process: the API
//! server and the Wasm gateway make their spans children of an incoming
//! `traceparent`, and the gateway hands the guest (and the guest's
//! outgoing calls) its own span's context. Without an exporter its
//! provider samples `ParentBased(AlwaysOff)` and has no processor, so a
//! span is at most a few ids that are thrown away; with one, spans are
//! sampled `ParentBased(AlwaysOn)` and a batch processor posts them as
//! OTLP/HTTP protobuf to `URL/v1/traces` (its delay, 5 s, can be changed
//! with `OTEL_BSP_SCHEDULE_DELAY` in milliseconds). [`Telemetry::shutdown`]
//! flushes what is left on exit.
//!
//! The batch processor runs on a thread of its own with no async runtime,
//! so the exporter's HTTP client ([`OtlpClient`]) runs each post on the
//! process's Tokio runtime and waits for it there.

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::UsageError;

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The installed tracing; shut it down before the runtime goes.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter. Call it
    /// after the runtime's `block_on` returned and before the runtime is
    /// dropped: the last export runs on the runtime's workers.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::debug!(%error, "cannot shut the span exporter down");
        }
    }
}

/// The OTLP traces URL for `--otlp-endpoint`: `/v1/traces` appended to
/// the base URL, which must be plain `http`.
fn traces_url(endpoint: &str) -> Result<String, UsageError> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| UsageError(format!("--otlp-endpoint {endpoint:?}: {e}")))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(UsageError(format!(
            "--otlp-endpoint {endpoint:?}: expected an http:// URL, such as http://127.0.0.1:4318"
        )));
    }
    Ok(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
}

/// A provider that exports to `endpoint` as `service`.
fn exporting(
    endpoint: &str,
    service: &'static str,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint)?)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(OtlpClient::new(runtime.clone()))
        .build()
        .context("cannot set up the OTLP span exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build())
        .with_batch_exporter(exporter)
        .build())
}

/// A provider that records nothing, for propagation only.
fn propagating() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
        .build()
}

/// Installs the process's subscriber: logs, and spans exported to
/// `otlp_endpoint` (a base URL) as `service` when one is given. The
/// subscriber is installed even when the exporter cannot be set up (the
/// error is returned after).
pub fn install(
    otlp_endpoint: Option<&str>,
    service: &'static str,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<Telemetry> {
    let (provider, failed) = match otlp_endpoint.map(|e| exporting(e, service, runtime)) {
        Some(Ok(provider)) => (provider, None),
        Some(Err(error)) => (propagating(), Some(error)),
        None => (propagating(), None),
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        );
    // Spans only, skiff's own: events would be attached to spans, and
    // dependencies' spans (openraft's, hyper's) would be many and deep.
    let ours = tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_span() && meta.target().starts_with("skiff") && *meta.level() <= tracing::Level::INFO
    });
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("skiff"))
        .with_filter(ours);
    tracing_subscriber::registry().with(logs).with(spans).init();
    match failed {
        Some(error) => Err(error),
        None => Ok(Telemetry { provider }),
    }
}

/// The exporter's HTTP client: hyper on the process's runtime.
#[derive(Debug)]
struct OtlpClient {
    runtime: tokio::runtime::Handle,
    client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl OtlpClient {
    fn new(runtime: tokio::runtime::Handle) -> OtlpClient {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
        OtlpClient { runtime, client }
    }
}

#[async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let post = async move {
            let response = client.request(request.map(Full::new)).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        // The batch processor's thread has no reactor: the post runs on
        // the runtime, and only its outcome is awaited here.
        let posted = self
            .runtime
            .spawn(async move { tokio::time::timeout(EXPORT_TIMEOUT, post).await })
            .await?;
        posted.map_err(|_| HttpError::from("the OTLP export timed out"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_to_http_urls_only() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert!(traces_url("https://collector:4318").is_err());
        assert!(traces_url("collector:4318").is_err());
    }
}
