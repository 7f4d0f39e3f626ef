//! skiff's service proxy: what kube-proxy is to a Kubernetes node, without
//! iptables.
//!
//! Every node runs one. It watches Services, Endpoints and Nodes, and
//! listens on each Service port's ClusterIP (a loopback address, so
//! binding it needs no interface changes) and, for NodePort Services, on
//! the node's address and node port. A connection is proxied in user
//! space to a ready endpoint, on this node directly or on another node
//! through that node's tunnel.
//!
//! * [`table`]: the routing table, built (purely) from the watched objects.
//! * [`forward`]: one client connection: HTTP balanced per request with a
//!   503 that says why when there is no endpoint, or bytes spliced; HTTP
//!   goes to endpoints over a pool of keep-alive connections
//!   (`hyper_util`'s client with [`connect::Dialer`] as its connector).
//! * [`connect`]: dialling an endpoint, directly or through a tunnel.
//! * [`tunnel`]: the listener other nodes' proxies reach this node's
//!   endpoints through (`CONNECT podIP:port`).
//! * [`dns`]: cluster DNS, `<service>.<namespace>.svc.cluster.local`; an
//!   address that cannot be bound is retried with back-off and reported in
//!   a `FailedToListen` Event on the `kube-dns` Service.
//! * [`ingress`]: the node's HTTP and HTTPS listeners for Ingresses of
//!   class `skiff`, host and path rules, TLS from Secrets; an address that
//!   cannot be bound is retried with back-off and logged (there is no
//!   object to record an Event on).
//! * `listeners`: the frontend sockets, following the table; an address
//!   that cannot be bound is retried with back-off and reported in a
//!   `FailedToListen` Event on its Service.
//! * [`policy`]: NetworkPolicy as the node enforces it: policies,
//!   namespaces and every pod's labels and address, built into
//!   [`policy::Policies`], which says whether one connection may go. The
//!   proxy skips endpoints a Service connection may not reach (and answers
//!   an HTTP request none may reach with a 403 that names the policies);
//!   the node agent asks it about Wasm pods' own connections. The first
//!   refusal by each policy is a Warning Event, `PolicyDenied`, on it.
//! * [`metrics`]: requests, upstream latency and spliced connections by
//!   Service, for Prometheus, counted into the registry the node agent
//!   serves ([`ProxyConfig::metrics`]).
//! * [`wake`]: scale from zero: an HTTP request to a Service with no
//!   endpoint whose workload an autoscaler with `minReplicas: 0` took to
//!   zero is held while one replica is brought up, then forwarded.
//! * `retry`: binding an address another process holds, again after
//!   200 ms, doubling up to 10 s, until it binds (`retry::Backoff`); the
//!   frontends, the cluster DNS and the Ingress listeners all bind through
//!   it.
//!
//! What it does not do, compared with kube-proxy: UDP and SCTP ports,
//! session affinity, `externalTrafficPolicy: Local` and
//! `internalTrafficPolicy: Local` (all traffic is spread cluster-wide),
//! external IPs and load balancer addresses, and keeping the client's
//! source address (endpoints see the proxy's).

pub mod connect;
pub mod dns;
pub mod forward;
pub mod ingress;
mod listeners;
pub mod metrics;
pub mod policy;
mod retry;
pub mod table;
pub mod tunnel;
pub mod wake;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, ObjectReference, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use skiff_client::events::{self, Recorder};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use listeners::Listeners;
use table::{Inputs, Table};

pub use table::TUNNEL_PORT_ANNOTATION;

/// How a node's proxy runs.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The node it serves: endpoints on other nodes go through their
    /// tunnels.
    pub node_name: String,
    /// The node's address: NodePorts and the tunnel listen here.
    pub node_ip: IpAddr,
    /// The tunnel's port; 0 picks a free one.
    pub tunnel_port: u16,
    /// How long dialling one endpoint may take before the next is tried.
    pub connect_timeout: Duration,
    /// Where Ingress traffic arrives, in plain HTTP and in HTTPS; `None`
    /// serves none.
    pub ingress_http: Option<SocketAddr>,
    pub ingress_https: Option<SocketAddr>,
    /// The tunnels' mutual TLS (this node's and the ones it dials);
    /// `None` speaks plain TCP.
    pub tunnel_tls: Option<tunnel::TunnelTls>,
    /// Where requests and connections are counted; by default, metrics
    /// served nowhere ([`metrics::Metrics::register`] makes served ones).
    pub metrics: metrics::Metrics,
}

