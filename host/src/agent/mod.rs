//! The node agent (skiff's kubelet): registers this node, keeps its Lease
//! and Ready condition fresh, runs the pods bound to it and reports their
//! status, and serves their logs.
//!
//! * [`node`]: the Node object, its status and heartbeat.
//! * [`pods`]: the watch on this node's pods, one worker per pod.
//! * [`worker`]: a pod's lifecycle: prepare, init containers, containers,
//!   restarts with back-off, graceful termination.
//! * `adopt`: what an earlier agent left running, claimed by its pods
//!   when the agent restarts, the rest removed.
//! * [`runtime`]: [`WorkloadRuntime`](runtime::WorkloadRuntime) and its
//!   backends, wasmtime (in this process, [`skiff_wasm`]) and runc
//!   ([`crate::oci`]); each says which images it runs and how its
//!   containers' logs and network are wired, so the worker never asks
//!   what kind an image is.
//! * [`spec`]: environment and volumes from the pod spec.
//! * [`probe`]: startup, liveness and readiness probes.
//! * [`status`]: pod phase, conditions and container statuses (pure).
//! * [`logs`], [`daemon`]: container log files, and the endpoint the API
//!   server reads them from.
//! * [`stats`], [`metrics`]: what pods use (`/stats/summary`), and the
//!   agent's Prometheus metrics (`/metrics`, `/metrics/resource`) on the
//!   same endpoint, one registry per agent into which the Wasm runtime and
//!   the service proxy count too.
//! * [`streams`]: `exec` and `port-forward` on that endpoint (WebSocket
//!   and SPDY).
//! * [`events`]: kubelet-style Events about containers.
//! * [`gateway`]: the HTTP listeners in front of Wasm HTTP pods.
//! * `isolation`: NetworkPolicy for container pods in their own network
//!   namespaces, kept loaded in the kernel (Wasm pods' connections are
//!   checked in the agent as they are made).
//! * [`egress`]: where Wasm pods' outgoing HTTP goes: cluster names,
//!   Wasm pods of this node in-process, everything else through one
//!   connection pool, within per-pod and per-node limits.
//!
//! Each agent also runs the node's service proxy ([`skiff_proxy`]), which
//! makes Services reachable on this node and lets other nodes reach this
//! node's endpoints; its tunnel's port is published on the Node.
//!
//! Everything talks to the API through `kube`, as any client would.

mod adopt;
pub mod daemon;
pub mod egress;
pub mod events;
pub mod gateway;
mod isolation;
pub mod logs;
pub mod metrics;
pub mod node;
mod pods;
pub mod probe;
pub mod runtime;
pub mod spec;
pub mod stats;
pub mod status;
pub mod streams;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::oci::RuncRuntime;
use crate::podnet::{self, PodNetwork};
use daemon::LogIndex;
use egress::{Egress, EgressLimits};
use gateway::{LocalServices, PodIps};
use logs::LogLimits;
use runtime::{RuncWorkloads, Runtimes, WasmtimeWorkloads};
use skiff_image::credentials::Keyring;
use skiff_image::{Image, ImageStore, is_loopback_reference};
use skiff_proxy::tunnel::TunnelTls;
use skiff_proxy::{Proxy, ProxyConfig};
use skiff_wasm::{PoolConfig, RuntimeConfig, WasmError, WasmRuntime};

