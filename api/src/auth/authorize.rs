//! The authorizer chain: members of `system:masters` may do anything; a
//! node is asked of the Node authorizer; then RBAC decides. Both answer
//! from in-memory snapshots that follow the store, so a decision costs a
//! few hash lookups and no I/O.
//!
//! The snapshots lag the store by a watch event. So that a client that
//! writes a Role or binding and then relies on it is not refused, the
//! server answers an RBAC write only once the policy has caught up with it
//! ([`Authorizer::caught_up`]).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::PolicyRule;
use skiff_auth::node::Graph;
use skiff_auth::rbac::{Objects, Policy};
use skiff_auth::user::names;
use skiff_auth::{Attributes, Decision, UserInfo};
use skiff_store::{KeyRange, RangeRequest, ReadConsistency, Store};
use tokio::sync::watch;

use super::follow::{self, Follower};

const RBAC_PREFIX: &str = "/registry/rbac.authorization.k8s.io/";
const PODS_PREFIX: &str = "/registry/core/pods/";

/// The Node authorizer and RBAC, over snapshots of the store.
#[derive(Debug, Clone)]
pub struct Authorizer {
    policy: watch::Receiver<(u64, Arc<Policy>)>,
    graph: Arc<RwLock<Graph>>,
}

impl Authorizer {
    /// An authorizer that follows `store`. Until the first list is done,
    /// it allows only `system:masters`.
    pub fn follow(store: &Store) -> Authorizer {
        let (sender, policy) = watch::channel((0, Arc::new(Policy::default())));
        follow::spawn(
            store.clone(),
            RBAC_PREFIX.into(),
            RbacFollower {
                objects: Objects::default(),
                sender,
            },
        );
        let graph = Arc::new(RwLock::new(Graph::new(node_rules())));
        follow::spawn(
            store.clone(),
            PODS_PREFIX.into(),
            GraphFollower { graph: graph.clone() },
        );
        Authorizer { policy, graph }
    }

    /// An authorizer that allows `system:masters` only, following nothing
    /// (for servers that run without a store watch, in tests).
    pub fn masters_only() -> Authorizer {
        let (_, policy) = watch::channel((0, Arc::new(Policy::default())));
        Authorizer {
            policy,
            graph: Arc::new(RwLock::new(Graph::default())),
        }
    }

    pub fn authorize(&self, attributes: &Attributes) -> Decision {
        if attributes.user.in_group(names::MASTERS) {
            return Decision::Allow;
        }
        let mut reasons = Vec::new();
        if let Some(node) = attributes.user.node_name() {
            match self.graph().authorize(node, attributes) {
                Decision::NoOpinion(reason) => reasons.push(reason),
                decided => return decided,
            }
        }
        match self.policy().authorize(attributes) {
            Decision::NoOpinion(reason) => reasons.push(reason),
            decided => return decided,
        }
        reasons.retain(|r| !r.is_empty());
        Decision::NoOpinion(reasons.join(", "))
    }

    /// The current RBAC policy.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.borrow().1.clone()
    }

    /// The RBAC rules `user` holds in `namespace` (cluster-wide when
    /// empty); everything for `system:masters`.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        if user.in_group(names::MASTERS) {
            return vec![everything()];
        }
        self.policy().rules_for(user, namespace)
    }

    fn graph(&self) -> std::sync::RwLockReadGuard<'_, Graph> {
        self.graph.read().unwrap_or_else(|p| p.into_inner())
    }

    /// After a write to an RBAC object: waits (a bounded time) until the
    /// policy reflects every RBAC object now stored, so the writer's next
    /// request is decided by what it just wrote. (A deletion's revision is
    /// not seen here, so a revoked right may outlive its binding by a
    /// watch event, as in Kubernetes.)
    pub async fn sync_rbac(&self, store: &Store) {
        let newest = store
            .range(
                RangeRequest::new(KeyRange::prefix(RBAC_PREFIX)),
                ReadConsistency::Serializable,
            )
            .await
            .map(|page| page.kvs.iter().map(|kv| kv.mod_revision).max().unwrap_or(0));
        if let Ok(revision) = newest {
            self.caught_up(revision).await;
        }
    }

    /// Waits (a bounded time) until the RBAC policy reflects the store at
    /// `revision`.
    pub async fn caught_up(&self, revision: u64) {
        let mut policy = self.policy.clone();
        let wait = policy.wait_for(|(seen, _)| *seen >= revision);
        if tokio::time::timeout(Duration::from_secs(2), wait).await.is_err() {
            tracing::warn!(revision, "the RBAC policy did not catch up with a write within 2 s");
        }
    }

    /// Reads the pods of `namespace` from the store into the Node
    /// authorizer's graph: a node that has just seen a pod bound to it may
    /// ask for its Secrets before the graph's watch has brought the
    /// binding.
    pub async fn refresh_namespace(&self, store: &Store, namespace: &str) {
        let prefix = format!("{PODS_PREFIX}{namespace}/");
        let page = match store
            .range(
                RangeRequest::new(KeyRange::prefix(prefix)),
                ReadConsistency::Serializable,
            )
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::debug!(%namespace, %error, "cannot read pods for the Node authorizer");
                return;
            }
        };
        let mut graph = self.graph.write().unwrap_or_else(|p| p.into_inner());
        for kv in &page.kvs {
            if let Some((ns, name)) = pod_key(&String::from_utf8_lossy(&kv.key)) {
                let pod: Option<Pod> = serde_json::from_slice(&kv.value).ok();
                graph.set_pod(ns, name, pod.as_ref());
            }
        }
    }
}

