//! The agent's view of a container runtime: start a resolved container,
//! then wait for it to exit or stop it.
//!
//! [`WorkloadRuntime`] names the role; [`WasmtimeWorkloads`] (Wasm
//! components in this process) and [`RuncWorkloads`] (OCI containers
//! through runc) are its backends. Both hand back a [`Running`]: a future
//! exit plus a way to ask for it early.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::gateway;
use crate::oci::{self, ContainerState, RuncRuntime};
use skiff_image::Image;
use skiff_wasm::{
    ComponentKind, Environment, Limits, Output, Preopen, StopHandle, Termination, WasmError, WasmRuntime,
};

/// How often runc containers are polled for their state.
const POLL: Duration = Duration::from_millis(200);

/// A container ready to start: the pod spec already resolved against the
/// image, the pod's volumes and its environment sources.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Unique on the node: the pod uid, the container name and the run.
    pub id: String,
    pub name: String,
    pub image: Image,
    /// Kubernetes `command` and `args`.
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_millis: Option<u64>,
    /// Where the container's output goes.
    pub stdio: Stdio,
    /// Where HTTP components listen, one per declared container port.
    pub listen: Vec<SocketAddr>,
    /// How long one HTTP request may run.
    pub request_timeout: Duration,
}

/// Where a container's stdout and stderr go.
#[derive(Clone, Debug, Default)]
pub enum Stdio {
    /// Nowhere.
    #[default]
    Discard,
    /// FIFOs a log writer reads (runc).
    Fifos { stdout: PathBuf, stderr: PathBuf },
    /// Straight into the log from this process (Wasm).
    Direct {
        stdout: Arc<dyn Output>,
        stderr: Arc<dyn Output>,
    },
}

/// A pod volume as one container sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub path: String,
    pub read_only: bool,
}

/// How a container run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    /// The Kubernetes reason: Completed, Error, OOMKilled, …
    pub reason: String,
    pub message: Option<String>,
}

impl Exit {
    fn from_wasm(exit: skiff_wasm::Exit) -> Exit {
        Exit {
            code: exit.code,
            reason: exit.termination.reason().to_string(),
            message: exit.message,
        }
    }

    fn from_code(code: i32) -> Exit {
        let reason = match code {
            0 => "Completed",
            137 => "Killed",
            _ => "Error",
        };
        Exit {
            code,
            reason: reason.to_string(),
            message: None,
        }
    }
}

/// Why a container could not be started: the waiting reason and message
/// its status shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartError {
    pub reason: &'static str,
    pub message: String,
}

/// A started container: its exit to await, and a handle to stop it.
pub struct Running {
    /// The image digest the status reports as `imageID`.
    pub image_id: String,
    pub exit: Exited,
    pub stopper: Stopper,
    /// Runs a command in the container (exec probes); `None` for Wasm.
    pub exec: crate::agent::probe::Exec,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("image_id", &self.image_id)
            .field("exec", &self.exec.is_some())
            .finish_non_exhaustive()
    }
}

/// Resolves when the container exits.
#[derive(Debug)]
pub struct Exited(oneshot::Receiver<Exit>);

impl Exited {
    pub async fn wait(self) -> Exit {
        self.0.await.unwrap_or_else(|_| Exit {
            code: 137,
            reason: "Unknown".into(),
            message: Some("the runtime lost the container".into()),
        })
    }
}

/// How long a stopping Wasm HTTP container keeps accepting requests.
pub const HTTP_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Asks a running container to stop.
#[derive(Clone, Debug)]
pub struct Stopper(Arc<watch::Sender<Option<StopMode>>>);

impl Stopper {
    pub fn stop(&self, mode: StopMode) {
        self.0.send_replace(Some(mode));
    }
}

/// How hard to ask a container to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// SIGTERM; a Wasm instance is interrupted at its next epoch tick.
    Terminate,
    /// SIGKILL.
    Kill,
}

/// Starts containers of one kind.
pub trait WorkloadRuntime {
    /// Starts `launch`; the container runs until it exits or is stopped.
    fn start(&self, launch: Launch) -> impl Future<Output = Result<Running, StartError>> + Send;
}

/// Wasm components, in this process's wasmtime engine.
#[derive(Clone, Debug)]
pub struct WasmtimeWorkloads {
    runtime: Arc<WasmRuntime>,
}

impl WasmtimeWorkloads {
    pub fn new(runtime: Arc<WasmRuntime>) -> Self {
        WasmtimeWorkloads { runtime }
    }
}

