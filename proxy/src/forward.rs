//! One client connection to a frontend: HTTP requests balanced one by
//! one, or bytes spliced to one endpoint.
//!
//! In HTTP mode every request looks the frontend up again, so a
//! keep-alive connection follows scaling and rollouts. The request goes
//! to the endpoint it picked through the [`Pool`]: `hyper_util`'s pooling
//! client, whose connector dials endpoints with [`connect::Dialer`] (directly or
//! through a tunnel), so an idle keep-alive connection to that endpoint is
//! reused and a new one opened otherwise (a Wasm endpoint answers each
//! request with a fresh instance either way). An endpoint that refuses the
//! connection (a pod that just stopped listening), or whose fresh
//! connection closes before the request went out, is skipped for the next
//! one, which is what lets a rollout lose no request; a frontend with no
//! endpoints answers 503 and says why.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::http::uri::PathAndQuery;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use skiff_netpolicy::Port;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::Shared;
use crate::connect;
use crate::metrics::ServiceMetrics;
use crate::policy::Decision;
use crate::table::{Backend, Frontend, Mode, Route};
use crate::wake;

/// How long a connection of an undeclared protocol may stay silent before
/// it is taken for a server-first protocol and spliced.
const DETECT_WAIT: Duration = Duration::from_millis(300);

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
];

pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

/// Whether `bytes`, the first a client sent, begin an HTTP/1 request: a
/// method and a space, or as much of that as has arrived.
fn is_http_start(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && METHODS
            .iter()
            .any(|method| method.bytes().chain(*b" ").zip(bytes).all(|(a, b)| a == *b))
}

async fn looks_like_http(stream: &TcpStream) -> bool {
    let mut first = [0u8; 8];
    match tokio::time::timeout(DETECT_WAIT, stream.peek(&mut first)).await {
        Ok(Ok(read)) => is_http_start(&first[..read]),
        _ => false,
    }
}

pub(crate) async fn connection(stream: TcpStream, local: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let Some(frontend) = shared.table().frontends.get(&local).cloned() else {
        return;
    };
    let Ok(source) = stream.peer_addr().map(|peer| peer.ip()) else {
        return;
    };
    let http = match frontend.mode {
        Mode::Http => true,
        Mode::Tcp => false,
        Mode::Detect => looks_like_http(&stream).await,
    };
    if http {
        serve_http(stream, source, local, shared).await;
    } else {
        splice(stream, source, &frontend, &shared).await;
    }
}

/// Whether `source` may reach `backend` under the NetworkPolicies; a
/// refusal is reported.
fn admitted(source: IpAddr, frontend: &Frontend, backend: &Backend, shared: &Shared) -> Result<(), Decision> {
    let policies = shared.policies();
    if policies.is_empty() {
        return Ok(());
    }
    let pod = backend
        .pod
        .as_ref()
        .and_then(|(namespace, name)| policies.pod(namespace, name));
    let decision = policies.connection(source, backend.addr.ip(), pod, Port::tcp(backend.addr.port()));
    if decision.is_allowed() {
        return Ok(());
    }
    shared.report(
        &decision,
        &format!("{source} to {} of Service {}", backend.addr, frontend.service),
    );
    Err(decision)
}

pub(crate) fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(message)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn serve_http(stream: TcpStream, source: IpAddr, local: SocketAddr, shared: Arc<Shared>) {
    serve(TokioIo::new(stream), move |request| {
        let shared = shared.clone();
        async move { forward(request, source, local, &shared).await }
    })
    .await;
}

/// Serves HTTP/1 on `io`, answering each request with `answer`.
pub(crate) async fn serve<I, F, Fut>(io: I, answer: F)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let handler = service_fn(move |request| {
        let reply = answer(request);
        async move { Ok::<_, Infallible>(reply.await) }
    });
    if let Err(error) = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, handler)
        .await
    {
        tracing::debug!(%error, "proxied HTTP connection ended with an error");
    }
}

async fn forward(request: Request<Incoming>, source: IpAddr, local: SocketAddr, shared: &Shared) -> Response<Body> {
    let Some(frontend) = shared.table().frontends.get(&local).cloned() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no Service is served at {local} any more\n"),
        );
    };
    to_frontend(request, source, &frontend, shared).await
}

