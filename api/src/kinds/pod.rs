//! Pods: created `Pending` with their QoS class and the default NoExecute
//! tolerations; a spec that is immutable but for images, tolerations and
//! `activeDeadlineSeconds`; a delete that waits for the node running the pod
//! to stop it.

use serde_json::{Value, json};

use super::fields::{bool_at, string_at};
use super::pod_spec::{self, DEFAULT_GRACE_SECONDS};
use super::{BuiltinKind, KindOps, Printer, Typed};
use crate::error::Cause;
use crate::meta;
use crate::meta::NameRule;
use crate::options::{DeleteOptions, Part, WriteOptions};
use crate::patch::schema;
use crate::printer::{
    AGE, Column, NAME, age, at, bool_at as bool_cell, col, condition_true, human_duration, int_at, list_at, name,
    non_empty, parse_rfc3339, str_at, wide,
};

/// The kind: its type and its hooks.
pub static KIND: BuiltinKind = BuiltinKind {
    typed: Typed::of::<k8s_openapi::api::core::v1::Pod>(),
    ops: KindOps {
        name_rule: NameRule::Dns1123Subdomain,
        create_keeps_status: false,
        prepare_for_create,
        prepare_for_update: super::nothing_on_update,
        defaults,
        validate,
        deletion_grace,
        spec_finalizers: false,
        delete_returns_object: true,
        unnamed_propagation: super::Unnamed::Background,
        printer: Printer {
            columns: COLUMNS,
            row,
            conditions: row_conditions,
        },
        field_label,
        patch: Some(&schema::CORE_V1_POD),
    },
};

/// How long a pod stays on a node that is not ready or unreachable
/// before it is evicted, unless it says otherwise (kube-apiserver's
/// DefaultTolerationSeconds admission).
const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// A new pod is `Pending`, with its QoS class and the default tolerations.
fn prepare_for_create(pod: &mut Value, _: &WriteOptions) {
    pod["status"] = json!({"phase": "Pending", "qosClass": qos_class(pod)});
    default_toleration_seconds(pod);
}

fn defaults(pod: &mut Value) {
    if let Some(spec) = pod.get_mut("spec") {
        pod_spec::defaults(spec);
    }
}

fn validate(pod: &Value, old: Option<(&Value, Part)>, causes: &mut Vec<Cause>) {
    pod_spec::validate(pod.get("spec"), "spec", causes);
    if let Some((old, part)) = old {
        validate_pod_update(old, pod, part == Part::Binding, causes);
    }
}

/// As in Kubernetes, a pod waits for its node to stop it only if one runs
/// it: bound, not finished, and with a grace period (the request's, else
/// the spec's) above zero.
fn deletion_grace(pod: &Value, options: &DeleteOptions) -> i64 {
    let grace = options
        .grace_period_seconds
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    let finished = matches!(meta::str_field(pod, &["status", "phase"]), Some("Succeeded" | "Failed"));
    let bound = meta::str_field(pod, &["spec", "nodeName"]).is_some_and(|n| !n.is_empty());
    if bound && !finished && grace > 0 { grace } else { 0 }
}

/// Adds the NoExecute tolerations for `node.kubernetes.io/not-ready` and
/// `node.kubernetes.io/unreachable` a pod does not already have.
fn default_toleration_seconds(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let covered = list.iter().any(|t| {
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let tolerated_key = t.get("key").and_then(Value::as_str).unwrap_or("");
            let exists = t.get("operator").and_then(Value::as_str) == Some("Exists");
            (effect.is_empty() || effect == "NoExecute")
                && (tolerated_key == key || (tolerated_key.is_empty() && exists))
        });
        if !covered {
            list.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

/// `Guaranteed` when every container's requests equal its limits for cpu
/// and memory, `BestEffort` when none has any, else `Burstable`.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|list| pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for container in containers {
        let requests = container.pointer("/resources/requests").and_then(Value::as_object);
        let limits = container.pointer("/resources/limits").and_then(Value::as_object);
        any |= requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty());
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// A pod's spec is immutable but for container images, tolerations
/// (additions) and activeDeadlineSeconds; a binding sets `nodeName`.
fn validate_pod_update(old: &Value, new: &Value, binding: bool, causes: &mut Vec<Cause>) {
    let strip = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(c) = c.as_object_mut() {
                    c.remove("image");
                }
            }
        }
        if let Some(s) = spec.as_object_mut() {
            s.remove("activeDeadlineSeconds");
            s.remove("tolerations");
            if binding {
                s.remove("nodeName");
            }
        }
        spec
    };
    if strip(old) != strip(new) {
        causes.push(Cause::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)",
        ));
    }
}

const COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Ready containers out of all containers."),
    col("Status", "string", "Summary of the pod's state."),
    col(
        "Restarts",
        "string",
        "Container restarts, and how long ago the last one was.",
    ),
    AGE,
    wide("IP", "string", "The pod's first IP address."),
    wide("Node", "string", "Node the pod is bound to."),
    wide(
        "Nominated Node",
        "string",
        "Node the scheduler nominated while preempting.",
    ),
    wide(
        "Readiness Gates",
        "string",
        "Readiness gates that are true, out of all gates.",
    ),
];

