//! The cluster as one scheduling cycle sees it.
//!
//! A [`Snapshot`] holds every node as a [`NodeInfo`]: the Node object, the
//! pods bound (or assumed bound) to it that still hold resources, and the
//! sums the plugins compare against. It is plain data: the runner keeps one
//! up to date from its watches, and tests build one from a list of objects.
//! Nodes iterate in name order, so a cycle over a snapshot is
//! deterministic.
//!
//! The runner's cycles do not read the watched snapshot itself, which would
//! hold the watches up for a whole cycle: before each cycle,
//! [`Snapshot::sync_into`] copies just the nodes that changed since the
//! last one into the scheduling loop's own copy (kube-scheduler's
//! `UpdateSnapshot` does the same by generation numbers).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};

use crate::resources::{self, Resources};

/// A pod on a node, with its requests computed once.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// What it requests ([`resources::pod_requests`]).
    pub requests: Resources,
    /// What it counts as for scoring ([`resources::pod_non_zero_requests`]).
    pub non_zero_requests: Resources,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        PodInfo {
            requests: resources::pod_requests(&pod),
            non_zero_requests: resources::pod_non_zero_requests(&pod),
            pod,
        }
    }

    pub fn uid(&self) -> &str {
        pod_uid(&self.pod)
    }
}

/// One node and what is placed on it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    node: Arc<Node>,
    pods: Vec<PodInfo>,
    requested: Resources,
    non_zero_requested: Resources,
    allocatable: Resources,
    /// Normalised image name → size in bytes (0 when not reported);
    /// shared, as it changes only with the Node object.
    images: Arc<HashMap<String, i64>>,
}

impl NodeInfo {
    /// A node with no pods on it.
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let mut info = NodeInfo {
            node: node.clone(),
            pods: Vec::new(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            allocatable: Resources::default(),
            images: Arc::default(),
        };
        info.set_node(node);
        info
    }

    /// Replaces the Node object, keeping the pods.
    fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = resources::node_allocatable(&node);
        self.images = Arc::new(
            node.status
                .as_ref()
                .and_then(|s| s.images.as_ref())
                .into_iter()
                .flatten()
                .flat_map(|image| {
                    let size = image.size_bytes.unwrap_or(0);
                    image
                        .names
                        .iter()
                        .flatten()
                        .map(move |name| (normalize_image_name(name), size))
                })
                .collect(),
        );
        self.node = node;
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The Node object, shared (for plugins that hand it elsewhere).
    pub fn node_object(&self) -> &Arc<Node> {
        &self.node
    }

    /// The node's labels (empty when it has none).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.node.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().get(key).map(String::as_str)
    }

    pub fn taints(&self) -> &[Taint] {
        self.node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[])
    }

    /// Whether the node is cordoned (`spec.unschedulable`).
    pub fn is_unschedulable(&self) -> bool {
        self.node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
    }

    /// The pods bound or assumed here that still hold resources.
    pub fn pods(&self) -> &[PodInfo] {
        &self.pods
    }

    /// The sum of the pods' requests; `pods` is how many there are.
    pub fn requested(&self) -> Resources {
        self.requested
    }

    /// The sum of the pods' requests as scoring counts them.
    pub fn non_zero_requested(&self) -> Resources {
        self.non_zero_requested
    }

    pub fn allocatable(&self) -> Resources {
        self.allocatable
    }

    /// The size of `image` (normalised with [`normalize_image_name`]) if
    /// the node reports having it; 0 when it reports no size.
    pub fn image_size(&self, image: &str) -> Option<i64> {
        self.images.get(image).copied()
    }

    fn add(&mut self, pod: PodInfo) {
        self.requested = self.requested.plus(pod.requests);
        self.non_zero_requested = self.non_zero_requested.plus(pod.non_zero_requests);
        self.pods.push(pod);
    }

    fn remove(&mut self, uid: &str) -> Option<PodInfo> {
        let index = self.pods.iter().position(|p| p.uid() == uid)?;
        let pod = self.pods.swap_remove(index);
        self.requested = self.requested.minus(pod.requests);
        self.non_zero_requested = self.non_zero_requested.minus(pod.non_zero_requests);
        Some(pod)
    }
}

/// Every node, the pods placed on them, and where each pod is.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    nodes: BTreeMap<String, NodeInfo>,
    /// Pod UID → node name, for every pod placed (including on nodes not
    /// known yet).
    locations: HashMap<String, String>,
    /// Pods bound to nodes the snapshot does not have (yet, or any more),
    /// kept so they count again if the node comes back.
    orphans: HashMap<String, Vec<PodInfo>>,
    /// Nodes added, changed or removed since the last [`Snapshot::sync_into`].
    changed: BTreeSet<String>,
}

