//! Audit logging, as kube-apiserver does it: who did what, as which user,
//! with which result, one `audit.k8s.io/v1` `Event` of JSON per line.
//!
//! It is off unless the server is given a policy (`--audit-policy-file`):
//! then [`Audit`] is in the server's settings and [`layer`] wraps the
//! router; without one, no layer, no recorder, nothing is computed.
//!
//! The parts, pure first and I/O last:
//!
//! * [`policy`]: kube-apiserver's `Policy` file and the decision of how
//!   much of a request to record (first matching rule; `None`,
//!   `Metadata`, `Request`, `RequestResponse`), with the stages to leave
//!   out.
//! * [`sensitive`]: the cap no policy lifts: requests whose bodies hold
//!   credentials (Secrets, token requests and reviews) are recorded at
//!   `Metadata` at most, so Secret payloads never reach the log.
//! * [`event`]: the `Event` as kube-apiserver writes it, and the pieces it
//!   is made of.
//! * [`record`]: the middleware, and the [`Recorder`] it puts in each
//!   request's extensions so that authentication, authorization and the
//!   resource handlers can tell it what they learn; it writes
//!   `RequestReceived`, `ResponseStarted` (long-running requests),
//!   `ResponseComplete` and `Panic` events.
//! * [`sink`]: a bounded queue and a writer thread; a full queue drops
//!   and counts rather than block requests (see there why).
//! * [`rotate`]: the log file, rotated by size and count with
//!   kube-apiserver's (lumberjack's) names; or standard output for `-`.

pub mod event;
pub mod policy;
pub mod record;
pub mod rotate;
pub mod sensitive;
pub mod sink;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

pub use policy::{Level, Policy, Stage};
pub use record::{AUDIT_ID, Recorder, layer};
pub use sink::Stats;

/// What can go wrong setting auditing up; none of it is worth a retry
/// without the operator fixing a file or a path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy file cannot be read.
    #[error("cannot read the audit policy {path}: {source}", path = .path.display())]
    ReadPolicy {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The policy is not YAML or JSON of a `Policy`'s shape.
    #[error("the audit policy {path} does not parse: {source}", path = .path.display())]
    ParsePolicy {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    /// The policy parses, but breaks a rule of kube-apiserver's.
    #[error("the audit policy {path} is invalid: {source}", path = .path.display())]
    InvalidPolicy {
        path: PathBuf,
        #[source]
        source: policy::Invalid,
    },
    /// The log file cannot be created or opened.
    #[error("cannot open the audit log {path}", path = .path.display())]
    OpenLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The writer thread cannot be started.
    #[error("cannot start the audit log writer")]
    Writer {
        #[source]
        source: std::io::Error,
    },
}

/// Where the log goes: kube-apiserver's `--audit-log-path`,
/// `--audit-log-maxsize` and `--audit-log-maxbackup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// The file, or `-` for standard output (never rotated).
    pub path: PathBuf,
    /// Megabytes (MiB) a file may reach before it is rotated; 0 means
    /// 100, as in kube-apiserver.
    pub max_size_mb: u64,
    /// Rotated files kept; 0 keeps them all.
    pub max_backups: usize,
}

/// Auditing, switched on: the policy and the log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Audit {
    policy: Arc<Policy>,
    sink: Arc<sink::Sink>,
}

impl Audit {
    /// Auditing by `policy` into the log `options` name; the file is
    /// opened now, so a bad path is reported at start.
    pub fn start(policy: Policy, options: &LogOptions) -> Result<Audit, Error> {
        let writer: Box<dyn Write + Send> = if options.path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                rotate::RotatingFile::open(&options.path, options.max_size_mb, options.max_backups).map_err(
                    |source| Error::OpenLog {
                        path: options.path.clone(),
                        source,
                    },
                )?,
            )
        };
        Audit::with_writer(policy, writer)
    }

    /// Auditing by `policy` into any writer (each `write` one event).
    pub fn with_writer(policy: Policy, writer: Box<dyn Write + Send>) -> Result<Audit, Error> {
        let sink = sink::Sink::start(writer).map_err(|source| Error::Writer { source })?;
        Ok(Audit {
            policy: Arc::new(policy),
            sink: Arc::new(sink),
        })
    }

    /// How many events were written, dropped and lost so far.
    pub fn stats(&self) -> Stats {
        self.sink.stats()
    }
}
