//! One cluster identity for every server: the credentials the first
//! server made (the CA and its key, the admin token, the ServiceAccount
//! signing key, the encryption-at-rest keys) are handed to each server that joins, and only with the
//! cluster's join token. Every server then issues its own serving
//! certificate, for its own addresses, from the same CA, so one
//! kubeconfig, one node certificate and one ServiceAccount token work
//! against all of them.
//!
//! # The join token
//!
//! `K10<sha256 of the CA certificate, hex>::server:<secret>`, k3s's
//! format, kept in `DIR/token` by every server (and printed by the first).
//! A joining server proves it knows the secret, and checks that the CA it
//! receives hashes as the token says, so a peer pretending to be the
//! cluster is caught. The secret alone (without `K10…::server:`) is
//! accepted too, without that check, as k3s accepts it.
//!
//! # The exchange
//!
//! On the peer port (TLS; see `crate::peer`), `POST /bootstrap` with
//! `Authorization: Bearer <proof>`, where the proof is a SHA-256 of the
//! secret (so the secret itself never leaves the joining server), answers
//! the credentials ([`Credentials`]) sealed with AES-256-GCM under a key
//! derived from the secret (PBKDF2-HMAC-SHA256 over a fresh random salt).
//! A wrong proof gets `401` and nothing else.
//!
//! The joining server has no trust anchor yet, so its TLS does not check
//! the server's certificate (k3s's first call, for the CA, is alike); what
//! it receives is authenticated instead: only a holder of the secret can
//! seal an answer that opens, and the CA inside must hash as the token
//! says. What an impostor on the path can learn is the proof, which opens
//! nothing. ring does the cryptography (it is already the TLS provider).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The peer port's path.
pub const PATH: &str = "/bootstrap";

/// The files of `DIR/pki` that make the cluster's identity.
pub const SHARED_FILES: [&str; 7] = [
    "ca.crt",
    "ca.key",
    "admin.token",
    "service-account.key",
    ENCRYPTION_CONFIG,
    skiff_api::pki::peer::CA_FILES[0],
    skiff_api::pki::peer::CA_FILES[1],
];

/// The cluster's encryption-at-rest configuration, in `DIR/pki`
/// (`skiff_api::encryption`); made by the first server.
pub const ENCRYPTION_CONFIG: &str = "encryption-config.yaml";

const PBKDF2_ROUNDS: u32 = 10_000;

/// Why a join cannot get the cluster's credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not a join token (K10<CA hash>::server:<secret>, or the secret alone)")]
    BadToken(String),
    #[error("the join token is wrong: the cluster refused it")]
    Refused,
    #[error(
        "the cluster's CA does not match the join token (its hash is {found}, the token says {expected}): \
         is --join pointing at the right cluster?"
    )]
    WrongCa { expected: String, found: String },
    #[error("the cluster's answer cannot be opened with this token: {0}")]
    Unsealed(&'static str),
    #[error("cannot reach {addr} for the cluster's credentials: {message}")]
    Unreachable { addr: String, message: String },
    #[error("{path} holds another cluster's {file}; remove the data directory to join this one")]
    Mismatch { path: String, file: &'static str },
    #[error("{0}")]
    Io(String),
}

/// A join token, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The CA certificate's SHA-256, hex, when the token carries it.
    pub ca_hash: Option<String>,
    pub secret: String,
}

impl Token {
    pub fn parse(text: &str) -> Result<Token, Error> {
        let text = text.trim();
        let bad = || Error::BadToken(text.to_string());
        let token = match text.strip_prefix("K10") {
            Some(rest) => {
                let (hash, secret) = rest.split_once("::").ok_or_else(bad)?;
                let secret = secret.split_once(':').map_or(secret, |(_, s)| s);
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad());
                }
                Token {
                    ca_hash: Some(hash.to_ascii_lowercase()),
                    secret: secret.to_string(),
                }
            }
            None => Token {
                ca_hash: None,
                secret: text.to_string(),
            },
        };
        if token.secret.is_empty() || token.secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        Ok(token)
    }

    /// The full form, for the CA `ca_pem`.
    pub fn full(secret: &str, ca_pem: &str) -> String {
        format!("K10{}::server:{secret}", ca_hash(ca_pem))
    }
}