/// The wasmtime release the agent embeds, for the node's runtime version.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub node_name: String,
    /// The node's address: its InternalIP, where OCI pods (host network)
    /// and the agent's endpoint listen.
    pub node_ip: String,
    pub data_dir: PathBuf,
    /// Port of the agent's endpoint; 0 picks a free one.
    pub daemon_port: u16,
    /// Port of the service proxy's node-to-node tunnel; 0 picks a free
    /// one, which the Node object publishes.
    pub tunnel_port: u16,
    /// Ports of the node's Ingress listeners (HTTP, HTTPS) on `node_ip`;
    /// `None` serves no Ingress traffic of that kind.
    pub ingress_http_port: Option<u16>,
    pub ingress_https_port: Option<u16>,
    /// Where Wasm pods get their addresses: a /16 on loopback. Nodes on
    /// one machine need different ones.
    pub pod_cidr: std::net::Ipv4Addr,
    pub max_pods: u32,
    pub runc_binary: PathBuf,
    /// The skiff binary, run as each runc container's shim
    /// (`skiff container-shim`, [`crate::oci::shim`]) so that containers
    /// and their exit codes outlive the agent; `None` watches them from
    /// the agent itself.
    pub container_shim: Option<PathBuf>,
    /// Set by [`Agent::start`]: whether runc could be run here.
    pub runc_usable: bool,
    pub wasmtime_version: String,
    /// Restart back-off: first delay and cap (the kubelet's are 10 s and
    /// 300 s).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long one request to a Wasm HTTP component may run.
    pub request_timeout: Duration,
    /// When a container's log file is rotated (the kubelet's
    /// `containerLogMaxSize`; 10 MiB).
    pub log_limits: LogLimits,
    /// How often the node's Lease is renewed (the kubelet's 10 s); the
    /// control plane counts a node lost after about four missed renewals.
    pub heartbeat: Duration,
    pub pool: PoolConfig,
    /// The cluster's CA, trusted (besides the system's roots) by Wasm
    /// pods' outgoing HTTPS.
    pub cluster_ca_pem: Option<String>,
    /// When set, the agent's endpoint speaks TLS and takes only callers
    /// this CA (PEM) signed for `system:masters`: the API server
    /// ([`daemon::tls`]). Unset, it speaks plain HTTP.
    pub endpoint_clients_ca_pem: Option<String>,
    pub egress: EgressLimits,
    /// How long [`Agent::shut_down`] lets containers stop after SIGTERM
    /// before it kills them.
    pub shutdown_grace: Duration,
    /// Whether Wasm HTTP services count their requests (metrics and the
    /// `requests-per-second` autoscalers read); off only for benchmarks
    /// measuring what counting costs.
    pub wasm_request_metrics: bool,
}

