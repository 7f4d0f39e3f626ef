//! One task per pod, as the kubelet's pod workers: it prepares the pod
//! (images, pod IP, volumes), runs its init containers in order and then
//! its containers, restarts them by the restart policy with exponential
//! back-off, reports status, and on deletion stops everything within the
//! grace period before releasing the pod.
//!
//! All of a pod's state lives in its worker; containers report their
//! exits to it over a channel, and the pod manager sends it the latest
//! pod object (or `None` once the pod is gone from the API).
//!
//! Which runtime runs a container, how its logs are wired and which
//! network it is on are the runtime's answers
//! ([`Runtimes::select`](super::runtime::Runtimes::select),
//! [`WorkloadRuntime`]); the worker never asks what kind an image is.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodStatus, Secret, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::Shared;
use super::adopt::Adoption;
use super::events::{self, Recorder};
use super::logs::{Console, ContainerLog, PodLogDir};
use super::probe::{self, Kind, Verdict};
use super::runtime::{
    Exit, Launch, Mount, Network, PodRef, Running, StartError, Stdio, StopMode, Stopper, WorkloadRuntime,
};
use super::spec::{self, ConfigError, Sources, TokenSlot};
use super::stats::PodId;
use super::status::{self, ContainerRecord, Phase, PodView, Terminated};
use super::streams::PodNet;
use crate::podnet::Sandbox;
use skiff_image::Image;
use skiff_image::credentials::Keyring;

/// The default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// A container that ran this long has its restart back-off reset.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Init,
    App,
}

/// A container exit, tagged with which run of which container it ends.
#[derive(Debug)]
struct Exited {
    group: Group,
    index: usize,
    run: u32,
    exit: Exit,
}

/// A probe verdict for one run of one container.
#[derive(Debug)]
struct Probed {
    group: Group,
    index: usize,
    run: u32,
    verdict: Verdict,
}

/// What a running container holds.
struct Live {
    stopper: Stopper,
    /// Runs commands in the container (exec probes and hooks).
    exec: probe::Exec,
    logs: ContainerLog,
    started: Instant,
    prober: Option<tokio::task::AbortHandle>,
    /// Why the agent stopped it, if it did (a failed liveness probe).
    killed_because: Option<String>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("stopper", &self.stopper)
            .field("logs", &self.logs)
            .field("started", &self.started)
            .field("killed_because", &self.killed_because)
            .finish_non_exhaustive()
    }
}

/// One container of the pod.
#[derive(Debug)]
struct Slot {
    container: Container,
    record: ContainerRecord,
    /// Runs started so far; tags exits.
    runs: u32,
    running: Option<Live>,
    /// When the next start may happen.
    not_before: Option<Instant>,
    backoff: Duration,
    /// Done for good (by the restart policy).
    finished: bool,
}

impl Slot {
    fn new(container: &Container) -> Slot {
        Slot {
            record: ContainerRecord::waiting(
                &container.name,
                container.image.as_deref().unwrap_or_default(),
                "ContainerCreating",
            ),
            container: container.clone(),
            runs: 0,
            running: None,
            not_before: None,
            backoff: Duration::ZERO,
            finished: false,
        }
    }

    fn succeeded(&self) -> bool {
        matches!(&self.record.state, Phase::Terminated(t) if t.exit_code == 0)
    }

    fn wait(&mut self, reason: &str, message: Option<String>) {
        self.record.state = Phase::Waiting {
            reason: reason.to_string(),
            message,
        };
    }
}

/// A container image and the runtime that runs it.
#[derive(Clone, Debug)]
struct Resolved {
    image: Image,
    runtime: Arc<dyn WorkloadRuntime>,
}

/// What the pod needs before any container starts.
#[derive(Debug, Default)]
struct Prepared {
    pod_ip: Option<IpAddr>,
    /// The pod IP came from the node's pool (the pod is not on the
    /// node's network).
    own_ip: bool,
    volumes: BTreeMap<String, PathBuf>,
    sources: Sources,
    /// By image reference.
    images: BTreeMap<String, Resolved>,
    /// The `/etc/resolv.conf` written for the pod's containers that
    /// resolve names themselves (on the node's network or in the pod's
    /// namespace).
    resolv_conf: Option<PathBuf>,
    /// The pod's network namespace, when it has one, and the
    /// `/etc/hosts` its containers get.
    sandbox: Option<Sandbox>,
    hosts_file: Option<PathBuf>,
    /// When the projected volumes' ServiceAccount tokens are renewed.
    token_renewal: Option<Instant>,
}

/// Where port-forward reaches the pod ([`streams`](super::streams)).
fn stream_network(prepared: Option<&Prepared>) -> PodNet {
    match prepared {
        Some(Prepared {
            sandbox: Some(sandbox), ..
        }) => PodNet::Namespace(sandbox.netns.clone()),
        Some(Prepared {
            own_ip: true,
            pod_ip: Some(ip),
            ..
        }) => PodNet::Address(*ip),
        _ => PodNet::Host,
    }
}

/// How soon a failed token renewal is tried again.
const TOKEN_RETRY: Duration = Duration::from_secs(10);

pub(super) struct Worker {
    shared: Arc<Shared>,
    pod: Pod,
    namespace: String,
    name: String,
    uid: String,
    init: Vec<Slot>,
    apps: Vec<Slot>,
    prepared: Option<Prepared>,
    prepare_not_before: Option<Instant>,
    prepare_backoff: Duration,
    start_time: Timestamp,
    failed: Option<(String, String)>,
    /// Set once deletion began: when to stop asking and kill.
    kill_at: Option<Instant>,
    last_status: Option<PodStatus>,
    exits_tx: mpsc::UnboundedSender<Exited>,
    exits_rx: mpsc::UnboundedReceiver<Exited>,
    probes_tx: mpsc::UnboundedSender<Probed>,
    probes_rx: mpsc::UnboundedReceiver<Probed>,
    logs: PodLogDir,
    events: Recorder,
    /// What an earlier agent left of this pod, to take over once the pod
    /// is prepared.
    adoption: Option<Adoption>,
}

impl Group {
    /// The pod spec field a container of this group is under.
    fn field(self) -> &'static str {
        match self {
            Group::Init => "spec.initContainers",
            Group::App => "spec.containers",
        }
    }
}

