//! The Node authorizer and NodeRestriction: what a node agent
//! (`system:node:<name>` in `system:nodes`) may read and write.
//!
//! A node may read a Secret, ConfigMap, PersistentVolumeClaim or
//! ServiceAccount (a token for it) only while a pod bound to that node
//! names it. [`Graph`] keeps those relationships, fed one pod at a time
//! from a watch. Everything else a node may do is a fixed set of rules
//! (the ClusterRoles `system:node` and `skiff:node`, which nothing binds),
//! narrowed by [`restrict`] to the node's own objects: its Node, its Lease,
//! the status of its pods.
//!
//! Not covered yet: PersistentVolumes (reached through claims) and
//! ResourceClaims; a node may not `list` or `watch` a single Secret by
//! field selector, as Kubernetes 1.31 allows.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::rbac::rule_allows;
use crate::{Attributes, Decision, ResourceAttributes, Target};

/// What a pod may lead its node to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reachable {
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    ServiceAccount,
}

impl Reachable {
    fn of(resource: &ResourceAttributes, verb: &str) -> Option<Reachable> {
        if !resource.group.is_empty() {
            return None;
        }
        match (resource.resource.as_str(), resource.subresource.as_str(), verb) {
            ("secrets", "", _) => Some(Reachable::Secret),
            ("configmaps", "", _) => Some(Reachable::ConfigMap),
            ("persistentvolumeclaims", "", _) => Some(Reachable::PersistentVolumeClaim),
            ("serviceaccounts", "token", "create") => Some(Reachable::ServiceAccount),
            _ => None,
        }
    }
}

/// One pod's node and what it names.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Edges {
    node: String,
    targets: Vec<(Reachable, String)>,
}

/// Which objects each node's pods name. Counted, since several pods on a
/// node may name one Secret.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pods: HashMap<(String, String), Edges>,
    reachable: HashMap<(String, Reachable, String, String), u32>,
    /// The rules every node holds, from `system:node` and `skiff:node`.
    rules: Vec<PolicyRule>,
}

impl Graph {
    pub fn new(rules: Vec<PolicyRule>) -> Graph {
        Graph {
            rules,
            ..Default::default()
        }
    }

    /// Records a pod as it now is (`None`: deleted).
    pub fn set_pod(&mut self, namespace: &str, name: &str, pod: Option<&Pod>) {
        let key = (namespace.to_string(), name.to_string());
        let edges = pod.and_then(|pod| {
            let spec = pod.spec.as_ref()?;
            let node = spec.node_name.clone().filter(|n| !n.is_empty())?;
            Some(Edges {
                node,
                targets: targets(name, spec),
            })
        });
        if self.pods.get(&key) == edges.as_ref() {
            return;
        }
        if let Some(old) = self.pods.remove(&key) {
            for (kind, target) in old.targets {
                let entry = (old.node.clone(), kind, namespace.to_string(), target);
                if let Some(count) = self.reachable.get_mut(&entry) {
                    *count -= 1;
                    if *count == 0 {
                        self.reachable.remove(&entry);
                    }
                }
            }
        }
        if let Some(edges) = edges {
            for (kind, target) in &edges.targets {
                *self
                    .reachable
                    .entry((edges.node.clone(), *kind, namespace.to_string(), target.clone()))
                    .or_default() += 1;
            }
            self.pods.insert(key, edges);
        }
    }

    /// Forgets every pod, before a relist.
    pub fn clear(&mut self) {
        self.pods.clear();
        self.reachable.clear();
    }

    /// Whether a pod on `node` names the object.
    pub fn reaches(&self, node: &str, kind: Reachable, namespace: &str, name: &str) -> bool {
        // Lookups by borrowed parts would need a custom key type; the
        // allocation is a few strings per check.
        self.reachable
            .contains_key(&(node.to_string(), kind, namespace.to_string(), name.to_string()))
    }

    /// The Node authorizer's decision for `node` (already known to be the
    /// requesting user's node).
    pub fn authorize(&self, node: &str, attributes: &Attributes) -> Decision {
        let Target::Resource(resource) = &attributes.target else {
            return self.by_rules(attributes);
        };
        let Some(kind) = Reachable::of(resource, &attributes.verb) else {
            return self.by_rules(attributes);
        };
        // Only single objects, read (or, for ServiceAccounts, a token).
        let verb_ok = match kind {
            Reachable::ServiceAccount => attributes.verb == "create",
            _ => attributes.verb == "get",
        };
        if !verb_ok || resource.name.is_empty() {
            return Decision::NoOpinion(format!(
                "can only {} individual {} a pod on node '{node}' names",
                if kind == Reachable::ServiceAccount {
                    "create tokens for"
                } else {
                    "get"
                },
                resource.resource
            ));
        }
        if self.reaches(node, kind, &resource.namespace, &resource.name) {
            Decision::Allow
        } else {
            Decision::NoOpinion(format!("no relationship found between node '{node}' and this object"))
        }
    }

