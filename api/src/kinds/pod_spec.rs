//! The pod spec, shared by pods and every pod template (Deployments,
//! ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs): its defaults and
//! its checks.

use serde_json::{Value, json};

use super::set_default;
use crate::error::Cause;
use crate::meta::NameRule;

/// A pod's `terminationGracePeriodSeconds` when it gives none.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

pub fn defaults(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(DEFAULT_GRACE_SECONDS));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        for container in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let latest = container.get("image").and_then(Value::as_str).is_some_and(|image| {
                !image.rsplit('/').next().unwrap_or(image).contains(':') || image.ends_with(":latest")
            });
            set_default(
                container,
                "imagePullPolicy",
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            set_default(container, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(container, "terminationMessagePolicy", json!("File"));
            set_default(container, "resources", json!({}));
            for port in container
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                set_default(port, "protocol", json!("TCP"));
            }
        }
    }
}

pub fn validate(spec: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let containers = spec.and_then(|s| s.get("containers")).and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        causes.push(Cause::required(format!("{path}.containers")));
        return;
    };
    let mut names = std::collections::BTreeSet::new();
    for (i, container) in containers.iter().enumerate() {
        let name = container.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            causes.push(Cause::required(format!("{path}.containers[{i}].name")));
        } else if let Some(reason) = NameRule::Dns1123Label.check(name) {
            causes.push(Cause::invalid(format!("{path}.containers[{i}].name"), name, reason));
        } else if !names.insert(name) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: \"{name}\""),
                field: format!("{path}.containers[{i}].name"),
            });
        }
        if container.get("image").and_then(Value::as_str).is_none_or(str::is_empty) {
            causes.push(Cause::required(format!("{path}.containers[{i}].image")));
        }
    }
    if let Some(policy) = spec.and_then(|s| s.get("restartPolicy")).and_then(Value::as_str)
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        causes.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
}
