//! What the workload kinds (Deployment, ReplicaSet, StatefulSet, DaemonSet,
//! Job) check alike: their pod template, their selector, their replicas.

use serde_json::{Map, Value};

use crate::error::Cause;

/// The pod template's spec, the selector (`apps` kinds only, which must
/// select the template's labels) and a non-negative `spec.replicas`.
pub fn validate(object: &Value, check_selector: bool, causes: &mut Vec<Cause>) {
    super::pod_spec::validate(object.pointer("/spec/template/spec"), "spec.template.spec", causes);
    if check_selector {
        validate_selector(object, causes);
    }
    if let Some(replicas) = object.pointer("/spec/replicas").and_then(Value::as_i64)
        && replicas < 0
    {
        causes.push(Cause::invalid(
            "spec.replicas",
            replicas,
            "must be greater than or equal to 0",
        ));
    }
}

/// Defaults of the pod template at `pointer` under `spec`, if there is one.
pub fn default_template(spec: &mut Value, pointer: &str) {
    if let Some(pod) = spec.pointer_mut(pointer) {
        super::pod_spec::defaults(pod);
    }
}

pub fn validate_selector(object: &Value, causes: &mut Vec<Cause>) {
    let Some(selector) = object.pointer("/spec/selector").filter(|s| !s.is_null()) else {
        causes.push(Cause::required("spec.selector"));
        return;
    };
    let labels = object
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(Map::is_empty) && expressions.is_none_or(Vec::is_empty) {
        causes.push(Cause::invalid(
            "spec.selector",
            "{}",
            "empty selector is invalid for deployment",
        ));
        return;
    }
    let selects = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    if !selects {
        causes.push(selector_mismatch(&labels));
    }
}

/// The refusal of a template whose `labels` the selector does not pick.
pub fn selector_mismatch(labels: &Map<String, Value>) -> Cause {
    let rendered = labels
        .iter()
        .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",");
    Cause::invalid(
        "spec.template.metadata.labels",
        format!("map[{rendered}]"),
        "`selector` does not match template `labels`",
    )
}
