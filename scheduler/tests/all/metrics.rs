//! The scheduler's metrics in a scrape: kube-scheduler's names, following
//! what the scheduler does with a pod that fits, one that does not, and
//! one that is gated.

use anyhow::Context;
use prometheus_client::registry::Registry;
use serde_json::json;
use skiff_scheduler::metrics::Metrics;
use skiff_scheduler::{Scheduler, SchedulerConfig};
use skiff_testing::{TestApi, eventually};

use crate::support::{Cluster, WAIT};

/// The value of the sample of `metric` whose labels include all of
/// `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_attempts_latencies_and_pending_pods() -> anyhow::Result<()> {
    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let api = TestApi::start().await?;
    let scheduler = Scheduler::new(api.client.clone(), &SchedulerConfig::default())?
        .with_metrics(metrics.clone())
        .start();
    tokio::time::timeout(WAIT, scheduler.wait_synced())
        .await
        .context("the scheduler's caches did not sync")?;
    let cluster = Cluster { api, scheduler };
    cluster.node("n1", "2", "2Gi", json!({})).await?;
    cluster.pod("fits", json!({"cpu": "500m"}), json!({})).await?;
    cluster.pod("too-big", json!({"cpu": "8"}), json!({})).await?;
    let gates = json!({"schedulingGates": [{"name": "example.com/wait"}]});
    cluster.pod("gated", json!({}), gates).await?;
    assert_eq!(cluster.bound_node("fits").await?, "n1");
    cluster
        .unschedulable_with("too-big", "0/1 nodes are available: 1 Insufficient cpu.")
        .await?;

    let profile = "profile=\"default-scheduler\"";
    let text = eventually(WAIT, "the scrape to show the three pods", || async {
        let text = scrape(&registry);
        let waiting = ["queue=\"unschedulable\"", "queue=\"backoff\""]
            .iter()
            .filter_map(|queue| sample(&text, "scheduler_pending_pods", &[queue]))
            .sum::<f64>();
        let gated = sample(&text, "scheduler_pending_pods", &["queue=\"gated\""]);
        let scheduled = sample(
            &text,
            "scheduler_schedule_attempts_total",
            &["result=\"scheduled\"", profile],
        );
        (waiting == 1.0 && gated == Some(1.0) && scheduled == Some(1.0)).then_some(text)
    })
    .await?;
    let unschedulable = sample(
        &text,
        "scheduler_schedule_attempts_total",
        &["result=\"unschedulable\"", profile],
    );
    assert!(unschedulable >= Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "scheduler_scheduling_attempt_duration_seconds_count",
            &["result=\"scheduled\"", profile]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "scheduler_pod_scheduling_sli_duration_seconds_count",
            &["attempts=\"1\""]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "scheduler_pending_pods", &["queue=\"active\""]),
        Some(0.0),
        "{text}"
    );
    assert!(
        !text.contains("too-big") && !text.contains("fits"),
        "no pod names in labels"
    );

    // The scheduler stops: its queues read as empty, its counts stay.
    drop(cluster);
    let text = eventually(WAIT, "the stopped scheduler's queues to read empty", || async {
        let text = scrape(&registry);
        (sample(&text, "scheduler_pending_pods", &["queue=\"gated\""]) == Some(0.0)).then_some(text)
    })
    .await?;
    assert_eq!(
        sample(
            &text,
            "scheduler_schedule_attempts_total",
            &["result=\"scheduled\"", profile]
        ),
        Some(1.0),
        "{text}"
    );
    Ok(())
}
