//! Jobs (`batch/v1`): unless `manualSelector` is set, the API generates the
//! selector from the Job's uid, and the template labels that match it.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use super::{set_default, workload};
use crate::error::Cause;
use crate::meta;
use crate::meta::NameRule;
use crate::options::{Part, WriteOptions};
use crate::patch::schema;
use crate::printer::{
    AGE, CONTAINERS, Column, IMAGES, NAME, SELECTOR, age, at, col, condition_true, containers_and_images,
    human_duration, int_at, name, parse_rfc3339, selector_string, str_at,
};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::batch::v1::Job>(),
    ops: KindOps {
        name_rule: NameRule::Dns1123Subdomain,
        create_keeps_status: false,
        prepare_for_create,
        prepare_for_update: super::nothing_on_update,
        defaults,
        validate,
        deletion_grace: super::no_deletion_grace,
        spec_finalizers: false,
        delete_returns_object: false,
        unnamed_propagation: super::Unnamed::Orphan {
            warning: Some(ORPHAN_WARNING),
        },
        printer: Printer {
            columns: COLUMNS,
            row,
            conditions: super::no_row_conditions,
        },
        field_label,
        patch: Some(&schema::BATCH_V1_JOB),
    },
};

/// A Job without `manualSelector: true` selects its pods by its own uid:
/// the API generates the selector and the template labels that match it,
/// as kube-apiserver does.
fn prepare_for_create(job: &mut Value, _: &WriteOptions) {
    let uid = job.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    let name = job.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = meta::object_mut(spec.entry("template").or_insert_with(|| json!({})));
    let metadata = meta::object_mut(template.entry("metadata").or_insert_with(|| json!({})));
    let labels = meta::object_mut(metadata.entry("labels").or_insert_with(|| json!({})));
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels.insert(key.into(), value.clone());
    }
}

/// What kube-apiserver tells a client that deletes a Job without saying
/// what becomes of its pods.
const ORPHAN_WARNING: &str = "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning";

fn defaults(object: &mut Value) {
    super::default_status(object, json!({}));
    let Some(spec) = object.get_mut("spec") else { return };
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    // Neither set: one pod, to one completion.
    if spec.get("completions").is_none_or(Value::is_null) && spec.get("parallelism").is_none_or(Value::is_null) {
        spec["completions"] = json!(1);
    }
    set_default(spec, "parallelism", json!(1));
    workload::default_template(spec, "/template/spec");
}

fn validate(object: &Value, _old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    workload::validate(object, false, causes);
}

const COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "Summary of the job's state."),
    col("Completions", "string", "Succeeded pods out of required completions."),
    col("Duration", "string", "How long the job ran or has been running."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    let succeeded = int_at(obj, &["status", "succeeded"]);
    let completions = match at(obj, &["spec", "completions"]).and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(obj, &["spec", "parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = str_at(obj, &["status", "startTime"]).and_then(parse_rfc3339);
    let end = str_at(obj, &["status", "completionTime"]).and_then(parse_rfc3339);
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now - s),
        (Some(s), Some(e)) => human_duration(e - s),
    };
    let status = obj.get("status").unwrap_or(&Value::Null);
    let deleting = at(obj, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null());
    let state = if condition_true(status, "Complete") {
        "Complete"
    } else if condition_true(status, "Failed") {
        "Failed"
    } else if deleting {
        "Terminating"
    } else if condition_true(status, "Suspended") {
        "Suspended"
    } else if condition_true(status, "FailureTarget") {
        "FailureTarget"
    } else if condition_true(status, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (containers, images) = containers_and_images(at(obj, &["spec", "template", "spec"]));
    vec![
        name(obj),
        json!(state),
        json!(completions),
        json!(duration),
        age(obj, now),
        containers,
        images,
        json!(selector_string(at(obj, &["spec", "selector"]))),
    ]
}

/// `status.successful` (the count of succeeded pods), besides
/// `metadata.namespace`.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    match field {
        "status.successful" => Some(super::fields::int_at(object, &["status", "succeeded"])),
        _ => super::fields::object_meta(object, field),
    }
}
