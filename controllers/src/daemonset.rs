//! The DaemonSet controller: one pod of the set on every node that should
//! run it, rolled to a new template a few nodes at a time.
//!
//! A node should run the set's pod unless it is being deleted, its labels
//! miss the template's `nodeSelector`, or it has a `NoSchedule` or
//! `NoExecute` taint the template does not tolerate; a pod already there
//! stays through a `NoSchedule` taint and goes on a `NoExecute` one, as in
//! Kubernetes. Daemon pods tolerate `not-ready`, `unreachable`, the
//! pressure taints and `unschedulable` by themselves, so they keep running
//! on nodes in trouble and on cordoned ones. The template's node affinity
//! is not evaluated yet.
//!
//! Pods are created with `spec.nodeName` set, bypassing the scheduler as
//! Kubernetes' DaemonSet controller did before 1.12; so they are not
//! refused for lack of resources. Each carries the template's hash in the
//! `controller-revision-hash` label. `RollingUpdate` deletes out-of-date
//! pods while fewer than `maxUnavailable` of the set's pods are
//! unavailable (the replacement comes on the next pass); `OnDelete` waits
//! for someone else to delete them. Failed pods are replaced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use skiff_client::events::{Kind, reference};

use crate::Context;
use crate::error::{Result, is_not_found};
use crate::owner::{self, controller_reference};
use crate::pods;

/// The label holding the template hash a daemon pod was made from.
pub const REVISION_HASH: &str = "controller-revision-hash";

/// Runs the controller until the client's watches end.
pub async fn run(client: kube::Client) {
    let context = Context::new(&client, "daemonset-controller");
    let controller = Controller::new(Api::<DaemonSet>::all(client.clone()), watcher::Config::default());
    let sets = controller.store();
    controller
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        // Any node change may change where every set should run.
        .watches(Api::<Node>::all(client), watcher::Config::default(), move |_| {
            sets.state()
                .iter()
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(crate::metered("daemonset", reconcile), crate::retry_later, context)
        .for_each(|result| async move { crate::log_outcome("daemonset", result) })
        .await;
}

/// The tolerations every daemon pod has, on top of its template's: as in
/// Kubernetes, a daemon keeps running on a node in trouble (not ready,
/// unreachable, under pressure) and on a cordoned one. Pods on the host
/// network also tolerate a node whose network is not set up yet.
fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let mut taints = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        taints.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    taints
        .into_iter()
        .map(|(key, effect)| Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Toleration::default()
        })
        .collect()
}

/// Whether the set's pod belongs on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// A pod should be started there.
    pub run: bool,
    /// A pod already there may stay: a `NoSchedule` taint keeps new pods
    /// off but does not evict, so this can hold where `run` does not.
    pub keep: bool,
}

/// Where the set's pod belongs on `node`.
pub fn placement(ds: &DaemonSet, node: &Node) -> Placement {
    let nowhere = Placement {
        run: false,
        keep: false,
    };
    if node.metadata.deletion_timestamp.is_some() {
        return nowhere;
    }
    let spec = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let labels = node.labels();
    let selected = spec
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|selector| selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
    if !selected {
        return nowhere;
    }
    let mut tolerations = spec.and_then(|s| s.tolerations.clone()).unwrap_or_default();
    tolerations.extend(daemon_tolerations(spec.and_then(|s| s.host_network).unwrap_or(false)));
    let untolerated = |effect: &str| {
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter(|t| t.effect == effect)
            .any(|taint| !tolerations.iter().any(|t| skiff_client::taints::tolerates(t, taint)))
    };
    let keep = !untolerated("NoExecute");
    Placement {
        run: keep && !untolerated("NoSchedule"),
        keep,
    }
}

/// What to change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Nodes to create a pod on.
    pub create: Vec<String>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
}

