//! Node lifecycle: a node that stops renewing its Lease is marked
//! `Ready=Unknown` and tainted `node.kubernetes.io/unreachable`; pods on a
//! node with `NoExecute` taints they do not tolerate are evicted (after
//! their `tolerationSeconds`), so their owners recreate them elsewhere.
//!
//! Health is judged by when this controller *observed* a node's Lease
//! renewal or status heartbeat change, never by the timestamps' values,
//! so clock skew between machines does not matter and a restarted control
//! plane gives every node a fresh grace period. A node found `Ready=False`
//! (its agent says so) gets the `node.kubernetes.io/not-ready` taints
//! instead; a node back to `Ready=True` loses both.
//!
//! Evicting is deleting with the pod's grace period. A pod on an
//! unreachable node stays `Terminating` until the node returns, as in
//! Kubernetes; its owner does not count it and creates a replacement at
//! once. Pods on an unreachable node are marked `Ready=False` first, so
//! nothing keeps routing to them. Pods bound to a node that no longer
//! exists (for a grace period, confirmed by a live read) are deleted at
//! once, with no grace: nothing is left to stop them (kube-controller-
//! manager's pod garbage collector does the same).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use skiff_client::events::{Kind, Recorder, reference};

use skiff_client::taints::tolerates;

use crate::error::is_not_found;

/// The taint keys this controller manages.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// How patient the controller is.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a node may go without a heartbeat before it is unreachable
    /// (kube-controller-manager's `--node-monitor-grace-period`, 40 s).
    pub grace_period: Duration,
    /// How often nodes and pods are checked.
    pub monitor_period: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            grace_period: Duration::from_secs(40),
            monitor_period: Duration::from_secs(5),
        }
    }
}

/// Runs the controller until its watches end.
pub async fn run(client: kube::Client, config: Config) {
    let nodes = mirror::<Node>(Api::all(client.clone()));
    let leases = mirror::<Lease>(Api::namespaced(client.clone(), "kube-node-lease"));
    let pods = mirror::<Pod>(Api::all(client.clone()));
    let mut monitor = Monitor {
        client: client.clone(),
        events: Recorder::new(client, "node-controller", None),
        config,
        seen: HashMap::new(),
        orphans: HashMap::new(),
    };
    let mut tick = tokio::time::interval(monitor.config.monitor_period);
    loop {
        tick.tick().await;
        if nodes.wait_until_ready().await.is_err()
            || leases.wait_until_ready().await.is_err()
            || pods.wait_until_ready().await.is_err()
        {
            return;
        }
        monitor.check_nodes(&nodes, &leases).await;
        monitor.evict(&nodes, &pods).await;
        monitor.collect_orphans(&nodes, &pods).await;
    }
}

/// A reflector store for `api`, kept current by a background task.
fn mirror<K>(api: Api<K>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {}
    });
    reader
}

/// The last heartbeat seen of one node, and when it was seen.
#[derive(Clone, Debug)]
struct Seen {
    heartbeat: Option<String>,
    at: Instant,
}

