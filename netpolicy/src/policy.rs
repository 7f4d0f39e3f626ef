//! One NetworkPolicy compiled: the pods it selects, the directions it
//! isolates them in, and its rules' peers and ports, ready to match.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::allowed::{Addresses, Allowance, PortSpan};
use crate::cidr::Cidr;
use crate::endpoint::{Endpoint, Peer, Port, Protocol};
use crate::namespaces::Namespaces;
use crate::selector::Selector;
use crate::set::Direction;

#[derive(Clone, Debug)]
pub(crate) struct Policy {
    /// `namespace/name`.
    pub(crate) id: Arc<str>,
    pub(crate) namespace: String,
    pod_selector: Selector,
    /// `Some` when the effective policy types include Ingress.
    ingress: Option<Vec<Rule>>,
    /// `Some` when the effective policy types include Egress.
    egress: Option<Vec<Rule>>,
}

/// One ingress or egress rule: a connection matches when it matches one of
/// the peers and one of the ports.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    /// `None`: `from`/`to` absent or empty, any peer.
    peers: Option<Vec<PeerMatch>>,
    /// `None`: `ports` absent or empty, any port.
    ports: Option<Vec<PortMatch>>,
}

#[derive(Clone, Debug)]
enum PeerMatch {
    /// Pods matching `pods` in the namespaces `namespaces` selects, or in
    /// the policy's own namespace when `None`.
    Pods {
        namespaces: Option<Selector>,
        pods: Selector,
    },
    /// Addresses in `cidr` and in none of `except`.
    Block { cidr: Cidr, except: Vec<Cidr> },
    /// A peer kube-apiserver would have refused (none of the three fields,
    /// `ipBlock` beside a selector, a malformed CIDR): matches nothing.
    Nothing,
}

#[derive(Clone, Debug)]
struct PortMatch {
    protocol: Protocol,
    range: PortRange,
}

#[derive(Clone, Debug)]
enum PortRange {
    /// No `port`: every port of the protocol.
    All,
    /// `port` through `endPort` (`port` alone: the one port).
    Numbers(u16, u16),
    /// A container port name, resolved against the destination pod.
    Named(String),
    /// A port kube-apiserver would have refused (an unknown protocol, a
    /// number out of range, `endPort` below `port` or beside a name or no
    /// port): matches nothing.
    Nothing,
}

impl Policy {
    /// `None` for a policy without a namespace, which no pod can be in.
    pub(crate) fn compile(policy: &NetworkPolicy) -> Option<Policy> {
        let namespace = policy.metadata.namespace.clone().filter(|n| !n.is_empty())?;
        let name = policy.metadata.name.clone().unwrap_or_default();
        let spec = policy.spec.as_ref();
        let pod_selector = spec
            .and_then(|s| s.pod_selector.as_ref())
            .map_or_else(Selector::everything, Selector::compile);
        let ingress_rules = spec.and_then(|s| s.ingress.as_deref()).unwrap_or_default();
        let egress_rules = spec.and_then(|s| s.egress.as_deref()).unwrap_or_default();
        // Unset policyTypes: Ingress, and Egress too when there are egress
        // rules (kube-apiserver writes this default on create).
        let (isolates_ingress, isolates_egress) = match spec.and_then(|s| s.policy_types.as_deref()) {
            Some(types) if !types.is_empty() => (
                types.iter().any(|t| t == "Ingress"),
                types.iter().any(|t| t == "Egress"),
            ),
            _ => (true, !egress_rules.is_empty()),
        };
        let ingress = isolates_ingress.then(|| {
            ingress_rules
                .iter()
                .map(|NetworkPolicyIngressRule { from, ports }| Rule::compile(from.as_deref(), ports.as_deref()))
                .collect()
        });
        let egress = isolates_egress.then(|| {
            egress_rules
                .iter()
                .map(|NetworkPolicyEgressRule { to, ports }| Rule::compile(to.as_deref(), ports.as_deref()))
                .collect()
        });
        Some(Policy {
            id: format!("{namespace}/{name}").into(),
            namespace,
            pod_selector,
            ingress,
            egress,
        })
    }

