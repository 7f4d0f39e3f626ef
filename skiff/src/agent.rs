//! `skiff agent`: a node agent in its own process, and the in-process
//! agent `skiff server` starts.
//!
//! The agent is an API client like any other: it reaches the server at
//! `--server`, trusting the CA in `--ca-file` (a server's is
//! `DATA/pki/ca.crt`). How it authenticates depends on `--token-file`:
//!
//! * a join token (`skiff token create`): the agent obtains client
//!   certificates for the node (`system:node:<name>`) and its service
//!   proxy (`system:kube-proxy`) through CertificateSigningRequests,
//!   keeps them in `--data-dir`'s `pki/`, renews them, and uses only
//!   them ([`certificates`]). Restarted with valid certificates there, it
//!   needs no token (and `--token-file` may be left out).
//! * any other token: a bearer token for both the node and its proxy, as
//!   given. The proxy still needs its certificate for other nodes'
//!   tunnels (`skiff_proxy::tunnel`); the token's user asks for it as a
//!   new node would (the admin's token may), and the agent refuses to
//!   start when it cannot.
//!
//! The agent dials the API servers through a client-side balancer
//! (`skiff_client::balancer`), as the k3s agent does: the servers given
//! with `--server` (one or several) at first, then those the
//! `default/kubernetes` Endpoints list (each server keeps itself there
//! while it lives), followed by the given ones. Its node, proxy and
//! certificate clients keep working while one server lives, and move to
//! another when theirs dies.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use skiff_api::pki::Credential;
use skiff_host::agent::{Agent, AgentConfig, Clients};

use crate::UsageError;

mod certificates;
mod rotating;

/// Node options shared by `skiff agent` and `skiff server`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node's name; defaults to the host name.
    #[arg(long = "name", alias = "node-name")]
    pub node_name: Option<String>,

    /// The node's address: where OCI pods and the agent's endpoint listen.
    #[arg(long, default_value = "127.0.0.1")]
    pub node_ip: String,

    /// Port of the agent's endpoint (logs); 0 (the default) picks a free
    /// one, which the Node object publishes.
    #[arg(long, default_value_t = 0)]
    pub agent_port: u16,

    /// Port of the service proxy's tunnel, where other nodes reach this
    /// node's endpoints; 0 (the default) picks a free one, which the Node
    /// object publishes.
    #[arg(long, default_value_t = 0)]
    pub tunnel_port: u16,

    /// Port on the node's address where Ingress traffic arrives over
    /// plain HTTP; 0 turns it off.
    #[arg(long, default_value_t = 80)]
    pub ingress_http_port: u16,

    /// Port on the node's address where Ingress traffic arrives over
    /// HTTPS (certificates from the Ingresses' TLS Secrets); 0 turns it
    /// off.
    #[arg(long, default_value_t = 443)]
    pub ingress_https_port: u16,

    /// First address of the /16 on loopback Wasm pods get their IPs from.
    #[arg(long, default_value = "127.1.0.0")]
    pub pod_cidr: Ipv4Addr,

    /// The runc binary for OCI containers.
    #[arg(long, default_value = "runc")]
    pub runc: PathBuf,

    /// Most pods the node takes (its `pods` capacity).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pods: u32,

    /// Seconds between renewals of the node's Lease.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_interval: u64,

    /// Seconds the node's containers get to stop, after SIGTERM, when
    /// skiff is asked to stop (SIGTERM or Ctrl-C); each pod's own grace
    /// period applies when it is shorter.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace_period: u64,

    /// Count no requests: neither Wasm services' (so no
    /// `requests-per-second` for autoscalers) nor, with `skiff server`,
    /// the API server's. Only to measure what counting costs
    /// (`cargo xtask bench autoscale`).
    #[arg(long, hide = true)]
    pub no_request_metrics: bool,

    /// Export spans (API requests, store proposals, scheduling cycles,
    /// Wasm gateway requests) over OTLP/HTTP to this collector, e.g.
    /// http://127.0.0.1:4318 (`/v1/traces` is appended). Without it
    /// nothing is exported, but `traceparent` headers still propagate.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

impl NodeArgs {
    pub fn config(&self, data_dir: &Path) -> AgentConfig {
        let name = self.node_name.clone().unwrap_or_else(host_name);
        let mut config = AgentConfig::new(name, data_dir);
        config.node_ip = self.node_ip.clone();
        config.daemon_port = self.agent_port;
        config.tunnel_port = self.tunnel_port;
        config.ingress_http_port = Some(self.ingress_http_port).filter(|p| *p != 0);
        config.ingress_https_port = Some(self.ingress_https_port).filter(|p| *p != 0);
        config.pod_cidr = self.pod_cidr;
        config.runc_binary = self.runc.clone();
        config.container_shim = shim_binary();
        config.max_pods = self.max_pods;
        config.heartbeat = Duration::from_secs(self.heartbeat_interval);
        config.shutdown_grace = Duration::from_secs(self.shutdown_grace_period);
        config.wasm_request_metrics = !self.no_request_metrics;
        config
    }
}

