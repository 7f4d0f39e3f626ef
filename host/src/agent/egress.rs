//! Calls out of Wasm pods: the [`skiff_wasm::Outgoing`] every Wasm
//! container of this node is given, so that its `wasi:http` requests reach
//! whatever a container on the node could reach.
//!
//! A request from a pod is routed here, where the host knows the caller:
//!
//! 1. **Names.** `localhost` (and `127.0.0.1`, `::1`) is the pod's own
//!    address. Other names are looked up as the pod's resolver would look
//!    them up in the cluster DNS, with its namespace's search list
//!    ([`skiff_proxy::dns::lookup`], read in-process from the records the
//!    node's cluster DNS answers with); a cluster name is sent on in its
//!    fully qualified form (the `host` header keeps what the guest wrote),
//!    a missing one fails as NXDOMAIN, and any other name goes to the
//!    node's own resolver.
//! 2. **In-process.** Plain HTTP to a ClusterIP whose next endpoint (in the
//!    proxy's round-robin order) is a Wasm pod of this node, or to such a
//!    pod's address directly, is handed to that pod's handler
//!    ([`LocalServices`]): a fresh instance, no socket, no HTTP parsing.
//! 3. **Everything else** (ClusterIPs with other endpoints, runc pods, pod
//!    addresses on other nodes reached through their Services, node
//!    addresses, external hosts) goes out through the pod's connection
//!    pool: HTTP/1.1 keep-alive (`hyper_util`'s pooled client), TLS with
//!    the system's roots plus the cluster CA (`hyper_rustls`), leaving from
//!    the pod's address for destinations on the node's loopback, so the
//!    proxy and the servers there see which pod calls.
//!
//! Sockets (`wasi:sockets`, [`NetworkView`]): `127.0.0.1` and `0.0.0.0`
//! are the pod's own address, for binding and connecting alike, so a
//! component that listens on `127.0.0.1:8080` serves on `podIP:8080`;
//! names resolve as above (a cluster name to its first address).
//!
//! Limits ([`EgressLimits`]): requests in flight per pod (past it a request
//! fails at once with `connection-limit-reached`), open outgoing
//! connections for the whole node (a dial waits for a free one as long as
//! its connect timeout), idle connections kept per host, and the size of
//! one request body (`HTTP-request-body-size`). Bodies stream in both
//! directions: the host holds at most a frame of either. The guest's
//! `request-options` timeouts are honoured, with node defaults for those
//! it leaves unset: connect, first byte (counted from the start of the
//! request, so it includes connecting) and between bytes of the response
//! body.
//!
//! NetworkPolicy ([`skiff_proxy::policy`]): a call in-process or to an
//! address that is no Service is checked here (refused: a `403` from the
//! host, `connection-refused` for a socket, `HTTP-request-denied` for an
//! outside name whose every address is refused); a call to a Service is
//! checked by the proxy, which sees the pod's own address as the source.
//! [`Egress::admits`] is the gateway's check on connections into a Wasm
//! pod.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::uri::{Authority, Scheme};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use skiff_netpolicy::Port;
use skiff_proxy::Proxy;
use skiff_proxy::dns::Lookup;
use skiff_proxy::table::Route;
use skiff_wasm::{NameLookup, NetworkView, Outgoing, OutgoingError, RequestOptions, Sending, WasiBody};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::gateway::LocalServices;

/// What bounds the calls out of Wasm pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressLimits {
    /// Requests one pod may have in flight (until the response body ends).
    pub requests_per_pod: usize,
    /// Outgoing connections open at once on the node, pooled ones included.
    pub connections: usize,
    /// Idle keep-alive connections kept per destination.
    pub idle_per_host: usize,
    /// The most bytes one outgoing request body may carry.
    pub request_body_bytes: u64,
    /// Timeouts for requests whose guest sets none.
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub between_bytes_timeout: Duration,
}

impl Default for EgressLimits {
    fn default() -> Self {
        EgressLimits {
            requests_per_pod: 256,
            connections: 4096,
            idle_per_host: 32,
            request_body_bytes: 1 << 30,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            between_bytes_timeout: Duration::from_secs(60),
        }
    }
}

