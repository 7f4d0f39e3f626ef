//! Verdicts over a small cluster, one table row per Kubernetes rule.
//!
//! Namespaces: `prod` (env=prod, team=a), `dev` (env=dev, team=a), `other`
//! (no labels). Pods: `prod/web` (app=web; named ports http 8080/TCP,
//! metrics 9100/TCP, dns 53/UDP), `prod/api` (app=api, role=backend; grpc
//! 9090/TCP), `prod/client`, `dev/client`, `other/client` (app=client) and
//! `dev/web` (app=web; http 8080/TCP). Anything else names an address with
//! no pod behind it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

use crate::{Direction, Endpoint, NamedPort, Peer, PolicySet, Port, Protocol, Verdict};

struct Pod {
    namespace: &'static str,
    labels: BTreeMap<String, String>,
    ip: IpAddr,
    named_ports: Vec<NamedPort>,
}

impl Pod {
    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            namespace: self.namespace,
            labels: &self.labels,
            named_ports: &self.named_ports,
        }
    }
}

struct World {
    namespaces: Vec<Arc<Namespace>>,
    pods: BTreeMap<&'static str, Pod>,
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn named(name: &str, port: u16, protocol: Protocol) -> NamedPort {
    NamedPort {
        name: name.into(),
        port,
        protocol,
    }
}

fn world() -> World {
    let namespace = |name: &str, pairs: &[(&str, &str)]| {
        let mut all = labels(pairs);
        all.insert(crate::NAME_LABEL.into(), name.into());
        Arc::new(serde_json::from_value::<Namespace>(json!({"metadata": {"name": name, "labels": all}})).unwrap())
    };
    let pod = |namespace, pairs: &[(&str, &str)], ip: &str, named_ports| Pod {
        namespace,
        labels: labels(pairs),
        ip: ip.parse().unwrap(),
        named_ports,
    };
    let web_ports = vec![
        named("http", 8080, Protocol::Tcp),
        named("metrics", 9100, Protocol::Tcp),
        named("dns", 53, Protocol::Udp),
    ];
    World {
        namespaces: vec![
            namespace("prod", &[("env", "prod"), ("team", "a")]),
            namespace("dev", &[("env", "dev"), ("team", "a")]),
            namespace("other", &[]),
        ],
        pods: BTreeMap::from([
            ("prod/web", pod("prod", &[("app", "web")], "10.0.1.1", web_ports)),
            (
                "prod/api",
                pod(
                    "prod",
                    &[("app", "api"), ("role", "backend")],
                    "10.0.1.2",
                    vec![named("grpc", 9090, Protocol::Tcp)],
                ),
            ),
            ("prod/client", pod("prod", &[("app", "client")], "10.0.1.3", vec![])),
            ("dev/client", pod("dev", &[("app", "client")], "10.0.2.1", vec![])),
            (
                "dev/web",
                pod(
                    "dev",
                    &[("app", "web")],
                    "10.0.2.2",
                    vec![named("http", 8080, Protocol::Tcp)],
                ),
            ),
            ("other/client", pod("other", &[("app", "client")], "10.0.3.1", vec![])),
        ]),
    }
}

impl World {
    fn pod(&self, name: &str) -> &Pod {
        self.pods.get(name).unwrap_or_else(|| panic!("no pod {name}"))
    }

    /// A pod by `namespace/name`, or an address with no pod.
    fn peer(&self, name: &str) -> Peer<'_> {
        match self.pods.get(name) {
            Some(pod) => Peer::pod(pod.ip, pod.endpoint()),
            None => Peer::outside(name.parse().unwrap_or_else(|_| panic!("no pod or address {name}"))),
        }
    }
}

fn np(namespace: &str, name: &str, spec: Value) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name}, "spec": spec})
}

#[derive(Debug)]
enum Expect {
    Unrestricted,
    Allowed(&'static str),
    Denied(&'static [&'static str]),
}

use Expect::{Allowed, Denied, Unrestricted};