/// `*` on everything, as `cluster-admin` grants it.
fn everything() -> PolicyRule {
    PolicyRule {
        verbs: vec!["*".into()],
        api_groups: Some(vec!["*".into()]),
        resources: Some(vec!["*".into()]),
        ..Default::default()
    }
}

/// What every node may do besides reading what its pods name: the rules
/// of `system:node` and `skiff:node`, compiled in as kube-apiserver
/// compiles them into its Node authorizer.
fn node_rules() -> Vec<PolicyRule> {
    skiff_auth::bootstrap::policy()
        .cluster_roles
        .into_iter()
        .filter(|role| matches!(role.metadata.name.as_deref(), Some("system:node" | "skiff:node")))
        .flat_map(|role| role.rules.unwrap_or_default())
        .collect()
}

/// Rebuilds the policy after each batch of RBAC changes.
struct RbacFollower {
    objects: Objects,
    sender: watch::Sender<(u64, Arc<Policy>)>,
}

/// `<kind>/[<namespace>/]<name>` of a key under the RBAC prefix.
fn split(key: &str) -> Option<(&str, Option<&str>, &str)> {
    let rest = key.strip_prefix(RBAC_PREFIX)?;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(name), None, None) => Some((kind, None, name)),
        (Some(kind), Some(ns), Some(name), None) => Some((kind, Some(ns), name)),
        _ => None,
    }
}

impl Follower for RbacFollower {
    fn reset(&mut self) {
        self.objects = Objects::default();
    }

    fn put(&mut self, key: &str, value: &[u8]) {
        let Some((kind, namespace, name)) = split(key) else {
            return;
        };
        let o = &mut self.objects;
        let ns = || namespace.unwrap_or_default().to_string();
        let decoded = match kind {
            "roles" => serde_json::from_slice(value).map(|r| {
                o.roles.insert((ns(), name.into()), r);
            }),
            "clusterroles" => serde_json::from_slice(value).map(|r| {
                o.cluster_roles.insert(name.into(), r);
            }),
            "rolebindings" => serde_json::from_slice(value).map(|b| {
                o.role_bindings.insert((ns(), name.into()), b);
            }),
            "clusterrolebindings" => serde_json::from_slice(value).map(|b| {
                o.cluster_role_bindings.insert(name.into(), b);
            }),
            _ => Ok(()),
        };
        if let Err(error) = decoded {
            tracing::warn!(%key, %error, "stored RBAC object does not decode; it grants nothing");
        }
    }

    fn delete(&mut self, key: &str) {
        let Some((kind, namespace, name)) = split(key) else {
            return;
        };
        let o = &mut self.objects;
        let id = (namespace.unwrap_or_default().to_string(), name.to_string());
        match kind {
            "roles" => drop(o.roles.remove(&id)),
            "clusterroles" => drop(o.cluster_roles.remove(name)),
            "rolebindings" => drop(o.role_bindings.remove(&id)),
            "clusterrolebindings" => drop(o.cluster_role_bindings.remove(name)),
            _ => {}
        }
    }

    fn settled(&mut self, revision: u64) {
        let policy = Arc::new(Policy::new(&self.objects));
        self.sender.send_replace((revision, policy));
    }
}

/// Feeds each pod's node and references to the Node authorizer's graph.
struct GraphFollower {
    graph: Arc<RwLock<Graph>>,
}

impl GraphFollower {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Graph> {
        self.graph.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The namespace and name of a key under the pods prefix.
fn pod_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(PODS_PREFIX)?.split_once('/')
}

impl Follower for GraphFollower {
    fn reset(&mut self) {
        self.write().clear();
    }

    fn put(&mut self, key: &str, value: &[u8]) {
        let Some((namespace, name)) = pod_key(key) else {
            return;
        };
        let pod: Option<Pod> = serde_json::from_slice(value).ok();
        self.write().set_pod(namespace, name, pod.as_ref());
    }

    fn delete(&mut self, key: &str) {
        if let Some((namespace, name)) = pod_key(key) {
            self.write().set_pod(namespace, name, None);
        }
    }

    fn settled(&mut self, _revision: u64) {}
}
