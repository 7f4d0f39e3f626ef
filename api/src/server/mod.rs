//! The HTTP face: an axum router that authenticates, serves discovery and
//! OpenAPI, and dispatches resource requests to the registry; and a TLS
//! listener that serves it over HTTP/2 and HTTP/1.1.

mod kubernetes_service;
mod negotiate;
mod pretty;
mod query;
mod resources;

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

use crate::auth::{AllowAdmins, Authenticator, Authorizer, User};
use crate::catalog::Catalog;
use crate::discovery;
use crate::error::ApiError;
use crate::openapi::OpenApi;
use crate::registry::Registry;
use crate::services::ServiceRanges;

pub use query::Query;

/// Everything a request handler needs. Shared behind an `Arc`.
#[derive(Debug)]
pub struct ApiServer {
    pub registry: Registry,
    pub catalog: Catalog,
    openapi: OpenApi,
    authenticator: Arc<dyn Authenticator>,
    authorizer: Arc<dyn Authorizer>,
}

impl ApiServer {
    pub fn new(store: Store, authenticator: Arc<dyn Authenticator>) -> Arc<ApiServer> {
        ApiServer::with_service_ranges(store, authenticator, ServiceRanges::default())
    }

    /// A server whose Services get their addresses from `ranges`.
    pub fn with_service_ranges(
        store: Store,
        authenticator: Arc<dyn Authenticator>,
        ranges: ServiceRanges,
    ) -> Arc<ApiServer> {
        let catalog = Catalog::new();
        Arc::new(ApiServer {
            registry: Registry::new(store, catalog.clone()).with_service_ranges(ranges),
            catalog,
            openapi: OpenApi::default(),
            authenticator,
            authorizer: Arc::new(AllowAdmins),
        })
    }

    /// Loads the stored CRDs (and follows them from then on), and creates
    /// the objects every skiff cluster has: the system namespaces, as
    /// kube-apiserver does on start, and the RuntimeClasses `wasmtime` and
    /// `runc` that pods may name to force a runtime, the default
    /// IngressClass `skiff`, the Service `kube-system/kube-dns`, and the
    /// CustomResourceDefinition of skiff's `WasmPlugin` kind. Existing ones
    /// are left alone.
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
                user: User::apiserver(),
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
        Ok(())
    }

    /// The router: health and version for anyone, everything else for
    /// authenticated users.
    pub fn router(self: &Arc<ApiServer>) -> Router {
        Router::new()
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
            .fallback(dispatch)
            .layer(middleware::from_fn_with_state(self.clone(), authenticate))
            .layer(middleware::from_fn(pretty::layer))
            .with_state(self.clone())
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

/// Paths anyone may read, as Kubernetes' `system:public-info-viewer`.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version" | "/version/")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

async fn authenticate(State(server): State<Arc<ApiServer>>, mut request: Request, next: Next) -> Response {
    let user = server.authenticator.authenticate(request.headers());
    match user {
        Some(user) => {
            request.extensions_mut().insert(user);
        }
        None if is_public(request.uri().path()) => {
            request.extensions_mut().insert(User::anonymous());
        }
        None => return ApiError::Unauthorized.into_response(),
    }
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    tracing::debug!(%method, %uri, status = response.status().as_u16(), "request");
    response
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
            let service = TowerToHyperService::new(router);
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
