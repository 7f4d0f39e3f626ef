//! `wasi:cli/command` components: run to completion (a Job) or for as long
//! as they like (a long-running worker), stdout/stderr to the container's
//! logs, the exit code to its status.
//!
//! A running command yields to the async runtime after each slice (an
//! epoch tick or more, by its CPU request), so a guest that never returns
//! cannot hold a worker thread; at each tick it is also charged to its
//! container's [`CpuBudget`](crate::CpuBudget) and checked against its
//! deadline and its stop flag ([`cpu`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::Store;
use wasmtime::component::Component;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::cpu::{self, Run};
use super::state::{Environment, State};
use super::{Termination, WasmError, classify};

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The process exit code: 0 on success, the code given to `exit`, or
    /// non-zero for a trap.
    pub code: i32,
    pub termination: Termination,
    /// What went wrong, for the container status message.
    pub message: Option<String>,
}

/// Stops a running command: at its next epoch tick while it computes, at
/// once while it waits in the host (on a socket, a timer, a stream).
#[derive(Clone, Debug, Default)]
pub struct StopHandle(Arc<Stop>);

#[derive(Debug, Default)]
struct Stop {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl StopHandle {
    pub fn stop(&self) {
        self.0.flag.store(true, Ordering::Relaxed);
        self.0.notify.notify_waiters();
    }

    pub(crate) fn stopped(&self) -> bool {
        self.0.flag.load(Ordering::Relaxed)
    }

    /// Resolves once [`stop`](Self::stop) is called.
    async fn requested(&self) {
        let notified = self.0.notify.notified();
        if !self.stopped() {
            notified.await;
        }
    }
}

/// A component ready to run.
#[derive(Clone)]
pub struct CommandService {
    pre: CommandPre<State>,
    env: Arc<Environment>,
    digest: String,
}

impl std::fmt::Debug for CommandService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandService")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl CommandService {
    pub(crate) fn new(
        linker: &wasmtime::component::Linker<State>,
        component: &Component,
        digest: String,
        env: Environment,
    ) -> Result<CommandService, WasmError> {
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| WasmError::Link(format!("{e:#}")))?;
        let pre = CommandPre::new(pre).map_err(|e| WasmError::Link(format!("{e:#}")))?;
        Ok(CommandService {
            pre,
            env: Arc::new(env),
            digest,
        })
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Runs the command once, until it exits, traps, runs out of time, or
    /// `stop` is called.
    pub async fn run(&self, stop: StopHandle) -> Result<Exit, WasmError> {
        let engine = self.pre.instance_pre().engine();
        let mut store = Store::new(engine, State::new(&self.env)?);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(cpu::at_epoch);
        let mut run = Run::new(self.env.cpu.clone(), self.env.limits.timeout, Some(stop.clone()));
        let command = run
            .drive(self.pre.instantiate_async(&mut store))
            .await
            .map_err(|e| classify(&e))?;
        // A guest waiting in the host never reaches an epoch check: the
        // stop request ends the wait (dropping the instance and its
        // sockets) instead.
        let outcome = tokio::select! {
            outcome = run.drive(command.wasi_cli_run().call_run(&mut store)) => outcome,
            () = stop.requested() => {
                return Ok(Exit {
                    code: 137,
                    termination: Termination::Killed,
                    message: None,
                });
            }
        };
        Ok(match outcome {
            Ok(Ok(())) => Exit {
                code: 0,
                termination: Termination::Completed,
                message: None,
            },
            Ok(Err(())) => Exit {
                code: 1,
                termination: Termination::Error,
                message: None,
            },
            Err(error) => {
                if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    let code = exit.0;
                    Exit {
                        code,
                        termination: if code == 0 {
                            Termination::Completed
                        } else {
                            Termination::Error
                        },
                        message: None,
                    }
                } else {
                    let classified = classify(&error);
                    let termination = match &classified {
                        WasmError::Trap { termination, .. } => *termination,
                        _ => Termination::Error,
                    };
                    let termination = if stop.stopped() && termination == Termination::DeadlineExceeded {
                        Termination::Killed
                    } else {
                        termination
                    };
                    Exit {
                        code: if termination == Termination::Killed { 137 } else { 1 },
                        termination,
                        message: Some(classified.to_string()),
                    }
                }
            }
        })
    }
}
