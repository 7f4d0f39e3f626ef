//! A loaded plugin's instance, on a thread of its own.
//!
//! Callers (the scheduler's cycle, the API server's admission chain) are
//! synchronous code running on async runtimes. A plugin call is handed to
//! the plugin's thread and the caller waits for the answer, so:
//!
//! * calls to one instance never overlap (the WIT promises plugins that);
//! * WASI's synchronous host functions, which enter a Tokio runtime of
//!   their own, never run on a runtime's worker thread;
//! * a call that traps or exceeds its limits ends there: the thread drops
//!   the instance and makes a fresh one (and calls `init`) for the next
//!   call.
//!
//! Every call is armed with the plugin's limits first: fuel (when set), an
//! epoch deadline for wall-clock time, and the store's memory limiter.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use skiff_wasm::engine::ticks;
use wasmtime::{Engine, Store};

use crate::bindings::{admission, filter, mutate, scheduling, score, validate};
use crate::error::CallError;
use crate::runtime::{Pre, State};
use crate::spec::Limits;

/// The least time `init` gets, whatever the per-call timeout: a fresh
/// instance of an interpreted plugin may need it to set itself up.
const INIT_TIME: Duration = Duration::from_secs(2);

type Job = Box<dyn FnOnce(&mut Slot) + Send>;

/// A handle on a plugin's thread. Dropping the last handle stops the
/// thread once the call in progress (if any) ends. Made by
/// [`PluginRuntime::instantiate`](crate::PluginRuntime::instantiate); a
/// [`WasmSchedulerPlugin`](crate::WasmSchedulerPlugin) or
/// [`WasmAdmissionPlugin`](crate::WasmAdmissionPlugin) calls it.
#[derive(Debug)]
pub struct PluginInstance {
    jobs: mpsc::Sender<Job>,
}

impl PluginInstance {
    /// Starts the thread for plugin `name` and makes its first instance,
    /// so that a plugin whose `init` refuses its configuration, or traps,
    /// is refused here rather than at its first call.
    pub(crate) fn start(
        name: &str,
        engine: &Engine,
        pre: Pre,
        config: String,
        limits: Limits,
    ) -> Result<PluginInstance, CallError> {
        let mut slot = Slot {
            name: name.into(),
            engine: engine.clone(),
            pre,
            config,
            limits,
            live: None,
        };
        slot.live()?;
        let (jobs, incoming) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("plugin-{name}"))
            .spawn(move || {
                while let Ok(job) = incoming.recv() {
                    // A panic is a host bug, not the plugin's doing; the
                    // instance is dropped and the thread goes on.
                    if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut slot))).is_err() {
                        tracing::error!(plugin = %slot.name, "a plugin call panicked");
                        slot.live = None;
                    }
                }
            })
            .map_err(|e| CallError::Trap(format!("cannot start the plugin's thread: {e}")))?;
        Ok(PluginInstance { jobs })
    }

    /// Runs `f` on the plugin's thread and waits for its answer.
    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Slot) -> Result<R, CallError> + Send + 'static,
    ) -> Result<R, CallError> {
        let (answer, answered) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |slot| {
                let _ = answer.send(f(slot));
            }))
            .map_err(|_| CallError::Unloaded)?;
        waiting(|| answered.recv()).map_err(|_| CallError::Unloaded)?
    }

    pub(crate) fn filter(
        &self,
        pod: scheduling::Pod,
        nodes: Vec<scheduling::Node>,
        objects: Vec<Arc<Node>>,
    ) -> Result<Vec<scheduling::Verdict>, CallError> {
        self.run(move |slot| {
            slot.call(objects, |bindings, store| match bindings {
                Bindings::Filter(b) => b.call_filter(store, &pod, &nodes),
                _ => Err(wrong_stage()),
            })
        })
    }

    pub(crate) fn score(
        &self,
        pod: scheduling::Pod,
        nodes: Vec<scheduling::Node>,
        objects: Vec<Arc<Node>>,
    ) -> Result<Vec<i64>, CallError> {
        self.run(move |slot| {
            slot.call(objects, |bindings, store| match bindings {
                Bindings::Score(b) => b.call_score(store, &pod, &nodes),
                _ => Err(wrong_stage()),
            })
        })
    }

    pub(crate) fn validate(&self, request: admission::Request) -> Result<admission::Verdict, CallError> {
        self.run(move |slot| {
            slot.call(Vec::new(), |bindings, store| match bindings {
                Bindings::Validate(b) => b.call_validate(store, &request),
                _ => Err(wrong_stage()),
            })
        })
    }

    pub(crate) fn mutate(&self, request: admission::Request) -> Result<admission::Mutation, CallError> {
        self.run(move |slot| {
            slot.call(Vec::new(), |bindings, store| match bindings {
                Bindings::Mutate(b) => b.call_mutate(store, &request),
                _ => Err(wrong_stage()),
            })
        })
    }
}

