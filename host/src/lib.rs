//! skiff's node agent: it runs pods' containers on this node.
//!
//! Two runtimes, side by side:
//!
//! * Wasm components run in-process in one wasmtime engine, the
//!   [`skiff_wasm`] crate (pooling allocator, copy-on-write memory, epoch
//!   interruption; `wasi:http/proxy` components get a fresh instance per
//!   request, `wasi:cli/command` components run to an exit code).
//! * [`oci`]: OCI images unpacked into root filesystems and run by runc.
//!
//! Images of both kinds come from the node's image store, the
//! [`skiff_image`] crate (OCI layouts, registries, imported components).
//!
//! [`agent`] is the kubelet built on them: it registers the Node, watches
//! the pods bound to it, runs their containers in whichever runtime their
//! image needs, reports status and serves logs.

pub mod agent;
pub mod oci;
