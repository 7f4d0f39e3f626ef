//! [`RuncRuntime`]: OCI containers run by the `runc` binary.
//!
//! # Layout
//!
//! ```text
//! <state_dir>/runc/                 runc's own state (`runc --root`)
//! <state_dir>/containers/<id>/      the bundle: config.json, rootfs/ (overlay
//!                                   mount or copy), upper/, work/,
//!                                   init.pid, exit_code, runc-<op>.log
//! ```
//!
//! # Exit codes
//!
//! `runc create` forks the container's init and exits, so init is not our
//! child and its status would go to whoever reaps orphans. [`RuncRuntime::new`]
//! therefore makes this process a *child subreaper*
//! (`prctl(PR_SET_CHILD_SUBREAPER)`): when `runc create` exits, the kernel
//! re-parents the container's init to us. `create` then reads init's pid
//! from runc's `--pid-file` and starts a thread that blocks in
//! `waitpid(pid)` for that pid only (never `waitpid(-1)`, so other child
//! handling in the process, such as tokio's, is undisturbed). The thread
//! records the status in `<container>/exit_code` (a signal `n` is reported
//! as `128 + n`, as shells do) and wakes anyone in [`RuncRuntime::state`].
//! This is the job containerd's shim or CRI-O's conmon does, done in
//! process; the cost is that the whole agent is a subreaper, so a container
//! whose waiter was lost (the agent restarted) reports
//! `Stopped { exit_code: None }`.
//!
//! With a shim ([`RuncRuntime::with_shim`], [`super::shim`]), the shim
//! runs `runc create` and is the subreaper instead: it outlives the agent
//! and writes `exit_code` itself, the waiter thread waits for the shim,
//! and a container created by an earlier agent reports its code too.
//!
//! # Logs
//!
//! With `terminal: false`, `runc create` hands its own stdio to the
//! container, so `create` runs runc with stdin on `/dev/null` and stdout and
//! stderr on the spec's log file (opened for append). runc's own messages go
//! to a JSON `--log` file per operation, read back for
//! [`Error::RuncFailed`].

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use rustix::process::{Pid, WaitOptions};
use serde::Deserialize;

use skiff_image::ImageKind;

use super::{ContainerSpec, bundle, console, rootfs, shim};

/// How long [`RuncRuntime::state`] waits for the waiter thread to record
/// the exit code of a container runc already reports stopped.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// Errors of the runc runtime.
///
/// [`Error::RuncFailed`] and [`Error::Io`] may succeed on retry; the others
/// need the node or the spec to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runc binary cannot be executed.
    #[error(
        "runc binary {} cannot be run; install it (Debian: apt-get install -y runc) or configure its path",
        binary.display()
    )]
    RuncMissing {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    /// runc ran and failed.
    #[error("runc {op} {id} failed: {stderr}")]
    RuncFailed {
        op: &'static str,
        id: String,
        stderr: String,
    },
    /// No such container.
    #[error("container {id} does not exist")]
    NotFound { id: String },
    /// A container with this id already exists.
    #[error("container {id} already exists")]
    AlreadyExists { id: String },
    /// An id runc would refuse or that is unsafe as a path.
    #[error("invalid container id {id:?}: use [A-Za-z0-9][A-Za-z0-9_.-]*")]
    InvalidId { id: String },
    /// The image is a Wasm artifact, not a filesystem image.
    #[error("image {reference} of container {id} is a Wasm component, not a container image")]
    NotAContainerImage { id: String, reference: String },
    /// Unpacking layers or assembling the root filesystem failed.
    #[error("cannot prepare the root filesystem of {id}")]
    Rootfs {
        id: String,
        #[source]
        source: rootfs::Error,
    },
    /// Building the bundle failed.
    #[error("cannot build the bundle of {id}")]
    Bundle {
        id: String,
        #[source]
        source: bundle::Error,
    },
    /// `runc state` printed something unexpected.
    #[error("cannot parse runc state of {id}")]
    BadState {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    /// Filesystem or process failure around runc.
    #[error("{context}: {}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The Kubernetes waiting reason an agent reports for this failure.
    pub fn waiting_reason(&self) -> &'static str {
        match self {
            Error::Rootfs { source, .. } => source.waiting_reason(),
            Error::Bundle { source, .. } => source.waiting_reason(),
            Error::InvalidId { .. } | Error::NotAContainerImage { .. } => "CreateContainerConfigError",
            Error::RuncFailed { op: "start", .. } => "RunContainerError",
            _ => "CreateContainerError",
        }
    }
}