/// The node's side of every Wasm pod's calls out.
pub struct Egress {
    proxy: Arc<Proxy>,
    local: Arc<LocalServices>,
    tls: Arc<rustls::ClientConfig>,
    /// Slots for the node's open outgoing connections.
    connections: Arc<Semaphore>,
    limits: EgressLimits,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Who is calling: what the host needs to know of the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub namespace: String,
    /// The pod's own address: what `localhost` means to it.
    pub ip: IpAddr,
    /// Whether its calls to Wasm pods of this node go in-process.
    pub in_process: bool,
}

impl Egress {
    /// The node's egress. `cluster_ca_pem` is trusted for HTTPS besides the
    /// system's roots.
    pub fn new(
        proxy: Arc<Proxy>,
        local: Arc<LocalServices>,
        cluster_ca_pem: Option<&str>,
        limits: EgressLimits,
    ) -> Egress {
        Egress {
            proxy,
            local,
            tls: Arc::new(tls_config(cluster_ca_pem)),
            connections: Arc::new(Semaphore::new(limits.connections)),
            limits,
        }
    }

    /// One pod's way out: the [`Outgoing`] for its containers' HTTP
    /// requests and the [`NetworkView`] for their sockets.
    pub fn for_pod(self: &Arc<Egress>, caller: Caller) -> Arc<PodEgress> {
        let dialer = Dialer {
            proxy: self.proxy.clone(),
            connections: self.connections.clone(),
            connect_timeout: self.limits.connect_timeout,
            source: caller.ip,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(self.limits.idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(HttpsConnector::from((dialer, self.tls.clone())));
        Arc::new(PodEgress {
            in_flight: Arc::new(Semaphore::new(self.limits.requests_per_pod)),
            egress: self.clone(),
            client,
            caller,
        })
    }
}

/// The system's trusted roots plus the cluster CA. A root that does not
/// parse is skipped (and logged): one bad file in `/etc/ssl/certs` must not
/// cost every pod its HTTPS.
fn tls_config(cluster_ca_pem: Option<&str>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "cannot read a system root certificate");
    }
    let (_, skipped) = roots.add_parsable_certificates(native.certs);
    if let Some(pem) = cluster_ca_pem {
        let certs = rustls_pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok);
        roots.add_parsable_certificates(certs);
    }
    if skipped > 0 {
        tracing::debug!(skipped, "system root certificates that do not parse were skipped");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = match rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
        Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
        // ring supports the default versions; this is unreachable in
        // practice, and a config without roots refuses every server.
        Err(_) => rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// One pod's calls out. Its connections are its own (a pool per pod,
/// under the node's limit): they leave from the pod's address, so that
/// whoever they reach on the node sees the pod, not the node.
pub struct PodEgress {
    egress: Arc<Egress>,
    caller: Caller,
    client: Client<HttpsConnector<Dialer>, WasiBody>,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for PodEgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodEgress")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl Outgoing for PodEgress {
    fn send(&self, request: http::Request<WasiBody>, options: RequestOptions) -> Sending {
        let permit = self.in_flight.clone().try_acquire_owned();
        let egress = self.egress.clone();
        let caller = self.caller.clone();
        let client = self.client.clone();
        Box::pin(async move {
            let permit = permit.map_err(|_| OutgoingError::ConnectionLimitReached)?;
            egress.send(&caller, &client, request, options, permit).await
        })
    }
}

/// What a pod's sockets see: its own address for `127.0.0.1`, cluster
/// names as its resolver would find them.
impl NetworkView for PodEgress {
    fn own_address(&self) -> Ipv4Addr {
        match self.caller.ip {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        }
    }

    fn lookup(&self, name: &str) -> NameLookup {
        if name.eq_ignore_ascii_case("localhost") {
            return NameLookup::Addresses(vec![self.caller.ip]);
        }
        match self.egress.proxy.lookup(name, &self.caller.namespace) {
            Lookup::Cluster { addresses, .. } => NameLookup::Addresses(addresses.into_iter().map(IpAddr::V4).collect()),
            Lookup::NotFound => NameLookup::NotFound,
            Lookup::External => NameLookup::Elsewhere,
        }
    }

    /// A Service's address is checked by the proxy (the pod is the
    /// source); anything else here.
    fn may_reach(&self, addr: SocketAddr, udp: bool) -> bool {
        if !udp && self.egress.proxy.frontend(addr).is_some() {
            return true;
        }
        let port = if udp {
            Port::udp(addr.port())
        } else {
            Port::tcp(addr.port())
        };
        admit(&self.egress.proxy, self.caller.ip, addr, port).is_ok()
    }

    /// Into a TCP listener of the pod: as into its HTTP ports.
    fn may_accept(&self, source: SocketAddr, local: SocketAddr) -> bool {
        self.egress.admits(source.ip(), local)
    }
}

/// Where a request goes.
enum Destination {
    /// Nowhere: a NetworkPolicy refuses it (what the caller is told).
    Denied(String),
    /// A Wasm pod of this node: its handler, in-process.
    Local(skiff_wasm::HttpService),
    /// Over the network, to this URI (a cluster name made absolute).
    Remote(Uri),
}

impl Egress {
    async fn send(
        &self,
        caller: &Caller,
        client: &Client<HttpsConnector<Dialer>, WasiBody>,
        request: http::Request<WasiBody>,
        options: RequestOptions,
        permit: OwnedSemaphorePermit,
    ) -> Result<http::Response<WasiBody>, OutgoingError> {
        let connect = options.connect_timeout.unwrap_or(self.limits.connect_timeout);
        let first_byte = options.first_byte_timeout.unwrap_or(self.limits.first_byte_timeout);
        let between_bytes = options
            .between_bytes_timeout
            .unwrap_or(self.limits.between_bytes_timeout);
        let (mut parts, body) = request.into_parts();
        let destination = self.route(caller, &parts.uri)?;
        let body = Capped::new(body, self.limits.request_body_bytes).boxed_unsync();
        let response = match destination {
            Destination::Denied(refusal) => {
                let body = http_body_util::Full::new(Bytes::from(format!("{refusal}\n")))
                    .map_err(|never| match never {})
                    .boxed_unsync();
                let mut response = http::Response::new(body);
                *response.status_mut() = http::StatusCode::FORBIDDEN;
                response
            }
            Destination::Local(service) => {
                let request = http::Request::from_parts(parts, Drained(Some(body)));
                let handled = tokio::time::timeout(first_byte, service.handle(request))
                    .await
                    .map_err(|_| OutgoingError::HttpResponseTimeout)?;
                handled.map_err(|error| OutgoingError::InternalError(Some(error.to_string())))?
            }
            Destination::Remote(uri) => {
                parts.uri = uri;
                let request = http::Request::from_parts(parts, body);
                let sent = CONNECT_TIMEOUT.scope(connect, client.request(request));
                let response = tokio::time::timeout(first_byte, sent)
                    .await
                    .map_err(|_| OutgoingError::HttpResponseTimeout)?
                    .map_err(|error| client_error(&error))?;
                response.map(|body| body.map_err(OutgoingError::from).boxed_unsync())
            }
        };
        Ok(response.map(|body| Watched::new(body, between_bytes, permit).boxed_unsync()))
    }

    /// Whether the NetworkPolicies let `caller` connect to `target`; a
    /// refusal is reported, and says why.
    fn policy(&self, caller: &Caller, target: SocketAddr) -> Result<(), String> {
        admit(&self.proxy, caller.ip, target, Port::tcp(target.port()))
    }

    /// Whether a connection to this node's Wasm pod at `local` from
    /// `source` may be served: always from the node itself (the proxy,
    /// which checked the Service's endpoints, probes, host-network pods),
    /// else as the NetworkPolicies say.
    pub fn admits(&self, source: IpAddr, local: SocketAddr) -> bool {
        let policies = self.proxy.policies();
        if policies.is_empty() || policies.pod_at(source).is_none() {
            return true;
        }
        admit(&self.proxy, source, local, Port::tcp(local.port())).is_ok()
    }

    /// Decides where a request to `uri` from `caller` goes.
    fn route(&self, caller: &Caller, uri: &Uri) -> Result<Destination, OutgoingError> {
        let authority = uri.authority().ok_or(OutgoingError::HttpRequestUriInvalid)?;
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = authority.host();
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        let (ip, rewritten): (Option<IpAddr>, Option<String>) = match literal {
            Some(ip) if ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST) => {
                (Some(caller.ip), Some(caller.ip.to_string()))
            }
            Some(ip) => (Some(ip), None),
            None if host.eq_ignore_ascii_case("localhost") => (Some(caller.ip), Some(caller.ip.to_string())),
            None => match self.proxy.lookup(host, &caller.namespace) {
                Lookup::Cluster { name, addresses } => (addresses.first().map(|ip| IpAddr::V4(*ip)), Some(name)),
                Lookup::NotFound => {
                    return Err(OutgoingError::DnsError {
                        rcode: Some("NXDOMAIN".into()),
                        info_code: None,
                    });
                }
                Lookup::External => (None, None),
            },
        };
        if let Some(ip) = ip {
            let addr = SocketAddr::new(ip, port);
            let frontend = self.proxy.frontend(addr);
            // Plain HTTP to a Wasm pod of this node, through its Service
            // or at its address: in-process.
            let local = match &frontend {
                _ if https || !caller.in_process => None,
                Some(frontend) => frontend
                    .pick()
                    .next()
                    .filter(|backend| backend.route == Route::Local)
                    .and_then(|backend| Some((backend.addr, self.local.get(backend.addr)?))),
                None => self.local.get(addr).map(|service| (addr, service)),
            };
            if let Some((target, service)) = local {
                return Ok(match self.policy(caller, target) {
                    Ok(()) => Destination::Local(service),
                    Err(refusal) => Destination::Denied(refusal),
                });
            }
            // A Service's endpoints are checked by the proxy, which sees
            // the pod as the source; any other address here.
            if frontend.is_none()
                && let Err(refusal) = self.policy(caller, addr)
            {
                return Ok(Destination::Denied(refusal));
            }
        }
        let uri = match rewritten {
            None => uri.clone(),
            Some(host) => {
                let host = if host.contains(':') { format!("[{host}]") } else { host };
                let authority: Authority = format!("{host}:{port}")
                    .parse()
                    .map_err(|_| OutgoingError::HttpRequestUriInvalid)?;
                let mut uri_parts = uri.clone().into_parts();
                uri_parts.authority = Some(authority);
                Uri::from_parts(uri_parts).map_err(|_| OutgoingError::HttpRequestUriInvalid)?
            }
        };
        Ok(Destination::Remote(uri))
    }
}

