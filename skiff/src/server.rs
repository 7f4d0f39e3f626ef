//! `skiff server`: one control-plane node.
//!
//! [`run`] checks its flags before opening anything, then starts, in order:
//!
//! 1. **Credentials**: the cluster's identity (the CA, the admin's
//!    client certificate and token, the ServiceAccount signing key) under
//!    `DIR/pki` and the join token in `DIR/token`: made by the first
//!    server, fetched from a member with the join token by any other
//!    (`crate::bootstrap`); then this server's own serving certificate,
//!    and the admin kubeconfig at `DIR/kubeconfig`.
//! 2. **The store** (`skiff_store::Store`) under `DIR/store`, and its peer
//!    router on `--peer-listen`, in mutual TLS with the cluster's peer CA
//!    (`crate::peer`: raft RPC, forwarded writes, and the credentials for
//!    servers that join); then either bootstraps a
//!    one-node cluster (the default), forms one from `--peers`, or joins
//!    one with `--join`, and waits for a leader.
//! 3. **The API server** (`skiff_api::ApiServer`) over TLS on `--listen`,
//!    after bootstrapping the system objects (namespaces, RuntimeClasses,
//!    the IngressClass, the kube-dns Service, the WasmPlugin CRD).
//! 4. **The plugin manager** (`skiff_plugin_host`): loads WasmPlugins into
//!    this server's admission chain and, unless `--no-controllers`, into
//!    the scheduler's dynamic plugins.
//! 5. Unless `--no-controllers`, a **leader election** on the Lease
//!    `kube-system/skiff-controllers`; the server holding it runs **the
//!    scheduler** (`skiff_scheduler`) and **the controllers**
//!    (`skiff_controllers`), whose CSR signer issues node certificates with
//!    this server's CA.
//! 6. Unless `--no-agent`, **the local node agent** (`crate::agent`: the
//!    kubelet of `skiff_host` and the node's service proxy).
//! 7. The `--apply` **manifests**, applied server-side once.
//!
//! The scheduler, controllers, plugin manager and agent reach the API as
//! any client does, through `kube` over the TLS endpoint, each as its own
//! user (`system:kube-scheduler`, `system:kube-controller-manager`,
//! `skiff:plugin-manager`, `system:node:<name>` and `system:kube-proxy`)
//! with a client certificate issued on start; only the `--apply`
//! manifests are applied as the admin. The server runs
//! until SIGINT/SIGTERM or until the API or peer endpoint fails.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use skiff_auth::user::names;
use skiff_store::{NodeId, Store, StoreConfig};

