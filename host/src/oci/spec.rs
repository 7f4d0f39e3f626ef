//! What the agent asks of the OCI runtime for one container.

use std::path::PathBuf;

use skiff_image::Image;

use super::security::Security;

/// One container to run with runc, already resolved from a pod container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// runc container id: `[A-Za-z0-9][A-Za-z0-9_.-]*`, unique on the node.
    pub id: String,
    /// The container's hostname (its own UTS namespace): at most 63
    /// bytes, which the kernel takes. For a pod's container, the pod's
    /// ([`agent::spec::hostname`](crate::agent::spec::hostname)).
    pub hostname: String,
    /// The image; must be an [`ImageKind::Container`](skiff_image::ImageKind).
    pub image: Image,
    /// Kubernetes `command`: replaces the image entrypoint when non-empty.
    pub command: Vec<String>,
    /// Kubernetes `args`: replaces the image cmd when non-empty.
    pub args: Vec<String>,
    /// Added to (and overriding) the image environment.
    pub env: Vec<(String, String)>,
    /// Working directory; else the image's, else `/`.
    pub working_dir: Option<String>,
    /// The pod (as the kubelet names it in messages: `name_namespace(uid)`)
    /// and the container, for messages.
    pub pod: String,
    pub container: String,
    /// User, groups, capabilities and the rest of the securityContext.
    pub security: Security,
    /// Bind mounts from the host.
    pub mounts: Vec<Mount>,
    /// cgroup memory limit.
    pub memory_limit_bytes: Option<u64>,
    /// CPU in millicores: sets both cpu shares and a CFS quota.
    pub cpu_millis: Option<u64>,
    /// The network namespace to join (the pod's); `None` is the host's
    /// network.
    pub netns: Option<PathBuf>,
    /// Where the container's stdout goes (opened for append: a file, or
    /// the FIFO a log writer reads).
    pub stdout: PathBuf,
    /// Where its stderr goes; may be the same path as `stdout`.
    pub stderr: PathBuf,
    /// What it reads as stdin (a FIFO the agent writes); `None` is
    /// `/dev/null`.
    pub stdin: Option<PathBuf>,
    /// Whether its stdio is a terminal of its own (`tty: true`); runc
    /// then hands the master back from [`create`](super::RuncRuntime::create).
    pub terminal: bool,
}

/// A host path bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: PathBuf,
    /// Mounted read-only when true.
    pub read_only: bool,
}
