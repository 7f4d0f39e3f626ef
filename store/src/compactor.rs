//! Automatic compaction, run by whichever node is leader.
//!
//! Every `check_every` the leader samples its revision. It compacts to the
//! newest sampled revision that is at least `keep_for` old and at least
//! `keep_revisions` behind the head, so watchers and paged lists have both
//! a time and a count window to resume in.
//!
//! The loop needs only four things of its node, named by [`Compactable`]
//! (implemented by [`Store`](crate::Store)), so it does not depend on the
//! store's internals.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::kv::Revision;

/// Automatic compaction: the leader compacts to the newest revision that
/// is both `keep_revisions` behind the head and at least `keep_for` old, as
/// kube-apiserver does with etcd every five minutes.
#[derive(Clone, Debug)]
pub struct CompactionPolicy {
    pub check_every: Duration,
    pub keep_revisions: u64,
    pub keep_for: Duration,
    pub enabled: bool,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            check_every: Duration::from_secs(60),
            keep_revisions: 10_000,
            keep_for: Duration::from_secs(300),
            enabled: true,
        }
    }
}

/// What the compaction loop needs of the node it runs on.
pub(crate) trait Compactable: Send + Sync + 'static {
    fn is_leader(&self) -> bool;
    /// The head revision.
    fn revision(&self) -> Revision;
    /// The current compaction point.
    fn compact_revision(&self) -> Result<Revision>;
    /// Compacts the cluster's history below `revision`.
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<Revision>> + Send;
}

/// Picks the compaction target from `(sampled_at, revision)` samples,
/// oldest first. Pure, so the policy is testable without a clock.
pub(crate) fn target(
    samples: &VecDeque<(Instant, Revision)>,
    now: Instant,
    head: Revision,
    compacted: Revision,
    policy: &CompactionPolicy,
) -> Option<Revision> {
    let by_count = head.checked_sub(policy.keep_revisions)?;
    let by_age = samples
        .iter()
        .rev()
        .find(|(at, _)| now.duration_since(*at) >= policy.keep_for)
        .map(|(_, rev)| *rev)?;
    let target = by_count.min(by_age);
    (target > compacted).then_some(target)
}

/// Samples `node` every `policy.check_every` and compacts while it leads.
pub(crate) async fn run(node: impl Compactable, policy: CompactionPolicy) {
    let mut samples: VecDeque<(Instant, Revision)> = VecDeque::new();
    let mut ticker = tokio::time::interval(policy.check_every);
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let head = node.revision();
        samples.push_back((now, head));
        // Keep only what the age window can still need.
        while samples.len() > 2
            && samples
                .get(1)
                .is_some_and(|(at, _)| now.duration_since(*at) >= policy.keep_for)
        {
            samples.pop_front();
        }
        if !node.is_leader() {
            continue;
        }
        let Ok(compacted) = node.compact_revision() else {
            continue;
        };
        if let Some(revision) = target(&samples, now, head, compacted, &policy)
            && let Err(e) = node.compact(revision).await
        {
            tracing::warn!(revision, error = %e, "automatic compaction failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_to_the_older_of_the_count_and_age_windows() {
        let policy = CompactionPolicy {
            check_every: Duration::from_secs(60),
            keep_revisions: 100,
            keep_for: Duration::from_secs(300),
            enabled: true,
        };
        let t0 = Instant::now();
        let samples: VecDeque<_> = [
            (t0, 50),
            (t0 + Duration::from_secs(60), 500),
            (t0 + Duration::from_secs(400), 900),
        ]
        .into_iter()
        .collect();
        let now = t0 + Duration::from_secs(400);
        // Age window: the newest sample at least 300 s old is 500 (at 60 s).
        assert_eq!(target(&samples, now, 1000, 0, &policy), Some(500));
        // Count window binds when the head is close.
        assert_eq!(target(&samples, now, 550, 0, &policy), Some(450));
        // Never backwards.
        assert_eq!(target(&samples, now, 1000, 500, &policy), None);
        // Too young: nothing is old enough yet.
        assert_eq!(target(&samples, t0 + Duration::from_secs(10), 1000, 0, &policy), None);
    }
}
