//! ReplicaSets keep their replicas, adopt orphans and report status.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{Cluster, is_ready, pods_of, until};

fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1"}]},
            },
        },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_keeps_its_replicas_through_deletions_and_scaling() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rs = sets
        .create(&PostParams::default(), &replica_set("web", 3))
        .await
        .unwrap();
    let uid = rs.metadata.uid.clone().unwrap();

    let created = until("three ready pods", || async {
        let p = pods_of(&client, "default", "web").await;
        (p.len() == 3 && p.iter().all(is_ready)).then_some(p)
    })
    .await;
    for pod in &created {
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("ReplicaSet", uid.as_str(), Some(true))
        );
        assert!(pod.name_any().starts_with("web-"));
    }
    until("status counts them", || async {
        let s = sets.get("web").await.unwrap().status?;
        (s.replicas == 3 && s.ready_replicas == Some(3) && s.available_replicas == Some(3)).then_some(())
    })
    .await;

    // A deleted pod is replaced.
    let victim = created[0].name_any();
    pods.delete(&victim, &DeleteParams::default()).await.unwrap();
    until("a replacement", || async {
        let p = pods_of(&client, "default", "web").await;
        (p.len() == 3 && p.iter().all(|p| p.name_any() != victim)).then_some(())
    })
    .await;

    // Scaling down removes pods; scaling up adds them.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    until("one pod", || async {
        (pods_of(&client, "default", "web").await.len() == 1).then_some(())
    })
    .await;
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    until("five pods", || async {
        (pods_of(&client, "default", "web").await.len() == 5).then_some(())
    })
    .await;

    // A matching orphan is adopted, and counts: one pod too many, so an
    // unscheduled one (removed before scheduled ones) goes.
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stray", "labels": {"app": "web"}},
        "spec": {"nodeName": "elsewhere", "containers": [{"name": "c", "image": "example.invalid/app:1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    until("the orphan adopted and the surplus removed", || async {
        let stray = pods.get("stray").await.ok()?;
        let owned = stray.owner_references().iter().any(|o| o.uid == uid);
        let all = pods_of(&client, "default", "web").await;
        let active = all.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count();
        (owned && active == 5).then_some(())
    })
    .await;
}

/// ReplicationControllers run on the same controller, through their
/// equality selector and their scale subresource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_controller_keeps_its_replicas_and_scales() {
    use k8s_openapi::api::core::v1::ReplicationController;
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let controllers: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
    // No selector: defaulted from the template's labels.
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "legacy"},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1"}]},
            },
        },
    }))
    .unwrap();
    let rc = controllers.create(&PostParams::default(), &rc).await.unwrap();
    let spec = rc.spec.clone().unwrap();
    assert_eq!(spec.selector.unwrap()["app"], "legacy");
    assert_eq!(rc.metadata.labels.unwrap()["app"], "legacy");
    let uid = rc.metadata.uid.unwrap();

    let created = until("two ready pods", || async {
        let p = pods_of(&client, "default", "legacy").await;
        (p.len() == 2 && p.iter().all(is_ready)).then_some(p)
    })
    .await;
    for pod in &created {
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.api_version.as_str(), owner.kind.as_str(), owner.uid.as_str()),
            ("v1", "ReplicationController", uid.as_str())
        );
    }
    until("status counts them", || async {
        let s = controllers.get("legacy").await.unwrap().status?;
        (s.replicas == 2 && s.ready_replicas == Some(2)).then_some(())
    })
    .await;

    let scale = controllers.get_scale("legacy").await.unwrap();
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=legacy"));
    controllers
        .patch_scale(
            "legacy",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    until("three pods", || async {
        (pods_of(&client, "default", "legacy").await.len() == 3).then_some(())
    })
    .await;
}
