//! skiff's Wasm engine: components run in-process in one wasmtime engine
//! per node. It knows components, WASI and limits, nothing of pods: the
//! node agent (`skiff-host`) turns pod containers into [`Environment`]s
//! and runs them here; the plugin host (`skiff-plugin-host`) shares the
//! [`ComponentCache`], the [`EpochTicker`] and the guest [`Output`]s for
//! its own engine.
//!
//! # The map
//!
//! * [`WasmRuntime`] (this file): one engine, one compiled-component
//!   cache, one linker per world; [`WasmRuntime::load`] says what a
//!   component is for ([`ComponentKind`]), then [`WasmRuntime::http_service`]
//!   or [`WasmRuntime::command`] makes it runnable.
//! * [`engine`]: the node's [`NodeEngine`], with the pooling allocator,
//!   copy-on-write memory images and an epoch ticker ([`EpochTicker`];
//!   [`engine::ticks`] turns a time limit into epoch ticks).
//! * [`cache`]: components compiled once per digest, kept on disk.
//! * [`state`]: what an instance sees ([`Environment`]: args, env,
//!   preopened volumes, where its stdout/stderr go) and is bounded by
//!   ([`Limits`]).
//! * [`http`]: `wasi:http/proxy` components, one instance per request
//!   ([`HttpService`]).
//! * [`outgoing`]: where an instance's outgoing HTTP requests go, the
//!   [`Outgoing`] its environment names (the node agent routes them).
//! * [`sockets`]: `wasi:sockets` through the [`NetworkView`] its
//!   environment names: its own address for `127.0.0.1`, names, and what
//!   it may reach.
//! * [`command`]: `wasi:cli/command` components, run to an exit code
//!   ([`CommandService`], stopped early through a [`StopHandle`]).
//! * [`cpu`]: CPU limits, requests and usage per container ([`CpuBudget`]).
//! * [`memory`]: the memory limit per instance, and the linear memory a
//!   container's live instances hold ([`MemoryGauge`]).
//! * [`metrics`]: Prometheus metrics of HTTP services (requests, latency,
//!   instantiation, instances alive) and of compilation, registered into
//!   the agent's registry ([`WasmRuntime::with_metrics`]).
//!
//! ```text
//!  component bytes ─► ComponentCache (compile once per digest) ─► load: ComponentKind
//!      Http    ─► HttpService::handle(request)  ─► fresh Store + instance per request
//!      Command ─► CommandService::run(stop)     ─► Exit { code, Termination }
//! ```
//!
//! Failures of a guest (a trap, an exhausted limit, a missing import) are
//! [`WasmError`]s for that request or run; they never take the host down.
//! None is worth retrying with the same component and limits.

pub mod cache;
pub mod command;
pub mod cpu;
pub mod engine;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod outgoing;
pub mod sockets;
pub mod state;

use std::path::PathBuf;

use wasmtime::component::{Component, Linker};

pub use cache::ComponentCache;
pub use command::{CommandService, Exit, StopHandle};
pub use cpu::CpuBudget;
pub use engine::{EpochTicker, NodeEngine, PoolConfig};
pub use http::HttpService;
pub use memory::MemoryGauge;
pub use metrics::{Metrics, ServiceMetrics};
pub use outgoing::{Outgoing, OutgoingError, RequestOptions, Sending, WasiBody};
pub use sockets::{NameLookup, NetworkView};
pub use state::{AppendFile, Environment, GuestOutput, Limits, Output, Preopen, State};

/// Why an instance stopped, in the words container statuses use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// Ran to the end, exit code 0.
    Completed,
    /// Exited non-zero or trapped.
    Error,
    /// Tried to grow its memory past `resources.limits.memory`.
    OomKilled,
    /// Ran past its time limit and was interrupted.
    DeadlineExceeded,
    /// Stopped on request (pod deletion).
    Killed,
}

impl Termination {
    /// The reason string Kubernetes shows for a terminated container.
    pub fn reason(self) -> &'static str {
        match self {
            Termination::Completed => "Completed",
            Termination::Error => "Error",
            Termination::OomKilled => "OOMKilled",
            Termination::DeadlineExceeded => "DeadlineExceeded",
            Termination::Killed => "Killed",
        }
    }
}

