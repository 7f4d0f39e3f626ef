//! The agent's view of a container runtime: it says whether it can run an
//! image and how its containers are wired to the pod, then starts a
//! resolved container, which runs until it exits or is stopped.
//!
//! [`WorkloadRuntime`] names the role; [`WasmtimeWorkloads`] (Wasm
//! components in this process, `wasmtime`) and [`RuncWorkloads`] (OCI
//! containers through runc) are its backends. [`Runtimes`] holds a node's
//! runtimes and picks the one for a container, by `runtimeClassName` or
//! by asking each in turn ([`WorkloadRuntime::validate`], as youki's
//! `Executor` chain does). The pod worker only talks to the role: a third
//! runtime is a new backend here, not a new branch in the pod's state
//! machine.
//!
//! ```text
//!  Image ─► Runtimes::select ─► validate ─► log_wiring, network ─► start(Launch) ─► Running { exit, stopper, exec, spawn, meter }
//! ```

mod runc;
mod wasmtime;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use skiff_image::Image;
use skiff_wasm::Output;
use tokio::sync::{oneshot, watch};

pub use runc::RuncWorkloads;
/// Requests a container answered (a counter) and has in flight.
pub use skiff_wasm::metrics::Requests;
pub use wasmtime::{HTTP_DRAIN, WasmtimeWorkloads};

/// A container ready to start: the pod spec already resolved against the
/// image, the pod's volumes and its environment sources.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Unique on the node: the pod uid, the container name and the run.
    pub id: String,
    pub name: String,
    /// The pod's hostname ([`spec::hostname`](crate::agent::spec::hostname)),
    /// for runtimes that give a container one.
    pub hostname: String,
    pub image: Image,
    /// Kubernetes `command` and `args`.
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
    pub memory_limit_bytes: Option<u64>,
    /// `resources.limits.cpu`, in millicores.
    pub cpu_millis: Option<u64>,
    /// `resources.requests.cpu`, in millicores; the limit when only a
    /// limit is set, as Kubernetes defaults it.
    pub cpu_request_millis: Option<u64>,
    /// Where the container's output goes, as the runtime's
    /// [`LogWiring`] asked.
    pub stdio: Stdio,
    /// Where HTTP components listen, one per declared container port.
    pub listen: Vec<SocketAddr>,
    /// How long one HTTP request may run.
    pub request_timeout: Duration,
    /// The pod's network namespace ([`Network::Namespace`]); `None` on
    /// the node's network.
    pub netns: Option<PathBuf>,
    /// The container's securityContext, the pod's merged in (what an OCI
    /// runtime applies).
    pub security: crate::oci::Security,
    /// The pod the container belongs to.
    pub pod: PodRef,
}

/// What a runtime may need to know of a container's pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// The pod's address (the node's, for host-network pods).
    pub ip: Option<IpAddr>,
    /// Whether its calls to Wasm pods of the node may go in-process (the
    /// [`IN_PROCESS_CALLS_ANNOTATION`] is not `"false"`).
    pub in_process_calls: bool,
}

/// A pod annotation that, set to `"false"`, sends the pod's calls to Wasm
/// pods of the node over loopback like any other: for comparing the two
/// paths (`cargo xtask bench net`) and for ruling the in-process path out.
pub const IN_PROCESS_CALLS_ANNOTATION: &str = "skiff.dev/in-process-calls";

/// Where a container's stdout and stderr go.
#[derive(Clone, Debug, Default)]
pub enum Stdio {
    /// Nowhere.
    #[default]
    Discard,
    /// FIFOs a log writer reads ([`LogWiring::Fifos`]); a stdin FIFO
    /// for a container with `stdin`; for one with `tty`, where to hand
    /// the master of the terminal the runtime makes for it.
    Fifos {
        stdout: PathBuf,
        stderr: PathBuf,
        stdin: Option<PathBuf>,
        terminal: Option<std::sync::mpsc::Sender<std::os::fd::OwnedFd>>,
    },
    /// Straight into the log from this process ([`LogWiring::Direct`]).
    Direct {
        stdout: Arc<dyn Output>,
        stderr: Arc<dyn Output>,
    },
}

