//! HorizontalPodAutoscalers (`autoscaling/v2`, and `autoscaling/v1` as a
//! view of the same objects): acted on by the controllers' autoscaler.
//!
//! Objects are stored as v2. A v1 client reads and writes them through
//! [`CONVERSION`], as kube-apiserver converts them: v1 has one target
//! (`targetCPUUtilizationPercentage`, the CPU utilization metric); the v2
//! fields it cannot hold ride in annotations on the v1 object
//! (`autoscaling.alpha.kubernetes.io/metrics`, `…/behavior`,
//! `…/conditions`, `…/current-metrics`) and come back when it is written,
//! so that a v1 edit keeps them. skiff writes the v2 JSON of those fields
//! into the annotations (Kubernetes writes older v2beta versions there).
//!
//! Deviation: `minReplicas: 0` is accepted without Kubernetes'
//! `HPAScaleToZero` feature gate and without the object or external
//! metric it demands: it is how a Wasm Deployment opts into scaling to
//! zero when idle.

use serde_json::{Map, Value, json};

use super::{BuiltinKind, KindOps, Printer, Typed, set_default};
use crate::catalog::Conversion;
use crate::error::Cause;
use crate::meta::NameRule;
use crate::options::Part;
use crate::patch::schema;
use crate::printer::{AGE, Column, NAME, age, col, int_at, name, str_at};

const fn ops(
    patch: &'static schema::TypeInfo,
    defaults: fn(&mut Value),
    validate: super::Validate,
    row: fn(&Value, i128) -> Vec<Value>,
) -> KindOps {
    KindOps {
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
        patch: Some(patch),
    }
}

/// The stored version.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(),
    ops: ops(
        &schema::AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER,
        defaults,
        validate,
        row,
    ),
};

/// The v1 view: its hooks run the v2 ones on the converted object.
pub static KIND_V1: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>(),
    ops: ops(
        &schema::AUTOSCALING_V1_HORIZONTAL_POD_AUTOSCALER,
        |object| {
            let mut v2 = v1_to_v2(object.clone());
            defaults(&mut v2);
            *object = v2_to_v1(v2);
        },
        |object, old, causes| {
            let old = old.map(|(o, part)| (v1_to_v2(o.clone()), part));
            validate(&v1_to_v2(object.clone()), old.as_ref().map(|(o, p)| (o, *p)), causes);
        },
        |object, now| row(&v1_to_v2(object.clone()), now),
    ),
};

/// How v1 objects are kept as v2.
pub const CONVERSION: Conversion = Conversion {
    from_storage: v2_to_v1,
    to_storage: v1_to_v2,
};

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

/// Whether a v2 metric is the CPU utilization a v1 object can hold.
fn is_cpu_utilization(metric: &Value) -> bool {
    metric["type"] == "Resource"
        && metric["resource"]["name"] == "cpu"
        && metric["resource"]["target"]["type"] == "Utilization"
}

fn take_annotation(object: &mut Value, key: &str) -> Option<Value> {
    let annotations = object.pointer_mut("/metadata/annotations")?.as_object_mut()?;
    let text = annotations.remove(key)?;
    if annotations.is_empty() {
        crate::meta::metadata_mut(object).remove("annotations");
    }
    serde_json::from_str(text.as_str()?).ok()
}

