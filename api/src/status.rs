//! `metav1.Status`, the body of every error and of some successes, encoded
//! as kube-apiserver encodes it.
//!
//! Clients and scripts compare the text of these bodies (the Python
//! client's `create_from_yaml` tests do), so the fields come in the order
//! Go declares them (`kind`, `apiVersion`, `metadata`, `status`, `message`,
//! `reason`, `details`, `code`), empty ones are left out as Go's
//! `omitempty` leaves them out, and the JSON ends with the newline Go's
//! `json.Encoder` writes. A `serde_json::Value` would sort the keys, so
//! this is a typed struct, serialized straight to bytes.

use serde::Serialize;

/// A `metav1.Status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// An empty `ListMeta`, which Go writes as `{}`.
    pub metadata: Empty,
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

/// `metav1.StatusDetails`: what the status is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// A kind, or for a deletion the resource's plural name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
    /// How long a client should wait before it asks again.
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "no_wait")]
    pub retry_after_seconds: i32,
}

fn no_wait(seconds: &i32) -> bool {
    *seconds == 0
}

/// `metav1.StatusCause`: one field's part in a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cause {
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// A struct with no fields, written `{}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

impl Status {
    pub fn failure(code: u16, reason: &'static str, message: String, details: Option<Details>) -> Status {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: Empty {},
            status: "Failure",
            message,
            reason,
            details,
            code,
        }
    }

    /// A success, with `code` when kube-apiserver writes one (0 for none).
    pub fn success(code: u16, details: Option<Details>) -> Status {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: Empty {},
            status: "Success",
            message: String::new(),
            reason: "",
            details,
            code,
        }
    }

    /// The JSON text of a response body, with Go's trailing newline.
    pub fn body(&self) -> Vec<u8> {
        let mut json = self.json();
        json.push(b'\n');
        json
    }

    /// The JSON text to embed in another document (a watch event).
    pub fn json(&self) -> Vec<u8> {
        // A struct of strings and numbers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// As a JSON value, for a body that embeds the status (a watch event).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_what_kube_apiserver_writes() {
        let status = Status::failure(
            404,
            "NotFound",
            "configmaps \"x\" not found".into(),
            Some(Details {
                name: "x".into(),
                kind: "configmaps".into(),
                ..Details::default()
            }),
        );
        assert_eq!(
            String::from_utf8(status.body()).unwrap(),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\
             \"message\":\"configmaps \\\"x\\\" not found\",\"reason\":\"NotFound\",\
             \"details\":{\"name\":\"x\",\"kind\":\"configmaps\"},\"code\":404}\n"
        );
        let gone = Status::success(
            0,
            Some(Details {
                name: "web".into(),
                group: "apps".into(),
                kind: "deployments".into(),
                uid: "u-1".into(),
                ..Details::default()
            }),
        );
        assert_eq!(
            String::from_utf8(gone.body()).unwrap(),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Success\",\
             \"details\":{\"name\":\"web\",\"group\":\"apps\",\"kind\":\"deployments\",\"uid\":\"u-1\"}}\n"
        );
    }
}
