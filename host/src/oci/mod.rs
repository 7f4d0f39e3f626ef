//! OCI containers: the node agent's runc side.
//!
//! Images come from the node's image store ([`skiff_image::ImageStore`]);
//! from there, data flows through three stages, one module each:
//!
//! 1. [`rootfs`] unpacks an [`Image`]'s layers (tar, gzip or zstd) once
//!    each into a shared, read-only, content-addressed directory
//!    (`<store root>/layers/<diff id>/`, in overlayfs' on-disk format:
//!    whiteouts are 0:0 character devices, opaque directories carry
//!    `trusted.overlay.opaque`), then assembles a container's root
//!    filesystem as an overlay mount, or as a copy where overlayfs cannot
//!    be mounted.
//! 2. [`bundle`] writes a runtime-spec `config.json` from a [`ContainerSpec`]
//!    and the image configuration, following Kubernetes' rules for command,
//!    args, env, working directory and resources, and the
//!    `securityContext` as [`security`] resolves it.
//! 3. [`runc::RuncRuntime`] drives the `runc` binary through
//!    create/start/state/kill/delete and collects exit codes (see its docs
//!    for how).
//!
//! With a [`shim`] (the skiff binary, called back), each container is
//! created and watched by a small process of its own that outlives the
//! agent, so that exit codes survive an agent restart.
//!
//! `runc exec` runs further processes in a running container
//! ([`RuncRuntime::spawn_exec`]); one with a terminal gets it through
//! runc's console socket (`console`).
//!
//! [`cgroup`] reads what a running container uses from the cgroup the
//! bundle names.
//!
//! Errors are one enum per module; each has a `waiting_reason()` giving the
//! Kubernetes-style reason an agent reports for a container that cannot
//! start (`CreateContainerError`, …).
//!
//! [`Image`]: skiff_image::Image

pub mod bundle;
pub mod cgroup;
mod console;
pub mod rootfs;
pub mod runc;
pub mod security;
pub mod shim;
mod spec;

pub use runc::{ContainerState, RuncRuntime};
pub use security::{Seccomp, Security};
pub use spec::{ContainerSpec, Mount};
