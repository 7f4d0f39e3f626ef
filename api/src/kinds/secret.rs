//! Secrets: `stringData` is write-only, merged into `data` on every write.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::error::Cause;
use crate::meta;
use crate::meta::NameRule;
use crate::options::Part;
use crate::patch::schema;
use crate::printer::{AGE, Column, NAME, age, col, len_at, name, str_at};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::core::v1::Secret>(),
    ops: KindOps {
        name_rule: NameRule::Dns1123Subdomain,
        create_keeps_status: false,
        prepare_for_create: super::nothing_on_create,
        prepare_for_update: super::nothing_on_update,
        defaults,
        validate,
        deletion_grace: super::no_deletion_grace,
        spec_finalizers: false,
        delete_returns_object: false,
        unnamed_propagation: super::Unnamed::Background,
        printer: Printer {
            columns: COLUMNS,
            row,
            conditions: super::no_row_conditions,
        },
        field_label,
        patch: Some(&schema::CORE_V1_SECRET),
    },
};

const COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "Type of the secret."),
    col("Data", "integer", "Number of data entries."),
    AGE,
];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    vec![
        name(obj),
        json!(str_at(obj, &["type"]).unwrap_or("Opaque")),
        json!(len_at(obj, &["data"])),
        age(obj, now),
    ]
}

fn defaults(secret: &mut Value) {
    super::set_default(secret, "type", json!("Opaque"));
    merge_string_data(secret);
}

/// A Secret's `stringData` is write-only, as in Kubernetes: its entries
/// are encoded into `data` (overriding keys there) and it is not stored.
/// One that is not a map of strings is left for validation to refuse.
fn merge_string_data(secret: &mut Value) {
    use base64::Engine;
    let Some(strings) = secret.get("stringData").and_then(Value::as_object) else {
        return;
    };
    if !strings.values().all(Value::is_string) {
        return;
    }
    let encoded: Vec<(String, Value)> = strings
        .iter()
        .map(|(key, value)| {
            let text = value.as_str().unwrap_or_default();
            (
                key.clone(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            )
        })
        .collect();
    let map = meta::object_mut(secret);
    map.remove("stringData");
    let data = map.entry("data").or_insert_with(|| json!({}));
    if data.is_null() {
        *data = json!({});
    }
    if let Some(data) = data.as_object_mut() {
        data.extend(encoded);
    }
}

/// `stringData` left over after defaulting was not a map of strings.
fn validate(object: &Value, _old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    if let Some(strings) = object.get("stringData") {
        causes.push(Cause::invalid(
            "stringData",
            strings.to_string(),
            "must be a map of keys to string values",
        ));
    }
}

/// `type`, besides `metadata.namespace`.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    match field {
        "type" => Some(super::fields::string_at(object, &["type"])),
        _ => super::fields::object_meta(object, field),
    }
}
