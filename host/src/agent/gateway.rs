//! The node's HTTP gateway into Wasm HTTP pods.
//!
//! Each Wasm pod gets its own loopback address (the pod IP, from the
//! node's pod CIDR, 127.1.0.0/16 by default); for every declared container port the gateway listens on
//! `podIP:port` and serves each request with a fresh instance. A pod that
//! receives no traffic holds no instance. The same services, by address
//! ([`LocalServices`]), take calls from other Wasm pods of the node
//! in-process, without a socket ([`super::egress`]).
//!
//! Each request gets a span (`gateway.request`), the child of the W3C
//! `traceparent` the request came with, if any; the request the guest
//! sees carries the span's own context instead, which the guest's
//! outgoing calls carry on ([`skiff_wasm::outgoing`]).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, RwLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry::trace::TraceContextExt as _;
use skiff_wasm::http::HyperOutgoingBody;
use tokio::task::JoinHandle;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use skiff_wasm::{HttpService, WasmError};

/// Hands out pod IPs from the node's pod CIDR (a /16 on loopback, by
/// default 127.1.0.0/16) and takes them back.
#[derive(Debug)]
pub struct PodIps {
    base: u32,
    used: Mutex<BTreeSet<u32>>,
}

const SIZE: u32 = 1 << 16;

impl Default for PodIps {
    fn default() -> Self {
        PodIps::new(Ipv4Addr::new(127, 1, 0, 0))
    }
}

impl PodIps {
    /// Addresses from the /16 that starts at `base` (its low 16 bits are
    /// ignored).
    pub fn new(base: Ipv4Addr) -> PodIps {
        PodIps {
            base: u32::from(base) & !(SIZE - 1),
            used: Mutex::default(),
        }
    }

    /// The lowest free address (skipping .0 and .255 of each /24 for
    /// readability, and the first, the node's own towards its pods), or
    /// `None` when all are taken.
    pub fn allocate(&self) -> Option<IpAddr> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let offset = (2..SIZE).find(|o| !used.contains(o) && o % 256 != 0 && o % 256 != 255)?;
        used.insert(offset);
        Some(IpAddr::V4(Ipv4Addr::from(self.base + offset)))
    }

    /// Takes `ip`, an address an earlier agent gave a pod that is
    /// adopted; `false` if it is not in the range or already taken.
    pub fn reserve(&self, ip: IpAddr) -> bool {
        let IpAddr::V4(v4) = ip else { return false };
        let offset = u32::from(v4).wrapping_sub(self.base);
        offset < SIZE && self.used.lock().unwrap_or_else(|p| p.into_inner()).insert(offset)
    }

    pub fn release(&self, ip: IpAddr) {
        if let IpAddr::V4(v4) = ip {
            let offset = u32::from(v4).wrapping_sub(self.base);
            self.used.lock().unwrap_or_else(|p| p.into_inner()).remove(&offset);
        }
    }
}

/// The node's Wasm HTTP services by the address each serves (`podIP:port`).
#[derive(Debug, Default)]
pub struct LocalServices(RwLock<HashMap<SocketAddr, HttpService>>);

impl LocalServices {
    pub fn insert(&self, addr: SocketAddr, service: HttpService) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).insert(addr, service);
    }

    pub fn remove(&self, addr: SocketAddr) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).remove(&addr);
    }

    /// The service at `addr`, if a Wasm pod of this node serves it.
    pub fn get(&self, addr: SocketAddr) -> Option<HttpService> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(&addr).cloned()
    }
}

fn text(status: hyper::StatusCode, message: String) -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(message))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    response
}

/// What a failed request answers: the status
/// [`skiff_wasm::http::failure_status`] gives (503 when the instance ran
/// out of time or memory, 400 for a request wasi:http cannot represent,
/// 500 otherwise), with the reason in the body.
fn failure(error: WasmError) -> hyper::Response<HyperOutgoingBody> {
    let status = skiff_wasm::http::failure_status(&error);
    tracing::info!(%error, "wasm request failed");
    text(status, format!("{error}\n"))
}

/// The span of a request to the service at `addr`: the child of the
/// request's `traceparent`, if any, whose own context then replaces it
/// in the request. A request without one gets the span's context only
/// when the span is sampled (an exporter is set).
fn request_span<B>(request: &mut hyper::Request<B>, addr: SocketAddr) -> tracing::Span {
    let span = tracing::info_span!(
        "gateway.request",
        otel.kind = "server",
        http.request.method = %request.method(),
        server.address = %addr,
        http.response.status_code = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let propagator = |p: &dyn opentelemetry::propagation::TextMapPropagator| {
        let continued = request.headers().contains_key(TRACEPARENT);
        let parent = p.extract(&opentelemetry_http::HeaderExtractor(request.headers()));
        // Before the span is first entered or read: it starts then.
        let _ = span.set_parent(parent);
        let context = span.context();
        // A new trace nobody records (no exporter) is not worth passing on.
        if !continued && !context.span().span_context().is_sampled() {
            return;
        }
        let headers = request.headers_mut();
        headers.remove(TRACESTATE);
        p.inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
        if headers.get(TRACESTATE).is_some_and(|v| v.is_empty()) {
            headers.remove(TRACESTATE);
        }
    };
    opentelemetry::global::get_text_map_propagator(propagator);
    span
}

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Whether a connection from a source address to a local address may be
/// served (NetworkPolicy ingress).
pub type Admit = std::sync::Arc<dyn Fn(IpAddr, SocketAddr) -> bool + Send + Sync>;

/// Serves `service` on `addr` until the returned task is aborted. A
/// connection `admit` refuses is closed unanswered.
pub async fn listen(addr: SocketAddr, service: HttpService, admit: Option<Admit>) -> std::io::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            };
            if let Some(admit) = &admit
                && !admit(peer.ip(), addr)
            {
                continue;
            }
            let _ = stream.set_nodelay(true);
            let service = service.clone();
            tokio::spawn(async move {
                let handler = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    let service = service.clone();
                    // wasi:http needs an authority; an HTTP/1.0 client may
                    // send none, so the address it reached stands in.
                    if request.uri().authority().is_none()
                        && !request.headers().contains_key(hyper::header::HOST)
                        && let Ok(host) = hyper::header::HeaderValue::from_str(&addr.to_string())
                    {
                        request.headers_mut().insert(hyper::header::HOST, host);
                    }
                    let span = request_span(&mut request, addr);
                    async move {
                        let response = match service.handle(request).instrument(span.clone()).await {
                            Ok(response) => response,
                            Err(error) => failure(error),
                        };
                        span.record("http.response.status_code", response.status().as_u16());
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), handler)
                    .await
                {
                    tracing::debug!(%error, "gateway connection ended with an error");
                }
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ips_are_reused_and_the_first_is_the_nodes() {
        let ips = PodIps::default();
        let a = ips.allocate().unwrap();
        let b = ips.allocate().unwrap();
        assert_eq!(a, IpAddr::V4(Ipv4Addr::new(127, 1, 0, 2)));
        assert_eq!(b, IpAddr::V4(Ipv4Addr::new(127, 1, 0, 3)));
        ips.release(a);
        assert_eq!(ips.allocate().unwrap(), a);
    }
}