    fn by_rules(&self, attributes: &Attributes) -> Decision {
        if self
            .rules
            .iter()
            .any(|rule| rule_allows(rule, &attributes.verb, &attributes.target))
        {
            Decision::Allow
        } else {
            Decision::NoOpinion(String::new())
        }
    }
}

/// What a pod's spec names in its own namespace.
fn targets(pod: &str, spec: &PodSpec) -> Vec<(Reachable, String)> {
    let mut out = Vec::new();
    let mut add = |kind: Reachable, name: Option<&String>| {
        if let Some(name) = name.filter(|n| !n.is_empty())
            && !out.iter().any(|(k, n)| *k == kind && n == name)
        {
            out.push((kind, name.clone()));
        }
    };
    let account = spec
        .service_account_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    add(Reachable::ServiceAccount, Some(&account));
    for secret in spec.image_pull_secrets.iter().flatten() {
        add(Reachable::Secret, Some(&secret.name));
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(secret) = &volume.secret {
            add(Reachable::Secret, secret.secret_name.as_ref());
        }
        if let Some(map) = &volume.config_map {
            add(Reachable::ConfigMap, Some(&map.name));
        }
        if let Some(claim) = &volume.persistent_volume_claim {
            add(Reachable::PersistentVolumeClaim, Some(&claim.claim_name));
        }
        if volume.ephemeral.is_some() {
            add(
                Reachable::PersistentVolumeClaim,
                Some(&format!("{pod}-{}", volume.name)),
            );
        }
        for source in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(secret) = &source.secret {
                add(Reachable::Secret, Some(&secret.name));
            }
            if let Some(map) = &source.config_map {
                add(Reachable::ConfigMap, Some(&map.name));
            }
        }
        // Secrets a CSI, Ceph or similar volume names are left out: skiff
        // runs no such volume.
    }
    // Every kind of container: env and envFrom name Secrets and ConfigMaps.
    let environments = spec
        .containers
        .iter()
        .map(|c| (&c.env, &c.env_from))
        .chain(spec.init_containers.iter().flatten().map(|c| (&c.env, &c.env_from)))
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| (&c.env, &c.env_from)),
        );
    for (env, env_from) in environments {
        for env in env.iter().flatten() {
            let from = env.value_from.as_ref();
            add(
                Reachable::Secret,
                from.and_then(|f| f.secret_key_ref.as_ref()).map(|r| &r.name),
            );
            add(
                Reachable::ConfigMap,
                from.and_then(|f| f.config_map_key_ref.as_ref()).map(|r| &r.name),
            );
        }
        for from in env_from.iter().flatten() {
            add(Reachable::Secret, from.secret_ref.as_ref().map(|r| &r.name));
            add(Reachable::ConfigMap, from.config_map_ref.as_ref().map(|r| &r.name));
        }
    }
    out
}