/// Runs `wait` (which blocks until the plugin answers) so that a caller
/// on a multi-threaded Tokio runtime hands its other tasks to another
/// worker first: a plugin using its whole time limit, or callers queueing
/// for one instance, must not hold up the API server's other requests.
fn waiting<R>(wait: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

fn wrong_stage() -> wasmtime::Error {
    wasmtime::format_err!("the plugin was called for a stage it does not serve")
}

/// The instantiated world.
enum Bindings {
    Filter(filter::SchedulerFilter),
    Score(score::SchedulerScore),
    Validate(validate::AdmissionValidate),
    Mutate(mutate::AdmissionMutate),
}

struct Live {
    store: Store<State>,
    bindings: Bindings,
}

/// What the plugin's thread owns: how to make an instance, and the
/// current one.
struct Slot {
    name: Arc<str>,
    engine: Engine,
    pre: Pre,
    config: String,
    limits: Limits,
    live: Option<Live>,
}

impl Slot {
    /// The live instance, made (and initialised) first if there is none.
    fn live(&mut self) -> Result<&mut Live, CallError> {
        let live = match self.live.take() {
            Some(live) => live,
            None => self.instantiate()?,
        };
        Ok(self.live.insert(live))
    }

    fn instantiate(&self) -> Result<Live, CallError> {
        let mut store = Store::new(&self.engine, State::new(&self.name, &self.limits));
        store.limiter(|state| &mut state.limits);
        let init_time = self.limits.timeout.max(INIT_TIME);
        arm(&mut store, &self.limits, init_time);
        let classify = |e: wasmtime::Error| classify(&e, init_time);
        let bindings = match &self.pre {
            Pre::Filter(pre) => Bindings::Filter(pre.instantiate(&mut store).map_err(classify)?),
            Pre::Score(pre) => Bindings::Score(pre.instantiate(&mut store).map_err(classify)?),
            Pre::Validate(pre) => Bindings::Validate(pre.instantiate(&mut store).map_err(classify)?),
            Pre::Mutate(pre) => Bindings::Mutate(pre.instantiate(&mut store).map_err(classify)?),
        };
        let config = self.config.as_str();
        let initialised = match &bindings {
            Bindings::Filter(b) => b.call_init(&mut store, config),
            Bindings::Score(b) => b.call_init(&mut store, config),
            Bindings::Validate(b) => b.call_init(&mut store, config),
            Bindings::Mutate(b) => b.call_init(&mut store, config),
        };
        match initialised {
            Ok(Ok(())) => Ok(Live { store, bindings }),
            Ok(Err(refusal)) => Err(CallError::Config(refusal)),
            Err(e) => Err(classify(e)),
        }
    }

    /// One armed call. A trap or an exceeded limit drops the instance; an
    /// error the plugin returns does not.
    fn call<R>(
        &mut self,
        nodes: Vec<Arc<Node>>,
        f: impl FnOnce(&Bindings, &mut Store<State>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, CallError> {
        let limits = self.limits;
        let live = self.live()?;
        arm(&mut live.store, &limits, limits.timeout);
        live.store.data_mut().nodes = nodes;
        let result = f(&live.bindings, &mut live.store);
        live.store.data_mut().nodes = Vec::new();
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(message)) => Err(CallError::Plugin(message)),
            Err(error) => {
                self.live = None;
                Err(classify(&error, limits.timeout))
            }
        }
    }
}

/// Sets the store's fuel and epoch deadline for a call of at most `time`.
fn arm(store: &mut Store<State>, limits: &Limits, time: Duration) {
    // Fuel is always metered by this engine; without a limit a call gets
    // more than it could burn before its deadline.
    let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
    store.set_epoch_deadline(ticks(time));
    store.epoch_deadline_trap();
}

/// Why a call stopped, from the error wasmtime returned.
fn classify(error: &wasmtime::Error, time: Duration) -> CallError {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => CallError::OutOfFuel,
        Some(wasmtime::Trap::Interrupt) => CallError::Timeout(time.as_millis() as u64),
        Some(trap) => CallError::Trap(trap.to_string()),
        None => {
            let text = format!("{error:#}");
            if text.contains("forcing trap when growing memory") {
                CallError::Memory
            } else {
                CallError::Trap(first_line(&text))
            }
        }
    }
}

/// The first line of a message, at most 300 characters: enough to say
/// what happened without a whole backtrace in a status.
pub(crate) fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}
