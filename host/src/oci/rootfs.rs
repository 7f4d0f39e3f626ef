//! Layers unpacked once into a shared directory, and container root
//! filesystems assembled from them.
//!
//! Each layer is unpacked into `<store>/layers/<diff id hex>/` (the diff id
//! is the sha256 of the uncompressed tar, checked against the image
//! config), in overlayfs' own format: a whiteout `.wh.NAME` becomes a 0:0
//! character device `NAME`, an opaque marker `.wh..wh..opq` becomes the
//! `trusted.overlay.opaque=y` attribute of its directory. The directory is
//! then shared, never written, by every container of every image using
//! that layer.
//!
//! A container's root filesystem ([`assemble`]) is an overlay mount of the
//! layers with a private upper and work directory; if overlayfs cannot be
//! mounted (no privilege, unsupported filesystem, option string too long),
//! the layers are copied, whiteouts applied, into a private directory.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, FileType, Mode, XattrFlags};

use skiff_image::Image;
use skiff_image::digest::{HashingReader, sha256_hex};
use skiff_image::path::safe_relative_path;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Errors unpacking layers and assembling root filesystems.
///
/// [`Error::Io`] may be transient; the `Corrupt*` variants mean the image
/// is broken and will fail the same way again.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer that is not a readable (gzip/zstd/plain) tar archive.
    #[error("corrupt layer {digest}: not a readable tar archive")]
    CorruptArchive {
        digest: String,
        #[source]
        source: io::Error,
    },
    /// A layer whose uncompressed content does not match the config's diff id.
    #[error("corrupt layer {digest}: uncompressed content hashes to {actual}, image config says {expected}")]
    CorruptDiffId {
        digest: String,
        expected: String,
        actual: String,
    },
    /// A layer entry that would land outside the layer directory.
    #[error("corrupt layer {digest}: entry {path:?} escapes the root")]
    PathTraversal { digest: String, path: PathBuf },
    /// A layer or diff id digest the store cannot address.
    #[error("unsupported digest {digest:?}")]
    UnsupportedDigest { digest: String },
    /// Filesystem failure.
    #[error("{context}: {}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The Kubernetes waiting reason an agent reports for this failure.
    pub fn waiting_reason(&self) -> &'static str {
        "CreateContainerError"
    }
}

/// Result of rootfs operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { context, path, source }
}

fn errno_err(context: &'static str, path: &Path) -> impl FnOnce(rustix::io::Errno) -> Error {
    let path = path.to_path_buf();
    move |errno| Error::Io {
        context,
        path,
        source: errno.into(),
    }
}

/// How a container's root filesystem was assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootfsKind {
    /// An overlay mount on the shared layers.
    Overlay,
    /// A private copy of the layers.
    Copy,
}

/// A container's root filesystem.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// The directory to use as the bundle's `root.path`.
    pub path: PathBuf,
    /// Overlay or copy.
    pub kind: RootfsKind,
}

/// Unpacks every layer of `image` (if not already there) and returns their
/// directories, base layer first.
#[tracing::instrument(skip(image), fields(image = %image.reference))]
pub fn unpack_layers(image: &Image) -> Result<Vec<PathBuf>> {
    let diff_ids = image.config.rootfs().diff_ids();
    image
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let digest = layer.digest().to_string();
            let blob = image
                .blob_path(&digest)
                .ok_or_else(|| Error::UnsupportedDigest { digest: digest.clone() })?;
            unpack_layer(&blob, &digest, diff_ids.get(i).map(String::as_str), &image.layers_dir())
        })
        .collect()
}

