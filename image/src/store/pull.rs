//! Pulling an image from a registry with `oci-client`.

use std::net::IpAddr;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{ImageIndex, ImageManifest};
use tokio::io::AsyncWriteExt;

use super::{Error, ImageStore, Result, check_digest, io_err, platform_arch, select_platform};
use crate::Image;
use crate::credentials::Keyring;
use crate::digest::{HashingReader, sha256_of};

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// How to reach the registry.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Speak plain HTTP. Refused ([`Error::PlainHttpRefused`]) unless the
    /// registry is on loopback (127.0.0.0/8, `::1` or `localhost`).
    pub plain_http: bool,
    /// Basic-auth `(user, password)`; anonymous when `None`.
    pub basic_auth: Option<(String, String)>,
}

impl ImageStore {
    /// [`ImageStore::pull`] with the logins of `keyring` that apply to
    /// `reference`, most specific first, until one works (anonymous when
    /// none apply); the last refusal when none does.
    pub async fn pull_with(&self, reference: &str, plain_http: bool, keyring: &Keyring) -> Result<Image> {
        let logins: Vec<Option<(String, String)>> = match keyring.lookup(reference) {
            found if found.is_empty() => vec![None],
            found => found
                .into_iter()
                .map(|c| Some((c.username.clone(), c.password.clone())))
                .collect(),
        };
        let mut last = None;
        for basic_auth in logins {
            match self.pull(reference, &PullOptions { plain_http, basic_auth }).await {
                Ok(image) => return Ok(image),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| Error::ImageNotFound {
            reference: reference.to_owned(),
            hint: None,
        }))
    }

    /// Pulls `reference` (manifest, config and every layer, each verified
    /// against its digest) and records it under that reference. Blobs
    /// already stored are not fetched again. An index resolves to the
    /// linux manifest of this machine's architecture.
    #[tracing::instrument(skip(self, options))]
    pub async fn pull(&self, reference: &str, options: &PullOptions) -> Result<Image> {
        let (parsed, client, auth) = connect(reference, options)?;
        let registry_err = |source: OciDistributionError| registry_error(reference, source);

        let (mut bytes, mut digest) = client
            .pull_manifest_raw(&parsed, &auth, MANIFEST_TYPES)
            .await
            .map_err(registry_err)?;
        let mut target = parsed.clone();
        // An index: fetch this platform's manifest.
        if is_index(&bytes) {
            let index = ImageIndex::from_reader(bytes.as_ref()).map_err(|source| Error::BadJson {
                what: "image index",
                digest: digest.clone(),
                source,
            })?;
            self.put_blob(&digest, bytes.as_ref())?;
            let chosen = select_platform(&index).ok_or_else(|| Error::NoMatchingPlatform {
                reference: reference.to_owned(),
                arch: platform_arch().to_owned(),
            })?;
            target = parsed.clone_with_digest(chosen.digest().to_string());
            (bytes, digest) = client
                .pull_manifest_raw(&target, &auth, MANIFEST_TYPES)
                .await
                .map_err(registry_err)?;
        }
        check_digest(&digest)?;
        let actual = sha256_of(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                expected: digest,
                actual,
                size: bytes.len() as u64,
            });
        }
        let manifest = ImageManifest::from_reader(bytes.as_ref()).map_err(|source| Error::BadJson {
            what: "image manifest",
            digest: digest.clone(),
            source,
        })?;
        self.put_blob(&digest, bytes.as_ref())?;

        let mut wanted = vec![manifest.config().digest().to_string()];
        wanted.extend(manifest.layers().iter().map(|l| l.digest().to_string()));
        for blob in wanted {
            self.pull_blob(&client, &target, reference, &blob).await?;
        }
        self.tag(reference, &digest)?;
        self.load(reference, &digest)
    }

    async fn pull_blob(&self, client: &Client, image: &Reference, reference: &str, digest: &str) -> Result<()> {
        check_digest(digest)?;
        if self.has_blob(digest)? {
            return Ok(());
        }
        let tmp_dir = self.tmp_dir();
        let tmp =
            tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("cannot create temporary blob", &tmp_dir))?;
        let file = tmp.reopen().map_err(io_err("cannot open temporary blob", tmp.path()))?;
        let mut file = tokio::fs::File::from_std(file);
        client
            .pull_blob(image, digest, &mut file)
            .await
            .map_err(|source| registry_error(reference, source))?;
        file.flush().await.map_err(io_err("cannot write blob", tmp.path()))?;
        drop(file);
        // Hash what landed on disk (oci-client checks too; the store trusts
        // only its own check).
        let path = tmp.path().to_path_buf();
        let (actual, size) = tokio::task::spawn_blocking(move || {
            std::fs::File::open(&path).and_then(|f| HashingReader::new(f).finish())
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(io_err("cannot read blob", tmp.path()))?;
        self.commit_blob(tmp, digest, &actual, size)?;
        Ok(())
    }
}

