//! The peer port's credentials: mutual TLS between servers.
//!
//! The peer port carries raft, forwarded writes and reads, and joins: what
//! may change the store. It has a CA of its own, apart from the one that
//! signs API serving and client certificates, so that no user, node or
//! component certificate of the cluster CA is a peer credential:
//!
//! ```text
//! DIR/pki/peer-ca.crt  peer-ca.key   the cluster's peer CA (shared by every server)
//!        peer.crt      peer.key      this server's, server and client usage
//! ```
//!
//! The first server makes the peer CA; servers that join receive it with
//! the rest of the cluster's identity. Each server signs its own peer
//! certificate on every start, for the addresses it is reached at (the
//! host of its advertised peer address, and loopback), as both the TLS
//! server and the client its peers see.
//!
//! [`PeerPki::server_config`] asks every caller for a certificate of the
//! peer CA but lets callers without one finish the handshake, because one
//! exchange must be open to them: a joining server fetching the cluster's
//! credentials, which it proves the right to with the join token. Whoever
//! serves the peer routes therefore refuses every other request that comes
//! without a verified certificate ([`crate::auth::ClientCertificate`] is
//! present only for those); a certificate of another CA fails the
//! handshake itself.

use std::path::Path;
use std::sync::Arc;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{
    PkiError, asking_for_client_certificates, authority_params, expiry_year, generate, read, trust_anchors,
    write_private,
};

/// The peer CA's file names in `DIR/pki`, which joining servers receive.
pub const CA_FILES: [&str; 2] = ["peer-ca.crt", "peer-ca.key"];

/// This server's peer credentials.
#[derive(Clone)]
pub struct PeerPki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for PeerPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerPki").finish_non_exhaustive()
    }
}

/// The peer CA's parameters.
fn ca_params() -> Result<CertificateParams, PkiError> {
    authority_params("skiff-peer-ca")
}

impl PeerPki {
    /// Loads the peer CA in `pki_dir` (making it if this is the cluster's
    /// first server) and signs this server's peer certificate, named
    /// `name`, for `hosts` (DNS names or IP addresses).
    pub fn load_or_create(pki_dir: &Path, name: &str, hosts: &[String]) -> Result<PeerPki, PkiError> {
        let [ca_file, key_file] = CA_FILES.map(|file| pki_dir.join(file));
        let (ca_pem, ca_key) = match (read(&ca_file)?, read(&key_file)?) {
            (Some(cert), Some(key)) => {
                let key = KeyPair::from_pem(&key).map_err(|_| PkiError::BadPem {
                    path: key_file.clone(),
                    what: "private key",
                })?;
                (cert, key)
            }
            _ => {
                let key = KeyPair::generate().map_err(generate("peer CA key"))?;
                let cert = ca_params()?.self_signed(&key).map_err(generate("peer CA"))?;
                write_private(&key_file, &key.serialize_pem())?;
                write_private(&ca_file, &cert.pem())?;
                (cert.pem(), key)
            }
        };
        let issuer = Issuer::new(ca_params()?, ca_key);
        let key = KeyPair::generate().map_err(generate("peer key"))?;
        let mut params = CertificateParams::new(hosts.to_vec()).map_err(generate("peer certificate"))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.not_after = rcgen::date_time_ymd(expiry_year(), 1, 1);
        let cert = params.signed_by(&key, &issuer).map_err(generate("peer certificate"))?;
        let peer = PeerPki {
            ca_pem,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        write_private(&pki_dir.join("peer.key"), &peer.key_pem)?;
        write_private(&pki_dir.join("peer.crt"), &peer.cert_pem)?;
        Ok(peer)
    }

    /// The credentials a server made in `pki_dir`, as they are (for tools
    /// that speak to the peer port as that server: benchmarks, tests).
    pub fn read(pki_dir: &Path) -> Result<PeerPki, PkiError> {
        let file = |name: &str| {
            let path = pki_dir.join(name);
            read(&path)?.ok_or(PkiError::BadPem {
                path,
                what: "PEM file (missing)",
            })
        };
        Ok(PeerPki {
            ca_pem: file(CA_FILES[0])?,
            cert_pem: file("peer.crt")?,
            key_pem: file("peer.key")?,
        })
    }

    /// The peer CA, as the trust anchor of both ends.
    fn roots(&self) -> Result<Arc<rustls::RootCertStore>, PkiError> {
        trust_anchors(&self.ca_pem, CA_FILES[0].into())
    }

    fn chain(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("peer.crt", "certificate"))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|_| bad("peer.key", "private key"))?;
        Ok((certs, key))
    }

    /// The peer port's TLS: this server's certificate; callers' certificates
    /// verified against the peer CA, and optional (see the module doc).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let (certs, key) = self.chain()?;
        asking_for_client_certificates(self.roots()?, certs, key, &[b"http/1.1"])
    }

    /// How this server calls its peers: it trusts only servers of the peer
    /// CA, and shows its own certificate.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (certs, key) = self.chain()?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| PkiError::Tls { source })?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(certs, key)
            .map_err(|source| PkiError::Tls { source })?;
        // No ALPN here: the HTTP client sets what it speaks.
        Ok(Arc::new(config))
    }
}

fn bad(file: &str, what: &'static str) -> PkiError {
    PkiError::BadPem {
        path: file.into(),
        what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_ca_is_made_once_and_signs_each_start() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
        let first = PeerPki::load_or_create(dir.path(), "skiff-peer-1", &hosts).unwrap();
        let again = PeerPki::load_or_create(dir.path(), "skiff-peer-1", &hosts).unwrap();
        assert_eq!(first.ca_pem, again.ca_pem, "the CA is kept");
        assert_ne!(first.cert_pem, again.cert_pem, "the certificate is signed anew");
        assert!(first.server_config().is_ok());
        assert!(first.client_config().is_ok());
    }
}
