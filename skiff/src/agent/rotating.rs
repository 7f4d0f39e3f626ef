//! A kube client whose TLS client certificate can be replaced while it
//! runs, as the kubelet's client reads its certificate from its
//! certificate manager on every handshake.
//!
//! kube-rs reads a client certificate once, when a client is built; the
//! node agent holds its clients for its whole life. So the TLS
//! configuration here asks a [`RotatingIdentity`] for the certificate at
//! each handshake, and a renewal replaces what it holds. Connections
//! opened before a renewal keep the identity they were opened with until
//! they close (Kubernetes' client closes them on rotation; here they
//! live out their idle timeout, well before the old certificate expires).

use std::sync::{Arc, RwLock};

use anyhow::Context;
use hyper_util::client::legacy::connect::HttpConnector;
use kube::client::ConfigExt;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// The client certificate and key TLS handshakes present, replaceable.
pub struct RotatingIdentity {
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for RotatingIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingIdentity").finish_non_exhaustive()
    }
}

/// A certificate (PEM, the chain) and its key (PEM) in the form rustls
/// presents.
fn certified_key(cert_pem: &str, key_pem: &str) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("the client certificate is not PEM")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("the client key is not PEM")?;
    let provider = rustls::crypto::ring::default_provider();
    let certified =
        CertifiedKey::from_der(chain, key, &provider).context("the client key does not fit its certificate")?;
    Ok(Arc::new(certified))
}

impl RotatingIdentity {
    pub fn new(cert_pem: &str, key_pem: &str) -> anyhow::Result<Arc<RotatingIdentity>> {
        Ok(Arc::new(RotatingIdentity {
            current: RwLock::new(certified_key(cert_pem, key_pem)?),
        }))
    }

    /// Presents `cert_pem` and `key_pem` from the next handshake on.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        let next = certified_key(cert_pem, key_pem)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }
}

impl ResolvesClientCert for RotatingIdentity {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client of the API at `server`, trusting the CA (PEM), presenting
/// whatever `identity` holds: kube-rs' default stack (base URI, connect
/// and read timeouts, HTTP/1.1 over rustls) with that one change.
pub fn client(server: &str, ca_pem: &str, identity: Arc<RotatingIdentity>) -> anyhow::Result<kube::Client> {
    let url: http::Uri = server.parse().with_context(|| format!("{server} is not a URL"))?;
    let mut config = kube::Config::new(url);
    let roots: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .context("the CA certificate is not PEM")?;
    config.root_cert = Some(roots);
    let mut tls = config.rustls_client_config().context("cannot configure TLS")?;
    tls.client_auth_cert_resolver = identity;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let http_client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, kube::client::Body>(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace))
}
