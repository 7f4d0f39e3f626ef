//! Pods that fit nowhere: the condition, the Event, and the message in
//! kube-scheduler's words; pods for other schedulers.

use serde_json::json;

use crate::support::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pods_get_a_condition_and_an_event() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.node("n1", "4", "1Gi", json!({"zone": "east"})).await?;
    cluster.node("n2", "4", "8Gi", json!({"zone": "west"})).await?;
    cluster.node("n3", "4", "8Gi", json!({"zone": "west"})).await?;
    let east = json!({"nodeSelector": {"zone": "east"}});
    cluster.pod("picky", json!({"memory": "2Gi"}), east).await?;

    let expected =
        "0/3 nodes are available: 1 Insufficient memory, 2 node(s) didn't match Pod's node affinity/selector.";
    let condition = cluster.unschedulable_with("picky", expected).await?;
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));

    let event = cluster.event("picky", "FailedScheduling", expected).await?;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(
        event.source.and_then(|s| s.component).as_deref(),
        Some("default-scheduler")
    );

    let pod = cluster.pods().get("picky").await?;
    assert!(pod.spec.and_then(|s| s.node_name).is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_cluster_says_so() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.pod("lonely", json!({}), json!({})).await?;
    let message = "no nodes available to schedule pods";
    cluster.unschedulable_with("lonely", message).await?;
    cluster.event("lonely", "FailedScheduling", message).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_for_another_scheduler_are_left_alone() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(
        r#"
profiles:
  - schedulerName: default-scheduler
  - schedulerName: skiff-packer
    pluginConfig:
      - name: NodeResourcesFit
        args: {scoringStrategy: {type: MostAllocated}}
"#,
    )
    .await?;
    cluster.node("n1", "4", "8Gi", json!({})).await?;
    cluster
        .pod("theirs", json!({}), json!({"schedulerName": "someone-else"}))
        .await?;
    cluster
        .pod("ours", json!({}), json!({"schedulerName": "skiff-packer"}))
        .await?;
    assert_eq!(cluster.bound_node("ours").await?, "n1");

    // The pod watch delivers in order: once a later pod is bound, the
    // foreign one has been seen (and ignored).
    cluster.pod("later", json!({}), json!({})).await?;
    assert_eq!(cluster.bound_node("later").await?, "n1");
    let theirs = cluster.pods().get("theirs").await?;
    assert!(theirs.spec.and_then(|s| s.node_name).is_none());
    assert!(theirs.status.and_then(|s| s.conditions).unwrap_or_default().is_empty());
    assert!(cluster.events("theirs", "FailedScheduling").await?.is_empty());
    Ok(())
}
