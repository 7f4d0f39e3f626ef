//! What can go wrong loading or calling a plugin.

/// Why a plugin could not be loaded. None of these is worth retrying with
/// the same object except [`Error::Fetch`] (a registry may come back) and
/// [`Error::Engine`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the spec is invalid: {0}")]
    Spec(String),
    #[error("cannot fetch the component: {0}")]
    Fetch(String),
    #[error("the component's digest is {actual}, not {expected} as spec.component.digest says")]
    DigestMismatch { expected: String, actual: String },
    #[error("the file is not WebAssembly")]
    NotWasm,
    #[error(
        "the file is a core WebAssembly module, not a component; build it for wasm32-wasip2 or wrap it with `wasm-tools component new`"
    )]
    NotAComponent,
    #[error("the component does not compile: {0}")]
    Compile(String),
    /// The component's imports or exports do not match the stage's world.
    #[error("the component does not implement world skiff:plugins/{world}: {detail}")]
    WrongWorld { world: &'static str, detail: String },
    /// The first instance failed: `init` refused the configuration, or
    /// trapped.
    #[error("{0}")]
    Init(CallError),
    #[error("the plugin engine cannot start: {0}")]
    Engine(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one call failed. Every variant ends that call only: the instance
/// is replaced before the next one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the call ran past its time limit of {0} ms")]
    Timeout(u64),
    #[error("the call ran out of fuel")]
    OutOfFuel,
    #[error("the plugin exceeded its memory limit")]
    Memory,
    #[error("the plugin trapped: {0}")]
    Trap(String),
    /// The plugin answered with an error of its own.
    #[error("the plugin failed: {0}")]
    Plugin(String),
    /// `init` refused the configuration.
    #[error("the plugin refused its configuration: {0}")]
    Config(String),
    /// The plugin broke the world's contract (a wrong number of answers,
    /// a patch that is not JSON).
    #[error("the plugin's answer is unusable: {0}")]
    Answer(String),
    #[error("the plugin is being unloaded")]
    Unloaded,
}
