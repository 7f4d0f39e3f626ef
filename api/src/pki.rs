//! The server's credentials, generated on first start and kept in the data
//! directory: a CA, a serving certificate signed by it, the admin's client
//! certificate (and, for older kubeconfigs, the admin bearer token), the
//! key that signs ServiceAccount tokens, and the admin kubeconfig that ties
//! them together.
//!
//! ```text
//! DIR/pki/ca.crt  ca.key  server.crt  server.key  admin.crt  admin.key
//!        admin.token  service-account.key
//! DIR/kubeconfig
//! ```
//!
//! One CA signs serving and client certificates, as kubeadm's does: a
//! client certificate it signed authenticates as its subject's common name
//! (the user) and organizations (the groups). [`Pki::issue_client`] signs
//! those of skiff's own components on each start, and [`Pki::sign_request`]
//! those that node agents ask for.
//!
//! The peer port has a CA of its own ([`peer`]).
//!
//! Existing files are reused, so clients keep trusting a restarted server;
//! the serving certificate is re-issued when the names it must cover change.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub mod peer;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generating {what}: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("{path} does not hold a usable PEM {what}")]
    BadPem { path: PathBuf, what: &'static str },
    #[error("TLS configuration: {source}")]
    Tls {
        #[source]
        source: rustls::Error,
    },
}

/// The server's credentials, loaded or freshly made. Its `Debug` shows
/// where they live, never a key.
#[derive(Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// The CA's private key, which signs client certificates.
    ca_key_pem: String,
    /// The admin's client certificate and key (CN `skiff-admin`, O
    /// `system:masters`).
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    /// The admin's bearer token, still accepted.
    pub admin_token: String,
    /// The PKCS#8 DER of the P-256 key that signs ServiceAccount tokens.
    pub service_account_key: Vec<u8>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Writes a file readable by its owner only, atomically (written aside,
/// synced, then renamed): what keys and certificates are kept in.
pub fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn generate(what: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { what, source }
}

/// Certificates are valid until New Year ten years from now.
fn expiry_year() -> i32 {
    i32::from(jiff::Zoned::now().year()) + 10
}

fn client_params(user: &str, group: Option<&str>, until_year: i32) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate("client certificate"))?;
    params.distinguished_name.push(DnType::CommonName, user);
    if let Some(group) = group {
        params.distinguished_name.push(DnType::OrganizationName, group);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_after = rcgen::date_time_ymd(until_year, 1, 1);
    Ok(params)
}

/// The cluster CA's certificate parameters.
fn ca_params() -> Result<CertificateParams, PkiError> {
    authority_params("skiff-ca")
}

/// A CA's certificate parameters, named `common_name`: the same on every
/// start, so the stored CA key can sign again without parsing the stored
/// certificate.
fn authority_params(common_name: &str) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate("CA"))?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_after = rcgen::date_time_ymd(expiry_year(), 1, 1);
    Ok(params)
}