/// The next step for `ds` over `nodes`, given its (claimed) `pods` and the
/// current template `hash`.
pub fn plan(ds: &DaemonSet, nodes: &[Node], pods: &[Pod], hash: &str, now: Timestamp) -> Plan {
    let spec = ds.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let placements: BTreeMap<String, Placement> = nodes.iter().map(|n| (n.name_any(), placement(ds, n))).collect();
    let wanted: BTreeSet<&String> = placements.iter().filter(|(_, p)| p.run).map(|(n, _)| n).collect();
    let kept: BTreeSet<&String> = placements.iter().filter(|(_, p)| p.keep).map(|(n, _)| n).collect();
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    let mut plan = Plan::default();
    for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        let failed = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed");
        if !kept.contains(&node) || failed {
            plan.delete.push(pod.name_any());
        } else {
            by_node.entry(node).or_default().push(pod);
        }
    }
    let current = |p: &Pod| p.labels().get(REVISION_HASH).map(String::as_str) == Some(hash);
    let mut outdated = Vec::new();
    let mut unavailable = 0;
    for node in &kept {
        let Some(pods) = by_node.get_mut(*node) else {
            if wanted.contains(node) {
                plan.create.push((*node).clone());
                unavailable += 1;
            }
            continue;
        };
        // One per node: keep the most useful (current, then ready).
        pods.sort_by_key(|p| (!current(p), !pods::is_ready(p), p.metadata.creation_timestamp.clone()));
        for extra in pods.iter().skip(1) {
            plan.delete.push(extra.name_any());
        }
        // A pod kept on a node that takes no new ones is not rolled: it
        // could not be replaced.
        let Some(pod) = pods.first().copied().filter(|_| wanted.contains(node)) else {
            continue;
        };
        if !pods::is_available(pod, min_ready, now) {
            unavailable += 1;
        }
        if !current(pod) {
            outdated.push(pod);
        }
    }
    let strategy = spec.update_strategy.unwrap_or_default();
    if strategy.type_.as_deref() != Some("OnDelete") {
        let max_unavailable = strategy
            .rolling_update
            .and_then(|r| r.max_unavailable)
            .map_or(1, |v| {
                crate::deployment::rollout::fenceposts(
                    Some(&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0)),
                    Some(&v),
                    i32::try_from(wanted.len()).unwrap_or(i32::MAX),
                )
                .1
            })
            .max(1);
        // Unavailable outdated pods first: replacing them costs nothing.
        outdated.sort_by_key(|p| pods::is_available(p, min_ready, now));
        let mut budget = max_unavailable - unavailable;
        for pod in outdated {
            let available = pods::is_available(pod, min_ready, now);
            if available && budget <= 0 {
                break;
            }
            if available {
                budget -= 1;
            }
            plan.delete.push(pod.name_any());
        }
    }
    plan
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action> {
    let Some(spec) = ds.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if ds.metadata.deletion_timestamp.is_some() || skiff_client::selector::is_empty(&spec.selector) {
        return Ok(Action::await_change());
    }
    let namespace = ds.namespace().unwrap_or_default();
    let nodes = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = pods_api
        .list(&ListParams::default().labels(&skiff_client::selector::to_query(&spec.selector)))
        .await?;
    let claimed = owner::claim(&pods_api, ds.as_ref(), &spec.selector, listed.items).await?;
    let hash = crate::deployment::template_hash(
        &spec.template,
        ds.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0),
    );
    let now = Timestamp::now();
    let plan = plan(&ds, &nodes, &claimed, &hash, now);
    let subject = reference(ds.as_ref());

    let mut template = spec.template.clone();
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_HASH.into(), hash.clone());
    for node in &plan.create {
        let mut pod = crate::replicaset::pod_from_template(
            &template,
            controller_reference(ds.as_ref()),
            &namespace,
            &ds.name_any(),
        );
        let pod_spec = pod.spec.get_or_insert_with(Default::default);
        pod_spec.node_name = Some(node.clone());
        pod_spec
            .tolerations
            .get_or_insert_with(Vec::new)
            .extend(daemon_tolerations(
                template.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false),
            ));
        match pods_api.create(&PostParams::default(), &pod).await {
            Ok(created) => ctx.events.record(
                &subject,
                Kind::Normal,
                "SuccessfulCreate",
                "Create",
                format!("Created pod: {}", created.name_any()),
            ),
            Err(e) => ctx.events.record(
                &subject,
                Kind::Warning,
                "FailedCreate",
                "Create",
                format!("Error creating: {}", crate::api_message(&e)),
            ),
        }
    }
    for name in &plan.delete {
        match pods_api.delete(name, &DeleteParams::default()).await {
            Ok(_) => ctx.events.record(
                &subject,
                Kind::Normal,
                "SuccessfulDelete",
                "Delete",
                format!("Deleted pod: {name}"),
            ),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }

    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let wanted: BTreeSet<String> = nodes
        .iter()
        .filter(|n| placement(&ds, n).run)
        .map(|n| n.name_any())
        .collect();
    let live: Vec<&Pod> = claimed.iter().filter(|p| pods::is_active(p)).collect();
    let on = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    let scheduled: BTreeSet<String> = live.iter().map(|p| on(p)).filter(|n| wanted.contains(n)).collect();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(live.iter().filter(|p| wanted.contains(&on(p)) && f(p)).count()).unwrap_or(i32::MAX)
    };
    let desired = i32::try_from(wanted.len()).unwrap_or(i32::MAX);
    let available = count(&|p| pods::is_available(p, min_ready, now));
    let status = DaemonSetStatus {
        desired_number_scheduled: desired,
        current_number_scheduled: i32::try_from(scheduled.len()).unwrap_or(i32::MAX),
        number_misscheduled: i32::try_from(live.iter().filter(|p| !wanted.contains(&on(p))).count())
            .unwrap_or(i32::MAX),
        number_ready: count(&pods::is_ready),
        number_available: Some(available),
        number_unavailable: Some((desired - available).max(0)),
        updated_number_scheduled: Some(count(&|p| p.labels().get(REVISION_HASH) == Some(&hash))),
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    if ds.status.as_ref() != Some(&status) {
        let sets: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &namespace);
        if !crate::patch_status(&sets, &ds.name_any(), &status).await? {
            return Ok(Action::await_change());
        }
    }
    let next = live
        .iter()
        .filter_map(|p| pods::until_available(p, min_ready, now))
        .min();
    Ok(match next {
        Some(after) => crate::requeue(after + Duration::from_millis(100)),
        None if !plan.create.is_empty() || !plan.delete.is_empty() => Action::requeue(Duration::from_secs(5)),
        None => Action::await_change(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}))
            .unwrap()
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {REVISION_HASH: hash}},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    fn set(template_spec: serde_json::Value, strategy: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "updateStrategy": strategy,
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": template_spec}},
        }))
        .unwrap()
    }

    #[test]
    fn a_pod_goes_where_the_selector_and_taints_allow_and_nowhere_else() {
        let ds = set(json!({"containers": [], "nodeSelector": {"disk": "ssd"}}), json!({}));
        let nodes = [
            node("a", json!({"disk": "ssd"}), json!([])),
            node("b", json!({"disk": "hdd"}), json!([])),
            node(
                "c",
                json!({"disk": "ssd"}),
                json!([{"key": "dedicated", "effect": "NoSchedule"}]),
            ),
            node(
                "d",
                json!({"disk": "ssd"}),
                json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
            ),
        ];
        let now = Timestamp::now();
        let stray = pod("on-b", "b", "h", true);
        let plan = plan(&ds, &nodes, &[stray], "h", now);
        assert_eq!(plan.create, ["a", "d"]);
        assert_eq!(plan.delete, ["on-b"]);
    }

    #[test]
    fn a_no_schedule_taint_keeps_new_pods_off_but_does_not_evict() {
        let ds = set(json!({"containers": []}), json!({}));
        let nodes = [
            node(
                "fresh",
                json!({}),
                json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]),
            ),
            node(
                "tainted",
                json!({}),
                json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
            ),
            node(
                "evicting",
                json!({}),
                json!([{"key": "dedicated", "effect": "NoExecute"}]),
            ),
            node(
                "pressed",
                json!({}),
                json!([{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]),
            ),
        ];
        let pods = [
            pod("on-tainted", "tainted", "old", true),
            pod("on-evicting", "evicting", "h", true),
        ];
        let plan = plan(&ds, &nodes, &pods, "h", Timestamp::now());
        // Nothing new on the fresh node, the outdated pod on the tainted
        // one is neither replaced nor rolled, the evicting node loses its.
        assert_eq!(plan.create, ["pressed"]);
        assert_eq!(plan.delete, ["on-evicting"]);
    }

    #[test]
    fn a_rolling_update_replaces_one_available_pod_at_a_time() {
        let ds = set(
            json!({"containers": []}),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
        );
        let nodes = [
            node("a", json!({}), json!([])),
            node("b", json!({}), json!([])),
            node("c", json!({}), json!([])),
        ];
        let now = Timestamp::now();
        let pods = [
            pod("pa", "a", "old", true),
            pod("pb", "b", "old", true),
            pod("pc", "c", "old", true),
        ];
        assert_eq!(plan(&ds, &nodes, &pods, "new", now).delete.len(), 1);
        // One replacement not ready yet: nothing more goes.
        let pods = [
            pod("pa", "a", "new", false),
            pod("pb", "b", "old", true),
            pod("pc", "c", "old", true),
        ];
        assert_eq!(plan(&ds, &nodes, &pods, "new", now), Plan::default());
        // OnDelete never deletes.
        let on_delete = set(json!({"containers": []}), json!({"type": "OnDelete"}));
        let pods = [
            pod("pa", "a", "old", true),
            pod("pb", "b", "old", true),
            pod("pc", "c", "old", true),
        ];
        assert_eq!(plan(&on_delete, &nodes, &pods, "new", now), Plan::default());
    }
}