    /// Whether the policy selects `pod` (in any direction).
    pub(crate) fn selects(&self, pod: &Endpoint<'_>) -> bool {
        pod.namespace == self.namespace && self.pod_selector.matches(pod.labels)
    }

    /// The rules of `direction` when the policy isolates its pods in that
    /// direction (possibly none: nothing is allowed).
    pub(crate) fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

impl Rule {
    fn compile(peers: Option<&[NetworkPolicyPeer]>, ports: Option<&[NetworkPolicyPort]>) -> Rule {
        Rule {
            peers: peers
                .filter(|p| !p.is_empty())
                .map(|p| p.iter().map(PeerMatch::compile).collect()),
            ports: ports
                .filter(|p| !p.is_empty())
                .map(|p| p.iter().map(PortMatch::compile).collect()),
        }
    }

    /// Whether the rule lets a connection with `peer` to `port` through.
    /// `policy_namespace` is the namespace of the rule's policy, which a
    /// bare `podSelector` peer means; `destination` is the pod a named port
    /// is looked up in (none: named ports match nothing).
    pub(crate) fn allows(
        &self,
        namespaces: &Namespaces,
        policy_namespace: &str,
        peer: &Peer<'_>,
        port: Port,
        destination: Option<&Endpoint<'_>>,
    ) -> bool {
        let peer_matches = self
            .peers
            .as_ref()
            .is_none_or(|peers| peers.iter().any(|p| p.matches(namespaces, policy_namespace, peer)));
        peer_matches
            && self
                .ports
                .as_ref()
                .is_none_or(|ports| ports.iter().any(|p| p.matches(port, destination)))
    }
}

impl Rule {
    /// Adds what the rule allows to `out`, as address and port sets
    /// ([`crate::allowed`]): selector peers resolved among `pods`, named
    /// ports on `pod` (ingress) or on each peer pod (egress).
    pub(crate) fn spell(
        &self,
        namespaces: &Namespaces,
        policy_namespace: &str,
        direction: Direction,
        pod: &Endpoint<'_>,
        pods: &[(IpAddr, Endpoint<'_>)],
        out: &mut Vec<Allowance>,
    ) {
        // The peers, each with its pod when it is one.
        let peers: Option<Vec<(Addresses, Option<&Endpoint<'_>>)>> = self.peers.as_ref().map(|matches| {
            let mut peers = Vec::new();
            for peer in matches {
                match peer {
                    PeerMatch::Pods { .. } => {
                        for (ip, endpoint) in pods {
                            if peer.matches(namespaces, policy_namespace, &Peer::pod(*ip, *endpoint))
                                && !peers.iter().any(|(a, _)| *a == Addresses::Pod(*ip))
                            {
                                peers.push((Addresses::Pod(*ip), Some(endpoint)));
                            }
                        }
                    }
                    PeerMatch::Block { cidr, except } => peers.push((
                        Addresses::Block {
                            cidr: *cidr,
                            except: except.clone(),
                        },
                        None,
                    )),
                    PeerMatch::Nothing => {}
                }
            }
            peers
        });
        if peers.as_ref().is_some_and(Vec::is_empty) {
            return;
        }
        let addresses = || peers.as_ref().map(|p| p.iter().map(|(a, _)| a.clone()).collect());
        let Some(ports) = &self.ports else {
            out.push(Allowance {
                peers: addresses(),
                ports: None,
            });
            return;
        };
        let span = |protocol, first, last| PortSpan { protocol, first, last };
        let mut spans = Vec::new();
        for port in ports {
            match &port.range {
                PortRange::All => spans.push(span(port.protocol, 1, u16::MAX)),
                PortRange::Numbers(first, last) => spans.push(span(port.protocol, *first, *last)),
                PortRange::Named(name) => {
                    let number = |endpoint: &Endpoint<'_>| {
                        endpoint
                            .named_ports
                            .iter()
                            .find(|p| p.name == *name && p.protocol == port.protocol)
                            .map(|p| p.port)
                    };
                    match direction {
                        Direction::Ingress => spans.extend(number(pod).map(|n| span(port.protocol, n, n))),
                        // Each peer pod with the name gets its number.
                        Direction::Egress => {
                            let candidates: Vec<(IpAddr, &Endpoint<'_>)> = match &peers {
                                Some(peers) => peers
                                    .iter()
                                    .filter_map(|(a, e)| match (a, e) {
                                        (Addresses::Pod(ip), Some(e)) => Some((*ip, *e)),
                                        _ => None,
                                    })
                                    .collect(),
                                None => pods.iter().map(|(ip, e)| (*ip, e)).collect(),
                            };
                            for (ip, endpoint) in candidates {
                                if let Some(n) = number(endpoint) {
                                    out.push(Allowance {
                                        peers: Some(vec![Addresses::Pod(ip)]),
                                        ports: Some(vec![span(port.protocol, n, n)]),
                                    });
                                }
                            }
                        }
                    }
                }
                PortRange::Nothing => {}
            }
        }
        if !spans.is_empty() {
            out.push(Allowance {
                peers: addresses(),
                ports: Some(spans),
            });
        }
    }
}

impl PeerMatch {
    fn compile(peer: &NetworkPolicyPeer) -> PeerMatch {
        match (&peer.pod_selector, &peer.namespace_selector, &peer.ip_block) {
            (None, None, Some(block)) => PeerMatch::block(block),
            (None, None, None) | (_, _, Some(_)) => PeerMatch::Nothing,
            (pods, namespaces, None) => PeerMatch::Pods {
                namespaces: namespaces.as_ref().map(Selector::compile),
                pods: pods.as_ref().map_or_else(Selector::everything, Selector::compile),
            },
        }
    }

