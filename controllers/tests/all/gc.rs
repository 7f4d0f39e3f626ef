//! The garbage collector: background, foreground and orphan deletion.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};

use serde_json::json;

use crate::support::{Cluster, pods_of, until};

async fn deployed(cluster: &Cluster, name: &str) -> Api<Deployment> {
    let api: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1"}]},
            },
        },
    }))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    let client = cluster.client();
    until("two pods", || async {
        (pods_of(&client, "default", name).await.len() == 2).then_some(())
    })
    .await;
    api
}

async fn sets_of(client: &kube::Client, app: &str) -> Vec<ReplicaSet> {
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    sets.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletion_removes_dependents_after_their_owner() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api = deployed(&cluster, "bg").await;
    api.delete("bg", &DeleteParams::background()).await.unwrap();
    until("the sets and pods gone", || async {
        (sets_of(&client, "bg").await.is_empty() && pods_of(&client, "default", "bg").await.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_keeps_the_owner_until_its_dependents_are_gone() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api = deployed(&cluster, "fg").await;
    api.delete("fg", &DeleteParams::foreground()).await.unwrap();
    until("the deployment gone", || async {
        match api.get_opt("fg").await.unwrap() {
            Some(d) => {
                assert!(d.metadata.deletion_timestamp.is_some());
                None
            }
            None => Some(()),
        }
    })
    .await;
    // By the time the owner went, its dependents had gone.
    assert!(sets_of(&client, "fg").await.is_empty());
    assert!(pods_of(&client, "default", "fg").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_leaves_dependents_without_the_reference() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api = deployed(&cluster, "or").await;
    let uid = api.get("or").await.unwrap().metadata.uid.unwrap();
    api.delete("or", &DeleteParams::orphan()).await.unwrap();
    until("the deployment gone", || async {
        api.get_opt("or").await.unwrap().is_none().then_some(())
    })
    .await;
    let sets = sets_of(&client, "or").await;
    assert_eq!(sets.len(), 1);
    assert!(sets[0].owner_references().iter().all(|o| o.uid != uid));
    // The set lives on and keeps its pods.
    assert_eq!(pods_of(&client, "default", "or").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_whose_owner_never_existed_is_collected_and_a_live_owner_protects() {
    let cluster = Cluster::start().await;
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let owner = maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let with_owner = |name: &str, owner_name: &str, uid: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": owner_name, "uid": uid}]}}))
        .unwrap()
    };
    maps.create(
        &PostParams::default(),
        &with_owner("kept", "owner", owner.metadata.uid.as_deref().unwrap()),
    )
    .await
    .unwrap();
    maps.create(
        &PostParams::default(),
        &with_owner("dangling", "ghost", "00000000-0000-0000-0000-000000000000"),
    )
    .await
    .unwrap();
    until("the dangling one collected", || async {
        maps.get_opt("dangling").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(
        maps.get_opt("kept").await.unwrap().is_some(),
        "a live owner keeps its dependent"
    );
    maps.delete("owner", &DeleteParams::default()).await.unwrap();
    until("the dependent follows its owner", || async {
        maps.get_opt("kept").await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_is_emptied_then_removed() {
    use k8s_openapi::api::core::v1::Namespace;
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap(),
        )
        .await
        .unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    for name in ["one", "two"] {
        maps.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    }
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "app"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "app"}},
            "template": {"metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1"}]}}},
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "doomed")
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    until("the pods", || async {
        (pods_of(&client, "doomed", "app").await.len() == 2).then_some(())
    })
    .await;
    namespaces.delete("doomed", &DeleteParams::default()).await.unwrap();
    until("the namespace gone", || async {
        namespaces.get_opt("doomed").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(maps.list(&ListParams::default()).await.unwrap().items.is_empty());
    assert!(pods_of(&client, "doomed", "app").await.is_empty());
}