/// How a runtime's containers get their output into the container log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogWiring {
    /// The container runs in this process and writes its log records
    /// itself ([`Stdio::Direct`]); nothing is held between writes.
    Direct,
    /// The container is another process: it writes into two FIFOs that a
    /// log writer copies into the file ([`Stdio::Fifos`]).
    Fifos,
}

/// Which network a runtime's containers are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// The pod's own address from the node's pool, served by the agent's
    /// gateway; calls out go through the host, which resolves cluster
    /// names.
    Pod,
    /// The pod's own address from the node's pool, in a network namespace
    /// of its own ([`crate::podnet`]) that all its containers share, with
    /// the pod's `/etc/resolv.conf`, written by the agent, mounted in.
    Namespace,
    /// The node's network (host networking), with the pod's
    /// `/etc/resolv.conf` mounted in.
    Node,
}

impl Network {
    /// The network of a whole pod whose containers' runtimes want
    /// `wanted`: the node's when the pod asks for `hostNetwork` or mixes
    /// runtimes that want different ones (a Wasm container is served
    /// from the node, an OCI one from inside its namespace, so they
    /// cannot share one address), else the one they all want.
    pub fn of_pod(host_network: bool, wanted: impl IntoIterator<Item = Network>) -> Network {
        if host_network {
            return Network::Node;
        }
        let mut wanted = wanted.into_iter();
        let Some(first) = wanted.next() else {
            return Network::Pod;
        };
        if wanted.all(|n| n == first) {
            first
        } else {
            Network::Node
        }
    }

    /// Whether a container on this network gets the pod's
    /// `/etc/resolv.conf` (it resolves names itself).
    pub fn needs_resolv_conf(self) -> bool {
        self != Network::Pod
    }
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

/// Why a container could not be started: the waiting reason and message
/// its status shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartError {
    pub reason: &'static str,
    pub message: String,
}

/// Why a runtime will not run an image ([`WorkloadRuntime::validate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not this runtime's kind of image; another runtime may take it. The
    /// message says what the image is ("image … is a Wasm component").
    OtherKind(String),
    /// This runtime's kind of image, but the runtime cannot run it on this
    /// node; no other runtime is asked.
    Unavailable(String),
}

/// A started container: its exit to await, and a handle to stop it.
pub struct Running {
    /// The image digest the status reports as `imageID`.
    pub image_id: String,
    pub exit: Exited,
    pub stopper: Stopper,
    /// Runs a command in the container (exec probes); `None` for Wasm.
    pub exec: crate::agent::probe::Exec,
    /// Starts a process in the container (`kubectl exec`); `None` for
    /// Wasm.
    pub spawn: Option<Spawn>,
    /// Reads what the container uses while it runs.
    pub meter: Arc<dyn Meter>,
}

/// Starts `command` in a running container, with a terminal or not; the
/// process and its stdio ([`streams`](crate::agent::streams)). Blocks
/// while it starts.
pub type Spawn = Arc<dyn Fn(Vec<String>, bool) -> Result<Process, String> + Send + Sync>;

/// A process started in a container for a client.
pub struct Process {
    /// What the process reads; with a terminal, the terminal's master.
    pub stdin: std::os::fd::OwnedFd,
    /// What it writes; with a terminal, the master again.
    pub stdout: std::os::fd::OwnedFd,
    /// `None` with a terminal, which carries both outputs.
    pub stderr: Option<std::os::fd::OwnedFd>,
    pub terminal: bool,
    /// Blocks until the process exits: its exit code, if known.
    pub wait: Box<dyn FnOnce() -> Option<i32> + Send>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("terminal", &self.terminal)
            .finish_non_exhaustive()
    }
}