/// Everything that can go wrong loading or running a component. All are
/// final for the request or run at hand; none affects other instances.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("the image is not WebAssembly")]
    NotWasm,
    #[error(
        "the image is a core WebAssembly module, not a component; build it for wasm32-wasip2 or wrap it with `wasm-tools component new`"
    )]
    NotAComponent,
    #[error("the component does not compile: {0}")]
    Compile(String),
    /// Imports the host does not provide, or no export it can run.
    #[error("the component cannot be linked: {0}")]
    Link(String),
    #[error("the component exports neither wasi:http/incoming-handler nor wasi:cli/run")]
    UnknownWorld,
    #[error("cannot preopen {path}: {reason}")]
    Preopen { path: PathBuf, reason: String },
    #[error("bad request for the component: {0}")]
    Request(String),
    #[error("{message}")]
    Trap { termination: Termination, message: String },
    #[error("{0}")]
    Guest(String),
    #[error("the wasm engine cannot start: {0}")]
    Engine(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Turns a wasmtime error from running a guest into a [`WasmError`] that
/// says why it stopped.
pub(crate) fn classify(error: &wasmtime::Error) -> WasmError {
    let text = format!("{error:#}");
    let termination = match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => Termination::DeadlineExceeded,
        _ if text.contains("forcing trap when growing memory") => Termination::OomKilled,
        _ => Termination::Error,
    };
    let message = match termination {
        Termination::DeadlineExceeded => "the instance ran past its time limit and was interrupted".to_string(),
        Termination::OomKilled => format!("the instance exceeded its memory limit: {text}"),
        _ => format!("the instance trapped: {text}"),
    };
    WasmError::Trap { termination, message }
}

/// What a component is for, from its exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentKind {
    /// Exports `wasi:http/incoming-handler`.
    Http,
    /// Exports `wasi:cli/run`.
    Command,
}

/// Where compiled code is kept, and how big the instance pool is.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub cache_dir: PathBuf,
    pub pool: PoolConfig,
}

/// The node's Wasm runtime: one engine, one compiled-component cache, one
/// linker per world.
pub struct WasmRuntime {
    /// Kept for its epoch thread; the cache holds the same engine.
    _engine: NodeEngine,
    cache: ComponentCache,
    http_linker: Linker<State>,
    command_linker: Linker<State>,
    metrics: Metrics,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl WasmRuntime {
    pub fn new(config: RuntimeConfig) -> Result<WasmRuntime, WasmError> {
        let engine = NodeEngine::new(&config.pool)?;
        let link = |e: wasmtime::Error| WasmError::Engine(format!("{e:#}"));
        // Both worlds get all of WASI p2 (environment, preopened volumes,
        // clocks, random, sockets as the environment allows them) plus
        // wasi:http's types and outgoing handler: a command may call out
        // over HTTP as a service may.
        let linker = || -> Result<Linker<State>, WasmError> {
            let mut linker = Linker::new(engine.engine());
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link)?;
            sockets::add_to_linker(&mut linker).map_err(link)?;
            Ok(linker)
        };
        let (http_linker, command_linker) = (linker()?, linker()?);
        Ok(WasmRuntime {
            cache: ComponentCache::new(engine.engine().clone(), config.cache_dir)?,
            _engine: engine,
            http_linker,
            command_linker,
            metrics: Metrics::default(),
        })
    }

    /// The runtime, counting into `metrics` (registered into a registry
    /// with [`Metrics::register`]) rather than into metrics served
    /// nowhere.
    pub fn with_metrics(mut self, metrics: Metrics) -> WasmRuntime {
        self.cache.set_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    /// Where the runtime counts; services get their handles here
    /// ([`Metrics::service`]).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn cache(&self) -> &ComponentCache {
        &self.cache
    }

    /// Compiles (or finds) a component and says what it is for.
    pub fn load(&self, bytes: &[u8]) -> Result<(String, Component, ComponentKind), WasmError> {
        let (digest, component) = self.cache.load(bytes)?;
        let engine = self.cache.engine();
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let has = |prefix: &str| exports.iter().any(|e| e.starts_with(prefix));
        let kind = if has("wasi:http/incoming-handler@") {
            ComponentKind::Http
        } else if has("wasi:cli/run@") {
            ComponentKind::Command
        } else {
            return Err(WasmError::UnknownWorld);
        };
        Ok((digest, component, kind))
    }

    /// An HTTP service for a `wasi:http/proxy` component.
    pub fn http_service(&self, bytes: &[u8], env: Environment) -> Result<HttpService, WasmError> {
        let (digest, component, kind) = self.load(bytes)?;
        if kind != ComponentKind::Http {
            return Err(WasmError::Link(
                "the component does not export wasi:http/incoming-handler".into(),
            ));
        }
        HttpService::new(&self.http_linker, &component, digest, env)
    }

    /// A runnable command for a `wasi:cli/command` component.
    pub fn command(&self, bytes: &[u8], env: Environment) -> Result<CommandService, WasmError> {
        let (digest, component, kind) = self.load(bytes)?;
        if kind != ComponentKind::Command {
            return Err(WasmError::Link("the component does not export wasi:cli/run".into()));
        }
        CommandService::new(&self.command_linker, &component, digest, env)
    }
}