struct Monitor {
    client: kube::Client,
    events: Recorder,
    config: Config,
    seen: HashMap<String, Seen>,
    /// Pods (by uid) bound to a node that does not exist, since when.
    orphans: HashMap<String, Instant>,
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

impl Monitor {
    /// Marks nodes whose heartbeats stopped, and keeps the taints in line
    /// with the Ready condition.
    async fn check_nodes(&mut self, nodes: &Store<Node>, leases: &Store<Lease>) {
        let now = Instant::now();
        let leases: HashMap<String, String> = leases
            .state()
            .iter()
            .filter_map(|l| {
                let renewed = l.spec.as_ref()?.renew_time.as_ref()?;
                Some((l.name_any(), renewed.0.to_string()))
            })
            .collect();
        let names: Vec<String> = nodes.state().iter().map(|n| n.name_any()).collect();
        self.seen.retain(|name, _| names.contains(name));
        for node in nodes.state() {
            let name = node.name_any();
            let status_beat = ready_condition(&node)
                .and_then(|c| c.last_heartbeat_time.as_ref())
                .map(|t| t.0.to_string());
            let heartbeat = Some(format!(
                "{}|{}",
                leases.get(&name).cloned().unwrap_or_default(),
                status_beat.unwrap_or_default()
            ));
            let seen = self.seen.entry(name.clone()).or_insert(Seen {
                heartbeat: heartbeat.clone(),
                at: now,
            });
            if seen.heartbeat != heartbeat {
                seen.heartbeat = heartbeat;
                seen.at = now;
            }
            let silent = now.duration_since(seen.at) > self.config.grace_period;
            let ready = ready_condition(&node).map(|c| c.status.clone()).unwrap_or_default();
            if silent && ready != "Unknown" {
                self.mark_unknown(&node).await;
                continue;
            }
            let wanted = match ready.as_str() {
                "True" => None,
                "False" => Some(NOT_READY),
                _ => Some(UNREACHABLE),
            };
            self.set_taints(&node, wanted).await;
        }
    }

    /// Sets every condition of a silent node to Unknown, and its pods not
    /// ready.
    async fn mark_unknown(&self, node: &Node) {
        let now = Time(Timestamp::now());
        let conditions: Vec<NodeCondition> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|mut c| {
                if c.status != "Unknown" {
                    c.last_transition_time = Some(now.clone());
                }
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c
            })
            .collect();
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"status": {"conditions": conditions}});
        match nodes
            .patch_status(&node.name_any(), &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {
                tracing::info!(node = %node.name_any(), "node stopped posting status; marked unknown");
                self.events.record(
                    &reference(node),
                    Kind::Normal,
                    "NodeNotReady",
                    "NodeNotReady",
                    format!("Node {} status is now: NodeNotReady", node.name_any()),
                );
            }
            Err(error) => tracing::debug!(%error, node = %node.name_any(), "cannot mark the node unknown"),
        }
        self.mark_pods_not_ready(&node.name_any()).await;
    }

    async fn mark_pods_not_ready(&self, node: &str) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let Ok(list) = pods
            .list(&kube::api::ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
        else {
            return;
        };
        let now = Timestamp::now().to_string();
        for pod in list.items {
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if !ready {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            let patch = json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "NodeNotReady", "lastTransitionTime": now}]}});
            let _ = api
                .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch))
                .await;
        }
    }

    /// Makes the node carry exactly the `wanted` one of this controller's
    /// taints (both effects), leaving everyone else's alone.
    async fn set_taints(&self, node: &Node, wanted: Option<&str>) {
        let current: Vec<Taint> = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        let mut next: Vec<Taint> = current
            .iter()
            .filter(|t| {
                let ours = t.key == UNREACHABLE || t.key == NOT_READY;
                !ours || Some(t.key.as_str()) == wanted
            })
            .cloned()
            .collect();
        if let Some(key) = wanted {
            for effect in ["NoSchedule", "NoExecute"] {
                if !next.iter().any(|t| t.key == key && t.effect == effect) {
                    next.push(Taint {
                        key: key.into(),
                        effect: effect.into(),
                        time_added: Some(Time(Timestamp::now())),
                        value: None,
                    });
                }
            }
        }
        if next == current {
            return;
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": next},
        });
        if let Err(error) = nodes
            .patch(&node.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            tracing::debug!(%error, node = %node.name_any(), "cannot update the node's taints");
        }
    }

    /// Deletes pods whose node has NoExecute taints they do not tolerate,
    /// or no longer tolerate.
    async fn evict(&self, nodes: &Store<Node>, pods: &Store<Pod>) {
        let now = Timestamp::now();
        let tainted: HashMap<String, Vec<Taint>> = nodes
            .state()
            .iter()
            .filter_map(|n| {
                let taints: Vec<Taint> = n
                    .spec
                    .as_ref()?
                    .taints
                    .iter()
                    .flatten()
                    .filter(|t| t.effect == "NoExecute")
                    .cloned()
                    .collect();
                (!taints.is_empty()).then(|| (n.name_any(), taints))
            })
            .collect();
        if tainted.is_empty() {
            return;
        }
        for pod in pods.state() {
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()) else {
                continue;
            };
            let Some(taints) = tainted.get(node) else {
                continue;
            };
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            if !eviction_due(taints, &tolerations, now) {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            let params = DeleteParams::default().preconditions(kube::api::Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            });
            match api.delete(&pod.name_any(), &params).await {
                Ok(_) => self.events.record(
                    &reference(pod.as_ref()),
                    Kind::Normal,
                    "TaintManagerEviction",
                    "Evict",
                    format!(
                        "Marking for deletion Pod {}/{}",
                        pod.namespace().unwrap_or_default(),
                        pod.name_any()
                    ),
                ),
                Err(e) if is_not_found(&e) => {}
                Err(error) => tracing::debug!(%error, pod = %pod.name_any(), "cannot evict"),
            }
        }
    }
}

