//! Watches: the store's key events turned into Kubernetes watch events.
//!
//! A watch starts either from "now" (resourceVersion unset or `0`: the
//! current objects arrive first as synthetic ADDED events) or strictly after
//! a given resourceVersion. Selectors are applied to both the old and the
//! new state, so an object that stops matching arrives as DELETED and one
//! that starts matching as ADDED, as kube-apiserver reports them. A start
//! below the compaction point yields one ERROR event with a 410 Expired
//! Status, after which clients re-list.
//!
//! Every watch of a server sees the same store events; a
//! [`DecodeCache`](crate::stored::DecodeCache)
//! shared by all of them decodes and serialises each object version once,
//! so an event fanned out to thousands of watchers costs one decode and one
//! encode, and each watcher only copies bytes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use skiff_store::{EventKind, KeyRange, Revision};
use tokio::sync::mpsc;

use crate::catalog::Resource;
use crate::error::ApiError;
use crate::options::ListOptions;
use crate::registry::Registry;
use crate::stored::{Encoded, prefix};

/// Events buffered per watch between the store and the HTTP response.
const BUFFER: usize = 256;

/// One line of a watch response.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub kind: &'static str,
    pub object: Arc<Encoded>,
}

impl WatchEvent {
    fn new(kind: &'static str, object: Value) -> WatchEvent {
        WatchEvent {
            kind,
            object: Encoded::new(object),
        }
    }

    /// An `ERROR` event carrying the error's Status, its text in Go's
    /// field order.
    fn error(error: &ApiError) -> WatchEvent {
        let status = error.status();
        WatchEvent {
            kind: "ERROR",
            object: Arc::new(Encoded {
                object: status.to_value(),
                json: Bytes::from(status.json()),
            }),
        }
    }

    /// The response line, `{"type":…,"object":…}` and a newline.
    pub fn line(&self) -> Bytes {
        let mut line = Vec::with_capacity(self.object.json.len() + 32);
        line.extend_from_slice(b"{\"type\":\"");
        line.extend_from_slice(self.kind.as_bytes());
        line.extend_from_slice(b"\",\"object\":");
        line.extend_from_slice(&self.object.json);
        line.extend_from_slice(b"}\n");
        Bytes::from(line)
    }
}

#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    pub list: ListOptions,
    pub allow_bookmarks: bool,
    pub bookmark_interval: Option<Duration>,
    pub timeout: Option<Duration>,
}

/// Default time between bookmarks when a client allows them.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

/// Starts a watch; events arrive on the returned channel until the timeout,
/// a store failure, or the receiver is dropped.
pub async fn start(
    registry: Registry,
    resource: std::sync::Arc<Resource>,
    namespace: Option<String>,
    options: WatchOptions,
) -> Result<mpsc::Receiver<WatchEvent>, ApiError> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let requested = options
        .list
        .resource_version
        .clone()
        .filter(|rv| !rv.is_empty() && rv != "0");
    let from: Revision = match &requested {
        Some(rv) => rv
            .parse::<Revision>()
            .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))?
            .saturating_add(1),
        None => {
            let mut initial = options.list.clone();
            initial.limit = None;
            initial.continue_token = None;
            let page = registry.list(&resource, namespace.as_deref(), &initial).await?;
            for object in page.items {
                let _ = tx.try_send(WatchEvent::new("ADDED", object));
            }
            if tx.capacity() == 0 {
                // More initial objects than the buffer holds: hand them over
                // from the task instead of failing the watch.
                return start_after_large_list(registry, resource, namespace, options, page.revision).await;
            }
            page.revision + 1
        }
    };
    tokio::spawn(run(registry, resource, namespace, options, from, tx));
    Ok(rx)
}