/// What a running container uses, as the node reports it
/// ([`stats`](crate::agent::stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used since it started.
    pub cpu: Duration,
    /// Memory it holds that cannot be dropped at once (runc: the cgroup's
    /// working set; Wasm: its live instances' linear memory).
    pub working_set_bytes: u64,
}

/// Reads a running container's [`Usage`]; `None` when it cannot be read
/// (the container is going).
pub trait Meter: Send + Sync + std::fmt::Debug {
    fn usage(&self) -> Option<Usage>;

    /// What the container's HTTP service has served, for a container
    /// that serves requests itself (Wasm HTTP components); `None` for the
    /// others.
    fn requests(&self) -> Option<Requests> {
        None
    }
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

/// The exit a backend's container task sends, and what the worker awaits.
fn exit_channel() -> (oneshot::Sender<Exit>, Exited) {
    let (exit_tx, exit_rx) = oneshot::channel();
    (exit_tx, Exited(exit_rx))
}

/// How the worker asks a container to stop, and what the backend's
/// container task watches.
fn stop_channel() -> (Stopper, watch::Receiver<Option<StopMode>>) {
    let (stop_tx, stop_rx) = watch::channel(None);
    (Stopper(Arc::new(stop_tx)), stop_rx)
}

/// A started container, not yet awaited.
pub type Starting<'a> = Pin<Box<dyn Future<Output = Result<Running, StartError>> + Send + 'a>>;

/// Runs containers of one kind. The pod worker asks it, not the image,
/// what a container needs.
pub trait WorkloadRuntime: Send + Sync + std::fmt::Debug {
    /// The runtime's name: the `RuntimeClass` handler that asks for it and
    /// the scheme of its container IDs (`wasmtime://…`).
    fn name(&self) -> &'static str;

    /// Whether this runtime can run `image` on this node (youki's
    /// `Executor::validate`): checked when the pod is prepared, before any
    /// of its containers starts.
    fn validate(&self, image: &Image) -> Result<(), Refusal>;

    /// How its containers' output reaches their logs.
    fn log_wiring(&self) -> LogWiring;

    /// Which network its containers are on.
    fn network(&self) -> Network;

    /// Whether its containers see files mounted from the node, so that
    /// one can leave a termination message at `terminationMessagePath`.
    fn mounts_files(&self) -> bool {
        false
    }

    /// Starts `launch`; the container runs until it exits or is stopped.
    fn start(&self, launch: Launch) -> Starting<'_>;

    /// Takes over the container `id` that an earlier agent started and
    /// left running (or that has exited since: its exit is then reported
    /// at once); `None` when this runtime's containers cannot outlive
    /// their agent. The returned `image_id` is empty: the caller knows it.
    fn adopt(&self, id: &str) -> Option<Running> {
        let _ = id;
        None
    }
}

/// A node's runtimes, in the order they are asked.
#[derive(Clone, Debug)]
pub struct Runtimes(Vec<Arc<dyn WorkloadRuntime>>);

impl Runtimes {
    pub fn new(runtimes: Vec<Arc<dyn WorkloadRuntime>>) -> Runtimes {
        Runtimes(runtimes)
    }

    /// The runtime called `name`.
    pub fn named(&self, name: &str) -> Option<Arc<dyn WorkloadRuntime>> {
        self.0.iter().find(|r| r.name() == name).cloned()
    }

