//! The routing table: which address serves which Service port, and the
//! endpoints behind each. Pure: built from Services, Endpoints and Nodes.
//!
//! Every Service port with a ClusterIP is a frontend at `clusterIP:port`;
//! a NodePort (or LoadBalancer) Service's port is also one at
//! `nodeIP:nodePort`. A frontend's backends are the ready addresses of the
//! Service's Endpoints for that port (by port name, as kube-proxy matches
//! them): on this node they are dialled directly, on another node through
//! that node's tunnel (its InternalIP and the port it publishes in the
//! [`TUNNEL_PORT_ANNOTATION`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::{Endpoints, Node, ObjectReference, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::metrics::{Metrics, ServiceMetrics};

/// The Node annotation where a node's proxy publishes its tunnel port.
pub const TUNNEL_PORT_ANNOTATION: &str = "skiff.dev/proxy-tunnel-port";

/// How a backend is reached.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    /// Directly: the endpoint is on this node.
    Local,
    /// Through the tunnel of the node that runs it.
    Tunnel(SocketAddr),
}

/// One endpoint of a Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Backend {
    pub addr: SocketAddr,
    pub route: Route,
    /// The pod its Endpoints address names (`targetRef`): namespace and
    /// name.
    pub pod: Option<(String, String)>,
}

/// How a frontend's connections are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// HTTP/1: each request is balanced on its own, and a request that
    /// finds no endpoint is answered 503 (`appProtocol: http`).
    Http,
    /// Bytes: each connection goes to one endpoint (any other
    /// `appProtocol`).
    Tcp,
    /// HTTP when the client's first bytes are an HTTP request, else bytes
    /// (no `appProtocol`).
    Detect,
}

/// A Service port as one address serves it.
#[derive(Debug)]
pub struct Frontend {
    /// `namespace/name:port`, for messages.
    pub service: String,
    /// The Service, for Events about it.
    pub object: ObjectReference,
    pub mode: Mode,
    pub backends: Vec<Backend>,
    /// Why there are no backends, when there are none: the body of the 503.
    pub empty_reason: String,
    next: AtomicUsize,
    /// The Service's metric handles, resolved on first use.
    metrics: OnceLock<ServiceMetrics>,
}

impl Frontend {
    pub fn new(
        service: String,
        object: ObjectReference,
        mode: Mode,
        backends: Vec<Backend>,
        empty_reason: String,
    ) -> Frontend {
        Frontend {
            service,
            object,
            mode,
            backends,
            empty_reason,
            next: AtomicUsize::new(0),
            metrics: OnceLock::new(),
        }
    }

    /// The Service's handles in `metrics`, resolved on the first call.
    pub(crate) fn metrics(&self, metrics: &Metrics) -> &ServiceMetrics {
        self.metrics.get_or_init(|| {
            let namespace = self.object.namespace.as_deref().unwrap_or_default();
            metrics.service(namespace, self.object.name.as_deref().unwrap_or_default())
        })
    }

    /// Every backend, starting from the next in round-robin order: the
    /// first to try, then the ones to fall back on.
    pub fn pick(&self) -> impl Iterator<Item = &Backend> {
        let count = self.backends.len();
        let start = if count == 0 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % count
        };
        (0..count).map(move |i| &self.backends[(start + i) % count])
    }
}

/// Every frontend of this node, and the endpoints on this node that other
/// nodes' tunnels may reach.
#[derive(Debug, Default)]
pub struct Table {
    pub frontends: HashMap<SocketAddr, Arc<Frontend>>,
    pub local_targets: HashSet<SocketAddr>,
    /// Every Service's TCP ports (headless ones too), by namespace and
    /// name: what Ingress backends name.
    pub services: HashMap<(String, String), Vec<ServiceFrontend>>,
}

/// One port of a Service, by its name and number.
#[derive(Debug)]
pub struct ServiceFrontend {
    pub name: String,
    pub port: i32,
    pub frontend: Arc<Frontend>,
}