impl Pki {
    /// Loads the credentials under `data_dir`, creating what is missing.
    /// `hosts` are the DNS names and IP addresses the serving certificate
    /// must cover.
    pub fn load_or_create(data_dir: &Path, hosts: &[String]) -> Result<Pki, PkiError> {
        let dir = data_dir.join("pki");
        std::fs::create_dir_all(&dir).map_err(|source| PkiError::Io {
            path: dir.clone(),
            source,
        })?;
        let (ca_pem, ca_key_pem) = match (read(&dir.join("ca.crt"))?, read(&dir.join("ca.key"))?) {
            (Some(cert), Some(key)) => (cert, key),
            _ => {
                let key = KeyPair::generate().map_err(generate("CA key"))?;
                let cert = ca_params()?.self_signed(&key).map_err(generate("CA"))?;
                write_private(&dir.join("ca.key"), &key.serialize_pem())?;
                write_private(&dir.join("ca.crt"), &cert.pem())?;
                (cert.pem(), key.serialize_pem())
            }
        };
        let hosts_file = dir.join("server.hosts");
        let wanted_hosts = hosts.join("\n");
        let (server_cert_pem, server_key_pem) = match (
            read(&dir.join("server.crt"))?,
            read(&dir.join("server.key"))?,
            read(&hosts_file)?,
        ) {
            (Some(cert), Some(key), Some(covered)) if covered == wanted_hosts => (cert, key),
            _ => {
                let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|_| PkiError::BadPem {
                    path: dir.join("ca.key"),
                    what: "private key",
                })?;
                // The CA's subject and key are all a signature chains on.
                let issuer = Issuer::new(ca_params()?, ca_key);
                let key = KeyPair::generate().map_err(generate("server key"))?;
                let mut params = CertificateParams::new(hosts.to_vec()).map_err(generate("server certificate"))?;
                params.distinguished_name.push(DnType::CommonName, "skiff-apiserver");
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.not_after = rcgen::date_time_ymd(expiry_year(), 1, 1);
                let cert = params
                    .signed_by(&key, &issuer)
                    .map_err(generate("server certificate"))?;
                write_private(&dir.join("server.key"), &key.serialize_pem())?;
                write_private(&dir.join("server.crt"), &cert.pem())?;
                write_private(&hosts_file, &wanted_hosts)?;
                (cert.pem(), key.serialize_pem())
            }
        };
        let token_path = dir.join("admin.token");
        let admin_token = match read(&token_path)? {
            Some(token) if !token.trim().is_empty() => token.trim().to_string(),
            _ => {
                let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
                write_private(&token_path, &token)?;
                token
            }
        };
        let sa_path = dir.join("service-account.key");
        let service_account_key = match read(&sa_path)? {
            Some(pem) => KeyPair::from_pem(&pem).map_err(|_| PkiError::BadPem {
                path: sa_path.clone(),
                what: "private key",
            })?,
            None => {
                let key = KeyPair::generate().map_err(generate("ServiceAccount signing key"))?;
                write_private(&sa_path, &key.serialize_pem())?;
                key
            }
        }
        .serialize_der();
        let mut pki = Pki {
            dir,
            ca_pem,
            server_cert_pem,
            server_key_pem,
            ca_key_pem,
            admin_cert_pem: String::new(),
            admin_key_pem: String::new(),
            admin_token,
            service_account_key,
        };
        let (admin_cert, admin_key) = match (read(&pki.dir.join("admin.crt"))?, read(&pki.dir.join("admin.key"))?) {
            (Some(cert), Some(key)) => (cert, key),
            _ => {
                let (cert, key) = pki.issue_client("skiff-admin", Some("system:masters"), expiry_year())?;
                write_private(&pki.dir.join("admin.key"), &key)?;
                write_private(&pki.dir.join("admin.crt"), &cert)?;
                (cert, key)
            }
        };
        pki.admin_cert_pem = admin_cert;
        pki.admin_key_pem = admin_key;
        Ok(pki)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem).map_err(|_| PkiError::BadPem {
            path: self.dir.join("ca.key"),
            what: "private key",
        })?;
        Ok(Issuer::new(ca_params()?, ca_key))
    }

    /// Authentication by this PKI's credentials: the admin token, and
    /// ServiceAccount tokens its key signs for `issuer`.
    pub fn authentication(&self, issuer: &str) -> Result<crate::auth::Authentication, PkiError> {
        let keys = skiff_auth::token::Keys::new(issuer, &self.service_account_key).map_err(|_| PkiError::BadPem {
            path: self.dir.join("service-account.key"),
            what: "P-256 private key",
        })?;
        Ok(crate::auth::Authentication::new()
            .with_token(self.admin_token.clone(), skiff_auth::UserInfo::admin())
            .with_service_accounts(Arc::new(keys), Vec::new()))
    }

    /// A client certificate and its key (PEM) for `user`, in `group` if
    /// any, valid until New Year of `until_year`. One group only: `rcgen`
    /// writes one value per attribute type of a subject.
    pub fn issue_client(&self, user: &str, group: Option<&str>, until_year: i32) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate().map_err(generate("client key"))?;
        let params = client_params(user, group, until_year)?;
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(generate("client certificate"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs a certificate signing request (PEM) as a client certificate
    /// for the subject it asks for (no alternative names), valid for
    /// `valid_for` from now. As Kubernetes' signer does, the certificate
    /// is valid from five minutes ago, for clocks a little behind.
    pub fn sign_request(&self, csr_pem: &str, valid_for: Duration) -> Result<String, PkiError> {
        const BACKDATE: Duration = Duration::from_secs(5 * 60);
        let mut request =
            rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(generate("certificate request"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // rcgen's times are the `time` crate's; the epoch plus seconds
        // saves naming it.
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        request.params.not_before = epoch + now.saturating_sub(BACKDATE);
        request.params.not_after = epoch + now.saturating_add(valid_for);
        request.params.is_ca = IsCa::ExplicitNoCa;
        request.params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        request.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        request.params.subject_alt_names.clear();
        let cert = request
            .signed_by(&self.issuer()?)
            .map_err(generate("client certificate"))?;
        Ok(cert.pem())
    }

    /// A rustls server configuration offering HTTP/2 and HTTP/1.1.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| PkiError::BadPem {
                path: self.dir.join("server.crt"),
                what: "certificate",
            })?;
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).map_err(|_| PkiError::BadPem {
            path: self.dir.join("server.key"),
            what: "private key",
        })?;
        // Client certificates are asked for, not required: most clients
        // authenticate with a token, or are anonymous.
        let roots = trust_anchors(&self.ca_pem, self.dir.join("ca.crt"))?;
        asking_for_client_certificates(roots, certs, key, &[b"h2", b"http/1.1"])
    }

    /// The admin kubeconfig for a server reachable at `server_url`: the
    /// admin's client certificate.
    pub fn kubeconfig(&self, server_url: &str) -> String {
        kubeconfig(
            server_url,
            &self.ca_pem,
            "skiff-admin",
            &Credential::Certificate {
                cert_pem: &self.admin_cert_pem,
                key_pem: &self.admin_key_pem,
            },
        )
    }

    /// Writes the admin kubeconfig to `path` (owner-readable only).
    pub fn write_kubeconfig(&self, path: &Path, server_url: &str) -> Result<(), PkiError> {
        write_private(path, &self.kubeconfig(server_url))
    }
}

