//! IngressClasses (`networking.k8s.io/v1`): which controller serves an Ingress;
//! `skiff` is bootstrapped.

use serde_json::Value;

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::meta::NameRule;
use crate::patch::schema;
use crate::printer::{Column, NAME, age, col, name};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::networking::v1::IngressClass>(),
    ops: KindOps {
        name_rule: NameRule::Dns1123Subdomain,
        create_keeps_status: false,
        prepare_for_create: super::nothing_on_create,
        prepare_for_update: super::nothing_on_update,
        defaults: super::no_defaults,
        validate: super::no_validation,
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
        patch: Some(&schema::NETWORKING_V1_INGRESS_CLASS),
    },
};

/// Name and age, as for kinds without a printer of their own.
const COLUMNS: &[Column] = &[NAME, col("Age", "date", "Time since the object was created.")];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    vec![name(obj), age(obj, now)]
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}