impl Table {
    /// The frontend of `namespace/service`'s port with this number or name;
    /// `Err` says what is missing.
    pub fn service_port(&self, namespace: &str, service: &str, port: PortRef<'_>) -> Result<Arc<Frontend>, String> {
        let Some(ports) = self.services.get(&(namespace.to_string(), service.to_string())) else {
            return Err(format!("Service {namespace}/{service} not found"));
        };
        ports
            .iter()
            .find(|p| match port {
                PortRef::Number(n) => p.port == n,
                PortRef::Name(name) => p.name == name,
            })
            .map(|p| p.frontend.clone())
            .ok_or_else(|| match port {
                PortRef::Number(n) => format!("Service {namespace}/{service} has no TCP port {n}"),
                PortRef::Name(name) => format!("Service {namespace}/{service} has no TCP port named {name:?}"),
            })
    }
}

/// A Service port as a backend names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRef<'a> {
    Number(i32),
    Name(&'a str),
}

/// What the table is built from.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub services: &'a [Arc<Service>],
    pub endpoints: &'a [Arc<Endpoints>],
    pub nodes: &'a [Arc<Node>],
    pub node_name: &'a str,
    pub node_ip: IpAddr,
}

/// An object's namespace and name.
pub(crate) fn key_of(metadata: &ObjectMeta) -> (String, String) {
    (
        metadata.namespace.clone().unwrap_or_default(),
        metadata.name.clone().unwrap_or_default(),
    )
}

/// Where each other node's tunnel listens.
fn tunnels(nodes: &[Arc<Node>]) -> HashMap<String, SocketAddr> {
    nodes
        .iter()
        .filter_map(|node| {
            let name = node.metadata.name.clone()?;
            let port: u16 = node
                .metadata
                .annotations
                .as_ref()?
                .get(TUNNEL_PORT_ANNOTATION)?
                .parse()
                .ok()?;
            let ip: IpAddr = node
                .status
                .as_ref()?
                .addresses
                .iter()
                .flatten()
                .find(|a| a.type_ == "InternalIP")?
                .address
                .parse()
                .ok()?;
            Some((name, SocketAddr::new(ip, port)))
        })
        .collect()
}

fn mode(port: &ServicePort) -> Mode {
    match port.app_protocol.as_deref() {
        None => Mode::Detect,
        Some("http" | "HTTP" | "kubernetes.io/http") => Mode::Http,
        Some(_) => Mode::Tcp,
    }
}

fn describe_selector(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The backends of one Service port, or why there are none.
fn backends(
    service: &Service,
    port: &ServicePort,
    endpoints: Option<&Endpoints>,
    tunnels: &HashMap<String, SocketAddr>,
    node_name: &str,
) -> (Vec<Backend>, String) {
    let wanted_name = port.name.clone().unwrap_or_default();
    let mut backends = BTreeSet::new();
    let mut not_ready = 0;
    let mut unreachable = BTreeSet::new();
    for subset in endpoints.and_then(|e| e.subsets.as_ref()).into_iter().flatten() {
        let Some(target) = subset
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.clone().unwrap_or_default() == wanted_name)
            .and_then(|p| u16::try_from(p.port).ok())
        else {
            continue;
        };
        not_ready += subset.not_ready_addresses.as_ref().map_or(0, Vec::len);
        for address in subset.addresses.iter().flatten() {
            let Ok(ip) = address.ip.parse::<IpAddr>() else { continue };
            let route = match address.node_name.as_deref() {
                Some(node) if node != node_name => match tunnels.get(node) {
                    Some(tunnel) => Route::Tunnel(*tunnel),
                    None => {
                        unreachable.insert(node.to_string());
                        continue;
                    }
                },
                _ => Route::Local,
            };
            let pod = address
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| Some((r.namespace.clone()?, r.name.clone()?)));
            backends.insert(Backend {
                addr: SocketAddr::new(ip, target),
                route,
                pod,
            });
        }
    }
    let name = format!(
        "{}/{}",
        service.metadata.namespace.as_deref().unwrap_or_default(),
        service.metadata.name.as_deref().unwrap_or_default()
    );
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .filter(|s| !s.is_empty());
    let reason = if !unreachable.is_empty() {
        format!(
            "no reachable endpoints for Service {name}: its endpoints are on nodes whose proxy has not published an address ({})",
            unreachable.into_iter().collect::<Vec<_>>().join(", ")
        )
    } else if not_ready > 0 {
        format!("no ready endpoints for Service {name}: {not_ready} selected pod(s), none ready")
    } else {
        match selector {
            None => format!(
                "no endpoints for Service {name}: it has no selector, and no Endpoints object lists addresses for it"
            ),
            Some(selector) => format!(
                "no endpoints for Service {name}: no running pod with an IP matches its selector {} on port {}",
                describe_selector(&selector),
                if wanted_name.is_empty() {
                    port.port.to_string()
                } else {
                    wanted_name
                }
            ),
        }
    };
    (backends.into_iter().collect(), reason)
}

