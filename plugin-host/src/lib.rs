//! skiff's Wasm plugins: scheduler Filter/Score and admission
//! Validate/Mutate policy written in any language that builds a component
//! for the worlds in `wit/plugins.wit`, loaded from `WasmPlugin` objects
//! (`skiff.dev/v1alpha1`) while the cluster runs.
//!
//! # The map
//!
//! * [`spec`]: the `WasmPlugin` kind: stage, component (OCI reference or
//!   inline), config, weight, match rules, failure policy, limits, and
//!   the status reported back.
//! * [`bindings`]: one `bindgen!` per world; the worlds share their
//!   record types.
//! * [`PluginRuntime`] (`runtime`): the plugins' wasmtime engine (fuel and
//!   epoch interruption), a linker per world, components compiled once per
//!   digest; checks a component against its stage's world. The component
//!   cache, the epoch ticker and guest output come from `skiff-wasm`;
//!   components named by OCI reference are pulled with `skiff-image`. The
//!   node agent (`skiff-host`) is not a dependency: a scheduler or API
//!   server loading plugins does not link the kubelet or the proxy.
//! * `instance`: a loaded plugin's instance on a thread of its own; each
//!   call armed with the limits (fuel, wall-clock time, memory); a trap or
//!   exceeded limit drops the instance, and the next call gets a fresh one
//!   (with `init` called again).
//! * [`WasmSchedulerPlugin`] (`scheduling`) and [`WasmAdmissionPlugin`]
//!   (`admission`): the adapters that make a loaded plugin a scheduling
//!   framework plugin or an admission plugin, applying the failure policy
//!   and counting calls ([`metrics`]).
//! * [`PluginManager`] (`manager`): watches WasmPlugins, loads each new
//!   generation completely before swapping it in by name (so a broken
//!   update leaves the old version serving), removes deleted ones, and
//!   writes `status` (`status`: Ready/Degraded conditions, digest, load
//!   error, calls, errors, p50/p99 latency).
//!
//! ```text
//!  WasmPlugin ─► PluginManager ─► fetch ─► PluginRuntime (compile, check world)
//!                                          ─► PluginInstance (thread, limits, init)
//!        ┌─────────────────────────────────────────┴───────────────────┐
//!  WasmSchedulerPlugin ─► skiff_scheduler::DynamicPlugins     WasmAdmissionPlugin ─► skiff_api::admission::Admission
//! ```

pub mod admission;
pub mod bindings;
mod convert;
mod error;
mod instance;
mod manager;
pub mod metrics;
mod runtime;
pub mod scheduling;
pub mod spec;
mod status;

pub use admission::{NamespaceLabels, WasmAdmissionPlugin};
pub use error::{CallError, Error, Result};
pub use instance::PluginInstance;
pub use manager::{ManagerConfig, PluginManager, Sinks};
pub use runtime::PluginRuntime;
pub use scheduling::WasmSchedulerPlugin;
pub use spec::{FailurePolicy, Limits, Stage, WasmPlugin, WasmPluginSpec, WasmPluginStatus};
