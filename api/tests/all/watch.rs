//! Watches through the router: resume, selectors, bookmarks, timeouts and
//! the 410 a compacted start gets, and compaction under a running watch.

use std::time::Duration;

use axum::body::Body;
use futures::StreamExt;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{Api, TOKEN};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// An open watch: reads one event (line) at a time.
struct Stream {
    body: axum::body::BodyDataStream,
    buffer: Vec<u8>,
}

impl Stream {
    async fn open(api: &Api, query: &str) -> Stream {
        let request = Request::builder()
            .uri(format!("{CMS}?watch=true&{query}"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let response = api.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Stream {
            body: response.into_body().into_data_stream(),
            buffer: Vec::new(),
        }
    }

    /// The next event, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event within 10 s")?;
            self.buffer.extend_from_slice(&chunk.unwrap());
        }
    }
}

fn summary(event: &Value) -> (String, String) {
    (
        event["type"].as_str().unwrap().to_string(),
        event["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn watch_from_now_starts_with_current_objects() {
    let api = Api::start().await;
    api.post(CMS, json!({"metadata": {"name": "old"}})).await;
    let mut stream = Stream::open(&api, "").await;
    assert_eq!(summary(&stream.next().await.unwrap()), ("ADDED".into(), "old".into()));
    api.post(CMS, json!({"metadata": {"name": "new"}})).await;
    api.delete(&format!("{CMS}/old")).await;
    assert_eq!(summary(&stream.next().await.unwrap()), ("ADDED".into(), "new".into()));
    let deleted = stream.next().await.unwrap();
    assert_eq!(summary(&deleted), ("DELETED".into(), "old".into()));
}

#[tokio::test]
async fn watch_resumes_after_a_resource_version() {
    let api = Api::start().await;
    let a = api.post(CMS, json!({"metadata": {"name": "a"}})).await.body;
    let rv = a["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut changed = a.clone();
    changed["data"] = json!({"k": "v"});
    let b = api.put(&format!("{CMS}/a"), changed).await.body;
    api.post(CMS, json!({"metadata": {"name": "b"}})).await;
    let mut stream = Stream::open(&api, &format!("resourceVersion={rv}")).await;
    let modified = stream.next().await.unwrap();
    assert_eq!(summary(&modified), ("MODIFIED".into(), "a".into()));
    assert_eq!(
        modified["object"]["metadata"]["resourceVersion"],
        b["metadata"]["resourceVersion"]
    );
    assert_eq!(summary(&stream.next().await.unwrap()), ("ADDED".into(), "b".into()));
}

#[tokio::test]
async fn selectors_turn_transitions_into_added_and_deleted() {
    let api = Api::start().await;
    let mut stream = Stream::open(&api, "labelSelector=tier%3Dfront").await;
    api.post(CMS, json!({"metadata": {"name": "x", "labels": {"tier": "back"}}}))
        .await;
    api.patch(
        &format!("{CMS}/x"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"tier": "front"}}}),
    )
    .await;
    api.patch(
        &format!("{CMS}/x"),
        "application/merge-patch+json",
        json!({"data": {"a": "b"}}),
    )
    .await;
    api.patch(
        &format!("{CMS}/x"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"tier": "back"}}}),
    )
    .await;
    assert_eq!(summary(&stream.next().await.unwrap()).0, "ADDED");
    assert_eq!(summary(&stream.next().await.unwrap()).0, "MODIFIED");
    assert_eq!(summary(&stream.next().await.unwrap()).0, "DELETED");
}

#[tokio::test]
async fn compacted_start_gets_410_expired() {
    let api = Api::start().await;
    for i in 0..3 {
        api.post(CMS, json!({"metadata": {"name": format!("c{i}")}})).await;
    }
    let revision = api.store.revision();
    api.store.compact(revision).await.unwrap();
    let mut stream = Stream::open(&api, "resourceVersion=1").await;
    let error = stream.next().await.unwrap();
    assert_eq!(error["type"], "ERROR");
    assert_eq!(error["object"]["code"], 410);
    assert_eq!(error["object"]["reason"], "Expired");
    assert!(stream.next().await.is_none(), "the stream ends after the error");
    let list = api
        .get(&format!("{CMS}?resourceVersion=1&resourceVersionMatch=Exact"))
        .await;
    assert_eq!(list.status, StatusCode::GONE);
}

