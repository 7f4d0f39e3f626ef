//! How objects are kept in the store: the key layout
//! (`/registry/<group>/<resource>/[<namespace>/]<name>`), the stored bytes
//! (JSON without `resourceVersion`, which is the key's mod revision), and
//! the [`DecodeCache`] that decodes and serialises each stored version once
//! for every reader that shows it (the watches of a server fan one store
//! event out to thousands of watchers).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;
use skiff_store::Revision;

use crate::catalog::Resource;
use crate::error::{ApiError, Result};
use crate::meta;

pub fn key(resource: &Resource, namespace: Option<&str>, name: &str) -> String {
    format!("{}{name}", prefix(resource, namespace))
}

/// The key prefix of every object of `resource`, or of those in one
/// namespace.
pub fn prefix(resource: &Resource, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if resource.namespaced => {
            format!("/registry/{}/{}/{ns}/", resource.storage_group(), resource.plural)
        }
        _ => format!("/registry/{}/{}/", resource.storage_group(), resource.plural),
    }
}

/// A stored object as a client of `resource` sees it: its resourceVersion,
/// and the apiVersion it was asked for (custom resources of several served
/// versions share one key; a built-in version kept in another's form is
/// converted).
pub fn decode(resource: &Resource, bytes: &[u8], mod_revision: u64) -> Result<Value> {
    let mut object: Value = serde_json::from_slice(bytes).map_err(|error| {
        tracing::error!(%error, "stored object does not decode");
        ApiError::Internal
    })?;
    if let Some(conversion) = &resource.conversion {
        object = (conversion.from_storage)(object);
    }
    meta::set_resource_version(&mut object, mod_revision);
    if !resource.is_builtin() {
        meta::object_mut(&mut object).insert("apiVersion".into(), Value::String(resource.api_version()));
    }
    Ok(object)
}

/// The bytes kept for `object` of `resource`: in the stored version's
/// form, without its resourceVersion.
pub fn encode(resource: &Resource, object: &Value) -> Result<Vec<u8>> {
    let mut object = match &resource.conversion {
        Some(conversion) => (conversion.to_storage)(object.clone()),
        None => object.clone(),
    };
    meta::metadata_mut(&mut object).remove("resourceVersion");
    serde_json::to_vec(&object).map_err(|error| {
        tracing::error!(%error, "object does not encode");
        ApiError::Internal
    })
}

/// An object and its JSON, made once and shared.
#[derive(Debug, PartialEq)]
pub struct Encoded {
    pub object: Value,
    pub json: Bytes,
}

impl Encoded {
    pub fn new(object: Value) -> Arc<Encoded> {
        let json = Bytes::from(object.to_string());
        Arc::new(Encoded { object, json })
    }
}

/// How many decoded object versions the cache keeps.
const CACHE_ENTRIES: usize = 4096;

/// Object versions decoded from the store, found by the revision they are
/// shown at, then by key and the apiVersion they are shown as. Lookups
/// allocate nothing: thousands of watchers look up every event.
#[derive(Debug, Default)]
pub struct DecodeCache {
    inner: Mutex<CacheInner>,
}

/// One decoded version: its key, the apiVersion it is shown as, the object.
type Cached = (Vec<u8>, String, Arc<Encoded>);

#[derive(Debug, Default)]
struct CacheInner {
    /// Revision → the versions shown at it.
    entries: HashMap<Revision, Vec<Cached>>,
    /// Revisions in insertion order, for eviction.
    order: VecDeque<Revision>,
    len: usize,
}

impl CacheInner {
    fn find(&self, key: &[u8], revision: Revision, api_version: &str) -> Option<Arc<Encoded>> {
        self.entries
            .get(&revision)?
            .iter()
            .find(|(k, v, _)| k == key && v == api_version)
            .map(|(_, _, encoded)| encoded.clone())
    }
}

impl DecodeCache {
    /// `bytes` (the stored value of `key`) decoded as `resource` shows it
    /// at `revision`, from the cache when another watcher got there first.
    pub fn decode(&self, resource: &Resource, key: &[u8], bytes: &[u8], revision: Revision) -> Option<Arc<Encoded>> {
        let api_version = resource.api_version();
        if let Some(hit) = self.lock().find(key, revision, &api_version) {
            return Some(hit);
        }
        let object = decode(resource, bytes, revision).ok()?;
        let encoded = Encoded::new(object);
        let mut inner = self.lock();
        if let Some(raced) = inner.find(key, revision, &api_version) {
            return Some(raced);
        }
        let slot = inner.entries.entry(revision).or_default();
        let first_at_revision = slot.is_empty();
        slot.push((key.to_vec(), api_version, encoded.clone()));
        if first_at_revision {
            inner.order.push_back(revision);
        }
        inner.len += 1;
        while inner.len > CACHE_ENTRIES {
            let Some(oldest) = inner.order.pop_front() else { break };
            let removed = inner.entries.remove(&oldest).map_or(0, |v| v.len());
            inner.len -= removed;
        }
        Some(encoded)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::watch::WatchEvent;

    #[test]
    fn keys_follow_kube_apiserver() {
        let catalog = Catalog::new();
        let deployments = catalog.lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(key(&deployments, Some("a"), "web"), "/registry/apps/deployments/a/web");
        assert_eq!(prefix(&deployments, None), "/registry/apps/deployments/");
        let namespaces = catalog.lookup("", "v1", "namespaces").unwrap();
        assert_eq!(key(&namespaces, Some("ignored"), "a"), "/registry/core/namespaces/a");
    }

    #[test]
    fn the_cache_decodes_each_version_once_and_stays_bounded() {
        let catalog = Catalog::new();
        let configmaps = catalog.lookup("", "v1", "configmaps").unwrap();
        let cache = DecodeCache::default();
        let stored = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#;
        let first = cache.decode(&configmaps, b"/k", stored, 7).unwrap();
        let again = cache.decode(&configmaps, b"/k", stored, 7).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the second watcher gets the same decode");
        assert_eq!(first.object["metadata"]["resourceVersion"], "7");
        assert_eq!(first.json, Bytes::from(first.object.to_string()));
        let event = WatchEvent {
            kind: "ADDED",
            object: first,
        };
        let line: Value = serde_json::from_slice(&event.line()).unwrap();
        assert_eq!(line["type"], "ADDED");
        assert!(event.line().ends_with(b"}\n"));
        for revision in 8..(8 + CACHE_ENTRIES as u64 + 10) {
            cache.decode(&configmaps, b"/k", stored, revision).unwrap();
        }
        assert!(cache.lock().len <= CACHE_ENTRIES);
        assert!(
            cache.lock().find(b"/k", 7, "v1").is_none(),
            "the oldest version was evicted"
        );
        assert!(cache.decode(&configmaps, b"/k", b"not json", 1).is_none());
    }
}
