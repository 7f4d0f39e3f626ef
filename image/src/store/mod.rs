//! The node's image store: verified content-addressed blobs plus an index of
//! references.
//!
//! Layout under the root:
//!
//! ```text
//! blobs/sha256/<hex>          every blob, written only after its digest checked
//! images/<escaped ref>.json   {"reference": …, "manifest_digest": "sha256:…"}
//! layers/<diff id hex>/       unpacked layers (see `skiff_host::oci::rootfs`)
//! tmp/                        partial downloads and extracted layout tars
//! ```
//!
//! Images come in through [`ImageStore::import_layout`] (this module's
//! `layout` file) and [`ImageStore::pull`] (`pull`); [`push_component`]
//! (`push`) sends a Wasm component to a registry.

mod component;
mod layout;
mod pull;
mod push;

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use crate::digest::{HashingReader, sha256_hex};
use crate::image::{blob_path, is_wasm_layer};
use crate::{Image, ImageKind};

pub use pull::{PullOptions, is_loopback_reference};
pub use push::push_component;

/// Media type of a Wasm artifact's config (CNCF Wasm OCI artifact layout).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// Errors of the image store.
///
/// [`Error::Registry`] and [`Error::Io`] may be worth retrying; the others
/// will fail the same way again.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No image under this reference (in the store, the layout or the
    /// registry).
    #[error("image {reference} not found{}", hint.as_deref().map(|h| format!(": {h}")).unwrap_or_default())]
    ImageNotFound { reference: String, hint: Option<String> },
    /// The reference does not parse.
    #[error("invalid image reference {reference:?}")]
    InvalidReference {
        reference: String,
        #[source]
        source: oci_client::ParseError,
    },
    /// A blob's content does not match its digest (a corrupt layer, config or
    /// manifest).
    #[error("corrupt blob: expected {expected}, content hashes to {actual} ({size} bytes)")]
    DigestMismatch {
        expected: String,
        actual: String,
        size: u64,
    },
    /// A digest that is not `sha256:<64 hex>`.
    #[error("unsupported digest {digest:?}: only sha256 is accepted")]
    UnsupportedDigest { digest: String },
    /// A blob the manifest names is absent (from the layout or the store).
    #[error("blob {digest} missing from {place}")]
    MissingBlob { digest: String, place: PathBuf },
    /// The directory or tar is not a usable OCI image layout.
    #[error("{path} is not a usable OCI image layout: {reason}")]
    BadLayout { path: PathBuf, reason: String },
    /// A manifest, index or config that does not parse.
    #[error("cannot parse {what} {digest}")]
    BadJson {
        what: &'static str,
        digest: String,
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// A manifest whose media type the store cannot use.
    #[error("unsupported manifest media type {media_type} for {reference}")]
    UnsupportedManifest { reference: String, media_type: String },
    /// No manifest of an index matches this node's platform.
    #[error("no manifest for linux/{arch} in the index of {reference}")]
    NoMatchingPlatform { reference: String, arch: String },
    /// Plain HTTP was asked for a registry that is not on loopback.
    #[error(
        "plain HTTP refused for registry {registry}: only loopback registries (127.0.0.0/8, ::1, localhost) may be reached without TLS"
    )]
    PlainHttpRefused { registry: String },
    /// The registry refused or failed a request.
    #[error("registry request for {reference} failed")]
    Registry {
        reference: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// Filesystem failure in the store.
    #[error("{context}: {}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The index entry for a reference does not parse.
    #[error("corrupt image index entry {}", path.display())]
    BadIndexEntry {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// The Kubernetes waiting reason an agent reports for this failure.
    pub fn waiting_reason(&self) -> &'static str {
        match self {
            Error::InvalidReference { .. } => "InvalidImageName",
            Error::ImageNotFound { .. }
            | Error::DigestMismatch { .. }
            | Error::UnsupportedDigest { .. }
            | Error::MissingBlob { .. }
            | Error::BadLayout { .. }
            | Error::BadJson { .. }
            | Error::UnsupportedManifest { .. }
            | Error::NoMatchingPlatform { .. }
            | Error::PlainHttpRefused { .. }
            | Error::Registry { .. }
            | Error::Io { .. }
            | Error::BadIndexEntry { .. } => "ErrImagePull",
        }
    }
}