/// This binary, to run as the containers' shim: the path it was started
/// from, which still names a skiff binary after it was rebuilt or
/// upgraded in place (the kernel then reports the old file as deleted).
fn shim_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let text = exe.to_str()?;
    Some(
        text.strip_suffix(" (deleted)")
            .map_or(exe.clone(), std::path::PathBuf::from),
    )
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "skiff-node".into())
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The API server, e.g. https://127.0.0.1:6443; repeat it (or give
    /// several, comma-separated) for the cluster's servers. Once
    /// connected, the agent also follows the servers the cluster lists
    /// (the default/kubernetes Endpoints) and fails over between them.
    #[arg(long, required = true, value_delimiter = ',')]
    server: Vec<String>,

    /// File holding a join token (from `skiff token create`), with which
    /// the agent obtains its client certificates; or any other bearer
    /// token to authenticate with. Not needed once the data directory
    /// holds a valid node certificate.
    #[arg(long)]
    token_file: Option<PathBuf>,

    /// The CA certificate (PEM) the server's certificate is signed by.
    #[arg(long)]
    ca_file: PathBuf,

    /// Directory for images, compiled components, pods and logs.
    #[arg(long, default_value = "skiff-agent")]
    data_dir: PathBuf,

    #[command(flatten)]
    node: NodeArgs,
}

impl AgentArgs {
    /// `--otlp-endpoint`, if given.
    pub fn otlp_endpoint(&self) -> Option<&str> {
        self.node.otlp_endpoint.as_deref()
    }
}

/// A kube client for `server`, trusting the CA (PEM), authenticating
/// with `credential`.
pub async fn client(server: &str, ca_pem: &str, credential: &Credential<'_>) -> anyhow::Result<kube::Client> {
    let yaml = skiff_api::pki::kubeconfig(server, ca_pem, "skiff", credential);
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).context("cannot build a kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("cannot configure the API client")?;
    kube::Client::try_from(config).context("cannot create the API client")
}

/// Starts an agent, retrying registration while the server comes up.
pub async fn start(clients: Clients, config: AgentConfig) -> anyhow::Result<Agent> {
    let mut last = None;
    for _ in 0..30 {
        match Agent::start(clients.clone(), config.clone()).await {
            Ok(agent) => return Ok(agent),
            Err(skiff_host::agent::AgentError::Register(e)) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(other) => return Err(other).context("cannot start the node agent"),
        }
    }
    Err(anyhow::anyhow!(
        "cannot register the node with the API server: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// `host:port` of an `https://` server URL (port 443 if none).
fn dial_address(server: &str) -> Result<String, UsageError> {
    let bad = || UsageError(format!("--server {server} must be an https:// URL"));
    let uri: http::Uri = server.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("https") {
        return Err(bad());
    }
    let host = uri.host().ok_or_else(bad)?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(443)))
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let addresses = args
        .server
        .iter()
        .map(|server| dial_address(server))
        .collect::<Result<Vec<_>, _>>()?;
    // The servers are dialled through a balancer that lives as long as
    // the agent and follows the cluster's servers once it can read them.
    let mut balancer = skiff_client::balancer::Balancer::start(addresses)
        .await
        .context("cannot start the API balancer")?;
    let server = balancer.url();
    let token = match &args.token_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read --token-file {}", file.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let ca = std::fs::read_to_string(&args.ca_file)
        .with_context(|| format!("cannot read --ca-file {}", args.ca_file.display()))?;
    let mut config = args.node.config(&args.data_dir);
    config.cluster_ca_pem = Some(ca.clone());
    config.endpoint_clients_ca_pem = Some(ca.clone());
    let name = config.node_name.clone();
    let (clients, _renewals) = match token.as_deref() {
        Some(token) if !crate::token::is_join_token(token) => {
            let client = client(&server, &ca, &Credential::Token(token)).await?;
            // Other nodes' tunnels take only a proxy's certificate; the
            // token's user asks for one as a new node would.
            let pki = args.data_dir.join("pki");
            let (identity, renewal) = certificates::proxy_identity(&client, &pki).await.context(
                "the node's tunnel needs the service proxy's certificate, which this token may not obtain; join with a join token (skiff token create) instead",
            )?;
            let clients = Clients {
                proxy_identity: Some(identity),
                ..Clients::shared(client)
            };
            (clients, Some(certificates::Renewals(vec![renewal])))
        }
        join_token => {
            let pki = args.data_dir.join("pki");
            let (clients, renewals) = certificates::join(&server, &ca, &pki, &name, join_token).await?;
            (clients, Some(renewals))
        }
    };
    balancer.follow_endpoints(clients.proxy.clone(), |servers| {
        println!("skiff: API servers {}", servers.join(", "));
    });
    let agent = start(clients, config).await?;
    println!(
        "skiff: node agent {name} running (endpoint {}, OCI runtime {}); data in {}",
        agent.daemon_addr(),
        if agent.runc_usable() { "runc" } else { "none" },
        args.data_dir.display()
    );
    crate::server::shutdown_signal().await;
    agent.shut_down().await;
    Ok(())
}
