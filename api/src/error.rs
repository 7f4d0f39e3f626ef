//! The API server's one error type, rendered as a `metav1.Status`.
//!
//! Every failure that reaches a client goes through [`ApiError`]: it carries
//! the Kubernetes `reason`, the HTTP code and the message a client shows.
//! Internal detail (a store error's source chain) is logged where it happens
//! and never sent. [`ApiError::Unavailable`] for an unavailable store is the only
//! variant a client may usefully retry unchanged.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::status::{self, Details, Status};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// One field problem inside a 422 Invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueDuplicate`,
    /// `FieldValueNotSupported`, `FieldValueForbidden`, `FieldValueTooLong`.
    pub reason: &'static str,
    pub message: String,
    /// The JSON path of the field, e.g. `metadata.name`.
    pub field: String,
}

impl Cause {
    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Display, detail: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: \"{value}\": {}", detail.into()),
            field: field.into(),
        }
    }

    pub fn required(field: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueRequired",
            message: "Required value".into(),
            field: field.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Cause {
        Cause {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {}", detail.into()),
            field: field.into(),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: impl std::fmt::Display, allowed: &[&str]) -> Cause {
        let allowed = allowed
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Cause {
            reason: "FieldValueNotSupported",
            message: format!("Unsupported value: \"{value}\": supported values: {allowed}"),
            field: field.into(),
        }
    }

    fn render(&self) -> String {
        if self.field.is_empty() {
            return self.message.clone();
        }
        format!("{}: {}", self.field, self.message)
    }
}

/// Which object an error is about, as `Status.details` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    pub group: String,
    /// Plural resource name for NotFound/AlreadyExists/Conflict (as
    /// Kubernetes writes `details.kind`), the Kind for Invalid.
    pub kind: String,
    pub name: String,
}

impl Subject {
    pub fn new(group: &str, kind: &str, name: &str) -> Subject {
        Subject {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// `deployments.apps "web"` or `pods "web"`, as Kubernetes quotes objects.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            format!("{} \"{}\"", self.kind, self.name)
        } else {
            format!("{}.{} \"{}\"", self.kind, self.group, self.name)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{}", .0.qualified() + " not found")]
    NotFound(Subject),
    #[error("{}", .0.qualified() + " already exists")]
    AlreadyExists(Subject),
    /// Optimistic concurrency failed, or a precondition did not hold.
    #[error("Operation cannot be fulfilled on {}: {message}", .subject.qualified())]
    Conflict { subject: Subject, message: String },
    /// A server-side apply would change fields other managers own.
    #[error("{message}")]
    ApplyConflict {
        subject: Subject,
        message: String,
        causes: Vec<Cause>,
    },
    /// Semantic validation failed.
    #[error("{kind} \"{name}\" is invalid: {}", .causes.iter().map(Cause::render).collect::<Vec<_>>().join(", "))]
    Invalid {
        group: String,
        kind: String,
        name: String,
        causes: Vec<Cause>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// A resourceVersion or continue token older than the compaction point.
    #[error("{0}")]
    Expired(String),
    #[error("the request body is too large: the limit is {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the server does not allow this method on the requested resource")]
    MethodNotSupported,
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    #[error("only the following media types are accepted: {0}")]
    NotAcceptable(String),
    #[error("the server could not find the requested resource")]
    NoSuchRoute,
    /// An admission plugin refused the request.
    #[error("admission webhook \"{plugin}\" denied the request: {message}")]
    Denied { plugin: String, message: String, code: u16 },
    /// The store could not serve the request (no quorum, shutting down).
    #[error("the storage layer is unavailable; retry later")]
    Unavailable,
    /// A bug or an unexpected store failure; the detail was logged.
    #[error("an internal error occurred; see the server log")]
    Internal,
    /// A range the server hands out from is used up.
    #[error("Internal error occurred: {0}")]
    Exhausted(String),
    /// The server has as many requests in flight as it takes.
    #[error("Too many requests, please try again later.")]
    TooManyRequests { retry_after: u64 },
}

impl ApiError {
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        ApiError::Invalid {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
            causes,
        }
    }

    pub fn conflict(subject: Subject) -> ApiError {
        ApiError::Conflict {
            subject,
            message: "the object has been modified; please apply your changes to the latest version and try again"
                .into(),
        }
    }

    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::NoSuchRoute => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists(_) | ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => {
                StatusCode::CONFLICT
            }
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Expired(_) => StatusCode::GONE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotSupported => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Denied { code, .. } => StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_REQUEST),
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal | ApiError::Exhausted(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) | ApiError::NoSuchRoute => "NotFound",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::Expired(_) => "Expired",
            ApiError::TooLarge { .. } => "RequestEntityTooLarge",
            ApiError::MethodNotSupported => "MethodNotAllowed",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            // Kubernetes leaves the reason of a webhook denial empty.
            ApiError::Denied { .. } => "",
            ApiError::Unavailable => "ServiceUnavailable",
            ApiError::Internal | ApiError::Exhausted(_) => "InternalError",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
        }
    }

    /// The `metav1.Status` body for this error.
    pub fn status(&self) -> Status {
        let causes = |causes: &[Cause]| {
            causes
                .iter()
                .map(|c| status::Cause {
                    reason: c.reason,
                    message: c.message.clone(),
                    field: c.field.clone(),
                })
                .collect()
        };
        let details = match self {
            ApiError::NotFound(s) | ApiError::AlreadyExists(s) | ApiError::Conflict { subject: s, .. } => {
                Some(Details {
                    name: s.name.clone(),
                    group: s.group.clone(),
                    kind: s.kind.clone(),
                    ..Details::default()
                })
            }
            ApiError::ApplyConflict { subject, causes: c, .. } => Some(Details {
                name: subject.name.clone(),
                group: subject.group.clone(),
                kind: subject.kind.clone(),
                causes: causes(c),
                ..Details::default()
            }),
            ApiError::Invalid {
                group,
                kind,
                name,
                causes: c,
            } => Some(Details {
                name: name.clone(),
                group: group.clone(),
                kind: kind.clone(),
                causes: causes(c),
                ..Details::default()
            }),
            ApiError::TooManyRequests { retry_after } => Some(Details {
                retry_after_seconds: i32::try_from(*retry_after).unwrap_or(i32::MAX),
                ..Details::default()
            }),
            _ => None,
        };
        Status::failure(self.code().as_u16(), self.reason(), self.to_string(), details)
    }
}

