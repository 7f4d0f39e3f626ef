//! The I/O around the core: watches, the scheduling loop, binding, Events
//! and pod conditions.
//!
//! [`Scheduler::run`] runs three things at once:
//!
//! * a kube-runtime `reflector` over a `watcher` of all Nodes and one of
//!   all Pods, whose events go into the [`Cache`] (snapshot + queue);
//! * the scheduling loop: pop the next pod, bring the loop's copy of the
//!   snapshot up to date (the changed nodes only, under the cache lock),
//!   run [`schedule_from`] on that copy without the lock, then Reserve and
//!   assume the pod on the chosen node, and hand it to a binding task; at
//!   most `parallelism` pods are being bound (or having their failure
//!   reported) at once;
//! * the binding tasks: run the profile's Bind plugins (by default a POST
//!   to `pods/binding`), then record a `Scheduled` Event; on failure undo
//!   the assumption and retry the pod after its back-off.
//!
//! Plugins added at run time ([`DynamicPlugins`], the Wasm plugins) are
//! enabled in every profile from the next cycle after they change, and a
//! change retries the pods waiting as unschedulable.
//!
//! A pod that fits nowhere gets a `FailedScheduling` Warning Event and the
//! condition `PodScheduled=False` (reason `Unschedulable`) with the
//! message, as kube-scheduler writes them, and waits in the queue for a
//! cluster change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde_json::json;
use skiff_client::events::{Kind, Recorder, reference};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::cache::{Cache, scheduler_name};
use crate::config::{DEFAULT_PARALLELISM, SchedulerConfig};
use crate::cycle::{Decision, Scheduled, schedule_from};
use crate::dynamic::DynamicPlugins;
use crate::framework::ClusterEvent;
use crate::metrics::{Metrics, Outcome, PendingPods, PendingSource};
use crate::profile::{DEFAULT_SCHEDULER_NAME, Profile};
use crate::queue::{QueueConfig, QueuedPod, Requeue};
use crate::registry::Registry;
use crate::snapshot::{Snapshot, pod_uid};
use crate::{Error, Result};

/// How the runner behaves, apart from the profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerOptions {
    /// How many pods may be in their binding cycle at once (a throughput
    /// knob: binding is an API round trip, scheduling is not).
    pub parallelism: usize,
    pub queue: QueueConfig,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            parallelism: DEFAULT_PARALLELISM as usize,
            queue: QueueConfig::default(),
        }
    }
}

