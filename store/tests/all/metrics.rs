//! The store's metrics in a scrape of a registry they are registered in:
//! etcd's names, with values that follow the store's writes, fsyncs and
//! snapshots.

use prometheus_client::registry::Registry;
use skiff_store::{Txn, TxnOp};
use skiff_testing::eventually;

use crate::support::{LIMIT, single};

/// The value of the sample named `name` (with any labels), if present.
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.split([' ', '{']).next() == Some(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[tokio::test]
async fn a_scrape_shows_leadership_proposals_fsyncs_size_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let store = node.store.clone();
    let mut registry = Registry::default();
    store.metrics().register(&mut registry);
    for i in 0..20 {
        store
            .txn(Txn::new().and_then([TxnOp::put(format!("/m/{i}"), "v")]))
            .await
            .unwrap();
    }

    let text = scrape(&registry);
    let get = |name: &str| value(&text, name).unwrap_or_else(|| panic!("no {name} in\n{text}"));
    assert_eq!(get("etcd_server_has_leader"), 1.0);
    assert_eq!(get("etcd_server_is_leader"), 1.0);
    assert!(get("skiff_store_raft_term") >= 1.0);
    assert!(get("etcd_server_leader_changes_seen_total") >= 1.0);
    let applied = get("etcd_server_proposals_applied_total");
    assert!(applied >= 20.0, "{text}");
    assert!(get("etcd_server_proposals_committed_total") >= applied, "{text}");
    assert_eq!(get("etcd_server_proposals_pending"), 0.0);
    assert_eq!(get("etcd_server_proposals_failed_total"), 0.0);
    assert!(get("skiff_store_proposal_duration_seconds_count") >= 20.0, "{text}");
    assert!(get("etcd_disk_wal_fsync_duration_seconds_count") >= 1.0, "{text}");
    assert!(get("etcd_mvcc_db_total_size_in_bytes") > 0.0, "{text}");
    assert!(get("etcd_debugging_mvcc_current_revision") >= 20.0, "{text}");
    assert!(get("skiff_store_apply_lag_entries") >= 0.0);
    assert_eq!(get("etcd_debugging_snap_save_total_duration_seconds_count"), 0.0);

    // A snapshot is built in the background: its save is counted.
    store.snapshot().await.unwrap();
    eventually(LIMIT, "the snapshot's save to be counted", || async {
        (value(
            &scrape(&registry),
            "etcd_debugging_snap_save_total_duration_seconds_count",
        ) == Some(1.0))
        .then_some(())
    })
    .await
    .unwrap();
    // The registry keeps the store's metrics, not its database.
    drop(store);
    node.stop().await;
    let text = scrape(&registry);
    assert!(
        value(&text, "etcd_server_proposals_applied_total") >= Some(20.0),
        "{text}"
    );
}
