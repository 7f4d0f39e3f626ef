//! Which objects a ServiceAccount token may be bound to exist, and with
//! which UIDs: every ServiceAccount, Pod, Secret and Node, followed from
//! the store ([`super::follow`]) as kube-apiserver's token validator reads
//! its informers, so that checking a token's objects costs no I/O.
//!
//! Only a UID and whether deletion has begun are kept per object. An
//! object the view does not hold, or holds with another UID, is read from
//! the store by the caller: it may be newer than the view. An object
//! deleted a moment ago may still be in the view until the watch delivers
//! its deletion (milliseconds), as in Kubernetes; a deletion made through
//! this server waits for the view ([`Liveness::deleted`]) before it is
//! answered, so the deleting client's next request already sees it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use skiff_store::Store;

use super::follow::{self, Follower};

/// The prefixes followed: the kinds a token names.
const PREFIXES: [&str; 4] = [
    "/registry/core/serviceaccounts/",
    "/registry/core/pods/",
    "/registry/core/secrets/",
    "/registry/core/nodes/",
];

/// What is known of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub uid: String,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

/// The objects of one prefix, by store key.
type Objects = Arc<RwLock<HashMap<String, Known>>>;

/// One followed prefix: its objects, and a signal after each change.
#[derive(Debug)]
struct Kind {
    prefix: &'static str,
    objects: Objects,
    changed: Arc<tokio::sync::Notify>,
}

/// The followed view of every kind in [`PREFIXES`].
#[derive(Debug, Default)]
pub struct Liveness {
    kinds: Vec<Kind>,
}

/// How long a deletion waits for the view at most.
const DELETION_WAIT: Duration = Duration::from_secs(2);

impl Liveness {
    /// Starts following the store; the view fills as the first lists
    /// arrive. Must be called within a Tokio runtime.
    pub fn follow(store: &Store) -> Liveness {
        let kinds = PREFIXES
            .iter()
            .map(|prefix| {
                let kind = Kind {
                    prefix,
                    objects: Objects::default(),
                    changed: Arc::default(),
                };
                follow::spawn(
                    store.clone(),
                    (*prefix).to_string(),
                    KnownFollower {
                        objects: kind.objects.clone(),
                        changed: kind.changed.clone(),
                    },
                );
                kind
            })
            .collect();
        Liveness { kinds }
    }

    fn kind(&self, key: &str) -> Option<&Kind> {
        self.kinds.iter().find(|kind| key.starts_with(kind.prefix))
    }

    /// What the view holds under store key `key`, if anything.
    pub fn get(&self, key: &str) -> Option<Known> {
        let kind = self.kind(key)?;
        kind.objects.read().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    /// After `key` was deleted (or marked for deletion): waits, at most
    /// two seconds, until the view holds it no longer or holds it as
    /// being deleted. Returns at once for keys not followed.
    pub async fn deleted(&self, key: &str) {
        let Some(kind) = self.kind(key) else { return };
        let settled = async {
            loop {
                // Registered before looking, so no change is missed.
                let changed = kind.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.get(key).is_none_or(|known| known.deleting) {
                    return;
                }
                changed.await;
            }
        };
        if tokio::time::timeout(DELETION_WAIT, settled).await.is_err() {
            tracing::warn!(%key, "the view of live objects did not see a deletion within 2 s");
        }
    }
}

/// The part of an object the view keeps; serde skips the rest unread.
#[derive(Deserialize)]
struct Stored {
    metadata: StoredMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredMeta {
    #[serde(default)]
    uid: String,
    #[serde(default)]
    deletion_timestamp: Option<serde::de::IgnoredAny>,
}

struct KnownFollower {
    objects: Objects,
    changed: Arc<tokio::sync::Notify>,
}

impl KnownFollower {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Known>> {
        self.objects.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Follower for KnownFollower {
    fn reset(&mut self) {
        self.write().clear();
    }

    fn put(&mut self, key: &str, value: &[u8]) {
        match serde_json::from_slice::<Stored>(value) {
            Ok(stored) => {
                let known = Known {
                    uid: stored.metadata.uid,
                    deleting: stored.metadata.deletion_timestamp.is_some(),
                };
                self.write().insert(key.to_string(), known);
            }
            // Not known here: the caller reads the store and decides.
            Err(_) => drop(self.write().remove(key)),
        }
    }

    fn delete(&mut self, key: &str) {
        self.write().remove(key);
    }

    fn settled(&mut self, _revision: u64) {
        self.changed.notify_waiters();
    }
}
