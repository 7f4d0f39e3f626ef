//! Namespaces: the `kubernetes` finalizer in `spec.finalizers` holds a deleted
//! namespace (`Terminating`) until the namespace controller has emptied it.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::meta;
use crate::meta::NameRule;
use crate::patch::schema;
use crate::printer::{AGE, Column, NAME, age, col, name, str_at};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::core::v1::Namespace>(),
    ops: KindOps {
        name_rule: NameRule::Dns1123Label,
        create_keeps_status: false,
        prepare_for_create: super::nothing_on_create,
        prepare_for_update: super::nothing_on_update,
        defaults,
        validate: super::no_validation,
        deletion_grace: super::no_deletion_grace,
        spec_finalizers: true,
        delete_returns_object: true,
        unnamed_propagation: super::Unnamed::Background,
        printer: Printer {
            columns: COLUMNS,
            row,
            conditions: super::no_row_conditions,
        },
        field_label,
        patch: Some(&schema::CORE_V1_NAMESPACE),
    },
};

const COLUMNS: &[Column] = &[NAME, col("Status", "string", "Phase of the namespace."), AGE];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    vec![
        name(obj),
        json!(str_at(obj, &["status", "phase"]).unwrap_or("Active")),
        age(obj, now),
    ]
}

/// As `SetDefaults_Namespace`: the `kubernetes.io/metadata.name` label
/// always holds the name (so a label selector can pick a namespace by
/// name), `spec.finalizers` starts as `[kubernetes]`, the phase `Active`.
fn defaults(object: &mut Value) {
    if let Some(name) = meta::name(object).map(str::to_owned) {
        let metadata = meta::metadata_mut(object);
        let labels = meta::object_mut(metadata.entry("labels").or_insert_with(|| json!({})));
        labels.insert(NAME_LABEL.into(), json!(name));
    }
    let spec = meta::object_mut(meta::object_mut(object).entry("spec").or_insert_with(|| json!({})));
    spec.entry("finalizers").or_insert_with(|| json!(["kubernetes"]));
    if object.pointer("/status/phase").is_none() {
        object["status"] = json!({"phase": "Active"});
    }
}

const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// `status.phase`; a namespace has no namespace.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    (field == "status.phase").then(|| super::fields::string_at(object, &["status", "phase"]))
}