async fn start_after_large_list(
    registry: Registry,
    resource: std::sync::Arc<Resource>,
    namespace: Option<String>,
    options: WatchOptions,
    revision: Revision,
) -> Result<mpsc::Receiver<WatchEvent>, ApiError> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut initial = options.list.clone();
    initial.limit = None;
    initial.continue_token = None;
    initial.resource_version = Some(revision.to_string());
    initial.resource_version_match = Some("Exact".into());
    let page = registry.list(&resource, namespace.as_deref(), &initial).await?;
    tokio::spawn(async move {
        for object in page.items {
            if tx.send(WatchEvent::new("ADDED", object)).await.is_err() {
                return;
            }
        }
        run(registry, resource, namespace, options, revision + 1, tx).await;
    });
    Ok(rx)
}

fn expired(requested: Revision, oldest: Revision) -> WatchEvent {
    WatchEvent::error(&ApiError::Expired(format!(
        "too old resource version: {requested} ({oldest})"
    )))
}

async fn run(
    registry: Registry,
    resource: std::sync::Arc<Resource>,
    namespace: Option<String>,
    options: WatchOptions,
    from: Revision,
    tx: mpsc::Sender<WatchEvent>,
) {
    let range = KeyRange::prefix(prefix(&resource, namespace.as_deref()).into_bytes());
    let mut watcher = match registry.store().watch(range, from).await {
        Ok(watcher) => watcher,
        Err(skiff_store::Error::Compacted { compact_revision }) => {
            let _ = tx.send(expired(from.saturating_sub(1), compact_revision)).await;
            return;
        }
        Err(error) => {
            let _ = tx.send(WatchEvent::error(&ApiError::from(error))).await;
            return;
        }
    };
    let deadline = options.timeout.map(|t| tokio::time::Instant::now() + t);
    let bookmark_every = options.bookmark_interval.unwrap_or(BOOKMARK_INTERVAL);
    let mut bookmarks = tokio::time::interval_at(tokio::time::Instant::now() + bookmark_every, bookmark_every);
    let mut last_seen = from.saturating_sub(1);
    loop {
        let timeout = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            batch = watcher.next() => {
                let Some(Ok(events)) = batch else { return };
                for event in events {
                    last_seen = last_seen.max(event.kv.mod_revision);
                    let Some(out) = translate(&registry, &resource, &options.list, &event) else { continue };
                    if tx.send(out).await.is_err() {
                        return;
                    }
                }
            }
            _ = bookmarks.tick(), if options.allow_bookmarks => {
                let bookmark = WatchEvent::new("BOOKMARK", json!({
                    "kind": resource.kind,
                    "apiVersion": resource.api_version(),
                    "metadata": {"resourceVersion": last_seen.to_string()},
                }));
                if tx.send(bookmark).await.is_err() {
                    return;
                }
            }
            () = timeout => return,
            () = tx.closed() => return,
        }
    }
}

fn translate(
    registry: &Registry,
    resource: &Resource,
    options: &ListOptions,
    event: &skiff_store::Event,
) -> Option<WatchEvent> {
    let cache = registry.decode_cache();
    let matches = |object: &Value| registry.matches(resource, object, options).unwrap_or(false);
    let revision = event.kv.mod_revision;
    let key = &event.kv.key;
    let was_selected = event.prev_kv.as_ref().is_some_and(|kv| {
        cache
            .decode(resource, key, &kv.value, kv.mod_revision)
            .is_some_and(|old| matches(&old.object))
    });
    match event.kind {
        // A deleted object is shown as it was, at the deleting revision.
        EventKind::Delete => {
            let prev = event.prev_kv.as_ref().filter(|_| was_selected)?;
            let object = cache.decode(resource, key, &prev.value, revision)?;
            Some(WatchEvent {
                kind: "DELETED",
                object,
            })
        }
        EventKind::Put => {
            let object = cache.decode(resource, key, &event.kv.value, revision)?;
            let kind = match (was_selected, matches(&object.object)) {
                (false, true) => "ADDED",
                (true, true) => "MODIFIED",
                (true, false) => "DELETED",
                (false, false) => return None,
            };
            Some(WatchEvent { kind, object })
        }
    }
}
