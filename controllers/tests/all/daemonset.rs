//! DaemonSets follow the nodes.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Cluster, pods_of, until};

/// Registers a ready node, as an agent would.
async fn add_node(client: &kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": now, "lastTransitionTime": now}]},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
}

fn nodes_of(pods: &[k8s_openapi::api::core::v1::Pod]) -> Vec<String> {
    let mut nodes: Vec<String> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.spec.as_ref().unwrap().node_name.clone().unwrap())
        .collect();
    nodes.sort();
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_set_runs_one_pod_per_node_and_rolls_them() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    add_node(&client, "n1").await;
    add_node(&client, "n2").await;
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/agent:1"}]}}},
    }))
    .unwrap();
    sets.create(&PostParams::default(), &ds).await.unwrap();
    until("a pod on each node", || async {
        (nodes_of(&pods_of(&client, "default", "agent").await) == ["n1", "n2"]).then_some(())
    })
    .await;

    // A new node gets one; a removed one loses its pod.
    add_node(&client, "n3").await;
    until("a pod on the new node", || async {
        (nodes_of(&pods_of(&client, "default", "agent").await) == ["n1", "n2", "n3"]).then_some(())
    })
    .await;
    Api::<Node>::all(client.clone())
        .delete("n1", &DeleteParams::default())
        .await
        .unwrap();
    until("no pod on the removed node", || async {
        (nodes_of(&pods_of(&client, "default", "agent").await) == ["n2", "n3"]).then_some(())
    })
    .await;

    // A new template replaces every pod.
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "example.invalid/agent:2"}]}}}})),
    )
    .await
    .unwrap();
    let status = until("the rollout done", || async {
        let pods = pods_of(&client, "default", "agent").await;
        let live: Vec<_> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let all_new = live.len() == 2
            && live
                .iter()
                .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("example.invalid/agent:2"));
        let status = sets.get("agent").await.unwrap().status?;
        (all_new && status.updated_number_scheduled == Some(2) && status.number_available == Some(2)).then_some(status)
    })
    .await;
    assert_eq!(status.desired_number_scheduled, 2);
}
