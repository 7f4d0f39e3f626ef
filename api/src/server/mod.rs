//! The HTTP face: an axum router that authenticates, serves discovery and
//! OpenAPI, and dispatches resource requests to the registry; and a TLS
//! listener that serves it over HTTP/2 and HTTP/1.1.

pub mod backup;
mod connect;
mod custom_metrics;
pub mod encryption;
pub mod inflight;
mod kubernetes_service;
pub mod members;
pub mod metrics;
mod negotiate;
pub mod node_client;
mod pretty;
mod query;
pub mod resource_metrics;
mod resources;
mod reviews;
pub mod trace;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;
use skiff_store::Store;

use crate::auth::{Authentication, Authorizer, ClientCertificate, Outcome, UserInfo};
use crate::catalog::Catalog;
use crate::discovery;
use crate::error::ApiError;
use crate::openapi::OpenApi;
use crate::registry::Registry;
use crate::services::ServiceRanges;

pub use query::Query;

/// How a server is set up beyond its store and its authenticators.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Where Services get their ClusterIPs and node ports.
    pub service_ranges: ServiceRanges,
    /// The cluster CA (PEM) that new namespaces publish in their
    /// `kube-root-ca.crt` ConfigMap; none without it.
    pub root_ca: Option<String>,
    /// How node agents' endpoints are reached.
    pub node_client: node_client::NodeClient,
    /// How many requests may be in flight.
    pub inflight: inflight::Limits,
    /// Audit logging (`--audit-policy-file`); none without a policy.
    pub audit: Option<crate::audit::Audit>,
    /// The store key prefixes encrypted at rest, each with the form it is
    /// written in now ([`crate::encryption::Encryption::write_forms`]).
    pub encrypted: Vec<(String, String)>,
    /// How often the Metrics API reads a node's summary; metrics-server's
    /// 15 s when unset.
    pub metric_resolution: Option<std::time::Duration>,
    /// Leave requests uncounted: no request-metrics layer, so
    /// `apiserver_request_total` and its kin stay empty. Only for
    /// benchmarks measuring what counting costs (`skiff server
    /// --no-request-metrics`).
    pub skip_request_metrics: bool,
}

/// Everything a request handler needs. Shared behind an `Arc`.
#[derive(Debug)]
pub struct ApiServer {
    pub registry: Registry,
    pub catalog: Catalog,
    openapi: OpenApi,
    pub authentication: Authentication,
    pub authorizer: Authorizer,
    pub node_client: node_client::NodeClient,
    inflight: inflight::InFlight,
    audit: Option<crate::audit::Audit>,
    encrypted: Vec<(String, String)>,
    /// `/metrics`, where other components register theirs too.
    pub metrics: metrics::Metrics,
    /// Whether requests are counted ([`Settings::skip_request_metrics`]).
    request_metrics: bool,
    resource_metrics: resource_metrics::Scraper,
}

impl ApiServer {
    /// A server over `store`. Must be called within a Tokio runtime: the
    /// authorizer follows the store's RBAC objects and pods from here on.
    pub fn new(store: Store, authentication: Authentication) -> Arc<ApiServer> {
        ApiServer::with_settings(store, authentication, Settings::default())
    }

    /// A server set up with `settings`.
    pub fn with_settings(store: Store, authentication: Authentication, settings: Settings) -> Arc<ApiServer> {
        let catalog = Catalog::new();
        let authorizer = Authorizer::follow(&store);
        let authentication = authentication.following(&store);
        let mut registry = Registry::new(store, catalog.clone()).with_service_ranges(settings.service_ranges);
        if let Some(ca) = &settings.root_ca {
            registry = registry.with_root_ca(ca);
        }
        registry
            .admission()
            .add_builtin(Arc::new(crate::auth::builtin::NodeRestriction));
        registry
            .admission()
            .add_builtin(Arc::new(crate::auth::builtin::Escalation {
                authorizer: authorizer.clone(),
            }));
        registry
            .admission()
            .add_builtin(Arc::new(crate::auth::builtin::CertificateApproval {
                authorizer: authorizer.clone(),
            }));
        registry
            .admission()
            .add_builtin(Arc::new(crate::auth::builtin::CertificateSigning {
                authorizer: authorizer.clone(),
            }));
        registry
            .admission()
            .add_builtin(Arc::new(crate::auth::builtin::CertificateSubjectRestriction));
        registry
            .admission()
            .add_builtin(Arc::new(crate::auth::builtin::ScaleFromZero));
        Arc::new(ApiServer {
            registry,
            catalog,
            openapi: OpenApi::default(),
            authentication,
            authorizer,
            node_client: settings.node_client,
            inflight: inflight::InFlight::new(settings.inflight),
            audit: settings.audit,
            encrypted: settings.encrypted,
            metrics: metrics::Metrics::default(),
            request_metrics: !settings.skip_request_metrics,
            resource_metrics: resource_metrics::Scraper::new(
                settings
                    .metric_resolution
                    .unwrap_or(resource_metrics::DEFAULT_RESOLUTION),
            ),
        })
    }

