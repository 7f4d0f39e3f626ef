//! APIServices (`apiregistration.k8s.io/v1`): one per group version the
//! server answers for. The `apiservice` controller in `skiff-controllers`
//! registers the served ones (labelled
//! `kube-aggregator.kubernetes.io/automanaged`) and reports them
//! `Available`; skiff proxies no aggregated API, so one naming a Service
//! is reported unavailable.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::error::Cause;
use crate::meta::NameRule;
use crate::options::Part;
use crate::patch::schema;
use crate::printer::{AGE, Column, NAME, age, at, col, name, str_at};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService>(),
    ops: KindOps {
        // `v1.` (the core group's) is no DNS name; `validate` checks the
        // name against the spec.
        name_rule: NameRule::PathSegment,
        create_keeps_status: false,
        prepare_for_create: super::nothing_on_create,
        prepare_for_update: super::nothing_on_update,
        defaults: super::no_defaults,
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
        patch: Some(&schema::APIREGISTRATION_V1_API_SERVICE),
    },
};

/// As kube-aggregator's `ValidateAPIService`: the name is
/// `<version>.<group>`, priorities are positive (the group's at most
/// 20000), and a local APIService (no Service) has no CA bundle.
fn validate(object: &Value, _old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    let name = str_at(object, &["metadata", "name"]).unwrap_or_default();
    let group = str_at(object, &["spec", "group"]).unwrap_or_default();
    let version = str_at(object, &["spec", "version"]).unwrap_or_default();
    if version.is_empty() {
        causes.push(Cause::required("spec.version"));
    }
    if name != format!("{version}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            name,
            format!("must be `spec.version+\".\"+spec.group`: \"{version}.{group}\""),
        ));
    }
    let priority = |field: &str| at(object, &["spec", field]).and_then(Value::as_i64).unwrap_or(0);
    let group_priority = priority("groupPriorityMinimum");
    if !(1..=20000).contains(&group_priority) {
        causes.push(Cause::invalid(
            "spec.groupPriorityMinimum",
            group_priority,
            "must be positive and less than 20000",
        ));
    }
    let version_priority = priority("versionPriority");
    if version_priority < 1 {
        causes.push(Cause::invalid(
            "spec.versionPriority",
            version_priority,
            "must be positive and less than 1000",
        ));
    }
    let service = at(object, &["spec", "service"]).filter(|s| !s.is_null());
    if service.is_none() && at(object, &["spec", "caBundle"]).is_some_and(|c| !c.is_null()) {
        causes.push(Cause::forbidden(
            "spec.caBundle",
            "local APIServices may not have a caBundle",
        ));
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Service",
        "string",
        "The reference to the service that hosts this API endpoint.",
    ),
    col("Available", "string", "Whether this service is available."),
    AGE,
];

fn row(obj: &Value, now: i128) -> Vec<Value> {
    let service = match at(obj, &["spec", "service"]).filter(|s| !s.is_null()) {
        None => "Local".to_string(),
        Some(s) => format!(
            "{}/{}",
            str_at(s, &["namespace"]).unwrap_or_default(),
            str_at(s, &["name"]).unwrap_or_default()
        ),
    };
    let available = at(obj, &["status", "conditions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Available"))
        .map(|c| {
            let status = str_at(c, &["status"]).unwrap_or_default();
            match (status, str_at(c, &["reason"])) {
                ("True", _) | (_, None) => status.to_string(),
                (_, Some(reason)) => format!("{status} ({reason})"),
            }
        })
        .unwrap_or_else(|| "Unknown".to_string());
    vec![name(obj), json!(service), json!(available), age(obj, now)]
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}
