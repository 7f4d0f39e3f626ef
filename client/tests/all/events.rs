//! The event recorder against a real API server: an event recorded again
//! is one Event whose count grows, as `kubectl get events` shows it, and
//! many similar events about one object end in one combined Event.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Event};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use skiff_client::events::{Kind, Recorder, reference};
use skiff_testing::TestApi;

const LIMIT: Duration = Duration::from_secs(20);

/// A ConfigMap to record events about.
async fn subject(api: &TestApi, name: &str) -> ConfigMap {
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    Api::namespaced(api.client.clone(), "default")
        .create(&PostParams::default(), &config_map)
        .await
        .unwrap()
}

/// The Events about `name` in `default`.
async fn events_about(events: &Api<Event>, name: &str) -> Vec<Event> {
    let mut about: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect();
    about.sort_by_key(|e| e.metadata.name.clone());
    about
}

/// Waits until the only Event about `name` passes `check`.
async fn the_event(events: &Api<Event>, name: &str, what: &str, check: impl Fn(&Event) -> bool) -> Event {
    skiff_testing::eventually(LIMIT, what, || async {
        match events_about(events, name).await.as_slice() {
            [one] if check(one) => Some(one.clone()),
            _ => None,
        }
    })
    .await
    .unwrap()
}

/// `kubectl get events -o wide --no-headers` in `default`, as rows of
/// whitespace-separated cells.
async fn kubectl_get_events(api: &TestApi) -> Vec<Vec<String>> {
    let kubeconfig = api.path("kubeconfig");
    std::fs::write(&kubeconfig, api.pki.kubeconfig(&api.url)).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "events", "-n", "default", "-o", "wide", "--no-headers"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.split_whitespace().map(String::from).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_recorded_again_is_counted_on_the_first() {
    let api = TestApi::start().await.unwrap();
    let settings = subject(&api, "settings").await;
    let events: Api<Event> = Api::namespaced(api.client.clone(), "default");
    let recorder = Recorder::new(api.client.clone(), "test-controller", None);
    let record = || {
        recorder.record(
            &reference(&settings),
            Kind::Warning,
            "InvalidKey",
            "Check",
            "key \"a b\" is not a valid key",
        );
    };

    record();
    let first = the_event(&events, "settings", "the event", |e| e.count == Some(1)).await;
    let name = first.metadata.name.clone().unwrap();
    assert!(name.starts_with("settings."), "named <object>.<hex nanos>: {name}");
    let first_seen = first.first_timestamp.clone().unwrap().0;
    assert_eq!(first.last_timestamp.as_ref().map(|t| t.0), Some(first_seen));

    // Event times are whole seconds: let the clock reach the next one,
    // so that the repeats' time shows.
    skiff_testing::eventually(LIMIT, "the next second", || async {
        (Timestamp::now().as_second() > first_seen.as_second()).then_some(())
    })
    .await
    .unwrap();
    record();
    record();
    let counted = the_event(&events, "settings", "a count of 3", |e| e.count == Some(3)).await;
    assert_eq!(counted.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(counted.metadata.uid, first.metadata.uid, "updated, not created again");
    assert_eq!(counted.first_timestamp, first.first_timestamp);
    assert!(counted.last_timestamp.clone().unwrap().0 > first_seen, "{counted:?}");
    assert_eq!(counted.message, first.message);

    // `kubectl get events` shows one row, with the count.
    let rows: Vec<Vec<String>> = kubectl_get_events(&api)
        .await
        .into_iter()
        .filter(|row| row.iter().any(|cell| cell == "configmap/settings"))
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0][rows[0].len() - 2..],
        ["3".to_string(), name.clone()],
        "COUNT and NAME: {rows:?}"
    );

    // Once the Event is gone (its TTL passed, or someone deleted it), the
    // next repeat creates it again, under the same name, still counting.
    events.delete(&name, &DeleteParams::default()).await.unwrap();
    record();
    let again = the_event(&events, "settings", "the event again", |e| e.count == Some(4)).await;
    assert_eq!(again.metadata.name.as_deref(), Some(name.as_str()));
    assert_ne!(again.metadata.uid, first.metadata.uid);
    assert_eq!(again.first_timestamp, first.first_timestamp);

    drop((events, recorder));
    api.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_similar_events_end_in_one_combined_event() {
    let api = TestApi::start().await.unwrap();
    let settings = subject(&api, "flaky").await;
    let events: Api<Event> = Api::namespaced(api.client.clone(), "default");
    let recorder = Recorder::new(api.client.clone(), "test-controller", None);
    for i in 0..12 {
        recorder.record(
            &reference(&settings),
            Kind::Warning,
            "SyncFailed",
            "Sync",
            format!("attempt {i} failed"),
        );
    }
    let about = skiff_testing::eventually(LIMIT, "nine events and a combined one", || async {
        let about = events_about(&events, "flaky").await;
        let combined = about
            .iter()
            .find(|e| e.message.as_deref().is_some_and(|m| m.starts_with("(combined")));
        (about.len() == 10 && combined.is_some_and(|e| e.count == Some(3))).then_some(about)
    })
    .await
    .unwrap();
    let mut messages: Vec<&str> = about.iter().filter_map(|e| e.message.as_deref()).collect();
    messages.sort_unstable();
    let mut want: Vec<String> = (0..9).map(|i| format!("attempt {i} failed")).collect();
    want.push("(combined from similar events): attempt 11 failed".into());
    want.sort_unstable();
    assert_eq!(messages, want);

    drop((events, recorder));
    api.stop().await.unwrap();
}
