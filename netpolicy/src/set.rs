//! [`PolicySet`]: every policy of the cluster, compiled and grouped by
//! namespace, answering for one connection at a time.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use crate::endpoint::{Endpoint, Peer, Port};
use crate::namespaces::Namespaces;
use crate::policy::Policy;

/// Which way a connection goes, seen from the pod a question is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Into the pod.
    Ingress,
    /// Out of the pod.
    Egress,
}

/// The answer about one connection in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No policy selects the pod for this direction: the pod is not
    /// isolated, and every connection is allowed.
    Unrestricted,
    /// The pod is isolated, and a rule of `policy` (`namespace/name`) allows
    /// the connection. When several do, the first by name.
    Allowed { policy: Arc<str> },
    /// The pod is isolated and no rule of `policies` (`namespace/name`, by
    /// name: every policy that selects the pod for this direction) allows
    /// the connection.
    Denied { policies: Vec<Arc<str>> },
}

impl Verdict {
    /// Whether the connection may go ahead.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Verdict::Denied { .. })
    }
}

/// The cluster's NetworkPolicies and namespace labels, compiled once and
/// asked many times. Rebuild it when either changes.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    /// Namespace → its policies, by name.
    by_namespace: BTreeMap<String, Vec<Policy>>,
    pub(crate) namespaces: Namespaces,
}

impl PolicySet {
    /// Compiles `policies` (those without a namespace are left out: no pod
    /// can be in them) against the labels of `namespaces`.
    pub fn new(policies: &[Arc<NetworkPolicy>], namespaces: &[Arc<Namespace>]) -> PolicySet {
        let mut by_namespace: BTreeMap<String, Vec<Policy>> = BTreeMap::new();
        for policy in policies.iter().filter_map(|p| Policy::compile(p)) {
            by_namespace.entry(policy.namespace.clone()).or_default().push(policy);
        }
        for list in by_namespace.values_mut() {
            list.sort_by(|a, b| a.id.cmp(&b.id));
        }
        PolicySet {
            by_namespace,
            namespaces: Namespaces::new(namespaces),
        }
    }

    /// Whether the set holds no policy at all (every verdict is then
    /// [`Verdict::Unrestricted`]).
    pub fn is_empty(&self) -> bool {
        self.by_namespace.is_empty()
    }

    /// Whether any policy selects `pod`, in either direction: when none
    /// does, nothing about the pod need be asked.
    pub fn selects(&self, pod: &Endpoint<'_>) -> bool {
        self.policies_of(pod).any(|p| p.selects(pod))
    }

    /// Whether `pod` is isolated for `direction`: some policy of its
    /// namespace selects it and has that direction in its policy types.
    pub fn isolated(&self, pod: &Endpoint<'_>, direction: Direction) -> bool {
        self.policies_of(pod)
            .any(|p| p.selects(pod) && p.rules(direction).is_some())
    }

    /// May `peer` connect to `target` on `port` (a port of `target`)?
    pub fn ingress(&self, target: &Endpoint<'_>, peer: &Peer<'_>, port: Port) -> Verdict {
        self.decide(Direction::Ingress, target, peer, port, Some(target))
    }

    /// May `source` connect to `peer` on `port` (a port of `peer`)? A named
    /// port resolves against the peer's pod, so it matches nothing when the
    /// peer has none.
    pub fn egress(&self, source: &Endpoint<'_>, peer: &Peer<'_>, port: Port) -> Verdict {
        self.decide(Direction::Egress, source, peer, port, peer.pod.as_ref())
    }

    pub(crate) fn policies_of<'s>(&'s self, pod: &Endpoint<'_>) -> impl Iterator<Item = &'s Policy> + 's {
        self.by_namespace.get(pod.namespace).into_iter().flatten()
    }

    fn decide(
        &self,
        direction: Direction,
        pod: &Endpoint<'_>,
        peer: &Peer<'_>,
        port: Port,
        destination: Option<&Endpoint<'_>>,
    ) -> Verdict {
        let mut isolating = Vec::new();
        for policy in self.policies_of(pod).filter(|p| p.selects(pod)) {
            let Some(rules) = policy.rules(direction) else { continue };
            let allowed = rules
                .iter()
                .any(|rule| rule.allows(&self.namespaces, &policy.namespace, peer, port, destination));
            if allowed {
                return Verdict::Allowed {
                    policy: policy.id.clone(),
                };
            }
            isolating.push(policy.id.clone());
        }
        if isolating.is_empty() {
            Verdict::Unrestricted
        } else {
            Verdict::Denied { policies: isolating }
        }
    }
}