fn wasm_error(error: WasmError) -> StartError {
    let reason = match error {
        WasmError::Compile(_) | WasmError::NotAComponent | WasmError::NotWasm | WasmError::UnknownWorld => {
            "InvalidImage"
        }
        _ => "CreateContainerError",
    };
    StartError {
        reason,
        message: error.to_string(),
    }
}

impl WorkloadRuntime for WasmtimeWorkloads {
    async fn start(&self, launch: Launch) -> Result<Running, StartError> {
        let path = launch.image.wasm_component_path().ok_or_else(|| StartError {
            reason: "InvalidImage",
            message: format!("image {} holds no Wasm component", launch.image.reference),
        })?;
        let bytes = tokio::fs::read(&path).await.map_err(|e| StartError {
            reason: "CreateContainerError",
            message: format!("cannot read the component {}: {e}", path.display()),
        })?;
        let runtime = self.runtime.clone();
        // Compiling (or loading from the cache) is CPU work.
        let loaded = tokio::task::spawn_blocking(move || runtime.load(&bytes).map(|(d, _, k)| (d, k, bytes)))
            .await
            .map_err(|e| StartError {
                reason: "CreateContainerError",
                message: e.to_string(),
            })?
            .map_err(wasm_error)?;
        let (digest, kind, bytes) = loaded;
        let (stdout, stderr) = match &launch.stdio {
            Stdio::Direct { stdout, stderr } => (Some(stdout.clone()), Some(stderr.clone())),
            Stdio::Discard | Stdio::Fifos { .. } => (None, None),
        };
        let mut args = vec![launch.name.clone()];
        args.extend(launch.command.iter().cloned());
        args.extend(launch.args.iter().cloned());
        let mut env = Environment {
            args,
            env: launch.env.clone(),
            preopens: launch
                .mounts
                .iter()
                .map(|m| Preopen {
                    host: m.host.clone(),
                    guest: m.path.clone(),
                    writable: !m.read_only,
                })
                .collect(),
            limits: Limits {
                memory_bytes: launch
                    .memory_limit_bytes
                    .map(|b| usize::try_from(b).unwrap_or(usize::MAX)),
                timeout: None,
            },
            stdout,
            stderr,
        };
        let (exit_tx, exit_rx) = oneshot::channel();
        let (stop_tx, mut stop_rx) = watch::channel(None);
        match kind {
            ComponentKind::Http => {
                env.limits.timeout = Some(launch.request_timeout);
                let service = self.runtime.http_service(&bytes, env).map_err(wasm_error)?;
                let mut listeners = Vec::new();
                for addr in &launch.listen {
                    match gateway::listen(*addr, service.clone()).await {
                        Ok(task) => listeners.push(task),
                        Err(e) => {
                            listeners.iter().for_each(tokio::task::JoinHandle::abort);
                            return Err(StartError {
                                reason: "CreateContainerError",
                                message: format!("cannot listen on {addr}: {e}"),
                            });
                        }
                    }
                }
                tracing::info!(container = %launch.id, listen = ?launch.listen, %digest, "wasm http service up");
                tokio::spawn(async move {
                    let _ = stop_rx.wait_for(Option::is_some).await;
                    // Proxies learn that the pod is going from its
                    // Endpoints, which race this stop: serve new requests
                    // a moment longer so that none is refused meanwhile.
                    // Requests already being served finish regardless.
                    if *stop_rx.borrow() == Some(StopMode::Terminate) {
                        let killed = stop_rx.wait_for(|mode| *mode == Some(StopMode::Kill));
                        let _ = tokio::time::timeout(HTTP_DRAIN, killed).await;
                    }
                    for task in &listeners {
                        task.abort();
                    }
                    let _ = exit_tx.send(Exit {
                        code: 0,
                        reason: Termination::Completed.reason().to_string(),
                        message: None,
                    });
                });
            }
            ComponentKind::Command => {
                let command = self.runtime.command(&bytes, env).map_err(wasm_error)?;
                let handle = StopHandle::default();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    if stop_rx.wait_for(Option::is_some).await.is_ok() {
                        stopper.stop();
                    }
                });
                tokio::spawn(async move {
                    let exit = match command.run(handle).await {
                        Ok(exit) => Exit::from_wasm(exit),
                        Err(error) => {
                            let reason = match &error {
                                WasmError::Trap { termination, .. } => termination.reason(),
                                _ => "Error",
                            };
                            Exit {
                                code: 1,
                                reason: reason.to_string(),
                                message: Some(error.to_string()),
                            }
                        }
                    };
                    let _ = exit_tx.send(exit);
                });
            }
        }
        Ok(Running {
            image_id: launch.image.manifest_digest.clone(),
            exit: Exited(exit_rx),
            stopper: Stopper(Arc::new(stop_tx)),
            exec: None,
        })
    }
}

