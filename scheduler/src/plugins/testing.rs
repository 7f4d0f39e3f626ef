//! Builders for the table-driven tests of the plugins and the cycle.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::cycle::{Decision, schedule};
use crate::framework::Plugin;
use crate::profile::Profile;
use crate::snapshot::Snapshot;

/// JSON merge patch (RFC 7386): objects merge, `null` deletes, anything
/// else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// A node named `name` with 4 cpu, 8 GiB, 110 pods, a hostname label and
/// both runtime labels, then `patch` merged over it.
pub fn node(name: &str, patch: Value) -> Arc<Node> {
    let mut object = json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "skiff.dev/runtime-wasm": "true",
            "skiff.dev/runtime-oci": "true",
        }},
        "spec": {},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    });
    merge(&mut object, &patch);
    Arc::new(serde_json::from_value(object).unwrap())
}

/// A pending pod `p` in `default` with `metadata` and `spec` merged over
/// one container.
pub fn pod_with(metadata: Value, spec: Value) -> Pod {
    let mut object = json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "uid-p"},
        "spec": {"containers": [{"name": "c"}]},
    });
    merge(&mut object["metadata"], &metadata);
    merge(&mut object["spec"], &spec);
    serde_json::from_value(object).unwrap()
}

/// A pending pod with `spec` merged over one container.
pub fn pod(spec: Value) -> Pod {
    pod_with(json!({}), spec)
}

/// A running pod `name` bound to `node`.
pub fn bound_with(name: &str, node: &str, metadata: Value, spec: Value) -> Arc<Pod> {
    let mut meta = json!({"name": name, "uid": format!("uid-{name}")});
    merge(&mut meta, &metadata);
    let mut pod = pod_with(meta, spec);
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.to_string());
    }
    Arc::new(pod)
}

/// A running pod `name` bound to `node`, with `spec`.
pub fn bound(name: &str, node: &str, spec: Value) -> Arc<Pod> {
    bound_with(name, node, json!({}), spec)
}

pub fn plugin(plugin: impl Plugin + 'static) -> Arc<dyn Plugin> {
    Arc::new(plugin)
}

pub fn snapshot(nodes: &[Arc<Node>], pods: &[Arc<Pod>]) -> Snapshot {
    Snapshot::new(nodes.iter().cloned(), pods.iter().cloned())
}

/// Schedules `pod` over `snapshot` with `plugins` (weight 1 each), seed 0.
pub fn decide_in(plugins: &[Arc<dyn Plugin>], pod: &Pod, snapshot: &Snapshot) -> Decision {
    let profile = plugins
        .iter()
        .fold(Profile::builder("test"), |builder, p| builder.plugin(p.clone(), 1))
        .build()
        .unwrap();
    schedule(&profile, pod, snapshot, 0)
}

/// Schedules `pod` over `nodes` with nothing placed on them.
pub fn decide(plugins: &[Arc<dyn Plugin>], pod: &Pod, nodes: &[Arc<Node>]) -> Decision {
    decide_in(plugins, pod, &snapshot(nodes, &[]))
}

/// The chosen node, or the FailedScheduling message.
pub fn outcome(decision: &Decision) -> Result<String, String> {
    match decision {
        Decision::Scheduled(s) => Ok(s.node.clone()),
        Decision::Unschedulable(fit) => Err(fit.message()),
        Decision::Error(status) => Err(format!("error: {status}")),
    }
}

/// Each scored node's total, in name order.
pub fn scores(decision: &Decision) -> Vec<(String, i64)> {
    match decision {
        Decision::Scheduled(s) => s.scores.iter().map(|n| (n.node.clone(), n.total)).collect(),
        _ => Vec::new(),
    }
}
