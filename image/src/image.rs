//! An image held by the [`ImageStore`](crate::ImageStore).

use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration};

use crate::digest::sha256_hex;

/// Media type of the component layer in a CNCF Wasm OCI artifact.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// What an image holds, which decides the runtime that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// An ordinary filesystem image, run by runc.
    Container,
    /// A Wasm component artifact (a layer of media type
    /// [`WASM_LAYER_MEDIA_TYPE`]), run by wasmtime.
    Wasm,
}

/// An image whose manifest, config and layers are all in the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The reference it was imported or pulled under.
    pub reference: String,
    /// `sha256:<hex>` of the manifest.
    pub manifest_digest: String,
    /// The image configuration (for a Wasm artifact, whatever of its config
    /// parses as one; usually the defaults).
    pub config: ImageConfiguration,
    /// The manifest's layer descriptors, base layer first.
    pub layers: Vec<Descriptor>,
    /// Container image or Wasm artifact.
    pub kind: ImageKind,
    /// Root of the store holding the blobs.
    pub(crate) store_root: PathBuf,
}

impl Image {
    /// Path of a blob of this image's store, for a digest this store accepts.
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        blob_path(&self.store_root, digest)
    }

    /// Path of the Wasm component's bytes (the `application/wasm` layer's
    /// blob), for a [`ImageKind::Wasm`] image; `None` otherwise.
    pub fn wasm_component_path(&self) -> Option<PathBuf> {
        if self.kind != ImageKind::Wasm {
            return None;
        }
        let layer = self.layers.iter().find(|l| is_wasm_layer(l))?;
        self.blob_path(layer.digest().as_ref())
    }

    /// Directory of unpacked layers shared by every image of the store
    /// (filled by the node agent's root filesystem code).
    pub fn layers_dir(&self) -> PathBuf {
        self.store_root.join("layers")
    }
}

/// Older Wasm layer media type (wasm-to-oci), also accepted.
const LEGACY_WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";

/// True for a CNCF (`application/wasm`) or legacy Wasm layer.
pub(crate) fn is_wasm_layer(layer: &Descriptor) -> bool {
    let media_type = layer.media_type().to_string();
    media_type == WASM_LAYER_MEDIA_TYPE || media_type == LEGACY_WASM_LAYER_MEDIA_TYPE
}

pub(crate) fn blob_path(root: &Path, digest: &str) -> Option<PathBuf> {
    let hex = sha256_hex(digest)?;
    Some(root.join("blobs").join("sha256").join(hex))
}
