//! StatefulSets create their members in order under stable names, scale
//! down from the top, and roll a new template from the top down.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{BROKEN_IMAGE, Cluster, is_ready, pods_of, until};

const REVISION: &str = "controller-revision-hash";

fn stateful_set(name: &str, replicas: i32, image: &str, extra: serde_json::Value) -> StatefulSet {
    let mut spec = json!({
        "replicas": replicas,
        "serviceName": name,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": image}]},
        },
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// What happened to the set's pods, in the order the API says it did.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    /// A pod appeared, with the names of the pods that were ready then.
    Created(String, BTreeSet<String>),
    Deleted(String),
}

/// Records, from a watch, each pod of `app` appearing and going.
fn watch_pods(client: &kube::Client, app: &str) -> (Arc<Mutex<Vec<Seen>>>, tokio::task::JoinHandle<()>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let config = watcher::Config::default().labels(&format!("app={app}"));
    let writer = log.clone();
    let task = tokio::spawn(async move {
        let mut uids: std::collections::BTreeMap<String, String> = Default::default();
        let mut ready = BTreeSet::new();
        let mut events = watcher(pods, config).boxed();
        while let Some(event) = events.next().await {
            let (pod, gone) = match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => (pod, false),
                Ok(watcher::Event::Delete(pod)) => (pod, true),
                _ => continue,
            };
            let name = pod.name_any();
            let uid = pod.uid().unwrap_or_default();
            if gone {
                uids.remove(&name);
                ready.remove(&name);
                writer.lock().unwrap().push(Seen::Deleted(name));
                continue;
            }
            if uids.get(&name) != Some(&uid) {
                uids.insert(name.clone(), uid);
                ready.remove(&name);
                writer.lock().unwrap().push(Seen::Created(name.clone(), ready.clone()));
            }
            if is_ready(&pod) && pod.metadata.deletion_timestamp.is_none() {
                ready.insert(name);
            } else {
                ready.remove(&name);
            }
        }
    });
    (log, task)
}

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn created(name: &str, ready: &[&str]) -> Seen {
    Seen::Created(name.into(), names(ready))
}

fn deleted(name: &str) -> Seen {
    Seen::Deleted(name.into())
}

fn revision(pod: &Pod) -> String {
    pod.labels().get(REVISION).cloned().unwrap_or_default()
}

/// Waits until every member is ready at the update revision and the
/// status says so; returns the set.
async fn settled(api: &Api<StatefulSet>, name: &str, replicas: i32) -> StatefulSet {
    until("the set to settle", || async {
        let set = api.get(name).await.unwrap();
        let s = set.status.clone()?;
        let done = s.observed_generation >= set.metadata.generation
            && s.replicas == replicas
            && s.ready_replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
            && s.updated_replicas == Some(replicas)
            && s.current_replicas == Some(replicas)
            && s.current_revision.is_some()
            && s.current_revision == s.update_revision;
        done.then_some(set)
    })
    .await
}