/// Sends `request` from `source` to one of the frontend's endpoints that
/// the NetworkPolicies let it reach, or answers 503 (none serves) or 403
/// (none may be reached); counted in the Service's metrics.
pub(crate) async fn to_frontend(
    request: Request<Incoming>,
    source: IpAddr,
    frontend: &Frontend,
    shared: &Shared,
) -> Response<Body> {
    let metrics = frontend.metrics(&shared.metrics);
    let woken = match frontend.backends.is_empty() {
        true => woken(frontend, shared).await,
        false => None,
    };
    let response = send(request, source, woken.as_deref().unwrap_or(frontend), shared, metrics).await;
    metrics.answered(response.status().as_u16());
    response
}

/// For a frontend with no endpoint: if an autoscaler took its Service's
/// workload to zero, wakes it and waits (up to [`wake::HOLD`]) for the
/// frontend to have an endpoint.
async fn woken(frontend: &Frontend, shared: &Shared) -> Option<Arc<Frontend>> {
    let waker = shared.waker.as_ref()?;
    let namespace = frontend.object.namespace.as_deref()?;
    let name = frontend.object.name.as_deref()?;
    if !waker.may_wake(namespace) {
        return None;
    }
    let mut version = shared.table_version.subscribe();
    match waker.wake(namespace, name).await {
        Ok(true) => {}
        Ok(false) => return None,
        Err(error) => {
            tracing::warn!(%error, service = %frontend.service, "cannot wake the Service's workload");
            return None;
        }
    }
    let key = (namespace.to_string(), name.to_string());
    let ready = async {
        loop {
            let table = shared.table();
            let found = table
                .services
                .get(&key)
                .into_iter()
                .flatten()
                .map(|port| &port.frontend)
                .find(|f| f.service == frontend.service && !f.backends.is_empty())
                .cloned();
            if found.is_some() {
                return found;
            }
            if version.changed().await.is_err() {
                return None;
            }
        }
    };
    tokio::time::timeout(wake::HOLD, ready).await.ok().flatten()
}

async fn send(
    request: Request<Incoming>,
    source: IpAddr,
    frontend: &Frontend,
    shared: &Shared,
    metrics: &ServiceMetrics,
) -> Response<Body> {
    if frontend.backends.is_empty() {
        return text(StatusCode::SERVICE_UNAVAILABLE, format!("{}\n", frontend.empty_reason));
    }
    let (parts, body) = request.into_parts();
    let head = Head {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        version: parts.version,
        headers: parts.headers,
    };
    let client = shared.pool.client();
    let mut body = body;
    let mut failures = Vec::new();
    let mut refused = None;
    let sent = Instant::now();
    for backend in frontend.pick() {
        if let Err(decision) = admitted(source, frontend, backend, shared) {
            refused = Some(decision);
            continue;
        }
        let (request, unsent) = match head.request(backend, body) {
            Ok(pair) => pair,
            Err(error) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("the request cannot be forwarded: {error}\n"),
                );
            }
        };
        match client.request(request).await {
            Ok(response) => {
                metrics.upstream(sent.elapsed());
                return response.map(BodyExt::boxed);
            }
            Err(error) => {
                tracing::debug!(%error, endpoint = %backend.addr, "request to an endpoint failed");
                match unsent.take_back() {
                    // Nothing of the request went out: the next endpoint may have it.
                    Some(untouched) => {
                        failures.push(format!("{}: {}", backend.addr, reason(&error)));
                        body = untouched;
                    }
                    None => return bad_gateway(frontend, backend),
                }
            }
        }
    }
    if let (true, Some(decision)) = (failures.is_empty(), refused) {
        return text(
            StatusCode::FORBIDDEN,
            format!(
                "no endpoint of Service {} may be reached from {source}: {}\n",
                frontend.service,
                decision.describe()
            ),
        );
    }
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "no endpoint of Service {} accepted a connection: {}\n",
            frontend.service,
            failures.join("; ")
        ),
    )
}

