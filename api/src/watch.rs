//! Watches: the store's key events turned into Kubernetes watch events.
//!
//! A watch starts either from "now" (resourceVersion unset or `0`: the
//! current objects arrive first as synthetic ADDED events) or strictly after
//! a given resourceVersion. Selectors are applied to both the old and the
//! new state, so an object that stops matching arrives as DELETED and one
//! that starts matching as ADDED, as kube-apiserver reports them. A start
//! below the compaction point yields one ERROR event with a 410 Expired
//! Status, after which clients re-list.

use std::time::Duration;

use serde_json::{Value, json};
use skiff_store::{EventKind, KeyRange, Revision};
use tokio::sync::mpsc;

use crate::catalog::Resource;
use crate::error::ApiError;
use crate::meta;
use crate::registry::{ListOptions, Registry, prefix};

/// Events buffered per watch between the store and the HTTP response.
const BUFFER: usize = 256;

/// One line of a watch response.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub kind: &'static str,
    pub object: Value,
}

impl WatchEvent {
    pub fn to_json(&self) -> Value {
        json!({"type": self.kind, "object": self.object})
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
                let _ = tx.try_send(WatchEvent { kind: "ADDED", object });
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
            if tx.send(WatchEvent { kind: "ADDED", object }).await.is_err() {
                return;
            }
        }
        run(registry, resource, namespace, options, revision + 1, tx).await;
    });
    Ok(rx)
}

fn expired(requested: Revision, oldest: Revision) -> WatchEvent {
    WatchEvent {
        kind: "ERROR",
        object: ApiError::Expired(format!("too old resource version: {requested} ({oldest})")).status(),
    }
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
            let _ = tx
                .send(WatchEvent {
                    kind: "ERROR",
                    object: ApiError::from(error).status(),
                })
                .await;
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
                let bookmark = WatchEvent {
                    kind: "BOOKMARK",
                    object: json!({
                        "kind": resource.kind,
                        "apiVersion": resource.api_version(),
                        "metadata": {"resourceVersion": last_seen.to_string()},
                    }),
                };
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
    let decode = |bytes: &[u8], revision: Revision| crate::registry::decode(resource, bytes, revision).ok();
    let matches = |object: &Value| registry.matches(resource, object, options).unwrap_or(false);
    let revision = event.kv.mod_revision;
    let old = event
        .prev_kv
        .as_ref()
        .and_then(|kv| decode(&kv.value, kv.mod_revision))
        .filter(|o| matches(o));
    match event.kind {
        EventKind::Delete => old.map(|mut object| {
            meta::set_resource_version(&mut object, revision);
            WatchEvent {
                kind: "DELETED",
                object,
            }
        }),
        EventKind::Put => {
            let new = decode(&event.kv.value, revision)?;
            match (old.is_some(), matches(&new)) {
                (false, true) => Some(WatchEvent {
                    kind: "ADDED",
                    object: new,
                }),
                (true, true) => Some(WatchEvent {
                    kind: "MODIFIED",
                    object: new,
                }),
                (true, false) => Some(WatchEvent {
                    kind: "DELETED",
                    object: new,
                }),
                (false, false) => None,
            }
        }
    }
}