use crate::UsageError;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Directory for the store and everything else this node keeps.
    #[arg(long, default_value = "skiff-data", env = "SKIFF_DATA_DIR")]
    data_dir: PathBuf,

    /// Address the Kubernetes API (HTTPS) listens on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,

    /// Extra DNS names or IP addresses the serving certificate covers.
    #[arg(long, value_delimiter = ',')]
    tls_san: Vec<String>,

    /// Address the peer (raft) endpoint listens on.
    #[arg(long, default_value = "127.0.0.1:2380")]
    peer_listen: SocketAddr,

    /// Address peers use to reach this node; defaults to --peer-listen.
    #[arg(long)]
    advertise_peer: Option<String>,

    /// Serve and call the peer port in plain HTTP instead of mutual TLS:
    /// only to measure what TLS costs (every member must agree).
    #[arg(long, hide = true)]
    peer_plain_http: bool,

    /// This node's id in the cluster (unique, non-zero).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    node_id: NodeId,

    /// Form a cluster of these members: `ID=HOST:PORT,…` (including this node).
    #[arg(long, value_delimiter = ',', conflicts_with = "join", value_parser = parse_peer)]
    peers: Vec<(NodeId, String)>,

    /// Join the cluster a member of which listens at HOST:PORT (its peer
    /// endpoint); needs --token.
    #[arg(long)]
    join: Option<String>,

    /// The cluster's join token: what a server joining with --join, or
    /// forming a cluster with --peers, proves it may have the cluster's
    /// credentials with (`K10<CA hash>::server:<secret>`, as every server
    /// keeps it in DIR/token, or the secret alone). A first server with no
    /// token makes one.
    #[arg(long, env = "SKIFF_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Seconds between automatic compactions of old revisions; 0 turns
    /// compaction off.
    #[arg(long, default_value_t = 60)]
    compaction_interval: u64,

    /// Revisions kept behind the newest by automatic compaction.
    #[arg(long, default_value_t = 10_000)]
    compaction_keep_revisions: u64,

    /// Seconds a revision is kept at least, however many came after it.
    #[arg(long, default_value_t = 300)]
    compaction_min_age: u64,

    /// Run no node agent in this process (a control plane only).
    #[arg(long)]
    no_agent: bool,

    /// Run neither the scheduler nor the controllers in this process
    /// (an API server and store only).
    #[arg(long)]
    no_controllers: bool,

    /// Manifests (YAML, several documents each) to apply, server-side, once
    /// the node is up; repeatable.
    #[arg(long = "apply", value_name = "FILE")]
    manifests: Vec<PathBuf>,

    #[command(flatten)]
    controllers: ControllerArgs,

    /// Where Services get their ClusterIPs: a range on loopback, so every
    /// node's proxy can bind them (kube-apiserver's
    /// `--service-cluster-ip-range`).
    #[arg(long, default_value = "127.96.0.0/16")]
    service_cluster_ip_range: skiff_api::services::Ipv4Cidr,

    /// An `EncryptionConfiguration` (kube-apiserver's format) saying which
    /// resources are encrypted at rest and with which keys; by default,
    /// Secrets, with the cluster's key in DIR/pki/encryption-config.yaml.
    #[arg(long, value_name = "FILE")]
    encryption_provider_config: Option<PathBuf>,

    /// When to save a snapshot of the store into --snapshot-dir: a cron
    /// schedule, in UTC (k3s's default: every twelve hours).
    #[arg(long, default_value = "0 */12 * * *")]
    snapshot_schedule: skiff_controllers::cronjob::Schedule,

    /// How many scheduled snapshots of this server to keep.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_retention: u64,

    /// Where scheduled snapshots go; defaults to DIR/snapshots.
    #[arg(long)]
    snapshot_dir: Option<PathBuf>,

    /// Take no scheduled snapshots.
    #[arg(long)]
    disable_snapshots: bool,

    /// Read-only requests (not watches or streams) served at once; more
    /// get 429 with Retry-After. 0: no limit (kube-apiserver's flag).
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,

    /// Mutating requests served at once; more get 429. 0: no limit.
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,

    /// Seconds between two readings of a node's usage for the Metrics API
    /// (`kubectl top`, the autoscaler), metrics-server's flag.
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0, value_parser = parse_resolution)]
    metric_resolution: f64,

    /// Where NodePort Services get their node ports, as FIRST-LAST.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    service_node_port_range: (u16, u16),

    /// An audit policy (kube-apiserver's `audit.k8s.io/v1` `Policy`, YAML
    /// or JSON): which requests are logged, and how much of each. Without
    /// it nothing is audited. Secrets are never logged above Metadata.
    #[arg(long, value_name = "FILE", requires = "audit_log_path", value_parser = skiff_api::audit::Policy::load_flag)]
    audit_policy_file: Option<skiff_api::audit::Policy>,

    /// Where audit events go, one JSON `Event` a line; `-` for standard
    /// output.
    #[arg(long, value_name = "FILE", requires = "audit_policy_file")]
    audit_log_path: Option<PathBuf>,

    /// Megabytes an audit log file may reach before it is rotated (renamed
    /// `<name>-<time>.<ext>` beside it); 0 means 100.
    #[arg(long, value_name = "MB", default_value_t = 100)]
    audit_log_maxsize: u64,

    /// Rotated audit log files kept, the oldest removed first; 0 keeps
    /// them all.
    #[arg(long, value_name = "N", default_value_t = 0)]
    audit_log_maxbackup: usize,

    #[command(flatten)]
    node: crate::agent::NodeArgs,
}

impl ServerArgs {
    /// `--otlp-endpoint`, if given.
    pub fn otlp_endpoint(&self) -> Option<&str> {
        self.node.otlp_endpoint.as_deref()
    }
}

fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{text:?} is not a port range such as 30000-32767");
    let (first, last) = text.split_once('-').ok_or_else(bad)?;
    let first: u16 = first.trim().parse().map_err(|_| bad())?;
    let last: u16 = last.trim().parse().map_err(|_| bad())?;
    if first == 0 || first > last {
        return Err(bad());
    }
    Ok((first, last))
}

fn parse_resolution(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if (0.1..=3600.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!("{text:?} is not a number of seconds from 0.1 to 3600")),
    }
}

/// Settings of the scheduler and the controllers.
#[derive(Debug, Args)]
struct ControllerArgs {
    /// A KubeSchedulerConfiguration file (YAML): profiles, plugins and
    /// their weights. Without it, the default profile.
    #[arg(long)]
    scheduler_config: Option<PathBuf>,

    /// Seconds a node may go without a heartbeat before it is marked
    /// unreachable and its pods are evicted (after their tolerations).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..))]
    node_monitor_grace_period: u64,

    /// Seconds between two syncs of each HorizontalPodAutoscaler.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    horizontal_pod_autoscaler_sync_period: u64,
}

impl ControllerArgs {
    fn scheduler(&self) -> anyhow::Result<skiff_scheduler::SchedulerConfig> {
        match &self.scheduler_config {
            None => Ok(skiff_scheduler::SchedulerConfig::default()),
            Some(path) => skiff_scheduler::SchedulerConfig::from_file(path)
                .map_err(|e| UsageError(format!("--scheduler-config {}: {e}", path.display())).into()),
        }
    }

    /// The controllers' settings; they issue client certificates with
    /// `pki`'s CA.
    fn config(&self, pki: &skiff_api::pki::Pki) -> skiff_controllers::Config {
        let grace = Duration::from_secs(self.node_monitor_grace_period);
        let ca = pki.clone();
        skiff_controllers::Config {
            node_lifecycle: skiff_controllers::nodelifecycle::Config {
                grace_period: grace,
                monitor_period: (grace / 8).clamp(Duration::from_millis(500), Duration::from_secs(5)),
            },
            root_ca: Some(pki.ca_pem.clone()),
            authority: Some(skiff_controllers::certificates::Authority::new(
                move |request, valid_for| ca.sign_request(request, valid_for).map_err(|e| e.to_string()),
            )),
            metrics: skiff_controllers::metrics::Metrics::default(),
            autoscaler: skiff_controllers::podautoscaler::Config {
                sync_period: Duration::from_secs(self.horizontal_pod_autoscaler_sync_period),
            },
        }
    }
}

