//! The node's tunnel: where other nodes' proxies reach the endpoints that
//! run on this node.
//!
//! It accepts `CONNECT <podIP:port>` only for an address that is a ready
//! endpoint of some Service on this node (the table's local targets); any
//! other target gets 403, so the tunnel cannot be used to reach the rest
//! of the node.
//!
//! Given the cluster's credentials ([`TunnelTls`]) it speaks mutual TLS
//! and serves only other nodes' proxies: each end presents its proxy's
//! client certificate (`CN=system:kube-proxy`, signed by the cluster CA,
//! the one every agent obtains when it joins) and each checks the other's
//! chain and name. The dialling proxy therefore knows it reached a node
//! of the cluster, and the tunnel knows who dials it; neither needs the
//! other's host name. Without credentials (agents under test with no
//! CA) it speaks plain TCP, as kube-proxy's forwarding does.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::{DigitallySignedStruct, SignatureScheme};
use skiff_client::identity::RotatingIdentity;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Shared;
use crate::connect::read_head;

/// The user whose certificate a tunnel's ends present.
pub const PROXY_USER: &str = "system:kube-proxy";

/// The tunnel's mutual TLS, both ends: what it accepts and how it dials.
#[derive(Clone)]
pub struct TunnelTls {
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for TunnelTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelTls").finish_non_exhaustive()
    }
}

fn invalid(what: &str, error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {error}"))
}

impl TunnelTls {
    /// Both ends for a node whose proxy presents `identity`, trusting the
    /// cluster CA in `ca_pem` for the other end's.
    pub fn new(ca_pem: &str, identity: Arc<RotatingIdentity>) -> io::Result<TunnelTls> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let ca = ca.map_err(|e| invalid("the cluster CA", e))?;
            roots.add(ca).map_err(|e| invalid("the cluster CA", e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| invalid("the cluster CA", e))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS", e))?
            .with_client_cert_verifier(verifier.clone())
            .with_cert_resolver(identity.clone());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS", e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnotherProxy(verifier)))
            .with_client_cert_resolver(identity);
        Ok(TunnelTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        })
    }

    /// TLS over `tcp`, a connection to the tunnel at `tunnel`.
    pub(crate) async fn connect(
        &self,
        tunnel: SocketAddr,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        self.connector
            .connect(ServerName::IpAddress(tunnel.ip().into()), tcp)
            .await
    }
}

/// Whether a certificate (DER) is a proxy's: its common name is
/// [`PROXY_USER`].
fn is_proxy(certificate: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(certificate).is_ok_and(|(_, cert)| {
        cert.subject()
            .iter_common_name()
            .any(|cn| cn.as_str().is_ok_and(|cn| cn == PROXY_USER))
    })
}

/// The dialling end's check of a tunnel: the certificate it serves is
/// another proxy's client certificate, so it is checked as a client's
/// (chain to the cluster CA, client usage, validity; rustls' WebPKI
/// verifier does that) and then for its name. Host names do not enter
/// into it: nodes' addresses are not in their proxies' certificates.
#[derive(Debug)]
struct AnotherProxy(Arc<dyn ClientCertVerifier>);

