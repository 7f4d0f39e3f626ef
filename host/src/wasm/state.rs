//! What one instance's `Store` holds, and the environment a pod gives it.
//!
//! Only what the pod spec grants is visible: its args and env, its volumes
//! as preopened directories, stdout/stderr to the container's log files.
//! No host environment, no ambient filesystem, no sockets, and outgoing
//! HTTP requests are refused.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, ResourceTable, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::WasmError;

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
    /// Where stdout and stderr go (appended); nowhere when unset.
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
}

/// Refuses every outgoing HTTP request: a pod reaches nothing it was not
/// given.
#[derive(Debug, Default)]
pub struct NoOutgoing;

impl WasiHttpHooks for NoOutgoing {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// The data of one instance's store.
pub struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: NoOutgoing,
    pub(crate) limits: StoreLimits,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

fn open_log(path: &PathBuf) -> Result<wasmtime_wasi::cli::OutputFile, WasmError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| WasmError::Io {
            path: path.clone(),
            source,
        })?;
    Ok(wasmtime_wasi::cli::OutputFile::new(file))
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
        if let Some(path) = &env.stdout {
            wasi.stdout(open_log(path)?);
        }
        if let Some(path) = &env.stderr {
            wasi.stderr(open_log(path)?);
        }
        let mut limits = StoreLimitsBuilder::new().trap_on_grow_failure(true);
        if let Some(bytes) = env.limits.memory_bytes {
            limits = limits.memory_size(bytes);
        }
        Ok(State {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: NoOutgoing,
            limits: limits.build(),
        })
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
