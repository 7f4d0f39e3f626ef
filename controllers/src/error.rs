//! The one error type of the controllers.

/// Why a reconcile failed. Every variant is retried: the controller
/// requeues the object with a back-off and tries again.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed (conflicts included: the object changed
    /// under the reconcile, which the next one sees).
    #[error("API request failed: {0}")]
    Kube(#[source] kube::Error),
    /// An object could not be turned into the typed form the controller
    /// needs.
    #[error("cannot encode or decode {what}: {source}")]
    Serde {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Error {
        Error::Kube(e)
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `e` is the API's 404, which for a delete means the work is
/// already done.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

/// Whether `e` is the API's 409: a stale resourceVersion or an object
/// that already exists.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409)
}