    /// Loads the stored CRDs (and follows them from then on), and creates
    /// the objects every skiff cluster has: the system namespaces, as
    /// kube-apiserver does on start, and the RuntimeClasses `wasmtime` and
    /// `runc` that pods may name to force a runtime, the default
    /// IngressClass `skiff`, the Service `kube-system/kube-dns`, and the
    /// CustomResourceDefinition of skiff's `WasmPlugin` kind. Existing ones
    /// are left alone. Then the bootstrap RBAC policy is reconciled.
    pub async fn bootstrap(&self) -> crate::Result<()> {
        crate::crd::sync(self.registry.store().clone(), self.catalog.clone()).await?;
        let namespaces = SYSTEM_NAMESPACES.iter().map(|name| {
            (
                ("", "v1", "namespaces"),
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            )
        });
        let classes = RUNTIME_CLASSES.iter().map(|name| {
            (
                ("node.k8s.io", "v1", "runtimeclasses"),
                serde_json::json!({
                    "apiVersion": "node.k8s.io/v1",
                    "kind": "RuntimeClass",
                    "metadata": {"name": name, "labels": {"skiff.dev/builtin": "true"}},
                    "handler": name,
                }),
            )
        });
        // The class skiff's node proxies serve, the default for Ingresses
        // that name none.
        let ingress_class = std::iter::once((
            ("networking.k8s.io", "v1", "ingressclasses"),
            serde_json::json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": {
                    "name": "skiff",
                    "labels": {"skiff.dev/builtin": "true"},
                    "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
                },
                "spec": {"controller": "skiff.dev/ingress"},
            }),
        ));
        // The cluster DNS every node's proxy answers on, at the tenth
        // address of the service range as kubeadm places it.
        let dns = self.registry.service_ranges().cluster_ips.nth(10).map(|ip| {
            (
                ("", "v1", "services"),
                serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": "kube-dns",
                        "namespace": "kube-system",
                        "labels": {"skiff.dev/builtin": "true", "k8s-app": "kube-dns"},
                    },
                    "spec": {"clusterIP": ip.to_string(), "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
                }),
            )
        });
        let crds = std::iter::once((
            ("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
            wasm_plugin_crd()?,
        ));
        for ((group, version, plural), object) in namespaces.chain(classes).chain(ingress_class).chain(dns).chain(crds)
        {
            let Some(resource) = self.catalog.lookup(group, version, plural) else {
                continue;
            };
            let namespace = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let options = crate::options::WriteOptions {
                user: UserInfo::apiserver(),
                ..Default::default()
            };
            match self
                .registry
                .create(&resource, namespace.as_deref(), object, &options)
                .await
            {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
                Err(error) => return Err(error),
            }
        }
        crate::auth::reconcile::reconcile(&self.registry).await
    }

    /// The router: health and version for anyone, everything else for
    /// authenticated users; all of it counted in the metrics, and audited
    /// when auditing is on.
    pub fn router(self: &Arc<ApiServer>) -> Router {
        let router = Router::new()
            .route("/healthz", get(health))
            .route("/livez", get(health))
            .route("/readyz", get(ready))
            .route("/version", get(version))
            // The Python client's `VersionApi` asks with a trailing slash,
            // which kube-apiserver trims here (and in discovery paths, as
            // `dispatch` does); `/healthz/` and `/openapi/v2/` are 404 there.
            .route("/version/", get(version))
            .route("/openapi/v2", get(openapi_v2))
            .route("/openapi/v3", get(openapi_v3_index))
            .route("/openapi/v3/{*path}", get(openapi_v3))
            .route("/.well-known/openid-configuration", get(openid_configuration))
            .route("/openid/v1/jwks", get(openid_jwks))
            .route(backup::PATH, get(backup::serve))
            .route(encryption::STATUS_PATH, get(encryption::status))
            .route(encryption::REENCRYPT_PATH, axum::routing::post(encryption::reencrypt))
            .route(members::PATH, get(members::list))
            .route(members::MEMBER_PATH, axum::routing::delete(members::remove))
            .route(metrics::PATH, get(metrics::serve))
            .fallback(dispatch)
            .layer(middleware::from_fn_with_state(self.inflight.clone(), inflight::limit))
            .layer(middleware::from_fn_with_state(self.clone(), authenticate))
            .layer(middleware::from_fn(pretty::layer));
        let router = if self.request_metrics {
            router.layer(middleware::from_fn_with_state(self.metrics.clone(), metrics::layer))
        } else {
            router
        };
        let router = match &self.audit {
            Some(audit) => router.layer(middleware::from_fn_with_state(audit.clone(), crate::audit::layer)),
            None => router,
        };
        // Outermost, so that everything the request does is in its span.
        let router = router.layer(middleware::from_fn(trace::layer));
        router.with_state(self.clone())
    }

    /// Auditing, when it is on: how its events fared.
    pub fn audit_stats(&self) -> Option<crate::audit::sink::Stats> {
        self.audit.as_ref().map(crate::audit::Audit::stats)
    }
}

