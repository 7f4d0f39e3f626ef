//! What workload controllers need to know about a pod: is it active,
//! ready, available; which to remove first when scaling down.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Not finished (`Succeeded`/`Failed`) and not being deleted: a pod that
/// counts towards a controller's replicas.
pub fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// Being deleted but not yet gone.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some() && !matches!(phase(pod), "Succeeded" | "Failed")
}

/// When the pod's Ready condition last became True, if it is True.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        condition
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

/// Ready now.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    ready_since(pod).is_some_and(|since| {
        min_ready_seconds <= 0 || since + SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now
    })
}

/// How long until a ready pod becomes available, if it is ready but not
/// yet available.
pub fn until_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<std::time::Duration> {
    let since = ready_since(pod)?;
    let at = since + SignedDuration::from_secs(i64::from(min_ready_seconds.max(0)));
    (at > now).then(|| std::time::Duration::try_from(at - now).unwrap_or_default())
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|c| c.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// Orders pods the way a ReplicaSet removes them when it has too many,
/// first to go first: unscheduled before scheduled; pending before
/// unknown before running; not ready before ready; ready for less time
/// before ready longer; more restarts before fewer; newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase_rank = |p: &Pod| match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        // Ready more recently goes first.
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        // Newer goes first.
        .then_with(|| created(b).cmp(&created(a)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_least_useful_pods_are_removed_first() {
        let unscheduled = pod(json!({"metadata": {"name": "a"}, "spec": {"containers": []}}));
        let pending = pod(
            json!({"metadata": {"name": "b"}, "spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Pending"}}),
        );
        let running = pod(
            json!({"metadata": {"name": "c"}, "spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Running"}}),
        );
        let ready_new = pod(
            json!({"metadata": {"name": "d"}, "spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T00:00:00Z"}]}}),
        );
        let ready_old = pod(
            json!({"metadata": {"name": "e"}, "spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        );
        let mut pods = [&ready_old, &running, &ready_new, &unscheduled, &pending];
        pods.sort_by(|a, b| deletion_order(a, b));
        let names: Vec<_> = pods.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let ready = pod(json!({"metadata": {"name": "p"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}));
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(is_available(&ready, 0, at("2026-01-01T00:00:00Z")));
        assert!(!is_available(&ready, 10, at("2026-01-01T00:00:05Z")));
        assert!(is_available(&ready, 10, at("2026-01-01T00:00:10Z")));
        assert_eq!(
            until_available(&ready, 10, at("2026-01-01T00:00:04Z")),
            Some(std::time::Duration::from_secs(6))
        );
        assert!(is_active(&ready));
        let done = pod(json!({"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}}));
        assert!(!is_active(&done));
    }
}
