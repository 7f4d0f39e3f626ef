//! NetworkPolicy for container pods, in the kernel: what each pod's
//! policies allow ([`Isolation`], from [`skiff_netpolicy::Allowed`])
//! written as nftables chains of the node's table.
//!
//! # Where packets are checked
//!
//! Only in the `forward` hook: traffic a pod sends to another pod of this
//! node, to another host or from another host to a pod. The rest is
//! someone else's, and consistent with it:
//!
//! * Traffic between a pod and its node (the `input` and `output` hooks)
//!   is always allowed, as Kubernetes defines it. That path also carries
//!   connections that user space decides as the same policies say: a
//!   pod's connections to ClusterIPs and the cluster DNS reach the
//!   node's proxy, which checks the pod's egress and each endpoint's
//!   ingress, and connections between a container pod and a Wasm pod
//!   pass through the node agent, which checks both ends.
//! * Only a connection's first packet is judged (`ct state new`): replies
//!   and related ICMP of an allowed connection pass, and a connection
//!   made before a policy changed runs on, as with most network plugins.
//!
//! A pod isolated in a direction gets a chain, `ingress_<ip>` or
//! `egress_<ip>`, entered through a verdict map on its address: each
//! allowance `return`s to the `forward` chain (where the other end's
//! chain is asked next), and what falls through is refused, TCP with a
//! reset and anything else with ICMP administratively-prohibited, so that
//! clients fail at once rather than time out.
//!
//! An IPv6 peer (a pod address or an `ipBlock`) can match no packet of
//! this IPv4 table and is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

use skiff_netpolicy::{Addresses, Allowance, Allowed, PortSpan, Protocol};

/// What one pod's NetworkPolicies allow, both ways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolation {
    /// Connections into the pod.
    pub ingress: Allowed,
    /// Connections out of it.
    pub egress: Allowed,
}

impl Isolation {
    /// A pod no policy isolates.
    pub const OPEN: Isolation = Isolation {
        ingress: Allowed::Everything,
        egress: Allowed::Everything,
    };

    pub fn is_open(&self) -> bool {
        self == &Isolation::OPEN
    }
}

/// The `forward` chain and each isolated pod's chains, for the node's
/// table (`pods` by address; open pods add nothing).
pub(super) fn chains(pods: &BTreeMap<Ipv4Addr, Isolation>) -> String {
    let mut chains = String::new();
    let mut egress = Vec::new();
    let mut ingress = Vec::new();
    for (ip, isolation) in pods {
        for (direction, allowed, peer, entries) in [
            ("egress", &isolation.egress, "daddr", &mut egress),
            ("ingress", &isolation.ingress, "saddr", &mut ingress),
        ] {
            let Allowed::Only(allowances) = allowed else { continue };
            let name = chain_name(direction, *ip);
            let _ = writeln!(chains, "\tchain {name} {{");
            for rule in allowances.iter().flat_map(|a| rules(a, peer)) {
                let _ = writeln!(chains, "\t\t{rule}return");
            }
            chains.push_str("\t\tmeta l4proto tcp reject with tcp reset\n");
            chains.push_str("\t\treject with icmp type admin-prohibited\n");
            chains.push_str("\t}\n");
            entries.push(format!("{ip} : jump {name}"));
        }
    }
    chains.push_str(
        "\tchain forward {\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tct state established,related accept\n",
    );
    for (field, entries) in [("saddr", egress), ("daddr", ingress)] {
        if !entries.is_empty() {
            let _ = writeln!(chains, "\t\tip {field} vmap {{ {} }}", entries.join(", "));
        }
    }
    chains.push_str("\t}\n");
    chains
}

fn chain_name(direction: &str, ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{direction}_{a}_{b}_{c}_{d}")
}

/// The matches of one allowance (each ends with a space, ready for a
/// verdict), `peer` being the packet's field that holds the peer's
/// address: one per address group and protocol, none when it can match
/// nothing here.
fn rules(allowance: &Allowance, peer: &str) -> Vec<String> {
    let peers: Vec<String> = match &allowance.peers {
        None => vec![String::new()],
        Some(peers) => {
            let mut pods = BTreeSet::new();
            let mut matches = Vec::new();
            for addresses in peers {
                match addresses {
                    Addresses::Pod(IpAddr::V4(ip)) => {
                        pods.insert(*ip);
                    }
                    Addresses::Block { cidr, except } if cidr.network().is_ipv4() => {
                        let mut text = format!("ip {peer} {cidr} ");
                        let except: Vec<String> = except
                            .iter()
                            .filter(|e| e.network().is_ipv4())
                            .map(|e| e.to_string())
                            .collect();
                        if !except.is_empty() {
                            let _ = write!(text, "ip {peer} != {{ {} }} ", except.join(", "));
                        }
                        matches.push(text);
                    }
                    Addresses::Pod(IpAddr::V6(_)) | Addresses::Block { .. } => {}
                }
            }
            if !pods.is_empty() {
                let list: Vec<String> = pods.iter().map(Ipv4Addr::to_string).collect();
                matches.insert(0, format!("ip {peer} {{ {} }} ", list.join(", ")));
            }
            matches
        }
    };
    let ports: Vec<String> = match &allowance.ports {
        None => vec![String::new()],
        Some(spans) => ports(spans),
    };
    peers
        .iter()
        .flat_map(|p| ports.iter().map(move |q| format!("{p}{q}")))
        .collect()
}

