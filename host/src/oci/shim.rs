//! The container monitor: one small process per runc container that
//! outlives the agent, so that the container's exit code is recorded
//! whoever is running at the time, and an agent that restarts can adopt
//! the containers it finds.
//!
//! The agent runs it as `skiff container-shim` (the skiff binary, called
//! back; its `main` hands the arguments to [`main`]) with [`Args`]: the
//! bundle, the files for the container's stdio, and the `runc … create`
//! command line. The shim:
//!
//! 1. starts a session of its own (signals for the agent's terminal do
//!    not reach it) and becomes a child subreaper, so the container's
//!    init, orphaned when `runc create` exits, becomes its child;
//! 2. runs `runc create` with the container's stdio, and exits with
//!    runc's code if that fails (runc's own `--log` says why);
//! 3. writes one byte to its stdout, a pipe the agent reads (the
//!    container is created), and closes it;
//! 4. reaps children until the container's init (runc's `--pid-file`)
//!    has exited, and writes its exit code (a signal `n` as `128 + n`,
//!    as shells report it) to `<bundle>/exit_code`, atomically.
//!
//! The shim never holds the container's stdio after `runc create`, so
//! the agent's log reader sees the end of the output when the container
//! closes its own. It is what containerd's shims and CRI-O's conmon do,
//! reduced to the one job skiff needs; neither fits in one binary.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::process::{Pid, WaitOptions};

/// The subcommand the agent calls the skiff binary back with.
pub const SUBCOMMAND: &str = "container-shim";

/// The file the exit code is written to, in the bundle.
pub const EXIT_FILE: &str = "exit_code";

/// The shim's pid, in the bundle: an agent that adopts the container
/// waits for it.
pub const PID_FILE: &str = "shim.pid";

/// What the shim is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    pub bundle: PathBuf,
    /// runc's `--pid-file`: the container's init.
    pub init_pid_file: PathBuf,
    pub stdin: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// `runc` and its arguments (`… create …`).
    pub runc: Vec<OsString>,
}

impl Args {
    /// The arguments after the subcommand.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            &self.bundle,
            &self.init_pid_file,
            &self.stdin,
            &self.stdout,
            &self.stderr,
        ]
        .iter()
        .map(|p| p.as_os_str().to_owned())
        .collect();
        args.push("--".into());
        args.extend(self.runc.iter().cloned());
        args
    }

    /// Reads what [`to_args`](Self::to_args) wrote.
    pub fn parse(args: &[OsString]) -> Option<Args> {
        let (paths, rest) = args.split_at_checked(5)?;
        let (separator, runc) = rest.split_first()?;
        if separator != "--" || runc.is_empty() {
            return None;
        }
        let path = |i: usize| PathBuf::from(&paths[i]);
        Some(Args {
            bundle: path(0),
            init_pid_file: path(1),
            stdin: path(2),
            stdout: path(3),
            stderr: path(4),
            runc: runc.to_vec(),
        })
    }
}

/// Runs the shim with `args` (what follows the subcommand); the process's
/// exit code.
pub fn main(args: &[OsString]) -> i32 {
    let Some(args) = Args::parse(args) else {
        eprintln!("usage: skiff {SUBCOMMAND} BUNDLE INIT_PID_FILE STDIN STDOUT STDERR -- RUNC ARGS…");
        return 2;
    };
    match run(&args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("skiff {SUBCOMMAND}: {error}");
            1
        }
    }
}

fn run(args: &Args) -> io::Result<i32> {
    let _ = rustix::process::setsid();
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    fs::write(args.bundle.join(PID_FILE), std::process::id().to_string())?;
    let output = |path: &Path| OpenOptions::new().create(true).append(true).open(path);
    let status = Command::new(&args.runc[0])
        .args(&args.runc[1..])
        .stdin(File::open(&args.stdin)?)
        .stdout(output(&args.stdout)?)
        .stderr(output(&args.stderr)?)
        .status()?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    let init = fs::read_to_string(&args.init_pid_file)?
        .trim()
        .parse::<i32>()
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::other("runc wrote no usable pid file"))?;
    // Created: the agent goes on.
    {
        let mut created = io::stdout().lock();
        created.write_all(b"c")?;
        created.flush()?;
    }
    let null = File::options().read(true).write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdout(&null)?;
    rustix::stdio::dup2_stdin(&null)?;
    let code = loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, status))) if pid == init => {
                break status
                    .exit_status()
                    .or_else(|| status.terminating_signal().map(|s| 128 + s))
                    .unwrap_or(1);
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            // No child left, yet init was not reaped: nothing to record.
            Err(error) => return Err(error.into()),
        }
    };
    let exit_file = args.bundle.join(EXIT_FILE);
    let partial = args.bundle.join(format!("{EXIT_FILE}.partial"));
    fs::write(&partial, code.to_string())?;
    fs::rename(&partial, &exit_file)?;
    Ok(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arguments_read_back_as_written() {
        let args = Args {
            bundle: "/b".into(),
            init_pid_file: "/b/init.pid".into(),
            stdin: "/dev/null".into(),
            stdout: "/logs/0.out".into(),
            stderr: "/logs/0.err".into(),
            runc: vec![
                "runc".into(),
                "--root".into(),
                "/r".into(),
                "create".into(),
                "id".into(),
            ],
        };
        assert_eq!(Args::parse(&args.to_args()), Some(args));
        assert_eq!(Args::parse(&["/b".into()]), None);
    }
}