impl ProxyConfig {
    pub fn new(node_name: impl Into<String>, node_ip: IpAddr) -> ProxyConfig {
        ProxyConfig {
            node_name: node_name.into(),
            node_ip,
            tunnel_port: 0,
            connect_timeout: Duration::from_secs(2),
            ingress_http: None,
            ingress_https: None,
            tunnel_tls: None,
            metrics: metrics::Metrics::default(),
        }
    }
}

/// What the proxy's tasks share.
pub(crate) struct Shared {
    table: RwLock<Arc<Table>>,
    dns_records: Arc<RwLock<Arc<dns::Records>>>,
    /// The NetworkPolicy view, replaced whole on every change; the node
    /// agent follows it to load the kernel's rules for container pods.
    policies: tokio::sync::watch::Sender<Arc<policy::Policies>>,
    pool: forward::Pool,
    dialer: connect::Dialer,
    /// Where refusals are recorded; none in unit tests.
    recorder: Option<Recorder>,
    /// Policies whose first refusal has been recorded.
    reported: std::sync::Mutex<HashSet<Arc<str>>>,
    metrics: metrics::Metrics,
    /// Bumped whenever the table is replaced, for requests waiting on an
    /// endpoint.
    table_version: tokio::sync::watch::Sender<u64>,
    /// Wakes workloads scaled to zero; none in unit tests.
    waker: Option<Arc<wake::Waker>>,
}

impl Shared {
    pub(crate) fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn policies(&self) -> Arc<policy::Policies> {
        self.policies.borrow().clone()
    }

    /// Records a refusal as a Warning Event on each refusing policy, the
    /// first time that policy refuses anything.
    pub(crate) fn report(&self, decision: &policy::Decision, what: &str) {
        let policy::Decision::Denied { policies, .. } = decision else {
            return;
        };
        for name in policies {
            let first = self
                .reported
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone());
            if !first {
                continue;
            }
            let (namespace, policy) = name.split_once('/').unwrap_or(("", name));
            let object = ObjectReference {
                api_version: Some("networking.k8s.io/v1".into()),
                kind: Some("NetworkPolicy".into()),
                namespace: Some(namespace.into()),
                name: Some(policy.into()),
                ..ObjectReference::default()
            };
            let message = format!("{what}: {}", decision.describe());
            tracing::info!(%message, "NetworkPolicy refused a connection");
            if let Some(recorder) = &self.recorder {
                recorder.record(&object, events::Kind::Warning, "PolicyDenied", "Connect", message);
            }
        }
    }
}

#[cfg(test)]
impl Shared {
    /// A proxy's state around `table`, dialling plainly, recording
    /// nothing.
    pub(crate) fn with_table(table: Table) -> Arc<Shared> {
        let dialer = connect::Dialer::new(Duration::from_secs(2), None);
        Arc::new(Shared {
            table: RwLock::new(Arc::new(table)),
            dns_records: Arc::default(),
            policies: tokio::sync::watch::Sender::default(),
            pool: forward::Pool::new(dialer.clone()),
            dialer,
            recorder: None,
            reported: std::sync::Mutex::default(),
            metrics: metrics::Metrics::default(),
            table_version: tokio::sync::watch::Sender::default(),
            waker: None,
        })
    }
}

/// A running proxy. Dropping it closes its listeners.
pub struct Proxy {
    tunnel_addr: SocketAddr,
    shared: Arc<Shared>,
    services: Store<Service>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("tunnel_addr", &self.tunnel_addr)
            .finish_non_exhaustive()
    }
}

/// Follows one kind into a reflector store, waking `changed` on every
/// event.
fn follow<K>(api: Api<K>, config: watcher::Config, changed: Arc<Notify>) -> (Store<K>, JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
    K: k8s_openapi::serde::de::DeserializeOwned,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api, config)).default_backoff();
    let task = tokio::spawn(async move {
        stream
            .for_each(|event| {
                if let Err(error) = event {
                    tracing::debug!(%error, "proxy watch failed; retrying");
                }
                changed.notify_one();
                futures::future::ready(())
            })
            .await;
    });
    (reader, task)
}

