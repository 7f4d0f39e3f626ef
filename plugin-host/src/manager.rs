//! The plugin manager: follows WasmPlugin objects, loads each into the
//! scheduler or the admission chain, and reports on it in its status.
//!
//! ```text
//!  watch WasmPlugins ─► desired objects ─► loader (one load at a time)
//!                                            │ fetch (inline / OCI pull) → compile once per digest
//!                                            │ → check the stage's world → first instance + init(config)
//!                                            ▼
//!                    swap into DynamicPlugins (scheduler) or Admission (API server), by name
//!  every second: status ◄── metrics of the serving version, load errors
//! ```
//!
//! A new generation is loaded and checked completely before it replaces
//! the serving one, so a broken update leaves the old version serving
//! (and says so in `Degraded`). Deleting the object removes the plugin.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use skiff_api::admission::Admission;
use skiff_image::credentials::Keyring;
use skiff_image::{ImageStore, is_loopback_reference};
use skiff_scheduler::DynamicPlugins;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::admission::{NamespaceLabels, WasmAdmissionPlugin};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::runtime::PluginRuntime;
use crate::scheduling::WasmSchedulerPlugin;
use crate::spec::{Limits, Stage, WasmPlugin};
use crate::status::{Facts, status};

/// The status fields that may be absent, in their JSON spelling.
const OPTIONAL_STATUS_FIELDS: &[&str] = &[
    "observedGeneration",
    "loadedGeneration",
    "digest",
    "loadError",
    "lastError",
    "latencyP50Microseconds",
    "latencyP99Microseconds",
];

/// How often call counts and latency are written to the status.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Where loaded plugins go. A server that runs no scheduler leaves
/// `scheduler` unset; Filter and Score plugins then fail to load, saying
/// so.
#[derive(Clone, Debug, Default)]
pub struct Sinks {
    pub admission: Option<Admission>,
    pub scheduler: Option<DynamicPlugins>,
}

/// The manager's settings.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// Compiled components and pulled images live under it.
    pub data_dir: PathBuf,
    pub sinks: Sinks,
}

/// The version of a plugin that serves.
struct Serving {
    generation: i64,
    digest: String,
    stage: Stage,
    metrics: Arc<Metrics>,
}

/// What the manager keeps per plugin name.
#[derive(Default)]
struct Record {
    /// The object as last seen; `None` once deleted.
    desired: Option<WasmPlugin>,
    serving: Option<Serving>,
    /// The newest generation tried, and why it was refused.
    tried: Option<(String, i64)>,
    load_error: Option<String>,
    /// The status last written, to write only changes.
    reported: Option<crate::spec::WasmPluginStatus>,
}

struct Inner {
    client: kube::Client,
    runtime: PluginRuntime,
    images: ImageStore,
    sinks: Sinks,
    namespaces: NamespaceLabels,
    records: Mutex<HashMap<String, Record>>,
}

