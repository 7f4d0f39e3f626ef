//! Importing an OCI image layout (a directory, or a `.tar` of one).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::{Error, ImageStore, Result, check_digest, io_err, open_blob, platform_arch, select_platform};
use crate::Image;
use crate::digest::{HashingReader, sha256_hex};
use crate::path::safe_relative_path;

const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

impl ImageStore {
    /// Imports the image of an OCI image layout at `path` (a directory or a
    /// tar archive of one) and records it under `reference`.
    ///
    /// The layout's `index.json` entry is chosen by its
    /// `org.opencontainers.image.ref.name` annotation, which may equal
    /// `reference` or its tag; a layout with a single entry needs no match.
    /// Every blob is copied into the store and checked against its digest:
    /// a corrupt layer gives [`Error::DigestMismatch`].
    #[tracing::instrument(skip(self), fields(path = %path.display()))]
    pub fn import_layout(&self, path: &Path, reference: &str) -> Result<Image> {
        let meta = fs::metadata(path).map_err(io_err("cannot read image layout", path))?;
        if meta.is_dir() {
            return self.import_layout_dir(path, path, reference);
        }
        let tmp_dir = self.tmp_dir();
        let extracted =
            tempfile::TempDir::new_in(&tmp_dir).map_err(io_err("cannot create temporary directory", &tmp_dir))?;
        extract_layout_tar(path, extracted.path())?;
        self.import_layout_dir(extracted.path(), path, reference)
    }

    /// `dir` is where the layout is; `shown` the path to name in errors.
    fn import_layout_dir(&self, dir: &Path, shown: &Path, reference: &str) -> Result<Image> {
        let bad = |reason: String| Error::BadLayout {
            path: shown.to_path_buf(),
            reason,
        };
        let marker = dir.join("oci-layout");
        let marker_bytes = fs::read(&marker).map_err(|e| bad(format!("no oci-layout file ({e})")))?;
        let marker: serde_json::Value =
            serde_json::from_slice(&marker_bytes).map_err(|e| bad(format!("oci-layout is not JSON ({e})")))?;
        if marker.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(bad("oci-layout does not declare imageLayoutVersion 1.0.0".into()));
        }
        let index_path = dir.join("index.json");
        let index_file = File::open(&index_path).map_err(|e| bad(format!("no index.json ({e})")))?;
        let index = ImageIndex::from_reader(index_file).map_err(|source| Error::BadJson {
            what: "layout index.json",
            digest: index_path.display().to_string(),
            source,
        })?;

        let mut chosen = pick_entry(&index, reference).ok_or_else(|| Error::ImageNotFound {
            reference: reference.to_owned(),
            hint: Some(format!(
                "no entry of {}/index.json is named {reference:?} or its tag",
                shown.display()
            )),
        })?;
        // Resolve nested indexes down to this platform's manifest.
        for _ in 0..4 {
            if chosen.media_type().to_string() != "application/vnd.oci.image.index.v1+json" {
                break;
            }
            let digest = chosen.digest().to_string();
            let bytes = self.copy_layout_blob(dir, &digest)?;
            let nested = ImageIndex::from_reader(bytes.as_slice()).map_err(|source| Error::BadJson {
                what: "image index",
                digest: digest.clone(),
                source,
            })?;
            chosen = select_platform(&nested)
                .cloned()
                .ok_or_else(|| Error::NoMatchingPlatform {
                    reference: reference.to_owned(),
                    arch: platform_arch().to_owned(),
                })?;
        }

