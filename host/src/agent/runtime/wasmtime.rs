//! Wasm components in this process's wasmtime engine ([`skiff_wasm`]).

use std::sync::Arc;

use skiff_image::{Image, ImageKind};
use skiff_wasm::{
    ComponentKind, CpuBudget, Environment, Limits, MemoryGauge, Preopen, ServiceMetrics, StopHandle, Termination,
    WasmError, WasmRuntime,
};

use super::{
    Exit, Launch, LogWiring, Meter, Network, Refusal, Requests, Running, StartError, Starting, Stdio, StopMode, Usage,
    WorkloadRuntime,
};
use crate::agent::egress::{Caller, Egress};
use crate::agent::gateway::{self, LocalServices};

/// How long a stopping Wasm HTTP container keeps accepting requests.
pub const HTTP_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Wasm components, in this process's wasmtime engine.
#[derive(Clone, Debug)]
pub struct WasmtimeWorkloads {
    runtime: Arc<WasmRuntime>,
    /// The node's Wasm HTTP services, which the egress calls in-process.
    local: Arc<LocalServices>,
    /// Where calls out of the containers go; refused without one.
    egress: Option<Arc<Egress>>,
    /// Whether HTTP services count their requests
    /// ([`AgentConfig::wasm_request_metrics`](crate::agent::AgentConfig::wasm_request_metrics)).
    count_requests: bool,
}

impl WasmtimeWorkloads {
    pub fn new(runtime: Arc<WasmRuntime>, local: Arc<LocalServices>, egress: Option<Arc<Egress>>) -> Self {
        WasmtimeWorkloads {
            runtime,
            local,
            egress,
            count_requests: true,
        }
    }

    /// The same workloads, their HTTP services counting requests or not.
    pub fn counting_requests(self, count_requests: bool) -> Self {
        WasmtimeWorkloads { count_requests, ..self }
    }
}

/// A Wasm container's use: the CPU its instances ran, the linear memory
/// the live ones hold.
#[derive(Debug)]
struct WasmMeter {
    cpu: Arc<CpuBudget>,
    memory: Arc<MemoryGauge>,
    /// An HTTP service's requests.
    requests: Option<ServiceMetrics>,
}

impl Meter for WasmMeter {
    fn usage(&self) -> Option<Usage> {
        Some(Usage {
            cpu: self.cpu.used(),
            working_set_bytes: self.memory.bytes(),
        })
    }

    fn requests(&self) -> Option<Requests> {
        self.requests.as_ref().map(ServiceMetrics::requests)
    }
}

impl Exit {
    fn from_wasm(exit: skiff_wasm::Exit) -> Exit {
        Exit {
            code: exit.code,
            reason: exit.termination.reason().to_string(),
            message: exit.message,
        }
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
    fn name(&self) -> &'static str {
        "wasmtime"
    }

    fn validate(&self, image: &Image) -> Result<(), Refusal> {
        match image.kind {
            ImageKind::Wasm => Ok(()),
            ImageKind::Container => Err(Refusal::OtherKind(format!(
                "image {} is not a Wasm component",
                image.reference
            ))),
        }
    }

    /// Instances run in this process and write their log records
    /// themselves.
    fn log_wiring(&self) -> LogWiring {
        LogWiring::Direct
    }

    fn network(&self) -> Network {
        Network::Pod
    }

    fn start(&self, launch: Launch) -> Starting<'_> {
        Box::pin(self.start_component(launch))
    }
}

impl WasmtimeWorkloads {
    async fn start_component(&self, launch: Launch) -> Result<Running, StartError> {
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
        let pod_egress = match (&self.egress, launch.pod.ip) {
            (Some(egress), Some(ip)) => Some(egress.for_pod(Caller {
                namespace: launch.pod.namespace.clone(),
                ip,
                in_process: launch.pod.in_process_calls,
            })),
            _ => None,
        };
        // Shared by all the container's instances: the limit holds for
        // them together.
        // An HTTP service counts its requests under its pod's name.
        let requests = (kind == ComponentKind::Http && self.count_requests)
            .then(|| self.runtime.metrics().service(&launch.pod.namespace, &launch.pod.name));
        let meter = Arc::new(WasmMeter {
            cpu: Arc::new(CpuBudget::new(launch.cpu_millis, launch.cpu_request_millis)),
            memory: Arc::default(),
            requests,
        });
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
            outgoing: pod_egress.clone().map(|e| e as Arc<dyn skiff_wasm::Outgoing>),
            network: pod_egress.map(|e| e as Arc<dyn skiff_wasm::NetworkView>),
            cpu: Some(meter.cpu.clone()),
            memory: Some(meter.memory.clone()),
            metrics: meter.requests.clone(),
        };
        let (exit_tx, exited) = super::exit_channel();
        let (stopper, mut stop_rx) = super::stop_channel();
        match kind {
            ComponentKind::Http => {
                env.limits.timeout = Some(launch.request_timeout);
                let service = self.runtime.http_service(&bytes, env).map_err(wasm_error)?;
                let mut listeners = Vec::new();
                let admit = self
                    .egress
                    .clone()
                    .map(|egress| Arc::new(move |source, local| egress.admits(source, local)) as gateway::Admit);
                for addr in &launch.listen {
                    match gateway::listen(*addr, service.clone(), admit.clone()).await {
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
                for addr in &launch.listen {
                    self.local.insert(*addr, service.clone());
                }
                tracing::info!(container = %launch.id, listen = ?launch.listen, %digest, "wasm http service up");
                let local = self.local.clone();
                let addrs = launch.listen.clone();
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
                    for addr in addrs {
                        local.remove(addr);
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
                let stop = handle.clone();
                tokio::spawn(async move {
                    if stop_rx.wait_for(Option::is_some).await.is_ok() {
                        stop.stop();
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
            exit: exited,
            stopper,
            exec: None,
            spawn: None,
            meter,
        })
    }
}