impl Expect {
    fn holds(&self, verdict: &Verdict) -> bool {
        match (self, verdict) {
            (Unrestricted, Verdict::Unrestricted) => true,
            (Allowed(want), Verdict::Allowed { policy }) => **policy == **want,
            (Denied(want), Verdict::Denied { policies }) => {
                policies.iter().map(|p| &**p).collect::<Vec<_>>() == want.to_vec()
            }
            _ => false,
        }
    }
}

/// One question: the direction, the pod asked about, the peer, the port.
struct Check(Direction, &'static str, &'static str, Port, Expect);

/// May `from` connect to pod `to` on `port`?
fn into(to: &'static str, from: &'static str, port: Port, expect: Expect) -> Check {
    Check(Direction::Ingress, to, from, port, expect)
}

/// May pod `from` connect to `to` on `port`?
fn out(from: &'static str, to: &'static str, port: Port, expect: Expect) -> Check {
    Check(Direction::Egress, from, to, port, expect)
}

struct Case {
    name: &'static str,
    policies: Vec<Value>,
    checks: Vec<Check>,
}

fn run(cases: Vec<Case>) {
    let world = world();
    let mut failures = Vec::new();
    for case in cases {
        let policies: Vec<Arc<NetworkPolicy>> = case
            .policies
            .iter()
            .map(|p| Arc::new(serde_json::from_value(p.clone()).unwrap()))
            .collect();
        let set = PolicySet::new(&policies, &world.namespaces);
        for Check(direction, pod, peer, port, expect) in &case.checks {
            let subject = world.pod(pod).endpoint();
            let peer_side = world.peer(peer);
            let verdict = match direction {
                Direction::Ingress => set.ingress(&subject, &peer_side, *port),
                Direction::Egress => set.egress(&subject, &peer_side, *port),
            };
            if !expect.holds(&verdict) {
                failures.push(format!(
                    "{}: {direction:?} {pod} / {peer} {}/{}: want {expect:?}, got {verdict:?}",
                    case.name, port.number, port.protocol
                ));
            }
        }
        failures.extend(spelled_disagreements(&world, &set, case.name));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Where [`PolicySet::allowed`] and the verdicts disagree, over every pod
/// of the world, both directions, every pod and a few outside addresses
/// as peers, and ports named in the world's policies and around them.
fn spelled_disagreements(world: &World, set: &PolicySet, case: &str) -> Vec<String> {
    let pods: Vec<(IpAddr, Endpoint<'_>)> = world.pods.values().map(|p| (p.ip, p.endpoint())).collect();
    let mut peers: Vec<&str> = world.pods.keys().copied().collect();
    peers.extend(["192.0.2.10", "10.0.1.99", "10.0.9.9", "172.16.0.1"]);
    let ports = [
        Port::tcp(53),
        Port::udp(53),
        Port::tcp(80),
        Port::tcp(443),
        Port::tcp(8080),
        Port::tcp(8081),
        Port::tcp(9090),
        Port::tcp(9100),
        Port::udp(9100),
        Port::sctp(80),
    ];
    let mut failures = Vec::new();
    for (name, pod) in &world.pods {
        let subject = pod.endpoint();
        for direction in [Direction::Ingress, Direction::Egress] {
            let spelled = set.allowed(&subject, direction, &pods);
            for peer in &peers {
                let peer_side = world.peer(peer);
                for port in ports {
                    let verdict = match direction {
                        Direction::Ingress => set.ingress(&subject, &peer_side, port),
                        Direction::Egress => set.egress(&subject, &peer_side, port),
                    };
                    let matched = match &spelled {
                        crate::Allowed::Everything => true,
                        crate::Allowed::Only(allowances) => allowances
                            .iter()
                            .any(|a| a.matches(peer_side.ip, port.protocol, port.number)),
                    };
                    if matched != verdict.is_allowed() {
                        failures.push(format!(
                            "{case}: spelled {direction:?} of {name} with {peer} on {}/{} says {matched}, the verdict {verdict:?}",
                            port.number, port.protocol
                        ));
                    }
                }
            }
        }
    }
    failures
}

const WEB: &str = "prod/web";
const API: &str = "prod/api";
const CLIENT: &str = "prod/client";
const DEV_CLIENT: &str = "dev/client";
const DEV_WEB: &str = "dev/web";
const OTHER_CLIENT: &str = "other/client";
const OUTSIDE: &str = "192.0.2.10";

#[test]
fn isolation_and_defaults() {
    run(vec![
        Case {
            name: "no policy: everything is allowed",
            policies: vec![],
            checks: vec![
                into(WEB, DEV_CLIENT, Port::tcp(80), Unrestricted),
                out(WEB, OUTSIDE, Port::tcp(443), Unrestricted),
            ],
        },
        Case {
            name: "default-deny ingress isolates every pod of its namespace for ingress only",
            policies: vec![np(
                "prod",
                "deny-ingress",
                json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
            )],
            checks: vec![
                into(WEB, CLIENT, Port::tcp(8080), Denied(&["prod/deny-ingress"])),
                into(API, OUTSIDE, Port::tcp(9090), Denied(&["prod/deny-ingress"])),
                out(WEB, OUTSIDE, Port::tcp(443), Unrestricted),
                into(DEV_WEB, CLIENT, Port::tcp(8080), Unrestricted),
            ],
        },
        Case {
            name: "deny-all egress isolates for egress only",
            policies: vec![np(
                "prod",
                "deny-egress",
                json!({"podSelector": {}, "policyTypes": ["Egress"]}),
            )],
            checks: vec![
                out(WEB, API, Port::tcp(9090), Denied(&["prod/deny-egress"])),
                out(WEB, OUTSIDE, Port::udp(53), Denied(&["prod/deny-egress"])),
                into(WEB, CLIENT, Port::tcp(8080), Unrestricted),
                out(DEV_CLIENT, WEB, Port::tcp(8080), Unrestricted),
            ],
        },
        Case {
            name: "a policy of another namespace never isolates, even selecting everything",
            policies: vec![np(
                "dev",
                "deny-all",
                json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            )],
            checks: vec![
                into(WEB, DEV_CLIENT, Port::tcp(8080), Unrestricted),
                out(WEB, DEV_WEB, Port::tcp(8080), Unrestricted),
                into(DEV_WEB, WEB, Port::tcp(8080), Denied(&["dev/deny-all"])),
                out(DEV_CLIENT, WEB, Port::tcp(8080), Denied(&["dev/deny-all"])),
            ],
        },
        Case {
            name: "unset policyTypes with egress rules: Ingress and Egress",
            policies: vec![np(
                "prod",
                "web-to-api",
                json!({"podSelector": {"matchLabels": {"app": "web"}},
                       "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api"}}}]}]}),
            )],
            checks: vec![
                into(WEB, CLIENT, Port::tcp(8080), Denied(&["prod/web-to-api"])),
                out(WEB, API, Port::tcp(9090), Allowed("prod/web-to-api")),
                out(WEB, OUTSIDE, Port::tcp(443), Denied(&["prod/web-to-api"])),
                out(CLIENT, OUTSIDE, Port::tcp(443), Unrestricted),
            ],
        },
        Case {
            name: "unset policyTypes without egress rules: Ingress only; an empty rule allows all",
            policies: vec![np(
                "prod",
                "open",
                json!({"podSelector": {}, "ingress": [{}], "egress": []}),
            )],
            checks: vec![
                into(WEB, OUTSIDE, Port::udp(5353), Allowed("prod/open")),
                into(WEB, OTHER_CLIENT, Port::tcp(1), Allowed("prod/open")),
                out(WEB, OUTSIDE, Port::tcp(443), Unrestricted),
            ],
        },
        Case {
            name: "policyTypes [Egress] leaves the pod open for ingress whatever its ingress rules",
            policies: vec![np(
                "prod",
                "egress-only",
                json!({"podSelector": {}, "policyTypes": ["Egress"],
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "nobody"}}}]}]}),
            )],
            checks: vec![
                into(WEB, OUTSIDE, Port::tcp(8080), Unrestricted),
                out(WEB, OUTSIDE, Port::tcp(443), Denied(&["prod/egress-only"])),
            ],
        },
        Case {
            name: "ingress: [] with Ingress denies all ingress",
            policies: vec![np(
                "prod",
                "closed",
                json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": []}),
            )],
            checks: vec![
                into(WEB, CLIENT, Port::tcp(8080), Denied(&["prod/closed"])),
                into(API, CLIENT, Port::tcp(9090), Unrestricted),
            ],
        },
    ]);
}

