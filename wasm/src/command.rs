//! `wasi:cli/command` components: run to completion (a Job) or for as long
//! as they like (a long-running worker), stdout/stderr to the container's
//! logs, the exit code to its status.
//!
//! A running command yields to the async runtime every epoch tick, so a
//! guest that never returns cannot hold a worker thread; at each tick it
//! is also checked against its deadline and its stop flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::component::Component;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::bindings::CommandPre;

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

/// Stops a running command at its next epoch tick.
#[derive(Clone, Debug, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
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
        let deadline = self.env.limits.timeout.map(|t| std::time::Instant::now() + t);
        let stopper = stop.clone();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            let late = deadline.is_some_and(|d| std::time::Instant::now() >= d);
            if stopper.stopped() || late {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let command = self.pre.instantiate_async(&mut store).await.map_err(|e| classify(&e))?;
        let outcome = command.wasi_cli_run().call_run(&mut store).await;
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