/// OCI containers through runc, on the host network.
#[derive(Clone, Debug)]
pub struct RuncWorkloads {
    runc: RuncRuntime,
}

impl RuncWorkloads {
    pub fn new(runc: RuncRuntime) -> Self {
        RuncWorkloads { runc }
    }
}

fn oci_spec(launch: &Launch) -> oci::ContainerSpec {
    let (stdout, stderr) = match &launch.stdio {
        Stdio::Fifos { stdout, stderr } => (stdout.clone(), stderr.clone()),
        Stdio::Discard | Stdio::Direct { .. } => (PathBuf::from("/dev/null"), PathBuf::from("/dev/null")),
    };
    oci::ContainerSpec {
        id: launch.id.clone(),
        image: launch.image.clone(),
        command: launch.command.clone(),
        args: launch.args.clone(),
        env: launch.env.clone(),
        working_dir: launch.working_dir.clone(),
        user: None,
        mounts: launch
            .mounts
            .iter()
            .map(|m| oci::Mount {
                source: m.host.clone(),
                destination: PathBuf::from(&m.path),
                read_only: m.read_only,
            })
            .collect(),
        memory_limit_bytes: launch.memory_limit_bytes,
        cpu_millis: launch.cpu_millis,
        stdout,
        stderr,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

impl WorkloadRuntime for RuncWorkloads {
    async fn start(&self, launch: Launch) -> Result<Running, StartError> {
        for addr in &launch.listen {
            if std::net::TcpListener::bind(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), addr.port())).is_err() {
                return Err(StartError {
                    reason: "CreateContainerError",
                    message: format!(
                        "port {} is already in use on the node (OCI containers share the host network)",
                        addr.port()
                    ),
                });
            }
        }
        let spec = oci_spec(&launch);
        let runc = self.runc.clone();
        let id = launch.id.clone();
        let started = blocking(move || {
            runc.create(&spec)?;
            if let Err(error) = runc.start(&spec.id) {
                let _ = runc.delete(&spec.id, true);
                return Err(error);
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|| Err(oci::runc::Error::NotFound { id: launch.id.clone() }));
        if let Err(error) = started {
            return Err(StartError {
                reason: error.waiting_reason(),
                message: error.to_string(),
            });
        }
        let (exit_tx, exit_rx) = oneshot::channel();
        let (stop_tx, mut stop_rx) = watch::channel(None::<StopMode>);
        let (exec_runc, exec_id) = (self.runc.clone(), launch.id.clone());
        let runc = self.runc.clone();
        tokio::spawn(async move {
            let code = loop {
                tokio::select! {
                    changed = stop_rx.changed() => {
                        let signal = match *stop_rx.borrow_and_update() {
                            Some(StopMode::Kill) => "KILL",
                            _ => "TERM",
                        };
                        if changed.is_ok() {
                            let (runc, id) = (runc.clone(), id.clone());
                            let _ = blocking(move || runc.kill(&id, signal)).await;
                        }
                    }
                    _ = tokio::time::sleep(POLL) => {}
                }
                let (probe, probe_id) = (runc.clone(), id.clone());
                match blocking(move || probe.state(&probe_id)).await {
                    Some(Ok(ContainerState::Stopped { exit_code })) => break exit_code.unwrap_or(137),
                    Some(Ok(_)) => {}
                    Some(Err(oci::runc::Error::NotFound { .. })) | None => break 137,
                    Some(Err(error)) => tracing::debug!(%error, "runc state"),
                }
            };
            let (runc, gone) = (runc.clone(), id.clone());
            if let Some(Err(error)) = blocking(move || runc.delete(&gone, true)).await {
                tracing::warn!(%error, container = %id, "cannot delete the container");
            }
            let _ = exit_tx.send(Exit::from_code(code));
        });
        Ok(Running {
            image_id: launch.image.manifest_digest.clone(),
            exit: Exited(exit_rx),
            stopper: Stopper(Arc::new(stop_tx)),
            exec: Some(Arc::new(
                move |command: Vec<String>, _timeout: Duration| match exec_runc.exec(&exec_id, &command) {
                    Ok(0) => Ok(()),
                    Ok(code) => Err(format!("command {command:?} exited with {code}")),
                    Err(e) => Err(e.to_string()),
                },
            )),
        })
    }
}
