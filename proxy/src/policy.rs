//! NetworkPolicy as this node enforces it: the policies, the namespaces'
//! labels and every pod's labels and address, built (purely) into
//! [`Policies`], which says whether one connection may go.
//!
//! A connection is allowed when the source pod's egress policies allow it
//! to reach the target and the target pod's ingress policies allow it
//! from the source ([`skiff_netpolicy`] decides each). Who the source and
//! the target are is the caller's to say, by address and, where it knows
//! it, by pod:
//!
//! * A source address that is a pod's own address (a Wasm pod's: pods on
//!   the host network share the node's) is that pod; any other address is
//!   outside the cluster, matched by `ipBlock` only.
//! * A target is the pod an endpoint names (its Endpoints `targetRef`) or
//!   the pod at the target address.
//!
//! With no policy in the cluster every connection is allowed without a
//! lookup.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use skiff_netpolicy::{Allowed, Direction, Endpoint, NamedPort, Peer, PolicySet, Port, Verdict};

/// A pod as policies see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEntry {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub named_ports: Vec<NamedPort>,
}

impl PodEntry {
    /// What policies see of `pod`.
    pub fn of(pod: &Pod) -> PodEntry {
        PodEntry {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            named_ports: NamedPort::of_pod(pod),
        }
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            namespace: &self.namespace,
            labels: &self.labels,
            named_ports: &self.named_ports,
        }
    }
}