impl ServerCertVerifier for AnotherProxy {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.verify_client_cert(end_entity, intermediates, now)?;
        if !is_proxy(end_entity.as_ref()) {
            return Err(rustls::Error::General(format!(
                "the tunnel's certificate is not {PROXY_USER}'s"
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, tls: Option<TunnelTls>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let (shared, tls) = (shared.clone(), tls.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let handled = match tls {
                None => handle(stream, &shared).await,
                Some(tls) => accept(stream, &tls, &shared).await,
            };
            if let Err(error) = handled {
                tracing::debug!(%error, %peer, "tunnel connection failed");
            }
        });
    }
}

/// A connection over TLS: only another proxy may go on.
async fn accept(stream: TcpStream, tls: &TunnelTls, shared: &Shared) -> io::Result<()> {
    let mut stream = tls.acceptor.accept(stream).await?;
    let proxy = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .is_some_and(|leaf| is_proxy(leaf.as_ref()));
    if !proxy {
        return reply(
            &mut stream,
            "403 Forbidden",
            &format!("only nodes' proxies ({PROXY_USER}) may use a node's tunnel\n"),
        )
        .await;
    }
    handle(stream, shared).await
}

async fn reply<S: AsyncWrite + Unpin>(stream: &mut S, status: &str, message: &str) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{message}",
        message.len()
    );
    stream.write_all(response.as_bytes()).await
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, shared: &Shared) -> io::Result<()> {
    let (head, early) = read_head(&mut stream).await?;
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        return reply(
            &mut stream,
            "405 Method Not Allowed",
            "this is a skiff node tunnel: CONNECT only\n",
        )
        .await;
    };
    let Ok(target) = target.parse::<SocketAddr>() else {
        return reply(&mut stream, "400 Bad Request", "the CONNECT target must be ip:port\n").await;
    };
    if !shared.table().local_targets.contains(&target) {
        return reply(
            &mut stream,
            "403 Forbidden",
            &format!("{target} is not a ready endpoint on this node\n"),
        )
        .await;
    }
    let mut upstream = match TcpStream::connect(target).await {
        Ok(upstream) => upstream,
        Err(error) => {
            return reply(
                &mut stream,
                "502 Bad Gateway",
                &format!("cannot connect to {target}: {error}\n"),
            )
            .await;
        }
    };
    upstream.set_nodelay(true)?;
    stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
    if !early.is_empty() {
        upstream.write_all(&early).await?;
    }
    tokio::io::copy_bidirectional(&mut stream, &mut upstream).await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::connect::Dialer;
    use crate::table::{Backend, Route, Table};

    /// A CA, and client certificates it signs.
    struct Ca {
        key: rcgen::KeyPair,
        cert: rcgen::Certificate,
    }

    impl Ca {
        fn new() -> Ca {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
            let cert = params.self_signed(&key).unwrap();
            Ca { key, cert }
        }

        /// A client certificate for `user`, as the cluster's signer makes.
        fn identity(&self, user: &str) -> Arc<RotatingIdentity> {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(rcgen::DnType::CommonName, user);
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            let issuer = rcgen::Issuer::from_ca_cert_der(self.cert.der(), &self.key).unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            RotatingIdentity::new(&cert.pem(), &key.serialize_pem()).unwrap()
        }

        fn tls(&self, user: &str) -> TunnelTls {
            TunnelTls::new(&self.cert.pem(), self.identity(user)).unwrap()
        }
    }

    /// An endpoint that answers each connection with "hello".
    async fn endpoint() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(b"hello").await;
            }
        });
        addr
    }

    /// A tunnel serving `tls`, through which `target` is reachable.
    async fn tunnel(tls: TunnelTls, target: SocketAddr) -> SocketAddr {
        let mut table = Table::default();
        table.local_targets.insert(target);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Shared::with_table(table), Some(tls)));
        addr
    }

    async fn dial(tls: TunnelTls, tunnel: SocketAddr, target: SocketAddr) -> io::Result<String> {
        let backend = Backend {
            addr: target,
            route: Route::Tunnel(tunnel),
            pod: None,
        };
        let mut dialled = Dialer::new(Duration::from_secs(5), Some(tls)).dial(&backend).await?;
        let mut read = dialled.early;
        dialled.stream.read_to_end(&mut read).await?;
        Ok(String::from_utf8(read).unwrap())
    }

    #[tokio::test]
    async fn only_proxies_of_the_cluster_pass_each_others_tunnels() {
        let cluster = Ca::new();
        let target = endpoint().await;
        let node = tunnel(cluster.tls(PROXY_USER), target).await;

        // Another node's proxy gets through.
        assert_eq!(dial(cluster.tls(PROXY_USER), node, target).await.unwrap(), "hello");

        // A certificate of the cluster's for someone else: 403.
        let error = dial(cluster.tls("admin"), node, target).await.unwrap_err();
        assert!(error.to_string().contains("403"), "{error}");

        // A proxy's certificate from another CA: no handshake.
        let foreign = Ca::new();
        let error = dial(foreign.tls(PROXY_USER), node, target).await.unwrap_err();
        assert!(!error.to_string().contains("200"), "{error}");

        // No certificate at all, in plain text: no answer but TLS's.
        let mut plain = TcpStream::connect(node).await.unwrap();
        plain
            .write_all(format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer).await;
        assert!(!String::from_utf8_lossy(&answer).contains("hello"));
        assert!(!answer.starts_with(b"HTTP/1.1 200"));

        // And a proxy does not dial a tunnel that is not another proxy's.
        let impostor = tunnel(cluster.tls("admin"), target).await;
        let error = dial(cluster.tls(PROXY_USER), impostor, target).await.unwrap_err();
        assert!(error.to_string().contains(PROXY_USER), "{error}");
    }
}