/// Whether `source` may connect to `target` on `port`; a refusal is
/// reported (one Event per policy) and described.
fn admit(proxy: &Proxy, source: IpAddr, target: SocketAddr, port: Port) -> Result<(), String> {
    let policies = proxy.policies();
    if policies.is_empty() {
        return Ok(());
    }
    let decision = policies.connection(source, target.ip(), None, port);
    if decision.is_allowed() {
        return Ok(());
    }
    proxy.report(&decision, &format!("{source} to {target}"));
    Err(format!("{source} may not connect to {target}: {}", decision.describe()))
}

/// Maps a pooled client's failure to the error code the guest sees.
fn client_error(error: &hyper_util::client::legacy::Error) -> OutgoingError {
    // A request body over its limit fails the request with that reason.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(OutgoingError::HttpRequestBodySize(limit)) = current.downcast_ref::<OutgoingError>() {
            return OutgoingError::HttpRequestBodySize(*limit);
        }
        source = current.source();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(dial) = current.downcast_ref::<DialError>() {
            return dial.code();
        }
        if let Some(hyper) = current.downcast_ref::<hyper::Error>()
            && !error.is_connect()
        {
            return if hyper.is_incomplete_message() || hyper.is_closed() {
                OutgoingError::HttpResponseIncomplete
            } else {
                OutgoingError::HttpProtocolError
            };
        }
        if let Some(io) = current.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::InvalidData => OutgoingError::TlsCertificateError,
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => OutgoingError::ConnectionTerminated,
                _ => OutgoingError::InternalError(Some(io.to_string())),
            };
        }
        source = current.source();
    }
    OutgoingError::InternalError(Some(error.to_string()))
}

