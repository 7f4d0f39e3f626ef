//! Pods get bound to the node the plugins pick, with a Scheduled Event.

use serde_json::json;

use crate::support::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_bound_where_they_fit() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.node("small", "1", "1Gi", json!({})).await?;
    cluster.node("large", "8", "16Gi", json!({})).await?;
    cluster
        .pod("big", json!({"cpu": "4", "memory": "4Gi"}), json!({}))
        .await?;
    assert_eq!(cluster.bound_node("big").await?, "large");

    let scheduled = cluster
        .event("big", "Scheduled", "Successfully assigned default/big to large")
        .await?;
    assert_eq!(scheduled.type_.as_deref(), Some("Normal"));
    assert_eq!(
        scheduled.source.and_then(|s| s.component).as_deref(),
        Some("default-scheduler")
    );

    let pod = cluster.pods().get("big").await?;
    let condition = pod
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "PodScheduled"));
    assert_eq!(condition.map(|c| c.status).as_deref(), Some("True"));

    let stats = cluster.scheduler.stats();
    assert_eq!(
        (stats.scheduled, stats.unschedulable, stats.errors),
        (1, 0, 0),
        "{stats:?}"
    );
    assert_eq!(cluster.scheduler.pending(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_taints_and_runtimes_steer_pods() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.node("east", "4", "8Gi", json!({"zone": "east"})).await?;
    let no_runc = json!({"zone": "west", "skiff.dev/runtime-oci": null});
    cluster.node("west", "4", "8Gi", no_runc).await?;
    let taint = json!({"taints": [{"key": "gpu", "value": "only", "effect": "NoSchedule"}]});
    cluster
        .node_with_spec("gpu", "4", "8Gi", json!({"zone": "east"}), taint)
        .await?;

    let west = json!({"nodeSelector": {"zone": "west"}});
    cluster.pod("by-selector", json!({}), west).await?;
    let oci = json!({"runtimeClassName": "runc", "nodeSelector": {"zone": "east"}});
    cluster.pod("oci", json!({}), oci).await?;
    let tolerant = json!({
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu"]}]},
        ]}}},
    });
    cluster.pod("tolerant", json!({}), tolerant).await?;
    let wasm = json!({"runtimeClassName": "wasmtime", "nodeSelector": {"zone": "west"}});
    cluster.pod("wasm", json!({}), wasm).await?;

    assert_eq!(cluster.bound_node("by-selector").await?, "west");
    // East is the one east node without the taint, and it has runc.
    assert_eq!(cluster.bound_node("oci").await?, "east");
    assert_eq!(cluster.bound_node("tolerant").await?, "gpu");
    assert_eq!(cluster.bound_node("wasm").await?, "west");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_do_not_fit_together_go_to_different_nodes() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.node("a", "1", "4Gi", json!({})).await?;
    cluster.node("b", "1", "4Gi", json!({})).await?;
    // Each pod takes most of a node. The second cycle may run before the
    // first binding is seen, so this relies on the first pod being
    // assumed on its node.
    cluster.pod("one", json!({"cpu": "600m"}), json!({})).await?;
    cluster.pod("two", json!({"cpu": "600m"}), json!({})).await?;
    let one = cluster.bound_node("one").await?;
    let two = cluster.bound_node("two").await?;
    assert_ne!(one, two);
    Ok(())
}
