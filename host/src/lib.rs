//! skiff's node agent: it runs pods' containers on this node.
//!
//! Two runtimes, side by side:
//!
//! * [`wasm`]: Wasm components run in-process in one wasmtime engine
//!   (pooling allocator, copy-on-write memory, epoch interruption).
//!   `wasi:http/proxy` components get a fresh instance per request;
//!   `wasi:cli/command` components run to an exit code. Components are
//!   compiled once per digest and cached on disk.
//!
//! The agent loop that registers the Node, watches its pods and reports
//! their status, and the runc runtime for OCI images, are built on these.

pub mod wasm;