/// One match per protocol, its spans merged and sorted.
fn ports(spans: &[PortSpan]) -> Vec<String> {
    let mut by_protocol: BTreeMap<Protocol, Vec<(u16, u16)>> = BTreeMap::new();
    for span in spans {
        by_protocol
            .entry(span.protocol)
            .or_default()
            .push((span.first, span.last));
    }
    by_protocol
        .into_iter()
        .map(|(protocol, mut spans)| {
            spans.sort_unstable();
            let mut merged: Vec<(u16, u16)> = Vec::new();
            for (first, last) in spans {
                match merged.last_mut() {
                    Some(previous) if u32::from(first) <= u32::from(previous.1) + 1 => {
                        previous.1 = previous.1.max(last);
                    }
                    _ => merged.push((first, last)),
                }
            }
            let list: Vec<String> = merged
                .iter()
                .map(|(first, last)| {
                    if first == last {
                        first.to_string()
                    } else {
                        format!("{first}-{last}")
                    }
                })
                .collect();
            let keyword = match protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Sctp => "sctp",
            };
            format!("{keyword} dport {{ {} }} ", list.join(", "))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn span(protocol: Protocol, first: u16, last: u16) -> PortSpan {
        PortSpan { protocol, first, last }
    }

    #[test]
    fn open_pods_add_only_the_forward_chain() {
        let pods = BTreeMap::from([(Ipv4Addr::new(127, 9, 0, 5), Isolation::OPEN)]);
        let text = chains(&pods);
        assert!(!text.contains("vmap"), "{text}");
        assert!(text.contains("ct state established,related accept"), "{text}");
    }

    #[test]
    fn allowances_become_returns_and_the_rest_is_refused() {
        let pod = Ipv4Addr::new(127, 9, 0, 5);
        let ingress = Allowed::Only(vec![
            Allowance {
                peers: Some(vec![
                    Addresses::Pod("127.9.0.9".parse().unwrap()),
                    Addresses::Pod("127.9.0.7".parse().unwrap()),
                    Addresses::Pod("fd00::1".parse().unwrap()),
                    Addresses::Block {
                        cidr: "10.0.0.0/8".parse().unwrap(),
                        except: vec!["10.1.0.0/16".parse().unwrap()],
                    },
                    Addresses::Block {
                        cidr: "fd00::/8".parse().unwrap(),
                        except: vec![],
                    },
                ]),
                ports: Some(vec![
                    span(Protocol::Tcp, 8080, 8090),
                    span(Protocol::Tcp, 80, 80),
                    span(Protocol::Tcp, 8085, 8100),
                    span(Protocol::Udp, 53, 53),
                ]),
            },
            // Matches nothing: no rule.
            Allowance {
                peers: Some(vec![]),
                ports: None,
            },
        ]);
        let egress = Allowed::Only(vec![Allowance {
            peers: None,
            ports: None,
        }]);
        let pods = BTreeMap::from([(pod, Isolation { ingress, egress })]);
        let text = chains(&pods);
        let expected = "\tchain egress_127_9_0_5 {\n\
             \t\treturn\n\
             \t\tmeta l4proto tcp reject with tcp reset\n\
             \t\treject with icmp type admin-prohibited\n\
             \t}\n\
             \tchain ingress_127_9_0_5 {\n\
             \t\tip saddr { 127.9.0.7, 127.9.0.9 } tcp dport { 80, 8080-8100 } return\n\
             \t\tip saddr { 127.9.0.7, 127.9.0.9 } udp dport { 53 } return\n\
             \t\tip saddr 10.0.0.0/8 ip saddr != { 10.1.0.0/16 } tcp dport { 80, 8080-8100 } return\n\
             \t\tip saddr 10.0.0.0/8 ip saddr != { 10.1.0.0/16 } udp dport { 53 } return\n\
             \t\tmeta l4proto tcp reject with tcp reset\n\
             \t\treject with icmp type admin-prohibited\n\
             \t}\n\
             \tchain forward {\n\
             \t\ttype filter hook forward priority filter; policy accept;\n\
             \t\tct state established,related accept\n\
             \t\tip saddr vmap { 127.9.0.5 : jump egress_127_9_0_5 }\n\
             \t\tip daddr vmap { 127.9.0.5 : jump ingress_127_9_0_5 }\n\
             \t}\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_pod_isolated_with_no_allowance_refuses_everything() {
        let pod = Ipv4Addr::new(127, 9, 0, 6);
        let isolation = Isolation {
            ingress: Allowed::Only(vec![]),
            egress: Allowed::Everything,
        };
        let text = chains(&BTreeMap::from([(pod, isolation)]));
        assert!(
            text.starts_with("\tchain ingress_127_9_0_6 {\n\t\tmeta l4proto tcp reject with tcp reset\n"),
            "{text}"
        );
        assert!(!text.contains("saddr vmap"), "{text}");
    }
}
