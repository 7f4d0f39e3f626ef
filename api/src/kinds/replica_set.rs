//! ReplicaSets (`apps/v1`): kept at their replica count by the replicaset
//! controller.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use super::{set_default, workload};
use crate::error::Cause;
use crate::meta::NameRule;
use crate::options::Part;
use crate::patch::schema;
use crate::printer::{
    AGE, CONTAINERS, Column, IMAGES, NAME, SELECTOR, age, at, col, containers_and_images, desired_replicas,
    format_label_selector, int_at, name,
};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::apps::v1::ReplicaSet>(),
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
        patch: Some(&schema::APPS_V1_REPLICA_SET),
    },
};

fn defaults(object: &mut Value) {
    super::default_status(object, json!({"replicas": 0}));
    let Some(spec) = object.get_mut("spec") else { return };
    set_default(spec, "replicas", json!(1));
    workload::default_template(spec, "/template/spec");
}

fn validate(object: &Value, _old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    workload::validate(object, true, causes);
}

/// Also a ReplicationController's.
pub(super) const COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", "Number of pods wanted."),
    col("Current", "integer", "Number of pods that exist."),
    col("Ready", "integer", "Number of ready pods."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    row_selecting(obj, now, at(obj, &["spec", "selector"]))
}

/// The row of a set of replicas whose label selector is `selector`.
pub(super) fn row_selecting(obj: &Value, now: i128, selector: Option<&Value>) -> Vec<Value> {
    let (containers, images) = containers_and_images(at(obj, &["spec", "template", "spec"]));
    vec![
        name(obj),
        json!(desired_replicas(obj)),
        json!(int_at(obj, &["status", "replicas"])),
        json!(int_at(obj, &["status", "readyReplicas"])),
        age(obj, now),
        containers,
        images,
        json!(format_label_selector(selector)),
    ]
}

/// `status.replicas`, besides `metadata.namespace` (a
/// ReplicationController's too).
pub(super) fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    match field {
        "status.replicas" => Some(super::fields::int_at(object, &["status", "replicas"])),
        _ => super::fields::object_meta(object, field),
    }
}