/// Loads and reports on WasmPlugins until dropped.
#[derive(Debug)]
pub struct PluginManager {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PluginManager {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PluginManager {
    /// Starts following WasmPlugins with `client`.
    pub fn start(client: kube::Client, config: ManagerConfig) -> Result<PluginManager> {
        let runtime = PluginRuntime::new(config.data_dir.join("compiled"))?;
        let images = ImageStore::open(config.data_dir.join("images"))
            .map_err(|e| Error::Engine(format!("cannot open the plugin image store: {e}")))?;
        let inner = Arc::new(Inner {
            client,
            runtime,
            images,
            sinks: config.sinks,
            namespaces: NamespaceLabels::default(),
            records: Mutex::default(),
        });
        let (wake, woken) = mpsc::unbounded_channel();
        let mut tasks = vec![
            tokio::spawn(watch_plugins(inner.clone(), wake)),
            tokio::spawn(load_loop(inner.clone(), woken)),
            tokio::spawn(report_loop(inner.clone())),
        ];
        if inner.sinks.admission.is_some() {
            tasks.push(tokio::spawn(watch_namespaces(inner.clone())));
        }
        Ok(PluginManager { tasks })
    }
}

impl Inner {
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn watch_plugins(inner: Arc<Inner>, wake: mpsc::UnboundedSender<String>) {
    let api: Api<WasmPlugin> = Api::all(inner.client.clone());
    let mut events = pin!(watcher(api, watcher::Config::default()).default_backoff());
    let mut listed = HashSet::new();
    while let Some(event) = events.next().await {
        let changed: Vec<String> = match event {
            Ok(watcher::Event::Apply(plugin) | watcher::Event::InitApply(plugin)) => {
                let name = plugin.name_any();
                listed.insert(name.clone());
                inner.records().entry(name.clone()).or_default().desired = Some(plugin);
                vec![name]
            }
            Ok(watcher::Event::Delete(plugin)) => {
                let name = plugin.name_any();
                if let Some(record) = inner.records().get_mut(&name) {
                    record.desired = None;
                }
                vec![name]
            }
            Ok(watcher::Event::Init) => {
                listed.clear();
                Vec::new()
            }
            // Whatever was not listed again is gone.
            Ok(watcher::Event::InitDone) => {
                let mut records = inner.records();
                let gone: Vec<String> = records.keys().filter(|n| !listed.contains(*n)).cloned().collect();
                for name in &gone {
                    if let Some(record) = records.get_mut(name) {
                        record.desired = None;
                    }
                }
                gone
            }
            Err(error) => {
                tracing::warn!(%error, "WasmPlugin watch failed; retrying");
                Vec::new()
            }
        };
        for name in changed {
            let _ = wake.send(name);
        }
    }
}

async fn watch_namespaces(inner: Arc<Inner>) {
    let api: Api<Namespace> = Api::all(inner.client.clone());
    let mut events = pin!(watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(ns) | watcher::Event::InitApply(ns)) => {
                inner.namespaces.set(&ns.name_any(), ns.labels().clone());
            }
            Ok(watcher::Event::Delete(ns)) => inner.namespaces.remove(&ns.name_any()),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "namespace watch failed; retrying"),
        }
    }
}

/// What the loader should do for a plugin, decided under the lock.
enum Step {
    Nothing,
    Unload,
    Load(Box<WasmPlugin>),
}

fn next_step(record: &Record) -> Step {
    let Some(plugin) = &record.desired else {
        return Step::Unload;
    };
    let key = (
        plugin.uid().unwrap_or_default(),
        plugin.metadata.generation.unwrap_or(0),
    );
    if record.tried.as_ref() == Some(&key) {
        Step::Nothing
    } else {
        Step::Load(Box::new(plugin.clone()))
    }
}

async fn load_loop(inner: Arc<Inner>, mut woken: mpsc::UnboundedReceiver<String>) {
    while let Some(name) = woken.recv().await {
        let step = match inner.records().get(&name) {
            Some(record) => next_step(record),
            None => Step::Nothing,
        };
        match step {
            Step::Nothing => {}
            Step::Unload => unload(&inner, &name),
            Step::Load(plugin) => {
                let generation = plugin.metadata.generation.unwrap_or(0);
                let uid = plugin.uid().unwrap_or_default();
                let loaded = load(&inner, &name, &plugin).await;
                let mut records = inner.records();
                let Some(record) = records.get_mut(&name) else { continue };
                // Deleted or changed while loading: the newer event is
                // queued and decides.
                let still_wanted = record.desired.as_ref().is_some_and(|d| {
                    d.uid().unwrap_or_default() == uid && d.metadata.generation.unwrap_or(0) == generation
                });
                if !still_wanted {
                    continue;
                }
                record.tried = Some((uid, generation));
                match loaded {
                    Ok(serving) => {
                        tracing::info!(plugin = %name, generation, digest = %serving.digest, "plugin loaded");
                        if let Some(old) = &record.serving {
                            retire(&inner.sinks, &name, old.stage, Some(serving.stage));
                        }
                        record.serving = Some(serving);
                        record.load_error = None;
                    }
                    Err(error) => {
                        tracing::warn!(plugin = %name, generation, %error, "plugin not loaded");
                        record.load_error = Some(error.to_string());
                    }
                }
            }
        }
        // Report the outcome at once rather than at the next tick.
        report(&inner).await;
    }
}