/// Whether a connection may go, and if not, which policies refuse it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// The source pod's egress (`egress: true`) or the target pod's
    /// ingress policies refuse it; `policies` are `namespace/name`.
    Denied {
        egress: bool,
        policies: Vec<Arc<str>>,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }

    /// What a refused caller is told.
    pub fn describe(&self) -> String {
        match self {
            Decision::Allowed => "allowed".into(),
            Decision::Denied { egress, policies } => format!(
                "denied by the {} NetworkPolicy {}",
                if *egress { "egress" } else { "ingress" },
                policies.iter().map(|p| p.as_ref()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// Every policy and the pods they may speak of.
#[derive(Debug, Default)]
pub struct Policies {
    set: PolicySet,
    pods: HashMap<(String, String), Arc<PodEntry>>,
    /// Pods by their own address (not host-network pods).
    by_ip: HashMap<IpAddr, Arc<PodEntry>>,
}

impl Policies {
    pub fn build(policies: &[Arc<NetworkPolicy>], namespaces: &[Arc<Namespace>], pods: &[Arc<Pod>]) -> Policies {
        let set = PolicySet::new(policies, namespaces);
        if set.is_empty() {
            return Policies::default();
        }
        let mut built = Policies {
            set,
            ..Policies::default()
        };
        for pod in pods {
            let entry = Arc::new(PodEntry::of(pod));
            let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
            if let Some(ip) = ip.and_then(|ip| ip.parse::<IpAddr>().ok())
                && !host_network
            {
                built.by_ip.insert(ip, entry.clone());
            }
            built.pods.insert((entry.namespace.clone(), entry.name.clone()), entry);
        }
        built
    }

    /// Whether no policy exists, so that everything is allowed.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The pod with this address of its own.
    pub fn pod_at(&self, ip: IpAddr) -> Option<&PodEntry> {
        self.by_ip.get(&ip).map(Arc::as_ref)
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodEntry> {
        self.pods
            .get(&(namespace.to_string(), name.to_string()))
            .map(Arc::as_ref)
    }

    /// May `source` connect to `target` (the pod behind it, when the
    /// caller knows it; else the pod at its address) on `port`?
    pub fn connection(&self, source: IpAddr, target: IpAddr, target_pod: Option<&PodEntry>, port: Port) -> Decision {
        if self.set.is_empty() {
            return Decision::Allowed;
        }
        let source_pod = self.pod_at(source);
        let target_pod = target_pod.or_else(|| self.pod_at(target));
        if let Some(from) = source_pod
            && let Verdict::Denied { policies } = self.set.egress(&from.endpoint(), &peer(target, target_pod), port)
        {
            return Decision::Denied { egress: true, policies };
        }
        if let Some(to) = target_pod
            && let Verdict::Denied { policies } = self.set.ingress(&to.endpoint(), &peer(source, source_pod), port)
        {
            return Decision::Denied {
                egress: false,
                policies,
            };
        }
        Decision::Allowed
    }

    /// What `pod`'s policies allow in `direction`, spelled as address and
    /// port sets for a packet filter: selector peers become the addresses
    /// of the pods they match (pods with addresses of their own).
    pub fn allowed(&self, pod: &PodEntry, direction: Direction) -> Allowed {
        if !self.set.selects(&pod.endpoint()) {
            return Allowed::Everything;
        }
        let peers: Vec<(IpAddr, Endpoint<'_>)> = self.by_ip.iter().map(|(ip, p)| (*ip, p.endpoint())).collect();
        self.set.allowed(&pod.endpoint(), direction, &peers)
    }
}

/// The other side of a connection: a pod when one is known.
fn peer(ip: IpAddr, pod: Option<&PodEntry>) -> Peer<'_> {
    match pod {
        Some(pod) => Peer::pod(ip, pod.endpoint()),
        None => Peer::outside(ip),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse<T: k8s_openapi::serde::de::DeserializeOwned>(value: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn pod(name: &str, app: &str, ip: &str, host_network: bool) -> Arc<Pod> {
        parse(
            json!({"metadata": {"name": name, "namespace": "shop", "labels": {"app": app}},
            "spec": {"hostNetwork": host_network, "containers": [{"name": "main", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"podIP": ip}}),
        )
    }

    #[test]
    fn sources_and_targets_are_pods_by_address_or_by_name() {
        let policies = [parse::<NetworkPolicy>(json!({
            "metadata": {"name": "db-from-api", "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": "http"}]}]}
        }))];
        let namespaces = [parse::<Namespace>(json!({"metadata": {"name": "shop"}}))];
        let pods = [
            pod("api", "api", "127.1.0.2", false),
            pod("web", "web", "127.1.0.3", false),
            pod("db", "db", "127.1.0.4", false),
            pod("runc-db", "db", "127.0.0.1", true),
        ];
        let policies = Policies::build(&policies, &namespaces, &pods);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let db = ip("127.1.0.4");
        assert!(
            policies
                .connection(ip("127.1.0.2"), db, None, Port::tcp(8080))
                .is_allowed()
        );
        assert!(
            !policies
                .connection(ip("127.1.0.2"), db, None, Port::tcp(9090))
                .is_allowed()
        );
        let denied = policies.connection(ip("127.1.0.3"), db, None, Port::tcp(8080));
        assert_eq!(
            denied.describe(),
            "denied by the ingress NetworkPolicy shop/db-from-api"
        );
        // The node's address is no pod's: a host-network pod is known by
        // the name its endpoint gives.
        assert!(policies.pod_at(ip("127.0.0.1")).is_none());
        let runc_db = policies.pod("shop", "runc-db").cloned();
        assert!(
            !policies
                .connection(ip("127.1.0.3"), ip("127.0.0.1"), runc_db.as_ref(), Port::tcp(8080))
                .is_allowed()
        );
        // Pods no policy selects take anything.
        assert!(
            policies
                .connection(ip("127.1.0.4"), ip("127.1.0.3"), None, Port::tcp(1))
                .is_allowed()
        );
        // Spelled for a packet filter: db takes port 8080 from api's
        // address; web is not isolated.
        let db = policies.pod("shop", "db").unwrap();
        assert_eq!(
            policies.allowed(db, Direction::Ingress),
            Allowed::Only(vec![skiff_netpolicy::Allowance {
                peers: Some(vec![skiff_netpolicy::Addresses::Pod(ip("127.1.0.2"))]),
                ports: Some(vec![skiff_netpolicy::PortSpan {
                    protocol: skiff_netpolicy::Protocol::Tcp,
                    first: 8080,
                    last: 8080,
                }]),
            }])
        );
        assert_eq!(policies.allowed(db, Direction::Egress), Allowed::Everything);
        let web = policies.pod("shop", "web").unwrap();
        assert_eq!(policies.allowed(web, Direction::Ingress), Allowed::Everything);
        assert!(Policies::build(&[], &namespaces, &pods).is_empty());
    }
}