impl Proxy {
    /// Binds the tunnel, then follows the cluster and serves its Services
    /// until dropped. Every other address (frontends, cluster DNS,
    /// Ingress listeners) is bound by its own task, with back-off while
    /// another process holds it, so an error here is the tunnel's only.
    pub async fn start(client: kube::Client, config: ProxyConfig) -> std::io::Result<Proxy> {
        let tunnel = listeners::bind(SocketAddr::new(config.node_ip, config.tunnel_port))?;
        let tunnel_addr = tunnel.local_addr()?;
        let recorder = Recorder::new(client.clone(), "kube-proxy", Some(config.node_name.clone()));
        let tunnel_tls = config.tunnel_tls.clone();
        let dialer = connect::Dialer::new(config.connect_timeout, tunnel_tls.clone());
        let changed = Arc::new(Notify::new());
        let all = watcher::Config::default;
        let (services, services_task) = follow(Api::<Service>::all(client.clone()), all(), changed.clone());
        // Autoscalers change nothing in the table; only wakes read them.
        let (autoscalers, autoscalers_task) = follow(
            Api::<HorizontalPodAutoscaler>::all(client.clone()),
            all(),
            Arc::new(Notify::new()),
        );
        let shared = Arc::new(Shared {
            table: RwLock::default(),
            dns_records: Arc::default(),
            policies: tokio::sync::watch::Sender::default(),
            pool: forward::Pool::new(dialer.clone()),
            dialer,
            recorder: Some(recorder.clone()),
            reported: std::sync::Mutex::default(),
            metrics: config.metrics.clone(),
            table_version: tokio::sync::watch::Sender::default(),
            waker: Some(Arc::new(wake::Waker::new(
                client.clone(),
                services.clone(),
                autoscalers,
            ))),
        });
        let (endpoints, endpoints_task) = follow(Api::<Endpoints>::all(client.clone()), all(), changed.clone());
        let (nodes, nodes_task) = follow(Api::<Node>::all(client.clone()), all(), changed.clone());
        let mut tasks = vec![services_task, endpoints_task, nodes_task, autoscalers_task];
        // NetworkPolicy's inputs change more often (every pod) and are
        // rebuilt on their own.
        let policies_changed = Arc::new(Notify::new());
        let (network_policies, task) = follow(
            Api::<NetworkPolicy>::all(client.clone()),
            all(),
            policies_changed.clone(),
        );
        tasks.push(task);
        let (namespaces, task) = follow(Api::<Namespace>::all(client.clone()), all(), policies_changed.clone());
        tasks.push(task);
        let (pods, task) = follow(Api::<Pod>::all(client.clone()), all(), policies_changed.clone());
        tasks.push(task);
        tasks.push(tokio::spawn(sync_policies(
            shared.clone(),
            policies_changed,
            (network_policies, namespaces, pods),
        )));
        let ingress = if config.ingress_http.is_some() || config.ingress_https.is_some() {
            let sync = ingress::Sync::new(client.clone(), &config.node_name, config.node_ip.to_string());
            if let Some(addr) = config.ingress_http {
                let serve = ingress::serve_http(addr, shared.clone(), sync.current.clone());
                tasks.push(tokio::spawn(serve));
            }
            if let Some(addr) = config.ingress_https {
                let serve = ingress::serve_https(addr, shared.clone(), sync.current.clone());
                tasks.push(tokio::spawn(serve));
            }
            let (ingresses, task) = follow(Api::<Ingress>::all(client.clone()), all(), changed.clone());
            tasks.push(task);
            let tls = all().fields("type=kubernetes.io/tls");
            let (secrets, task) = follow(Api::<Secret>::all(client), tls, changed.clone());
            tasks.push(task);
            Some((sync, ingresses, secrets))
        } else {
            None
        };
        tasks.push(tokio::spawn(sync(
            config,
            recorder,
            shared.clone(),
            changed,
            (services.clone(), endpoints, nodes),
            ingress,
        )));
        tasks.push(tokio::spawn(tunnel::serve(tunnel, shared.clone(), tunnel_tls)));
        Ok(Proxy {
            tunnel_addr,
            shared,
            services,
            tasks,
        })
    }

