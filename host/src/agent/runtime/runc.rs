//! OCI containers through runc ([`crate::oci`]), each pod in its own
//! network namespace ([`crate::podnet`]) unless it asks for the host's.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skiff_image::{Image, ImageKind};

use super::{
    Exit, Launch, LogWiring, Meter, Network, Process, Refusal, Running, StartError, Starting, Stdio, StopMode, Usage,
    WorkloadRuntime,
};
use crate::oci::{self, ContainerState, RuncRuntime};

/// How often runc containers are polled for their state.
const POLL: Duration = Duration::from_millis(200);

/// OCI containers through runc. A node where runc
/// cannot run still has this runtime, without a runc: it then refuses
/// container images with a message that says so.
#[derive(Clone, Debug)]
pub struct RuncWorkloads {
    runc: Option<RuncRuntime>,
}

impl RuncWorkloads {
    /// `None` when runc cannot be run on this node.
    pub fn new(runc: Option<RuncRuntime>) -> Self {
        RuncWorkloads { runc }
    }
}

impl Exit {
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

/// A runc container's use, from its cgroup.
#[derive(Debug)]
struct CgroupMeter {
    id: String,
}

impl Meter for CgroupMeter {
    fn usage(&self) -> Option<Usage> {
        let read = oci::cgroup::read(std::path::Path::new("/sys/fs/cgroup"), &self.id)?;
        Some(Usage {
            cpu: read.cpu,
            working_set_bytes: read.working_set_bytes,
        })
    }
}

fn oci_spec(launch: &Launch) -> oci::ContainerSpec {
    let (stdout, stderr, stdin, terminal) = match &launch.stdio {
        Stdio::Fifos {
            stdout,
            stderr,
            stdin,
            terminal,
        } => (stdout.clone(), stderr.clone(), stdin.clone(), terminal.is_some()),
        Stdio::Discard | Stdio::Direct { .. } => (PathBuf::from("/dev/null"), PathBuf::from("/dev/null"), None, false),
    };
    oci::ContainerSpec {
        id: launch.id.clone(),
        hostname: launch.hostname.clone(),
        image: launch.image.clone(),
        command: launch.command.clone(),
        args: launch.args.clone(),
        env: launch.env.clone(),
        working_dir: launch.working_dir.clone(),
        pod: format!("{}_{}({})", launch.pod.name, launch.pod.namespace, launch.pod.uid),
        container: launch.name.clone(),
        security: launch.security.clone(),
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
        netns: launch.netns.clone(),
        stdout,
        stderr,
        stdin,
        terminal,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

impl WorkloadRuntime for RuncWorkloads {
    fn name(&self) -> &'static str {
        "runc"
    }

    fn validate(&self, image: &Image) -> Result<(), Refusal> {
        match (image.kind, &self.runc) {
            (ImageKind::Wasm, _) => Err(Refusal::OtherKind(format!(
                "image {} is a Wasm component",
                image.reference
            ))),
            (ImageKind::Container, None) => Err(Refusal::Unavailable(format!(
                "image {} needs the OCI runtime (runc), which this node does not have",
                image.reference
            ))),
            (ImageKind::Container, Some(_)) => Ok(()),
        }
    }

    /// runc containers are other processes: their stdio are FIFOs.
    fn log_wiring(&self) -> LogWiring {
        LogWiring::Fifos
    }

    fn network(&self) -> Network {
        Network::Namespace
    }

    fn mounts_files(&self) -> bool {
        true
    }

    /// With a shim, runc containers outlive the agent (see
    /// [`crate::oci::shim`]).
    fn adopt(&self, id: &str) -> Option<Running> {
        let runc = self.runc.as_ref()?;
        Some(watch(runc, id.to_string(), String::new()))
    }

    fn start(&self, launch: Launch) -> Starting<'_> {
        Box::pin(async move {
            match &self.runc {
                Some(runc) => start_container(runc, launch).await,
                None => Err(StartError {
                    reason: "CreateContainerConfigError",
                    message: "this node has no OCI runtime (runc)".into(),
                }),
            }
        })
    }
}

async fn start_container(runc: &RuncRuntime, launch: Launch) -> Result<Running, StartError> {
    // On the node's network, a port another process holds would make the
    // container fail on its own, later and with less to go on.
    for addr in launch.listen.iter().filter(|_| launch.netns.is_none()) {
        if std::net::TcpListener::bind(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), addr.port())).is_err() {
            return Err(StartError {
                reason: "CreateContainerError",
                message: format!(
                    "port {} is already in use on the node (the pod is on the host network)",
                    addr.port()
                ),
            });
        }
    }
    let spec = oci_spec(&launch);
    let id = launch.id.clone();
    let creating = runc.clone();
    let terminal = match &launch.stdio {
        Stdio::Fifos { terminal, .. } => terminal.clone(),
        _ => None,
    };
    let started = blocking(move || {
        if let (Some(master), Some(to)) = (creating.create(&spec)?, terminal) {
            let _ = to.send(master);
        }
        if let Err(error) = creating.start(&spec.id) {
            let _ = creating.delete(&spec.id, true);
            return Err(error);
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|| Err(oci::runc::Error::NotFound { id: launch.id.clone() }));
    if let Err(error) = started {
        // A refusal is worded for the user as it stands; other errors say
        // what failed, then why.
        let reason = error.waiting_reason();
        let message = match error {
            oci::runc::Error::Bundle {
                source: oci::bundle::Error::Refused(refusal),
                ..
            } => refusal,
            other => format!("{:#}", anyhow::Error::new(other)),
        };
        return Err(StartError { reason, message });
    }
    Ok(watch(runc, id, launch.image.manifest_digest.clone()))
}

/// The container `id`, created: stopped through runc, polled until it
/// exits, then deleted.
fn watch(runc: &RuncRuntime, id: String, image_id: String) -> Running {
    let (exit_tx, exited) = super::exit_channel();
    let (stopper, mut stop_rx) = super::stop_channel();
    let (exec_runc, exec_id) = (runc.clone(), id.clone());
    let (spawn_runc, spawn_id) = (runc.clone(), id.clone());
    let meter = Arc::new(CgroupMeter { id: id.clone() });
    let runc = runc.clone();
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
    Running {
        image_id,
        exit: exited,
        stopper,
        meter,
        exec: Some(Arc::new(
            move |command: Vec<String>, _timeout: Duration| match exec_runc.exec(&exec_id, &command) {
                Ok(0) => Ok(()),
                Ok(code) => Err(format!("command {command:?} exited with {code}")),
                Err(e) => Err(e.to_string()),
            },
        )),
        spawn: Some(Arc::new(move |command: Vec<String>, terminal: bool| {
            spawn_process(&spawn_runc, &spawn_id, &command, terminal)
                .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
        })),
    }
}

/// `runc exec` of `command` for a client: with a terminal, or with
/// three pipes whose other ends the client gets.
fn spawn_process(
    runc: &RuncRuntime,
    id: &str,
    command: &[String],
    terminal: bool,
) -> Result<Process, oci::runc::Error> {
    let io = |source: std::io::Error| oci::runc::Error::Io {
        context: "cannot make the process's stdio",
        path: runc.bundle_dir(id),
        source,
    };
    if terminal {
        let started = runc.spawn_exec(id, command, oci::runc::ExecStdio::Terminal)?;
        let master = started
            .terminal
            .ok_or_else(|| io(std::io::Error::other("runc sent no terminal")))?;
        let output = master.try_clone().map_err(io)?;
        let pid = started.pid;
        return Ok(Process {
            stdin: master,
            stdout: output,
            stderr: None,
            terminal: true,
            wait: Box::new(move || oci::runc::wait_pid(pid)),
        });
    }
    let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| io(e.into()));
    let (stdin_read, stdin_write) = pipe()?;
    let (stdout_read, stdout_write) = pipe()?;
    let (stderr_read, stderr_write) = pipe()?;
    let stdio = oci::runc::ExecStdio::Pipes {
        stdin: stdin_read,
        stdout: stdout_write,
        stderr: stderr_write,
    };
    let pid = runc.spawn_exec(id, command, stdio)?.pid;
    Ok(Process {
        stdin: stdin_write,
        stdout: stdout_read,
        stderr: Some(stderr_read),
        terminal: false,
        wait: Box::new(move || oci::runc::wait_pid(pid)),
    })
}