/// One `ID=HOST:PORT` member of `--peers`.
fn parse_peer(entry: &str) -> Result<(NodeId, String), String> {
    let (id, addr) = entry
        .split_once('=')
        .ok_or_else(|| format!("{entry:?} is not ID=HOST:PORT"))?;
    let id: NodeId = id.parse().map_err(|_| format!("{id:?} is not a node id"))?;
    if id == 0
        || addr
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(format!("{entry:?} is not ID=HOST:PORT with a non-zero id"));
    }
    Ok((id, addr.to_string()))
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    // Bad configuration is refused before anything is opened.
    let scheduler_config = args.controllers.scheduler()?;
    if let Some(missing) = args.manifests.iter().find(|f| !f.is_file()) {
        return Err(UsageError(format!("--apply {}: no such file", missing.display())).into());
    }
    let mut members = BTreeMap::new();
    for (id, addr) in &args.peers {
        if members.insert(*id, addr.clone()).is_some() {
            return Err(UsageError(format!("--peers names node {id} twice")).into());
        }
    }
    if !members.is_empty() && !members.contains_key(&args.node_id) {
        return Err(UsageError(format!(
            "--peers does not include this node (--node-id {})",
            args.node_id
        ))
        .into());
    }
    let token = args
        .token
        .as_deref()
        .map(crate::bootstrap::Token::parse)
        .transpose()
        .map_err(|e| UsageError(format!("--token: {e}")))?;
    // Where this server's credentials come from: another member (a join,
    // or a member of a formed cluster other than its lowest id), or itself.
    let source = match (&args.join, members.keys().next()) {
        (Some(peer), _) => Some(peer.clone()),
        (None, Some(first)) if *first != args.node_id => members.get(first).cloned(),
        _ => None,
    };
    if token.is_none() && (source.is_some() || members.len() > 1) {
        return Err(UsageError(
            "--join and --peers need --token: the cluster's join token, which the first server keeps in DIR/token"
                .into(),
        )
        .into());
    }
    let api_listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let api_addr = api_listener.local_addr().context("API listener address")?;
    let listener = tokio::net::TcpListener::bind(args.peer_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--peer-listen)", args.peer_listen))?;
    let local = listener.local_addr().context("peer listener address")?;
    let advertise = args.advertise_peer.clone().unwrap_or_else(|| local.to_string());

    // One identity for the whole cluster (see `crate::bootstrap`): a
    // server that has none yet gets the cluster's from a member.
    let pki_dir = args.data_dir.join("pki");
    let token_file = args.data_dir.join("token");
    if let (Some(source), Some(token)) = (&source, &token)
        && !(pki_dir.join("ca.crt").exists() && token_file.exists())
    {
        let credentials = crate::bootstrap::fetch(source, token, args.peer_plain_http)
            .await
            .with_context(|| format!("cannot get the cluster's credentials from {source}"))?;
        credentials.install(&pki_dir)?;
        tracing::info!(%source, "received the cluster's credentials");
    }
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if !api_addr.ip().is_unspecified() {
        hosts.push(api_addr.ip().to_string());
    }
    hosts.extend(args.tls_san.iter().cloned());
    // In-cluster clients reach the API as the `kubernetes` Service.
    hosts.extend(
        [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(String::from),
    );
    hosts.extend(args.service_cluster_ip_range.nth(1).map(|ip| ip.to_string()));
    hosts.dedup();
    let pki = skiff_api::pki::Pki::load_or_create(&args.data_dir, &hosts).context("cannot prepare TLS credentials")?;
    let peer_pki = skiff_api::pki::peer::PeerPki::load_or_create(
        &pki_dir,
        &format!("skiff-peer-{}", args.node_id),
        &peer_hosts(&advertise, local),
    )
    .context("cannot prepare the peer port's TLS credentials")?;
    // Encryption at rest: the cluster's default configuration, unless one
    // is given.
    let default_encryption = pki_dir.join(crate::bootstrap::ENCRYPTION_CONFIG);
    if !default_encryption.exists() {
        let text = skiff_api::encryption::Encryption::default_config().map_err(anyhow::Error::msg)?;
        skiff_api::pki::write_private(&default_encryption, &text)
            .with_context(|| format!("cannot write {}", default_encryption.display()))?;
    }
    let encryption_file = args.encryption_provider_config.clone().unwrap_or(default_encryption);
    let encryption = std::fs::read_to_string(&encryption_file)
        .map_err(|e| e.to_string())
        .and_then(|text| skiff_api::encryption::Encryption::parse(&text))
        .map_err(|e| UsageError(format!("{}: {e}", encryption_file.display())))?;
    let secret = match (std::fs::read_to_string(&token_file).ok(), &token) {
        (Some(kept), given) => {
            let kept = crate::bootstrap::Token::parse(&kept)
                .with_context(|| format!("{} is not a join token", token_file.display()))?;
            if given.as_ref().is_some_and(|g| g.secret != kept.secret) {
                return Err(UsageError(format!(
                    "--token differs from the token this server keeps in {}",
                    token_file.display()
                ))
                .into());
            }
            kept.secret
        }
        (None, Some(given)) => given.secret.clone(),
        (None, None) => crate::bootstrap::new_secret()?,
    };
    skiff_api::pki::write_private(&token_file, &crate::bootstrap::Token::full(&secret, &pki.ca_pem))
        .with_context(|| format!("cannot write {}", token_file.display()))?;
    let offer = crate::bootstrap::Offer::default();
    offer.set(
        secret,
        crate::bootstrap::Credentials::read(&pki_dir).context("cannot read the cluster's credentials")?,
    );

    let mut config = StoreConfig::new(args.node_id, args.data_dir.join("store"), advertise.clone());
    config.compaction = skiff_store::CompactionPolicy {
        check_every: Duration::from_secs(args.compaction_interval.max(1)),
        keep_revisions: args.compaction_keep_revisions,
        keep_for: Duration::from_secs(args.compaction_min_age),
        enabled: args.compaction_interval > 0,
    };
    let peer_tls = if args.peer_plain_http {
        tracing::warn!("the peer port speaks plain HTTP (--peer-plain-http): anyone who reaches it can write");
        None
    } else {
        config.peer_tls = Some(peer_pki.client_config().context("peer TLS")?);
        Some(peer_pki.server_config().context("peer TLS")?)
    };
    let store = Store::open(config)
        .await
        .with_context(|| format!("cannot open the store in {}", args.data_dir.display()))?;
    let encrypted = encryption.write_forms();
    store.set_transformer(encryption.into_transformer());
    let serve = tokio::spawn(crate::peer::serve(
        listener,
        peer_tls,
        crate::peer::router(store.clone(), &offer),
    ));

    if let Some(peer) = &args.join {
        store
            .join(peer)
            .await
            .with_context(|| format!("cannot join the cluster at {peer}"))?;
    } else if members.is_empty() {
        store.initialize_single().await.context("cannot bootstrap the store")?;
    } else {
        store.initialize(members).await.context("cannot form the cluster")?;
    }
    let leader = store.wait_for_leader(Duration::from_secs(30)).await?;
    let _snapshots = (!args.disable_snapshots).then(|| {
        let schedule = crate::snapshot::Schedule {
            schedule: args.snapshot_schedule.clone(),
            dir: args
                .snapshot_dir
                .clone()
                .unwrap_or_else(|| args.data_dir.join("snapshots")),
            retention: usize::try_from(args.snapshot_retention).unwrap_or(usize::MAX),
            node: format!("node-{}", args.node_id),
        };
        AbortOnDrop(tokio::spawn(schedule.run(store.clone())))
    });
    tracing::info!(node = args.node_id, peer = %advertise, leader, revision = store.revision(), "store ready");

    let api_host = if api_addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        api_addr.ip().to_string()
    };
    let url = format!("https://{}", SocketAddr::new(api_host.parse()?, api_addr.port()));
    let kubeconfig = args.data_dir.join("kubeconfig");
    pki.write_kubeconfig(&kubeconfig, &url)
        .with_context(|| format!("cannot write {}", kubeconfig.display()))?;
    let authentication = pki
        .authentication(skiff_api::auth::DEFAULT_ISSUER)
        .context("cannot load the ServiceAccount signing key")?;
    let ranges = skiff_api::services::ServiceRanges {
        cluster_ips: args.service_cluster_ip_range,
        node_ports: args.service_node_port_range,
    };
    // The API server reaches node agents with a client certificate of its
    // own, in the group they take calls from.
    let node_client = {
        let until = i32::from(jiff::Zoned::now().year()) + 2;
        let (cert, key) = pki
            .issue_client(KUBELET_CLIENT, Some("system:masters"), until)
            .context("cannot issue the API server's client certificate for nodes")?;
        skiff_api::server::node_client::NodeClient::with_certificate(&cert, &key)
            .map_err(anyhow::Error::msg)
            .context("cannot configure the API server's client for nodes")?
    };
    let settings = skiff_api::server::Settings {
        service_ranges: ranges,
        root_ca: Some(pki.ca_pem.clone()),
        node_client,
        encrypted,
        inflight: skiff_api::server::inflight::Limits {
            read_only: args.max_requests_inflight,
            mutating: args.max_mutating_requests_inflight,
        },
        audit: match (&args.audit_policy_file, &args.audit_log_path) {
            (Some(policy), Some(path)) => Some(
                skiff_api::audit::Audit::start(
                    policy.clone(),
                    &skiff_api::audit::LogOptions {
                        path: path.clone(),
                        max_size_mb: args.audit_log_maxsize,
                        max_backups: args.audit_log_maxbackup,
                    },
                )
                .context("--audit-log-path")?,
            ),
            _ => None,
        },
        metric_resolution: Some(Duration::from_secs_f64(args.metric_resolution)),
        skip_request_metrics: args.node.no_request_metrics,
    };
    let api = skiff_api::ApiServer::with_settings(store.clone(), authentication, settings);
    // One metrics registry for the process, served on `/metrics`: the
    // store's, the scheduler's and the controllers' join the API server's
    // (the latter two read as idle on a server not holding their lease).
    let scheduler_metrics = skiff_scheduler::metrics::Metrics::default();
    let controller_metrics = skiff_controllers::metrics::Metrics::default();
    api.metrics.register(|registry| {
        store.metrics().register(registry);
        scheduler_metrics.register(registry);
        controller_metrics.register(registry);
    });
    api.bootstrap().await.context("cannot create the system namespaces")?;
    // This server's Lease and the kubernetes Service's Endpoints, kept
    // current while it runs.
    let api_identity = format!("skiff-node-{}", args.node_id);
    let api_endpoint = SocketAddr::new(api_host.parse()?, api_addr.port());
    api.register_endpoint(&api_identity, api_endpoint)
        .await
        .context("cannot register in the kubernetes Service")?;
    let _registered = {
        let api = api.clone();
        AbortOnDrop(tokio::spawn(async move {
            api.keep_registered(api_identity, api_endpoint).await
        }))
    };
    let tls = pki.server_config().context("cannot configure TLS")?;
    let api_serve = tokio::spawn(skiff_api::serve_tls(api_listener, tls, api.router(), shutdown_signal()));
    println!(
        "skiff: node {} ready; API at {url}; peer endpoint {advertise}; data in {}",
        args.node_id,
        args.data_dir.display()
    );
    println!("skiff: admin kubeconfig written to {}", kubeconfig.display());
    // Wasm plugins: every server loads them into its own admission chain;
    // Filter and Score plugins go to the scheduler, wherever it runs.
    let dynamic_plugins = skiff_scheduler::DynamicPlugins::new();
    let _plugins = {
        let client = identity(&url, &pki, PLUGIN_MANAGER, None).await?;
        let sinks = skiff_plugin_host::Sinks {
            admission: Some(api.registry.admission().clone()),
            scheduler: (!args.no_controllers).then(|| dynamic_plugins.clone()),
        };
        skiff_plugin_host::PluginManager::start(
            client,
            skiff_plugin_host::ManagerConfig {
                data_dir: args.data_dir.join("plugins"),
                sinks,
            },
        )
        .context("cannot start the plugin manager")?
    };
    // The scheduler, the controllers and the local node agent reach the
    // API as any client does.
    // Of several control-plane servers, the one holding the Lease
    // kube-system/skiff-controllers runs them.
    let _control = if args.no_controllers {
        None
    } else {
        let client = identity(&url, &pki, names::KUBE_CONTROLLER_MANAGER, None).await?;
        let scheduler_client = identity(&url, &pki, names::KUBE_SCHEDULER, None).await?;
        // Checked now, so a bad profile is reported at start, not when
        // leadership is won.
        skiff_scheduler::Scheduler::new(scheduler_client.clone(), &scheduler_config)
            .context("cannot configure the scheduler")?;
        let identity = format!("node-{}@{advertise}", args.node_id);
        let elector = skiff_client::leader::LeaderElector::new(
            client.clone(),
            "kube-system",
            "skiff-controllers",
            identity,
            skiff_client::leader::Timing::default(),
        );
        let controllers = skiff_controllers::Config {
            metrics: controller_metrics,
            ..args.controllers.config(&pki)
        };
        Some(AbortOnDrop(tokio::spawn(elector.run(move || {
            let client = client.clone();
            let scheduler_client = scheduler_client.clone();
            let scheduler_config = scheduler_config.clone();
            let controllers = controllers.clone();
            let dynamic_plugins = dynamic_plugins.clone();
            let scheduler_metrics = scheduler_metrics.clone();
            async move {
                let scheduler = match skiff_scheduler::Scheduler::new(scheduler_client, &scheduler_config) {
                    Ok(scheduler) => scheduler
                        .with_dynamic_plugins(dynamic_plugins)
                        .with_metrics(scheduler_metrics)
                        .start(),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the scheduler");
                        return;
                    }
                };
                let _running = (scheduler, skiff_controllers::start(client, controllers));
                std::future::pending::<()>().await;
            }
        }))))
    };
    let agent = if args.no_agent {
        None
    } else {
        let mut config = args.node.config(&args.data_dir.join("agent"));
        config.cluster_ca_pem = Some(pki.ca_pem.clone());
        config.endpoint_clients_ca_pem = Some(pki.ca_pem.clone());
        let node_user = format!("{}{}", names::NODE_PREFIX, config.node_name);
        // The proxy's certificate also serves the node's tunnel, where
        // other nodes' proxies check it.
        let (proxy_cert, proxy_key) = issue(&pki, names::KUBE_PROXY, None)?;
        let clients = skiff_host::agent::Clients {
            node: identity(&url, &pki, &node_user, Some(names::NODES)).await?,
            proxy: certified(&url, &pki, &proxy_cert, &proxy_key).await?,
            proxy_identity: Some(skiff_client::identity::RotatingIdentity::new(&proxy_cert, &proxy_key)?),
        };
        let agent = crate::agent::start(clients, config).await?;
        println!(
            "skiff: node agent running (endpoint {}, OCI runtime {})",
            agent.daemon_addr(),
            if agent.runc_usable() { "runc" } else { "none" }
        );
        Some(agent)
    };

    if !args.manifests.is_empty() {
        // The operator's manifests are applied with the operator's rights.
        let admin = skiff_api::pki::Credential::Certificate {
            cert_pem: &pki.admin_cert_pem,
            key_pem: &pki.admin_key_pem,
        };
        let client = crate::agent::client(&url, &pki.ca_pem, &admin).await?;
        match crate::manifests::apply(&client, &args.manifests).await {
            Ok(applied) => println!("skiff: applied {}", applied.join(", ")),
            // The node keeps serving: the manifests can be fixed and
            // applied with kubectl.
            Err(e) => eprintln!("skiff: cannot apply the manifests: {e:#}"),
        }
    }

    tokio::select! {
        served = api_serve => {
            match served {
                Ok(Err(e)) => return Err(e).context("API endpoint failed"),
                Err(e) => return Err(e).context("API endpoint task failed"),
                Ok(Ok(())) => tracing::info!("shutting down"),
            }
        }
        served = serve => {
            match served {
                Ok(Err(e)) => return Err(e).context("peer endpoint failed"),
                Err(e) => return Err(e).context("peer endpoint task failed"),
                Ok(Ok(())) => {}
            }
        }
    }
    if let Some(agent) = agent {
        agent.shut_down().await;
    }
    store.shutdown().await?;
    Ok(())
}

