//! The autoscaler reaches any target through its `scale` subresource: a
//! StatefulSet and a custom resource whose CRD declares one are held to
//! their autoscalers' bounds (no metrics are needed for that), and a
//! target that does not exist is reported in the conditions.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

use crate::support::{Cluster, until};

fn hpa(name: &str, api_version: &str, kind: &str, min: i32, max: i32) -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": name},
                 "minReplicas": min, "maxReplicas": max},
    }))
    .unwrap()
}

/// The reason of the autoscaler's condition `kind`, once it has one.
async fn reason(hpas: &Api<HorizontalPodAutoscaler>, name: &str, kind: &str) -> Option<String> {
    let hpa = hpas.get(name).await.ok()?;
    hpa.status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == kind)
        .and_then(|c| c.reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulsets_and_custom_resources_are_scaled_through_their_scale_subresource() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");

    // A StatefulSet of 4 under an autoscaler of at most 2.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 4, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "c", "image": "db:1"}]}}},
    }))
    .unwrap();
    sets.create(&PostParams::default(), &set).await.unwrap();
    hpas.create(&PostParams::default(), &hpa("db", "apps/v1", "StatefulSet", 1, 2))
        .await
        .unwrap();
    until("the StatefulSet held to 2", || async {
        (sets.get("db").await.ok()?.spec?.replicas == Some(2)).then_some(())
    })
    .await;
    until("the rescale recorded", || async {
        let status = hpas.get("db").await.ok()?.status?;
        (status.last_scale_time.is_some() && status.current_replicas == Some(2)).then_some(())
    })
    .await;

    // A custom resource with a scale subresource, under at least 3.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "shards.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "shards", "singular": "shard", "kind": "Shard"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}, "scale": {
                    "specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas",
                    "labelSelectorPath": ".status.selector"}}}],
        },
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", "v1", "Shard"), "shards");
    let shards: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let shard: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Shard",
        "metadata": {"name": "s"},
        "spec": {"replicas": 1},
    }))
    .unwrap();
    until("the custom resource created", || async {
        shards.create(&PostParams::default(), &shard).await.ok()
    })
    .await;
    hpas.create(&PostParams::default(), &hpa("s", "example.com/v1", "Shard", 3, 5))
        .await
        .unwrap();
    until("the custom resource raised to 3", || async {
        (shards.get("s").await.ok()?.data["spec"]["replicas"] == 3).then_some(())
    })
    .await;

    // A target that is not there.
    hpas.create(&PostParams::default(), &hpa("ghost", "apps/v1", "Deployment", 1, 2))
        .await
        .unwrap();
    until("the missing target reported", || async {
        (reason(&hpas, "ghost", "AbleToScale").await.as_deref() == Some("FailedGetScale")).then_some(())
    })
    .await;
}