fn backoff_next(current: Duration, initial: Duration, max: Duration) -> Duration {
    if current.is_zero() {
        initial
    } else {
        (current * 2).min(max)
    }
}

/// A duration as Go prints it, to the millisecond (`200ms`, `1.6s`,
/// `2m40s`, `5m0s`): the kubelet's back-off messages show it so.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return if ms == 0 { "0s".into() } else { format!("{ms}ms") };
    }
    let (hours, minutes, seconds, millis) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&seconds.to_string());
    if millis > 0 {
        out.push_str(format!(".{millis:03}").trim_end_matches('0'));
    }
    out.push('s');
    out
}

fn memory_limit(container: &Container) -> Option<u64> {
    let q = container.resources.as_ref()?.limits.as_ref()?.get("memory")?;
    let value = skiff_quantity::Quantity::parse(&q.0).ok()?.value();
    u64::try_from(value).ok()
}

fn cpu_millis(container: &Container) -> Option<u64> {
    let q = container.resources.as_ref()?.limits.as_ref()?.get("cpu")?;
    let value = skiff_quantity::Quantity::parse(&q.0).ok()?.milli_value();
    u64::try_from(value).ok()
}

/// The cpu a container requests, in millicores: its limit when it sets a
/// limit but no request.
fn cpu_request_millis(container: &Container) -> Option<u64> {
    let requested = container
        .resources
        .as_ref()?
        .requests
        .as_ref()
        .and_then(|r| r.get("cpu"));
    let Some(q) = requested else {
        return cpu_millis(container);
    };
    let value = skiff_quantity::Quantity::parse(&q.0).ok()?.milli_value();
    u64::try_from(value).ok()
}

impl Worker {
    pub(super) fn new(shared: Arc<Shared>, pod: Pod, adoption: Option<Adoption>) -> Worker {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        let (probes_tx, probes_rx) = mpsc::unbounded_channel();
        let logs = PodLogDir::new(&shared.logs_root, &namespace, &name, &uid);
        let events = Recorder::new(shared.client.clone(), &shared.config.node_name, &namespace, &name, &uid);
        Worker {
            init: spec.init_containers.iter().flatten().map(Slot::new).collect(),
            apps: spec.containers.iter().map(Slot::new).collect(),
            last_status: pod.status.clone(),
            start_time: pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0)
                .unwrap_or_else(Timestamp::now),
            shared,
            pod,
            namespace,
            name,
            uid,
            prepared: None,
            prepare_not_before: None,
            prepare_backoff: Duration::ZERO,
            failed: None,
            kill_at: None,
            exits_tx,
            exits_rx,
            probes_tx,
            probes_rx,
            logs,
            events,
            adoption,
        }
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    /// The node's side of a container run's `terminationMessagePath`.
    fn termination_file(&self, container: &str, run: u32) -> PathBuf {
        self.pod_dir().join("termination").join(format!("{container}-{run}"))
    }

    fn pod_dir(&self) -> PathBuf {
        self.shared.pods_root.join(&self.uid)
    }

    /// Runs the pod until it is deleted and its containers have stopped.
    pub(super) async fn run(mut self, mut updates: watch::Receiver<Option<Pod>>) {
        self.shared
            .log_index
            .register(&self.namespace, &self.name, &self.logs, &self.apps_and_init());
        tracing::info!(pod = %format!("{}/{}", self.namespace, self.name), "pod worker started");
        let mut gone = false;
        let mut node_shutdown = self.shared.shutting_down.clone();
        let mut node_going = false;
        loop {
            if self.pod.metadata.deletion_timestamp.is_some() {
                self.begin_termination(None);
            }
            self.check_deadline();
            if self.kill_at.is_none() && self.failed.is_none() {
                self.advance().await;
            }
            if let Some(kill_at) = self.kill_at
                && Instant::now() >= kill_at
            {
                self.stop_all(StopMode::Kill);
            }
            if !gone {
                self.report().await;
            }
            if self.kill_at.is_some() && self.running_count() == 0 {
                break;
            }
            let wake = self.next_wake();
            tokio::select! {
                changed = updates.changed(), if !gone => {
                    let latest = if changed.is_ok() { updates.borrow_and_update().clone() } else { None };
                    match latest {
                        Some(pod) => self.pod = pod,
                        None => {
                            // Removed from the API without us: stop at once.
                            gone = true;
                            self.kill_at = Some(Instant::now());
                        }
                    }
                }
                Some(exited) = self.exits_rx.recv() => self.on_exit(exited).await,
                Some(probed) = self.probes_rx.recv() => self.on_probe(probed),
                _ = node_shutdown.changed(), if !node_going => {
                    // The node is going, not the pod: its containers stop
                    // within the node's grace period, and the API hears
                    // nothing more from here.
                    node_going = true;
                    gone = true;
                    self.begin_termination(Some(self.shared.config.shutdown_grace));
                }
                _ = sleep_until(wake) => {}
            }
        }
        if !gone {
            self.finalize().await;
        }
        // A node shutting down keeps its pods' files (logs above all), as
        // a kubelet's do.
        self.cleanup(!node_going).await;
        tracing::info!(pod = %format!("{}/{}", self.namespace, self.name), "pod worker done");
    }

    fn apps_and_init(&self) -> Vec<(String, u32, bool)> {
        self.init
            .iter()
            .chain(self.apps.iter())
            .map(|s| (s.container.name.clone(), s.runs.saturating_sub(1), s.running.is_some()))
            .collect()
    }

    fn running_count(&self) -> usize {
        self.init
            .iter()
            .chain(self.apps.iter())
            .filter(|s| s.running.is_some())
            .count()
    }

    fn next_wake(&self) -> Option<Instant> {
        let mut times: Vec<Instant> = self
            .init
            .iter()
            .chain(self.apps.iter())
            .filter(|s| s.running.is_none() && !s.finished)
            .filter_map(|s| s.not_before)
            .collect();
        times.extend(self.prepare_not_before);
        times.extend(self.kill_at);
        times.extend(self.prepared.as_ref().and_then(|p| p.token_renewal));
        if let Some(deadline) = self.active_deadline() {
            times.push(deadline);
        }
        times.into_iter().min()
    }