impl From<skiff_store::Error> for ApiError {
    fn from(error: skiff_store::Error) -> ApiError {
        use skiff_store::Error as E;
        match error {
            E::Compacted { compact_revision } => ApiError::Expired(format!(
                "The resourceVersion for the provided list is too old; the oldest available is {compact_revision}"
            )),
            E::FutureRevision { requested, current } => ApiError::BadRequest(format!(
                "resourceVersion {requested} is newer than the current resourceVersion {current}"
            )),
            E::NotLeader { .. } | E::Unavailable { .. } | E::Shutdown => {
                tracing::warn!(%error, "store unavailable");
                ApiError::Unavailable
            }
            // Not 503: clients retry those on their own (kube-rs does),
            // and a write that may have been applied must not be applied
            // again after later writes.
            E::Indeterminate { .. } => {
                tracing::warn!(%error, "store write of unknown outcome");
                ApiError::Internal
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (self.code(), status.body()).into_response();
        // For the audit log, which records the failure's reason.
        response.extensions_mut().insert(status);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if matches!(self, ApiError::Unauthorized) {
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        if let ApiError::TooManyRequests { retry_after } = self {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(retry_after));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_kubernetes() {
        let e = ApiError::NotFound(Subject::new("apps", "deployments", "web"));
        assert_eq!(e.to_string(), "deployments.apps \"web\" not found");
        let e = ApiError::NotFound(Subject::new("", "pods", "p"));
        assert_eq!(e.to_string(), "pods \"p\" not found");
        let e = ApiError::conflict(Subject::new("", "configmaps", "c"));
        assert!(
            e.to_string()
                .starts_with("Operation cannot be fulfilled on configmaps \"c\": the object has been")
        );
        let e = ApiError::invalid("", "Pod", "p", vec![Cause::required("spec.containers")]);
        assert_eq!(e.to_string(), "Pod \"p\" is invalid: spec.containers: Required value");
        assert_eq!(e.status().details.unwrap().causes[0].field, "spec.containers");
        assert_eq!(e.status().code, 422);
    }
}