#[test]
fn peers() {
    let web_from = |name: &'static str, from: Value| {
        np(
            "prod",
            name,
            json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": from}]}),
        )
    };
    run(vec![
        Case {
            name: "podSelector alone: matching pods of the policy's namespace",
            policies: vec![web_from(
                "clients",
                json!([{"podSelector": {"matchLabels": {"app": "client"}}}]),
            )],
            checks: vec![
                into(WEB, CLIENT, Port::tcp(8080), Allowed("prod/clients")),
                into(WEB, DEV_CLIENT, Port::tcp(8080), Denied(&["prod/clients"])),
                into(WEB, API, Port::tcp(8080), Denied(&["prod/clients"])),
                into(WEB, "10.0.1.3", Port::tcp(8080), Denied(&["prod/clients"])),
                into(API, WEB, Port::tcp(9090), Unrestricted),
            ],
        },
        Case {
            name: "namespaceSelector alone: every pod of the matching namespaces",
            policies: vec![web_from(
                "from-dev",
                json!([{"namespaceSelector": {"matchLabels": {"env": "dev"}}}]),
            )],
            checks: vec![
                into(WEB, DEV_CLIENT, Port::tcp(8080), Allowed("prod/from-dev")),
                into(WEB, DEV_WEB, Port::tcp(8080), Allowed("prod/from-dev")),
                into(WEB, CLIENT, Port::tcp(8080), Denied(&["prod/from-dev"])),
                into(WEB, OTHER_CLIENT, Port::tcp(8080), Denied(&["prod/from-dev"])),
                into(WEB, OUTSIDE, Port::tcp(8080), Denied(&["prod/from-dev"])),
            ],
        },
        Case {
            name: "namespaces by their name label; {} selects every namespace's pods, not outside addresses",
            policies: vec![
                web_from(
                    "by-name",
                    json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}]),
                ),
                np(
                    "prod",
                    "any-pod",
                    json!({"podSelector": {"matchLabels": {"app": "api"}},
                           "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
                ),
            ],
            checks: vec![
                into(WEB, OTHER_CLIENT, Port::tcp(8080), Allowed("prod/by-name")),
                into(WEB, DEV_CLIENT, Port::tcp(8080), Denied(&["prod/by-name"])),
                into(API, OTHER_CLIENT, Port::tcp(9090), Allowed("prod/any-pod")),
                into(API, WEB, Port::tcp(9090), Allowed("prod/any-pod")),
                into(API, OUTSIDE, Port::tcp(9090), Denied(&["prod/any-pod"])),
            ],
        },
        Case {
            name: "podSelector and namespaceSelector in one peer: both must hold (AND)",
            policies: vec![web_from(
                "and",
                json!([{"namespaceSelector": {"matchLabels": {"env": "dev"}},
                        "podSelector": {"matchLabels": {"app": "client"}}}]),
            )],
            checks: vec![
                into(WEB, DEV_CLIENT, Port::tcp(8080), Allowed("prod/and")),
                into(WEB, DEV_WEB, Port::tcp(8080), Denied(&["prod/and"])),
                into(WEB, CLIENT, Port::tcp(8080), Denied(&["prod/and"])),
                into(WEB, OTHER_CLIENT, Port::tcp(8080), Denied(&["prod/and"])),
            ],
        },
        Case {
            name: "the same selectors as two peers: either will do (OR)",
            policies: vec![web_from(
                "or",
                json!([{"namespaceSelector": {"matchLabels": {"env": "dev"}}},
                       {"podSelector": {"matchLabels": {"app": "client"}}}]),
            )],
            checks: vec![
                into(WEB, DEV_CLIENT, Port::tcp(8080), Allowed("prod/or")),
                into(WEB, DEV_WEB, Port::tcp(8080), Allowed("prod/or")),
                into(WEB, CLIENT, Port::tcp(8080), Allowed("prod/or")),
                into(WEB, OTHER_CLIENT, Port::tcp(8080), Denied(&["prod/or"])),
                into(WEB, API, Port::tcp(8080), Denied(&["prod/or"])),
            ],
        },
        Case {
            name: "matchExpressions in pod selectors",
            policies: vec![np(
                "prod",
                "exprs",
                json!({"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]},
                       "ingress": [{"from": [{"podSelector": {"matchExpressions": [
                           {"key": "role", "operator": "DoesNotExist"},
                           {"key": "app", "operator": "NotIn", "values": ["web"]}]}}]}]}),
            )],
            checks: vec![
                into(WEB, CLIENT, Port::tcp(8080), Allowed("prod/exprs")),
                into(API, CLIENT, Port::tcp(9090), Allowed("prod/exprs")),
                into(WEB, API, Port::tcp(8080), Denied(&["prod/exprs"])),
                into(API, WEB, Port::tcp(9090), Denied(&["prod/exprs"])),
                into(CLIENT, WEB, Port::tcp(80), Unrestricted),
            ],
        },
        Case {
            name: "ipBlock: cidr minus except, for outside addresses and pods alike",
            policies: vec![
                np(
                    "prod",
                    "egress-block",
                    json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                           "egress": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}}]}]}),
                ),
                web_from("dev-block", json!([{"ipBlock": {"cidr": "10.0.2.0/24"}}])),
            ],
            checks: vec![
                out(WEB, OUTSIDE, Port::tcp(443), Allowed("prod/egress-block")),
                out(WEB, "192.0.2.200", Port::tcp(443), Denied(&["prod/egress-block"])),
                out(WEB, "198.51.100.7", Port::tcp(443), Denied(&["prod/egress-block"])),
                out(WEB, "::ffff:192.0.2.10", Port::tcp(443), Allowed("prod/egress-block")),
                out(WEB, "2001:db8::1", Port::tcp(443), Denied(&["prod/egress-block"])),
                into(WEB, DEV_CLIENT, Port::tcp(8080), Allowed("prod/dev-block")),
                into(WEB, OTHER_CLIENT, Port::tcp(8080), Denied(&["prod/dev-block"])),
                into(WEB, "10.0.2.99", Port::tcp(8080), Allowed("prod/dev-block")),
            ],
        },
        Case {
            name: "peers kube-apiserver refuses match nothing",
            policies: vec![web_from(
                "refused",
                json!([{}, {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
                       {"ipBlock": {"cidr": "10.0.0.0/33"}},
                       {"podSelector": {"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}}]),
            )],
            checks: vec![
                into(WEB, CLIENT, Port::tcp(8080), Denied(&["prod/refused"])),
                into(WEB, "10.9.9.9", Port::tcp(8080), Denied(&["prod/refused"])),
            ],
        },
    ]);
}

#[test]
fn ports() {
    let web_ports = |name: &'static str, ports: Value| {
        np(
            "prod",
            name,
            json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": ports}]}),
        )
    };
    run(vec![
        Case {
            name: "a number, TCP by default",
            policies: vec![web_ports("http", json!([{"port": 8080}]))],
            checks: vec![
                into(WEB, OUTSIDE, Port::tcp(8080), Allowed("prod/http")),
                into(WEB, OUTSIDE, Port::tcp(8081), Denied(&["prod/http"])),
                into(WEB, OUTSIDE, Port::udp(8080), Denied(&["prod/http"])),
            ],
        },
        Case {
            name: "protocol must match: UDP port, SCTP without a port",
            policies: vec![web_ports(
                "proto",
                json!([{"port": 53, "protocol": "UDP"}, {"protocol": "SCTP"}]),
            )],
            checks: vec![
                into(WEB, CLIENT, Port::udp(53), Allowed("prod/proto")),
                into(WEB, CLIENT, Port::tcp(53), Denied(&["prod/proto"])),
                into(WEB, CLIENT, Port::sctp(3868), Allowed("prod/proto")),
                into(WEB, CLIENT, Port::tcp(3868), Denied(&["prod/proto"])),
            ],
        },
        Case {
            name: "endPort: the range port..=endPort",
            policies: vec![web_ports("range", json!([{"port": 8000, "endPort": 8099}]))],
            checks: vec![
                into(WEB, CLIENT, Port::tcp(7999), Denied(&["prod/range"])),
                into(WEB, CLIENT, Port::tcp(8000), Allowed("prod/range")),
                into(WEB, CLIENT, Port::tcp(8080), Allowed("prod/range")),
                into(WEB, CLIENT, Port::tcp(8099), Allowed("prod/range")),
                into(WEB, CLIENT, Port::tcp(8100), Denied(&["prod/range"])),
                into(WEB, CLIENT, Port::udp(8080), Denied(&["prod/range"])),
            ],
        },
        Case {
            name: "ingress named ports resolve against the target pod, protocol included",
            policies: vec![
                web_ports("named", json!([{"port": "http"}, {"port": "dns", "protocol": "UDP"}])),
                np(
                    "prod",
                    "api-named",
                    json!({"podSelector": {"matchLabels": {"app": "api"}}, "ingress": [{"ports": [{"port": "http"}]}]}),
                ),
            ],
            checks: vec![
                into(WEB, CLIENT, Port::tcp(8080), Allowed("prod/named")),
                into(WEB, CLIENT, Port::tcp(9100), Denied(&["prod/named"])),
                into(WEB, CLIENT, Port::udp(53), Allowed("prod/named")),
                into(WEB, CLIENT, Port::tcp(53), Denied(&["prod/named"])),
                into(API, CLIENT, Port::tcp(8080), Denied(&["prod/api-named"])),
            ],
        },
        Case {
            name: "egress named ports resolve against the peer's pod, and match nothing without one",
            policies: vec![np(
                "prod",
                "client-grpc",
                json!({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
                       "egress": [{"ports": [{"port": "grpc"}]}]}),
            )],
            checks: vec![
                out(CLIENT, API, Port::tcp(9090), Allowed("prod/client-grpc")),
                out(CLIENT, WEB, Port::tcp(9090), Denied(&["prod/client-grpc"])),
                out(CLIENT, "10.0.1.2", Port::tcp(9090), Denied(&["prod/client-grpc"])),
            ],
        },
        Case {
            name: "a rule needs both a peer and a port to match",
            policies: vec![np(
                "prod",
                "both",
                json!({"podSelector": {"matchLabels": {"app": "web"}},
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                                    "ports": [{"port": 8080}]}]}),
            )],
            checks: vec![
                into(WEB, CLIENT, Port::tcp(8080), Allowed("prod/both")),
                into(WEB, CLIENT, Port::tcp(9100), Denied(&["prod/both"])),
                into(WEB, API, Port::tcp(8080), Denied(&["prod/both"])),
            ],
        },
        Case {
            name: "ports kube-apiserver refuses match nothing",
            policies: vec![web_ports(
                "refused",
                json!([{"endPort": 9000}, {"port": "http", "endPort": 9000}, {"port": 9000, "endPort": 8000},
                       {"port": 8080, "protocol": "ICMP"}, {"port": 70000}]),
            )],
            checks: vec![
                into(WEB, CLIENT, Port::tcp(8080), Denied(&["prod/refused"])),
                into(WEB, CLIENT, Port::tcp(8500), Denied(&["prod/refused"])),
                into(WEB, CLIENT, Port::tcp(9000), Denied(&["prod/refused"])),
            ],
        },
    ]);
}

