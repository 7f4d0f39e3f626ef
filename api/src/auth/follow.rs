//! Keeps an in-memory view of one key prefix in step with the store: list,
//! then watch from the listed revision, and list again whenever the watch
//! fails (compaction, a lagging watcher), until the store shuts down (its
//! watches then end cleanly, and the task lets go of its handle). What the
//! view is made of is the [`Follower`]'s business.

use std::time::Duration;

use skiff_store::{EventKind, KeyRange, RangeRequest, ReadConsistency, Store};

/// Builds something from the keys under one prefix.
pub(super) trait Follower: Send + 'static {
    /// Everything is about to be listed again.
    fn reset(&mut self);
    fn put(&mut self, key: &str, value: &[u8]);
    fn delete(&mut self, key: &str);
    /// The view now reflects the store at `revision`.
    fn settled(&mut self, revision: u64);
}

/// Follows `prefix` with `follower` in a task that ends when the store
/// shuts down.
pub(super) fn spawn(store: Store, prefix: String, mut follower: impl Follower) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            match follow(&store, &prefix, &mut follower).await {
                Ok(()) | Err(skiff_store::Error::Shutdown) => return,
                Err(error) => tracing::debug!(%prefix, %error, "following the store again"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
}

/// Lists, then watches until the watch fails (an error) or the store
/// shuts down (`Ok`).
async fn follow(store: &Store, prefix: &str, follower: &mut impl Follower) -> skiff_store::Result<()> {
    let page = store
        .range(
            RangeRequest::new(KeyRange::prefix(prefix.to_string())),
            ReadConsistency::Linearizable,
        )
        .await?;
    follower.reset();
    for kv in &page.kvs {
        follower.put(&String::from_utf8_lossy(&kv.key), &kv.value);
    }
    follower.settled(page.revision);
    let mut watcher = store
        .watch(KeyRange::prefix(prefix.to_string()), page.revision + 1)
        .await?;
    while let Some(batch) = watcher.next().await {
        let mut last = None;
        for event in batch? {
            let key = String::from_utf8_lossy(&event.kv.key);
            match event.kind {
                EventKind::Put => follower.put(&key, &event.kv.value),
                EventKind::Delete => follower.delete(&key),
            }
            last = Some(event.kv.mod_revision);
        }
        if let Some(revision) = last {
            follower.settled(revision);
        }
    }
    Ok(())
}
