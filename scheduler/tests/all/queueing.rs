//! Pending pods are retried when the cluster changes.

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::support::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_makes_a_pending_pod_schedulable() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.node("small", "1", "1Gi", json!({})).await?;
    cluster.pod("waiting", json!({"cpu": "2"}), json!({})).await?;
    cluster
        .unschedulable_with("waiting", "0/1 nodes are available: 1 Insufficient cpu.")
        .await?;

    cluster.node("big", "4", "8Gi", json!({})).await?;
    assert_eq!(cluster.bound_node("waiting").await?, "big");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_frees_room_for_a_pending_one() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.node("only", "1", "4Gi", json!({})).await?;
    cluster.pod("first", json!({"cpu": "800m"}), json!({})).await?;
    assert_eq!(cluster.bound_node("first").await?, "only");
    cluster.pod("second", json!({"cpu": "800m"}), json!({})).await?;
    cluster
        .unschedulable_with("second", "0/1 nodes are available: 1 Insufficient cpu.")
        .await?;

    // No agent runs the pod, so a deletion without grace is immediate.
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    cluster.pods().delete("first", &now).await?;
    assert_eq!(cluster.bound_node("second").await?, "only");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relabelled_node_matches_a_waiting_selector() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.node("n1", "4", "8Gi", json!({})).await?;
    cluster
        .pod("wants-ssd", json!({}), json!({"nodeSelector": {"disk": "ssd"}}))
        .await?;
    let message = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.";
    cluster.unschedulable_with("wants-ssd", message).await?;

    let nodes: Api<Node> = Api::all(cluster.api.client.clone());
    let label = json!({"metadata": {"labels": {"disk": "ssd"}}});
    nodes.patch("n1", &PatchParams::default(), &Patch::Merge(label)).await?;
    assert_eq!(cluster.bound_node("wants-ssd").await?, "n1");
    Ok(())
}