fn row(pod: &Value, now: i128) -> Vec<Value> {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let status = pod.get("status").unwrap_or(&Value::Null);
    let init_specs = list_at(spec, &["initContainers"]);
    let is_sidecar = |name: Option<&str>| {
        init_specs
            .iter()
            .any(|c| str_at(c, &["name"]) == name && str_at(c, &["restartPolicy"]) == Some("Always"))
    };
    let finished_at = |cs: &Value| str_at(cs, &["lastState", "terminated", "finishedAt"]).and_then(parse_rfc3339);

    let total = list_at(spec, &["containers"]).len()
        + init_specs
            .iter()
            .filter(|c| str_at(c, &["restartPolicy"]) == Some("Always"))
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart: Option<i128> = None;
    let mut last_sidecar_restart: Option<i128> = None;

    let phase = str_at(status, &["phase"]).unwrap_or("");
    let mut reason = non_empty(status, &["reason"]).unwrap_or(phase).to_owned();
    let gated = list_at(status, &["conditions"])
        .iter()
        .any(|c| str_at(c, &["type"]) == Some("PodScheduled") && str_at(c, &["reason"]) == Some("SchedulingGated"));
    if gated {
        reason = "SchedulingGated".to_owned();
    }

    let mut initializing = false;
    for (i, cs) in list_at(status, &["initContainerStatuses"]).iter().enumerate() {
        let count = int_at(cs, &["restartCount"]);
        restarts += count;
        last_restart = last_restart.max(finished_at(cs));
        let sidecar = is_sidecar(str_at(cs, &["name"]));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = last_sidecar_restart.max(finished_at(cs));
        }
        let terminated = at(cs, &["state", "terminated"]).filter(|t| t.is_object());
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && bool_cell(cs, &["started"]) {
            if bool_cell(cs, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        let waiting = non_empty(cs, &["state", "waiting", "reason"]);
        reason = if let Some(t) = terminated {
            match non_empty(t, &["reason"]) {
                Some(r) => format!("Init:{r}"),
                None if int_at(t, &["signal"]) != 0 => {
                    format!("Init:Signal:{}", int_at(t, &["signal"]))
                }
                None => format!("Init:ExitCode:{}", int_at(t, &["exitCode"])),
            }
        } else if let Some(w) = waiting.filter(|w| *w != "PodInitializing") {
            format!("Init:{w}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(status, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in list_at(status, &["containerStatuses"]).iter().rev() {
            restarts += int_at(cs, &["restartCount"]);
            last_restart = last_restart.max(finished_at(cs));
            let terminated = at(cs, &["state", "terminated"]).filter(|t| t.is_object());
            if let Some(w) = non_empty(cs, &["state", "waiting", "reason"]) {
                reason = w.to_owned();
            } else if let Some(t) = terminated {
                reason = match non_empty(t, &["reason"]) {
                    Some(r) => r.to_owned(),
                    None if int_at(t, &["signal"]) != 0 => {
                        format!("Signal:{}", int_at(t, &["signal"]))
                    }
                    None => format!("ExitCode:{}", int_at(t, &["exitCode"])),
                };
            } else if bool_cell(cs, &["ready"]) && at(cs, &["state", "running"]).is_some_and(Value::is_object) {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(status, "Ready") {
                "Running".to_owned()
            } else {
                "NotReady".to_owned()
            };
        }
    }

    let deleting = at(pod, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null());
    if deleting && str_at(status, &["reason"]) == Some("NodeLost") {
        reason = "Unknown".to_owned();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_owned();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };

    let ip = list_at(status, &["podIPs"])
        .first()
        .and_then(|ip| non_empty(ip, &["ip"]))
        .or_else(|| non_empty(status, &["podIP"]))
        .unwrap_or("<none>");
    let node = non_empty(spec, &["nodeName"]).unwrap_or("<none>");
    let nominated = non_empty(status, &["nominatedNodeName"]).unwrap_or("<none>");
    let gates = list_at(spec, &["readinessGates"]);
    let gates_cell = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let conditions = list_at(status, &["conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                let wanted = str_at(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| str_at(c, &["type"]) == wanted)
                    .is_some_and(|c| str_at(c, &["status"]) == Some("True"))
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age(pod, now),
        json!(ip),
        json!(node),
        json!(nominated),
        json!(gates_cell),
    ]
}

/// A finished pod's row carries a `Completed` condition.
fn row_conditions(obj: &Value) -> Option<Value> {
    let (reason, message) = match str_at(obj, &["status", "phase"]) {
        Some("Succeeded") => ("Succeeded", "The pod completed successfully."),
        Some("Failed") => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// `spec.nodeName` (alias `spec.host`), `spec.restartPolicy`,
/// `spec.schedulerName`, `spec.serviceAccountName`, `spec.hostNetwork`,
/// `status.phase`, `status.podIP`, `status.podIPs` (accepted, always `""`
/// as upstream), `status.nominatedNodeName`, besides `metadata.namespace`.
fn field_label(object: &Value, field: &str) -> Option<Option<String>> {
    let value = match field {
        "spec.nodeName" | "spec.host" => string_at(object, &["spec", "nodeName"]),
        "spec.restartPolicy" => string_at(object, &["spec", "restartPolicy"]),
        "spec.schedulerName" => string_at(object, &["spec", "schedulerName"]),
        "spec.serviceAccountName" => string_at(object, &["spec", "serviceAccountName"]),
        "spec.hostNetwork" => bool_at(object, &["spec", "hostNetwork"]),
        "status.phase" => string_at(object, &["status", "phase"]),
        "status.podIP" => object
            .pointer("/status/podIPs/0/ip")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| string_at(object, &["status", "podIP"])),
        // Upstream accepts the label but never fills it in.
        "status.podIPs" => None,
        "status.nominatedNodeName" => string_at(object, &["status", "nominatedNodeName"]),
        _ => return super::fields::object_meta(object, field),
    };
    Some(value)
}