    fn active_deadline(&self) -> Option<Instant> {
        let seconds = self.pod.spec.as_ref()?.active_deadline_seconds?;
        let started = Timestamp::now().duration_since(self.start_time);
        let left = Duration::from_secs(u64::try_from(seconds).ok()?).checked_sub(Duration::try_from(started).ok()?);
        Some(Instant::now() + left.unwrap_or_default())
    }

    fn check_deadline(&mut self) {
        if self.failed.is_some() || self.kill_at.is_some() || self.is_done() {
            return;
        }
        if self.active_deadline().is_some_and(|d| d <= Instant::now()) {
            self.failed = Some((
                "DeadlineExceeded".into(),
                "Pod was active on the node longer than the specified deadline".into(),
            ));
            self.stop_all(StopMode::Terminate);
            for slot in self.init.iter_mut().chain(self.apps.iter_mut()) {
                slot.finished = true;
            }
        }
    }

    fn is_done(&self) -> bool {
        let view = self.view();
        matches!(status::phase(&self.restart_policy(), &view), "Succeeded" | "Failed")
    }

    fn begin_termination(&mut self, at_most: Option<Duration>) {
        if self.kill_at.is_some() {
            return;
        }
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_GRACE);
        let grace = at_most.map_or(grace, |cap| grace.min(cap));
        tracing::info!(pod = %format!("{}/{}", self.namespace, self.name), ?grace, "terminating pod");
        self.kill_at = Some(Instant::now() + grace);
        let pod_ip = self.prepared.as_ref().and_then(|p| p.pod_ip);
        for (group, slot) in self.slots() {
            let Some(live) = &slot.running else { continue };
            let name = &slot.container.name;
            self.events.record(
                events::Kind::Normal,
                "Killing",
                Some((group.field(), name)),
                format!("Stopping container {name}"),
            );
            // preStop first, within the grace period; then SIGTERM. The
            // kill at the end of the grace period holds either way.
            let pre_stop = slot.container.lifecycle.as_ref().and_then(|l| l.pre_stop.clone());
            match (pre_stop, pod_ip) {
                (Some(hook), Some(ip)) => {
                    let (container, exec, stopper) = (slot.container.clone(), live.exec.clone(), live.stopper.clone());
                    let recorder = self.events.clone();
                    tokio::spawn(async move {
                        if let Err(message) = probe::run_hook(&hook, &container, ip, &exec, grace).await {
                            let field = Some((group.field(), container.name.as_str()));
                            recorder.record(events::Kind::Warning, "FailedPreStopHook", field, message);
                        }
                        stopper.stop(StopMode::Terminate);
                    });
                }
                _ => live.stopper.stop(StopMode::Terminate),
            }
        }
    }

    fn slots(&self) -> impl Iterator<Item = (Group, &Slot)> {
        let init = self.init.iter().map(|s| (Group::Init, s));
        init.chain(self.apps.iter().map(|s| (Group::App, s)))
    }

    fn stop_all(&mut self, mode: StopMode) {
        for slot in self.init.iter_mut().chain(self.apps.iter_mut()) {
            if let Some(live) = &slot.running {
                live.stopper.stop(mode);
            }
        }
    }

    /// Starts whatever may start now.
    async fn advance(&mut self) {
        if self
            .prepared
            .as_ref()
            .and_then(|p| p.token_renewal)
            .is_some_and(|at| at <= Instant::now())
        {
            self.renew_tokens().await;
        }
        if self.prepared.is_none() {
            if self.prepare_not_before.is_some_and(|t| t > Instant::now()) {
                return;
            }
            match self.prepare().await {
                Ok(prepared) => {
                    self.prepared = Some(prepared);
                    self.prepare_not_before = None;
                }
                Err((index, reason, message)) => {
                    let config = &self.shared.config;
                    self.prepare_backoff =
                        backoff_next(self.prepare_backoff, config.backoff_initial, config.backoff_max);
                    self.prepare_not_before = Some(Instant::now() + self.prepare_backoff);
                    tracing::info!(pod = %self.name, %reason, %message, "pod not ready to start");
                    self.events
                        .record(events::Kind::Warning, "Failed", None, format!("{reason}: {message}"));
                    let slots = self.init.iter_mut().chain(self.apps.iter_mut());
                    for (i, slot) in slots.enumerate() {
                        if Some(i) == index || index.is_none() {
                            slot.wait(reason, Some(message.clone()));
                        }
                    }
                    return;
                }
            }
        }
        if let Some(adoption) = self.adoption.take() {
            self.adopt(adoption).await;
        }
        let restart_policy = self.restart_policy();
        // Init containers, one at a time, in order.
        if let Some(i) = self.init.iter().position(|s| !s.succeeded()) {
            let slot = &self.init[i];
            if slot.running.is_none() && !slot.finished && slot.not_before.is_none_or(|t| t <= Instant::now()) {
                self.start(Group::Init, i).await;
            }
            for slot in &mut self.apps {
                if slot.runs == 0 {
                    slot.wait("PodInitializing", None);
                }
            }
            return;
        }
        for i in 0..self.apps.len() {
            let slot = &self.apps[i];
            let may_start =
                slot.running.is_none() && !slot.finished && slot.not_before.is_none_or(|t| t <= Instant::now());
            if may_start && (slot.runs == 0 || restart_policy != "Never") {
                self.start(Group::App, i).await;
            }
        }
    }

    /// Images, ConfigMaps and Secrets, the pod IP and the volumes. An
    /// error names the container it concerns (by index over init then app
    /// containers), or none for the whole pod.
    async fn prepare(&mut self) -> Result<Prepared, (Option<usize>, &'static str, String)> {
        let mut prepared = Prepared::default();
        let containers: Vec<Container> = self
            .init
            .iter()
            .chain(self.apps.iter())
            .map(|s| s.container.clone())
            .collect();
        let class = self.pod.spec.as_ref().and_then(|s| s.runtime_class_name.clone());
        let mut networks = Vec::new();
        let keyring = self.pull_secrets().await;
        for (i, c) in containers.iter().enumerate() {
            let reference = c.image.clone().unwrap_or_default();
            if prepared.images.contains_key(&reference) {
                continue;
            }
            let image = self
                .shared
                .pull(&reference, c.image_pull_policy.as_deref(), &keyring)
                .await
                .map_err(|(reason, message)| (Some(i), reason, message))?;
            let runtime = self
                .shared
                .runtimes
                .select(&image, class.as_deref())
                .map_err(|message| (Some(i), "CreateContainerConfigError", message))?;
            networks.push(runtime.network());
            prepared.images.insert(reference, Resolved { image, runtime });
        }
        prepared.sources = self
            .fetch_sources()
            .await
            .map_err(|e| (None, "CreateContainerConfigError", e.0))?;
        let (tokens, renewal) = self
            .request_tokens()
            .await
            .map_err(|e| (None, "CreateContainerConfigError", e.0))?;
        prepared.sources.tokens = tokens;
        prepared.token_renewal = renewal;
        let volumes_dir = self.pod_dir().join("volumes");
        for volume in self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default()
        {
            let path = spec::materialize(&volume, &self.pod, &prepared.sources, &volumes_dir)
                .map_err(|e| (None, "CreateContainerConfigError", e.0))?;
            if let Some(gid) = spec::fs_group(&self.pod) {
                spec::apply_fs_group(&path, gid, volume.empty_dir.is_some()).map_err(|e| {
                    (
                        None,
                        "CreateContainerConfigError",
                        format!("volume {}: cannot give it to fsGroup {gid}: {e}", volume.name),
                    )
                })?;
            }
            prepared.volumes.insert(volume.name.clone(), path);
        }
        let host_network = self.pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
        let network = Network::of_pod(host_network, networks);
        if network.needs_resolv_conf()
            && let Some(text) = spec::resolv_conf(&self.pod, self.shared.proxy.dns_address().map(|a| a.ip()))
        {
            let path = self.pod_dir().join("resolv.conf");
            std::fs::create_dir_all(self.pod_dir())
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|e| {
                    (
                        None,
                        "CreateContainerConfigError",
                        format!("cannot write {}: {e}", path.display()),
                    )
                })?;
            prepared.resolv_conf = Some(path);
        }
        // The pod's address: its own from the node's pool, served by the
        // gateway or inside its namespace, or the node's.
        // An adopted pod keeps its address and namespace.
        let adopted_ip = self
            .adoption
            .as_ref()
            .and_then(|a| a.sandbox)
            .filter(|ip| network == Network::Namespace && self.shared.pod_ips.reserve(IpAddr::V4(*ip)));
        if network != Network::Node {
            prepared.pod_ip = match adopted_ip {
                Some(ip) => Some(IpAddr::V4(ip)),
                None => self.shared.pod_ips.allocate(),
            };
            prepared.own_ip = prepared.pod_ip.is_some();
        }
        if network == Network::Namespace
            && let Some(IpAddr::V4(ip)) = prepared.pod_ip
        {
            // The hosts file first: nothing is left to undo if it fails.
            let hosts = spec::hostname(&self.pod)
                .map(|hostname| spec::hosts_file(&self.pod, &ip.to_string(), &hostname))
                .map_err(|e| e.0)
                .and_then(|text| {
                    let path = self.pod_dir().join("hosts");
                    std::fs::create_dir_all(self.pod_dir())
                        .and_then(|()| std::fs::write(&path, text))
                        .map(|()| path.clone())
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))
                });
            let attached = match (hosts, &self.shared.pod_network) {
                (Ok(hosts), Ok(pods)) => {
                    prepared.hosts_file = Some(hosts);
                    let isolation = self.shared.isolator.add(&self.shared.proxy, ip, &self.pod);
                    let host_ports = spec::host_ports(&self.pod);
                    let attached = match adopted_ip {
                        Some(_) => pods.adopt(ip, &host_ports, isolation).await,
                        None => pods.attach(ip, &host_ports, isolation).await,
                    }
                    .map_err(|e| e.to_string());
                    if attached.is_err() {
                        self.shared.isolator.remove(ip);
                    }
                    attached
                }
                (Err(why), _) => Err(why),
                (_, Err(why)) => Err(why.clone()),
            };
            match attached {
                Ok(sandbox) => prepared.sandbox = Some(sandbox),
                Err(message) => {
                    self.shared.pod_ips.release(IpAddr::V4(ip));
                    if let Some(adoption) = self.adoption.take() {
                        self.abandon(adoption);
                    }
                    return Err((
                        None,
                        "FailedCreatePodSandBox",
                        format!("cannot create the pod's network: {message}"),
                    ));
                }
            }
        }
        if prepared.pod_ip.is_none() {
            prepared.pod_ip = self.shared.config.node_ip.parse().ok();
        }
        Ok(prepared)
    }

    /// The registry logins of the pod's `imagePullSecrets` (the API
    /// server has added its ServiceAccount's). A Secret that is missing
    /// or unreadable is skipped with a warning, as the kubelet skips it:
    /// the pull may not need it.
    async fn pull_secrets(&self) -> Keyring {
        let mut keyring = Keyring::default();
        let names = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        for name in names.into_iter().map(|r| r.name) {
            let added = match api.get_opt(&name).await {
                Ok(Some(secret)) => {
                    let data = secret.data.unwrap_or_default();
                    keyring
                        .add_secret(secret.type_.as_deref(), |key| data.get(key).map(|v| v.0.as_slice()))
                        .map_err(|e| e.to_string())
                }
                Ok(None) => Err("it does not exist".to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = added {
                tracing::warn!(pod = %self.name, secret = %name, %why, "cannot use an image pull secret");
            }
        }
        keyring
    }

    async fn fetch_sources(&self) -> Result<Sources, ConfigError> {
        let (maps, secrets) = Sources::wanted(&self.pod);
        let mut sources = Sources::default();
        let map_api: Api<ConfigMap> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        for name in maps {
            match map_api.get_opt(&name).await {
                Ok(Some(map)) => {
                    sources.config_maps.insert(name, map);
                }
                Ok(None) => {}
                Err(e) => return Err(ConfigError(format!("cannot read configmap {name}: {e}"))),
            }
        }
        let secret_api: Api<Secret> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        for name in secrets {
            match secret_api.get_opt(&name).await {
                Ok(Some(secret)) => {
                    sources.secrets.insert(name, secret);
                }
                Ok(None) => {}
                Err(e) => return Err(ConfigError(format!("cannot read secret {name}: {e}"))),
            }
        }
        Ok(sources)
    }

    /// Requests the ServiceAccount tokens the pod's projected volumes
    /// hold (TokenRequest, bound to the pod, so that each is refused once
    /// the pod is gone); returns them with when the first is due for
    /// renewal.
    async fn request_tokens(&self) -> Result<(BTreeMap<TokenSlot, String>, Option<Instant>), ConfigError> {
        let wanted = Sources::tokens_wanted(&self.pod);
        let mut tokens = BTreeMap::new();
        let mut renewal: Option<Instant> = None;
        if wanted.is_empty() {
            return Ok((tokens, renewal));
        }
        let account = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let api: Api<ServiceAccount> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        for want in wanted {
            let request = TokenRequest {
                spec: TokenRequestSpec {
                    audiences: want.audience.into_iter().collect(),
                    expiration_seconds: Some(want.expiration_seconds),
                    bound_object_ref: Some(BoundObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Pod".into()),
                        name: Some(self.name.clone()),
                        uid: Some(self.uid.clone()),
                    }),
                },
                ..TokenRequest::default()
            };
            let cannot = |e: String| ConfigError(format!("cannot request a token for serviceaccount {account}: {e}"));
            let issued: TokenRequest = api
                .create_subresource("token", &account, &PostParams::default(), &request)
                .await
                .map_err(|e| cannot(e.to_string()))?;
            let status = issued.status.ok_or_else(|| cannot("the answer has no status".into()))?;
            let lifetime =
                Duration::try_from(status.expiration_timestamp.0.duration_since(Timestamp::now())).unwrap_or_default();
            let due = Instant::now() + spec::token_renewal(lifetime);
            renewal = Some(renewal.map_or(due, |r| r.min(due)));
            tokens.insert(want.slot, status.token);
        }
        Ok((tokens, renewal))
    }

    /// Replaces the projected tokens before they expire, as the kubelet
    /// does; running containers read the new file in place.
    async fn renew_tokens(&mut self) {
        let volumes_dir = self.pod_dir().join("volumes");
        let outcome = match self.request_tokens().await {
            Ok((tokens, renewal)) => tokens
                .iter()
                .try_for_each(|(slot, token)| {
                    spec::write_file_atomically(&volumes_dir.join(&slot.volume), &slot.path, token.as_bytes())
                })
                .map(|()| (tokens, renewal)),
            Err(e) => Err(e),
        };
        let Some(prepared) = self.prepared.as_mut() else { return };
        match outcome {
            Ok((tokens, renewal)) => {
                prepared.sources.tokens = tokens;
                prepared.token_renewal = renewal;
            }
            Err(ConfigError(message)) => {
                tracing::warn!(pod = %self.name, %message, "cannot renew the pod's ServiceAccount token");
                prepared.token_renewal = Some(Instant::now() + TOKEN_RETRY);
            }
        }
    }

    fn launch(&self, slot: &Slot, prepared: &Prepared) -> Result<(Launch, Resolved), ConfigError> {
        let c = &slot.container;
        let reference = c.image.clone().unwrap_or_default();
        let resolved = prepared
            .images
            .get(&reference)
            .cloned()
            .ok_or_else(|| ConfigError(format!("image {reference} was not resolved")))?;
        let pod_ip = prepared.pod_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let env = spec::environment(
            &self.pod,
            c,
            &prepared.sources,
            &pod_ip,
            &self.shared.config.node_ip,
            &self.shared.proxy.services(),
        )?;
        let vars: BTreeMap<String, String> = env.iter().cloned().collect();
        let mut mounts = spec::mounts(&self.pod, c, &prepared.volumes)?;
        if resolved.runtime.network().needs_resolv_conf()
            && let Some(path) = &prepared.resolv_conf
        {
            mounts.push(Mount {
                host: path.clone(),
                path: "/etc/resolv.conf".into(),
                read_only: true,
            });
        }
        if resolved.runtime.mounts_files() {
            // Empty and writable by any user the container runs as.
            let file = self.termination_file(&c.name, slot.runs);
            let made = file
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&file, b""))
                .and_then(|()| {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))
                });
            made.map_err(|e| ConfigError(format!("cannot create {}: {e}", file.display())))?;
            mounts.push(Mount {
                host: file.clone(),
                path: c
                    .termination_message_path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/dev/termination-log".into()),
                read_only: false,
            });
        }
        if resolved.runtime.network() == Network::Namespace
            && let Some(path) = &prepared.hosts_file
        {
            mounts.push(Mount {
                host: path.clone(),
                path: "/etc/hosts".into(),
                read_only: true,
            });
        }
        let ports: Vec<u16> = c
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
            .filter_map(|p| u16::try_from(p.container_port).ok())
            .collect();
        let ip = prepared.pod_ip.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let run = slot.runs;
        let launch = Launch {
            id: format!("{}-{}-{run}", self.uid, c.name),
            name: c.name.clone(),
            hostname: spec::hostname(&self.pod)?,
            image: resolved.image.clone(),
            command: c.command.iter().flatten().map(|a| spec::expand(a, &vars)).collect(),
            args: c.args.iter().flatten().map(|a| spec::expand(a, &vars)).collect(),
            env,
            working_dir: c.working_dir.clone(),
            mounts,
            memory_limit_bytes: memory_limit(c),
            cpu_millis: cpu_millis(c),
            cpu_request_millis: cpu_request_millis(c),
            stdio: Stdio::Discard,
            listen: ports.into_iter().map(|p| SocketAddr::new(ip, p)).collect(),
            request_timeout: self.shared.config.request_timeout,
            netns: prepared.sandbox.as_ref().map(|s| s.netns.clone()),
            security: spec::security(&self.pod, c, &self.shared.config.data_dir.join("seccomp"))?,
            pod: PodRef {
                namespace: self.pod.metadata.namespace.clone().unwrap_or_default(),
                name: self.pod.metadata.name.clone().unwrap_or_default(),
                uid: self.uid.clone(),
                labels: self.pod.metadata.labels.clone().unwrap_or_default(),
                ip: prepared.pod_ip,
                in_process_calls: self
                    .pod
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(super::runtime::IN_PROCESS_CALLS_ANNOTATION))
                    .is_none_or(|value| value != "false"),
            },
        };
        Ok((launch, resolved))
    }

    async fn start(&mut self, group: Group, index: usize) {
        let Some(prepared) = self.prepared.as_ref() else {
            return;
        };
        let slot = match group {
            Group::Init => &self.init[index],
            Group::App => &self.apps[index],
        };
        let prepared_launch = self.launch(slot, prepared);
        let config = &self.shared.config;
        let (initial, max) = (config.backoff_initial, config.backoff_max);
        let outcome = match prepared_launch {
            Err(e) => Err(StartError {
                reason: "CreateContainerConfigError",
                message: e.0,
            }),
            Ok((mut launch, Resolved { image, runtime })) => {
                // The runtime says how its containers' output reaches the log.
                let wiring = runtime.log_wiring();
                let c = &slot.container;
                let console = Console {
                    stdin: c.stdin.unwrap_or(false),
                    stdin_once: c.stdin_once.unwrap_or(false),
                    tty: c.tty.unwrap_or(false),
                };
                match self.logs.open(&c.name, slot.runs, wiring, config.log_limits, console) {
                    Err(e) => Err(StartError {
                        reason: "CreateContainerError",
                        message: format!("cannot set up the container's logs: {e}"),
                    }),
                    Ok((writer, stdio)) => {
                        launch.stdio = stdio;
                        let id = format!("{}://{}", runtime.name(), launch.id);
                        match runtime.start(launch).await {
                            Ok(running) => Ok((running, writer, id, image)),
                            Err(e) => {
                                tokio::task::spawn_blocking(move || writer.close());
                                Err(e)
                            }
                        }
                    }
                }
            }
        };
        let slot = match group {
            Group::Init => &mut self.init[index],
            Group::App => &mut self.apps[index],
        };
        match outcome {
            Ok((running, writer, container_id, image)) => {
                slot.record.image_id = format!("{}@{}", image.reference, running.image_id);
                slot.record.container_id = Some(container_id);
                self.install(group, index, running, writer, false).await;
            }
            Err(error) => {
                tracing::info!(pod = %self.name, container = %slot.container.name, reason = error.reason, message = %error.message, "container did not start");
                self.events.record(
                    events::Kind::Warning,
                    "Failed",
                    Some((group.field(), &slot.container.name)),
                    format!("Error: {}", error.message),
                );
                slot.wait(error.reason, Some(error.message));
                slot.backoff = backoff_next(slot.backoff, initial, max);
                slot.not_before = Some(Instant::now() + slot.backoff);
            }
        }
    }

    /// Takes over what an earlier agent left of this pod (see
    /// [`super::adopt`]): its init containers stay done, and each claimed
    /// app container runs on as the current run of its slot.
    async fn adopt(&mut self, adoption: Adoption) {
        let status = self.last_status.clone().unwrap_or_default();
        for slot in &mut self.init {
            let reported = status
                .init_container_statuses
                .iter()
                .flatten()
                .find(|s| s.name == slot.container.name);
            if let Some(reported) = reported {
                slot.record = ContainerRecord::of_status(reported);
                slot.runs = u32::try_from(reported.restart_count).unwrap_or(0) + 1;
            }
        }
        let Some(runtime) = self.shared.runtimes.named("runc") else {
            return;
        };
        let limits = self.shared.config.log_limits;
        for (name, adopted) in adoption.containers {
            let Some(index) = self.apps.iter().position(|s| s.container.name == name) else {
                continue;
            };
            let Some(running) = runtime.adopt(&adopted.id) else {
                continue;
            };
            let logs = match self.logs.reopen(&name, adopted.run, limits) {
                Ok(logs) => logs,
                Err(error) => {
                    tracing::warn!(%error, pod = %self.name, container = %name, "cannot reopen an adopted container's output; stopping it");
                    running.stopper.stop(StopMode::Kill);
                    continue;
                }
            };
            tracing::info!(pod = %self.name, container = %name, id = %adopted.id, "adopted a container an earlier agent started");
            let slot = &mut self.apps[index];
            slot.record = ContainerRecord::of_status(&adopted.status);
            slot.runs = adopted.run;
            self.install(Group::App, index, running, logs, true).await;
        }
    }

    /// Removes the containers this pod claimed but cannot adopt (its
    /// namespace could not be taken over).
    fn abandon(&self, adoption: Adoption) {
        let Some(runc) = self.shared.runc.clone() else { return };
        tracing::info!(pod = %self.name, "cannot adopt the pod's network; its containers start afresh");
        tokio::task::spawn_blocking(move || {
            for adopted in adoption.containers.values() {
                let _ = runc.delete(&adopted.id, true);
            }
        });
    }

    /// Makes `running` the current run of a container: its output,
    /// probes, exit and status, with Events and the postStart hook unless
    /// it was `adopted` from an earlier agent (its record then already
    /// says when it started and how it fares).
    async fn install(&mut self, group: Group, index: usize, running: Running, writer: ContainerLog, adopted: bool) {
        let slot = match group {
            Group::Init => &mut self.init[index],
            Group::App => &mut self.apps[index],
        };
        let Running {
            image_id: _,
            exit,
            stopper,
            exec,
            spawn,
            meter,
        } = running;
        self.shared.streams.started(
            &self.namespace,
            &self.name,
            &self.uid,
            stream_network(self.prepared.as_ref()),
            &slot.container.name,
            spawn,
            writer.attach(),
        );
        let run = slot.runs;
        slot.runs += 1;
        // The current and the previous run keep their logs (what
        // `previous` reads); older ones go.
        if let Some(old) = run.checked_sub(2) {
            self.logs.remove_run(&slot.container.name, old);
        }
        self.shared.stats.started(
            PodId {
                namespace: &self.namespace,
                name: &self.name,
                uid: &self.uid,
                started: self.start_time,
            },
            &slot.container.name,
            meter,
        );
        if !adopted {
            slot.record.state = Phase::Running {
                started_at: Timestamp::now(),
            };
        }
        let c = &slot.container;
        if !adopted {
            let field = Some((group.field(), c.name.as_str()));
            self.events.record(
                events::Kind::Normal,
                "Created",
                field,
                format!("Created container: {}", c.name),
            );
            self.events.record(
                events::Kind::Normal,
                "Started",
                field,
                format!("Started container {}", c.name),
            );
            slot.record.ready = c.readiness_probe.is_none();
            slot.record.started = c.startup_probe.is_none();
        }
        let has_probes = c.readiness_probe.is_some() || c.liveness_probe.is_some() || c.startup_probe.is_some();
        let pod_ip = self.prepared.as_ref().and_then(|p| p.pod_ip);
        let prober = match pod_ip.filter(|_| has_probes) {
            Some(ip) => {
                let (verdicts, mut received) = mpsc::unbounded_channel();
                let task = tokio::spawn(probe::run(c.clone(), ip, exec.clone(), verdicts));
                let forward = self.probes_tx.clone();
                tokio::spawn(async move {
                    while let Some(verdict) = received.recv().await {
                        let probed = Probed {
                            group,
                            index,
                            run,
                            verdict,
                        };
                        if forward.send(probed).is_err() {
                            break;
                        }
                    }
                });
                Some(task.abort_handle())
            }
            None => None,
        };
        // An adopted container ran its postStart hook long ago.
        let post_start = c
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.clone())
            .filter(|_| !adopted);
        slot.running = Some(Live {
            stopper: stopper.clone(),
            exec: exec.clone(),
            logs: writer,
            started: Instant::now(),
            prober,
            killed_because: None,
        });
        slot.not_before = None;
        let tx = self.exits_tx.clone();
        tokio::spawn(async move {
            let exit = exit.wait().await;
            let _ = tx.send(Exited {
                group,
                index,
                run,
                exit,
            });
        });
        self.shared
            .log_index
            .register(&self.namespace, &self.name, &self.logs, &self.apps_and_init());
        // postStart runs before anything else happens to the pod; a
        // failed one stops the container, which restarts by policy.
        if let (Some(hook), Some(ip)) = (post_start, pod_ip) {
            let container = match group {
                Group::Init => self.init[index].container.clone(),
                Group::App => self.apps[index].container.clone(),
            };
            let grace = self.grace();
            if let Err(message) = probe::run_hook(&hook, &container, ip, &exec, grace).await {
                let field = Some((group.field(), container.name.as_str()));
                self.events
                    .record(events::Kind::Warning, "FailedPostStartHook", field, message.clone());
                tracing::info!(pod = %self.name, container = %container.name, %message, "postStart hook failed");
                stopper.stop(StopMode::Terminate);
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    stopper.stop(StopMode::Kill);
                });
            }
        }
    }

    async fn on_exit(&mut self, exited: Exited) {
        let restart_policy = self.restart_policy();
        let config = &self.shared.config;
        let (initial, max) = (config.backoff_initial, config.backoff_max);
        let terminating = self.kill_at.is_some() || self.failed.is_some();
        let name = match exited.group {
            Group::Init => &self.init[exited.index].container.name,
            Group::App => &self.apps[exited.index].container.name,
        };
        let (left_file, log) = (
            self.termination_file(name, exited.run),
            self.logs.file(name, exited.run),
        );
        let slot = match exited.group {
            Group::Init => &mut self.init[exited.index],
            Group::App => &mut self.apps[exited.index],
        };
        if slot.runs != exited.run + 1 {
            return;
        }
        let Some(live) = slot.running.take() else {
            return;
        };
        self.shared
            .stats
            .exited(&self.namespace, &self.name, &slot.container.name);
        self.shared
            .streams
            .stopped(&self.namespace, &self.name, &slot.container.name);
        if let Some(prober) = &live.prober {
            prober.abort();
        }
        let started = live.started;
        let writer = live.logs;
        let _ = tokio::task::spawn_blocking(move || writer.close()).await;
        let mut exit = exited.exit;
        let killed_by_probe = live.killed_because.is_some();
        if let Some(reason) = live.killed_because {
            exit.message = Some(reason);
        } else if let Some(message) = termination_message(&slot.container, &left_file, &log, exit.code) {
            exit.message = Some(message);
        }
        tracing::info!(pod = %self.name, container = %slot.container.name, code = exit.code, reason = %exit.reason, "container exited");
        let started_at = match &slot.record.state {
            Phase::Running { started_at } => Some(*started_at),
            _ => None,
        };
        let terminated = Terminated {
            exit_code: exit.code,
            reason: exit.reason.clone(),
            message: exit.message.clone(),
            started_at,
            finished_at: Timestamp::now(),
        };
        slot.record.ready = false;
        slot.record.started = false;
        let restart = !terminating
            && match (exited.group, restart_policy.as_str()) {
                (Group::Init, "Never") => false,
                (Group::Init, _) => exit.code != 0,
                (Group::App, "Always") => true,
                // A container killed for a failed probe restarts whatever
                // its exit code, as with the kubelet (a Wasm HTTP service
                // stops with 0).
                (Group::App, "OnFailure") => exit.code != 0 || killed_by_probe,
                _ => false,
            };
        if !restart {
            slot.record.state = Phase::Terminated(terminated);
            slot.finished = exited.group == Group::App || exit.code != 0;
        } else {
            if started.elapsed() >= BACKOFF_RESET_AFTER {
                slot.backoff = Duration::ZERO;
            }
            // The first restart is immediate; later ones back off.
            let delay = slot.backoff;
            slot.backoff = backoff_next(slot.backoff, initial, max);
            slot.record.last_termination = Some(terminated);
            slot.record.restart_count += 1;
            slot.not_before = Some(Instant::now() + delay);
            let message = format!(
                "back-off {} restarting failed container={} pod={}_{}({})",
                go_duration(delay),
                slot.container.name,
                self.name,
                self.namespace,
                self.uid
            );
            if delay.is_zero() {
                slot.wait("ContainerCreating", None);
            } else {
                self.events.record(
                    events::Kind::Warning,
                    "BackOff",
                    Some((exited.group.field(), &slot.container.name)),
                    format!(
                        "Back-off restarting failed container {} in pod {}_{}({})",
                        slot.container.name, self.name, self.namespace, self.uid
                    ),
                );
                slot.wait("CrashLoopBackOff", Some(message));
            }
        }
        self.shared
            .log_index
            .register(&self.namespace, &self.name, &self.logs, &self.apps_and_init());
    }

    /// A probe's verdict: readiness flips `ready`, a startup success
    /// marks the container started, and a failed liveness or startup
    /// probe stops the container (to be restarted by the restart policy).
    fn on_probe(&mut self, probed: Probed) {
        let grace = self.grace();
        let slot = match probed.group {
            Group::Init => &mut self.init[probed.index],
            Group::App => &mut self.apps[probed.index],
        };
        if slot.runs != probed.run + 1 {
            return;
        }
        let Some(live) = slot.running.as_mut() else {
            return;
        };
        let verdict = probed.verdict;
        let field = Some((probed.group.field(), slot.container.name.as_str()));
        if !verdict.ok {
            let message = verdict.message.clone().unwrap_or_default();
            self.events.record(events::Kind::Warning, "Unhealthy", field, message);
        }
        tracing::info!(pod = %self.name, container = %slot.container.name, probe = verdict.kind.name(), ok = verdict.ok, message = ?verdict.message, "probe verdict");
        match (verdict.kind, verdict.ok) {
            (Kind::Readiness, ok) => slot.record.ready = ok,
            (Kind::Startup, true) => slot.record.started = true,
            (Kind::Liveness, true) => {}
            (Kind::Liveness | Kind::Startup, false) => {
                let message = verdict.message.unwrap_or_default();
                live.killed_because = Some(format!("{message}; the container was restarted"));
                self.events.record(
                    events::Kind::Normal,
                    "Killing",
                    field,
                    format!(
                        "Container {} failed {} probe, will be restarted",
                        slot.container.name,
                        verdict.kind.name().to_lowercase()
                    ),
                );
                live.stopper.stop(StopMode::Terminate);
                let stopper = live.stopper.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    stopper.stop(StopMode::Kill);
                });
            }
        }
    }

    fn grace(&self) -> Duration {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_GRACE)
    }

    fn view(&self) -> PodView {
        PodView {
            init_containers: self.init.iter().map(|s| s.record.clone()).collect(),
            containers: self.apps.iter().map(|s| s.record.clone()).collect(),
            pod_ip: self.prepared.as_ref().and_then(|p| p.pod_ip).map(|ip| ip.to_string()),
            host_ip: self.shared.config.node_ip.clone(),
            start_time: Some(self.start_time),
            failed: self.failed.clone(),
        }
    }

    /// Writes the status when it changed.
    async fn report(&mut self) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let status = status::pod_status(&spec, &self.view(), self.last_status.as_ref(), Timestamp::now());
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let patch = json!({"status": status});
        match pods
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.last_status = Some(status),
            Err(kube::Error::Api(e)) if e.code == 404 => self.last_status = Some(status),
            Err(error) => tracing::warn!(pod = %self.name, %error, "cannot report pod status"),
        }
    }

    /// The containers have stopped: release the pod in the API.
    async fn finalize(&mut self) {
        self.report().await;
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match pods.delete(&self.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(error) => tracing::warn!(pod = %self.name, %error, "cannot delete the pod"),
        }
    }

    async fn cleanup(&mut self, remove_files: bool) {
        if let Some(prepared) = &self.prepared {
            // The namespace goes before its address may be handed out again.
            if let (Some(sandbox), Ok(pods)) = (&prepared.sandbox, &self.shared.pod_network) {
                self.shared.isolator.remove(sandbox.ip);
                pods.detach(sandbox).await;
            }
            if prepared.own_ip
                && let Some(ip) = prepared.pod_ip
            {
                self.shared.pod_ips.release(ip);
            }
        }
        self.shared.log_index.remove(&self.namespace, &self.name);
        self.shared.streams.remove(&self.namespace, &self.name);
        self.shared.stats.remove(&self.namespace, &self.name);
        if remove_files {
            let _ = std::fs::remove_dir_all(self.pod_dir());
            let _ = std::fs::remove_dir_all(self.logs.path());
        }
    }
}

