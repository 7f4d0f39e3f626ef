//! The agent's own HTTP endpoint (the kubelet's port): the API server
//! proxies `pods/log` here.
//!
//! * `GET /healthz`
//! * `GET /containerLogs/<namespace>/<pod>/<container>` with the query of
//!   `pods/log`: `follow`, `previous`, `tailLines`, `sinceSeconds`,
//!   `sinceTime`, `timestamps`, `limitBytes`. Plain text; a followed log
//!   streams until the container stops.
//! * `GET /stats/summary`: what the node and its pods use
//!   ([`stats`](super::stats)), as JSON.
//! * `GET /metrics` and `GET /metrics/resource`: the agent's Prometheus
//!   metrics, and the kubelet's resource metrics
//!   ([`metrics`](super::metrics)), in the OpenMetrics text format.
//! * `/exec/…` and `/portForward/…`: upgraded to a stream
//!   ([`streams`](super::streams)).
//!
//! Given the cluster's client CA ([`tls`]), it speaks TLS and takes only
//! callers with a certificate that CA signed for the group
//! `system:masters`: the API server (its `kube-apiserver-kubelet-client`
//! certificate) and cluster admins, as kube-apiserver's kubelet client
//! is the one caller a kubelet expects. Its own serving certificate is
//! self-signed (the API server does not verify it, see
//! `skiff_api::server::node_client`). Without a CA (agents under test
//! beside an API server that has no client certificate) it speaks plain
//! HTTP and trusts its callers; it listens on the node's own address
//! either way.
//!
//! Prometheus scrapes the metrics as any caller: over HTTPS with a client
//! certificate of the cluster CA in `system:masters` (for instance the
//! admin's, from `skiff-data/kubeconfig`) as `cert_file`/`key_file`,
//! `insecure_skip_verify` (the serving certificate is self-signed), the
//! node's address and the port its Node publishes
//! (`status.daemonEndpoints.kubeletEndpoint`), and `metrics_path`
//! `/metrics` or `/metrics/resource`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::logs::{self, LogQuery, PodLogDir};
use super::stats::StatsIndex;

/// What the endpoint serves from.
#[derive(Debug)]
pub struct Sources {
    pub logs: Arc<LogIndex>,
    pub streams: Arc<super::streams::StreamIndex>,
    pub stats: Arc<StatsIndex>,
    pub metrics: super::metrics::Metrics,
    pub node_name: String,
}

/// How often a followed log is checked for more.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
struct ContainerLog {
    /// The current (or last) run.
    run: u32,
    running: bool,
}

#[derive(Clone, Debug)]
struct PodLogs {
    dir: PodLogDir,
    containers: HashMap<String, ContainerLog>,
}

/// Which pods' logs this node holds, kept by the pod workers.
#[derive(Debug, Default)]
pub struct LogIndex {
    pods: Mutex<HashMap<(String, String), PodLogs>>,
}

impl LogIndex {
    /// Records a pod's containers as `(name, current run, running)`.
    pub fn register(&self, namespace: &str, pod: &str, dir: &PodLogDir, containers: &[(String, u32, bool)]) {
        let entry = PodLogs {
            dir: dir.clone(),
            containers: containers
                .iter()
                .map(|(name, run, running)| {
                    (
                        name.clone(),
                        ContainerLog {
                            run: *run,
                            running: *running,
                        },
                    )
                })
                .collect(),
        };
        self.lock().insert((namespace.to_string(), pod.to_string()), entry);
    }

