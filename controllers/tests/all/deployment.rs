//! Deployments roll ReplicaSets within maxSurge/maxUnavailable, keep
//! revisions, recreate, and report their conditions.

use std::cell::Cell;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{BROKEN_IMAGE, Cluster, is_ready, pods_of, until};

fn deployment(name: &str, replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }))
    .unwrap()
}

async fn sets_of(client: &kube::Client, app: &str) -> Vec<ReplicaSet> {
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    sets.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

fn condition(d: &Deployment, kind: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

fn revision(set: &ReplicaSet) -> String {
    set.annotations()
        .get("deployment.kubernetes.io/revision")
        .cloned()
        .unwrap_or_default()
}

fn image_of(pod: &Pod) -> String {
    pod.spec.as_ref().unwrap().containers[0].image.clone().unwrap()
}

/// Waits until the rollout of generation `generation` is complete, as
/// `kubectl rollout status` decides it.
async fn rolled_out(api: &Api<Deployment>, name: &str, replicas: i32) -> Deployment {
    until("the rollout to complete", || async {
        let d = api.get(name).await.unwrap();
        let s = d.status.clone()?;
        let done = s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(replicas)
            && s.replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
            && condition(&d, "Progressing").is_some_and(|(_, r)| r == "NewReplicaSetAvailable");
        done.then_some(d)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_keeps_within_surge_and_unavailability_and_can_go_back() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    api.create(
        &PostParams::default(),
        &deployment("web", 4, "example.invalid/web:1", strategy),
    )
    .await
    .unwrap();
    let d = rolled_out(&api, "web", 4).await;
    assert_eq!(
        condition(&d, "Available"),
        Some(("True".into(), "MinimumReplicasAvailable".into()))
    );
    let first = sets_of(&client, "web").await;
    assert_eq!(first.len(), 1);
    assert_eq!(revision(&first[0]), "1");
    let hash = first[0].labels()["pod-template-hash"].clone();
    assert_eq!(first[0].name_any(), format!("web-{hash}"));
    assert!(
        pods_of(&client, "default", "web")
            .await
            .iter()
            .all(|p| p.labels()["pod-template-hash"] == hash)
    );

    // Roll to a new image, watching the bounds the whole time.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "example.invalid/web:2"}]}}}}),
        ),
    )
    .await
    .unwrap();
    let most_pods = Cell::new(0);
    let least_ready = Cell::new(i32::MAX);
    until("the rollout to finish", || async {
        let sets = sets_of(&client, "web").await;
        let planned: i32 = sets.iter().map(|s| s.spec.as_ref().unwrap().replicas.unwrap()).sum();
        most_pods.set(most_pods.get().max(planned));
        let ready = pods_of(&client, "default", "web")
            .await
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
            .count();
        least_ready.set(least_ready.get().min(i32::try_from(ready).unwrap()));
        let d = api.get("web").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        (s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(4)
            && s.replicas == Some(4)
            && s.available_replicas == Some(4))
        .then_some(())
    })
    .await;
    let (most_pods, least_ready) = (most_pods.get(), least_ready.get());
    assert!(
        most_pods <= 5,
        "never more than replicas + maxSurge planned: {most_pods}"
    );
    assert!(
        least_ready >= 3,
        "never fewer than replicas - maxUnavailable ready: {least_ready}"
    );
    let d = rolled_out(&api, "web", 4).await;
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "2");
    let sets = sets_of(&client, "web").await;
    let by_revision: BTreeMap<String, i32> = sets
        .iter()
        .map(|s| (revision(s), s.spec.as_ref().unwrap().replicas.unwrap()))
        .collect();
    assert_eq!(by_revision, BTreeMap::from([("1".into(), 0), ("2".into(), 4)]));
    until("only new pods", || async {
        let p = pods_of(&client, "default", "web").await;
        (p.len() == 4 && p.iter().all(|p| image_of(p) == "example.invalid/web:2")).then_some(())
    })
    .await;

    // Going back to the first template reuses its set, at revision 3.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "example.invalid/web:1"}]}}}}),
        ),
    )
    .await
    .unwrap();
    rolled_out(&api, "web", 4).await;
    let sets = sets_of(&client, "web").await;
    assert_eq!(sets.len(), 2, "no third set");
    let back = sets.iter().find(|s| s.labels()["pod-template-hash"] == hash).unwrap();
    assert_eq!(revision(back), "3");
    assert_eq!(back.spec.as_ref().unwrap().replicas, Some(4));

    // Scaling goes through the new set.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 7}})),
    )
    .await
    .unwrap();
    rolled_out(&api, "web", 7).await;
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
    until("no pods", || async {
        pods_of(&client, "default", "web").await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_removes_every_old_pod_before_starting_new_ones() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("db", 3, "example.invalid/db:1", json!({"type": "Recreate"})),
    )
    .await
    .unwrap();
    rolled_out(&api, "db", 3).await;
    api.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "example.invalid/db:2"}]}}}}),
        ),
    )
    .await
    .unwrap();
    until("the recreate to finish", || async {
        let pods = pods_of(&client, "default", "db").await;
        let images: std::collections::BTreeSet<String> = pods.iter().map(image_of).collect();
        assert!(images.len() <= 1, "old and new pods never run together: {images:?}");
        (pods.len() == 3 && images.contains("example.invalid/db:2")).then_some(())
    })
    .await;
    rolled_out(&api, "db", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_cannot_progress_exceeds_its_deadline() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("stuck", 2, "example.invalid/ok:1", json!({}));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    api.create(&PostParams::default(), &d).await.unwrap();
    rolled_out(&api, "stuck", 2).await;
    api.patch(
        "stuck",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": BROKEN_IMAGE}]}}}})),
    )
    .await
    .unwrap();
    let d = until("ProgressDeadlineExceeded", || async {
        let d = api.get("stuck").await.unwrap();
        (condition(&d, "Progressing") == Some(("False".into(), "ProgressDeadlineExceeded".into()))).then_some(d)
    })
    .await;
    // maxUnavailable 25% of 2 rounds down to 0: both old pods still serve.
    assert_eq!(d.status.as_ref().unwrap().available_replicas, Some(2));
    let ready_old = pods_of(&client, "default", "stuck")
        .await
        .iter()
        .filter(|p| image_of(p) == "example.invalid/ok:1" && is_ready(p))
        .count();
    assert_eq!(ready_old, 2);
}