/// The parsed reference, a client for its registry (plain HTTP only to
/// loopback) and the credentials to present.
pub(super) fn connect(reference: &str, options: &PullOptions) -> Result<(Reference, Client, RegistryAuth)> {
    let parsed: Reference = reference.parse().map_err(|source| Error::InvalidReference {
        reference: reference.to_owned(),
        source,
    })?;
    let registry = parsed.resolve_registry().to_owned();
    let protocol = if options.plain_http {
        if !is_loopback_registry(&registry) {
            return Err(Error::PlainHttpRefused { registry });
        }
        ClientProtocol::HttpsExcept(vec![registry])
    } else {
        ClientProtocol::Https
    };
    // reqwest is built without a default crypto provider; ring is the
    // workspace's. An already installed provider is fine too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig {
        protocol,
        ..ClientConfig::default()
    });
    let auth = match &options.basic_auth {
        Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
        None => RegistryAuth::Anonymous,
    };
    Ok((parsed, client, auth))
}

pub(super) fn registry_error(reference: &str, source: OciDistributionError) -> Error {
    match &source {
        OciDistributionError::ImageManifestNotFoundError(_) => Error::ImageNotFound {
            reference: reference.to_owned(),
            hint: Some(source.to_string()),
        },
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    oci_client::errors::OciErrorCode::ManifestUnknown | oci_client::errors::OciErrorCode::NameUnknown
                )
            }) =>
        {
            Error::ImageNotFound {
                reference: reference.to_owned(),
                hint: Some(source.to_string()),
            }
        }
        _ => Error::Registry {
            reference: reference.to_owned(),
            source,
        },
    }
}

/// Whether a raw manifest is an index (OCI) or manifest list (Docker).
fn is_index(bytes: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return false;
    };
    match value.get("mediaType").and_then(|m| m.as_str()) {
        Some(media_type) => media_type == MANIFEST_TYPES[1] || media_type == MANIFEST_TYPES[3],
        None => value.get("manifests").is_some() && value.get("layers").is_none(),
    }
}

/// Whether `registry` (`host[:port]`) is on loopback.
/// Whether `reference` names an image on a loopback registry, which
/// [`PullOptions::plain_http`] may reach.
pub fn is_loopback_reference(reference: &str) -> bool {
    reference
        .parse::<Reference>()
        .is_ok_and(|r| is_loopback_registry(r.resolve_registry()))
}

pub(crate) fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_registry;

    #[test]
    fn loopback() {
        assert!(is_loopback_registry("127.0.0.1:5000"));
        assert!(is_loopback_registry("127.3.2.1"));
        assert!(is_loopback_registry("localhost:80"));
        assert!(is_loopback_registry("[::1]:5000"));
        assert!(!is_loopback_registry("10.0.0.1:5000"));
        assert!(!is_loopback_registry("registry.example:5000"));
        assert!(!is_loopback_registry("127.0.0.1.example.com"));
    }
}
