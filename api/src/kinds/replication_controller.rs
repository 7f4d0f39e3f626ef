//! ReplicationControllers (core/v1): ReplicaSets' predecessors, with an
//! equality selector (a plain label map). The replicaset controller runs
//! them too.

use serde_json::{Map, Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use super::{replica_set, set_default, workload};
use crate::error::Cause;
use crate::meta::NameRule;
use crate::options::Part;
use crate::patch::schema;
use crate::printer::at;

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::core::v1::ReplicationController>(),
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
        unnamed_propagation: super::Unnamed::Orphan { warning: None },
        printer: Printer {
            columns: replica_set::COLUMNS,
            row,
            conditions: super::no_row_conditions,
        },
        field_label: replica_set::field_label,
        patch: Some(&schema::CORE_V1_REPLICATION_CONTROLLER),
    },
};

/// As `SetDefaults_ReplicationController`: one replica, and an empty
/// selector or empty labels taken from the template's labels.
fn defaults(object: &mut Value) {
    super::default_status(object, json!({"replicas": 0}));
    let template_labels = object
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|l| !l.is_empty()))
        .cloned();
    if let Some(labels) = &template_labels {
        let metadata = crate::meta::metadata_mut(object);
        if metadata
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            metadata.insert("labels".into(), labels.clone());
        }
    }
    let Some(spec) = object.get_mut("spec") else { return };
    set_default(spec, "replicas", json!(1));
    if let Some(labels) = template_labels
        && spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
    {
        spec["selector"] = labels;
    }
    workload::default_template(spec, "/template/spec");
}

/// As `ValidateReplicationControllerSpec`: a selector that is not empty and
/// matches the template's labels, a template whose pods restart always.
fn validate(object: &Value, _old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    workload::validate(object, false, causes);
    let selector = object.pointer("/spec/selector").and_then(Value::as_object);
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        causes.push(Cause::required("spec.selector"));
        return;
    };
    let Some(template) = object.pointer("/spec/template").filter(|t| !t.is_null()) else {
        causes.push(Cause::required("spec.template"));
        return;
    };
    let labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
        causes.push(workload::selector_mismatch(&labels));
    }
    let restart = template.pointer("/spec/restartPolicy").and_then(Value::as_str);
    if let Some(policy) = restart.filter(|p| *p != "Always") {
        causes.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
}

/// A ReplicaSet's row, with the equality selector as the selector.
fn row(obj: &Value, now: i128) -> Vec<Value> {
    let selector = at(obj, &["spec", "selector"]).map(|labels| json!({"matchLabels": labels}));
    replica_set::row_selecting(obj, now, selector.as_ref())
}