tokio::task_local! {
    /// The connect timeout of the request being sent, read by the dialer:
    /// the pooled client hands its connector only a URI.
    static CONNECT_TIMEOUT: Duration;
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("cannot resolve {0}")]
    Unresolvable(String),
    #[error("connecting timed out")]
    Timeout,
    #[error("the node's outgoing connection limit is reached")]
    Limit,
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Io(#[source] io::Error),
}

impl DialError {
    fn code(&self) -> OutgoingError {
        match self {
            DialError::Unresolvable(_) => OutgoingError::DnsError {
                rcode: Some("NXDOMAIN".into()),
                info_code: None,
            },
            DialError::Timeout => OutgoingError::ConnectionTimeout,
            DialError::Limit => OutgoingError::ConnectionLimitReached,
            DialError::Denied(_) => OutgoingError::HttpRequestDenied,
            DialError::Io(error) => match error.kind() {
                io::ErrorKind::ConnectionRefused => OutgoingError::ConnectionRefused,
                io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::HostUnreachable => OutgoingError::DestinationUnavailable,
                _ => OutgoingError::InternalError(Some(error.to_string())),
            },
        }
    }
}

/// Opens a pod's outgoing connections: resolves the host (cluster names
/// in-process, others through the node's resolver), holds one of the
/// node's connection slots for as long as the connection lives, and
/// leaves from the pod's address when the destination is on the node's
/// loopback (pods, ClusterIPs); other destinations see the node.
#[derive(Clone)]
struct Dialer {
    proxy: Arc<Proxy>,
    connections: Arc<Semaphore>,
    connect_timeout: Duration,
    source: IpAddr,
}

