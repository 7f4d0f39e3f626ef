//! OCI images and containers: the node agent's runc side.
//!
//! Data flows through four stages, one module each:
//!
//! 1. [`store::ImageStore`] keeps a content-addressed blob store
//!    (`<root>/blobs/sha256/<hex>`, every digest verified on write) and an
//!    index from image reference to manifest digest
//!    (`<root>/images/<escaped reference>.json`). Images arrive from an OCI
//!    image layout (a directory or a `.tar` of one, [`ImageStore::import_layout`])
//!    or from a registry ([`ImageStore::pull`], via `oci-client`). Each is
//!    described by an [`Image`], whose [`ImageKind`] says whether it is an
//!    ordinary container image or a CNCF Wasm artifact (a layer of media type
//!    `application/wasm`; its component bytes stay a blob, see
//!    [`Image::wasm_component_path`]).
//! 2. [`rootfs`] unpacks layers (tar, gzip or zstd) once each into a shared,
//!    read-only, content-addressed directory (`<root>/layers/<diff id>/`, in
//!    overlayfs' on-disk format: whiteouts are 0:0 character devices, opaque
//!    directories carry `trusted.overlay.opaque`), then assembles a
//!    container's root filesystem as an overlay mount, or as a copy where
//!    overlayfs cannot be mounted.
//! 3. [`bundle`] writes a runtime-spec `config.json` from a [`ContainerSpec`]
//!    and the image configuration, following Kubernetes' rules for command,
//!    args, env, working directory and resources.
//! 4. [`runc::RuncRuntime`] drives the `runc` binary through
//!    create/start/state/kill/delete and collects exit codes (see its docs
//!    for how).
//!
//! Errors are one enum per module; each has a `waiting_reason()` giving the
//! Kubernetes-style reason an agent reports for a container that cannot
//! start (`ErrImagePull`, `CreateContainerError`, …).
//!
//! [`ImageStore::import_layout`]: store::ImageStore::import_layout
//! [`ImageStore::pull`]: store::ImageStore::pull

pub mod bundle;
mod digest;
pub mod image;
pub mod rootfs;
pub mod runc;
mod spec;
pub mod store;

pub use image::{Image, ImageKind, WASM_LAYER_MEDIA_TYPE};
pub use runc::{ContainerState, RuncRuntime};
pub use spec::{ContainerSpec, Mount};
pub use store::{ImageStore, PullOptions, is_loopback_reference, push_component};
