//! DaemonSets (`apps/v1`): one pod per eligible node.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use super::{set_default, workload};
use crate::error::Cause;
use crate::meta;
use crate::meta::NameRule;
use crate::options::Part;
use crate::patch::schema;
use crate::printer::{
    AGE, CONTAINERS, Column, IMAGES, NAME, SELECTOR, age, at, col, containers_and_images, format_label_selector,
    format_labels, int_at, name,
};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::apps::v1::DaemonSet>(),
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
        patch: Some(&schema::APPS_V1_DAEMON_SET),
    },
};

fn defaults(object: &mut Value) {
    super::default_status(
        object,
        json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}),
    );
    let Some(spec) = object.get_mut("spec") else { return };
    set_default(spec, "revisionHistoryLimit", json!(10));
    let strategy = meta::object_mut(
        meta::object_mut(spec)
            .entry("updateStrategy")
            .or_insert_with(|| json!({})),
    );
    strategy.entry("type").or_insert_with(|| json!("RollingUpdate"));
    if strategy.get("type") == Some(&json!("RollingUpdate")) {
        let rolling = meta::object_mut(strategy.entry("rollingUpdate").or_insert_with(|| json!({})));
        rolling.entry("maxUnavailable").or_insert_with(|| json!(1));
        rolling.entry("maxSurge").or_insert_with(|| json!(0));
    }
    workload::default_template(spec, "/template/spec");
}

fn validate(object: &Value, _old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    workload::validate(object, true, causes);
}

const COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", "Nodes that should run the daemon pod."),
    col("Current", "integer", "Nodes running at least one daemon pod."),
    col("Ready", "integer", "Nodes whose daemon pod is ready."),
    col("Up-to-date", "integer", "Nodes running the current template."),
    col("Available", "integer", "Nodes whose daemon pod is available."),
    col("Node Selector", "string", "Node labels the pods require."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    let (containers, images) = containers_and_images(at(obj, &["spec", "template", "spec"]));
    let status = |key: &str| json!(int_at(obj, &["status", key]));
    vec![
        name(obj),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        json!(format_labels(at(obj, &["spec", "template", "spec", "nodeSelector"]))),
        age(obj, now),
        containers,
        images,
        json!(format_label_selector(at(obj, &["spec", "selector"]))),
    ]
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}