/// Has the controller reconcile set `name` once more and waits until it
/// has: bumps the set's generation through a field the controller
/// ignores (`revisionHistoryLimit`; skiff keeps no ControllerRevisions)
/// and waits for the status to report that generation. A reconcile
/// writes the status after acting on the pods, so by then the
/// controller has done whatever it was going to do with the pods it
/// listed, which were at least as new as when this was called.
async fn reconciled_again(api: &Api<StatefulSet>, name: &str) {
    let set = api.get(name).await.unwrap();
    let limit = set.spec.and_then(|s| s.revision_history_limit).unwrap_or(10);
    let bumped = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"revisionHistoryLimit": limit + 1}})),
        )
        .await
        .unwrap();
    let generation = bumped.metadata.generation;
    assert!(generation > set.metadata.generation, "the patch moved the generation");
    until(&format!("{name}'s status at generation {generation:?}"), || async {
        let s = api.get(name).await.unwrap().status?;
        (s.observed_generation >= generation).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_created_in_order_removed_from_the_top_and_rolled_from_the_top() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let (log, watch) = watch_pods(&client, "web");
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &stateful_set("web", 3, "example.invalid/web:1", json!({})),
    )
    .await
    .unwrap();

    // Each member appears only once all below it are ready.
    let set = settled(&api, "web", 3).await;
    assert_eq!(
        log.lock().unwrap().clone(),
        [
            created("web-0", &[]),
            created("web-1", &["web-0"]),
            created("web-2", &["web-0", "web-1"])
        ]
    );
    let first_revision = set.status.unwrap().update_revision.unwrap();
    assert!(first_revision.starts_with("web-"), "{first_revision}");
    for (ordinal, pod) in ["web-0", "web-1", "web-2"].iter().enumerate() {
        let pod = pods.get(pod).await.unwrap();
        let labels = pod.labels();
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], pod.name_any());
        assert_eq!(labels["apps.kubernetes.io/pod-index"], ordinal.to_string());
        assert_eq!(labels[REVISION], first_revision);
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(pod.name_any().as_str()));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        assert_eq!(pod.owner_references()[0].kind, "StatefulSet");
    }
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    until("a SuccessfulCreate event", || async {
        let list = events.list(&ListParams::default()).await.unwrap();
        list.items
            .iter()
            .any(|e| {
                e.involved_object.name.as_deref() == Some("web")
                    && e.reason.as_deref() == Some("SuccessfulCreate")
                    && e.message.as_deref() == Some("create Pod web-0 in StatefulSet web successful")
            })
            .then_some(())
    })
    .await;

    // Scaling down removes the highest ordinal first; scaling up again
    // brings them back in order, under the same names.
    let scale = |replicas: i32| {
        let api = api.clone();
        async move {
            api.patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .unwrap();
        }
    };
    log.lock().unwrap().clear();
    scale(1).await;
    settled(&api, "web", 1).await;
    assert_eq!(log.lock().unwrap().clone(), [deleted("web-2"), deleted("web-1")]);
    log.lock().unwrap().clear();
    scale(3).await;
    settled(&api, "web", 3).await;
    assert_eq!(
        log.lock().unwrap().clone(),
        [created("web-1", &["web-0"]), created("web-2", &["web-0", "web-1"])]
    );

    // A new template with a partition: only the members at or above it
    // roll, the highest first.
    log.lock().unwrap().clear();
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            "template": {"spec": {"containers": [{"name": "c", "image": "example.invalid/web:2"}]}},
        }})),
    )
    .await
    .unwrap();
    let set = until("web-2 updated", || async {
        let set = api.get("web").await.unwrap();
        let s = set.status.clone()?;
        (s.observed_generation >= set.metadata.generation
            && s.updated_replicas == Some(1)
            && s.ready_replicas == Some(3))
        .then_some(set)
    })
    .await;
    let status = set.status.unwrap();
    let second_revision = status.update_revision.unwrap();
    assert_ne!(second_revision, first_revision);
    assert_eq!(status.current_revision.as_deref(), Some(first_revision.as_str()));
    assert_eq!(status.current_replicas, Some(2));
    let revisions = |pods: Vec<Pod>| {
        let mut r: Vec<(String, String)> = pods.iter().map(|p| (p.name_any(), revision(p))).collect();
        r.sort();
        r
    };
    // Nothing else rolls while the partition holds, even once the
    // controller has seen web-2 updated and ready and reconciled again.
    reconciled_again(&api, "web").await;
    assert_eq!(
        revisions(pods_of(&client, "default", "web").await),
        [
            ("web-0".to_string(), first_revision.clone()),
            ("web-1".to_string(), first_revision.clone()),
            ("web-2".to_string(), second_revision.clone())
        ]
    );
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await
    .unwrap();
    settled(&api, "web", 3).await;
    assert_eq!(
        log.lock().unwrap().clone(),
        [
            deleted("web-2"),
            created("web-2", &["web-0", "web-1"]),
            deleted("web-1"),
            created("web-1", &["web-0", "web-2"]),
            deleted("web-0"),
            created("web-0", &["web-1", "web-2"]),
        ]
    );
    assert!(
        pods_of(&client, "default", "web")
            .await
            .iter()
            .all(|p| revision(p) == second_revision)
    );

    // A failed member is replaced under its name.
    let old_uid = pods.get("web-1").await.unwrap().uid().unwrap();
    pods.patch_status(
        "web-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed"}})),
    )
    .await
    .unwrap();
    until("web-1 replaced", || async {
        let pod = pods.get("web-1").await.ok()?;
        (pod.uid().unwrap() != old_uid && is_ready(&pod)).then_some(())
    })
    .await;
    settled(&api, "web", 3).await;
    watch.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_sets_wait_for_readiness_and_parallel_ones_do_not() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &stateful_set("stuck", 3, BROKEN_IMAGE, json!({})),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &stateful_set("burst", 3, BROKEN_IMAGE, json!({"podManagementPolicy": "Parallel"})),
    )
    .await
    .unwrap();
    // Claims for volumes the API does not serve: no pods, and a warning.
    let mut claims = stateful_set("disks", 1, "example.invalid/db:1", json!({}));
    claims.spec.as_mut().unwrap().volume_claim_templates = Some(vec![
        serde_json::from_value(json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}))
            .unwrap(),
    ]);
    api.create(&PostParams::default(), &claims).await.unwrap();

    until("every parallel member, none ready", || async {
        let set = api.get("burst").await.unwrap();
        let s = set.status?;
        (s.replicas == 3 && s.ready_replicas == Some(0)).then_some(())
    })
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    until("a warning about the claims", || async {
        let list = events.list(&ListParams::default()).await.unwrap();
        list.items
            .iter()
            .any(|e| {
                e.involved_object.name.as_deref() == Some("disks")
                    && e.reason.as_deref() == Some("FailedCreate")
                    && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;
    until("the first ordered member", || async {
        let s = api.get("stuck").await.unwrap().status?;
        (s.replicas == 1).then_some(())
    })
    .await;
    // No second member, even once the controller has seen the first
    // running and not ready and reconciled again; no pods for the claims,
    // even once it has reconciled them again.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    until("stuck-0 running and not ready", || async {
        let pod = pods.get("stuck-0").await.unwrap();
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        (running && !is_ready(&pod)).then_some(())
    })
    .await;
    reconciled_again(&api, "stuck").await;
    reconciled_again(&api, "disks").await;
    let members: Vec<String> = pods_of(&client, "default", "stuck")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(members, ["stuck-0"]);
    assert!(pods_of(&client, "default", "disks").await.is_empty());
}
