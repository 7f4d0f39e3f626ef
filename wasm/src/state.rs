//! What one instance's `Store` holds, and the environment a pod gives it.
//!
//! Only what the pod spec grants is visible: its args and env, its volumes
//! as preopened directories, stdout/stderr to the container's log (an
//! [`Output`], written in this process: no file, pipe or thread per pod),
//! outgoing HTTP requests through the [`Outgoing`] it was given and
//! sockets through the [`NetworkView`] it was given (each refused without
//! one). No host environment, no ambient filesystem. An instance holds at
//! most [`MAX_HANDLES`] handles (sockets, streams, pollables, …) at once.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{FsPerms, ResourceTable, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::WasmError;
use super::outgoing::{Hooks, Outgoing, TraceContext};
use super::sockets::NetworkView;

/// The most handles (WASI resources: sockets, streams, pollables, HTTP
/// fields, …) one instance may hold at once; past it, creating one more
/// traps the instance, so a guest that opens sockets in a loop ends
/// itself rather than the node's descriptors.
pub const MAX_HANDLES: usize = 4096;

/// A host directory the guest sees at `guest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

/// What bounds one instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// The most linear memory the instance may use (`resources.limits.memory`).
    pub memory_bytes: Option<usize>,
    /// How long one request (HTTP) or one run (command) may take before it
    /// is interrupted.
    pub timeout: Option<Duration>,
}

/// Everything a pod's container gives its Wasm instances.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `argv`, the program name first.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub preopens: Vec<Preopen>,
    pub limits: Limits,
    /// Where stdout and stderr go; nowhere when unset.
    pub stdout: Option<Arc<dyn Output>>,
    pub stderr: Option<Arc<dyn Output>>,
    /// Where outgoing HTTP requests go; refused when unset.
    pub outgoing: Option<Arc<dyn Outgoing>>,
    /// What the instance's sockets see; closed when unset.
    pub network: Option<Arc<dyn NetworkView>>,
    /// The container's CPU limit, request and use, shared by its instances; none when unset.
    pub cpu: Option<Arc<crate::cpu::CpuBudget>>,
    /// Where its instances count the linear memory they hold; uncounted when unset.
    pub memory: Option<Arc<crate::memory::MemoryGauge>>,
    /// Where an HTTP service counts its requests and instances
    /// ([`crate::metrics`]); uncounted when unset.
    pub metrics: Option<crate::metrics::ServiceMetrics>,
}

/// Where one of a container's output streams goes. Every instance that
/// opens the stream gets a writer of its own, so a writer can keep the
/// instance's partial line to itself; dropping the writer ends it.
pub trait Output: Send + Sync + std::fmt::Debug {
    fn writer(&self) -> Box<dyn Write + Send + Sync>;
}

/// Output appended to a file, opened by each writer.
#[derive(Debug)]
pub struct AppendFile(pub PathBuf);

impl Output for AppendFile {
    fn writer(&self) -> Box<dyn Write + Send + Sync> {
        match std::fs::OpenOptions::new().create(true).append(true).open(&self.0) {
            Ok(file) => Box::new(file),
            Err(error) => {
                tracing::warn!(path = %self.0.display(), %error, "cannot open a guest's output file");
                Box::new(std::io::sink())
            }
        }
    }
}

/// An [`Output`] as WASI's stdout or stderr
/// (`WasiCtxBuilder::stdout(GuestOutput::new(output))`).
#[derive(Debug)]
pub struct GuestOutput(Arc<dyn Output>);

impl GuestOutput {
    pub fn new(output: Arc<dyn Output>) -> GuestOutput {
        GuestOutput(output)
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(GuestWriter(self.0.writer()))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(GuestWriter(self.0.writer()))
    }
}

/// One instance's writer. Writes never wait: an [`Output`] buffers in
/// memory or appends to a local file.
struct GuestWriter(Box<dyn Write + Send + Sync>);

fn stream_error(error: std::io::Error) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::format_err!("{error}"))
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.write_all(&bytes).map_err(stream_error)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.0.flush().map_err(stream_error)
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(self.0.write_all(buf).map(|()| buf.len()))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(self.0.flush())
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The data of one instance's store.
pub struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Hooks,
    pub(crate) network: Option<Arc<dyn NetworkView>>,
    pub(crate) limits: crate::memory::Limiter,
    /// Counts the instance as alive while the store lives.
    _alive: Option<crate::metrics::Alive>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl State {
    pub fn new(env: &Environment) -> Result<State, WasmError> {
        let mut wasi = WasiCtx::builder();
        wasi.args(&env.args).envs(&env.env);
        for preopen in &env.preopens {
            let perms = if preopen.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&preopen.host, &preopen.guest, perms)
                .map_err(|e| WasmError::Preopen {
                    path: preopen.host.clone(),
                    reason: e.to_string(),
                })?;
        }
        if let Some(output) = &env.stdout {
            wasi.stdout(GuestOutput(output.clone()));
        }
        if let Some(output) = &env.stderr {
            wasi.stderr(GuestOutput(output.clone()));
        }
        if env.network.is_some() {
            wasi.inherit_network()
                .allow_ip_name_lookup(true)
                .allow_tcp(true)
                .allow_udp(true);
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HANDLES);
        Ok(State {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table,
            hooks: Hooks {
                outgoing: env.outgoing.clone(),
                trace: TraceContext::default(),
            },
            network: env.network.clone(),
            limits: crate::memory::Limiter::new(env.limits.memory_bytes, env.memory.clone()),
            _alive: env.metrics.as_ref().map(crate::metrics::ServiceMetrics::instance),
        })
    }
}

impl State {
    /// Outgoing requests carry the trace context of `headers`, those of
    /// the request the instance serves.
    pub(crate) fn continue_trace(&mut self, headers: &http::HeaderMap) {
        self.hooks.trace = TraceContext::of(headers);
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

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
