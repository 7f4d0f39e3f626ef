//! The plugins' wasmtime engine: fuel and epoch interruption for the
//! per-call limits, one linker per world, and components compiled once
//! per digest (in memory and on disk).
//!
//! Plugins get their own engine rather than the node agent's pooling one:
//! they are few, long-lived and may be large (an interpreter), and their
//! calls are metered with fuel, which workloads are not.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use skiff_wasm::{ComponentCache, EpochTicker, GuestOutput, Output};
use wasmtime::component::{Component, HasSelf, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{admission, filter, mutate, scheduling, score, types, validate};
use crate::error::{Error, Result};
use crate::instance::PluginInstance;
use crate::spec::{Limits, Stage};

/// What one plugin instance's store holds.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    /// The Node objects of the scheduling call in progress, for
    /// `node-json`; empty between calls.
    pub(crate) nodes: Vec<Arc<k8s_openapi::api::core::v1::Node>>,
}

impl State {
    /// A store state for the plugin `name`: no preopens, no environment,
    /// no sockets; stdout and stderr to the log.
    pub(crate) fn new(name: &str, limits: &Limits) -> State {
        let output: Arc<dyn Output> = Arc::new(PluginLog(name.into()));
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::new(output.clone()))
            .stderr(GuestOutput::new(output))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        State {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(usize::try_from(limits.memory).unwrap_or(usize::MAX))
                .trap_on_grow_failure(true)
                .instances(64)
                .tables(64)
                .memories(16)
                .build(),
            nodes: Vec::new(),
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl scheduling::Host for State {
    fn node_json(&mut self, index: u32) -> Option<String> {
        let node = self.nodes.get(usize::try_from(index).ok()?)?;
        serde_json::to_string(node.as_ref()).ok()
    }
}

impl types::Host for State {}
impl admission::Host for State {}

/// A plugin's stdout and stderr: each line to the log at info level.
#[derive(Debug)]
struct PluginLog(Arc<str>);

impl Output for PluginLog {
    fn writer(&self) -> Box<dyn Write + Send + Sync> {
        Box::new(LineLogger {
            plugin: self.0.clone(),
            line: Vec::new(),
        })
    }
}

struct LineLogger {
    plugin: Arc<str>,
    line: Vec<u8>,
}

/// The longest line kept; longer ones are logged in pieces.
const MAX_LINE: usize = 4096;

impl LineLogger {
    fn emit(&mut self) {
        if !self.line.is_empty() {
            tracing::info!(plugin = %self.plugin, "{}", String::from_utf8_lossy(&self.line).trim_end());
            self.line.clear();
        }
    }
}

impl Write for LineLogger {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        for &byte in bytes {
            if byte == b'\n' || self.line.len() >= MAX_LINE {
                self.emit();
            }
            if byte != b'\n' {
                self.line.push(byte);
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.emit();
    }
}

/// A component checked against its stage's world, ready to instantiate.
#[derive(Clone)]
pub(crate) enum Pre {
    Filter(filter::SchedulerFilterPre<State>),
    Score(score::SchedulerScorePre<State>),
    Validate(validate::AdmissionValidatePre<State>),
    Mutate(mutate::AdmissionMutatePre<State>),
}

impl std::fmt::Debug for Pre {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pre::Filter(_) => "Pre::Filter",
            Pre::Score(_) => "Pre::Score",
            Pre::Validate(_) => "Pre::Validate",
            Pre::Mutate(_) => "Pre::Mutate",
        })
    }
}

/// The plugins' engine, its epoch ticker, the component cache and a
/// linker per world. Cheap to clone.
#[derive(Clone)]
pub struct PluginRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    cache: ComponentCache,
    linkers: Linkers,
    _ticker: EpochTicker,
}

