//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`): the API server
//! accepts a CRD's names at once and reports it Established; serving its
//! versions is [`crate::crd`]'s work.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::meta::{self, NameRule};
use crate::options::{Part, WriteOptions};
use crate::patch::schema;
use crate::printer::{NAME_CREATED_AT, created_at_row};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(),
    ops: KindOps {
        name_rule: NameRule::Dns1123Subdomain,
        create_keeps_status: false,
        prepare_for_create,
        prepare_for_update,
        defaults: super::no_defaults,
        validate: super::no_validation,
        deletion_grace: super::no_deletion_grace,
        spec_finalizers: false,
        delete_returns_object: false,
        unnamed_propagation: super::Unnamed::Background,
        printer: Printer {
            columns: NAME_CREATED_AT,
            row: created_at_row,
            conditions: super::no_row_conditions,
        },
        field_label,
        patch: Some(&schema::APIEXTENSIONS_V1_CUSTOM_RESOURCE_DEFINITION),
    },
};

fn prepare_for_create(crd: &mut Value, _: &WriteOptions) {
    crd["status"] = status(crd);
}

/// The status follows the spec on every write but a status write.
fn prepare_for_update(crd: &mut Value, _old: &Value, part: Part, _: &WriteOptions) {
    if part != Part::Status {
        crd["status"] = status(crd);
    }
}

/// The status a CRD gets when written: its names accepted and established.
pub fn status(crd: &Value) -> Value {
    let now = meta::now_rfc3339();
    let storage: Vec<String> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(String::from))
        .collect();
    let mut accepted = crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({}));
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(str_at(crd, "/spec/names/kind").to_ascii_lowercase());
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{}List", str_at(crd, "/spec/names/kind")));
    }
    json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": storage,
    })
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}
