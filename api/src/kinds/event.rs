//! Events, core/v1 and events.k8s.io/v1: the same record under two sets of
//! field names (`involvedObject` and `regarding`, `message` and `note`,
//! `source` and `deprecatedSource`). skiff serves core/v1; [`EVENTS_V1`]
//! holds the newer group's hooks for when it is served.

use serde_json::{Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::meta::NameRule;
use crate::patch::schema;
use crate::printer::{Column, NAME, col, int_at, name, non_empty, since, str_at, wide};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::core::v1::Event>(),
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
        patch: Some(&schema::CORE_V1_EVENT),
    },
};

/// The hooks of events.k8s.io/v1 Events (not served yet).
pub static EVENTS_V1: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::events::v1::Event>(),
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
        field_label: events_v1_field_label,
        patch: Some(&schema::EVENTS_V1_EVENT),
    },
};

const COLUMNS: &[Column] = &[
    col("Last Seen", "string", "Time since the event was last observed."),
    col("Type", "string", "Normal or Warning."),
    col("Reason", "string", "Short machine-readable reason."),
    col("Object", "string", "The object the event is about."),
    wide("Subobject", "string", "Part of the object the event is about."),
    wide("Source", "string", "Component that reported the event."),
    col("Message", "string", "Human-readable description."),
    wide("First Seen", "string", "Time since the event was first observed."),
    wide("Count", "integer", "Number of occurrences."),
    Column { priority: 1, ..NAME },
];

/// Core/v1 and events.k8s.io/v1 Events print alike; the latter renames
/// fields (`regarding`, `note`, `deprecated*`).
fn row(obj: &Value, now: i128) -> Vec<Value> {
    let field = |core: &str, events: &str| obj.get(core).or_else(|| obj.get(events));
    let time = |core: &str, events: &str| field(core, events).and_then(Value::as_str).filter(|s| !s.is_empty());
    let first = match time("firstTimestamp", "deprecatedFirstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(non_empty(obj, &["eventTime"]), now),
    };
    let mut last = match time("lastTimestamp", "deprecatedLastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = field("count", "deprecatedCount").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = obj.get("series").filter(|s| s.is_object()) {
        last = since(str_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }
    let regarding = field("involvedObject", "regarding").unwrap_or(&Value::Null);
    let kind = str_at(regarding, &["kind"]).unwrap_or("").to_lowercase();
    let target = match non_empty(regarding, &["name"]) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let source = field("source", "deprecatedSource").unwrap_or(&Value::Null);
    let reporting = |core: &str, events: &str| field(core, events).and_then(Value::as_str).unwrap_or("");
    let component = non_empty(source, &["component"]).unwrap_or(reporting("reportingComponent", "reportingController"));
    let instance = non_empty(source, &["host"]).unwrap_or(reporting("reportingInstance", "reportingInstance"));
    let source_cell = if instance.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {instance}")
    };
    let message = field("message", "note").and_then(Value::as_str).unwrap_or("").trim();
    vec![
        json!(last),
        json!(str_at(obj, &["type"]).unwrap_or("")),
        json!(str_at(obj, &["reason"]).unwrap_or("")),
        json!(target),
        json!(str_at(regarding, &["fieldPath"]).unwrap_or("")),
        json!(source_cell),
        json!(message),
        json!(first),
        json!(count),
        name(obj),
    ]
}

/// `involvedObject.*`, `reason`, `reportingComponent`, `source`, `type`.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
        .or_else(|| event_field(object, field, "involvedObject", "reportingComponent", "source"))
}

/// The same fields under events.k8s.io's names.
fn events_v1_field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
        .or_else(|| event_field(object, field, "regarding", "reportingController", "deprecatedSource"))
}

/// An Event's selectable fields other than metadata; `None` when unsupported.
/// `regarding` is the object-reference field (`involvedObject` in core/v1),
/// `reporting` the reporting-controller field and `source` the legacy
/// source struct.
fn event_field(object: &Value, field: &str, regarding: &str, reporting: &str, source: &str) -> Option<Option<String>> {
    if let Some(sub) = field.strip_prefix(regarding).and_then(|rest| rest.strip_prefix('.')) {
        return matches!(
            sub,
            "kind" | "namespace" | "name" | "uid" | "apiVersion" | "resourceVersion" | "fieldPath"
        )
        .then(|| super::fields::string_at(object, &[regarding, sub]));
    }
    match field {
        "reason" | "type" => Some(super::fields::string_at(object, &[field])),
        f if f == reporting => Some(super::fields::string_at(object, &[reporting])),
        "source" => Some(
            super::fields::string_at(object, &[source, "component"])
                .filter(|s| !s.is_empty())
                .or_else(|| super::fields::string_at(object, &[reporting])),
        ),
        _ => None,
    }
}