impl Snapshot {
    /// A snapshot of `nodes` with `pods` placed on them: pods without a
    /// `spec.nodeName` and finished pods are left out.
    pub fn new(nodes: impl IntoIterator<Item = Arc<Node>>, pods: impl IntoIterator<Item = Arc<Pod>>) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for node in nodes {
            snapshot.upsert_node(node);
        }
        for pod in pods {
            if holds_resources(&pod) {
                snapshot.add_pod(pod);
            }
        }
        snapshot
    }

    /// The nodes, in name order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &NodeInfo> {
        self.nodes.values()
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds or replaces a node, keeping the pods placed on it; returns the
    /// Node it replaced.
    pub fn upsert_node(&mut self, node: Arc<Node>) -> Option<Arc<Node>> {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.changed.insert(name.clone());
        if let Some(info) = self.nodes.get_mut(&name) {
            let previous = info.node.clone();
            info.set_node(node);
            return Some(previous);
        }
        let mut info = NodeInfo::new(node);
        for pod in self.orphans.remove(&name).into_iter().flatten() {
            info.add(pod);
        }
        self.nodes.insert(name, info);
        None
    }

    /// Removes a node; its pods are remembered in case it returns.
    pub fn remove_node(&mut self, name: &str) -> bool {
        match self.nodes.remove(name) {
            Some(info) => {
                self.changed.insert(name.to_string());
                if !info.pods.is_empty() {
                    self.orphans.insert(name.to_string(), info.pods);
                }
                true
            }
            None => false,
        }
    }

    /// Places `pod` on the node its `spec.nodeName` names, replacing an
    /// earlier placement of the same pod (by UID). A pod without a node
    /// name is ignored; returns whether the pod was placed.
    pub fn add_pod(&mut self, pod: Arc<Pod>) -> bool {
        let Some(node) = pod_node_name(&pod).map(str::to_string) else {
            return false;
        };
        let info = PodInfo::new(pod);
        let uid = info.uid().to_string();
        self.remove_pod(&uid);
        match self.nodes.get_mut(&node) {
            Some(node_info) => {
                node_info.add(info);
                self.changed.insert(node.clone());
            }
            None => self.orphans.entry(node.clone()).or_default().push(info),
        }
        self.locations.insert(uid, node);
        true
    }

    /// Takes the pod with `uid` off its node; returns it if it was placed.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<Pod>> {
        let node = self.locations.remove(uid)?;
        if let Some(info) = self.nodes.get_mut(&node) {
            let pod = info.remove(uid).map(|p| p.pod);
            self.changed.insert(node);
            return pod;
        }
        let orphans = self.orphans.get_mut(&node)?;
        let index = orphans.iter().position(|p| p.uid() == uid)?;
        let pod = orphans.swap_remove(index).pod;
        if orphans.is_empty() {
            self.orphans.remove(&node);
        }
        Some(pod)
    }

    /// The node the pod with `uid` is placed on.
    pub fn pod_location(&self, uid: &str) -> Option<&str> {
        self.locations.get(uid).map(String::as_str)
    }

    /// The placed pod with `uid`.
    pub fn pod(&self, uid: &str) -> Option<&Arc<Pod>> {
        let node = self.locations.get(uid)?;
        let pods = match self.nodes.get(node) {
            Some(info) => &info.pods,
            None => self.orphans.get(node)?,
        };
        pods.iter().find(|p| p.uid() == uid).map(|p| &p.pod)
    }

    /// Brings `copy`'s nodes up to date with this snapshot's by copying
    /// the nodes changed since the last call (every node, the first time);
    /// returns how many. `copy` should be changed by nothing else: it gets
    /// the nodes only, not the pod index, which cycles do not read.
    pub fn sync_into(&mut self, copy: &mut Snapshot) -> usize {
        let changed = std::mem::take(&mut self.changed);
        for name in &changed {
            match self.nodes.get(name) {
                Some(info) => {
                    copy.nodes.insert(name.clone(), info.clone());
                }
                None => {
                    copy.nodes.remove(name);
                }
            }
        }
        changed.len()
    }

    /// The UIDs of every placed pod.
    pub fn pod_uids(&self) -> impl Iterator<Item = &str> {
        self.locations.keys().map(String::as_str)
    }
}

/// The pod's UID (empty when unset, as in hand-built test pods).
pub fn pod_uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// The node the pod is bound to, if any.
pub fn pod_node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Whether the pod has finished (`Succeeded` or `Failed`).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether a pod occupies its node: bound and not finished. A pod being
/// deleted still counts until it is gone, as its containers still run.
pub fn holds_resources(pod: &Pod) -> bool {
    pod_node_name(pod).is_some() && !is_terminal(pod)
}