/// What a container left at its `terminationMessagePath` (at most 4 KiB),
/// or, under `FallbackToLogsOnError` when it failed and left nothing, the
/// end of its log (80 lines, at most 2 KiB), as the kubelet reports them.
fn termination_message(container: &Container, file: &Path, log: &Path, code: i32) -> Option<String> {
    const FILE_MAX: usize = 4096;
    const LOG_LINES: usize = 80;
    const LOG_MAX: usize = 2048;
    let left = std::fs::read(file).unwrap_or_default();
    if !left.is_empty() {
        let end = left.len().min(FILE_MAX);
        return Some(String::from_utf8_lossy(&left[..end]).into_owned());
    }
    if code == 0 || container.termination_message_policy.as_deref() != Some("FallbackToLogsOnError") {
        return None;
    }
    let query = super::logs::LogQuery {
        tail_lines: Some(LOG_LINES),
        since: None,
        timestamps: false,
        limit_bytes: None,
    };
    let (tail, _) = super::logs::read(log, &query).ok()?;
    let start = tail.len().saturating_sub(LOG_MAX);
    let text = String::from_utf8_lossy(&tail[start..]).into_owned();
    (!text.is_empty()).then_some(text)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_to_its_cap_and_reads_as_go_prints_it() {
        let (initial, max) = (Duration::from_millis(200), Duration::from_millis(1600));
        let mut delays = vec![Duration::ZERO];
        for _ in 0..5 {
            delays.push(backoff_next(*delays.last().unwrap(), initial, max));
        }
        let shown: Vec<String> = delays.into_iter().map(go_duration).collect();
        assert_eq!(shown, ["0s", "200ms", "400ms", "800ms", "1.6s", "1.6s"]);
        let kubelet = [(10, "10s"), (160, "2m40s"), (300, "5m0s"), (3725, "1h2m5s")];
        for (seconds, want) in kubelet {
            assert_eq!(go_duration(Duration::from_secs(seconds)), want);
        }
        assert_eq!(go_duration(Duration::from_millis(1050)), "1.05s");
    }

    #[test]
    fn a_container_requests_its_cpu_limit_unless_it_requests_cpu() {
        let container = |resources: serde_json::Value| -> Container {
            serde_json::from_value(serde_json::json!({"name": "c", "resources": resources})).unwrap()
        };
        let both = container(serde_json::json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}));
        assert_eq!((cpu_request_millis(&both), cpu_millis(&both)), (Some(250), Some(1000)));
        let limit = container(serde_json::json!({"limits": {"cpu": "0.5"}}));
        assert_eq!((cpu_request_millis(&limit), cpu_millis(&limit)), (Some(500), Some(500)));
        let request = container(serde_json::json!({"requests": {"cpu": "100m", "memory": "1Gi"}}));
        assert_eq!((cpu_request_millis(&request), cpu_millis(&request)), (Some(100), None));
        let neither = container(serde_json::json!({"requests": {"memory": "1Gi"}}));
        assert_eq!((cpu_request_millis(&neither), cpu_millis(&neither)), (None, None));
    }
}
