//! Helpers for the kinds' field-label hooks ([`super::KindOps::field_label`]),
//! which follow kube-apiserver's field label conversions.
//!
//! A hook answers `None` for a field its kind does not support and
//! `Some(value)` otherwise. Booleans and counters read as Kubernetes prints
//! them (`"false"`, `"0"`) when absent. `metadata.name` is answered for
//! every kind before the hook is asked.

use serde_json::Value;

fn at<'a>(object: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, key| v.get(key))
}

/// A string field, `None` when absent.
pub fn string_at(object: &Value, path: &[&str]) -> Option<String> {
    at(object, path).and_then(Value::as_str).map(str::to_owned)
}

/// A boolean field, `"false"` when absent.
pub fn bool_at(object: &Value, path: &[&str]) -> Option<String> {
    Some(at(object, path).and_then(Value::as_bool).unwrap_or(false).to_string())
}

/// An integer field, `"0"` when absent.
pub fn int_at(object: &Value, path: &[&str]) -> Option<String> {
    Some(at(object, path).and_then(Value::as_i64).unwrap_or(0).to_string())
}

/// `metadata.namespace`, which every kind but Node and Namespace supports.
pub fn object_meta(object: &Value, field: &str) -> Option<Option<String>> {
    (field == "metadata.namespace").then(|| string_at(object, &["metadata", "namespace"]))
}
