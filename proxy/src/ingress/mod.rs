//! The node's Ingress listener: one HTTP and one HTTPS address per node,
//! serving the Ingresses of class `skiff` (or of no class).
//!
//! A request is matched against the merged rules ([`rules`]) and handed
//! to the backend Service's endpoints the way the service proxy hands a
//! ClusterIP request ([`crate::forward`]): per request, to a ready
//! endpoint on any node, 503 with the reason when there is none. HTTPS
//! takes its certificates from the `kubernetes.io/tls` Secrets the TLS
//! sections name, chosen by SNI; a host with no usable certificate gets a
//! self-signed fallback, as ingress-nginx does.
//!
//! Problems an Ingress has (a backend Service or port that does not exist,
//! a missing or unreadable Secret) are reported as Warning Events on it;
//! the node's address is added to its `status.loadBalancer.ingress`.
//!
//! A listener whose address cannot be bound (another process holds the
//! port) is tried again with back-off ([`crate::retry`]) until it binds.
//! The failure is logged once per streak at warn level and not recorded
//! as an Event: the listener belongs to no single object (every Ingress
//! of the class is served through it, and there may be none yet), unlike
//! a Service frontend or the cluster DNS.

pub mod rules;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use http::StatusCode;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{Patch, PatchParams};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use skiff_client::events::{Kind, Recorder};
use tokio::net::{TcpListener, TcpSocket};

use crate::Shared;
use crate::forward::{self, Body, text};
use crate::retry::{self, Backoff};
use crate::table::{PortRef, key_of};
use rules::{Port, Rules, Target};

/// What the listeners serve from, replaced whole on every change.
#[derive(Default)]
pub(crate) struct State {
    rules: Rules,
    /// Certificates by Secret (namespace, name).
    certificates: HashMap<(String, String), Arc<CertifiedKey>>,
}

/// The current [`State`], shared by the listeners and the sync loop.
#[derive(Clone, Default)]
pub(crate) struct Current(Arc<RwLock<Arc<State>>>);

impl Current {
    fn get(&self) -> Arc<State> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, state: State) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
    }
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ingress::Current")
    }
}

/// Picks a certificate by SNI.
#[derive(Debug)]
struct Resolver {
    current: Current,
    fallback: Arc<CertifiedKey>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let state = self.current.get();
        let chosen = hello
            .server_name()
            .and_then(|sni| state.rules.certificate_for(sni))
            .and_then(|(namespace, name)| state.certificates.get(&(namespace.to_string(), name.to_string())));
        Some(chosen.cloned().unwrap_or_else(|| self.fallback.clone()))
    }
}

/// A certificate and key from a `kubernetes.io/tls` Secret.
fn certified_key(secret: &Secret) -> Result<CertifiedKey, String> {
    let data = secret.data.as_ref();
    let field = |key: &str| {
        data.and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("it has no {key}"))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&field("tls.crt")?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt is not PEM certificates: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&field("tls.key")?)
        .map_err(|e| format!("tls.key is not a PEM private key: {e}"))?;
    let key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| format!("tls.key cannot sign: {e}"))?;
    Ok(CertifiedKey::new(chain, key))
}

fn fallback_certificate() -> Result<Arc<CertifiedKey>, String> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["skiff-ingress.invalid".to_string()]).map_err(|e| e.to_string())?;
    let key =
        PrivateKeyDer::from_pem_slice(generated.signing_key.serialize_pem().as_bytes()).map_err(|e| e.to_string())?;
    let key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(vec![generated.cert.der().clone()], key)))
}

fn port_ref(port: &Port) -> PortRef<'_> {
    match port {
        Port::Number(n) => PortRef::Number(*n),
        Port::Name(name) => PortRef::Name(name),
    }
}

/// The host a request names, without its port: the URI's authority, else
/// the Host header.
fn request_host(request: &Request<Incoming>) -> String {
    let from_header = || {
        let header = request.headers().get(hyper::header::HOST)?.to_str().ok()?;
        Some(header.parse::<http::uri::Authority>().ok()?.host().to_string())
    };
    request
        .uri()
        .host()
        .map(str::to_string)
        .or_else(from_header)
        .unwrap_or_default()
}

