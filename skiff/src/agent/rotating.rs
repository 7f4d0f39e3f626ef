//! A kube client whose TLS client certificate can be replaced while it
//! runs: kube-rs reads a client certificate once, when a client is built,
//! and the node agent holds its clients for its whole life. So the TLS
//! configuration here asks a [`RotatingIdentity`] for the certificate at
//! each handshake, and a renewal replaces what it holds (Kubernetes'
//! client closes older connections on rotation; here they live out their
//! idle timeout, well before the old certificate expires).

use std::sync::Arc;

use anyhow::Context;
use hyper_util::client::legacy::connect::HttpConnector;
use kube::client::ConfigExt;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use skiff_client::identity::RotatingIdentity;

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