/// Takes the version serving at stage `old` out, unless the new version
/// (at stage `new`) already replaced it in place.
fn retire(sinks: &Sinks, name: &str, old: Stage, new: Option<Stage>) {
    if new == Some(old) {
        return;
    }
    match old {
        Stage::Validate => sinks.admission.iter().for_each(|a| a.remove_validating(name)),
        Stage::Mutate => sinks.admission.iter().for_each(|a| a.remove_mutating(name)),
        // Filter and Score share the scheduler's slot for the name.
        Stage::Filter | Stage::Score if new.is_some_and(|s| !s.is_admission()) => {}
        Stage::Filter | Stage::Score => sinks.scheduler.iter().for_each(|s| s.remove(name)),
    }
}

fn unload(inner: &Inner, name: &str) {
    let removed = inner.records().remove(name);
    if let Some(serving) = removed.and_then(|r| r.serving) {
        retire(&inner.sinks, name, serving.stage, None);
        tracing::info!(plugin = %name, "plugin unloaded");
    }
}

/// Fetches, compiles, checks and starts the plugin's new version, then
/// swaps it in; the serving version is untouched on any failure.
async fn load(inner: &Arc<Inner>, name: &str, plugin: &WasmPlugin) -> Result<Serving> {
    let spec = &plugin.spec;
    let problems = spec.problems();
    if !problems.is_empty() {
        return Err(Error::Spec(problems.join("; ")));
    }
    let stage = spec.stage;
    if stage.is_admission() && inner.sinks.admission.is_none() {
        return Err(Error::Spec(
            "this server has no admission chain to load the plugin into".into(),
        ));
    }
    if !stage.is_admission() && inner.sinks.scheduler.is_none() {
        return Err(Error::Spec(
            "this server runs no scheduler to load the plugin into".into(),
        ));
    }
    let limits = Limits::from_spec(spec.limits.as_ref()).map_err(Error::Spec)?;
    let bytes = fetch(inner, spec).await?;
    let digest = skiff_wasm::cache::digest(&bytes);
    if let Some(expected) = spec.component.digest.as_ref().filter(|expected| **expected != digest) {
        return Err(Error::DigestMismatch {
            expected: expected.clone(),
            actual: digest,
        });
    }
    let runtime = inner.runtime.clone();
    let config = spec.config_json();
    let owned_name = name.to_string();
    let (digest, instance) =
        tokio::task::spawn_blocking(move || runtime.instantiate(&owned_name, stage, &bytes, config, limits))
            .await
            .map_err(|e| Error::Engine(format!("the loading task failed: {e}")))??;
    let metrics = Arc::new(Metrics::default());
    match stage {
        Stage::Filter | Stage::Score => {
            let plugin =
                WasmSchedulerPlugin::new(name.to_string(), stage, spec.failure_policy, instance, metrics.clone());
            if let Some(scheduler) = &inner.sinks.scheduler {
                scheduler.set(Arc::new(plugin), spec.weight());
            }
        }
        Stage::Validate | Stage::Mutate => {
            let plugin = Arc::new(WasmAdmissionPlugin::new(
                name.to_string(),
                stage,
                spec.failure_policy,
                spec.match_rules.clone().unwrap_or_default(),
                inner.namespaces.clone(),
                instance,
                metrics.clone(),
            ));
            if let Some(admission) = &inner.sinks.admission {
                // Replaced in place: a write sees the old version or the new.
                if stage == Stage::Validate {
                    admission.add_validating(plugin);
                } else {
                    admission.add_mutating(plugin);
                }
            }
        }
    }
    Ok(Serving {
        generation: plugin.metadata.generation.unwrap_or(0),
        digest,
        stage,
        metrics,
    })
}

/// Where the pull secrets WasmPlugins name live.
const PULL_SECRET_NAMESPACE: &str = "kube-system";

