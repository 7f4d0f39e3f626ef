//! The server's credentials, generated on first start and kept in the data
//! directory: a CA, a serving certificate signed by it, the admin bearer
//! token, and the admin kubeconfig that ties them together.
//!
//! ```text
//! DIR/pki/ca.crt  ca.key  server.crt  server.key  admin.token
//! DIR/kubeconfig
//! ```
//!
//! Existing files are reused, so clients keep trusting a restarted server;
//! the serving certificate is re-issued when the names it must cover change.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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

/// The server's credentials, loaded or freshly made.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// The admin's bearer token.
    pub admin_token: String,
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

/// Writes a file readable by its owner only, atomically.
fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
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

/// The CA's certificate parameters: the same on every start, so the stored
/// CA key can sign again without parsing the stored certificate.
fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate("CA"))?;
    params.distinguished_name.push(DnType::CommonName, "skiff-ca");
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
        Ok(Pki {
            dir,
            ca_pem,
            server_cert_pem,
            server_key_pem,
            admin_token,
        })
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| PkiError::Tls { source })?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|source| PkiError::Tls { source })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The admin kubeconfig for a server reachable at `server_url`.
    pub fn kubeconfig(&self, server_url: &str) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: {server_url}
    certificate-authority-data: {ca}
users:
- name: skiff-admin
  user:
    token: {token}
contexts:
- name: skiff
  context:
    cluster: skiff
    user: skiff-admin
    namespace: default
current-context: skiff
",
            token = self.admin_token
        )
    }

    /// Writes the admin kubeconfig to `path` (owner-readable only).
    pub fn write_kubeconfig(&self, path: &Path, server_url: &str) -> Result<(), PkiError> {
        write_private(path, &self.kubeconfig(server_url))
    }
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
        let kubeconfig = first.kubeconfig("https://127.0.0.1:6443");
        assert!(kubeconfig.contains(&first.admin_token));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("pki/ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "keys are private");
    }
}
