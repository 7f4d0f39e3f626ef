//! `/metrics`: kube-apiserver's request, in-flight and watch metrics,
//! and other components' registered beside them, for whom RBAC lets read
//! them.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;

use crate::support::{Api, TOKEN};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// The line of `metric` whose labels include every one of `labels`, and
/// its value.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn requests_are_counted_and_timed_for_those_allowed_to_read_them() {
    let api = Api::start().await;
    assert_eq!(
        api.post(CMS, json!({"metadata": {"name": "a"}})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(api.get(&format!("{CMS}/a")).await.status, StatusCode::OK);
    assert_eq!(api.get(&format!("{CMS}/missing")).await.status, StatusCode::NOT_FOUND);

    // A watch is open while its response streams.
    let watch = api
        .router
        .clone()
        .oneshot(
            Request::get(format!("{CMS}?watch=true"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(watch.status(), StatusCode::OK);

    let metrics = api.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK, "{}", metrics.text);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let text = &metrics.text;
    let created = [
        "verb=\"POST\"",
        "resource=\"configmaps\"",
        "scope=\"namespace\"",
        "code=\"201\"",
    ];
    assert_eq!(sample(text, "apiserver_request_total", &created), Some(1.0), "{text}");
    let missing = [
        "verb=\"GET\"",
        "resource=\"configmaps\"",
        "scope=\"resource\"",
        "code=\"404\"",
    ];
    assert_eq!(sample(text, "apiserver_request_total", &missing), Some(1.0), "{text}");
    let timed = ["verb=\"GET\"", "resource=\"configmaps\"", "le=\"60.0\""];
    assert_eq!(
        sample(text, "apiserver_request_duration_seconds_bucket", &timed),
        Some(2.0),
        "{text}"
    );
    let watching = ["verb=\"WATCH\"", "resource=\"configmaps\""];
    assert_eq!(
        sample(text, "apiserver_longrunning_requests", &watching),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("\"a\""), "no object names in labels");

    // The watch's client goes away: it is counted out.
    drop(watch);
    let text = api.get("/metrics").await.text;
    assert_eq!(
        sample(&text, "apiserver_longrunning_requests", &watching),
        Some(0.0),
        "{text}"
    );

    // RBAC decides who reads them: not an ordinary user, nor anonymous;
    // the system:monitoring group, yes.
    let as_jane = [("impersonate-user", "jane")];
    let refused = api.request(Method::GET, "/metrics", &as_jane, vec![]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    let anonymous = api.request_with(None, Method::GET, "/metrics", &[], vec![]).await;
    assert!(
        [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&anonymous.status),
        "{}",
        anonymous.text
    );
    let monitoring = [
        ("impersonate-user", "prometheus"),
        ("impersonate-group", "system:monitoring"),
    ];
    let allowed = api.request(Method::GET, "/metrics", &monitoring, vec![]).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);
}

#[tokio::test]
async fn watches_in_flight_requests_and_other_components_are_served_too() {
    use futures::StreamExt;

    let api = Api::start().await;
    assert_eq!(
        api.post(CMS, json!({"metadata": {"name": "w"}})).await.status,
        StatusCode::CREATED
    );
    // A watch sends the existing object first.
    let watch = api
        .router
        .clone()
        .oneshot(
            Request::get(format!("{CMS}?watch=true"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(watch.status(), StatusCode::OK);
    let mut events = watch.into_body().into_data_stream();
    let first = events.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"ADDED\""));

    // Scraped as a monitoring user, whose request takes a read-only slot
    // of the in-flight limit (the admins' take none).
    let monitoring = [
        ("impersonate-user", "prometheus"),
        ("impersonate-group", "system:monitoring"),
    ];
    let scraped = api.request(Method::GET, "/metrics", &monitoring, vec![]).await;
    assert_eq!(scraped.status, StatusCode::OK, "{}", scraped.text);
    let text = &scraped.text;
    let configmaps = ["group=\"\"", "version=\"v1\"", "kind=\"ConfigMap\""];
    assert_eq!(
        sample(text, "apiserver_registered_watchers", &configmaps),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(text, "apiserver_watch_events_total", &configmaps),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(text, "apiserver_watch_events_sizes_count", &configmaps),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            text,
            "apiserver_current_inflight_requests",
            &["request_kind=\"readOnly\""]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            text,
            "apiserver_current_inflight_requests",
            &["request_kind=\"mutating\""]
        ),
        Some(0.0),
        "{text}"
    );

    // The watch ends: no longer registered.
    drop(events);
    let text = api.get("/metrics").await.text;
    assert_eq!(
        sample(&text, "apiserver_registered_watchers", &configmaps),
        Some(0.0),
        "{text}"
    );

    // Another component's metrics join the same scrape.
    let widgets = prometheus_client::metrics::counter::Counter::<u64>::default();
    api.server.metrics.register(|registry| {
        registry.register("skiff_test_widgets", "Widgets made.", widgets.clone());
    });
    widgets.inc();
    let text = api.get("/metrics").await.text;
    assert!(text.contains("skiff_test_widgets_total 1"), "{text}");
}