impl AgentConfig {
    /// The defaults for a node named `node_name` keeping its state in
    /// `data_dir`, reachable on loopback.
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            node_name: node_name.into(),
            node_ip: "127.0.0.1".into(),
            data_dir: data_dir.into(),
            daemon_port: 0,
            tunnel_port: 0,
            ingress_http_port: None,
            ingress_https_port: None,
            pod_cidr: std::net::Ipv4Addr::new(127, 1, 0, 0),
            max_pods: 1000,
            runc_binary: PathBuf::from("runc"),
            container_shim: None,
            runc_usable: false,
            wasmtime_version: WASMTIME_VERSION.into(),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            log_limits: LogLimits::default(),
            heartbeat: node::LEASE_RENEW,
            pool: PoolConfig::default(),
            cluster_ca_pem: None,
            endpoint_clients_ca_pem: None,
            shutdown_grace: Duration::from_secs(10),
            egress: EgressLimits::default(),
            wasm_request_metrics: true,
        }
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the image store cannot be opened: {0}")]
    Images(#[source] skiff_image::store::Error),
    #[error("the Wasm runtime cannot start: {0}")]
    Wasm(#[source] WasmError),
    #[error("cannot register the node with the API server: {0}")]
    Register(#[source] kube::Error),
}

/// What the pod workers share.
pub(crate) struct Shared {
    client: kube::Client,
    config: AgentConfig,
    images: ImageStore,
    runtimes: Runtimes,
    pod_ips: PodIps,
    proxy: Arc<Proxy>,
    pods_root: PathBuf,
    logs_root: PathBuf,
    log_index: Arc<LogIndex>,
    streams: Arc<streams::StreamIndex>,
    stats: Arc<stats::StatsIndex>,
    metrics: metrics::Metrics,
    /// Namespaces for OCI pods, or why this node cannot make them.
    pod_network: Result<Arc<PodNetwork>, String>,
    /// The NetworkPolicy rules of the pods in those namespaces.
    isolator: Arc<isolation::Isolator>,
    runc: Option<RuncRuntime>,
    /// What an earlier agent left, until the pods have claimed theirs.
    leftovers: std::sync::Mutex<adopt::Leftovers>,
    /// Turns `true` when the node shuts down ([`Agent::shut_down`]).
    shutting_down: tokio::sync::watch::Receiver<bool>,
}

impl Shared {
    /// The image for `reference` under the pull policy: a local one
    /// (imported or pulled before) unless the policy is `Always`, else a
    /// pull, with the first of the pod's pull credentials that apply and
    /// works (anonymous when none apply). Loopback registries are reached
    /// over plain HTTP. `Always` falls back to a local image when the
    /// registry cannot be reached, so imported images work whatever the
    /// policy.
    async fn pull(
        &self,
        reference: &str,
        policy: Option<&str>,
        keyring: &Keyring,
    ) -> Result<Image, (&'static str, String)> {
        if reference.is_empty() {
            return Err(("InvalidImageName", "the container names no image".into()));
        }
        let local = self.images.get(reference).ok().flatten();
        match (policy, local) {
            (Some("Always"), local) => match self.pull_with(reference, keyring).await {
                Ok(image) => Ok(image),
                Err(error) => local.ok_or(error),
            },
            (_, Some(image)) => Ok(image),
            (Some("Never"), None) => Err((
                "ErrImageNeverPull",
                format!("container image \"{reference}\" is not present with pull policy of Never"),
            )),
            (_, None) => self.pull_with(reference, keyring).await,
        }
    }

    async fn pull_with(&self, reference: &str, keyring: &Keyring) -> Result<Image, (&'static str, String)> {
        let started = std::time::Instant::now();
        let image = self
            .images
            .pull_with(reference, is_loopback_reference(reference), keyring)
            .await
            // The registry's own words (401 Unauthorized, …) are in the source.
            .map_err(|error| (error.waiting_reason(), format!("{:#}", anyhow::Error::new(error))))?;
        let bytes = image.layers.iter().map(|layer| layer.size()).sum();
        self.metrics.pulled(bytes, started.elapsed());
        Ok(image)
    }
}

/// Containers an earlier agent process left running (it crashed, or was
/// killed) are not adopted: their pods' workers start them afresh, so the
/// old ones are removed first, freeing their ports and memory.
async fn remove_leftovers(runc: &RuncRuntime) {
    let runc = runc.clone();
    let removed = tokio::task::spawn_blocking(move || {
        let ids = runc.containers().unwrap_or_default();
        for id in &ids {
            if let Err(error) = runc.delete(id, true) {
                tracing::warn!(%error, container = %id, "cannot remove a container left by an earlier agent");
            }
        }
        ids.len()
    })
    .await
    .unwrap_or(0);
    if removed > 0 {
        tracing::info!(removed, "removed containers left by an earlier agent");
    }
}

/// A running agent. Dropping it stops the agent's tasks, with them its
/// Wasm pods, and removes its runc containers at once (SIGKILL), so that
/// no container outlives the agent that ran it (a killed agent's are
/// removed when the next one starts); [`Agent::shut_down`] first lets
/// them stop.
#[derive(Debug)]
pub struct Agent {
    images: ImageStore,
    stats: Arc<stats::StatsIndex>,
    metrics: metrics::Metrics,
    daemon_addr: SocketAddr,
    proxy: Arc<Proxy>,
    runc: Option<RuncRuntime>,
    pod_network: Option<Arc<PodNetwork>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown_grace: Duration,
    /// Tells the pod workers the node is shutting down.
    shut_down: tokio::sync::watch::Sender<bool>,
}

impl Agent {
    /// Stops the node as a kubelet's graceful node shutdown does, then as
    /// a drop does: each pod worker terminates its containers (preStop,
    /// SIGTERM, SIGKILL at the end of the pod's grace period, cut to the
    /// node's `shutdown_grace`) and reports nothing more; once no runc
    /// container is left, or the grace period and a little more are over,
    /// whatever remains is removed.
    pub async fn shut_down(self) {
        self.shut_down.send_replace(true);
        if let Some(runc) = self.runc.clone() {
            let deadline = std::time::Instant::now() + self.shutdown_grace + Duration::from_secs(2);
            let left = tokio::task::spawn_blocking(move || {
                loop {
                    let left = runc.containers().unwrap_or_default().len();
                    if left == 0 || std::time::Instant::now() >= deadline {
                        return left;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .await
            .unwrap_or(0);
            if left > 0 {
                tracing::info!(
                    containers = left,
                    "removing containers still there after the grace period"
                );
            }
        }
        drop(self);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(runc) = &self.runc {
            let ids = runc.containers().unwrap_or_default();
            for id in &ids {
                if let Err(error) = runc.delete(id, true) {
                    tracing::warn!(%error, container = %id, "cannot remove a container of the stopping agent");
                }
            }
            if !ids.is_empty() {
                tracing::info!(removed = ids.len(), "removed the agent's runc containers");
            }
        }
        if let Some(network) = &self.pod_network {
            network.shut_down();
        }
    }
}

/// The API clients of a node: the agent's own, which authenticates as the
/// node (`system:node:<name>`), and the service proxy's
/// (`system:kube-proxy`), which reads what no node may (every Service's
/// endpoints, Ingresses and their TLS Secrets); and the certificate the
/// proxy presents at other nodes' tunnels and serves its own with
/// (`skiff_proxy::tunnel`). Without it the tunnel speaks plain TCP.
#[derive(Clone)]
pub struct Clients {
    pub node: kube::Client,
    pub proxy: kube::Client,
    pub proxy_identity: Option<Arc<skiff_client::identity::RotatingIdentity>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

impl Clients {
    /// One client for both (tests, and clusters with one credential).
    pub fn shared(client: kube::Client) -> Clients {
        Clients {
            node: client.clone(),
            proxy: client,
            proxy_identity: None,
        }
    }
}

impl Agent {
    /// Prepares the runtimes, registers the node and starts running its
    /// pods. runc is optional: without it the node runs Wasm only and
    /// says so in its labels.
    pub async fn start(clients: Clients, mut config: AgentConfig) -> Result<Agent, AgentError> {
        let client = clients.node;
        config.data_dir = std::path::absolute(&config.data_dir).map_err(|source| AgentError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        let dir = |name: &str| -> Result<PathBuf, AgentError> {
            let path = config.data_dir.join(name);
            std::fs::create_dir_all(&path).map_err(|source| AgentError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        };
        let images = ImageStore::open(dir("images")?).map_err(AgentError::Images)?;
        let stats = Arc::new(stats::StatsIndex::default());
        let metrics = metrics::Metrics::new(stats.clone());
        let wasm = WasmRuntime::new(RuntimeConfig {
            cache_dir: dir("wasm-cache")?,
            pool: config.pool.clone(),
        })
        .map_err(AgentError::Wasm)?
        .with_metrics(metrics.wasm().clone());
        // With a shim, containers outlive the agent, and what an earlier
        // one left is adopted by its pods (`adopt`); without, it is
        // removed now.
        let adopting = config.container_shim.is_some();
        let runc = match RuncRuntime::new(dir("runc")?, &config.runc_binary) {
            Ok(runc) => {
                let runc = match &config.container_shim {
                    Some(binary) => runc.with_shim(binary),
                    None => runc,
                };
                if !adopting {
                    remove_leftovers(&runc).await;
                }
                Some(runc)
            }
            Err(error) => {
                tracing::warn!(%error, "no OCI runtime: this node runs Wasm workloads only");
                None
            }
        };
        config.runc_usable = runc.is_some();
        let pod_network = match &runc {
            None => Err("this node has no OCI runtime".to_string()),
            Some(_) => match config.node_ip.parse() {
                Err(_) => Err(format!(
                    "pod networking needs an IPv4 node address, not {}",
                    config.node_ip
                )),
                Ok(node_ip) => {
                    match PodNetwork::start(podnet::netns_dir(&config.data_dir), config.pod_cidr, node_ip).await {
                        Ok(network) => {
                            if !adopting {
                                network.sweep().await;
                            }
                            Ok(Arc::new(network))
                        }
                        Err(error) => {
                            tracing::warn!(%error, "no pod networking: OCI pods can run only with hostNetwork");
                            Err(error.to_string())
                        }
                    }
                }
            },
        };
        let log_index = Arc::new(LogIndex::default());
        let stream_index = Arc::new(streams::StreamIndex::default());
        let ip = config.node_ip.parse().map_err(|_| AgentError::Io {
            path: config.data_dir.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad node IP {}", config.node_ip),
            ),
        })?;
        let endpoint_tls = match &config.endpoint_clients_ca_pem {
            Some(ca) => Some(
                daemon::tls(ca, &config.node_name, &config.node_ip).map_err(|source| AgentError::Io {
                    path: config.data_dir.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let (daemon_addr, daemon_task) = daemon::serve(
            SocketAddr::new(ip, config.daemon_port),
            Arc::new(daemon::Sources {
                logs: log_index.clone(),
                streams: stream_index.clone(),
                stats: stats.clone(),
                metrics: metrics.clone(),
                node_name: config.node_name.clone(),
            }),
            endpoint_tls,
        )
        .await
        .map_err(|source| AgentError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        config.daemon_port = daemon_addr.port();
        // The tunnel's TLS trusts the CA that signs the proxies'
        // certificates: the one the node's callers come with.
        let tunnel_tls = match (&clients.proxy_identity, &config.endpoint_clients_ca_pem) {
            (None, _) => None,
            (Some(identity), Some(ca)) => {
                Some(TunnelTls::new(ca, identity.clone()).map_err(|source| AgentError::Io {
                    path: config.data_dir.clone(),
                    source,
                })?)
            }
            (Some(_), None) => {
                return Err(AgentError::Io {
                    path: config.data_dir.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the proxy's certificate needs the cluster CA (endpoint_clients_ca_pem) to check other nodes'",
                    ),
                });
            }
        };
        let proxy_config = ProxyConfig {
            tunnel_port: config.tunnel_port,
            ingress_http: config.ingress_http_port.map(|port| SocketAddr::new(ip, port)),
            ingress_https: config.ingress_https_port.map(|port| SocketAddr::new(ip, port)),
            tunnel_tls,
            metrics: metrics.proxy().clone(),
            ..ProxyConfig::new(config.node_name.clone(), ip)
        };
        let proxy = Proxy::start(clients.proxy, proxy_config)
            .await
            .map_err(|source| AgentError::Io {
                path: config.data_dir.clone(),
                source,
            })?;
        config.tunnel_port = proxy.tunnel_addr().port();
        let proxy = Arc::new(proxy);
        let local = Arc::new(LocalServices::default());
        let egress = Arc::new(Egress::new(
            proxy.clone(),
            local.clone(),
            config.cluster_ca_pem.as_deref(),
            config.egress.clone(),
        ));
        node::register(&client, &config).await.map_err(AgentError::Register)?;
        tracing::info!(node = %config.node_name, endpoint = %daemon_addr, oci = config.runc_usable, "node agent registered");
        let (shut_down_tx, shutting_down) = tokio::sync::watch::channel(false);
        let isolator = Arc::new(isolation::Isolator::default());
        let leftovers = match (&runc, adopting) {
            (Some(runc), true) => adopt::Leftovers::new(
                runc.containers().unwrap_or_default(),
                pod_network.as_ref().map(|n| n.leftovers()).unwrap_or_default(),
            ),
            _ => adopt::Leftovers::default(),
        };
        let shared = Arc::new(Shared {
            pods_root: dir("pods")?,
            logs_root: dir("logs")?,
            client: client.clone(),
            images: images.clone(),
            runtimes: Runtimes::new(vec![
                Arc::new(
                    WasmtimeWorkloads::new(Arc::new(wasm), local, Some(egress))
                        .counting_requests(config.wasm_request_metrics),
                ),
                Arc::new(RuncWorkloads::new(runc.clone())),
            ]),
            pod_ips: PodIps::new(config.pod_cidr),
            proxy: proxy.clone(),
            log_index,
            streams: stream_index,
            stats: stats.clone(),
            metrics: metrics.clone(),
            pod_network: pod_network.clone(),
            isolator: isolator.clone(),
            runc: runc.clone(),
            leftovers: std::sync::Mutex::new(leftovers),
            config: config.clone(),
            shutting_down,
        });
        let heartbeat = tokio::spawn(node::heartbeat(client, config.clone()));
        let pods = tokio::spawn(pods::manage(shared));
        let mut tasks = vec![daemon_task, heartbeat, pods];
        if let Ok(network) = &pod_network {
            tasks.push(tokio::spawn(isolator.follow(proxy.clone(), network.clone())));
        }
        let shutdown_grace = config.shutdown_grace;
        Ok(Agent {
            images,
            stats,
            metrics,
            daemon_addr,
            proxy,
            runc,
            pod_network: pod_network.ok(),
            tasks,
            shutdown_grace,
            shut_down: shut_down_tx,
        })
    }

    /// The node's image store, where `skiff image import` puts images.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// Where the agent's endpoint (logs, stats, metrics) listens.
    pub fn daemon_addr(&self) -> SocketAddr {
        self.daemon_addr
    }

    /// What the node's pods use, and their Wasm services' requests
    /// ([`stats::StatsIndex::wasm_requests`]).
    pub fn stats(&self) -> &Arc<stats::StatsIndex> {
        &self.stats
    }

    /// The agent's metrics, as its endpoint serves them.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The node's service proxy.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    pub fn runc_usable(&self) -> bool {
        self.runc.is_some()
    }
}
