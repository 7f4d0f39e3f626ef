//! The runner's view of the cluster, kept from watch events: the
//! [`Snapshot`] the cycles read, the pods assumed on nodes while their
//! binding is in flight, and the [`SchedulingQueue`] of pending pods.
//!
//! This is where a watch event becomes scheduling state, and it is plain
//! data: the runner feeds it events and the current time under a lock.
//!
//! * A bound, unfinished pod is placed on its node; a finished or deleted
//!   one is taken off (and waiting pods that a plugin rejected for want of
//!   room are retried).
//! * A pending pod that this scheduler serves (its `spec.schedulerName`,
//!   empty meaning `default-scheduler`, is one of the profiles; it is not
//!   being deleted, has no scheduling gates and has not finished) is
//!   queued; any other pod leaves the queue.
//! * A pod the scheduler assumed on a node stays there until the watch
//!   shows it bound (or gone), or its binding fails and it is forgotten, so
//!   the next cycles already count it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::ClusterEvent;
use crate::profile::DEFAULT_SCHEDULER_NAME;
use crate::queue::{PodKey, QueueConfig, SchedulingQueue};
use crate::snapshot::{Snapshot, holds_resources, is_terminal, pod_node_name, pod_uid};

/// The `spec.schedulerName` a pod asks for.
pub fn scheduler_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_SCHEDULER_NAME)
}

#[derive(Debug)]
pub(crate) struct Cache {
    pub snapshot: Snapshot,
    pub queue: SchedulingQueue,
    /// UID → the pod as assumed (with `spec.nodeName` set).
    assumed: HashMap<String, Arc<Pod>>,
    scheduler_names: BTreeSet<String>,
    /// Which plugins care about each event, across all profiles.
    interest: BTreeMap<ClusterEvent, BTreeSet<String>>,
    nodes_listed: bool,
    pods_listed: bool,
    /// Pods that would be queued but for their scheduling gates.
    gated: HashSet<PodKey>,
}

/// Whether `pod` carries scheduling gates.
fn gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

/// Whether a node change may matter to a plugin: anything the snapshot
/// reads other than heartbeats and conditions.
fn node_changed(old: &Node, new: &Node) -> bool {
    let status = |n: &Node| {
        n.status
            .as_ref()
            .map(|s| (s.allocatable.clone(), s.capacity.clone(), s.images.clone()))
    };
    old.metadata.labels != new.metadata.labels || old.spec != new.spec || status(old) != status(new)
}

impl Cache {
    pub fn new(
        queue: QueueConfig,
        scheduler_names: BTreeSet<String>,
        interest: BTreeMap<ClusterEvent, BTreeSet<String>>,
    ) -> Cache {
        Cache {
            snapshot: Snapshot::default(),
            queue: SchedulingQueue::new(queue),
            assumed: HashMap::new(),
            scheduler_names,
            interest,
            nodes_listed: false,
            pods_listed: false,
            gated: HashSet::new(),
        }
    }

    /// Makes `plugins`' rejections retryable on `event` too.
    pub fn add_interest(&mut self, event: ClusterEvent, plugins: &[String]) {
        self.interest.entry(event).or_default().extend(plugins.iter().cloned());
    }

    /// Whether both nodes and pods have been listed once.
    pub fn synced(&self) -> bool {
        self.nodes_listed && self.pods_listed
    }

    fn event(&mut self, event: ClusterEvent, now: Instant) {
        let empty = BTreeSet::new();
        let interested = self.interest.get(&event).unwrap_or(&empty);
        let moved = self.queue.on_event(event, interested, now);
        if moved > 0 {
            tracing::debug!(?event, moved, "cluster event retries unschedulable pods");
        }
    }

    /// Whether this scheduler should schedule `pod`.
    pub fn wants(&self, pod: &Pod) -> bool {
        self.would_want(pod) && !gated(pod)
    }

    /// Whether this scheduler would schedule `pod` were it not gated.
    fn would_want(&self, pod: &Pod) -> bool {
        pod_node_name(pod).is_none()
            && pod.metadata.deletion_timestamp.is_none()
            && !is_terminal(pod)
            && self.scheduler_names.contains(scheduler_name(pod))
    }

    /// Pods this scheduler would serve that wait on scheduling gates.
    pub fn gated_len(&self) -> usize {
        self.gated.len()
    }

    pub fn node_applied(&mut self, node: Arc<Node>, now: Instant) {
        match self.snapshot.upsert_node(node.clone()) {
            None => self.event(ClusterEvent::NodeAdded, now),
            Some(previous) if node_changed(&previous, &node) => self.event(ClusterEvent::NodeChanged, now),
            Some(_) => {}
        }
    }

    pub fn node_deleted(&mut self, name: &str) {
        self.snapshot.remove_node(name);
    }

