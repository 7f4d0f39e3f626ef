//! Calls out of an instance: `wasi:http/outgoing-handler` requests go to
//! the [`Outgoing`] the instance's [`Environment`](crate::Environment)
//! names, or are refused (`HTTP-request-denied`) when it names none.
//!
//! This crate knows nothing of pods, Services or policies: whoever builds
//! the environment (the node agent) decides where a request goes, how it
//! is bounded and whether it is allowed. The trait is that seam.
//!
//! Trace context: an outgoing request of an instance serving an HTTP
//! request carries the W3C `traceparent` (and `tracestate`) of the request
//! it serves, unless the guest set its own; so a call
//! the guest makes joins the trace of the request that caused it.

use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime_wasi_http::WasiHttpHooks;
pub use wasmtime_wasi_http::{Error as OutgoingError, RequestOptions, WasiBody};

/// A response on its way, or why there is none. The error becomes the
/// `wasi:http/types.error-code` the guest sees.
pub type Sending = Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, OutgoingError>> + Send>>;

/// Where an instance's outgoing HTTP requests go.
///
/// `request` carries an absolute URI (scheme and authority as the guest
/// set them) and a `host` header; `options` holds the timeouts the guest
/// asked for, each `None` when it asked for none.
pub trait Outgoing: Send + Sync + Debug {
    fn send(&self, request: http::Request<WasiBody>, options: RequestOptions) -> Sending;
}

/// The W3C trace-context headers of the request an instance serves,
/// which its outgoing requests carry on.
#[derive(Clone, Debug, Default)]
pub(crate) struct TraceContext {
    traceparent: Option<http::HeaderValue>,
    tracestate: Option<http::HeaderValue>,
}

impl TraceContext {
    /// The trace context `headers` carry; empty when they have no
    /// `traceparent`.
    pub(crate) fn of(headers: &http::HeaderMap) -> TraceContext {
        let Some(traceparent) = headers.get(TRACEPARENT) else {
            return TraceContext::default();
        };
        TraceContext {
            traceparent: Some(traceparent.clone()),
            tracestate: headers.get(TRACESTATE).filter(|v| !v.is_empty()).cloned(),
        }
    }

    /// Adds the context to `headers`, unless they carry a `traceparent`
    /// already (the guest's own).
    fn apply(&self, headers: &mut http::HeaderMap) {
        let Some(traceparent) = &self.traceparent else {
            return;
        };
        if headers.contains_key(TRACEPARENT) {
            return;
        }
        headers.insert(TRACEPARENT, traceparent.clone());
        if let Some(tracestate) = &self.tracestate
            && !headers.contains_key(TRACESTATE)
        {
            headers.insert(TRACESTATE, tracestate.clone());
        }
    }
}

const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// The hooks of an instance's `wasi:http` context.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    pub(crate) outgoing: Option<Arc<dyn Outgoing>>,
    /// Of the request the instance serves, if any.
    pub(crate) trace: TraceContext,
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), OutgoingError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), OutgoingError>> + Send>,
                    ),
                    OutgoingError,
                >,
            > + Send,
    > {
        let mut request = request;
        self.trace.apply(request.headers_mut());
        let sending = self
            .outgoing
            .as_ref()
            .map(|outgoing| outgoing.send(request, options.unwrap_or_default()));
        Box::new(async move {
            let Some(sending) = sending else {
                return Err(OutgoingError::HttpRequestDenied);
            };
            let response = sending.await?;
            // The connection, if any, is driven by whoever sent the
            // request; nothing is left for the guest to wait on.
            let done: Box<dyn Future<Output = Result<(), OutgoingError>> + Send> = Box::new(std::future::ready(Ok(())));
            Ok((response, done))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), http::HeaderValue::from_static(v)))
            .collect()
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn calls_carry_the_served_requests_trace_unless_the_guest_set_one() {
        let served = TraceContext::of(&headers(&[("traceparent", PARENT), ("tracestate", "a=1")]));
        let mut call = http::HeaderMap::new();
        served.apply(&mut call);
        assert_eq!(call.get("traceparent").unwrap(), PARENT);
        assert_eq!(call.get("tracestate").unwrap(), "a=1");

        let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut call = headers(&[("traceparent", own)]);
        served.apply(&mut call);
        assert_eq!(call.get("traceparent").unwrap(), own);
        assert!(call.get("tracestate").is_none());

        let mut call = http::HeaderMap::new();
        TraceContext::of(&http::HeaderMap::new()).apply(&mut call);
        assert!(call.is_empty());
    }
}
