//! The two sides of a connection as the caller knows them: the pod a
//! question is about ([`Endpoint`]), the other side ([`Peer`]) and the
//! destination port ([`Port`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

/// A pod, as far as NetworkPolicies look at it.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint<'a> {
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// The pod's named container ports, which a policy's named `port`
    /// resolves against when this pod is the destination
    /// ([`NamedPort::of_pod`] reads them from a Pod).
    pub named_ports: &'a [NamedPort],
}

/// The other side of a connection: its address, and the pod behind it when
/// there is one.
#[derive(Clone, Copy, Debug)]
pub struct Peer<'a> {
    /// Matched against `ipBlock` peers, whether or not a pod stands behind
    /// it.
    pub ip: IpAddr,
    /// The pod with that address, matched against `podSelector` and
    /// `namespaceSelector` peers; `None` for anything outside the cluster's
    /// pods, which those peers never match.
    pub pod: Option<Endpoint<'a>>,
}

impl<'a> Peer<'a> {
    /// A pod at `ip`.
    pub fn pod(ip: IpAddr, pod: Endpoint<'a>) -> Peer<'a> {
        Peer { ip, pod: Some(pod) }
    }

    /// An address with no pod behind it (outside the cluster, a node).
    pub fn outside(ip: IpAddr) -> Peer<'a> {
        Peer { ip, pod: None }
    }
}

/// A connection's destination port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Port {
    pub number: u16,
    pub protocol: Protocol,
}

impl Port {
    pub fn tcp(number: u16) -> Port {
        Port {
            number,
            protocol: Protocol::Tcp,
        }
    }

    pub fn udp(number: u16) -> Port {
        Port {
            number,
            protocol: Protocol::Udp,
        }
    }

    pub fn sctp(number: u16) -> Port {
        Port {
            number,
            protocol: Protocol::Sctp,
        }
    }
}

/// The protocols a NetworkPolicy names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// `TCP`, `UDP` or `SCTP`, spelled exactly so, as the API has them.
    pub fn parse(text: &str) -> Option<Protocol> {
        match text {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container port with a name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamedPort {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
}

impl NamedPort {
    /// The named ports of a pod's containers and of its sidecars (init
    /// containers with `restartPolicy: Always`), where Kubernetes looks a
    /// port name up. Unnamed ports, ports out of range and protocols other
    /// than TCP, UDP and SCTP are left out; a missing protocol is TCP.
    pub fn of_pod(pod: &Pod) -> Vec<NamedPort> {
        let Some(spec) = pod.spec.as_ref() else {
            return Vec::new();
        };
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        spec.containers
            .iter()
            .chain(sidecars)
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                Some(NamedPort {
                    name: p.name.clone().filter(|n| !n.is_empty())?,
                    port: u16::try_from(p.container_port).ok().filter(|n| *n > 0)?,
                    protocol: Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"))?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_ports_of_containers_and_sidecars() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [
                    {"name": "setup", "ports": [{"name": "setup", "containerPort": 1}]},
                    {"name": "mesh", "restartPolicy": "Always", "ports": [{"name": "mesh", "containerPort": 15001}]},
                ],
                "containers": [{"name": "c", "ports": [
                    {"name": "http", "containerPort": 8080},
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                    {"containerPort": 9090},
                ]}],
            },
        }))
        .unwrap();
        let named = |name: &str, port, protocol| NamedPort {
            name: name.into(),
            port,
            protocol,
        };
        assert_eq!(
            NamedPort::of_pod(&pod),
            [
                named("http", 8080, Protocol::Tcp),
                named("dns", 53, Protocol::Udp),
                named("mesh", 15001, Protocol::Tcp),
            ]
        );
    }
}