/// Result of store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { context, path, source }
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexEntry {
    reference: String,
    manifest_digest: String,
}

/// Content-addressed blob store and reference index under one directory.
///
/// Safe to share between threads and processes: every file is written to
/// `tmp/` first and renamed into place.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Opens (creating if needed) a store rooted at `root` (made absolute:
    /// the paths it hands out end up in runc bundles, read from elsewhere).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let root = std::path::absolute(&root).map_err(io_err("cannot resolve store directory", &root))?;
        for dir in ["blobs/sha256", "images", "layers", "tmp"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_err("cannot create store directory", &path))?;
        }
        Ok(Self { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image stored under `reference`, if any.
    pub fn get(&self, reference: &str) -> Result<Option<Image>> {
        let path = self.index_path(reference);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read image index entry", &path)(e)),
        };
        let entry: IndexEntry =
            serde_json::from_slice(&bytes).map_err(|source| Error::BadIndexEntry { path, source })?;
        self.load(reference, &entry.manifest_digest).map(Some)
    }

    /// Path of the blob with this digest (whether or not it is present).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        blob_path(&self.root, digest).ok_or_else(|| Error::UnsupportedDigest {
            digest: digest.to_owned(),
        })
    }

    fn has_blob(&self, digest: &str) -> Result<bool> {
        Ok(self.blob_path(digest)?.is_file())
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Copies `reader` into the store as blob `digest`, refusing content
    /// that hashes differently. Returns the blob's path.
    fn put_blob(&self, digest: &str, reader: impl Read) -> Result<PathBuf> {
        let dest = self.blob_path(digest)?;
        if dest.is_file() {
            return Ok(dest);
        }
        let tmp_dir = self.tmp_dir();
        let mut tmp =
            tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("cannot create temporary blob", &tmp_dir))?;
        let mut hashing = HashingReader::new(reader);
        io::copy(&mut hashing, tmp.as_file_mut()).map_err(io_err("cannot copy blob", tmp.path()))?;
        let (actual, size) = hashing.finish().map_err(io_err("cannot read blob", tmp.path()))?;
        self.commit_blob(tmp, digest, &actual, size)
    }

    /// Checks a fully written temporary file against `digest` and moves it
    /// into place.
    fn commit_blob(&self, tmp: tempfile::NamedTempFile, digest: &str, actual: &str, size: u64) -> Result<PathBuf> {
        if actual != digest {
            return Err(Error::DigestMismatch {
                expected: digest.to_owned(),
                actual: actual.to_owned(),
                size,
            });
        }
        let dest = self.blob_path(digest)?;
        tmp.as_file()
            .sync_all()
            .map_err(io_err("cannot sync blob", tmp.path()))?;
        tmp.persist(&dest)
            .map_err(|e| io_err("cannot store blob", &dest)(e.error))?;
        Ok(dest)
    }

    fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingBlob {
                digest: digest.to_owned(),
                place: self.root.clone(),
            }),
            Err(e) => Err(io_err("cannot read blob", &path)(e)),
        }
    }

    fn index_path(&self, reference: &str) -> PathBuf {
        self.root
            .join("images")
            .join(format!("{}.json", escape_reference(reference)))
    }

    /// Points `reference` at a manifest already in the store.
    fn tag(&self, reference: &str, manifest_digest: &str) -> Result<()> {
        let entry = IndexEntry {
            reference: reference.to_owned(),
            manifest_digest: manifest_digest.to_owned(),
        };
        let path = self.index_path(reference);
        let tmp_dir = self.tmp_dir();
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir)
            .map_err(io_err("cannot create temporary index entry", &tmp_dir))?;
        serde_json::to_writer(tmp.as_file(), &entry).map_err(|source| Error::BadIndexEntry {
            path: path.clone(),
            source,
        })?;
        tmp.persist(&path)
            .map_err(|e| io_err("cannot write image index entry", &path)(e.error))?;
        Ok(())
    }

    /// Builds the [`Image`] for a manifest whose blobs are all stored.
    fn load(&self, reference: &str, manifest_digest: &str) -> Result<Image> {
        let manifest = self.manifest(manifest_digest)?;
        let config_digest = manifest.config().digest().to_string();
        let config_bytes = self.read_blob(&config_digest)?;
        let wasm = manifest.layers().iter().any(is_wasm_layer)
            || manifest.config().media_type().to_string() == WASM_CONFIG_MEDIA_TYPE;
        let config = match ImageConfiguration::from_reader(config_bytes.as_slice()) {
            Ok(config) => config,
            // A Wasm artifact's config need not be an image configuration.
            Err(_) if wasm => ImageConfiguration::default(),
            Err(source) => {
                return Err(Error::BadJson {
                    what: "image config",
                    digest: config_digest,
                    source,
                });
            }
        };
        for layer in manifest.layers() {
            let digest = layer.digest().to_string();
            if !self.has_blob(&digest)? {
                return Err(Error::MissingBlob {
                    digest,
                    place: self.root.clone(),
                });
            }
        }
        Ok(Image {
            reference: reference.to_owned(),
            manifest_digest: manifest_digest.to_owned(),
            config,
            layers: manifest.layers().clone(),
            kind: if wasm { ImageKind::Wasm } else { ImageKind::Container },
            store_root: self.root.clone(),
        })
    }

    fn manifest(&self, digest: &str) -> Result<ImageManifest> {
        let bytes = self.read_blob(digest)?;
        ImageManifest::from_reader(bytes.as_slice()).map_err(|source| Error::BadJson {
            what: "image manifest",
            digest: digest.to_owned(),
            source,
        })
    }
}