fn put_annotation(object: &mut Value, key: &str, value: &Value) {
    let metadata = crate::meta::metadata_mut(object);
    let slot = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Some(annotations) = slot.as_object_mut() {
        annotations.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// A stored (v2) object as a v1 client sees it.
pub fn v2_to_v1(mut object: Value) -> Value {
    object["apiVersion"] = json!("autoscaling/v1");
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = object.get("status").cloned();
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
    let (cpu, others): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(is_cpu_utilization);
    let mut v1_spec = json!({
        "scaleTargetRef": spec["scaleTargetRef"],
        "maxReplicas": spec["maxReplicas"],
    });
    if !spec["minReplicas"].is_null() {
        v1_spec["minReplicas"] = spec["minReplicas"].clone();
    }
    if let Some(target) = cpu
        .first()
        .map(|m| m["resource"]["target"]["averageUtilization"].clone())
    {
        v1_spec["targetCPUUtilizationPercentage"] = target;
    }
    if !others.is_empty() {
        put_annotation(&mut object, METRICS, &Value::Array(others));
    }
    if !spec["behavior"].is_null() {
        put_annotation(&mut object, BEHAVIOR, &spec["behavior"]);
    }
    object["spec"] = v1_spec;
    if let Some(status) = status.filter(|s| s.is_object()) {
        let current = status["currentMetrics"].as_array().cloned().unwrap_or_default();
        let (cpu, others): (Vec<Value>, Vec<Value>) = current
            .into_iter()
            .partition(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu");
        let mut v1_status = json!({
            "currentReplicas": status.get("currentReplicas").cloned().unwrap_or(json!(0)),
            "desiredReplicas": status.get("desiredReplicas").cloned().unwrap_or(json!(0)),
        });
        for field in ["observedGeneration", "lastScaleTime"] {
            if let Some(value) = status.get(field).filter(|v| !v.is_null()) {
                v1_status[field] = value.clone();
            }
        }
        if let Some(utilization) = cpu
            .first()
            .map(|m| m["resource"]["current"]["averageUtilization"].clone())
            .filter(|v| !v.is_null())
        {
            v1_status["currentCPUUtilizationPercentage"] = utilization;
        }
        if !others.is_empty() {
            put_annotation(&mut object, CURRENT_METRICS, &Value::Array(others));
        }
        if let Some(conditions) = status
            .get("conditions")
            .filter(|c| c.as_array().is_some_and(|c| !c.is_empty()))
        {
            put_annotation(&mut object, CONDITIONS, conditions);
        }
        object["status"] = v1_status;
    }
    object
}

/// A v1 object as it is stored (v2).
pub fn v1_to_v2(mut object: Value) -> Value {
    object["apiVersion"] = json!("autoscaling/v2");
    let others = take_annotation(&mut object, METRICS);
    let behavior = take_annotation(&mut object, BEHAVIOR);
    let conditions = take_annotation(&mut object, CONDITIONS);
    let current_others = take_annotation(&mut object, CURRENT_METRICS);
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut metrics = Vec::new();
    if let Some(target) = spec.get("targetCPUUtilizationPercentage").filter(|t| !t.is_null()) {
        metrics.push(json!({"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}));
    }
    metrics.extend(others.and_then(|o| o.as_array().cloned()).unwrap_or_default());
    let mut v2_spec = json!({
        "scaleTargetRef": spec["scaleTargetRef"],
        "maxReplicas": spec["maxReplicas"],
    });
    if !spec["minReplicas"].is_null() {
        v2_spec["minReplicas"] = spec["minReplicas"].clone();
    }
    if !metrics.is_empty() {
        v2_spec["metrics"] = Value::Array(metrics);
    }
    if let Some(behavior) = behavior {
        v2_spec["behavior"] = behavior;
    }
    object["spec"] = v2_spec;
    if let Some(status) = object.get("status").cloned().filter(|s| s.is_object()) {
        let mut v2_status = json!({
            "currentReplicas": status.get("currentReplicas").cloned().unwrap_or(json!(0)),
            "desiredReplicas": status.get("desiredReplicas").cloned().unwrap_or(json!(0)),
        });
        for field in ["observedGeneration", "lastScaleTime"] {
            if let Some(value) = status.get(field).filter(|v| !v.is_null()) {
                v2_status[field] = value.clone();
            }
        }
        let mut current = Vec::new();
        if let Some(utilization) = status.get("currentCPUUtilizationPercentage").filter(|v| !v.is_null()) {
            current.push(json!({"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": utilization}}}));
        }
        current.extend(current_others.and_then(|o| o.as_array().cloned()).unwrap_or_default());
        if !current.is_empty() {
            v2_status["currentMetrics"] = Value::Array(current);
        }
        if let Some(conditions) = conditions {
            v2_status["conditions"] = conditions;
        }
        object["status"] = v2_status;
    }
    object
}

/// Kubernetes' v2 defaults: one replica at least, CPU at 80% when no
/// metric is named, and whatever `behavior` leaves out.
fn defaults(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    let no_metrics = spec.get("metrics").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if no_metrics {
        spec["metrics"] = json!([{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    }
    if let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) {
        default_rules(
            behavior,
            "scaleUp",
            0,
            json!([
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ]),
        );
        default_rules(
            behavior,
            "scaleDown",
            300,
            json!([
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ]),
        );
    }
}

fn default_rules(behavior: &mut Value, direction: &str, window: i64, policies: Value) {
    set_default(behavior, direction, json!({}));
    let rules = &mut behavior[direction];
    set_default(rules, "stabilizationWindowSeconds", json!(window));
    set_default(rules, "selectPolicy", json!("Max"));
    set_default(rules, "policies", policies);
}

fn validate(object: &Value, _old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    let spec = &object["spec"];
    for field in ["kind", "name"] {
        if str_at(spec, &["scaleTargetRef", field]).is_none_or(str::is_empty) {
            causes.push(Cause::required(format!("spec.scaleTargetRef.{field}")));
        }
    }
    let min = spec["minReplicas"].as_i64().unwrap_or(1);
    let max = spec["maxReplicas"].as_i64().unwrap_or(0);
    if min < 0 {
        causes.push(Cause::invalid(
            "spec.minReplicas",
            min,
            "must be greater than or equal to 0",
        ));
    }
    if max < 1 {
        causes.push(Cause::invalid("spec.maxReplicas", max, "must be greater than 0"));
    } else if max < min {
        causes.push(Cause::invalid(
            "spec.maxReplicas",
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    for (i, metric) in spec["metrics"].as_array().into_iter().flatten().enumerate() {
        validate_metric(metric, &format!("spec.metrics[{i}]"), causes);
    }
    for direction in ["scaleUp", "scaleDown"] {
        let rules = &spec["behavior"][direction];
        if rules.is_null() {
            continue;
        }
        let path = format!("spec.behavior.{direction}");
        let window = rules["stabilizationWindowSeconds"].as_i64().unwrap_or(0);
        if !(0..=3600).contains(&window) {
            causes.push(Cause::invalid(
                format!("{path}.stabilizationWindowSeconds"),
                window,
                "must be less than or equal to 3600",
            ));
        }
        if let Some(select) = rules["selectPolicy"].as_str()
            && !["Max", "Min", "Disabled"].contains(&select)
        {
            causes.push(Cause::invalid(
                format!("{path}.selectPolicy"),
                select,
                "supported values: \"Disabled\", \"Max\", \"Min\"",
            ));
        }
        for (j, policy) in rules["policies"].as_array().into_iter().flatten().enumerate() {
            let at = format!("{path}.policies[{j}]");
            if !matches!(policy["type"].as_str(), Some("Pods" | "Percent")) {
                causes.push(Cause::invalid(
                    format!("{at}.type"),
                    policy["type"].as_str().unwrap_or(""),
                    "supported values: \"Percent\", \"Pods\"",
                ));
            }
            if policy["value"].as_i64().unwrap_or(0) <= 0 {
                causes.push(Cause::invalid(
                    format!("{at}.value"),
                    &policy["value"],
                    "must be greater than zero",
                ));
            }
            let period = policy["periodSeconds"].as_i64().unwrap_or(0);
            if !(1..=1800).contains(&period) {
                causes.push(Cause::invalid(
                    format!("{at}.periodSeconds"),
                    period,
                    "must be greater than zero and less than or equal to 1800",
                ));
            }
        }
    }
}

fn validate_metric(metric: &Value, path: &str, causes: &mut Vec<Cause>) {
    let target_ok = |target: &Value, utilization_allowed: bool| match target["type"].as_str() {
        Some("Utilization") if utilization_allowed => target["averageUtilization"].as_i64().is_some_and(|u| u > 0),
        Some("AverageValue") => !target["averageValue"].is_null(),
        Some("Value") => !target["value"].is_null(),
        _ => false,
    };
    match metric["type"].as_str() {
        Some("Resource") => {
            if str_at(metric, &["resource", "name"]).is_none_or(str::is_empty) {
                causes.push(Cause::required(format!("{path}.resource.name")));
            }
            if !target_ok(&metric["resource"]["target"], true) {
                causes.push(Cause::invalid(
                    format!("{path}.resource.target"),
                    &metric["resource"]["target"],
                    "must set averageUtilization (> 0) or averageValue",
                ));
            }
        }
        Some("Pods") => {
            if str_at(metric, &["pods", "metric", "name"]).is_none_or(str::is_empty) {
                causes.push(Cause::required(format!("{path}.pods.metric.name")));
            }
            if metric["pods"]["target"]["type"] != "AverageValue" || !target_ok(&metric["pods"]["target"], false) {
                causes.push(Cause::invalid(
                    format!("{path}.pods.target.type"),
                    &metric["pods"]["target"]["type"],
                    "must be AverageValue",
                ));
            }
        }
        Some("ContainerResource" | "Object" | "External") => {}
        other => causes.push(Cause::invalid(
            format!("{path}.type"),
            other.unwrap_or(""),
            "must be one of \"ContainerResource\", \"External\", \"Object\", \"Pods\", \"Resource\"",
        )),
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col("Reference", "string", "The target this autoscaler scales."),
    col("Targets", "string", "Current and target value of each metric."),
    col("MinPods", "string", "Lower bound on replicas."),
    col("MaxPods", "integer", "Upper bound on replicas."),
    col("Replicas", "integer", "Current number of replicas."),
    AGE,
];

/// `cpu: 40%/50%`, `requests-per-second: 12/10`, or `<unknown>` before a
/// figure; at most two, then `+ N more...`, as kubectl shows them.
fn targets(object: &Value) -> String {
    let specs = object["spec"]["metrics"].as_array().cloned().unwrap_or_default();
    let current = object["status"]["currentMetrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if specs.is_empty() {
        return "<none>".into();
    }
    let mut cells: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let now = current.get(i);
            let (name, target, figure) = match spec["type"].as_str() {
                Some("Resource") => {
                    let target = &spec["resource"]["target"];
                    let utilization = target["type"] == "Utilization";
                    let figure = now.and_then(|n| {
                        if utilization {
                            n["resource"]["current"]["averageUtilization"]
                                .as_i64()
                                .map(|u| format!("{u}%"))
                        } else {
                            n["resource"]["current"]["averageValue"].as_str().map(String::from)
                        }
                    });
                    let target = if utilization {
                        format!("{}%", target["averageUtilization"])
                    } else {
                        target["averageValue"].as_str().unwrap_or("").to_string()
                    };
                    (
                        spec["resource"]["name"].as_str().unwrap_or("").to_string(),
                        target,
                        figure,
                    )
                }
                Some("Pods") => (
                    spec["pods"]["metric"]["name"].as_str().unwrap_or("").to_string(),
                    spec["pods"]["target"]["averageValue"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    now.and_then(|n| n["pods"]["current"]["averageValue"].as_str().map(String::from)),
                ),
                other => (other.unwrap_or("").to_lowercase(), String::new(), None),
            };
            format!("{name}: {}/{target}", figure.unwrap_or_else(|| "<unknown>".into()))
        })
        .collect();
    if cells.len() > 2 {
        let more = cells.len() - 2;
        cells.truncate(2);
        return format!("{} + {more} more...", cells.join(", "));
    }
    cells.join(", ")
}

fn row(obj: &Value, now: i128) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        str_at(obj, &["spec", "scaleTargetRef", "kind"]).unwrap_or(""),
        str_at(obj, &["spec", "scaleTargetRef", "name"]).unwrap_or("")
    );
    let min = obj["spec"]["minReplicas"]
        .as_i64()
        .map_or("<unset>".to_string(), |m| m.to_string());
    vec![
        name(obj),
        json!(reference),
        json!(targets(obj)),
        json!(min),
        json!(int_at(obj, &["spec", "maxReplicas"])),
        json!(int_at(obj, &["status", "currentReplicas"])),
        age(obj, now),
    ]
}

/// `metadata.namespace` only.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    super::fields::object_meta(object, field)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn v1_round_trips_through_v2_keeping_what_it_cannot_hold() {
        let stored = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Pods", "pods": {"metric": {"name": "requests-per-second"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}},
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 70}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}],
            },
        });
        let v1 = v2_to_v1(stored.clone());
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 70);
        assert!(
            v1["metadata"]["annotations"][METRICS]
                .as_str()
                .unwrap()
                .contains("requests-per-second")
        );
        let back = v1_to_v2(v1);
        assert_eq!(back, stored);
    }

    #[test]
    fn targets_print_as_kubectl_prints_them() {
        let hpa = json!({
            "spec": {"metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
            ]},
            "status": {"currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12}}},
            ]},
        });
        assert_eq!(targets(&hpa), "cpu: 12%/50%, rps: <unknown>/10");
    }
}