        let manifest_digest = chosen.digest().to_string();
        let manifest_bytes = self.copy_layout_blob(dir, &manifest_digest)?;
        let manifest = ImageManifest::from_reader(manifest_bytes.as_slice()).map_err(|source| Error::BadJson {
            what: "image manifest",
            digest: manifest_digest.clone(),
            source,
        })?;
        self.import_layout_blob(dir, manifest.config())?;
        for layer in manifest.layers() {
            self.import_layout_blob(dir, layer)?;
        }
        self.tag(reference, &manifest_digest)?;
        self.load(reference, &manifest_digest)
    }

    /// Stores one blob of the layout and returns its bytes (for small JSON
    /// blobs).
    fn copy_layout_blob(&self, dir: &Path, digest: &str) -> Result<Vec<u8>> {
        check_digest(digest)?;
        let path = layout_blob_path(dir, digest)?;
        let stored = self.put_blob(digest, open_blob(&path, digest, dir)?)?;
        fs::read(&stored).map_err(io_err("cannot read blob", &stored))
    }

    fn import_layout_blob(&self, dir: &Path, descriptor: &Descriptor) -> Result<()> {
        let digest = descriptor.digest().to_string();
        check_digest(&digest)?;
        let path = layout_blob_path(dir, &digest)?;
        let file = open_blob(&path, &digest, dir)?;
        let blob = self.blob_path(&digest)?;
        if blob.is_file() {
            return Ok(());
        }
        // Hash the layout's copy even if size disagrees, for a clear error.
        let mut reader = HashingReader::new(file);
        let tmp_dir = self.tmp_dir();
        let mut tmp =
            tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("cannot create temporary blob", &tmp_dir))?;
        io::copy(&mut reader, tmp.as_file_mut()).map_err(io_err("cannot copy blob", &path))?;
        let (actual, size) = reader.finish().map_err(io_err("cannot read blob", &path))?;
        if actual == digest && size != descriptor.size() {
            return Err(Error::BadLayout {
                path: dir.to_path_buf(),
                reason: format!("blob {digest} is {size} bytes, manifest says {}", descriptor.size()),
            });
        }
        self.commit_blob(tmp, &digest, &actual, size)?;
        Ok(())
    }
}

fn layout_blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    let hex = sha256_hex(digest).ok_or_else(|| Error::UnsupportedDigest {
        digest: digest.to_owned(),
    })?;
    Ok(dir.join("blobs").join("sha256").join(hex))
}

/// The index entry for `reference`: by ref-name annotation (whole reference
/// or its tag), else the only entry.
fn pick_entry(index: &ImageIndex, reference: &str) -> Option<Descriptor> {
    let tag = reference_tag(reference);
    let named = index.manifests().iter().find(|m| {
        m.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME_ANNOTATION))
            .is_some_and(|name| name == reference || Some(name.as_str()) == tag)
    });
    match (named, index.manifests().as_slice()) {
        (Some(m), _) => Some(m.clone()),
        (None, [only]) => Some(only.clone()),
        (None, _) => None,
    }
}

/// The tag of `name[:tag]` (a colon after the last slash), if any.
fn reference_tag(reference: &str) -> Option<&str> {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map(|(_, tag)| tag)
}

/// Extracts the regular files and directories of a layout tar into `dest`,
/// refusing entries that would land outside it.
fn extract_layout_tar(tar_path: &Path, dest: &Path) -> Result<()> {
    let bad = |reason: String| Error::BadLayout {
        path: tar_path.to_path_buf(),
        reason,
    };
    let file = File::open(tar_path).map_err(io_err("cannot open layout tar", tar_path))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive.entries().map_err(|e| bad(format!("not a tar archive ({e})")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("bad tar entry ({e})")))?;
        let raw = entry
            .path()
            .map_err(|e| bad(format!("bad tar entry path ({e})")))?
            .into_owned();
        let rel =
            safe_relative_path(&raw).ok_or_else(|| bad(format!("entry {} escapes the archive", raw.display())))?;
        let target = dest.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(io_err("cannot create directory", &target))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err("cannot create directory", parent))?;
                }
                let mut out = File::create(&target).map_err(io_err("cannot create file", &target))?;
                io::copy(&mut (&mut entry as &mut dyn Read), &mut out)
                    .map_err(|e| bad(format!("truncated entry {} ({e})", raw.display())))?;
            }
            // Links and specials have no place in a layout.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::reference_tag;

    #[test]
    fn tags() {
        assert_eq!(reference_tag("busybox:latest"), Some("latest"));
        assert_eq!(reference_tag("127.0.0.1:5000/busybox"), None);
        assert_eq!(reference_tag("127.0.0.1:5000/bb:v1@sha256:00"), Some("v1"));
    }
}
