//! Object metadata as the server owns it: reading it from raw JSON, the
//! fields the server sets (uid, timestamps, generation, resourceVersion),
//! and the name rules Kubernetes applies.

use serde_json::{Map, Value};

use crate::error::Cause;

/// `obj` as a JSON object, replaced by an empty one if it is anything else.
pub fn object_mut(obj: &mut Value) -> &mut Map<String, Value> {
    match obj {
        Value::Object(map) => map,
        other => {
            *other = Value::Object(Map::new());
            object_mut(other)
        }
    }
}

/// `metadata` of an object, created if missing or not an object.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    object_mut(
        object_mut(obj)
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new())),
    )
}

pub fn str_field<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(obj, |v, key| v.get(key))?.as_str()
}

pub fn name(obj: &Value) -> Option<&str> {
    str_field(obj, &["metadata", "name"]).filter(|s| !s.is_empty())
}

pub fn namespace(obj: &Value) -> Option<&str> {
    str_field(obj, &["metadata", "namespace"]).filter(|s| !s.is_empty())
}

pub fn uid(obj: &Value) -> Option<&str> {
    str_field(obj, &["metadata", "uid"])
}

pub fn resource_version(obj: &Value) -> Option<&str> {
    str_field(obj, &["metadata", "resourceVersion"]).filter(|s| !s.is_empty())
}

pub fn set_resource_version(obj: &mut Value, revision: u64) {
    metadata_mut(obj).insert("resourceVersion".into(), Value::String(revision.to_string()));
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The current time as Kubernetes writes `metav1.Time`: RFC 3339, seconds.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}

/// Everything but `metadata` and `status`: a change here bumps `generation`.
pub fn spec_part(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

fn is_dns1123_label(s: &str) -> bool {
    s.len() <= DNS1123_LABEL_MAX && is_dns1123_label_shape(s)
}

/// A label's characters, of any length: Kubernetes' subdomain check is a
/// regex and the total length, with no limit per dot-separated part.
fn is_dns1123_label_shape(s: &str) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// How a kind's names are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤ 63 (Namespace, Node lease names…).
    Dns1123Label,
    /// Labels joined by dots, ≤ 253 (most kinds).
    Dns1123Subdomain,
    /// Like a label but starting with a letter (Service).
    Dns1035Label,
    /// Anything that is a valid path segment (RBAC kinds).
    PathSegment,
}

impl NameRule {
    /// Why `name` is not allowed, in Kubernetes' words; `None` if it is.
    pub fn check(self, name: &str) -> Option<String> {
        match self {
            NameRule::Dns1123Label if !is_dns1123_label(name) => Some(format!(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?'){}",
                too_long(name, DNS1123_LABEL_MAX)
            )),
            NameRule::Dns1035Label
                if !is_dns1123_label(name) || !name.as_bytes().first().is_some_and(u8::is_ascii_lowercase) =>
            {
                Some(format!(
                    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?'){}",
                    too_long(name, DNS1123_LABEL_MAX)
                ))
            }
            NameRule::Dns1123Subdomain
                if name.is_empty()
                    || name.len() > DNS1123_SUBDOMAIN_MAX
                    || !name.split('.').all(is_dns1123_label_shape) =>
            {
                Some(format!(
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'){}",
                    too_long(name, DNS1123_SUBDOMAIN_MAX)
                ))
            }
            NameRule::PathSegment if name.is_empty() || name == "." || name == ".." || name.contains(['/', '%']) => {
                Some("may not be '.' or '..' and may not contain '/' or '%'".into())
            }
            _ => None,
        }
    }
}

fn too_long(name: &str, max: usize) -> String {
    if name.len() > max {
        format!("; must be no more than {max} characters")
    } else {
        String::new()
    }
}

const LABEL_VALUE_MAX: usize = 63;
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !s.is_empty()
        && s.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Whether `key` is a qualified name: `[prefix/]name`, the prefix a DNS
/// subdomain.
pub fn is_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => NameRule::Dns1123Subdomain.check(prefix).is_none() && is_qualified_name_part(name),
        None => is_qualified_name_part(key),
    }
}

/// Checks `metadata.labels` and `metadata.annotations`.
pub fn check_labels_and_annotations(obj: &Value, causes: &mut Vec<Cause>) {
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            if !is_qualified_name(key) {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    key,
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
            let value = value.as_str().unwrap_or_default();
            let ok = value.is_empty() || is_qualified_name_part(value);
            if !ok || value.len() > LABEL_VALUE_MAX {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    value,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?'); must be no more than 63 characters",
                ));
            }
        }
    }
    if let Some(annotations) = obj.pointer("/metadata/annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (key, value) in annotations {
            if !is_qualified_name(key) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    key,
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
            total += key.len() + value.as_str().map(str::len).unwrap_or_default();
        }
        if total > ANNOTATIONS_MAX_BYTES {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                message: format!("Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
                field: "metadata.annotations".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_rules() {
        assert!(NameRule::Dns1123Subdomain.check("web.example-1").is_none());
        assert!(NameRule::Dns1123Subdomain.check("Web").is_some());
        assert!(NameRule::Dns1123Subdomain.check(&"a".repeat(254)).is_some());
        // No limit per part, as in Kubernetes (a Job the Python client's
        // e2e suite names runs past 63 characters).
        assert!(NameRule::Dns1123Subdomain.check(&"a".repeat(100)).is_none());
        assert!(NameRule::Dns1123Label.check(&"a".repeat(64)).is_some());
        assert!(NameRule::Dns1123Label.check("a.b").is_some());
        assert!(NameRule::Dns1035Label.check("1abc").is_some());
        assert!(NameRule::Dns1035Label.check("abc-1").is_none());
        assert!(NameRule::PathSegment.check("system:admin").is_none());
        assert!(NameRule::PathSegment.check("a/b").is_some());
    }

    #[test]
    fn labels_are_checked() {
        let mut causes = vec![];
        let obj = json!({"metadata": {"labels": {"app": "web", "skiff.dev/runtime": "wasm"}}});
        check_labels_and_annotations(&obj, &mut causes);
        assert!(causes.is_empty());
        let obj = json!({"metadata": {"labels": {"app": "x".repeat(64), "-bad": "ok", "a/b/c": ""}}});
        check_labels_and_annotations(&obj, &mut causes);
        assert_eq!(causes.len(), 3, "{causes:?}");
    }

    #[test]
    fn metadata_is_created_when_missing() {
        let mut obj = json!({"kind": "ConfigMap"});
        metadata_mut(&mut obj).insert("name".into(), json!("a"));
        assert_eq!(name(&obj), Some("a"));
        let mut obj = json!({"metadata": 5});
        set_resource_version(&mut obj, 7);
        assert_eq!(resource_version(&obj), Some("7"));
    }
}