impl Monitor {
    /// Force-deletes pods whose node has been gone for the grace period.
    async fn collect_orphans(&mut self, nodes: &Store<Node>, pods: &Store<Pod>) {
        let now = Instant::now();
        let names: std::collections::HashSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
        let mut still = HashMap::new();
        for pod in pods.state() {
            let Some(node) = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty())
            else {
                continue;
            };
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            if names.contains(&node) {
                continue;
            }
            let since = self.orphans.get(&uid).copied().unwrap_or(now);
            still.insert(uid.clone(), since);
            if now.duration_since(since) < self.config.grace_period.min(Duration::from_secs(40)) / 4 {
                continue;
            }
            let node_api: Api<Node> = Api::all(self.client.clone());
            if !matches!(node_api.get_opt(&node).await, Ok(None)) {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&pod.name_any(), &params).await {
                Ok(_) => {
                    tracing::info!(pod = %pod.name_any(), %node, "deleted a pod whose node is gone");
                    still.remove(&uid);
                }
                Err(e) if is_not_found(&e) => {
                    still.remove(&uid);
                }
                Err(error) => tracing::debug!(%error, pod = %pod.name_any(), "cannot delete an orphaned pod"),
            }
        }
        self.orphans = still;
    }
}

/// Whether a pod with `tolerations` on a node with NoExecute `taints`
/// must go by `now`: some taint is not tolerated, or the shortest
/// `tolerationSeconds` among those that tolerate has passed since the
/// taint was added.
pub fn eviction_due(taints: &[Taint], tolerations: &[Toleration], now: Timestamp) -> bool {
    taints.iter().any(|taint| {
        let matching: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return true;
        }
        let Some(seconds) = matching.iter().filter_map(|t| t.toleration_seconds).min() else {
            return false;
        };
        let added = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        crate::plus_seconds(added, seconds.max(0)) <= now
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn taint(key: &str, added: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(added.parse().unwrap())),
            value: None,
        }
    }

    fn toleration(value: serde_json::Value) -> Toleration {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn pods_go_when_a_taint_is_not_tolerated_or_their_toleration_runs_out() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let taints = [taint(UNREACHABLE, "2026-01-01T00:00:00Z")];
        let cases = [
            (vec![], true),
            (
                vec![toleration(
                    json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}),
                )],
                false,
            ),
            (
                vec![toleration(
                    json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
                )],
                false,
            ),
            (
                vec![toleration(
                    json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}),
                )],
                true,
            ),
            (vec![toleration(json!({"operator": "Exists"}))], false),
            (vec![toleration(json!({"key": NOT_READY, "operator": "Exists"}))], true),
            (
                vec![toleration(
                    json!({"key": UNREACHABLE, "operator": "Equal", "value": "x"}),
                )],
                true,
            ),
            (
                vec![toleration(
                    json!({"key": UNREACHABLE, "effect": "NoSchedule", "operator": "Exists"}),
                )],
                true,
            ),
        ];
        for (tolerations, due) in cases {
            assert_eq!(eviction_due(&taints, &tolerations, now), due, "{tolerations:?}");
        }
    }
}