    pub fn remove(&self, namespace: &str, pod: &str) {
        self.lock().remove(&(namespace.to_string(), pod.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), PodLogs>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The log file of a container's current run (or the one before), and
    /// whether that run is still going.
    fn locate(&self, namespace: &str, pod: &str, container: &str, previous: bool) -> Result<(PathBuf, bool), String> {
        let pods = self.lock();
        let entry = pods
            .get(&(namespace.to_string(), pod.to_string()))
            .ok_or_else(|| format!("pod {namespace}/{pod} is not on this node"))?;
        let log = entry
            .containers
            .get(container)
            .ok_or_else(|| format!("container {container} is not valid for pod {pod}"))?;
        if previous {
            let run = log
                .run
                .checked_sub(1)
                .ok_or_else(|| format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"))?;
            return Ok((entry.dir.file(container, run), false));
        }
        Ok((entry.dir.file(container, log.run), log.running))
    }

    fn still_running(&self, namespace: &str, pod: &str, container: &str, path: &PathBuf) -> bool {
        let pods = self.lock();
        pods.get(&(namespace.to_string(), pod.to_string()))
            .and_then(|e| e.containers.get(container).map(|c| (e, c)))
            .is_some_and(|(e, c)| c.running && e.dir.file(container, c.run) == *path)
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(message.into())).boxed());
    *response.status_mut() = status;
    response
}

fn query_of(uri: &hyper::Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &HashMap<String, String>) -> Result<(LogQuery, bool, bool), String> {
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let number = |k: &str| -> Result<Option<i64>, String> {
        q.get(k)
            .map(|v| v.parse::<i64>().map_err(|_| format!("{k}: not a number: {v:?}")))
            .transpose()
    };
    let tail_lines = number("tailLines")?.map(|n| usize::try_from(n.max(0)).unwrap_or(0));
    let limit_bytes = number("limitBytes")?.map(|n| usize::try_from(n.max(0)).unwrap_or(0));
    let since = match (number("sinceSeconds")?, q.get("sinceTime")) {
        (Some(s), _) => Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s.max(0))),
        (None, Some(t)) => Some(t.parse::<jiff::Timestamp>().map_err(|e| format!("sinceTime: {e}"))?),
        (None, None) => None,
    };
    Ok((
        LogQuery {
            tail_lines,
            since,
            timestamps: flag("timestamps"),
            limit_bytes,
        },
        flag("follow"),
        flag("previous"),
    ))
}

async fn container_logs(index: Arc<LogIndex>, path: &str, uri: &hyper::Uri) -> Response<Body> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let [namespace, pod, container] = parts[..] else {
        return text(
            StatusCode::NOT_FOUND,
            "want /containerLogs/<namespace>/<pod>/<container>\n",
        );
    };
    let (query, follow, previous) = match parse_query(&query_of(uri)) {
        Ok(q) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let (file, running) = match index.locate(namespace, pod, container, previous) {
        Ok(found) => found,
        Err(e) => return text(StatusCode::NOT_FOUND, e),
    };
    let read = {
        let (file, query) = (file.clone(), query.clone());
        tokio::task::spawn_blocking(move || logs::read(&file, &query)).await
    };
    let (first, offset) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 0),
        Ok(Err(e)) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the log: {e}")),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if !(follow && running) {
        return text(StatusCode::OK, String::from_utf8_lossy(&first).into_owned());
    }
    // Follow: what is there, then whatever is appended, until the run ends.
    let (namespace, pod, container) = (namespace.to_string(), pod.to_string(), container.to_string());
    let state = (Some(Bytes::from(first)), offset, false);
    let stream = futures::stream::unfold(state, move |(pending, offset, done)| {
        let (index, file, query) = (index.clone(), file.clone(), query.clone());
        let (namespace, pod, container) = (namespace.clone(), pod.clone(), container.clone());
        async move {
            if let Some(bytes) = pending {
                return Some((bytes, (None, offset, done)));
            }
            if done {
                return None;
            }
            loop {
                let alive = index.still_running(&namespace, &pod, &container, &file);
                let (f, q) = (file.clone(), query.clone());
                let more = tokio::task::spawn_blocking(move || logs::read_from(&f, offset, &q)).await;
                match more {
                    Ok(Ok((bytes, next))) if !bytes.is_empty() => {
                        return Some((Bytes::from(bytes), (None, next, !alive)));
                    }
                    Ok(Ok(_)) if alive => tokio::time::sleep(FOLLOW_POLL).await,
                    _ => return None,
                }
            }
        }
    });
    let body = StreamBody::new(stream.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    let mut response = Response::new(BodyExt::boxed(body));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    response
}