/// The innermost cause of a client error: what the dial or the connection
/// said, without the client's own wrapping.
fn reason(error: &hyper_util::client::legacy::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

fn bad_gateway(frontend: &Frontend, backend: &Backend) -> Response<Body> {
    text(
        StatusCode::BAD_GATEWAY,
        format!(
            "the endpoint {} of Service {} failed before it answered\n",
            backend.addr, frontend.service
        ),
    )
}

/// A client request's head, kept so the request can be sent again to the
/// next endpoint when the first did not take it.
struct Head {
    method: Method,
    path: PathAndQuery,
    version: Version,
    headers: HeaderMap,
}

impl Head {
    /// The request for `backend` (its address is the pool's key; the
    /// client sends the path only), and the handle that gets the body back
    /// if the request does not go out.
    fn request(&self, backend: &Backend, body: Incoming) -> Result<(Request<Outgoing>, Unsent), hyper::http::Error> {
        let uri = Uri::builder()
            .scheme("http")
            .authority(backend.addr.to_string())
            .path_and_query(self.path.clone())
            .build()?;
        let (outgoing, unsent) = Outgoing::new(body);
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(uri)
            .version(self.version)
            .body(outgoing)?;
        *request.headers_mut() = self.headers.clone();
        Ok((request, unsent))
    }
}

/// The client's body as the pool's client sends it. Until the client
/// first looks at it (which it does only when it writes the request head
/// on a connection) the body stays in a slot shared with [`Unsent`], so a
/// request that never went out can be sent elsewhere; a request the client
/// has begun to send cannot.
struct Outgoing {
    slot: Arc<Slot>,
    body: Option<Incoming>,
}

struct Slot {
    body: Mutex<Option<Incoming>>,
    started: AtomicBool,
}

/// Gets a request's body back when none of the request went out.
struct Unsent(Arc<Slot>);

impl Outgoing {
    fn new(body: Incoming) -> (Outgoing, Unsent) {
        let slot = Arc::new(Slot {
            body: Mutex::new(Some(body)),
            started: AtomicBool::new(false),
        });
        (
            Outgoing {
                slot: slot.clone(),
                body: None,
            },
            Unsent(slot),
        )
    }

    /// Marks the request as begun and reads `look` off the body.
    fn peek<T>(&self, look: impl FnOnce(&Incoming) -> T, empty: T) -> T {
        self.slot.started.store(true, Ordering::Release);
        match &self.body {
            Some(body) => look(body),
            None => self
                .slot
                .body
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map_or(empty, look),
        }
    }
}

impl Unsent {
    /// The body, when the client never touched it.
    fn take_back(self) -> Option<Incoming> {
        if self.0.started.load(Ordering::Acquire) {
            return None;
        }
        self.0.body.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl hyper::body::Body for Outgoing {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.body.is_none() {
            this.slot.started.store(true, Ordering::Release);
            this.body = this.slot.body.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
        match this.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.peek(hyper::body::Body::is_end_stream, true)
    }

    fn size_hint(&self) -> SizeHint {
        self.peek(hyper::body::Body::size_hint, SizeHint::with_exact(0))
    }
}

/// Keep-alive connections to endpoints: `hyper_util`'s pooling client
/// over a connector that dials with [`connect::Dialer`]. Requests carry the
/// endpoint's address as their URI's authority, which is the pool's key;
/// the connector looks up how that endpoint is reached (directly or
/// through a tunnel) in the routes [`Pool::follow`] keeps. When an
/// endpoint leaves the table the pool is replaced by an empty one, which
/// closes the idle connections of the endpoints that left (and of the
/// others, which the next requests open again).
pub(crate) struct Pool {
    client: RwLock<Client<Connector, Outgoing>>,
    connector: Connector,
}

/// Idle connections kept per endpoint.
const POOL_PER_ENDPOINT: usize = 64;
/// How long an idle connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

impl Pool {
    pub(crate) fn new(dialer: connect::Dialer) -> Pool {
        let connector = Connector {
            routes: Arc::default(),
            dialer,
        };
        Pool {
            client: RwLock::new(Self::build(&connector)),
            connector,
        }
    }

    fn build(connector: &Connector) -> Client<Connector, Outgoing> {
        Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_PER_ENDPOINT)
            // The client's own Host header goes through unchanged.
            .set_host(false)
            .build(connector.clone())
    }

    fn client(&self) -> Client<Connector, Outgoing> {
        self.client.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Follows the table's endpoints: new ones become reachable, and when
    /// one has left (or moved to another route) the pool starts afresh.
    pub(crate) fn follow(&self, live: &HashSet<&Backend>) {
        let routes: HashMap<SocketAddr, Route> = live.iter().map(|b| (b.addr, b.route.clone())).collect();
        let mut current = self.connector.routes.write().unwrap_or_else(PoisonError::into_inner);
        let left = current.iter().any(|(addr, route)| routes.get(addr) != Some(route));
        *current = routes;
        drop(current);
        if left {
            *self.client.write().unwrap_or_else(PoisonError::into_inner) = Self::build(&self.connector);
        }
    }
}

/// The pool's connector: dials the endpoint a request's URI names, by the
/// route the table gives it.
#[derive(Clone)]
pub(crate) struct Connector {
    routes: Arc<RwLock<HashMap<SocketAddr, Route>>>,
    dialer: connect::Dialer,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<connect::Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<connect::Stream>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let routes = self.routes.clone();
        let dialer = self.dialer.clone();
        Box::pin(async move {
            let addr: SocketAddr = uri
                .authority()
                .and_then(|authority| authority.as_str().parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri} names no endpoint")))?;
            let route = routes
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&addr)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr} is no endpoint any more")))?;
            let dialled = dialer.dial(&Backend { addr, route, pod: None }).await?;
            if !dialled.early.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{addr} spoke before the request"),
                ));
            }
            Ok(TokioIo::new(dialled.stream))
        })
    }
}