    /// The runtime for `image`: the one `runtime_class` names, if this
    /// node has a runtime of that name, else the first that accepts the
    /// image. The error is the container's `CreateContainerConfigError`
    /// message.
    pub fn select(&self, image: &Image, runtime_class: Option<&str>) -> Result<Arc<dyn WorkloadRuntime>, String> {
        if let Some(class) = runtime_class
            && let Some(runtime) = self.0.iter().find(|r| r.name() == class)
        {
            return match runtime.validate(image) {
                Ok(()) => Ok(runtime.clone()),
                Err(Refusal::OtherKind(what)) => Err(format!("{what}, but the pod's runtimeClassName is {class}")),
                Err(Refusal::Unavailable(why)) => Err(why),
            };
        }
        let mut other_kind = Vec::new();
        for runtime in &self.0 {
            match runtime.validate(image) {
                Ok(()) => return Ok(runtime.clone()),
                Err(Refusal::Unavailable(why)) => return Err(why),
                Err(Refusal::OtherKind(what)) => other_kind.push(what),
            }
        }
        Err(format!(
            "no runtime of this node runs image {}: {}",
            image.reference,
            other_kind.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use skiff_image::{ImageKind, ImageStore};

    use super::*;

    /// A runtime for one kind of image, possibly missing on the node.
    #[derive(Debug)]
    struct Fake {
        name: &'static str,
        kind: ImageKind,
        usable: bool,
    }

    impl WorkloadRuntime for Fake {
        fn name(&self) -> &'static str {
            self.name
        }

        fn validate(&self, image: &Image) -> Result<(), Refusal> {
            if image.kind != self.kind {
                return Err(Refusal::OtherKind(format!(
                    "image {} is not for {}",
                    image.reference, self.name
                )));
            }
            if !self.usable {
                return Err(Refusal::Unavailable(format!(
                    "image {} needs {}",
                    image.reference, self.name
                )));
            }
            Ok(())
        }

        fn log_wiring(&self) -> LogWiring {
            LogWiring::Direct
        }

        fn network(&self) -> Network {
            Network::Pod
        }

        fn start(&self, _launch: Launch) -> Starting<'_> {
            Box::pin(async {
                Err(StartError {
                    reason: "CreateContainerError",
                    message: "a fake".into(),
                })
            })
        }
    }

    fn runtimes(usable: bool) -> Runtimes {
        Runtimes::new(vec![
            Arc::new(Fake {
                name: "oci",
                kind: ImageKind::Container,
                usable: true,
            }),
            Arc::new(Fake {
                name: "wasm",
                kind: ImageKind::Wasm,
                usable,
            }),
        ])
    }

    fn wasm_image() -> Image {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        store.import_component(b"\0asm", "example.test/app:1").unwrap()
    }

    #[test]
    fn the_first_runtime_that_accepts_the_image_runs_it() {
        let image = wasm_image();
        assert_eq!(runtimes(true).select(&image, None).unwrap().name(), "wasm");
        // A class the node has no runtime for is not a reason to refuse.
        assert_eq!(runtimes(true).select(&image, Some("gvisor")).unwrap().name(), "wasm");
    }

    #[test]
    fn a_runtime_class_must_fit_the_image() {
        let image = wasm_image();
        assert_eq!(runtimes(true).select(&image, Some("wasm")).unwrap().name(), "wasm");
        assert_eq!(
            runtimes(true).select(&image, Some("oci")).unwrap_err(),
            "image example.test/app:1 is not for oci, but the pod's runtimeClassName is oci"
        );
    }

    #[test]
    fn a_runtime_missing_on_the_node_says_so() {
        let image = wasm_image();
        let expected = "image example.test/app:1 needs wasm";
        assert_eq!(runtimes(false).select(&image, None).unwrap_err(), expected);
        assert_eq!(runtimes(false).select(&image, Some("wasm")).unwrap_err(), expected);
    }

    #[test]
    fn a_pod_shares_one_network() {
        use Network::*;
        assert_eq!(Network::of_pod(false, [Pod, Pod]), Pod);
        assert_eq!(Network::of_pod(false, [Namespace, Namespace]), Namespace);
        assert_eq!(Network::of_pod(false, [Pod, Namespace]), Node);
        assert_eq!(Network::of_pod(true, [Namespace]), Node);
        assert_eq!(Network::of_pod(true, [Pod]), Node);
        assert_eq!(Network::of_pod(false, []), Pod);
    }
}