async fn handle(sources: Arc<Sources>, request: Request<hyper::body::Incoming>) -> Response<Body> {
    let request = match super::streams::handle(sources.streams.clone(), request).await {
        Ok(response) => return response.map(BodyExt::boxed),
        Err(request) => request,
    };
    if request.method() != hyper::Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    let path = request.uri().path().to_string();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok");
    }
    if path == "/stats/summary" {
        return summary(sources).await;
    }
    if path == "/metrics" || path == "/metrics/resource" {
        return metrics(sources, path == "/metrics/resource").await;
    }
    match path.strip_prefix("/containerLogs") {
        Some(rest) => container_logs(sources.logs.clone(), rest, request.uri()).await,
        None => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn summary(sources: Arc<Sources>) -> Response<Body> {
    // runc containers are read from their cgroup files.
    let read = tokio::task::spawn_blocking(move || sources.stats.summary(&sources.node_name)).await;
    match read {
        Ok(summary) => {
            let mut response = text(StatusCode::OK, summary.to_string());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn metrics(sources: Arc<Sources>, resource: bool) -> Response<Body> {
    let body = if resource {
        // runc containers are read from their cgroup files.
        let metrics = sources.metrics.clone();
        match tokio::task::spawn_blocking(move || metrics.encode_resource()).await {
            Ok(body) => body,
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    } else {
        sources.metrics.encode()
    };
    let mut response = text(StatusCode::OK, body);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(super::metrics::CONTENT_TYPE),
    );
    response
}

/// The group a caller's certificate must name.
const CALLERS_GROUP: &str = "system:masters";

/// TLS for the endpoint: a self-signed certificate for the node's name
/// and address, and client certificates required, signed by the CA in
/// `clients_ca_pem`.
pub fn tls(clients_ca_pem: &str, node_name: &str, node_ip: &str) -> std::io::Result<Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pki_types::CertificateDer::pem_slice_iter(clients_ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| invalid("the clients' CA", &e))?;
        roots.add(ca).map_err(|e| invalid("the clients' CA", &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid("the clients' CA", &e))?;
    let names = vec![node_name.to_string(), node_ip.to_string()];
    let serving = rcgen::generate_simple_self_signed(names).map_err(|e| invalid("the serving certificate", &e))?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(serving.signing_key.serialize_pem().as_bytes())
        .map_err(|e| invalid("the serving key", &e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![serving.cert.der().clone()], key)
        .map_err(|e| invalid("the serving certificate", &e))?;
    Ok(Arc::new(config))
}

/// Whether a verified client certificate names [`CALLERS_GROUP`].
fn may_call(certificate: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(certificate).is_ok_and(|(_, cert)| {
        cert.subject()
            .iter_organization()
            .any(|o| o.as_str().is_ok_and(|o| o == CALLERS_GROUP))
    })
}

/// Serves the endpoint on `addr`, over TLS when `tls` is given ([`tls`]);
/// returns the bound address and the task.
pub async fn serve(
    addr: SocketAddr,
    sources: Arc<Sources>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let (sources, acceptor) = (sources.clone(), acceptor.clone());
            tokio::spawn(async move {
                let Some(acceptor) = acceptor else {
                    return serve_connection(TokioIo::new(stream), sources, true).await;
                };
                let tls = match acceptor.accept(stream).await {
                    Ok(tls) => tls,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "refused a caller of the agent's endpoint");
                        return;
                    }
                };
                let allowed = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .is_some_and(|leaf| may_call(leaf.as_ref()));
                serve_connection(TokioIo::new(tls), sources, allowed).await;
            });
        }
    });
    Ok((bound, task))
}

async fn serve_connection<IO>(io: TokioIo<IO>, sources: Arc<Sources>, allowed: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let sources = sources.clone();
        async move {
            if !allowed {
                let message = format!(
                    "only the API server may call a node's endpoint (a certificate in group {CALLERS_GROUP})\n"
                );
                return Ok::<_, Infallible>(text(StatusCode::FORBIDDEN, message));
            }
            Ok::<_, Infallible>(handle(sources, request).await)
        }
    });
    let _ = http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades()
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse() {
        let q: HashMap<String, String> = [("tailLines", "3"), ("follow", "true"), ("timestamps", "true")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (query, follow, previous) = parse_query(&q).unwrap();
        assert_eq!(query.tail_lines, Some(3));
        assert!(query.timestamps && follow && !previous);
        let bad: HashMap<String, String> = [("tailLines".to_string(), "x".to_string())].into();
        assert!(parse_query(&bad).is_err());
        assert_eq!(percent_decode("a%3Db+c%2"), "a=b c%2");
    }
}
