//! How the API server reaches node agents' endpoints (logs, exec,
//! attach, port-forward): TLS with a client certificate of its own, which
//! the agents require (`skiff_host::agent::daemon`), or plain HTTP for a
//! server given none (tests that run an agent without TLS).
//!
//! The agent's serving certificate is not verified: an agent makes its
//! own, and nothing signs it yet. kube-apiserver does the same unless
//! `--kubelet-certificate-authority` is set; the connection is encrypted
//! and the agent knows who calls, but the API server cannot tell a node
//! from an impostor on the path to it.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

/// How long reaching a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The API server's client for node endpoints.
#[derive(Clone, Debug, Default)]
pub struct NodeClient {
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl NodeClient {
    /// A client presenting this certificate and key (PEM).
    pub fn with_certificate(cert_pem: &str, key_pem: &str) -> Result<NodeClient, String> {
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the node client certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("the node client key: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyNodeCertificate(provider)))
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("the node client certificate: {e}"))?;
        Ok(NodeClient {
            tls: Some(Arc::new(config)),
        })
    }

    /// An HTTP/1.1 connection to `endpoint` (`host:port`), ready for one
    /// request, upgrades allowed.
    pub async fn connect(&self, endpoint: &str) -> Result<SendRequest<Empty<bytes::Bytes>>, String> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(endpoint))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let host = endpoint
                    .rsplit_once(':')
                    .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
                    .unwrap_or(endpoint);
                let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|_| "the TLS handshake timed out".to_string())?
                    .map_err(|e| format!("TLS: {e}"))?;
                Box::new(tls)
            }
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "node connection ended");
            }
        });
        Ok(sender)
    }

    /// `GET uri` (a path and query) on `endpoint`.
    pub async fn get(&self, endpoint: &str, uri: &str) -> Result<http::Response<hyper::body::Incoming>, String> {
        let mut sender = self.connect(endpoint).await?;
        let request = Request::get(uri)
            .header(http::header::HOST, endpoint)
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        sender.send_request(request).await.map_err(|e| chain(&e))
    }
}

/// An error and its causes, as one line.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The first 64 KiB of a body, as text.
pub async fn text(body: hyper::body::Incoming) -> String {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, 64 * 1024);
    match limited.collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(_) => "the node's answer could not be read".to_string(),
    }
}

/// Takes whatever certificate a node serves (see the module docs), but
/// checks the handshake's signatures with it.
#[derive(Debug)]
struct AnyNodeCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyNodeCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