/// An image reference in one canonical spelling, so that a pod's `nginx`
/// and a node's `docker.io/library/nginx:latest` compare equal: the Docker
/// Hub registry and `library/` namespace are made explicit, and a missing
/// tag becomes `latest` (unless a digest pins the image).
pub fn normalize_image_name(image: &str) -> String {
    let (first, rest) = match image.split_once('/') {
        Some((first, rest)) => (Some(first), rest),
        None => (None, image),
    };
    let has_registry = first.is_some_and(|f| f.contains('.') || f.contains(':') || f == "localhost");
    let mut name = match (first, has_registry) {
        (Some(_), true) => image.to_string(),
        (Some(first), false) => format!("docker.io/{first}/{rest}"),
        (None, _) => format!("docker.io/library/{rest}"),
    };
    let last = name.rsplit('/').next().unwrap_or("");
    if !last.contains(':') && !last.contains('@') {
        name.push_str(":latest");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {
                    "allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10"},
                    "images": [{"names": ["docker.io/library/nginx:1.25", "nginx@sha256:abc"], "sizeBytes": 1000}],
                },
            }))
            .unwrap(),
        )
    }

    fn pod(uid: &str, node: Option<&str>, phase: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": uid, "namespace": "default", "uid": uid},
                "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
                "status": {"phase": phase},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn pods_are_placed_and_counted() {
        let snapshot = Snapshot::new(
            [node("a"), node("b")],
            [
                pod("1", Some("a"), "Running"),
                pod("2", Some("a"), "Pending"),
                pod("3", Some("a"), "Succeeded"),
                pod("4", None, "Pending"),
            ],
        );
        let a = snapshot.node("a").unwrap();
        assert_eq!(a.requested(), Resources::new(2000, 0, 2));
        assert_eq!(a.non_zero_requested().memory, 2 * resources::DEFAULT_MEMORY_REQUEST);
        assert_eq!(a.allocatable(), Resources::new(4000, 4 << 30, 10));
        assert_eq!(snapshot.node("b").unwrap().pods().len(), 0);
        assert_eq!(snapshot.pod_location("1"), Some("a"));
        assert_eq!(snapshot.pod_location("3"), None);
        assert_eq!(snapshot.nodes().map(NodeInfo::name).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn pods_move_and_survive_their_node_leaving() {
        let mut snapshot = Snapshot::new([node("a"), node("b")], []);
        snapshot.add_pod(pod("1", Some("a"), "Running"));
        snapshot.add_pod(pod("1", Some("b"), "Running"));
        assert_eq!(snapshot.node("a").unwrap().requested(), Resources::default());
        assert_eq!(snapshot.node("b").unwrap().requested().pods, 1);

        assert!(snapshot.remove_node("b"));
        assert_eq!(snapshot.pod_location("1"), Some("b"));
        assert!(snapshot.pod("1").is_some());
        snapshot.upsert_node(node("b"));
        assert_eq!(snapshot.node("b").unwrap().requested().pods, 1);

        assert!(snapshot.remove_pod("1").is_some());
        assert_eq!(snapshot.node("b").unwrap().requested(), Resources::default());
        assert!(snapshot.remove_pod("1").is_none());
    }

    #[test]
    fn a_copy_follows_by_the_nodes_that_changed() {
        let mut snapshot = Snapshot::new([node("a"), node("b"), node("c")], []);
        let mut copy = Snapshot::default();
        assert_eq!(snapshot.sync_into(&mut copy), 3);
        assert_eq!(snapshot.sync_into(&mut copy), 0);

        snapshot.add_pod(pod("1", Some("a"), "Running"));
        snapshot.remove_node("c");
        snapshot.add_pod(pod("2", Some("c"), "Running"));
        assert_eq!(snapshot.sync_into(&mut copy), 2);
        assert_eq!(copy.node("a").unwrap().requested().pods, 1);
        assert!(copy.node("c").is_none());

        // A pod moving touches both its nodes.
        snapshot.add_pod(pod("1", Some("b"), "Running"));
        assert_eq!(snapshot.sync_into(&mut copy), 2);
        assert_eq!(copy.node("a").unwrap().requested().pods, 0);
        assert_eq!(copy.node("b").unwrap().requested().pods, 1);
        assert_eq!(copy.nodes().map(NodeInfo::name).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn images_are_normalised() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("team/app", "docker.io/team/app:latest"),
            ("ghcr.io/team/app:v1", "ghcr.io/team/app:v1"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost/app@sha256:abc", "localhost/app@sha256:abc"),
        ];
        for (image, normal) in cases {
            assert_eq!(normalize_image_name(image), normal, "{image}");
        }
        let snapshot = Snapshot::new([node("a")], []);
        let a = snapshot.node("a").unwrap();
        assert_eq!(a.image_size(&normalize_image_name("nginx:1.25")), Some(1000));
        assert_eq!(a.image_size(&normalize_image_name("nginx")), None);
    }
}