    /// Replaces every node with the listed ones.
    pub fn nodes_listed(&mut self, nodes: Vec<Arc<Node>>, now: Instant) {
        let listed: HashSet<String> = nodes.iter().filter_map(|n| n.metadata.name.clone()).collect();
        let gone: Vec<String> = self
            .snapshot
            .nodes()
            .map(|n| n.name().to_string())
            .filter(|name| !listed.contains(name))
            .collect();
        for name in gone {
            self.snapshot.remove_node(&name);
        }
        for node in nodes {
            self.node_applied(node, now);
        }
        self.nodes_listed = true;
    }

    pub fn pod_applied(&mut self, pod: Arc<Pod>, now: Instant) {
        let uid = pod_uid(&pod).to_string();
        let key = PodKey::of(&pod);
        if gated(&pod) && self.would_want(&pod) {
            self.gated.insert(key.clone());
        } else {
            self.gated.remove(&key);
        }
        if pod_node_name(&pod).is_some() {
            // Bound: by us (confirming an assumption) or by someone else.
            self.assumed.remove(&uid);
            self.queue.delete(&key);
            if holds_resources(&pod) {
                let previous = self.snapshot.pod(&uid).cloned();
                let moved = self.snapshot.pod_location(&uid) != pod_node_name(&pod);
                self.snapshot.add_pod(pod.clone());
                match previous {
                    None => self.event(ClusterEvent::AssignedPodAdded, now),
                    Some(_) if moved => self.event(ClusterEvent::AssignedPodAdded, now),
                    Some(previous) if previous.metadata.labels != pod.metadata.labels => {
                        self.event(ClusterEvent::AssignedPodChanged, now)
                    }
                    Some(_) => {}
                }
            } else if self.snapshot.remove_pod(&uid).is_some() {
                self.event(ClusterEvent::AssignedPodDeleted, now);
            }
            return;
        }
        if self.assumed.contains_key(&uid) {
            // An event from before our binding landed; the assumption stands.
            return;
        }
        if self.wants(&pod) {
            self.queue.add(pod, now);
        } else {
            self.queue.delete(&key);
        }
    }

    pub fn pod_deleted(&mut self, pod: &Pod, now: Instant) {
        let uid = pod_uid(pod);
        self.assumed.remove(uid);
        self.gated.remove(&PodKey::of(pod));
        self.queue.delete(&PodKey::of(pod));
        if self.snapshot.remove_pod(uid).is_some() {
            self.event(ClusterEvent::AssignedPodDeleted, now);
        }
    }

    /// Replaces every pod with the listed ones (assumed pods the list does
    /// not show bound stay assumed).
    pub fn pods_listed(&mut self, pods: Vec<Arc<Pod>>, now: Instant) {
        let listed: HashSet<&str> = pods.iter().map(|p| pod_uid(p)).collect();
        let gone: Vec<String> = self
            .snapshot
            .pod_uids()
            .filter(|uid| !listed.contains(uid) && !self.assumed.contains_key(*uid))
            .map(str::to_string)
            .collect();
        for uid in gone {
            self.snapshot.remove_pod(&uid);
        }
        let keys: HashSet<PodKey> = pods.iter().map(|p| PodKey::of(p)).collect();
        let stale: Vec<PodKey> = self.queue.keys().filter(|k| !keys.contains(*k)).cloned().collect();
        for key in stale {
            self.queue.delete(&key);
        }
        self.gated.clear();
        for pod in pods {
            self.pod_applied(pod, now);
        }
        self.pods_listed = true;
        self.event(ClusterEvent::AssignedPodDeleted, now);
    }