/// Answers one request that came in on the Ingress listener.
async fn answer(
    request: Request<Incoming>,
    source: std::net::IpAddr,
    shared: Arc<Shared>,
    current: Current,
) -> hyper::Response<Body> {
    let host = request_host(&request);
    let path = request.uri().path().to_string();
    let state = current.get();
    let Some(backend) = state.rules.route(&host, &path) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no Ingress rule matches host {host:?} and path {path:?}, and no Ingress has a defaultBackend\n"),
        );
    };
    let (service, port) = match &backend.target {
        Target::Unsupported(why) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Ingress {}: {why}\n", backend.ingress),
            );
        }
        Target::Service { name, port } => (name, port),
    };
    match shared.table().service_port(&backend.namespace, service, port_ref(port)) {
        Ok(frontend) => forward::to_frontend(request, source, &frontend, &shared).await,
        Err(why) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Ingress {}: {why}\n", backend.ingress),
        ),
    }
}

/// Serves plain HTTP on `addr`, once it binds.
pub(crate) async fn serve_http(addr: SocketAddr, shared: Arc<Shared>, current: Current) {
    let listener = listen(addr, "HTTP").await;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (shared, current) = (shared.clone(), current.clone());
        tokio::spawn(forward::serve(TokioIo::new(stream), move |request| {
            answer(request, peer.ip(), shared.clone(), current.clone())
        }));
    }
}

/// Serves HTTPS on `addr`, once it binds, certificates chosen by SNI.
pub(crate) async fn serve_https(addr: SocketAddr, shared: Arc<Shared>, current: Current) {
    let fallback = match fallback_certificate() {
        Ok(fallback) => fallback,
        Err(error) => {
            tracing::warn!(%error, "cannot make the ingress fallback certificate; HTTPS ingress is off");
            return;
        }
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.with_no_client_auth().with_cert_resolver(Arc::new(Resolver {
                current: current.clone(),
                fallback,
            }))
        });
    let Ok(config) = config.as_mut() else {
        tracing::warn!("no TLS protocol versions; HTTPS ingress is off");
        return;
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config.clone()));
    let listener = listen(addr, "HTTPS").await;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (shared, current, acceptor) = (shared.clone(), current.clone(), acceptor.clone());
        tokio::spawn(async move {
            match acceptor.accept(stream).await {
                Ok(tls) => {
                    forward::serve(TokioIo::new(tls), move |request| {
                        answer(request, peer.ip(), shared.clone(), current.clone())
                    })
                    .await;
                }
                Err(error) => tracing::debug!(%error, %peer, "TLS handshake failed"),
            }
        });
    }
}

/// Rebuilds what the listeners serve, reports new problems as Events and
/// adds this node's address to each served Ingress's status.
pub(crate) struct Sync {
    pub(crate) current: Current,
    recorder: Recorder,
    client: kube::Client,
    node_ip: String,
    /// Problems already reported: (ingress uid, message).
    reported: BTreeSet<(String, String)>,
    /// Each TLS Secret's certificate as last read, with the
    /// resourceVersion it was read at, so a Secret is parsed once per
    /// change rather than on every sync.
    loaded: HashMap<(String, String), (Option<String>, Loaded)>,
}