/// File-name-safe, injective form of a reference: `[A-Za-z0-9._-]` kept,
/// everything else `%XX`.
fn escape_reference(reference: &str) -> String {
    let mut out = String::with_capacity(reference.len());
    for b in reference.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `GOARCH` name of this machine's architecture.
fn platform_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The manifest of an index that matches linux on this architecture.
fn select_platform(index: &ImageIndex) -> Option<&Descriptor> {
    let arch = platform_arch();
    index.manifests().iter().find(|m| {
        m.platform()
            .as_ref()
            .is_some_and(|p| p.os().to_string() == "linux" && p.architecture().to_string() == arch)
    })
}

/// Checks a descriptor's digest is one the store accepts.
fn check_digest(digest: &str) -> Result<()> {
    sha256_hex(digest).map(|_| ()).ok_or_else(|| Error::UnsupportedDigest {
        digest: digest.to_owned(),
    })
}

/// Opens a file for reading, mapping "not found" to [`Error::MissingBlob`].
fn open_blob(path: &Path, digest: &str, place: &Path) -> Result<File> {
    File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::MissingBlob {
                digest: digest.to_owned(),
                place: place.to_path_buf(),
            }
        } else {
            io_err("cannot open blob", path)(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_root_is_made_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let relative = pathdiff(dir.path());
        let store = ImageStore::open(&relative).unwrap();
        assert!(store.root().is_absolute(), "{}", store.root().display());
        assert!(store.root().ends_with(&relative));
    }

    /// `dir` relative to the current directory (via `..` as needed).
    fn pathdiff(dir: &Path) -> PathBuf {
        let cwd = std::env::current_dir().unwrap();
        let ups = cwd.components().count() - 1;
        let mut relative = PathBuf::new();
        for _ in 0..ups {
            relative.push("..");
        }
        relative.join(dir.strip_prefix("/").unwrap())
    }

    #[test]
    fn escaping_is_filename_safe() {
        let e = escape_reference("127.0.0.1:5000/a/b:v1");
        assert!(!e.contains('/') && !e.contains(':'));
        assert_ne!(escape_reference("a/b"), escape_reference("a_b"));
        assert!(!escape_reference("..").starts_with('.'));
    }
}