    /// Where other nodes reach this node's endpoints; its port belongs in
    /// the Node's [`TUNNEL_PORT_ANNOTATION`].
    pub fn tunnel_addr(&self) -> SocketAddr {
        self.tunnel_addr
    }

    /// The Services this proxy knows, for the environment variables pods
    /// get.
    pub fn services(&self) -> Vec<Arc<Service>> {
        self.services.state()
    }

    /// What `name` resolves to for a pod in `namespace`, from the
    /// records the cluster DNS answers with ([`dns::lookup`]).
    pub fn lookup(&self, name: &str, namespace: &str) -> dns::Lookup {
        let records = self
            .shared
            .dns_records
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        dns::lookup(&records, name, namespace)
    }

    /// The Service port served at `addr` (a ClusterIP or node port), if
    /// any: its endpoints, for a caller that reaches them itself.
    pub fn frontend(&self, addr: SocketAddr) -> Option<Arc<table::Frontend>> {
        self.shared.table().frontends.get(&addr).cloned()
    }

    /// The NetworkPolicies in force, and the pods they speak of.
    pub fn policies(&self) -> Arc<policy::Policies> {
        self.shared.policies()
    }

    /// The NetworkPolicies in force, now and after every change.
    pub fn follow_policies(&self) -> tokio::sync::watch::Receiver<Arc<policy::Policies>> {
        self.shared.policies.subscribe()
    }

    /// Records a refusal the caller enforced (a Warning Event on each
    /// refusing policy, once per policy); `what` names the connection.
    pub fn report(&self, decision: &policy::Decision, what: &str) {
        self.shared.report(decision, what);
    }

    /// Where the cluster DNS answers, once the `kube-dns` Service exists.
    pub fn dns_address(&self) -> Option<SocketAddr> {
        dns::address(&self.services.state())
    }
}

/// A task that ends with its owner.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Rebuilds the NetworkPolicy view after every change of its inputs.
async fn sync_policies(
    shared: Arc<Shared>,
    changed: Arc<Notify>,
    (policies, namespaces, pods): (Store<NetworkPolicy>, Store<Namespace>, Store<Pod>),
) {
    loop {
        changed.notified().await;
        let built = policy::Policies::build(&policies.state(), &namespaces.state(), &pods.state());
        shared.policies.send_replace(Arc::new(built));
    }
}

/// Rebuilds the table and the listeners after every change.
async fn sync(
    config: ProxyConfig,
    recorder: Recorder,
    shared: Arc<Shared>,
    changed: Arc<Notify>,
    (services, endpoints, nodes): (Store<Service>, Store<Endpoints>, Store<Node>),
    mut ingress: Option<(ingress::Sync, Store<Ingress>, Store<Secret>)>,
) {
    let mut listeners = Listeners::new(recorder.clone());
    let mut resolver: Option<(SocketAddr, AbortOnDrop)> = None;
    loop {
        changed.notified().await;
        let (services, endpoints, nodes) = (services.state(), endpoints.state(), nodes.state());
        let table = table::build(&Inputs {
            services: &services,
            endpoints: &endpoints,
            nodes: &nodes,
            node_name: &config.node_name,
            node_ip: config.node_ip,
        });
        let wanted: HashMap<SocketAddr, Arc<table::Frontend>> = table.frontends.clone();
        let live: HashSet<&table::Backend> = table
            .services
            .values()
            .flatten()
            .flat_map(|port| port.frontend.backends.iter())
            .collect();
        shared.pool.follow(&live);
        if let Some((sync, ingresses, secrets)) = ingress.as_mut() {
            sync.update(&ingresses.state(), &secrets.state(), &table);
        }
        *shared.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        shared.table_version.send_modify(|v| *v += 1);
        *shared.dns_records.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(dns::records(&services, &endpoints));
        let dns_address = dns::address(&services);
        if resolver.as_ref().map(|(addr, _)| *addr) != dns_address {
            resolver = dns_address.map(|addr| {
                let service = dns::service(&services).map(events::reference).unwrap_or_default();
                let serve = dns::serve(addr, shared.dns_records.clone(), recorder.clone(), service);
                (addr, AbortOnDrop(tokio::spawn(serve)))
            });
        }
        listeners.reconcile(&wanted, &shared);
        tracing::debug!(frontends = listeners.len(), "service table updated");
    }
}