/// A Secret's certificate, or the Event reason and message saying why
/// there is none.
type Loaded = Result<Arc<CertifiedKey>, (&'static str, String)>;

impl Sync {
    pub(crate) fn new(client: kube::Client, node_name: &str, node_ip: String) -> Sync {
        Sync {
            current: Current::default(),
            recorder: Recorder::new(client.clone(), "skiff-ingress", Some(node_name.to_string())),
            client,
            node_ip,
            reported: BTreeSet::new(),
            loaded: HashMap::new(),
        }
    }

    pub(crate) fn update(&mut self, ingresses: &[Arc<Ingress>], secrets: &[Arc<Secret>], table: &crate::table::Table) {
        let rules = Rules::compile(ingresses);
        let by_name: HashMap<(String, String), &Secret> =
            secrets.iter().map(|s| (key_of(&s.metadata), s.as_ref())).collect();
        let mut loaded = HashMap::new();
        for (namespace, name) in rules.secrets() {
            let key = (namespace.to_string(), name.to_string());
            let secret = by_name.get(&key);
            let version = secret.and_then(|s| s.metadata.resource_version.clone());
            let entry = match self.loaded.remove(&key) {
                Some(entry) if entry.0 == version => entry,
                _ => {
                    let result = match secret {
                        Some(secret) => certified_key(secret).map(Arc::new).map_err(|why| {
                            (
                                "InvalidSecret",
                                format!("TLS Secret {namespace}/{name} cannot be used: {why}"),
                            )
                        }),
                        None => Err(("SecretNotFound", format!("TLS Secret {namespace}/{name} not found"))),
                    };
                    (version, result)
                }
            };
            loaded.insert(key, entry);
        }
        self.loaded = loaded;
        // What is wrong with each Ingress, by `namespace/name`.
        let mut problems: HashMap<String, Vec<(&str, String)>> = HashMap::new();
        for backend in rules.backends() {
            let why = match &backend.target {
                Target::Unsupported(why) => Some(why.clone()),
                Target::Service { name, port } => table.service_port(&backend.namespace, name, port_ref(port)).err(),
            };
            if let Some(why) = why {
                problems
                    .entry(backend.ingress.clone())
                    .or_default()
                    .push(("BackendNotFound", why));
            }
        }
        let certificates = self
            .loaded
            .iter()
            .filter_map(|(key, (_, result))| Some((key.clone(), result.as_ref().ok()?.clone())))
            .collect();
        self.current.set(State { rules, certificates });

        let mut now: BTreeSet<(String, String)> = BTreeSet::new();
        for ingress in ingresses.iter().filter(|i| rules::is_ours(i)) {
            let (namespace, name) = key_of(&ingress.metadata);
            let mut mine = problems.remove(&format!("{namespace}/{name}")).unwrap_or_default();
            for secret in ingress
                .spec
                .iter()
                .flat_map(|s| s.tls.iter().flatten())
                .filter_map(|t| t.secret_name.clone())
            {
                if let Some((_, Err((reason, why)))) = self.loaded.get(&(namespace.clone(), secret)) {
                    mine.push((
                        reason,
                        format!("{why}; its hosts get a self-signed fallback certificate"),
                    ));
                }
            }
            let uid = ingress.metadata.uid.clone().unwrap_or_default();
            for (reason, message) in mine {
                let key = (uid.clone(), message.clone());
                if !self.reported.contains(&key) {
                    let reference = ObjectReference {
                        api_version: Some("networking.k8s.io/v1".into()),
                        kind: Some("Ingress".into()),
                        namespace: Some(namespace.clone()),
                        name: Some(name.clone()),
                        uid: ingress.metadata.uid.clone(),
                        ..ObjectReference::default()
                    };
                    self.recorder.record(&reference, Kind::Warning, reason, "Sync", message);
                }
                now.insert(key);
            }
            self.publish_address(ingress);
        }
        self.reported = now;
    }

    /// Adds this node's address to the Ingress's load balancer status.
    fn publish_address(&self, ingress: &Ingress) {
        let listed: Vec<String> = ingress
            .status
            .iter()
            .flat_map(|s| s.load_balancer.iter())
            .flat_map(|lb| lb.ingress.iter().flatten())
            .filter_map(|i| i.ip.clone())
            .collect();
        if listed.contains(&self.node_ip) {
            return;
        }
        let mut ips = listed;
        ips.push(self.node_ip.clone());
        ips.sort();
        let body = serde_json::json!({"status": {"loadBalancer": {"ingress":
            ips.iter().map(|ip| serde_json::json!({"ip": ip})).collect::<Vec<_>>()}}});
        let api: Api<Ingress> = Api::namespaced(
            self.client.clone(),
            ingress.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = ingress.metadata.name.clone().unwrap_or_default();
        tokio::spawn(async move {
            if let Err(error) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(body))
                .await
            {
                tracing::debug!(%error, ingress = %name, "cannot publish the ingress address");
            }
        });
    }
}

/// Pending connections per listener.
const BACKLOG: u32 = 1024;

/// Binds an Ingress listener, without `SO_REUSEPORT`: one node's proxy per
/// address.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The listener for `scheme` Ingress traffic on `addr`, bound with
/// back-off.
async fn listen(addr: SocketAddr, scheme: &str) -> TcpListener {
    let what = format!("{scheme} Ingress traffic");
    retry::until_bound(addr, &what, Backoff::default(), bind, |_| {}).await
}