/// One linker per world: WASI, plus the world's own imports.
struct Linkers {
    filter: Linker<State>,
    score: Linker<State>,
    validate: Linker<State>,
    mutate: Linker<State>,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

fn link(error: wasmtime::Error) -> Error {
    Error::Engine(format!("{error:#}"))
}

impl PluginRuntime {
    /// An engine whose compiled components are kept under `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Result<PluginRuntime> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true);
        let engine = Engine::new(&config).map_err(link)?;
        let ticker = EpochTicker::start(&engine, "skiff-plugin-epoch")
            .map_err(|e| Error::Engine(format!("cannot start the epoch thread: {e}")))?;
        let linker = |stage: Stage| -> Result<Linker<State>> {
            let mut linker = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link)?;
            match stage {
                Stage::Filter => filter::SchedulerFilter::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s),
                Stage::Score => score::SchedulerScore::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s),
                Stage::Validate => validate::AdmissionValidate::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s),
                Stage::Mutate => mutate::AdmissionMutate::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s),
            }
            .map_err(link)?;
            Ok(linker)
        };
        let linkers = Linkers {
            filter: linker(Stage::Filter)?,
            score: linker(Stage::Score)?,
            validate: linker(Stage::Validate)?,
            mutate: linker(Stage::Mutate)?,
        };
        let cache = ComponentCache::new(engine.clone(), cache_dir).map_err(|e| Error::Engine(e.to_string()))?;
        Ok(PluginRuntime {
            inner: Arc::new(Inner {
                engine,
                cache,
                linkers,
                _ticker: ticker,
            }),
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Compiles `bytes` (or finds them compiled) and checks that the
    /// component fits `stage`'s world: its imports are what the host
    /// offers and its exports what the world asks for.
    pub(crate) fn prepare(&self, stage: Stage, bytes: &[u8]) -> Result<(String, Pre)> {
        let (digest, component) = self.inner.cache.load(bytes).map_err(|e| match e {
            skiff_wasm::WasmError::NotWasm => Error::NotWasm,
            skiff_wasm::WasmError::NotAComponent => Error::NotAComponent,
            other => Error::Compile(other.to_string()),
        })?;
        let pre = self.instance_pre(stage, &component)?;
        let wrong_world = |e: wasmtime::Error| Error::WrongWorld {
            world: stage.world(),
            detail: format!("{e:#}"),
        };
        let pre = match stage {
            Stage::Filter => Pre::Filter(filter::SchedulerFilterPre::new(pre).map_err(wrong_world)?),
            Stage::Score => Pre::Score(score::SchedulerScorePre::new(pre).map_err(wrong_world)?),
            Stage::Validate => Pre::Validate(validate::AdmissionValidatePre::new(pre).map_err(wrong_world)?),
            Stage::Mutate => Pre::Mutate(mutate::AdmissionMutatePre::new(pre).map_err(wrong_world)?),
        };
        Ok((digest, pre))
    }

    /// Compiles `bytes`, checks them against `stage`'s world and starts
    /// the plugin's instance (calling `init` with `config`): everything a
    /// plugin goes through before it may serve. Blocks while compiling.
    pub fn instantiate(
        &self,
        name: &str,
        stage: Stage,
        bytes: &[u8],
        config: String,
        limits: Limits,
    ) -> Result<(String, PluginInstance)> {
        let (digest, pre) = self.prepare(stage, bytes)?;
        let instance = PluginInstance::start(name, self.engine(), pre, config, limits).map_err(Error::Init)?;
        Ok((digest, instance))
    }

    fn instance_pre(&self, stage: Stage, component: &Component) -> Result<InstancePre<State>> {
        let linkers = &self.inner.linkers;
        let linker = match stage {
            Stage::Filter => &linkers.filter,
            Stage::Score => &linkers.score,
            Stage::Validate => &linkers.validate,
            Stage::Mutate => &linkers.mutate,
        };
        linker.instantiate_pre(component).map_err(|e| Error::WrongWorld {
            world: stage.world(),
            detail: format!("{e:#}"),
        })
    }
}