    fn block(block: &IPBlock) -> PeerMatch {
        let Ok(cidr) = block.cidr.parse::<Cidr>() else {
            return PeerMatch::Nothing;
        };
        let except: Result<Vec<Cidr>, _> = block.except.iter().flatten().map(|e| e.parse::<Cidr>()).collect();
        match except {
            Ok(except) => PeerMatch::Block { cidr, except },
            Err(_) => PeerMatch::Nothing,
        }
    }

    fn matches(&self, namespaces: &Namespaces, policy_namespace: &str, peer: &Peer<'_>) -> bool {
        match self {
            PeerMatch::Pods {
                namespaces: selector,
                pods,
            } => peer.pod.as_ref().is_some_and(|pod| {
                let in_namespace = match selector {
                    None => pod.namespace == policy_namespace,
                    Some(selector) => namespaces.selects(selector, pod.namespace),
                };
                in_namespace && pods.matches(pod.labels)
            }),
            PeerMatch::Block { cidr, except } => cidr.contains(peer.ip) && !except.iter().any(|e| e.contains(peer.ip)),
            PeerMatch::Nothing => false,
        }
    }
}

impl PortMatch {
    fn compile(port: &NetworkPolicyPort) -> PortMatch {
        let protocol = Protocol::parse(port.protocol.as_deref().unwrap_or("TCP"));
        let number = |n: i32| u16::try_from(n).ok().filter(|n| *n > 0);
        let range = match (&port.port, port.end_port) {
            (None, None) => PortRange::All,
            (Some(IntOrString::Int(first)), None) => {
                number(*first).map_or(PortRange::Nothing, |n| PortRange::Numbers(n, n))
            }
            (Some(IntOrString::Int(first)), Some(last)) => match (number(*first), number(last)) {
                (Some(first), Some(last)) if first <= last => PortRange::Numbers(first, last),
                _ => PortRange::Nothing,
            },
            (Some(IntOrString::String(name)), None) => PortRange::Named(name.clone()),
            (Some(IntOrString::String(_)) | None, Some(_)) => PortRange::Nothing,
        };
        match protocol {
            Some(protocol) => PortMatch { protocol, range },
            None => PortMatch {
                protocol: Protocol::Tcp,
                range: PortRange::Nothing,
            },
        }
    }

    fn matches(&self, port: Port, destination: Option<&Endpoint<'_>>) -> bool {
        if port.protocol != self.protocol {
            return false;
        }
        match &self.range {
            PortRange::All => true,
            PortRange::Numbers(first, last) => (*first..=*last).contains(&port.number),
            PortRange::Named(name) => destination.is_some_and(|pod| {
                pod.named_ports
                    .iter()
                    .any(|p| p.name == *name && p.port == port.number && p.protocol == port.protocol)
            }),
            PortRange::Nothing => false,
        }
    }
}
