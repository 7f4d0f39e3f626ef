//! The pod manager: watches the pods bound to this node (kube-runtime's
//! watcher with `spec.nodeName=<node>`) and keeps one [`Worker`] per pod
//! uid, handing each the latest version of its pod.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use super::Shared;
use super::worker::Worker;

struct Entry {
    updates: watch::Sender<Option<Pod>>,
    task: tokio::task::JoinHandle<()>,
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Runs until the task is aborted.
pub(super) async fn manage(shared: Arc<Shared>) {
    let pods: Api<Pod> = Api::all(shared.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.config.node_name));
    let mut events = watcher::watcher(pods, config).default_backoff().boxed();
    let mut workers: HashMap<String, Entry> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    let mut swept = false;
    while let Some(event) = events.next().await {
        workers.retain(|_, entry| !entry.task.is_finished());
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "pod watch failed; retrying");
                continue;
            }
        };
        match event {
            Event::Init => listed.clear(),
            Event::InitApply(pod) => {
                listed.insert(pod.metadata.uid.clone().unwrap_or_default());
                apply(&shared, &mut workers, pod).await;
            }
            Event::Apply(pod) => apply(&shared, &mut workers, pod).await,
            Event::InitDone => {
                // Every pod had its chance to claim what an earlier agent
                // left: the rest goes.
                if !swept {
                    swept = true;
                    tokio::spawn(super::adopt::sweep(shared.clone()));
                }
                for (uid, entry) in &workers {
                    if !listed.contains(uid) {
                        entry.updates.send_replace(None);
                    }
                }
            }
            Event::Delete(pod) => {
                if let Some(entry) = workers.get(pod.metadata.uid.as_deref().unwrap_or_default()) {
                    entry.updates.send_replace(None);
                }
            }
        }
    }
}

async fn apply(shared: &Arc<Shared>, workers: &mut HashMap<String, Entry>, pod: Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if let Some(entry) = workers.get(&uid) {
        entry.updates.send_replace(Some(pod));
        return;
    }
    // A pod this agent has no worker for (it restarted) that already ran
    // to an end is left as it is; if it is being deleted, nothing runs
    // here, so it is released at once.
    if is_terminal(&pod) && pod.metadata.deletion_timestamp.is_none() {
        return;
    }
    if pod.metadata.deletion_timestamp.is_some() && is_terminal(&pod) {
        release(shared, &pod).await;
        return;
    }
    let adoption = shared.leftovers.lock().unwrap_or_else(|p| p.into_inner()).claim(&pod);
    let (updates, receiver) = watch::channel(Some(pod.clone()));
    let worker = Worker::new(shared.clone(), pod, adoption);
    let task = tokio::spawn(worker.run(receiver));
    workers.insert(uid, Entry { updates, task });
}

async fn release(shared: &Shared, pod: &Pod) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    if let Err(error) = api.delete(&name, &params).await {
        tracing::debug!(%error, pod = %name, "cannot release a finished pod");
    }
}
