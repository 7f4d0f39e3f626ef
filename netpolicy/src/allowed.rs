//! What a pod's policies allow in one direction, spelled out as address
//! and port sets: the form a packet filter applies (rules compiled for
//! the kernel), where [`PolicySet::ingress`] and [`PolicySet::egress`]
//! decide one connection at a time. The two agree: a connection is
//! allowed by the verdicts exactly when some [`Allowance`] matches it
//! (the tests check this over every pod, peer and port of their world).
//!
//! Selector peers become the addresses of the pods they match, among the
//! pods the caller lists; a named port becomes the number it names on the
//! destination pod (the pod asked about for ingress, each peer pod for
//! egress, which then gets an allowance of its own).

use std::net::IpAddr;

use crate::cidr::Cidr;
use crate::endpoint::{Endpoint, Protocol};
use crate::set::{Direction, PolicySet};

/// What a pod may connect to, or be connected from, in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// No policy isolates the pod in this direction.
    Everything,
    /// Only connections some allowance matches (none: nothing).
    Only(Vec<Allowance>),
}

/// Connections with one of `peers` (any address when `None`) on one of
/// `ports` (any port of any protocol when `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    pub peers: Option<Vec<Addresses>>,
    pub ports: Option<Vec<PortSpan>>,
}

/// Peer addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addresses {
    /// A pod's address.
    Pod(IpAddr),
    /// An `ipBlock`: in `cidr`, in none of `except`.
    Block { cidr: Cidr, except: Vec<Cidr> },
}

impl Addresses {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self {
            Addresses::Pod(pod) => *pod == ip,
            Addresses::Block { cidr, except } => cidr.contains(ip) && !except.iter().any(|e| e.contains(ip)),
        }
    }
}

/// Ports `first` through `last` of `protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSpan {
    pub protocol: Protocol,
    pub first: u16,
    pub last: u16,
}

impl Allowance {
    /// Whether a connection with `peer` to `port` of `protocol` matches.
    pub fn matches(&self, peer: IpAddr, protocol: Protocol, port: u16) -> bool {
        self.peers.as_ref().is_none_or(|p| p.iter().any(|a| a.contains(peer)))
            && self.ports.as_ref().is_none_or(|p| {
                p.iter()
                    .any(|s| s.protocol == protocol && (s.first..=s.last).contains(&port))
            })
    }
}

impl PolicySet {
    /// What `pod`'s policies allow in `direction`, with selector peers
    /// resolved among `pods` (every pod of the cluster with an address).
    pub fn allowed(&self, pod: &Endpoint<'_>, direction: Direction, pods: &[(IpAddr, Endpoint<'_>)]) -> Allowed {
        let mut isolated = false;
        let mut allowances = Vec::new();
        for policy in self.policies_of(pod).filter(|p| p.selects(pod)) {
            let Some(rules) = policy.rules(direction) else { continue };
            isolated = true;
            for rule in rules {
                rule.spell(
                    &self.namespaces,
                    &policy.namespace,
                    direction,
                    pod,
                    pods,
                    &mut allowances,
                );
            }
        }
        if isolated {
            Allowed::Only(allowances)
        } else {
            Allowed::Everything
        }
    }
}
