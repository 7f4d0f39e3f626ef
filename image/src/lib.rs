//! skiff's image store: where a node keeps the images its pods run, and
//! where plugin components are pulled into. It knows OCI images and CNCF
//! Wasm component artifacts, nothing of pods or runtimes.
//!
//! # The map
//!
//! * [`ImageStore`] (`store`): a content-addressed blob store
//!   (`<root>/blobs/sha256/<hex>`, every digest verified on write) and an
//!   index from image reference to manifest digest
//!   (`<root>/images/<escaped reference>.json`). Images arrive from an OCI
//!   image layout (a directory or a `.tar` of one,
//!   [`ImageStore::import_layout`]), from a registry ([`ImageStore::pull`],
//!   via `oci-client`; plain HTTP only to loopback, see
//!   [`is_loopback_reference`]), or as a bare component
//!   ([`ImageStore::import_component`]). [`push_component`] sends a
//!   component to a registry as a Wasm artifact.
//! * [`Image`] (`image`): a stored image, its configuration and layers; its
//!   [`ImageKind`] says whether it is an ordinary container image or a
//!   Wasm artifact (a layer of media type [`WASM_LAYER_MEDIA_TYPE`], whose
//!   component bytes stay a blob, see [`Image::wasm_component_path`]).
//! * [`credentials`]: registry logins from pull secrets (Docker's config
//!   format) and which apply to a reference.
//! * [`digest`]: `sha256:<hex>` parsing and hashing while streaming.
//! * [`path`]: archive entry paths kept inside their destination.
//!
//! ```text
//!  OCI layout dir/tar ─► import_layout ─┐
//!  registry ──────────► pull ───────────┼─► blobs/ + images/ ─► get(reference) ─► Image
//!  component bytes ───► import_component┘
//! ```
//!
//! Users: the node agent (`skiff-host`: pod images, unpacked into root
//! filesystems for runc or handed to wasmtime), the plugin host
//! (`skiff-plugin-host`: plugin components named by OCI reference) and
//! `skiff image import|push`. Unpacking layers into root filesystems is
//! the agent's business (`skiff_host::oci::rootfs`) and stays there.
//!
//! Errors are one enum, [`store::Error`]; its docs say which variants may be
//! retried, and `waiting_reason()` gives the Kubernetes reason an agent
//! reports for a container whose image cannot be had (`ErrImagePull`, …).

pub mod credentials;
pub mod digest;
mod image;
pub mod path;
pub mod store;

pub use image::{Image, ImageKind, WASM_LAYER_MEDIA_TYPE};
pub use store::{ImageStore, PullOptions, is_loopback_reference, push_component};