/// NodeRestriction: what a node may write, beyond what its rules allow,
/// limited to its own objects. `object` is the object written (for a
/// delete, the stored one); `old` the stored one on an update.
pub fn restrict(
    node: &str,
    operation: Operation,
    resource: &ResourceAttributes,
    object: Option<&serde_json::Value>,
    old: Option<&serde_json::Value>,
) -> Result<(), String> {
    let node_of = |o: Option<&serde_json::Value>| {
        o.and_then(|o| o.pointer("/spec/nodeName"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    match (resource.group.as_str(), resource.resource.as_str()) {
        ("", "nodes") => {
            let name = object
                .and_then(|o| o.pointer("/metadata/name"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or(&resource.name);
            if name != node {
                return Err(format!("node '{node}' is not allowed to modify node '{name}'"));
            }
            Ok(())
        }
        ("", "pods") => {
            let bound = node_of(old).or_else(|| node_of(object));
            match operation {
                Operation::Create if resource.subresource.is_empty() => {
                    Err(format!("node '{node}' may not create pods (skiff has no mirror pods)"))
                }
                _ if bound.as_deref() == Some(node) => Ok(()),
                _ => Err(format!("node '{node}' can only {} pods bound to it", operation.verb())),
            }
        }
        ("coordination.k8s.io", "leases") => {
            if resource.namespace != "kube-node-lease" || (!resource.name.is_empty() && resource.name != node) {
                return Err(format!(
                    "node '{node}' can only access its own lease in kube-node-lease"
                ));
            }
            let name = object
                .and_then(|o| o.pointer("/metadata/name"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or(node);
            if name != node {
                return Err(format!(
                    "node '{node}' can only access its own lease in kube-node-lease"
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The writes [`restrict`] distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::UserInfo;

    fn pod(node: &str, spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["nodeName"] = json!(node);
        spec["containers"] = json!([{"name": "c", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}]}]);
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})).unwrap()
    }

    fn get(node: &str, resource: &str, name: &str) -> Attributes {
        Attributes::resource(
            UserInfo::node(node),
            "get",
            ResourceAttributes {
                namespace: "ns".into(),
                resource: resource.into(),
                name: name.into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_node_reads_what_its_pods_name_while_they_are_bound() {
        let mut graph = Graph::new(Vec::new());
        let spec = json!({
            "serviceAccountName": "builder",
            "volumes": [{"name": "v", "secret": {"secretName": "vol-secret"}},
                        {"name": "c", "configMap": {"name": "settings"}}],
        });
        graph.set_pod("ns", "p", Some(&pod("n1", spec.clone())));
        assert!(graph.authorize("n1", &get("n1", "secrets", "vol-secret")).is_allowed());
        assert!(graph.authorize("n1", &get("n1", "secrets", "env-secret")).is_allowed());
        assert!(graph.authorize("n1", &get("n1", "configmaps", "settings")).is_allowed());
        assert!(!graph.authorize("n2", &get("n2", "secrets", "vol-secret")).is_allowed());
        assert!(!graph.authorize("n1", &get("n1", "secrets", "other")).is_allowed());
        let token = Attributes::resource(
            UserInfo::node("n1"),
            "create",
            ResourceAttributes {
                namespace: "ns".into(),
                resource: "serviceaccounts".into(),
                subresource: "token".into(),
                name: "builder".into(),
                ..Default::default()
            },
        );
        assert!(graph.authorize("n1", &token).is_allowed());
        // A list is never allowed, even of named objects.
        let mut list = get("n1", "secrets", "");
        list.verb = "list".into();
        assert!(!graph.authorize("n1", &list).is_allowed());
        // Moved to another node, then deleted.
        graph.set_pod("ns", "p", Some(&pod("n2", spec)));
        assert!(!graph.authorize("n1", &get("n1", "secrets", "vol-secret")).is_allowed());
        assert!(graph.authorize("n2", &get("n2", "secrets", "vol-secret")).is_allowed());
        graph.set_pod("ns", "p", None);
        assert!(!graph.authorize("n2", &get("n2", "secrets", "vol-secret")).is_allowed());
        assert!(graph.reachable.is_empty());
    }

    #[test]
    fn two_pods_naming_one_secret_keep_it_reachable_until_both_go() {
        let mut graph = Graph::new(Vec::new());
        let spec = json!({"volumes": [{"name": "v", "secret": {"secretName": "s"}}]});
        graph.set_pod("ns", "a", Some(&pod("n1", spec.clone())));
        graph.set_pod("ns", "b", Some(&pod("n1", spec)));
        graph.set_pod("ns", "a", None);
        assert!(graph.reaches("n1", Reachable::Secret, "ns", "s"));
        graph.set_pod("ns", "b", None);
        assert!(!graph.reaches("n1", Reachable::Secret, "ns", "s"));
    }

    #[test]
    fn nodes_write_only_their_own_objects() {
        let node = |name: &str| ResourceAttributes {
            resource: "nodes".into(),
            name: name.into(),
            ..Default::default()
        };
        assert!(restrict("n1", Operation::Update, &node("n1"), None, None).is_ok());
        assert!(restrict("n1", Operation::Update, &node("n2"), None, None).is_err());
        let pods = ResourceAttributes {
            namespace: "ns".into(),
            resource: "pods".into(),
            subresource: "status".into(),
            name: "p".into(),
            ..Default::default()
        };
        let on = |n: &str| json!({"spec": {"nodeName": n}});
        assert!(restrict("n1", Operation::Update, &pods, Some(&on("n1")), Some(&on("n1"))).is_ok());
        assert!(restrict("n1", Operation::Update, &pods, Some(&on("n1")), Some(&on("n2"))).is_err());
        let lease = |ns: &str, name: &str| ResourceAttributes {
            namespace: ns.into(),
            group: "coordination.k8s.io".into(),
            resource: "leases".into(),
            name: name.into(),
            ..Default::default()
        };
        assert!(restrict("n1", Operation::Update, &lease("kube-node-lease", "n1"), None, None).is_ok());
        assert!(restrict("n1", Operation::Update, &lease("kube-node-lease", "n2"), None, None).is_err());
        assert!(restrict("n1", Operation::Update, &lease("kube-system", "n1"), None, None).is_err());
    }
}