/// etcd's watch properties under compaction: while writes go on and the
/// store compacts up to its head again and again, a running watch sees
/// every write once, in order; a watch started (or resumed) from a
/// compacted revision gets 410 and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_watching_drops_and_repeats_nothing() {
    const WRITES: usize = 200;
    let api = Api::start().await;
    api.post(CMS, json!({"metadata": {"name": "first"}})).await;
    let start = api.store.revision();
    let mut live = Stream::open(&api, &format!("resourceVersion={start}")).await;

    // Compacts to the head until the writes are done.
    let store = api.store.clone();
    let (done_tx, mut done) = tokio::sync::watch::channel(false);
    let compactor = tokio::spawn(async move {
        let mut compactions = 0;
        while !*done.borrow() {
            if store.compact(store.revision()).await.is_ok() {
                compactions += 1;
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), done.changed()).await;
        }
        compactions
    });
    let mut acknowledged = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let reply = api.post(CMS, json!({"metadata": {"name": format!("w{i}")}})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let version = reply.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        acknowledged.push((format!("w{i}"), version));
    }
    done_tx.send(true).unwrap();
    let compactions = compactor.await.unwrap();
    eprintln!("{compactions} compactions during {WRITES} writes");
    assert!(compactions > 1, "the store compacted while the writes went on");

    let mut seen = Vec::with_capacity(WRITES);
    while seen.len() < WRITES {
        let event = live.next().await.expect("the live watch keeps going");
        assert_eq!(event["type"], "ADDED", "{event}");
        let meta = &event["object"]["metadata"];
        seen.push((
            meta["name"].as_str().unwrap().to_string(),
            meta["resourceVersion"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(seen, acknowledged, "every write once, in order, at its resourceVersion");

    // A watch from before the last compaction, or resumed from the
    // middle of the writes, is told it is too late. (The compactor may
    // have compacted to the head already.)
    match api.store.compact(api.store.revision()).await {
        Ok(_) | Err(skiff_store::Error::Compacted { .. }) => {}
        Err(error) => panic!("compacting to the head: {error}"),
    }
    let middle = &acknowledged[WRITES / 2].1;
    for from in [start.to_string(), middle.clone()] {
        let mut stale = Stream::open(&api, &format!("resourceVersion={from}")).await;
        let error = stale.next().await.unwrap();
        assert_eq!(error["object"]["code"], 410, "from {from}: {error}");
        assert!(
            stale.next().await.is_none(),
            "from {from}: the stream ends after the error"
        );
    }
}

#[tokio::test]
async fn timeouts_end_the_stream_and_bookmarks_carry_kind() {
    let api = Api::start().await;
    let started = std::time::Instant::now();
    let mut stream = Stream::open(&api, "timeoutSeconds=1").await;
    assert!(stream.next().await.is_none());
    assert!(started.elapsed() < Duration::from_secs(5));

    let registry = api.server.registry.clone();
    let resource = api.server.catalog.lookup("", "v1", "configmaps").unwrap();
    let options = skiff_api::watch::WatchOptions {
        allow_bookmarks: true,
        bookmark_interval: Some(Duration::from_millis(100)),
        ..Default::default()
    };
    let mut events = skiff_api::watch::start(registry, resource, Some("default".into()), options)
        .await
        .unwrap();
    let bookmark = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bookmark.kind, "BOOKMARK");
    assert_eq!(bookmark.object.object["kind"], "ConfigMap");
    assert_eq!(bookmark.object.object["apiVersion"], "v1");
    assert!(bookmark.object.object["metadata"]["resourceVersion"].is_string());
}