impl tower_service::Service<Uri> for Dialer {
    type Response = Conn;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, DialError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let timeout = CONNECT_TIMEOUT.try_with(|t| *t).unwrap_or(self.connect_timeout);
        let dialer = self.clone();
        Box::pin(async move {
            tokio::time::timeout(timeout, dialer.dial(&uri))
                .await
                .map_err(|_| DialError::Timeout)?
        })
    }
}

impl Dialer {
    async fn dial(&self, uri: &Uri) -> Result<Conn, DialError> {
        let permit = self
            .connections
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| DialError::Limit)?;
        let host = uri.host().unwrap_or_default();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme() == Some(&Scheme::HTTPS) { 443 } else { 80 });
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        let addrs: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => match self.proxy.lookup(&format!("{host}."), "") {
                Lookup::Cluster { addresses, .. } => addresses
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip.into(), port))
                    .collect(),
                Lookup::NotFound => Vec::new(),
                Lookup::External => tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|_| DialError::Unresolvable(host.to_string()))?
                    .collect(),
            },
        };
        let mut last = DialError::Unresolvable(host.to_string());
        for addr in addrs {
            if self.proxy.frontend(addr).is_none()
                && let Err(refusal) = admit(&self.proxy, self.source, addr, Port::tcp(addr.port()))
            {
                last = DialError::Denied(refusal);
                continue;
            }
            match self.connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(Conn {
                        io: TokioIo::new(stream),
                        _permit: permit,
                    });
                }
                Err(error) => last = DialError::Io(error),
            }
        }
        Err(last)
    }
}

impl Dialer {
    async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        match (addr.ip(), self.source) {
            (IpAddr::V4(ip), IpAddr::V4(source)) if ip.is_loopback() && source.is_loopback() => {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(source.into(), 0))?;
                socket.connect(addr).await
            }
            _ => TcpStream::connect(addr).await,
        }
    }
}

/// An outgoing connection, holding its slot of the node's limit.
struct Conn {
    io: TokioIo<TcpStream>,
    _permit: OwnedSemaphorePermit,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A request body that fails once it carries more than its limit.
struct Capped {
    inner: WasiBody,
    left: u64,
    limit: u64,
}

impl Capped {
    fn new(inner: WasiBody, limit: u64) -> Capped {
        Capped {
            inner,
            left: limit,
            limit,
        }
    }
}

impl Body for Capped {
    type Data = Bytes;
    type Error = OutgoingError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, OutgoingError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let length = data.len() as u64;
            if length > self.left {
                return Poll::Ready(Some(Err(OutgoingError::HttpRequestBodySize(Some(self.limit)))));
            }
            self.left -= length;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body handed to a pod's handler in-process. What the handler
/// leaves unread is read to its end and dropped once the handler lets go
/// of it, as an HTTP server drains a request it answered without reading:
/// the caller's writes then succeed, as they would over a connection.
struct Drained(Option<WasiBody>);

/// How long an unread request body is drained before it is dropped.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

impl Body for Drained {
    type Data = Bytes;
    type Error = OutgoingError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, OutgoingError>>> {
        match self.0.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        if let Some(mut body) = self.0.take().filter(|b| !b.is_end_stream())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(tokio::time::timeout(DRAIN_LIMIT, async move {
                while let Some(Ok(_)) = body.frame().await {}
            }));
        }
    }
}

/// A response body that fails when the next frame takes longer than the
/// between-bytes timeout, and holds the pod's in-flight slot until it
/// ends.
struct Watched {
    inner: WasiBody,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl Watched {
    fn new(inner: WasiBody, idle: Duration, permit: OwnedSemaphorePermit) -> Watched {
        Watched {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            _permit: permit,
        }
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = OutgoingError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, OutgoingError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + self.idle;
                self.timer.as_mut().reset(next);
                Poll::Ready(frame)
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(OutgoingError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