/// The table for this node.
pub fn build(inputs: &Inputs<'_>) -> Table {
    let tunnels = tunnels(inputs.nodes);
    let endpoints: HashMap<(String, String), &Endpoints> = inputs
        .endpoints
        .iter()
        .map(|e| (key_of(&e.metadata), e.as_ref()))
        .collect();
    let mut table = Table::default();
    for service in inputs.services {
        let Some(spec) = service.spec.as_ref() else { continue };
        let cluster_ip = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok());
        let node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let found = endpoints.get(&key_of(&service.metadata)).copied();
        for port in spec.ports.iter().flatten() {
            if port.protocol.as_deref().is_some_and(|p| p != "TCP") {
                continue;
            }
            let (backends, reason) = backends(service, port, found, &tunnels, inputs.node_name);
            for backend in backends.iter().filter(|b| b.route == Route::Local) {
                table.local_targets.insert(backend.addr);
            }
            let frontend = Arc::new(Frontend::new(
                format!(
                    "{}/{}:{}",
                    service.metadata.namespace.as_deref().unwrap_or_default(),
                    service.metadata.name.as_deref().unwrap_or_default(),
                    port.name.clone().unwrap_or_else(|| port.port.to_string())
                ),
                skiff_client::events::reference(service.as_ref()),
                mode(port),
                backends,
                reason,
            ));
            table
                .services
                .entry(key_of(&service.metadata))
                .or_default()
                .push(ServiceFrontend {
                    name: port.name.clone().unwrap_or_default(),
                    port: port.port,
                    frontend: frontend.clone(),
                });
            if let (Some(ip), Ok(number)) = (cluster_ip, u16::try_from(port.port)) {
                table.frontends.insert(SocketAddr::new(ip, number), frontend.clone());
            }
            if node_ports && let Some(node_port) = port.node_port.and_then(|p| u16::try_from(p).ok()) {
                table
                    .frontends
                    .insert(SocketAddr::new(inputs.node_ip, node_port), frontend);
            }
        }
    }
    table
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse<T: k8s_openapi::serde::de::DeserializeOwned>(value: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn inputs_table(services: &[Arc<Service>], endpoints: &[Arc<Endpoints>]) -> Table {
        let nodes = [
            parse::<Node>(
                json!({"metadata": {"name": "b", "annotations": {TUNNEL_PORT_ANNOTATION: "7000"}},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.2"}]}}),
            ),
            parse::<Node>(json!({"metadata": {"name": "c"}})),
        ];
        build(&Inputs {
            services,
            endpoints,
            nodes: &nodes,
            node_name: "a",
            node_ip: "127.0.0.1".parse().unwrap(),
        })
    }

    fn web_service(kind: &str) -> Arc<Service> {
        parse(json!({"metadata": {"name": "web", "namespace": "d"},
            "spec": {"type": kind, "clusterIP": "127.96.0.5", "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                          {"name": "raw", "port": 9000, "appProtocol": "tcp"}]}}))
    }

    #[test]
    fn frontends_route_ready_endpoints_by_port_name_and_node() {
        let endpoints = [parse::<Endpoints>(
            json!({"metadata": {"name": "web", "namespace": "d"},
            "subsets": [{"ports": [{"name": "http", "port": 8080}, {"name": "raw", "port": 9001}],
                "addresses": [{"ip": "127.1.0.1", "nodeName": "a"}, {"ip": "127.2.0.1", "nodeName": "b"}],
                "notReadyAddresses": [{"ip": "127.1.0.9", "nodeName": "a"}]}]}),
        )];
        let table = inputs_table(&[web_service("NodePort")], &endpoints);
        let http = &table.frontends[&"127.96.0.5:80".parse().unwrap()];
        assert_eq!(http.mode, Mode::Detect);
        assert_eq!(
            http.backends,
            [
                Backend {
                    addr: "127.1.0.1:8080".parse().unwrap(),
                    route: Route::Local,
                    pod: None,
                },
                Backend {
                    addr: "127.2.0.1:8080".parse().unwrap(),
                    route: Route::Tunnel("127.0.0.2:7000".parse().unwrap()),
                    pod: None,
                },
            ]
        );
        assert!(Arc::ptr_eq(http, &table.frontends[&"127.0.0.1:30080".parse().unwrap()]));
        assert_eq!(table.frontends[&"127.96.0.5:9000".parse().unwrap()].mode, Mode::Tcp);
        assert_eq!(
            table.local_targets,
            HashSet::from(["127.1.0.1:8080".parse().unwrap(), "127.1.0.1:9001".parse().unwrap()])
        );
        // Round robin, every backend offered once per pick.
        let first: Vec<_> = http.pick().map(|b| b.addr).collect();
        let second: Vec<_> = http.pick().map(|b| b.addr).collect();
        assert_eq!(first.len(), 2);
        assert_ne!(first[0], second[0]);
    }

    #[test]
    fn empty_frontends_say_why() {
        let reason = |services: &[Arc<Service>], endpoints: &[Arc<Endpoints>]| {
            let table = inputs_table(services, endpoints);
            let frontend = &table.frontends[&"127.96.0.5:80".parse().unwrap()];
            assert!(frontend.backends.is_empty());
            frontend.empty_reason.clone()
        };
        assert!(
            reason(&[web_service("ClusterIP")], &[])
                .contains("no running pod with an IP matches its selector app=web on port http")
        );
        let mut bare = (*web_service("ClusterIP")).clone();
        bare.spec.as_mut().unwrap().selector = None;
        assert!(reason(&[Arc::new(bare)], &[]).contains("it has no selector"));
        let unready = [parse::<Endpoints>(
            json!({"metadata": {"name": "web", "namespace": "d"},
            "subsets": [{"ports": [{"name": "http", "port": 8080}], "notReadyAddresses": [{"ip": "127.1.0.9"}]}]}),
        )];
        assert!(reason(&[web_service("ClusterIP")], &unready).contains("1 selected pod(s), none ready"));
        let elsewhere = [parse::<Endpoints>(
            json!({"metadata": {"name": "web", "namespace": "d"},
            "subsets": [{"ports": [{"name": "http", "port": 8080}], "addresses": [{"ip": "127.3.0.1", "nodeName": "c"}]}]}),
        )];
        assert!(reason(&[web_service("ClusterIP")], &elsewhere).contains("(c)"));
        let table = inputs_table(&[web_service("ClusterIP")], &[]);
        assert_eq!(table.frontends.len(), 2, "no node port for a ClusterIP Service");
    }
}