/// The CA certificates in `pem` (read from `path`) as trust anchors.
fn trust_anchors(pem: &str, path: PathBuf) -> Result<Arc<rustls::RootCertStore>, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let ca = ca.map_err(|_| PkiError::BadPem {
            path: path.clone(),
            what: "certificate",
        })?;
        roots.add(ca).map_err(|source| PkiError::Tls { source })?;
    }
    Ok(Arc::new(roots))
}

/// A TLS server configuration (ring) presenting `certs` and `key`, which
/// asks every caller for a certificate signed by `roots` without
/// requiring one (a certificate of another CA fails the handshake), and
/// offers `alpn`.
fn asking_for_client_certificates(
    roots: Arc<rustls::RootCertStore>,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|error| PkiError::Tls {
            source: rustls::Error::General(error.to_string()),
        })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| PkiError::Tls { source })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|source| PkiError::Tls { source })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// How a kubeconfig's user authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    Token(&'a str),
    Certificate { cert_pem: &'a str, key_pem: &'a str },
}

/// A kubeconfig with one cluster, one user and one context, all called
/// `skiff` but the user.
pub fn kubeconfig(server_url: &str, ca_pem: &str, user: &str, credential: &Credential<'_>) -> String {
    use base64::Engine;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let auth = match credential {
        Credential::Token(token) => format!("    token: {token}\n"),
        Credential::Certificate { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(cert_pem),
            b64(key_pem)
        ),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: {server_url}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
{auth}contexts:
- name: skiff
  context:
    cluster: skiff
    user: {user}
    namespace: default
current-context: skiff
",
        ca = b64(ca_pem),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let first = Pki::load_or_create(dir.path(), &hosts).unwrap();
        let second = Pki::load_or_create(dir.path(), &hosts).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(first.server_cert_pem, second.server_cert_pem);
        assert_eq!(first.admin_token, second.admin_token);
        first.server_config().unwrap();
        let more = vec!["localhost".to_string(), "127.0.0.2".to_string()];
        let third = Pki::load_or_create(dir.path(), &more).unwrap();
        assert_eq!(third.ca_pem, first.ca_pem, "the CA survives");
        assert_ne!(
            third.server_cert_pem, first.server_cert_pem,
            "new names, new certificate"
        );
        assert_eq!(first.admin_cert_pem, second.admin_cert_pem);
        assert_eq!(first.service_account_key, second.service_account_key);
        let kubeconfig = first.kubeconfig("https://127.0.0.1:6443");
        assert!(kubeconfig.contains("client-certificate-data"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("pki/ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "keys are private");
    }

    #[test]
    fn requests_are_signed_as_client_certificates_for_their_subject() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &["localhost".to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["ignored.example".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "system:node:n1");
        params.distinguished_name.push(DnType::OrganizationName, "system:nodes");
        let request = params.serialize_request(&key).unwrap().pem().unwrap();
        let pem = pki.sign_request(&request, Duration::from_secs(600)).unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, certificate) = x509_parser::parse_x509_certificate(&der).unwrap();
        let subject = certificate.subject();
        assert_eq!(
            subject.iter_common_name().next().unwrap().as_str().unwrap(),
            "system:node:n1"
        );
        assert_eq!(
            subject.iter_organization().next().unwrap().as_str().unwrap(),
            "system:nodes"
        );
        assert!(
            certificate.subject_alternative_name().unwrap().is_none(),
            "no alternative names"
        );
        let validity = certificate.validity();
        let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp();
        assert_eq!(lifetime, 600 + 300, "ten minutes, from five minutes ago");
    }
}