/// The hex SHA-256 of a CA certificate as written (k3s hashes the PEM).
pub fn ca_hash(ca_pem: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes()))
}

/// The cluster's identity: file name under `DIR/pki` → contents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials(pub BTreeMap<String, String>);

impl Credentials {
    /// Reads the shared files of `pki_dir`.
    pub fn read(pki_dir: &Path) -> Result<Credentials, Error> {
        let mut files = BTreeMap::new();
        for name in SHARED_FILES {
            let path = pki_dir.join(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
            files.insert(name.to_string(), text);
        }
        Ok(Credentials(files))
    }

    /// Writes them into `pki_dir` (private files), where a server reads
    /// them on start. Files already there must be the same: a data
    /// directory of another cluster is refused.
    pub fn install(&self, pki_dir: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(pki_dir).map_err(|e| Error::Io(format!("cannot create {}: {e}", pki_dir.display())))?;
        for name in SHARED_FILES {
            let Some(text) = self.0.get(name) else {
                return Err(Error::Unsealed("a credential is missing"));
            };
            let path = pki_dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(existing) if existing.trim() == text.trim() => continue,
                Ok(_) => {
                    return Err(Error::Mismatch {
                        path: path.display().to_string(),
                        file: name,
                    });
                }
                Err(_) => skiff_api::pki::write_private(&path, text).map_err(|e| Error::Io(e.to_string()))?,
            }
        }
        Ok(())
    }
}

/// What crosses the peer port.
#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    salt: String,
    nonce: String,
    sealed: String,
}

fn key(secret: &str, salt: &[u8]) -> LessSafeKey {
    let mut key = [0u8; 32];
    let rounds = NonZeroU32::new(PBKDF2_ROUNDS).unwrap_or(NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        secret.as_bytes(),
        &mut key,
    );
    // 32 bytes is AES-256's key length, so this cannot fail.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap_or_else(|_| unreachable!()))
}

/// Seals `credentials` under `secret`.
fn seal(credentials: &Credentials, secret: &str) -> Result<Vec<u8>, Error> {
    let random = SystemRandom::new();
    let (mut salt, mut nonce) = ([0u8; 16], [0u8; 12]);
    random
        .fill(&mut salt)
        .and_then(|()| random.fill(&mut nonce))
        .map_err(|_| Error::Io("no randomness".into()))?;
    let mut data = serde_json::to_vec(credentials).map_err(|e| Error::Io(e.to_string()))?;
    key(secret, &salt)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .map_err(|_| Error::Io("cannot seal the credentials".into()))?;
    serde_json::to_vec(&Sealed {
        salt: STANDARD.encode(salt),
        nonce: STANDARD.encode(nonce),
        sealed: STANDARD.encode(data),
    })
    .map_err(|e| Error::Io(e.to_string()))
}

/// Opens what [`seal`] made, with `secret`.
fn open(body: &[u8], secret: &str) -> Result<Credentials, Error> {
    let sealed: Sealed = serde_json::from_slice(body).map_err(|_| Error::Unsealed("not a sealed answer"))?;
    let decode = |text: &str| STANDARD.decode(text).map_err(|_| Error::Unsealed("bad base64"));
    let salt = decode(&sealed.salt)?;
    let nonce: [u8; 12] = decode(&sealed.nonce)?
        .try_into()
        .map_err(|_| Error::Unsealed("bad nonce"))?;
    let mut data = decode(&sealed.sealed)?;
    let plain = key(secret, &salt)
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .map_err(|_| Error::Unsealed("it does not authenticate"))?;
    serde_json::from_slice(plain).map_err(|_| Error::Unsealed("not credentials"))
}

/// What the peer route serves, once the server's credentials are ready.
#[derive(Clone, Default)]
pub struct Offer(Arc<OnceLock<(String, Credentials)>>);

impl Offer {
    /// From now on, answers those who know `secret` with `credentials`.
    pub fn set(&self, secret: String, credentials: Credentials) {
        let _ = self.0.set((secret, credentials));
    }

    /// The route for the peer port.
    pub fn router(&self) -> Router {
        Router::new().route(PATH, post(serve)).with_state(self.clone())
    }
}

