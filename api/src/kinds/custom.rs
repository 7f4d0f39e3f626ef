//! Custom resources: the kinds CRDs define, and `skiff.dev` WasmPlugins.
//! They are pruned, defaulted and validated against their structural schema
//! ([`crate::structural`]), print name and age, take merge patches but not
//! strategic ones (415, as kube-apiserver answers), and select by
//! `metadata.name` and `metadata.namespace`.

use serde_json::Value;

use super::{KindOps, Printer};
use crate::meta::NameRule;
use crate::printer::{Column, NAME, age, col, name};

/// The hooks every custom resource shares.
pub static OPS: KindOps = KindOps {
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
    patch: None,
};

/// Name and age, as kube-apiserver prints custom resources without
/// printer columns.
const COLUMNS: &[Column] = &[NAME, col("Age", "date", "Time since the object was created.")];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    vec![name(obj), age(obj, now)]
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}
