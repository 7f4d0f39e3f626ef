//! Nodes: registered by their agents with status, so a create keeps it.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::meta::NameRule;
use crate::patch::schema;
use crate::printer::{AGE, Column, NAME, age, at, bool_at, col, list_at, name, non_empty, str_at, wide};
use std::collections::BTreeSet;

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::core::v1::Node>(),
    ops: KindOps {
        name_rule: NameRule::Dns1123Subdomain,
        create_keeps_status: true,
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
        patch: Some(&schema::CORE_V1_NODE),
    },
};

const COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "Readiness and schedulability of the node."),
    col("Roles", "string", "Roles from node-role labels."),
    AGE,
    col("Version", "string", "Kubelet version."),
    wide("Internal-IP", "string", "First internal address."),
    wide("External-IP", "string", "First external address."),
    wide("OS-Image", "string", "Operating system image."),
    wide("Kernel-Version", "string", "Kernel version."),
    wide("Container-Runtime", "string", "Container runtime and version."),
];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    let status = obj.get("status").unwrap_or(&Value::Null);
    let mut state: Vec<&str> = Vec::new();
    if let Some(c) = list_at(status, &["conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == Some("Ready"))
    {
        state.push(if str_at(c, &["status"]) == Some("True") {
            "Ready"
        } else {
            "NotReady"
        });
    } else {
        state.push("Unknown");
    }
    if bool_at(obj, &["spec", "unschedulable"]) {
        state.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = at(obj, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_owned());
                }
            } else if let Some(v) = value.as_str().filter(|v| !v.is_empty() && key == "kubernetes.io/role") {
                roles.insert(v.to_owned());
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |kind: &str| {
        list_at(status, &["addresses"])
            .iter()
            .find(|a| str_at(a, &["type"]) == Some(kind))
            .and_then(|a| str_at(a, &["address"]))
            .unwrap_or("<none>")
            .to_owned()
    };
    let info = |key: &str| non_empty(status, &["nodeInfo", key]).unwrap_or("<unknown>");
    vec![
        name(obj),
        json!(state.join(",")),
        json!(roles),
        age(obj, now),
        json!(str_at(status, &["nodeInfo", "kubeletVersion"]).unwrap_or("")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// `spec.unschedulable`; a node has no namespace.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    (field == "spec.unschedulable").then(|| super::fields::bool_at(object, &["spec", "unschedulable"]))
}