/// Unpacks one layer blob into `<layers_dir>/<diff id hex>/` and returns
/// that directory. With `expected_diff_id`, an existing directory is reused
/// without reading the blob and a mismatch is [`Error::CorruptDiffId`].
pub fn unpack_layer(blob: &Path, digest: &str, expected_diff_id: Option<&str>, layers_dir: &Path) -> Result<PathBuf> {
    if let Some(expected) = expected_diff_id {
        let hex = sha256_hex(expected).ok_or_else(|| Error::UnsupportedDigest {
            digest: expected.to_owned(),
        })?;
        let dir = layers_dir.join(hex);
        if dir.is_dir() {
            return Ok(dir);
        }
    }
    fs::create_dir_all(layers_dir).map_err(io_err("cannot create layers directory", layers_dir))?;
    let staging = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(layers_dir)
        .map_err(io_err("cannot create staging directory", layers_dir))?;
    let file = File::open(blob).map_err(io_err("cannot open layer blob", blob))?;
    let corrupt = |source: io::Error| Error::CorruptArchive {
        digest: digest.to_owned(),
        source,
    };
    let mut hashing = HashingReader::new(decompress(file).map_err(corrupt)?);
    extract(&mut hashing, staging.path(), digest)?;
    let (actual, _) = hashing.finish().map_err(corrupt)?;
    if let Some(expected) = expected_diff_id
        && expected != actual
    {
        return Err(Error::CorruptDiffId {
            digest: digest.to_owned(),
            expected: expected.to_owned(),
            actual,
        });
    }
    let hex = sha256_hex(&actual).ok_or_else(|| Error::UnsupportedDigest { digest: actual.clone() })?;
    let dir = layers_dir.join(hex);
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, &dir) {
        // Another unpacker won the race: keep theirs.
        let _ = fs::remove_dir_all(&staged);
        if !dir.is_dir() {
            return Err(io_err("cannot move layer into place", &dir)(e));
        }
    }
    Ok(dir)
}

/// The uncompressed stream of a layer blob, by magic number: gzip, zstd or
/// plain tar.
fn decompress(file: File) -> io::Result<Box<dyn Read>> {
    let mut reader = BufReader::new(file);
    let head = reader.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(reader).map_err(io::Error::other)?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(reader))
    }
}

/// Unpacks a tar stream into `dest`, translating whiteouts to overlayfs'
/// format and refusing entries that escape `dest`.
fn extract(reader: &mut dyn Read, dest: &Path, digest: &str) -> Result<()> {
    let corrupt = |source: io::Error| Error::CorruptArchive {
        digest: digest.to_owned(),
        source,
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw = entry.path().map_err(corrupt)?.into_owned();
        let traversal = || Error::PathTraversal {
            digest: digest.to_owned(),
            path: raw.clone(),
        };
        let rel = safe_relative_path(&raw).ok_or_else(traversal)?;
        if let Some(link) = entry.link_name().map_err(corrupt)?
            && entry.header().entry_type().is_hard_link()
            && safe_relative_path(&link).is_none()
        {
            return Err(traversal());
        }
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name == OPAQUE_MARKER {
            let dir = real_dir(dest, rel.parent().unwrap_or(Path::new("")), digest, &raw)?;
            rustix::fs::lsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(errno_err("cannot mark directory opaque", &dir))?;
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let dir = real_dir(dest, rel.parent().unwrap_or(Path::new("")), digest, &raw)?;
            let target = dir.join(hidden);
            remove_any(&target)?;
            rustix::fs::mknodat(
                CWD,
                &target,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(errno_err("cannot create whiteout", &target))?;
        } else if rel.as_os_str().is_empty() {
            // The archive root itself: nothing to create.
        } else if !entry.unpack_in(dest).map_err(corrupt)? {
            return Err(traversal());
        }
    }
    Ok(())
}

/// `dest/rel` as a real directory, created if missing, refusing symlinks
/// (which could point outside `dest`) on the way.
fn real_dir(dest: &Path, rel: &Path, digest: &str, raw: &Path) -> Result<PathBuf> {
    let mut dir = dest.to_path_buf();
    for component in rel.components() {
        dir.push(component);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::PathTraversal {
                    digest: digest.to_owned(),
                    path: raw.to_path_buf(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&dir).map_err(io_err("cannot create directory", &dir))?;
            }
            Err(e) => return Err(io_err("cannot inspect directory", &dir)(e)),
        }
    }
    Ok(dir)
}

/// Removes whatever is at `path` (file, symlink or directory tree).
fn remove_any(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(io_err("cannot remove", path))
}

