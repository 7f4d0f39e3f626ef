//! skiff's node agent: it runs pods' containers on this node.
//!
//! Two runtimes, side by side, each behind
//! [`WorkloadRuntime`](agent::runtime::WorkloadRuntime):
//!
//! * Wasm components run in-process in one wasmtime engine, the
//!   [`skiff_wasm`] crate (pooling allocator, copy-on-write memory, epoch
//!   interruption; `wasi:http/proxy` components get a fresh instance per
//!   request, `wasi:cli/command` components run to an exit code).
//! * [`oci`]: OCI images unpacked into root filesystems and run by runc,
//!   each pod in a network namespace of its own ([`podnet`]).
//!
//! Images of both kinds come from the node's image store, the
//! [`skiff_image`] crate (OCI layouts, registries, imported components).
//!
//! [`agent`] is the kubelet built on them: it registers the Node, watches
//! the pods bound to it, lets the runtimes say which of them runs each
//! container and how its logs and network are wired, runs them, reports
//! status and serves logs.
//!
//! ```text
//!  Pod ─► agent::pods ─► worker ─► Shared::pull ─► skiff_image::Image
//!                          │
//!                          ├─► Runtimes::select(image, runtimeClassName) ─► WasmtimeWorkloads ─► skiff_wasm
//!                          │                                              └► RuncWorkloads ────► oci (rootfs, bundle, runc)
//!                          └─► status, events, logs, probes
//! ```

pub mod agent;
pub mod oci;
pub mod podnet;
