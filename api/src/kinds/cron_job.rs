//! CronJobs (`batch/v1`).

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use super::{pod_spec, set_default, workload};
use crate::error::Cause;
use crate::meta;
use crate::meta::NameRule;
use crate::options::Part;
use crate::patch::schema;
use crate::printer::{
    AGE, CONTAINERS, Column, IMAGES, NAME, SELECTOR, age, at, col, containers_and_images, format_label_selector,
    len_at, name, since, str_at,
};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::batch::v1::CronJob>(),
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
        patch: Some(&schema::BATCH_V1_CRON_JOB),
    },
};

fn defaults(object: &mut Value) {
    super::default_status(object, json!({}));
    let Some(spec) = object.get_mut("spec") else { return };
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    workload::default_template(spec, "/jobTemplate/spec/template/spec");
}

/// A schedule, and the job template's pod spec.
fn validate(object: &Value, _old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    if meta::str_field(object, &["spec", "schedule"]).is_none_or(str::is_empty) {
        causes.push(Cause::required("spec.schedule"));
    }
    pod_spec::validate(
        object.pointer("/spec/jobTemplate/spec/template/spec"),
        "spec.jobTemplate.spec.template.spec",
        causes,
    );
}

const COLUMNS: &[Column] = &[
    NAME,
    col("Schedule", "string", "Cron schedule."),
    col("Timezone", "string", "Time zone of the schedule."),
    col("Suspend", "boolean", "Whether new runs are suspended."),
    col("Active", "integer", "Jobs currently running."),
    col("Last Schedule", "string", "Time since a job was last scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    let suspend = match at(obj, &["spec", "suspend"]).and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let last = match str_at(obj, &["status", "lastScheduleTime"]) {
        Some(t) => since(Some(t), now),
        None => "<none>".to_owned(),
    };
    let job_spec = at(obj, &["spec", "jobTemplate", "spec"]);
    let (containers, images) = containers_and_images(job_spec.and_then(|s| at(s, &["template", "spec"])));
    vec![
        name(obj),
        json!(str_at(obj, &["spec", "schedule"]).unwrap_or("")),
        json!(str_at(obj, &["spec", "timeZone"]).unwrap_or("<none>")),
        json!(suspend),
        json!(len_at(obj, &["status", "active"])),
        json!(last),
        age(obj, now),
        containers,
        images,
        json!(format_label_selector(job_spec.and_then(|s| s.get("selector")))),
    ]
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}