#[test]
fn policies_add_up() {
    run(vec![Case {
        name: "the union of every selecting policy of the direction",
        policies: vec![
            np(
                "prod",
                "b-dev-metrics",
                json!({"podSelector": {"matchLabels": {"app": "web"}},
                       "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}],
                                    "ports": [{"port": 9100}]}]}),
            ),
            np(
                "prod",
                "a-clients-http",
                json!({"podSelector": {"matchLabels": {"app": "web"}},
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                                    "ports": [{"port": 8080}]}]}),
            ),
            np(
                "prod",
                "c-egress",
                json!({"podSelector": {}, "policyTypes": ["Egress"]}),
            ),
        ],
        checks: vec![
            into(WEB, CLIENT, Port::tcp(8080), Allowed("prod/a-clients-http")),
            into(WEB, DEV_CLIENT, Port::tcp(9100), Allowed("prod/b-dev-metrics")),
            into(
                WEB,
                DEV_CLIENT,
                Port::tcp(8080),
                Denied(&["prod/a-clients-http", "prod/b-dev-metrics"]),
            ),
            into(
                WEB,
                CLIENT,
                Port::tcp(9100),
                Denied(&["prod/a-clients-http", "prod/b-dev-metrics"]),
            ),
            into(API, CLIENT, Port::tcp(9090), Unrestricted),
            out(WEB, OUTSIDE, Port::tcp(443), Denied(&["prod/c-egress"])),
        ],
    }]);
}