async fn fetch(inner: &Inner, spec: &crate::spec::WasmPluginSpec) -> Result<Vec<u8>> {
    if let Some(inline) = &spec.component.inline {
        let compact: String = inline.split_whitespace().collect();
        return base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| Error::Spec(format!("component.inline is not base64: {e}")));
    }
    let Some(reference) = &spec.component.oci else {
        return Err(Error::Spec("component: set one of oci and inline".into()));
    };
    let mut keyring = Keyring::default();
    if let Some(name) = &spec.component.pull_secret {
        let secrets: Api<Secret> = Api::namespaced(inner.client.clone(), PULL_SECRET_NAMESPACE);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|e| {
                Error::Fetch(format!(
                    "cannot read the pull secret {PULL_SECRET_NAMESPACE}/{name}: {e}"
                ))
            })?
            .ok_or_else(|| Error::Fetch(format!("the pull secret {PULL_SECRET_NAMESPACE}/{name} does not exist")))?;
        let data = secret.data.unwrap_or_default();
        keyring
            .add_secret(secret.type_.as_deref(), |key| data.get(key).map(|v| v.0.as_slice()))
            .map_err(|e| Error::Spec(format!("the pull secret {PULL_SECRET_NAMESPACE}/{name}: {e}")))?;
    }
    let image = inner
        .images
        .pull_with(reference, is_loopback_reference(reference), &keyring)
        .await
        .map_err(|e| Error::Fetch(format!("{reference}: {:#}", anyhow::Error::new(e))))?;
    let path = image.wasm_component_path().ok_or_else(|| {
        Error::Fetch(format!(
            "{reference} is a container image, not a Wasm component artifact"
        ))
    })?;
    tokio::fs::read(&path)
        .await
        .map_err(|e| Error::Fetch(format!("{}: {e}", path.display())))
}

async fn report_loop(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        report(&inner).await;
    }
}

/// Writes the status of every plugin whose status changed.
async fn report(inner: &Arc<Inner>) {
    let due: Vec<(String, crate::spec::WasmPluginStatus)> = {
        let records = inner.records();
        records
            .iter()
            .filter_map(|(name, record)| {
                let desired = record.desired.as_ref()?;
                let facts = Facts {
                    observed_generation: record.tried.as_ref().map(|(_, g)| *g),
                    serving: record.serving.as_ref().map(|s| (s.generation, s.digest.clone())),
                    load_error: record.load_error.clone(),
                    metrics: record
                        .serving
                        .as_ref()
                        .map(|s| s.metrics.snapshot())
                        .unwrap_or_default(),
                };
                let previous = desired
                    .status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or_default();
                let previous = record
                    .reported
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or(previous);
                let status = status(&facts, previous);
                (record.reported.as_ref() != Some(&status)).then(|| (name.clone(), status))
            })
            .collect()
    };
    let api: Api<WasmPlugin> = Api::all(inner.client.clone());
    for (name, status) in due {
        // Fields the new status leaves out are nulled: a merge patch keeps
        // what it does not mention.
        let mut value = match serde_json::to_value(&status) {
            Ok(value) => value,
            Err(error) => {
                tracing::error!(plugin = %name, %error, "cannot encode the plugin's status");
                continue;
            }
        };
        if let Some(fields) = value.as_object_mut() {
            for field in OPTIONAL_STATUS_FIELDS {
                fields.entry(*field).or_insert(serde_json::Value::Null);
            }
        }
        let patch = serde_json::json!({ "status": value });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                if let Some(record) = inner.records().get_mut(&name) {
                    record.reported = Some(status);
                }
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(error) => tracing::warn!(plugin = %name, %error, "cannot write the plugin's status"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::WasmPluginStatus;

    #[test]
    fn the_optional_status_fields_are_all_listed() {
        let full = WasmPluginStatus {
            observed_generation: Some(1),
            conditions: Vec::new(),
            loaded_generation: Some(1),
            digest: Some("sha256:ab".into()),
            load_error: Some("e".into()),
            calls: 1,
            errors: 1,
            last_error: Some("e".into()),
            latency_p50_microseconds: Some(1),
            latency_p99_microseconds: Some(1),
        };
        let keys = |status: &WasmPluginStatus| -> Vec<String> {
            let value = serde_json::to_value(status).unwrap();
            value.as_object().unwrap().keys().cloned().collect()
        };
        let always = keys(&WasmPluginStatus::default());
        let mut optional: Vec<String> = keys(&full).into_iter().filter(|k| !always.contains(k)).collect();
        optional.sort();
        let mut listed: Vec<String> = OPTIONAL_STATUS_FIELDS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(optional, listed);
    }
}
