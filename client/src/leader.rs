//! Leader election on a coordination.k8s.io Lease, so that of several
//! control-plane servers exactly one runs the scheduler and the
//! controllers at a time.
//!
//! The rules are client-go's: a candidate takes the Lease when it is
//! free, or when its holder has not renewed it for `lease_duration` as
//! measured by the candidate's own clock since it *saw* the last renewal
//! (so clocks need not agree); the holder renews every `retry_period`
//! and gives up leadership when it has not managed to for
//! `renew_deadline`, which is shorter than the lease, so it stops before
//! anyone else may start. Every write is guarded by the Lease's
//! resourceVersion: of two candidates racing, one gets a conflict.
//!
//! [`LeaderElector::run`] calls `lead` when leadership is won and drops
//! the future it returned when leadership is lost, then competes again.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

/// How patient an elector is (client-go's defaults: 15 s, 10 s, 2 s).
#[derive(Clone, Debug)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One candidate for one Lease.
pub struct LeaderElector {
    leases: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The holder and renew time last seen, and when they were seen.
    observed: Option<(String, Option<Timestamp>, Instant)>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("lease", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// What a candidate may do with a Lease it has just read.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It holds the Lease: renew it.
    Renew,
    /// The Lease is free or expired: take it.
    Take,
    /// Someone else holds it.
    Wait,
}

/// The verdict for `identity` on a Lease held by `holder` (empty when
/// free), whose last renewal was seen `since` ago.
pub fn verdict(identity: &str, holder: &str, since: Duration, lease_duration: Duration) -> Verdict {
    if holder == identity {
        Verdict::Renew
    } else if holder.is_empty() || since >= lease_duration {
        Verdict::Take
    } else {
        Verdict::Wait
    }
}

impl LeaderElector {
    /// A candidate named `identity` for the Lease `namespace/name`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: impl Into<String>,
        timing: Timing,
    ) -> LeaderElector {
        LeaderElector {
            leases: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.into(),
            timing,
            observed: None,
        }
    }

    /// Competes for the Lease forever: while it is held, `lead()`'s future
    /// runs; it is dropped the moment leadership is lost.
    pub async fn run<F, Fut>(mut self, mut lead: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            while !self.try_acquire_or_renew().await {
                tokio::time::sleep(self.timing.retry_period).await;
            }
            tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
            let leading = lead();
            tokio::pin!(leading);
            let mut last_renewal = Instant::now();
            loop {
                tokio::select! {
                    () = &mut leading => {
                        tracing::info!(lease = %self.name, "the leader's work ended");
                        break;
                    }
                    () = tokio::time::sleep(self.timing.retry_period) => {
                        if self.try_acquire_or_renew().await {
                            last_renewal = Instant::now();
                        } else if last_renewal.elapsed() >= self.timing.renew_deadline {
                            tracing::warn!(lease = %self.name, identity = %self.identity, "lost the lease; stopping");
                            break;
                        }
                    }
                }
            }
        }
    }

    /// One attempt to take or renew the Lease; true if it is held now.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let now = Timestamp::now();
        let current = match self.leases.get_opt(&self.name).await {
            Ok(current) => current,
            Err(error) => {
                tracing::debug!(%error, lease = %self.name, "cannot read the lease");
                return false;
            }
        };
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return self.leases.create(&PostParams::default(), &lease).await.is_ok();
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let renewed = spec.renew_time.as_ref().map(|t| t.0);
        let seen = match &self.observed {
            Some((h, r, at)) if *h == holder && *r == renewed => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((holder.clone(), renewed, at));
                at
            }
        };
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.timing.lease_duration, Duration::from_secs);
        let next = match verdict(&self.identity, &holder, seen.elapsed(), duration) {
            Verdict::Wait => return false,
            Verdict::Renew => self.spec(
                spec.acquire_time.map_or(now, |t| t.0),
                now,
                spec.lease_transitions.unwrap_or(0),
            ),
            Verdict::Take => self.spec(now, now, spec.lease_transitions.unwrap_or(0) + 1),
        };
        lease.spec = Some(next);
        // The resourceVersion read above guards the write.
        self.leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .is_ok()
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: i32::try_from(self.timing.lease_duration.as_secs()).ok(),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_taken_when_free_or_expired_and_kept_by_its_holder() {
        let lease = Duration::from_secs(15);
        let cases = [
            ("a", "", 0, Verdict::Take),
            ("a", "a", 100, Verdict::Renew),
            ("a", "b", 3, Verdict::Wait),
            ("a", "b", 15, Verdict::Take),
        ];
        for (me, holder, seconds, want) in cases {
            assert_eq!(
                verdict(me, holder, Duration::from_secs(seconds), lease),
                want,
                "{me} vs {holder}"
            );
        }
    }
}