/// Builds `<container_dir>/rootfs` from `layers` (base first): an overlay
/// mount if possible, else a copy. `container_dir` must exist.
#[tracing::instrument(skip(layers))]
pub fn assemble(layers: &[PathBuf], container_dir: &Path) -> Result<Rootfs> {
    let rootfs = container_dir.join("rootfs");
    fs::create_dir_all(&rootfs).map_err(io_err("cannot create rootfs", &rootfs))?;
    match mount_overlay(layers, container_dir, &rootfs) {
        Ok(()) => {
            return Ok(Rootfs {
                path: rootfs,
                kind: RootfsKind::Overlay,
            });
        }
        Err(reason) => {
            tracing::info!(%reason, "overlayfs unavailable, copying layers");
        }
    }
    for layer in layers {
        copy_layer(layer, &rootfs)?;
    }
    Ok(Rootfs {
        path: rootfs,
        kind: RootfsKind::Copy,
    })
}

/// Mounts the overlay; the error is a reason to fall back, not a failure.
fn mount_overlay(layers: &[PathBuf], container_dir: &Path, rootfs: &Path) -> Result<(), String> {
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    let empty = container_dir.join("empty");
    for dir in [&upper, &work, &empty] {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut lowers: Vec<&Path> = layers.iter().rev().map(PathBuf::as_path).collect();
    if lowers.is_empty() {
        lowers.push(&empty);
    }
    let all = lowers.iter().copied().chain([upper.as_path(), work.as_path()]);
    for path in all {
        let s = path.to_string_lossy();
        if s.contains([':', ',', '\\']) || path.to_str().is_none() {
            return Err(format!("path {s} cannot be an overlay option"));
        }
    }
    let lowerdir = lowers.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(":");
    let data = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    // The kernel reads at most one page of options.
    if data.len() >= 4000 {
        return Err(format!("overlay options are {} bytes", data.len()));
    }
    let data = CString::new(data).map_err(|e| e.to_string())?;
    rustix::mount::mount(
        "overlay",
        rootfs,
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| format!("mount overlay: {e}"))
}

/// Applies one unpacked layer onto `dest` the way overlayfs would show it.
fn copy_layer(src: &Path, dest: &Path) -> Result<()> {
    let entries = fs::read_dir(src).map_err(io_err("cannot read layer directory", src))?;
    for entry in entries {
        let entry = entry.map_err(io_err("cannot read layer directory", src))?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let meta = fs::symlink_metadata(&from).map_err(io_err("cannot inspect", &from))?;
        let file_type = FileType::from_raw_mode(meta.mode());
        if file_type == FileType::CharacterDevice && meta.rdev() == 0 {
            remove_any(&to)?;
            continue;
        }
        if meta.is_dir() {
            let existing = fs::symlink_metadata(&to).ok();
            let keep = existing.is_some_and(|m| m.is_dir()) && !is_opaque(&from);
            if !keep {
                remove_any(&to)?;
                fs::create_dir(&to).map_err(io_err("cannot create directory", &to))?;
            }
            copy_owner_and_mode(&meta, &to)?;
            copy_layer(&from, &to)?;
            continue;
        }
        remove_any(&to)?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&from).map_err(io_err("cannot read symlink", &from))?;
            std::os::unix::fs::symlink(&target, &to).map_err(io_err("cannot create symlink", &to))?;
            std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid())).map_err(io_err("cannot chown", &to))?;
        } else if meta.is_file() {
            fs::copy(&from, &to).map_err(io_err("cannot copy file", &to))?;
            copy_owner_and_mode(&meta, &to)?;
        } else {
            rustix::fs::mknodat(CWD, &to, file_type, Mode::from_raw_mode(meta.mode()), meta.rdev())
                .map_err(errno_err("cannot create special file", &to))?;
            copy_owner_and_mode(&meta, &to)?;
        }
    }
    Ok(())
}

fn copy_owner_and_mode(meta: &fs::Metadata, to: &Path) -> Result<()> {
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid())).map_err(io_err("cannot chown", to))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(io_err("cannot chmod", to))
}

fn is_opaque(dir: &Path) -> bool {
    let mut value = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut value[..]), Ok(1) if value[0] == b'y')
}

/// Unmounts `<container_dir>/rootfs` if it is a mount and removes the
/// container directory.
pub fn teardown(container_dir: &Path) -> Result<()> {
    let rootfs = container_dir.join("rootfs");
    match rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH) {
        // EINVAL: not a mount point (a copy); ENOENT: already gone.
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(errno_err("cannot unmount rootfs", &rootfs)(e)),
    }
    match fs::remove_dir_all(container_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("cannot remove container directory", container_dir)(e)),
    }
}