/// Bytes both ways between the client and one endpoint it may reach.
/// With no such endpoint the connection is closed at once, as a port with
/// nothing behind it.
async fn splice(mut client: TcpStream, source: IpAddr, frontend: &Frontend, shared: &Shared) {
    for backend in frontend.pick() {
        if admitted(source, frontend, backend, shared).is_err() {
            continue;
        }
        match shared.dialer.dial(backend).await {
            Ok(mut dialled) => {
                frontend.metrics(&shared.metrics).connected();
                if !dialled.early.is_empty() && client.write_all(&dialled.early).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut dialled.stream).await;
                return;
            }
            Err(error) => {
                tracing::debug!(%error, service = %frontend.service, "endpoint refused; trying the next");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use http_body_util::Empty;
    use k8s_openapi::api::core::v1::ObjectReference;
    use tokio::net::TcpListener;

    use super::*;
    use crate::table::Table;

    /// An HTTP endpoint on loopback that answers `ok` and counts the
    /// connections it accepted.
    async fn endpoint() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(TokioIo::new(stream), |_| async {
                    text(StatusCode::OK, "ok".into())
                }));
            }
        });
        (addr, accepted)
    }

    /// A loopback address nothing listens on.
    async fn refusing() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    /// Serves `frontend` on loopback as a Service address would be.
    async fn proxy(frontend: Frontend) -> SocketAddr {
        let shared = Shared::with_table(Table::default());
        shared.pool.follow(&frontend.backends.iter().collect());
        let frontend = Arc::new(frontend);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (shared, frontend) = (shared.clone(), frontend.clone());
                tokio::spawn(serve(TokioIo::new(stream), move |request| {
                    let (shared, frontend) = (shared.clone(), frontend.clone());
                    async move { to_frontend(request, IpAddr::from([127, 0, 0, 1]), &frontend, &shared).await }
                }));
            }
        });
        addr
    }

    #[tokio::test]
    async fn requests_skip_a_refusing_endpoint_and_reuse_pooled_connections() {
        let (up, accepted) = endpoint().await;
        let down = refusing().await;
        let backend = |addr| Backend {
            addr,
            route: Route::Local,
            pod: None,
        };
        let frontend = Frontend::new(
            "default/web:80".into(),
            ObjectReference::default(),
            Mode::Http,
            vec![backend(down), backend(up)],
            String::new(),
        );
        let proxied = proxy(frontend).await;
        let stream = TcpStream::connect(proxied).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let requests = 10;
        for _ in 0..requests {
            let request = Request::get("/")
                .header(hyper::header::HOST, "web")
                .body(Empty::<Bytes>::new())
                .unwrap();
            sender.ready().await.unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        // Every request reached the live endpoint, over fewer connections
        // than requests: the pool kept them.
        let connections = accepted.load(Ordering::SeqCst);
        assert!(
            (1..requests).contains(&connections),
            "{connections} connections for {requests} requests"
        );
    }

    #[tokio::test]
    async fn no_endpoint_accepting_is_a_503_that_names_them() {
        let (first, second) = (refusing().await, refusing().await);
        let backend = |addr| Backend {
            addr,
            route: Route::Local,
            pod: None,
        };
        let frontend = Frontend::new(
            "default/web:80".into(),
            ObjectReference::default(),
            Mode::Http,
            vec![backend(first), backend(second)],
            String::new(),
        );
        let proxied = proxy(frontend).await;
        let stream = TcpStream::connect(proxied).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let response = sender
            .send_request(Request::get("/").body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("default/web:80"), "{body}");
        assert!(
            body.contains(&first.to_string()) && body.contains(&second.to_string()),
            "{body}"
        );
    }

    #[test]
    fn http_requests_are_told_from_other_bytes() {
        for yes in [&b"GET / HTTP/1.1"[..], b"POST /x", b"GE", b"OPTIONS"] {
            assert!(is_http_start(yes), "{yes:?}");
        }
        for no in [&b""[..], b"\x16\x03\x01", b"SSH-2.0", b"GETX", b"get /"] {
            assert!(!is_http_start(no), "{no:?}");
        }
    }
}