#[test]
fn selection_without_a_connection() {
    let world = world();
    let policies: Vec<Arc<NetworkPolicy>> = [
        np(
            "prod",
            "web-in",
            json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}),
        ),
        np(
            "prod",
            "api-out",
            json!({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Egress"]}),
        ),
        json!({"metadata": {"name": "no-namespace"}, "spec": {"podSelector": {}}}),
    ]
    .into_iter()
    .map(|p| Arc::new(serde_json::from_value(p).unwrap()))
    .collect();
    let set = PolicySet::new(&policies, &world.namespaces);
    let web = world.pod(WEB).endpoint();
    let api = world.pod(API).endpoint();
    let client = world.pod(CLIENT).endpoint();
    assert!(set.selects(&web) && set.selects(&api) && !set.selects(&client));
    assert!(set.isolated(&web, Direction::Ingress) && !set.isolated(&web, Direction::Egress));
    assert!(!set.isolated(&api, Direction::Ingress) && set.isolated(&api, Direction::Egress));
    assert!(!set.is_empty());
    assert!(PolicySet::new(&[], &world.namespaces).is_empty());
    assert!(Verdict::Unrestricted.is_allowed());
    assert!(!Verdict::Denied { policies: vec![] }.is_allowed());
}

#[test]
fn unknown_namespaces_still_have_their_name_label() {
    let world = world();
    let policies = [Arc::new(
        serde_json::from_value::<NetworkPolicy>(np(
            "prod",
            "from-fresh",
            json!({"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "fresh"}}}]}]}),
        ))
        .unwrap(),
    )];
    let set = PolicySet::new(&policies, &world.namespaces);
    let pod_labels = labels(&[("app", "x")]);
    let fresh = Endpoint {
        namespace: "fresh",
        labels: &pod_labels,
        named_ports: &[],
    };
    let verdict = set.ingress(
        &world.pod(WEB).endpoint(),
        &Peer::pod("10.0.9.9".parse().unwrap(), fresh),
        Port::tcp(8080),
    );
    assert_eq!(
        verdict,
        Verdict::Allowed {
            policy: "prod/from-fresh".into()
        }
    );
}