/// The `WasmPlugin` kind (`skiff.dev/v1alpha1`), which loads scheduler
/// and admission plugins (see the `skiff-plugin-host` crate).
fn wasm_plugin_crd() -> crate::Result<serde_json::Value> {
    serde_json::from_str(include_str!("wasmplugins.crd.json")).map_err(|error| {
        tracing::error!(%error, "the built-in WasmPlugin CRD does not parse");
        ApiError::Internal
    })
}

const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// One RuntimeClass per node runtime; the handler names the runtime.
const RUNTIME_CLASSES: [&str; 2] = ["wasmtime", "runc"];

/// Authentication, impersonation, and authorization of every request that
/// is not for a resource (those are authorized once parsed, with their
/// verb): health, version, discovery, OpenAPI, the OpenID documents.
async fn authenticate(State(server): State<Arc<ApiServer>>, mut request: Request, next: Next) -> Response {
    let recorder = request.extensions().get::<crate::audit::Recorder>().cloned();
    let certificate = request.extensions().get::<ClientCertificate>().cloned();
    let outcome = server
        .authentication
        .authenticate(server.registry.store(), request.headers(), certificate.as_ref())
        .await;
    let user = match outcome {
        Outcome::User(user) => user,
        Outcome::Anonymous => UserInfo::anonymous(),
        Outcome::Refused(reason) => {
            tracing::debug!(path = %request.uri().path(), %reason, "authentication refused");
            return ApiError::Unauthorized.into_response();
        }
    };
    if let Some(recorder) = &recorder {
        recorder.authenticated(&user);
    }
    let user = match crate::auth::impersonate::resolve(&server.authorizer, user, request.headers()) {
        Ok(user) => user,
        Err(error) => return error.into_response(),
    };
    if let Some(recorder) = &recorder
        && request.headers().contains_key("impersonate-user")
    {
        recorder.impersonating(&user);
    }
    let path = request.uri().path();
    if crate::request::parse(request.method(), path, false).is_none() {
        let verb = request.method().as_str().to_ascii_lowercase();
        let attributes = crate::auth::Attributes::non_resource(user.clone(), verb, path);
        let checked = server.check(&attributes);
        if let Some(recorder) = &recorder {
            recorder.authorized(checked.is_ok());
        }
        if let Err(error) = checked {
            return error.into_response();
        }
    }
    request.extensions_mut().insert(user);
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    tracing::debug!(%method, %uri, status = response.status().as_u16(), "request");
    response
}

impl ApiServer {
    /// [`ApiServer::check`], giving a node that is refused an object of a
    /// namespace a second chance once the Node authorizer has read that
    /// namespace's pods from the store.
    pub async fn check_resource(&self, attributes: &crate::auth::Attributes) -> crate::Result<()> {
        match (self.check(attributes), &attributes.target) {
            (Err(ApiError::Forbidden(_)), crate::auth::Target::Resource(r))
                if attributes.user.node_name().is_some() && !r.namespace.is_empty() =>
            {
                self.authorizer
                    .refresh_namespace(self.registry.store(), &r.namespace)
                    .await;
                self.check(attributes)
            }
            (checked, _) => checked,
        }
    }

    /// Authorizes a request: Ok, or the Status to answer with (401 for an
    /// anonymous user, who may yet authenticate; 403 for anyone else).
    pub fn check(&self, attributes: &crate::auth::Attributes) -> crate::Result<()> {
        match self.authorizer.authorize(attributes) {
            crate::auth::Decision::Allow => Ok(()),
            _ if attributes.user.is_anonymous() => Err(ApiError::Unauthorized),
            crate::auth::Decision::NoOpinion(reason) | crate::auth::Decision::Deny(reason) => {
                Err(ApiError::Forbidden(crate::auth::forbidden_message(attributes, &reason)))
            }
        }
    }
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(State(server): State<Arc<ApiServer>>) -> Response {
    match server.registry.store().read_barrier().await {
        Ok(()) => "ok".into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("[-]store failed: {error}\nreadyz check failed\n"),
        )
            .into_response(),
    }
}

