//! An HTTP/2-over-TLS client for skiff's Kubernetes API, as lean as the
//! load needs: bearer token and CA from the data directory the server
//! wrote, a few connections shared by all tasks.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// A client of one API server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiClient {
    /// Several HTTP/2 connections: one carries at most the server's
    /// concurrent-stream limit, and watches hold their streams open.
    clients: Arc<Vec<Client<Https, Full<Bytes>>>>,
    next: Arc<AtomicUsize>,
    base: String,
    token: String,
}

impl ApiClient {
    /// Connects to the server at `addr` whose data directory is `data_dir`.
    pub fn new(addr: &str, data_dir: &Path, connections: usize) -> anyhow::Result<ApiClient> {
        let ca = std::fs::read(data_dir.join("pki/ca.crt")).context("reading the server's CA")?;
        let token = std::fs::read_to_string(data_dir.join("pki/admin.token")).context("reading the admin token")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca) {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut clients = Vec::new();
        for _ in 0..connections.max(1) {
            let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            let mut tcp = HttpConnector::new();
            tcp.set_nodelay(true);
            tcp.enforce_http(false);
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_only()
                .enable_http2()
                .wrap_connector(tcp);
            clients.push(
                Client::builder(TokioExecutor::new())
                    .http2_only(true)
                    .pool_max_idle_per_host(1)
                    .build(connector),
            );
        }
        Ok(ApiClient {
            clients: Arc::new(clients),
            next: Arc::new(AtomicUsize::new(0)),
            base: format!("https://{addr}"),
            token: token.trim().to_string(),
        })
    }

    /// The same connections, authenticating with `token` instead of the
    /// admin's.
    pub fn with_token(&self, token: &str) -> ApiClient {
        ApiClient {
            token: token.to_string(),
            ..self.clone()
        }
    }

    fn client(&self) -> &Client<Https, Full<Bytes>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        &self.clients[i]
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        Ok(Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?)
    }

    /// Sends a request and reads the whole reply; non-2xx is an error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> anyhow::Result<Bytes> {
        let request = self.request(method, path, body, content_type)?;
        let response = self.client().request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("{status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(bytes)
    }

    /// Opens a watch; the body streams newline-delimited events.
    pub async fn watch(&self, path: &str) -> anyhow::Result<hyper::body::Incoming> {
        let request = self.request(Method::GET, path, None, "application/json")?;
        let response = self.client().request(request).await?;
        if response.status() != StatusCode::OK {
            bail!("watch {path}: {}", response.status());
        }
        Ok(response.into_body())
    }
}