async fn serve(State(offer): State<Offer>, headers: HeaderMap) -> Response {
    let Some((secret, credentials)) = offer.0.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the server is starting").into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compared as digests: equal lengths, and the time taken says nothing
    // of the proof.
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    if digest(given).as_ref() != digest(&proof(secret)).as_ref() {
        return (StatusCode::UNAUTHORIZED, "wrong join token").into_response();
    }
    match seal(credentials, secret) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// What a joining server shows it knows the secret with.
fn proof(secret: &str) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"skiff bootstrap proof\0");
    context.update(secret.as_bytes());
    hex::encode(context.finish())
}

/// Asks the server at `addr` (its peer port) for the cluster's
/// credentials with `token`, and checks them against it; over TLS unless
/// the cluster's peer port is `plain` HTTP (`--peer-plain-http`). Retries
/// while the server is unreachable or starting, for up to a minute.
pub async fn fetch(addr: &str, token: &Token, plain: bool) -> Result<Credentials, Error> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(unanchored_tls()?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let uri = format!("{}://{addr}{PATH}", if plain { "http" } else { "https" });
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let unreachable = |message: String| Error::Unreachable {
        addr: addr.to_string(),
        message,
    };
    loop {
        let request = http::Request::post(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", proof(&token.secret)))
            .body(Full::default())
            .map_err(|e| unreachable(e.to_string()))?;
        let retry = match client.request(request).await {
            Ok(response) if response.status() == StatusCode::UNAUTHORIZED => return Err(Error::Refused),
            Ok(response) if response.status().is_success() => {
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| unreachable(e.to_string()))?
                    .to_bytes();
                let credentials = open(&body, &token.secret)?;
                if let Some(expected) = &token.ca_hash {
                    let found = ca_hash(credentials.0.get("ca.crt").map(String::as_str).unwrap_or_default());
                    if &found != expected {
                        return Err(Error::WrongCa {
                            expected: expected.clone(),
                            found,
                        });
                    }
                }
                return Ok(credentials);
            }
            Ok(response) => format!("it answered {}", response.status()),
            Err(error) => error.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(unreachable(retry));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// TLS for the one call a joining server makes before it trusts anything:
/// the server's certificate is not anchored (see the module doc), though
/// the handshake's signatures are checked as usual.
fn unanchored_tls() -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Io(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unanchored(provider)))
        .with_no_client_auth())
}

/// Accepts any server certificate whose key signs the handshake.
#[derive(Debug)]
struct Unanchored(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unanchored {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, signature, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, signature, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A new secret: 32 random bytes, hex.
pub fn new_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Io("no randomness".into()))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials(
            SHARED_FILES
                .iter()
                .map(|name| (name.to_string(), format!("contents of {name}\n")))
                .collect(),
        )
    }

    #[test]
    fn tokens_parse_in_both_forms() {
        let hash = "ab".repeat(32);
        let full = format!("K10{hash}::server:s3cret");
        assert_eq!(
            Token::parse(&full).unwrap(),
            Token {
                ca_hash: Some(hash.clone()),
                secret: "s3cret".into()
            }
        );
        assert_eq!(Token::parse("s3cret").unwrap().ca_hash, None);
        assert_eq!(
            Token::full("s3cret", "pem"),
            format!("K10{}::server:s3cret", ca_hash("pem"))
        );
        for bad in ["", "K10abc::server:x", &format!("K10{hash}::server:"), "two words"] {
            assert!(Token::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sealed_credentials_open_only_with_their_secret() {
        let sealed = seal(&credentials(), "right").unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("contents of"));
        assert_eq!(open(&sealed, "right").unwrap(), credentials());
        assert!(matches!(open(&sealed, "wrong"), Err(Error::Unsealed(_))));
        assert!(matches!(open(b"{}", "right"), Err(Error::Unsealed(_))));
    }

    #[test]
    fn installing_refuses_another_clusters_files() {
        let dir = tempfile::tempdir().unwrap();
        credentials().install(dir.path()).unwrap();
        // Again: the same files are fine.
        credentials().install(dir.path()).unwrap();
        assert_eq!(Credentials::read(dir.path()).unwrap(), credentials());
        let mut other = credentials();
        other.0.insert("ca.crt".into(), "another CA".into());
        assert!(matches!(other.install(dir.path()), Err(Error::Mismatch { .. })));
    }
}