/// The names this server's peer certificate covers: the host of the
/// address it advertises, the address it listens on, and loopback.
fn peer_hosts(advertise: &str, listening: SocketAddr) -> Vec<String> {
    let host = advertise
        .rsplit_once(':')
        .map_or(advertise, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let mut hosts = vec![host.to_string()];
    if !listening.ip().is_unspecified() {
        hosts.push(listening.ip().to_string());
    }
    hosts.extend(["127.0.0.1", "::1", "localhost"].map(String::from));
    let mut seen = std::collections::BTreeSet::new();
    hosts.retain(|h| !h.is_empty() && seen.insert(h.clone()));
    hosts
}

/// The user the API server calls node agents as (kubeadm's name for it).
const KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";

/// The user the plugin manager authenticates as.
const PLUGIN_MANAGER: &str = "skiff:plugin-manager";

/// A client for one of this server's components, authenticated by a
/// client certificate the cluster CA signs on each start for `user` (in
/// `group`), so no component holds the admin's credential.
async fn identity(
    url: &str,
    pki: &skiff_api::pki::Pki,
    user: &str,
    group: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let (cert_pem, key_pem) = issue(pki, user, group)?;
    certified(url, pki, &cert_pem, &key_pem).await
}

/// A client certificate and key (PEM) for `user` in `group`, signed by
/// the cluster CA, valid into the year after next.
fn issue(pki: &skiff_api::pki::Pki, user: &str, group: Option<&str>) -> anyhow::Result<(String, String)> {
    let until = i32::from(jiff::Zoned::now().year()) + 2;
    pki.issue_client(user, group, until)
        .with_context(|| format!("cannot issue a client certificate for {user}"))
}

/// A client of the API at `url` presenting `cert_pem` and `key_pem`.
async fn certified(
    url: &str,
    pki: &skiff_api::pki::Pki,
    cert_pem: &str,
    key_pem: &str,
) -> anyhow::Result<kube::Client> {
    let credential = skiff_api::pki::Credential::Certificate { cert_pem, key_pem };
    crate::agent::client(url, &pki.ca_pem, &credential).await
}

/// A task that stops when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
