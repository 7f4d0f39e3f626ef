//! The scheduler's one error type.
//!
//! Scheduling decisions are not errors: a pod that fits nowhere is a
//! [`Decision::Unschedulable`](crate::Decision::Unschedulable), and a plugin
//! that fails inside a cycle reports an error [`Status`](crate::Status).
//! [`Error`] is for what stops the scheduler from starting (a bad
//! configuration) and for the API calls around a cycle.

/// What can go wrong configuring or running the scheduler.
///
/// A caller may retry [`Error::Api`]; the configuration variants need the
/// configuration fixed first.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read.
    #[error("cannot read the scheduler configuration {path}")]
    ReadConfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not valid YAML of the expected shape.
    #[error("cannot parse the scheduler configuration")]
    ParseConfig {
        #[source]
        source: serde_yaml::Error,
    },
    /// The configuration parses but names something that does not exist
    /// or does not fit together (an unknown plugin, a duplicate profile).
    #[error("invalid scheduler configuration: {source}")]
    InvalidConfig {
        #[source]
        source: ConfigProblem,
    },
    /// A plugin's `pluginConfig` arguments do not match what it accepts.
    #[error("invalid arguments for plugin {plugin}")]
    PluginArgs {
        plugin: String,
        #[source]
        source: serde_json::Error,
    },
    /// A call to the API server failed (binding a pod, updating its
    /// status). Retryable.
    #[error("{action}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
}

/// A semantic problem in the scheduler configuration, described for the
/// person editing the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigProblem(pub String);

impl Error {
    /// A configuration problem described by `message`.
    pub fn config(message: impl Into<String>) -> Error {
        Error::InvalidConfig {
            source: ConfigProblem(message.into()),
        }
    }

    /// The HTTP status code of a failed API call, if the server answered.
    pub fn api_code(&self) -> Option<u16> {
        match self {
            Error::Api {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }
}

/// `Result` with the scheduler's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
