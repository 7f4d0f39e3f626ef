//! Content negotiation: which representation an `Accept` header asks for,
//! and rendering objects, lists and watch events in it.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::catalog::Resource;
use crate::error::ApiError;
use crate::status::Status;
use crate::table::{self, IncludeObject, Printing};
use crate::watch::WatchEvent;

/// What the client will read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
    /// `as=Table;g=meta.k8s.io`.
    Table(IncludeObject),
    /// `as=PartialObjectMetadata[List];g=meta.k8s.io`.
    Metadata,
}

const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const METADATA_CONTENT_TYPE: &str = "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io";
const METADATA_LIST_CONTENT_TYPE: &str = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io";

/// The first representation in `accept` this server can produce.
pub fn output(accept: Option<&str>, include_object: Option<&str>) -> Result<Output, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Output::Json);
    };
    for choice in accept.split(',') {
        let mut parts = choice.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        };
        let json_like = matches!(media.as_str(), "application/json" | "*/*" | "application/*");
        match (json_like, param("as"), param("g")) {
            (true, Some("Table"), Some("meta.k8s.io")) => {
                let include = match include_object {
                    Some("None") => IncludeObject::None,
                    Some("Object") => IncludeObject::Object,
                    _ => IncludeObject::Metadata,
                };
                return Ok(Output::Table(include));
            }
            (true, Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Ok(Output::Metadata);
            }
            (true, None, _) => return Ok(Output::Json),
            (false, None, _) if matches!(media.as_str(), "application/yaml" | "application/x-yaml") => {
                return Ok(Output::Yaml);
            }
            _ => {}
        }
    }
    Err(ApiError::NotAcceptable(
        "application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io".into(),
    ))
}

/// A response of `content_type`. JSON ends with a newline, as Go's
/// `json.Encoder` (and so kube-apiserver) ends it.
fn with_type(status: StatusCode, content_type: &'static str, mut body: Vec<u8>) -> Response {
    if content_type.starts_with("application/json") && body.last() != Some(&b'\n') {
        body.push(b'\n');
    }
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A value as JSON or YAML.
pub fn value(status: StatusCode, output: Output, body: &Value) -> Response {
    match output {
        Output::Yaml => match serde_yaml::to_string(body) {
            Ok(yaml) => with_type(status, "application/yaml", yaml.into_bytes()),
            Err(_) => ApiError::Internal.into_response(),
        },
        _ => with_type(status, "application/json", body.to_string().into_bytes()),
    }
}

/// One object in the requested representation.
pub fn object(status: StatusCode, output: Output, resource: &Resource, object: &Value) -> Response {
    match output {
        Output::Table(include) => {
            let rv = object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let body = table::table(Printing::of(resource), std::slice::from_ref(object), include, rv, None);
            with_type(status, TABLE_CONTENT_TYPE, body.json())
        }
        Output::Metadata => {
            let body = table::partial_object_metadata(object);
            with_type(status, METADATA_CONTENT_TYPE, body.to_string().into_bytes())
        }
        _ => value(status, output, object),
    }
}

/// A list in the requested representation.
pub fn list(
    output: Output,
    resource: &Resource,
    items: Vec<Value>,
    revision: u64,
    continue_token: Option<String>,
) -> Response {
    let rv = revision.to_string();
    match output {
        Output::Table(include) => {
            let body = table::table(Printing::of(resource), &items, include, &rv, continue_token.as_deref());
            with_type(StatusCode::OK, TABLE_CONTENT_TYPE, body.json())
        }
        Output::Metadata => {
            let items: Vec<Value> = items.iter().map(table::partial_object_metadata).collect();
            let body = json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": list_metadata(&rv, continue_token),
                "items": items,
            });
            with_type(
                StatusCode::OK,
                METADATA_LIST_CONTENT_TYPE,
                body.to_string().into_bytes(),
            )
        }
        _ => {
            let body = json!({
                "kind": resource.list_kind,
                "apiVersion": resource.api_version(),
                "metadata": list_metadata(&rv, continue_token),
                "items": items,
            });
            value(StatusCode::OK, output, &body)
        }
    }
}

fn list_metadata(rv: &str, continue_token: Option<String>) -> Value {
    let mut metadata = json!({"resourceVersion": rv});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    metadata
}

/// A `metav1.Status` as JSON (in Go's field order) or YAML.
pub fn status(code: StatusCode, output: Output, status: &Status) -> Response {
    match output {
        Output::Yaml => match serde_yaml::to_string(status) {
            Ok(yaml) => with_type(code, "application/yaml", yaml.into_bytes()),
            Err(_) => ApiError::Internal.into_response(),
        },
        _ => with_type(code, "application/json", status.body()),
    }
}

/// One watch event's line, `{"type":…,"object":…}` and a newline, its
/// object in the requested representation. Tables carry column
/// definitions only in the first event.
pub fn watch_line(output: Output, resource: &Resource, event: &WatchEvent, first: bool) -> Bytes {
    let object: Vec<u8> = match output {
        Output::Table(include) if event.kind != "ERROR" && event.kind != "BOOKMARK" => {
            let object = &event.object.object;
            let rv = object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let table = table::table(Printing::of(resource), std::slice::from_ref(object), include, rv, None);
            if first {
                table
            } else {
                table.without_column_definitions()
            }
            .json()
        }
        Output::Metadata if event.kind != "ERROR" => table::partial_object_metadata(&event.object.object)
            .to_string()
            .into_bytes(),
        _ => return event.line(),
    };
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(event.kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(&object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_a_representation() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            output(Some(kubectl_get), None).unwrap(),
            Output::Table(IncludeObject::Metadata)
        );
        assert_eq!(output(None, None).unwrap(), Output::Json);
        assert_eq!(output(Some("application/yaml"), None).unwrap(), Output::Yaml);
        assert_eq!(
            output(Some("application/vnd.kubernetes.protobuf, application/json"), None).unwrap(),
            Output::Json
        );
        assert_eq!(
            output(
                Some("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"),
                None
            )
            .unwrap(),
            Output::Metadata
        );
        assert!(output(Some("application/vnd.kubernetes.protobuf"), None).is_err());
        assert!(output(Some("text/html"), None).is_err());
    }
}