/// Result of runtime operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { context, path, source }
}

/// A container's state as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, its process waiting for `start`.
    Created,
    /// Running (or paused) with this host pid.
    Running { pid: u32 },
    /// Exited; the code is `None` when this process did not reap it.
    Stopped { exit_code: Option<i32> },
}

/// The exit code of one container, filled by its waiter thread.
#[derive(Debug, Default)]
struct ExitSlot {
    code: Mutex<Option<i32>>,
    done: Condvar,
}

/// The stdio of a process [`RuncRuntime::spawn_exec`] starts.
#[derive(Debug)]
pub enum ExecStdio {
    /// A new terminal, its master returned in [`ExecProcess::terminal`].
    Terminal,
    /// These descriptors, as the process's stdin, stdout and stderr.
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

/// A process [`RuncRuntime::spawn_exec`] started.
#[derive(Debug)]
pub struct ExecProcess {
    pub pid: Pid,
    /// The master of its terminal, if it has one.
    pub terminal: Option<OwnedFd>,
}

/// Who reports a container's exit: its init, our child, or the shim
/// that created it, which records the code.
#[derive(Debug)]
enum Reap {
    Init(Pid),
    Shim(std::process::Child),
}

/// The exit code a waiter or a shim recorded.
fn read_exit(file: &Path) -> Option<i32> {
    fs::read_to_string(file).ok().and_then(|s| s.trim().parse().ok())
}

/// Blocks until `pid`, a child of this process, exits; its exit code (a
/// signal `n` as `128 + n`, as shells report it), or `None` if it cannot
/// be reaped.
pub fn wait_pid(pid: Pid) -> Option<i32> {
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                return status
                    .exit_status()
                    .or_else(|| status.terminating_signal().map(|s| 128 + s));
            }
            Ok(None) | Err(rustix::io::Errno::INTR) => continue,
            Err(error) => {
                tracing::warn!(pid = pid.as_raw_nonzero().get(), %error, "cannot reap a process");
                return None;
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct RuncState {
    status: String,
    #[serde(default)]
    pid: u32,
}

/// Runs OCI containers with runc. Cheap to clone; clones share state.
///
/// Operations are blocking (they run the runc binary); call them from a
/// blocking-capable thread (`tokio::task::spawn_blocking`).
#[derive(Debug, Clone)]
pub struct RuncRuntime {
    state_dir: PathBuf,
    runc: PathBuf,
    version: String,
    exits: Arc<Mutex<HashMap<String, Arc<ExitSlot>>>>,
    /// The skiff binary, to run as each container's [`shim`].
    shim: Option<PathBuf>,
}

impl RuncRuntime {
    /// A runtime keeping its state under `state_dir` and running
    /// `runc_binary` (a path, or a name looked up in `PATH`).
    ///
    /// Checks `runc --version` ([`Error::RuncMissing`] if it cannot run) and
    /// makes this process a child subreaper (see the module docs).
    pub fn new(state_dir: impl Into<PathBuf>, runc_binary: impl Into<PathBuf>) -> Result<Self> {
        let state_dir = state_dir.into();
        // Bundles name their rootfs by this path; runc reads it from the
        // bundle's directory, so it must not be relative.
        let state_dir = std::path::absolute(&state_dir).map_err(|source| Error::Io {
            context: "cannot resolve the state directory",
            path: state_dir.clone(),
            source,
        })?;
        let runc = runc_binary.into();
        let output = Command::new(&runc)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::RuncMissing {
                binary: runc.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(Error::RuncFailed {
                op: "--version",
                id: String::new(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let version = String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        for dir in [state_dir.join("runc"), state_dir.join("containers")] {
            fs::create_dir_all(&dir).map_err(io_err("cannot create state directory", &dir))?;
        }
        rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(|e| Error::Io {
            context: "cannot become a child subreaper",
            path: state_dir.clone(),
            source: e.into(),
        })?;
        tracing::info!(%version, runc = %runc.display(), "runc runtime ready");
        Ok(Self {
            state_dir,
            runc,
            version,
            exits: Arc::default(),
            shim: None,
        })
    }

    /// Creates containers through a [`shim`] process each: `binary
    /// container-shim …` (the skiff binary).
    pub fn with_shim(mut self, binary: impl Into<PathBuf>) -> Self {
        self.shim = Some(binary.into());
        self
    }

    /// The first line of `runc --version`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The bundle directory of a container.
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.state_dir.join("containers").join(id)
    }

    /// Prepares the root filesystem and bundle and runs `runc create`; the
    /// container's process then waits for [`start`](Self::start). Its
    /// stdout and stderr go to `spec.stdout` and `spec.stderr`, its stdin
    /// comes from `spec.stdin`; with `spec.terminal` its stdio is a new
    /// terminal instead, whose master is returned. On failure nothing is
    /// left behind.
    #[tracing::instrument(skip(self, spec), fields(id = %spec.id, image = %spec.image.reference))]
    pub fn create(&self, spec: &ContainerSpec) -> Result<Option<OwnedFd>> {
        let id = spec.id.as_str();
        check_id(id)?;
        if spec.image.kind != ImageKind::Container {
            return Err(Error::NotAContainerImage {
                id: id.to_owned(),
                reference: spec.image.reference.clone(),
            });
        }
        let dir = self.bundle_dir(id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists { id: id.to_owned() });
            }
            Err(e) => return Err(io_err("cannot create bundle directory", &dir)(e)),
        }
        let result = self.create_in(spec, &dir);
        if result.is_err()
            && let Err(e) = rootfs::teardown(&dir)
        {
            tracing::warn!(error = %e, "cannot clean up after failed create");
        }
        result
    }

    fn create_in(&self, spec: &ContainerSpec, dir: &Path) -> Result<Option<OwnedFd>> {
        let id = spec.id.as_str();
        let rootfs_err = |source| Error::Rootfs {
            id: id.to_owned(),
            source,
        };
        let layers = rootfs::unpack_layers(&spec.image).map_err(rootfs_err)?;
        let rootfs = rootfs::assemble(&layers, dir).map_err(rootfs_err)?;
        tracing::debug!(kind = ?rootfs.kind, "rootfs ready");
        let bundle_err = |source| Error::Bundle {
            id: id.to_owned(),
            source,
        };
        let runtime_spec = bundle::runtime_spec(spec, &rootfs.path).map_err(bundle_err)?;
        bundle::write(dir, &runtime_spec).map_err(bundle_err)?;

        let pid_file = dir.join("init.pid");
        let mut command = self.command("create", id);
        command
            .arg("create")
            .arg("--bundle")
            .arg(dir)
            .arg("--pid-file")
            .arg(&pid_file);
        let console = if spec.terminal {
            let socket = console::ConsoleSocket::bind().map_err(io_err("cannot make a console socket", dir))?;
            command.arg("--console-socket").arg(socket.argument());
            Some(socket)
        } else {
            None
        };
        command.arg(id);
        let null = PathBuf::from("/dev/null");
        let stdio = if spec.terminal {
            [null.clone(), null.clone(), null]
        } else {
            for path in [&spec.stdout, &spec.stderr] {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(io_err("cannot create log directory", parent))?;
                }
            }
            // A writer holds a stdin FIFO open, so opening it does not wait.
            [
                spec.stdin.clone().unwrap_or(null),
                spec.stdout.clone(),
                spec.stderr.clone(),
            ]
        };
        let reap = match &self.shim {
            Some(binary) => Reap::Shim(self.create_through_shim(binary, id, dir, &pid_file, &command, stdio)?),
            None => {
                let [stdin, stdout, stderr] = stdio;
                let output = |path: &Path| {
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(io_err("cannot open container output", path))
                };
                command
                    .stdin(fs::File::open(&stdin).map_err(io_err("cannot open the container's stdin", &stdin))?)
                    .stdout(output(&stdout)?)
                    .stderr(output(&stderr)?);
                let status = command.status().map_err(|source| self.spawn_error(source))?;
                if !status.success() {
                    return Err(Error::RuncFailed {
                        op: "create",
                        id: id.to_owned(),
                        stderr: self.runc_log(id, "create", ""),
                    });
                }
                let pid = fs::read_to_string(&pid_file)
                    .map_err(io_err("cannot read init pid", &pid_file))?
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .and_then(Pid::from_raw)
                    .ok_or_else(|| Error::RuncFailed {
                        op: "create",
                        id: id.to_owned(),
                        stderr: format!("unusable pid file {}", pid_file.display()),
                    })?;
                Reap::Init(pid)
            }
        };
        let master = match console {
            Some(socket) => Some(socket.receive().map_err(|e| Error::RuncFailed {
                op: "create",
                id: id.to_owned(),
                stderr: format!("cannot take the container's terminal: {e}"),
            })?),
            None => None,
        };
        self.spawn_waiter(id, reap, dir.join(shim::EXIT_FILE))?;
        Ok(master)
    }

    /// Runs `runc` (a `create` command line) through a shim with the
    /// container's `stdio` files; returns the shim once it says the
    /// container is created.
    fn create_through_shim(
        &self,
        binary: &Path,
        id: &str,
        dir: &Path,
        pid_file: &Path,
        runc: &Command,
        stdio: [PathBuf; 3],
    ) -> Result<std::process::Child> {
        let [stdin, stdout, stderr] = stdio;
        let args = shim::Args {
            bundle: dir.to_owned(),
            init_pid_file: pid_file.to_owned(),
            stdin,
            stdout,
            stderr,
            runc: std::iter::once(runc.get_program())
                .chain(runc.get_args())
                .map(ToOwned::to_owned)
                .collect(),
        };
        let log = dir.join("shim.log");
        let mut child = Command::new(binary)
            .arg(shim::SUBCOMMAND)
            .args(args.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).map_err(io_err("cannot create the shim's log", &log))?)
            .spawn()
            .map_err(|source| Error::Io {
                context: "cannot run the container shim",
                path: binary.to_owned(),
                source,
            })?;
        let mut created = [0u8; 1];
        let said = child.stdout.take().map(|mut out| {
            use std::io::Read;
            out.read_exact(&mut created)
        });
        if matches!(said, Some(Ok(()))) {
            return Ok(child);
        }
        let _ = child.wait();
        let said = fs::read_to_string(&log).unwrap_or_default();
        Err(Error::RuncFailed {
            op: "create",
            id: id.to_owned(),
            stderr: self.runc_log(id, "create", &said),
        })
    }

    /// Starts a waiter thread reaping the container's init, or its shim
    /// (which records the init's exit code).
    fn spawn_waiter(&self, id: &str, reap: Reap, exit_file: PathBuf) -> Result<()> {
        let slot = Arc::new(ExitSlot::default());
        self.exits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), Arc::clone(&slot));
        let id_owned = id.to_owned();
        std::thread::Builder::new()
            .name(format!("runc-wait-{id}"))
            .spawn(move || {
                let code = match reap {
                    Reap::Init(pid) => {
                        let code = wait_pid(pid);
                        if let Some(code) = code
                            && let Err(e) = fs::write(&exit_file, code.to_string())
                        {
                            tracing::warn!(id = %id_owned, error = %e, "cannot record exit code");
                        }
                        code
                    }
                    Reap::Shim(mut shim) => {
                        let _ = shim.wait();
                        read_exit(&exit_file)
                    }
                };
                tracing::debug!(id = %id_owned, ?code, "container exited");
                *slot.code.lock().unwrap_or_else(PoisonError::into_inner) = code;
                slot.done.notify_all();
            })
            .map_err(io_err("cannot start waiter thread", &self.bundle_dir(id)))?;
        Ok(())
    }

    /// `runc exec`: runs `command` in the running container and returns
    /// its exit code (as exec probes and `kubectl exec` need).
    #[tracing::instrument(skip(self))]
    pub fn exec(&self, id: &str, command: &[String]) -> Result<i32> {
        check_id(id)?;
        if command.is_empty() {
            return Err(Error::RuncFailed {
                op: "exec",
                id: id.to_owned(),
                stderr: "no command to exec".into(),
            });
        }
        let status = self
            .command("exec", id)
            .arg("exec")
            .arg(id)
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|source| self.spawn_error(source))?;
        Ok(status.code().unwrap_or(128))
    }

    /// `runc exec --detach`: starts `command` in the running container
    /// (`kubectl exec`), with the container's environment, user and
    /// working directory. Without a terminal the process gets `stdio`;
    /// with one, its stdio is a new terminal whose master is returned.
    /// The process becomes this process's child once runc exits (see the
    /// module docs); [`wait_pid`] reaps it.
    #[tracing::instrument(skip(self, stdio))]
    pub fn spawn_exec(&self, id: &str, command: &[String], stdio: ExecStdio) -> Result<ExecProcess> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        check_id(id)?;
        let failed = |stderr: String| Error::RuncFailed {
            op: "exec",
            id: id.to_owned(),
            stderr,
        };
        if command.is_empty() {
            return Err(failed("no command to exec".into()));
        }
        let op = format!("exec-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let pid_file = self.bundle_dir(id).join(format!("{op}.pid"));
        let mut runc = self.command(&op, id);
        runc.arg("exec").arg("--detach").arg("--pid-file").arg(&pid_file);
        let console = match stdio {
            ExecStdio::Terminal => {
                let socket =
                    console::ConsoleSocket::bind().map_err(io_err("cannot make a console socket", &pid_file))?;
                runc.arg("--tty").arg("--console-socket").arg(socket.argument());
                runc.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
                Some(socket)
            }
            ExecStdio::Pipes { stdin, stdout, stderr } => {
                runc.stdin(stdin).stdout(stdout).stderr(stderr);
                None
            }
        };
        let status = runc
            .arg(id)
            .args(command)
            .status()
            .map_err(|source| self.spawn_error(source))?;
        let log = self.runc_log(id, &op, "");
        let _ = fs::remove_file(self.op_log_path(id, &op));
        if !status.success() {
            let _ = fs::remove_file(&pid_file);
            return Err(failed(if log.is_empty() {
                format!("runc exited with {status}")
            } else {
                log
            }));
        }
        let pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .and_then(Pid::from_raw);
        let _ = fs::remove_file(&pid_file);
        let pid = pid.ok_or_else(|| failed(format!("unusable pid file {}", pid_file.display())))?;
        let terminal = match console {
            Some(socket) => match socket.receive() {
                Ok(master) => Some(master),
                Err(error) => {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    wait_pid(pid);
                    return Err(failed(format!("cannot take the process's terminal: {error}")));
                }
            },
            None => None,
        };
        Ok(ExecProcess { pid, terminal })
    }

    /// `runc start`: runs the created container's process.
    #[tracing::instrument(skip(self))]
    pub fn start(&self, id: &str) -> Result<()> {
        check_id(id)?;
        self.run_simple("start", id, &["start", id])
    }

    /// The container's state, with its exit code once it has stopped.
    pub fn state(&self, id: &str) -> Result<ContainerState> {
        check_id(id)?;
        if let Some(code) = self.recorded_exit(id) {
            return Ok(ContainerState::Stopped { exit_code: Some(code) });
        }
        let output = self.run("state", id, &["state", id])?;
        if !output.status.success() {
            let stderr = self.runc_log(id, "state", &String::from_utf8_lossy(&output.stderr));
            if stderr.contains("does not exist") {
                return Err(Error::NotFound { id: id.to_owned() });
            }
            return Err(Error::RuncFailed {
                op: "state",
                id: id.to_owned(),
                stderr,
            });
        }
        let state: RuncState = serde_json::from_slice(&output.stdout).map_err(|source| Error::BadState {
            id: id.to_owned(),
            source,
        })?;
        Ok(match state.status.as_str() {
            "created" => ContainerState::Created,
            "running" | "paused" | "pausing" => ContainerState::Running { pid: state.pid },
            _ => ContainerState::Stopped {
                exit_code: self.await_exit(id),
            },
        })
    }

    /// The recorded exit code, from the waiter or the file it wrote.
    fn recorded_exit(&self, id: &str) -> Option<i32> {
        let slot = self
            .exits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        if let Some(code) = slot.and_then(|s| *s.code.lock().unwrap_or_else(PoisonError::into_inner)) {
            return Some(code);
        }
        read_exit(&self.bundle_dir(id).join(shim::EXIT_FILE))
    }

    /// Waits briefly for the waiter of a container runc reports stopped,
    /// or, for a container an earlier process created, for its shim to
    /// record the code.
    fn await_exit(&self, id: &str) -> Option<i32> {
        let slot = self
            .exits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        let Some(slot) = slot else {
            let file = self.bundle_dir(id).join(shim::EXIT_FILE);
            let until = std::time::Instant::now() + REAP_GRACE;
            while std::time::Instant::now() < until && self.shim.is_some() {
                if let Some(code) = read_exit(&file) {
                    return Some(code);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            return read_exit(&file);
        };
        let guard = slot.code.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = slot
            .done
            .wait_timeout_while(guard, REAP_GRACE, |code| code.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }

    /// Sends `signal` (a number, e.g. 15, or a name, e.g. `"TERM"`) to the
    /// container's init.
    #[tracing::instrument(skip(self))]
    pub fn kill(&self, id: &str, signal: &str) -> Result<()> {
        check_id(id)?;
        self.run_simple("kill", id, &["kill", id, signal])
    }

    /// The ids of every container with a bundle here, running or not:
    /// after a restart, what an earlier process left behind.
    pub fn containers(&self) -> Result<Vec<String>> {
        let dir = self.state_dir.join("containers");
        let entries = fs::read_dir(&dir).map_err(io_err("cannot list containers", &dir))?;
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| check_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// `runc delete` (with `force`, killing a running container first),
    /// then unmounts and removes the bundle. Deleting an unknown container
    /// only cleans up what is left of it.
    #[tracing::instrument(skip(self))]
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        check_id(id)?;
        let args: &[&str] = if force {
            &["delete", "--force", id]
        } else {
            &["delete", id]
        };
        let output = self.run("delete", id, args)?;
        if !output.status.success() {
            let stderr = self.runc_log(id, "delete", &String::from_utf8_lossy(&output.stderr));
            if !stderr.contains("does not exist") {
                return Err(Error::RuncFailed {
                    op: "delete",
                    id: id.to_owned(),
                    stderr,
                });
            }
        }
        let dir = self.bundle_dir(id);
        rootfs::teardown(&dir).map_err(|source| Error::Rootfs {
            id: id.to_owned(),
            source,
        })?;
        self.exits.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        Ok(())
    }

    /// A runc command with the global flags, logging to `runc-<op>.log`.
    fn command(&self, op: &str, id: &str) -> Command {
        let log = self.op_log_path(id, op);
        let _ = fs::remove_file(&log);
        let mut command = Command::new(&self.runc);
        command
            .arg("--root")
            .arg(self.state_dir.join("runc"))
            .arg("--log-format")
            .arg("json");
        if log.parent().is_some_and(Path::is_dir) {
            command.arg("--log").arg(&log);
        }
        command
    }

    fn op_log_path(&self, id: &str, op: &str) -> PathBuf {
        self.bundle_dir(id).join(format!("runc-{op}.log"))
    }

    fn run(&self, op: &'static str, id: &str, args: &[&str]) -> Result<Output> {
        self.command(op, id)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| self.spawn_error(source))
    }

    fn run_simple(&self, op: &'static str, id: &str, args: &[&str]) -> Result<()> {
        let output = self.run(op, id, args)?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = self.runc_log(id, op, &String::from_utf8_lossy(&output.stderr));
        if stderr.contains("does not exist") {
            return Err(Error::NotFound { id: id.to_owned() });
        }
        Err(Error::RuncFailed {
            op,
            id: id.to_owned(),
            stderr,
        })
    }

    fn spawn_error(&self, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::NotFound {
            Error::RuncMissing {
                binary: self.runc.clone(),
                source,
            }
        } else {
            Error::Io {
                context: "cannot run runc",
                path: self.runc.clone(),
                source,
            }
        }
    }

    /// runc's error messages for an operation: the `msg` of error-level
    /// entries of its JSON log, else `fallback` (its stderr).
    fn runc_log(&self, id: &str, op: &str, fallback: &str) -> String {
        let log = fs::read_to_string(self.op_log_path(id, op)).unwrap_or_default();
        let messages: Vec<String> = log
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
            .filter_map(|v| v["msg"].as_str().map(str::to_owned))
            .collect();
        if messages.is_empty() {
            fallback.trim().to_owned()
        } else {
            messages.join("; ")
        }
    }
}

/// runc's id rule, also keeping ids safe as a path component.
fn check_id(id: &str) -> Result<()> {
    let mut bytes = id.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && id.len() <= 1024 {
        Ok(())
    } else {
        Err(Error::InvalidId { id: id.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::check_id;

    #[test]
    fn ids() {
        assert!(check_id("pod-1_c.x").is_ok());
        assert!(check_id("../x").is_err());
        assert!(check_id("").is_err());
        assert!(check_id(".hidden").is_err());
    }
}