/// Indented and without a trailing newline, as kube-apiserver writes it.
async fn version() -> Response {
    let text = serde_json::to_string_pretty(&discovery::version()).unwrap_or_default();
    let mut response = (StatusCode::OK, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// OpenAPI v2 as JSON; a client that accepts only protobuf (kubectl,
/// validating a `List` on the client) gets the document's protobuf
/// header without definitions, so it validates nothing itself and leaves
/// validation to the server (`fieldValidation`).
async fn openapi_v2(State(server): State<Arc<ApiServer>>, headers: http::HeaderMap) -> Response {
    const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains(PROTOBUF) && !accept.contains("json") {
        let mut response = (StatusCode::OK, crate::openapi::v2_protobuf_stub()).into_response();
        response
            .headers_mut()
            // The Accept form's `@` is not valid in a media type Go parses.
            .insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
            );
        return response;
    }
    json(StatusCode::OK, &server.openapi.v2(&server.catalog))
}

async fn openapi_v3_index(State(server): State<Arc<ApiServer>>) -> Response {
    json(StatusCode::OK, &server.openapi.v3_index(&server.catalog))
}

async fn openapi_v3(
    State(server): State<Arc<ApiServer>>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Response {
    match server.openapi.v3(&server.catalog, &path) {
        Some(doc) => json(StatusCode::OK, &doc),
        None => ApiError::NoSuchRoute.into_response(),
    }
}

/// The OpenID discovery document of the ServiceAccount token issuer, as
/// kube-apiserver serves it (to `system:service-account-issuer-discovery`).
async fn openid_configuration(State(server): State<Arc<ApiServer>>) -> Response {
    match server.authentication.service_account_keys() {
        Some(keys) => json(StatusCode::OK, &keys.openid_configuration(keys.issuer())),
        None => ApiError::NoSuchRoute.into_response(),
    }
}

/// The public keys that verify ServiceAccount tokens.
async fn openid_jwks(State(server): State<Arc<ApiServer>>) -> Response {
    match server.authentication.service_account_keys() {
        Some(keys) => {
            let mut response = json(StatusCode::OK, &keys.jwks());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            );
            response
        }
        None => ApiError::NoSuchRoute.into_response(),
    }
}

fn json(status: StatusCode, body: &Value) -> Response {
    // Ends with a newline, as Go's `json.Encoder` ends it.
    let mut text = body.to_string();
    text.push('\n');
    let mut response = (status, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn aggregated(body: &Value) -> Response {
    let mut response = json(StatusCode::OK, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
    );
    response
}

/// Discovery documents under `/api` and `/apis`, then resources.
async fn dispatch(State(server): State<Arc<ApiServer>>, request: Request) -> Response {
    let path = request.uri().path().trim_end_matches('/').to_string();
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let wants_aggregated = discovery::wants_aggregated(accept.as_deref());
    let catalog = &server.catalog;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let document = match parts.as_slice() {
        ["api"] if wants_aggregated => return aggregated(&discovery::aggregated(catalog, true)),
        ["apis"] if wants_aggregated => return aggregated(&discovery::aggregated(catalog, false)),
        ["api"] => Some(discovery::api_versions()),
        ["apis"] => Some(discovery::group_list(catalog)),
        ["api", version] => discovery::resource_list(catalog, "", version),
        ["apis", group] => discovery::group(catalog, group),
        ["apis", group, version] => discovery::resource_list(catalog, group, version),
        _ => {
            return match resources::handle(server.clone(), request).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            };
        }
    };
    match document {
        Some(document) if request.method() == http::Method::GET => json(StatusCode::OK, &document),
        Some(_) => ApiError::MethodNotSupported.into_response(),
        None => ApiError::NoSuchRoute.into_response(),
    }
}

/// HTTP/2 streams one connection may hold open at once.
const MAX_STREAMS_PER_CONNECTION: u32 = 1000;

/// Serves `router` over TLS on `listener` until `shutdown` completes.
/// Each connection speaks HTTP/2 or HTTP/1.1, as ALPN decides.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        // Replies are small writes; Nagle's algorithm would hold them back
        // for the peer's delayed ACK.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(error) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
            };
            // A client certificate, if any, was verified against the
            // cluster CA in the handshake; authentication reads its subject.
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| ClientCertificate(Arc::from(leaf.as_ref())));
            let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                router,
                move |mut request: http::Request<hyper::body::Incoming>| {
                    if let Some(certificate) = &certificate {
                        request.extensions_mut().insert(certificate.clone());
                    }
                    // The peer's address, for the audit log's source IPs.
                    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    request
                },
            ));
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // Watches hold their stream open: allow many per connection.
            builder.http2().max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
            let result = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await;
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

/// Streams watch lines as a response body.
fn stream_body(stream: impl futures::Stream<Item = bytes::Bytes> + Send + 'static) -> Body {
    use futures::StreamExt;
    Body::from_stream(stream.map(Ok::<_, Infallible>))
}