    /// Places `pod` on `node` before the binding is written, so that the
    /// next cycles count it.
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        let mut assumed = pod.clone();
        if let Some(spec) = assumed.spec.as_mut() {
            spec.node_name = Some(node.to_string());
        }
        let assumed = Arc::new(assumed);
        self.snapshot.add_pod(assumed.clone());
        self.assumed.insert(pod_uid(pod).to_string(), assumed);
    }

    /// Undoes [`assume`](Self::assume) after a failed binding; a pod the
    /// watch has since shown bound is left where the watch put it.
    pub fn forget(&mut self, uid: &str) {
        if self.assumed.remove(uid).is_some() {
            self.snapshot.remove_pod(uid);
        }
    }

    #[cfg(test)]
    pub fn assumed_len(&self) -> usize {
        self.assumed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Place;
    use serde_json::{Value, json};
    use std::time::Duration;

    fn cache() -> Cache {
        let interest = BTreeMap::from([
            (
                ClusterEvent::NodeAdded,
                BTreeSet::from(["NodeResourcesFit".to_string()]),
            ),
            (
                ClusterEvent::AssignedPodDeleted,
                BTreeSet::from(["NodeResourcesFit".to_string()]),
            ),
        ]);
        Cache::new(
            QueueConfig::default(),
            BTreeSet::from(["default-scheduler".to_string()]),
            interest,
        )
    }

    fn pod(name: &str, spec: Value) -> Arc<Pod> {
        let mut object = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"containers": [{"name": "c"}]},
        });
        if let Some(map) = spec.as_object() {
            for (k, v) in map {
                object["spec"][k] = v.clone();
            }
        }
        Arc::new(serde_json::from_value(object).unwrap())
    }

    fn node(name: &str) -> Arc<Node> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
    }

    fn key(name: &str) -> PodKey {
        PodKey {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn only_pending_pods_of_our_profiles_are_queued() {
        let now = Instant::now();
        let mut cache = cache();
        let cases = [
            ("default", json!({}), true),
            ("named-default", json!({"schedulerName": "default-scheduler"}), true),
            ("empty-name", json!({"schedulerName": ""}), true),
            ("other", json!({"schedulerName": "other-scheduler"}), false),
            ("bound", json!({"nodeName": "n"}), false),
            ("gated", json!({"schedulingGates": [{"name": "wait"}]}), false),
        ];
        for (name, spec, queued) in cases {
            cache.pod_applied(pod(name, spec), now);
            assert_eq!(cache.queue.contains(&key(name)), queued, "{name}");
        }
        let mut deleting = (*pod("deleting", json!({}))).clone();
        deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        cache.pod_applied(Arc::new(deleting), now);
        assert!(!cache.queue.contains(&key("deleting")));
    }

    #[test]
    fn bound_pods_are_placed_and_leave_the_queue() {
        let now = Instant::now();
        let mut cache = cache();
        cache.node_applied(node("n"), now);
        cache.pod_applied(pod("p", json!({})), now);
        assert!(cache.queue.contains(&key("p")));
        cache.pod_applied(pod("p", json!({"nodeName": "n"})), now);
        assert!(!cache.queue.contains(&key("p")));
        assert_eq!(cache.snapshot.pod_location("uid-p"), Some("n"));
        cache.pod_deleted(&pod("p", json!({"nodeName": "n"})), now);
        assert_eq!(cache.snapshot.pod_location("uid-p"), None);
    }

    #[test]
    fn assumptions_hold_until_confirmed_or_forgotten() {
        let now = Instant::now();
        let mut cache = cache();
        cache.node_applied(node("n"), now);
        let p = pod("p", json!({}));
        cache.pod_applied(p.clone(), now);
        let popped = cache.queue.pop(now).unwrap();
        cache.assume(&popped.pod, "n");
        assert_eq!(cache.snapshot.pod_location("uid-p"), Some("n"));
        // A stale pending version does not undo the assumption or requeue it.
        cache.pod_applied(p.clone(), now);
        assert_eq!(cache.snapshot.pod_location("uid-p"), Some("n"));
        assert_eq!(cache.queue.place(&key("p")), Some(Place::InFlight));
        // A relist that does not show it bound keeps it.
        cache.pods_listed(vec![p.clone()], now);
        assert_eq!(cache.snapshot.pod_location("uid-p"), Some("n"));
        cache.forget("uid-p");
        assert_eq!(cache.snapshot.pod_location("uid-p"), None);

        cache.assume(&popped.pod, "n");
        cache.pod_applied(pod("p", json!({"nodeName": "n"})), now);
        assert_eq!(cache.assumed_len(), 0);
        cache.forget("uid-p");
        assert_eq!(
            cache.snapshot.pod_location("uid-p"),
            Some("n"),
            "confirmed pods are not forgotten"
        );
    }

    #[test]
    fn cluster_changes_retry_unschedulable_pods() {
        let t0 = Instant::now();
        let mut cache = cache();
        cache.node_applied(node("n"), t0);
        cache.pod_applied(pod("p", json!({})), t0);
        let popped = cache.queue.pop(t0).unwrap();
        cache.queue.requeue(
            &popped,
            crate::queue::Requeue::Unschedulable {
                rejected_by: BTreeSet::from(["NodeResourcesFit".to_string()]),
            },
            t0,
        );
        let later = t0 + Duration::from_secs(5);
        // A heartbeat-only node update is not a change.
        let mut heartbeat = (*node("n")).clone();
        heartbeat.status = Some(Default::default());
        cache.node_applied(Arc::new(heartbeat), later);
        assert_eq!(cache.queue.place(&key("p")), Some(Place::Unschedulable(t0)));
        // A new node is.
        cache.node_applied(node("m"), later);
        assert_eq!(cache.queue.place(&key("p")), Some(Place::Active));
    }

    #[test]
    fn relists_replace_the_state() {
        let now = Instant::now();
        let mut cache = cache();
        cache.nodes_listed(vec![node("a"), node("b")], now);
        cache.pods_listed(vec![pod("x", json!({"nodeName": "a"})), pod("q", json!({}))], now);
        assert!(cache.synced());
        cache.nodes_listed(vec![node("b")], now);
        assert!(cache.snapshot.node("a").is_none());
        cache.pods_listed(vec![], now);
        assert_eq!(cache.snapshot.pod_location("uid-x"), None);
        assert!(!cache.queue.contains(&key("q")));
    }
}