/// Counts of what the scheduler did since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Scheduling cycles run.
    pub attempts: u64,
    /// Pods bound.
    pub scheduled: u64,
    /// Cycles that found no node.
    pub unschedulable: u64,
    /// Cycles or bindings that failed and will be retried.
    pub errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    attempts: AtomicU64,
    scheduled: AtomicU64,
    unschedulable: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn read(&self) -> SchedulerStats {
        SchedulerStats {
            attempts: self.attempts.load(Ordering::Relaxed),
            scheduled: self.scheduled.load(Ordering::Relaxed),
            unschedulable: self.unschedulable.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// What the watches, the loop and the binding tasks share.
struct Shared {
    client: kube::Client,
    /// The profiles as configured, and as the loop uses them: with the
    /// dynamic plugins enabled.
    base_profiles: BTreeMap<String, Arc<Profile>>,
    profiles: Mutex<BTreeMap<String, Arc<Profile>>>,
    dynamic: DynamicPlugins,
    /// The dynamic plugins' version as of `profiles`: subscribed before
    /// they were built, so no change goes unseen.
    dynamic_seen: watch::Receiver<u64>,
    cache: Mutex<Cache>,
    /// Woken on every watch event, so the loop looks at the queue again.
    wake: Notify,
    synced: watch::Sender<bool>,
    counters: Counters,
    recorder: Recorder,
    metrics: Metrics,
}

impl PendingSource for Shared {
    fn pending(&self) -> PendingPods {
        let cache = self.cache();
        PendingPods {
            active: cache.queue.active_len(),
            backoff: cache.queue.backoff_len(),
            unschedulable: cache.queue.unschedulable_len(),
            gated: cache.gated_len(),
        }
    }
}

impl Shared {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn profile(&self, scheduler_name: &str) -> Option<Arc<Profile>> {
        self.profiles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(scheduler_name)
            .cloned()
    }

    /// Rebuilds the profiles with the current dynamic plugins, makes
    /// their rejections retryable on every event, and retries the
    /// unschedulable pods.
    fn dynamic_plugins_changed(&self) {
        let profiles: BTreeMap<_, _> = self
            .base_profiles
            .iter()
            .map(|(name, base)| (name.clone(), Arc::new(self.dynamic.apply(base))))
            .collect();
        *self.profiles.lock().unwrap_or_else(PoisonError::into_inner) = profiles;
        let names = self.dynamic.names();
        let moved = {
            let mut cache = self.cache();
            for event in ClusterEvent::ALL {
                cache.add_interest(*event, &names);
            }
            cache.queue.retry_unschedulable()
        };
        tracing::info!(plugins = ?names, retried = moved, "dynamic scheduler plugins changed");
        self.wake.notify_one();
    }

    /// After a watch event: wake the loop, and say when both lists are in.
    fn changed(&self) {
        let synced = self.cache().synced();
        if synced && !*self.synced.borrow() {
            self.synced.send_replace(true);
            tracing::info!("scheduler caches synced");
        }
        self.wake.notify_one();
    }
}

/// The scheduler: profiles, options and a client, ready to
/// [`run`](Scheduler::run) or [`start`](Scheduler::start).
pub struct Scheduler {
    client: kube::Client,
    profiles: Vec<Profile>,
    options: SchedulerOptions,
    dynamic: DynamicPlugins,
    metrics: Metrics,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field(
                "profiles",
                &self.profiles.iter().map(Profile::scheduler_name).collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler configured by `config`, with the built-in plugins.
    pub fn new(client: kube::Client, config: &SchedulerConfig) -> Result<Scheduler> {
        Scheduler::with_registry(client, config, &Registry::builtin())
    }

    /// A scheduler configured by `config`, whose plugin names resolve in
    /// `registry` (the built-ins plus any added).
    pub fn with_registry(client: kube::Client, config: &SchedulerConfig, registry: &Registry) -> Result<Scheduler> {
        let profiles = config.build_profiles(registry)?;
        let options = SchedulerOptions {
            parallelism: config.parallelism()?,
            queue: config.queue()?,
        };
        Scheduler::from_profiles(client, profiles, options)
    }

    /// A scheduler running the given profiles (built in code, for example
    /// with [`Profile::builder`]).
    pub fn from_profiles(client: kube::Client, profiles: Vec<Profile>, options: SchedulerOptions) -> Result<Scheduler> {
        if profiles.is_empty() {
            return Err(Error::config("the scheduler needs at least one profile"));
        }
        if options.parallelism == 0 {
            return Err(Error::config("parallelism must be at least 1"));
        }
        let mut names = BTreeSet::new();
        for profile in &profiles {
            if !names.insert(profile.scheduler_name()) {
                return Err(Error::config(format!(
                    "two profiles are named {:?}",
                    profile.scheduler_name()
                )));
            }
        }
        Ok(Scheduler {
            client,
            profiles,
            options,
            dynamic: DynamicPlugins::new(),
            metrics: Metrics::default(),
        })
    }

    /// Enables `plugins` (and whatever is added to them later) in every
    /// profile.
    pub fn with_dynamic_plugins(mut self, plugins: DynamicPlugins) -> Scheduler {
        self.dynamic = plugins;
        self
    }

    /// Records into `metrics` (see [`crate::metrics`]), which may outlive
    /// this scheduler and serve the next.
    pub fn with_metrics(mut self, metrics: Metrics) -> Scheduler {
        self.metrics = metrics;
        self
    }

    /// The scheduler names this scheduler serves.
    pub fn scheduler_names(&self) -> Vec<&str> {
        self.profiles.iter().map(Profile::scheduler_name).collect()
    }

    fn into_shared(self) -> (Arc<Shared>, SchedulerOptions, watch::Receiver<bool>) {
        // Subscribed first: a dynamic plugin changing while the profiles
        // are built is seen by `follow_dynamic_plugins`.
        let dynamic_seen = self.dynamic.subscribe();
        let mut interest: BTreeMap<_, BTreeSet<String>> = BTreeMap::new();
        for profile in &self.profiles {
            for (event, plugins) in profile.event_interest() {
                interest.entry(event).or_default().extend(plugins);
            }
        }
        // Dynamic plugins' rejections are worth retrying on any event.
        let dynamic_names = self.dynamic.names();
        for event in ClusterEvent::ALL {
            interest
                .entry(*event)
                .or_default()
                .extend(dynamic_names.iter().cloned());
        }
        let names = self.profiles.iter().map(|p| p.scheduler_name().to_string()).collect();
        let (synced, synced_rx) = watch::channel(false);
        let base_profiles: BTreeMap<String, Arc<Profile>> = self
            .profiles
            .into_iter()
            .map(|p| (p.scheduler_name().to_string(), Arc::new(p)))
            .collect();
        let shared = Arc::new(Shared {
            recorder: Recorder::new(self.client.clone(), DEFAULT_SCHEDULER_NAME, None),
            client: self.client,
            profiles: Mutex::new(
                base_profiles
                    .iter()
                    .map(|(name, base)| (name.clone(), Arc::new(self.dynamic.apply(base))))
                    .collect(),
            ),
            base_profiles,
            dynamic: self.dynamic,
            dynamic_seen,
            cache: Mutex::new(Cache::new(self.options.queue, names, interest)),
            wake: Notify::new(),
            synced,
            counters: Counters::default(),
            metrics: self.metrics,
        });
        let source: std::sync::Weak<dyn PendingSource> = Arc::downgrade(&shared) as _;
        shared.metrics.follow(source);
        (shared, self.options, synced_rx)
    }

    /// Runs the scheduler until the returned future is dropped.
    pub async fn run(self) {
        let (shared, options, _synced) = self.into_shared();
        run_shared(shared, options).await;
    }

    /// Runs the scheduler on a task of its own; it stops when the handle
    /// is dropped.
    pub fn start(self) -> SchedulerHandle {
        let (shared, options, synced) = self.into_shared();
        let task = tokio::spawn(run_shared(shared.clone(), options));
        SchedulerHandle { task, synced, shared }
    }
}

/// A running scheduler; dropping it stops the scheduler.
pub struct SchedulerHandle {
    task: JoinHandle<()>,
    synced: watch::Receiver<bool>,
    shared: Arc<Shared>,
}

impl fmt::Debug for SchedulerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerHandle")
            .field("synced", &*self.synced.borrow())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl SchedulerHandle {
    /// Waits until the first list of nodes and pods is in.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        let _ = synced.wait_for(|s| *s).await;
    }

    pub fn stats(&self) -> SchedulerStats {
        self.shared.counters.read()
    }

    /// Pods waiting in the queue (active, backing off, unschedulable or in
    /// flight).
    pub fn pending(&self) -> usize {
        self.shared.cache().queue.len()
    }

    /// Stops the scheduler (as dropping the handle does).
    pub fn stop(self) {}
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run_shared(shared: Arc<Shared>, options: SchedulerOptions) {
    let nodes = watch_nodes(Api::all(shared.client.clone()), shared.clone());
    let pods = watch_pods(Api::all(shared.client.clone()), shared.clone());
    let dynamic = follow_dynamic_plugins(shared.clone());
    let scheduling = schedule_loop(shared, options.parallelism);
    tokio::join!(nodes, pods, dynamic, scheduling);
}

/// Keeps the profiles in step with the dynamic plugins.
async fn follow_dynamic_plugins(shared: Arc<Shared>) {
    let mut version = shared.dynamic_seen.clone();
    while version.changed().await.is_ok() {
        shared.dynamic_plugins_changed();
    }
}

/// The reflector's shared copy of `object`, to avoid keeping two.
fn stored<K>(store: &Store<K>, object: K) -> Arc<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .get(&ObjectRef::from_obj(&object))
        .unwrap_or_else(|| Arc::new(object))
}

async fn watch_nodes(api: Api<Node>, shared: Arc<Shared>) {
    let (reader, writer) = reflector::store();
    let mut events = pin!(reflector(writer, watcher(api, watcher::Config::default())).default_backoff());
    while let Some(event) = events.next().await {
        let now = Instant::now();
        match event {
            Ok(watcher::Event::Apply(node)) => {
                let node = stored(&reader, node);
                shared.cache().node_applied(node, now);
            }
            Ok(watcher::Event::Delete(node)) => {
                shared.cache().node_deleted(node.metadata.name.as_deref().unwrap_or(""));
            }
            Ok(watcher::Event::InitDone) => shared.cache().nodes_listed(reader.state(), now),
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
            Err(error) => {
                tracing::warn!(%error, "node watch failed; retrying");
                continue;
            }
        }
        shared.changed();
    }
}

async fn watch_pods(api: Api<Pod>, shared: Arc<Shared>) {
    let (reader, writer) = reflector::store();
    let mut events = pin!(reflector(writer, watcher(api, watcher::Config::default())).default_backoff());
    while let Some(event) = events.next().await {
        let now = Instant::now();
        match event {
            Ok(watcher::Event::Apply(pod)) => {
                let pod = stored(&reader, pod);
                shared.cache().pod_applied(pod, now);
            }
            Ok(watcher::Event::Delete(pod)) => shared.cache().pod_deleted(&pod, now),
            Ok(watcher::Event::InitDone) => shared.cache().pods_listed(reader.state(), now),
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
            Err(error) => {
                tracing::warn!(%error, "pod watch failed; retrying");
                continue;
            }
        }
        shared.changed();
    }
}

/// A tie-breaking seed that differs between pods but not between runs
/// (FNV-1a of the pod's UID), so equal nodes share the load.
fn seed(pod: &Pod) -> u64 {
    pod_uid(pod).bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn schedule_loop(shared: Arc<Shared>, parallelism: usize) {
    let permits = Arc::new(Semaphore::new(parallelism));
    let mut tasks = JoinSet::new();
    // The loop's own copy of the nodes, which cycles read without the lock;
    // and where the next cycle starts looking, so sampled cycles take
    // turns over the nodes.
    let mut view = Snapshot::default();
    let mut next_start = 0;
    loop {
        while tasks.try_join_next().is_some() {}
        let (next, wakeup) = {
            let mut cache = shared.cache();
            if cache.synced() {
                let next = cache.queue.pop(Instant::now());
                (next, cache.queue.next_wakeup())
            } else {
                (None, None)
            }
        };
        let Some(queued) = next else {
            match wakeup {
                Some(at) => {
                    tokio::select! {
                        () = shared.wake.notified() => {}
                        () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                    }
                }
                None => shared.wake.notified().await,
            }
            continue;
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        schedule_one(&shared, queued, permit, &mut tasks, &mut view, &mut next_start);
    }
}

/// One scheduling cycle for `queued`, and the start of its binding or
/// failure report.
fn schedule_one(
    shared: &Arc<Shared>,
    queued: QueuedPod,
    permit: OwnedSemaphorePermit,
    tasks: &mut JoinSet<()>,
    view: &mut Snapshot,
    next_start: &mut usize,
) {
    let pod = queued.pod.clone();
    let Some(profile) = shared.profile(scheduler_name(&pod)) else {
        shared.cache().queue.delete(&queued.key);
        return;
    };
    Counters::bump(&shared.counters.attempts);
    // The cycle's span; the binding it starts is its child.
    let span = tracing::info_span!(
        "scheduler.cycle",
        pod = %queued.key,
        node = tracing::field::Empty,
        nodes = tracing::field::Empty,
    );
    let _entered = span.enter();
    let started = Instant::now();
    let copied = shared.cache().snapshot.sync_into(view);
    let decision = schedule_from(&profile, &pod, view, seed(&pod), *next_start);
    if let Decision::Scheduled(scheduled) = &decision {
        *next_start = (*next_start + scheduled.examined) % view.len().max(1);
        span.record("node", scheduled.node.as_str());
    }
    span.record("nodes", view.len());
    tracing::debug!(
        pod = %queued.key,
        node = decision.node(),
        nodes = view.len(),
        copied,
        elapsed_us = started.elapsed().as_micros() as u64,
        "scheduling cycle"
    );
    let mut cache = shared.cache();
    match decision {
        Decision::Scheduled(mut scheduled) => {
            let status = profile.reserve(&mut scheduled.state, &pod, &scheduled.node);
            if !status.is_success() {
                cache.queue.requeue(&queued, Requeue::Error, Instant::now());
                drop(cache);
                Counters::bump(&shared.counters.errors);
                shared
                    .metrics
                    .attempt(Outcome::Error, profile.scheduler_name(), started.elapsed());
                let message = format!(
                    "running Reserve plugin {:?}: {}",
                    status.plugin().unwrap_or(""),
                    status.message()
                );
                report_failure(shared, &pod, "SchedulerError", message, None, permit, tasks);
                return;
            }
            cache.assume(&pod, &scheduled.node);
            drop(cache);
            tasks.spawn(bind(shared.clone(), profile, queued, scheduled, permit, started));
        }
        Decision::Unschedulable(fit) => {
            cache.queue.requeue(
                &queued,
                Requeue::Unschedulable {
                    rejected_by: fit.rejected_by.clone(),
                },
                Instant::now(),
            );
            drop(cache);
            Counters::bump(&shared.counters.unschedulable);
            shared
                .metrics
                .attempt(Outcome::Unschedulable, profile.scheduler_name(), started.elapsed());
            let message = fit.message();
            tracing::debug!(pod = %queued.key, %message, "pod is unschedulable");
            report_failure(
                shared,
                &pod,
                "Unschedulable",
                message,
                fit.nominated_node,
                permit,
                tasks,
            );
        }
        Decision::Error(status) => {
            cache.queue.requeue(&queued, Requeue::Error, Instant::now());
            drop(cache);
            Counters::bump(&shared.counters.errors);
            shared
                .metrics
                .attempt(Outcome::Error, profile.scheduler_name(), started.elapsed());
            let message = format!(
                "running {:?} plugin: {}",
                status.plugin().unwrap_or(""),
                status.message()
            );
            tracing::warn!(pod = %queued.key, %message, "scheduling cycle failed");
            report_failure(shared, &pod, "SchedulerError", message, None, permit, tasks);
        }
    }
}

/// Binds a scheduled pod, then reports the outcome (the attempt began
/// at `started`).
#[tracing::instrument(skip_all, fields(pod = %queued.key, node = %scheduled.node))]
async fn bind(
    shared: Arc<Shared>,
    profile: Arc<Profile>,
    queued: QueuedPod,
    mut scheduled: Scheduled,
    permit: OwnedSemaphorePermit,
    started: Instant,
) {
    let pod = queued.pod.clone();
    let node = scheduled.node.clone();
    let result = profile.bind(&shared.client, &scheduled.state, &pod, &node).await;
    let outcome = if result.is_ok() {
        Outcome::Scheduled
    } else {
        Outcome::Error
    };
    shared
        .metrics
        .attempt(outcome, profile.scheduler_name(), started.elapsed());
    match result {
        Ok(()) => {
            drop(permit);
            shared.cache().queue.done(&queued.key);
            Counters::bump(&shared.counters.scheduled);
            shared
                .metrics
                .scheduled(queued.attempts.saturating_add(1), queued.queued_at.elapsed());
            tracing::debug!("bound");
            shared.recorder.record(
                &reference(pod.as_ref()),
                Kind::Normal,
                "Scheduled",
                "Binding",
                format!("Successfully assigned {} to {node}", queued.key),
            );
        }
        Err(error) if matches!(error.api_code(), Some(404 | 409)) => {
            // Bound by someone else, being deleted, or gone: nothing to retry.
            drop(permit);
            profile.unreserve(&mut scheduled.state, &pod, &node);
            let mut cache = shared.cache();
            cache.forget(pod_uid(&pod));
            cache.queue.done(&queued.key);
            tracing::debug!(%error, "pod cannot be bound any more");
        }
        Err(error) => {
            profile.unreserve(&mut scheduled.state, &pod, &node);
            {
                let mut cache = shared.cache();
                cache.forget(pod_uid(&pod));
                cache.queue.requeue(&queued, Requeue::Error, Instant::now());
            }
            Counters::bump(&shared.counters.errors);
            tracing::warn!(error = %error_chain(&error), "binding failed; will retry");
            shared.recorder.record(
                &reference(pod.as_ref()),
                Kind::Warning,
                "FailedScheduling",
                "Scheduling",
                format!("Binding rejected: {}", error_chain(&error)),
            );
            drop(permit);
        }
    }
    shared.wake.notify_one();
}

/// An error with its sources, `a: b: c`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Records FailedScheduling and sets `PodScheduled=False` on the pod
/// (unless it already says exactly that).
fn report_failure(
    shared: &Arc<Shared>,
    pod: &Arc<Pod>,
    reason: &'static str,
    message: String,
    nominated_node: Option<String>,
    permit: OwnedSemaphorePermit,
    tasks: &mut JoinSet<()>,
) {
    shared.recorder.record(
        &reference(pod.as_ref()),
        Kind::Warning,
        "FailedScheduling",
        "Scheduling",
        message.clone(),
    );
    let Some(patch) = condition_patch(pod, reason, &message, nominated_node.as_deref()) else {
        return;
    };
    let api: Api<Pod> = Api::namespaced(
        shared.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = pod.metadata.name.clone().unwrap_or_default();
    tasks.spawn(async move {
        let _permit = permit;
        if let Err(error) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            let error = Error::Api {
                action: format!("setting the PodScheduled condition of {name}"),
                source: error,
            };
            tracing::debug!(error = %error_chain(&error), "cannot update the pod's status");
        }
    });
}

/// The status patch that records the failure, or `None` when the pod's
/// condition already says so.
fn condition_patch(pod: &Pod, reason: &str, message: &str, nominated_node: Option<&str>) -> Option<serde_json::Value> {
    let status = pod.status.as_ref();
    let current = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
    let nominated_now = status.and_then(|s| s.nominated_node_name.as_deref());
    let unchanged = current.is_some_and(|c| {
        c.status == "False" && c.reason.as_deref() == Some(reason) && c.message.as_deref() == Some(message)
    });
    if unchanged && (nominated_node.is_none() || nominated_node == nominated_now) {
        return None;
    }
    // The transition time moves only when the status does.
    let transition = current
        .filter(|c| c.status == "False")
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    let condition = PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(transition),
        ..PodCondition::default()
    };
    let mut patch = json!({"status": {"conditions": [condition]}});
    if let Some(node) = nominated_node {
        patch["status"]["nominatedNodeName"] = json!(node);
    }
    Some(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_condition_is_written_only_when_it_changes() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient cpu.",
                "lastTransitionTime": "2024-01-01T00:00:00Z",
            }]},
        }))
        .unwrap();
        assert!(
            condition_patch(
                &pod,
                "Unschedulable",
                "0/1 nodes are available: 1 Insufficient cpu.",
                None
            )
            .is_none()
        );
        let patch = condition_patch(
            &pod,
            "Unschedulable",
            "0/2 nodes are available: 2 Insufficient cpu.",
            None,
        )
        .unwrap();
        let condition = &patch["status"]["conditions"][0];
        assert_eq!(condition["message"], "0/2 nodes are available: 2 Insufficient cpu.");
        assert_eq!(condition["lastTransitionTime"], "2024-01-01T00:00:00Z");
        let fresh: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        let patch = condition_patch(&fresh, "Unschedulable", "m", Some("n1")).unwrap();
        assert_eq!(patch["status"]["nominatedNodeName"], "n1");
        assert_eq!(patch["status"]["conditions"][0]["status"], "False");
    }

    #[test]
    fn seeds_differ_by_pod_and_not_by_run() {
        let a: Pod = serde_json::from_value(json!({"metadata": {"uid": "a"}})).unwrap();
        let b: Pod = serde_json::from_value(json!({"metadata": {"uid": "b"}})).unwrap();
        assert_ne!(seed(&a), seed(&b));
        assert_eq!(seed(&a), 0xaf63_dc4c_8601_ec8c);
    }
}
