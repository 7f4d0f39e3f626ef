//! skiff's node agent: it runs pods' containers on this node.
//!
//! Two runtimes, side by side:
//!
//! * [`wasm`]: Wasm components run in-process in one wasmtime engine
//!   (pooling allocator, copy-on-write memory, epoch interruption).
//!   `wasi:http/proxy` components get a fresh instance per request;
//!   `wasi:cli/command` components run to an exit code. Components are
//!   compiled once per digest and cached on disk.
//! * [`oci`]: OCI images (pulled from a registry or imported from an
//!   image layout) in a content-addressed store, unpacked into root
//!   filesystems and run by runc.
//!
//! [`agent`] is the kubelet built on them: it registers the Node, watches
//! the pods bound to it, runs their containers in whichever runtime their
//! image needs, reports status and serves logs.

pub mod agent;
pub mod oci;
pub mod wasm;
