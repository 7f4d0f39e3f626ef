//! A certificate and key that TLS handshakes present, replaceable while
//! connections are made, as the kubelet reads its certificate from its
//! certificate manager on every handshake.
//!
//! A node agent holds its clients and listeners for its whole life while
//! its certificates are renewed; whatever asks a [`RotatingIdentity`] at
//! a handshake gets the current one. Connections opened before a renewal
//! keep the identity they were opened with until they close.
//!
//! It serves both ends of a connection: as a client certificate
//! ([`ResolvesClientCert`], the agent's API clients and the tunnel's
//! dialler) and as the serving certificate of a listener whose callers
//! authenticate it the same way ([`ResolvesServerCert`], the node's
//! tunnel).

use std::io;
use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The certificate and key handshakes present, replaceable.
pub struct RotatingIdentity {
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for RotatingIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingIdentity").finish_non_exhaustive()
    }
}

fn invalid(what: &str, error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {error}"))
}

/// A certificate (PEM, the chain) and its key (PEM) in the form rustls
/// presents.
fn certified_key(cert_pem: &str, key_pem: &str) -> io::Result<Arc<CertifiedKey>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("the certificate is not PEM", e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| invalid("the key is not PEM", e))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| invalid("the key does not fit its certificate", e))?;
    Ok(Arc::new(certified))
}

impl RotatingIdentity {
    pub fn new(cert_pem: &str, key_pem: &str) -> io::Result<Arc<RotatingIdentity>> {
        Ok(Arc::new(RotatingIdentity {
            current: RwLock::new(certified_key(cert_pem, key_pem)?),
        }))
    }

    /// Presents `cert_pem` and `key_pem` from the next handshake on.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> io::Result<()> {
        let next = certified_key(cert_pem, key_pem)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ResolvesClientCert for RotatingIdentity {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for RotatingIdentity {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}
