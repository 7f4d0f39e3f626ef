//! One client connection to a frontend: HTTP requests balanced one by
//! one, or bytes spliced to one endpoint.
//!
//! In HTTP mode every request looks the frontend up again, so a
//! keep-alive connection follows scaling and rollouts; it goes to the
//! endpoint it picked over an idle keep-alive connection from the [`Pool`]
//! or a new one (a Wasm endpoint answers each request with a fresh
//! instance either way). An endpoint that refuses the connection (a pod
//! that just stopped listening) is skipped for the next one, which is what
//! lets a rollout lose no request; a frontend with no endpoints answers
//! 503 and says why.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::Shared;
use crate::connect::dial;
use crate::table::{Backend, Frontend, Mode};

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
    let http = match frontend.mode {
        Mode::Http => true,
        Mode::Tcp => false,
        Mode::Detect => looks_like_http(&stream).await,
    };
    if http {
        serve_http(stream, local, shared).await;
    } else {
        splice(stream, &frontend, &shared).await;
    }
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

async fn serve_http(stream: TcpStream, local: SocketAddr, shared: Arc<Shared>) {
    serve(TokioIo::new(stream), move |request| {
        let shared = shared.clone();
        async move { forward(request, local, &shared).await }
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

async fn forward(request: Request<Incoming>, local: SocketAddr, shared: &Shared) -> Response<Body> {
    let Some(frontend) = shared.table().frontends.get(&local).cloned() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no Service is served at {local} any more\n"),
        );
    };
    to_frontend(request, &frontend, shared).await
}

/// Sends `request` to one of the frontend's endpoints, or answers 503.
pub(crate) async fn to_frontend(request: Request<Incoming>, frontend: &Frontend, shared: &Shared) -> Response<Body> {
    if frontend.backends.is_empty() {
        return text(StatusCode::SERVICE_UNAVAILABLE, format!("{}\n", frontend.empty_reason));
    }
    let mut request = request;
    let mut failures = Vec::new();
    for backend in frontend.pick() {
        // An idle keep-alive connection to this endpoint first.
        if let Some(sender) = shared.pool.take(backend) {
            match send(sender, request, backend, shared).await {
                Ok(response) => return response,
                // The connection closed before the request went out.
                Err(Some(unsent)) => request = unsent,
                Err(None) => return bad_gateway(frontend, backend),
            }
        }
        let dialled = match dial(backend, shared.connect_timeout).await {
            Ok(dialled) if dialled.early.is_empty() => dialled,
            Ok(_) => {
                failures.push(format!("{} spoke before the request", backend.addr));
                continue;
            }
            Err(error) => {
                failures.push(format!("{}: {error}", backend.addr));
                continue;
            }
        };
        let (sender, connection) = match hyper::client::conn::http1::handshake(TokioIo::new(dialled.stream)).await {
            Ok(pair) => pair,
            Err(error) => {
                failures.push(format!("{}: {error}", backend.addr));
                continue;
            }
        };
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection to an endpoint ended with an error");
            }
        });
        match send(sender, request, backend, shared).await {
            Ok(response) => return response,
            Err(Some(unsent)) => {
                failures.push(format!("{}: the connection closed at once", backend.addr));
                request = unsent;
            }
            Err(None) => return bad_gateway(frontend, backend),
        }
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

fn bad_gateway(frontend: &Frontend, backend: &Backend) -> Response<Body> {
    text(
        StatusCode::BAD_GATEWAY,
        format!(
            "the endpoint {} of Service {} failed before it answered\n",
            backend.addr, frontend.service
        ),
    )
}

/// Sends `request` on `sender`, which goes back to the pool once it has
/// its answer. `Err(Some(request))` when the request was not sent (it may
/// go elsewhere), `Err(None)` when it was and failed.
async fn send(
    mut sender: SendRequest<Incoming>,
    request: Request<Incoming>,
    backend: &Backend,
    shared: &Shared,
) -> Result<Response<Body>, Option<Request<Incoming>>> {
    match sender.try_send_request(request).await {
        Ok(response) => {
            shared.pool.put(backend, sender);
            Ok(response.map(BodyExt::boxed))
        }
        Err(mut error) => {
            tracing::debug!(error = %error.error(), endpoint = %backend.addr, "request to an endpoint failed");
            Err(error.take_message())
        }
    }
}

/// Idle HTTP/1 keep-alive connections to endpoints, reused by later
/// requests to the same endpoint. A connection goes back as soon as its
/// response head arrives and is handed out again once it is ready (its
/// response finished); the ones of endpoints that left the table are
/// dropped, which closes them.
#[derive(Default)]
pub(crate) struct Pool(std::sync::Mutex<HashMap<Backend, Vec<SendRequest<Incoming>>>>);

/// Connections kept per endpoint.
const POOL_PER_ENDPOINT: usize = 64;

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Backend, Vec<SendRequest<Incoming>>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, backend: &Backend) -> Option<SendRequest<Incoming>> {
        let mut idle = self.lock();
        let list = idle.get_mut(backend)?;
        list.retain(|sender| !sender.is_closed());
        let ready = list.iter().position(SendRequest::is_ready)?;
        Some(list.swap_remove(ready))
    }

    fn put(&self, backend: &Backend, sender: SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(backend.clone()).or_default();
        if list.len() < POOL_PER_ENDPOINT {
            list.push(sender);
        }
    }

    /// Keeps only the connections to endpoints in `live`.
    pub(crate) fn retain(&self, live: &HashSet<&Backend>) {
        self.lock().retain(|backend, _| live.contains(backend));
    }
}

/// Bytes both ways between the client and one endpoint. With no endpoint
/// the connection is closed at once, as a port with nothing behind it.
async fn splice(mut client: TcpStream, frontend: &Frontend, shared: &Shared) {
    for backend in frontend.pick() {
        match dial(backend, shared.connect_timeout).await {
            Ok(mut dialled) => {
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
mod tests {
    use super::is_http_start;

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
