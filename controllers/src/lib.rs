//! skiff's controllers: the loops that turn what users ask for into pods.
//!
//! Each controller is a kube-runtime [`Controller`](kube::runtime::Controller)
//! over the kind it owns, reconciling one object at a time, and talks to
//! the API through kube-rs like any other client:
//!
//! * [`replicaset`] keeps `replicas` pods from a ReplicaSet's (or a
//!   ReplicationController's) template;
//! * [`deployment`] rolls a Deployment's ReplicaSets (RollingUpdate with
//!   maxSurge/maxUnavailable, or Recreate), keeps revision history for
//!   `kubectl rollout undo`, and reports the Progressing/Available
//!   conditions `kubectl rollout status` reads. The rollout arithmetic is
//!   a pure function in [`deployment::rollout`];
//! * [`daemonset`] runs one pod of a DaemonSet on every node that should
//!   have it, and rolls them to a new template;
//! * [`statefulset`] keeps a StatefulSet's pods under stable names
//!   (`<set>-<ordinal>`), creating and removing them in ordinal order
//!   (OrderedReady) or all at once (Parallel), and rolls them from the
//!   highest ordinal down to the partition. The plan is a pure function,
//!   [`statefulset::plan`];
//! * [`job`] runs a Job's pods to completion, within its backoffLimit
//!   and activeDeadlineSeconds, and removes it after
//!   ttlSecondsAfterFinished;
//! * [`cronjob`] starts a Job from a CronJob at each time its schedule
//!   ([`cronjob::schedule`], in the CronJob's time zone) names, within
//!   its startingDeadlineSeconds and concurrencyPolicy, and keeps its
//!   history of finished Jobs short. What to do at a given time is a
//!   pure function, [`cronjob::plan`];
//! * [`endpoints`] keeps each Service's Endpoints and EndpointSlice in
//!   line with the pods it selects;
//! * [`namespace`] empties a namespace being deleted, then lets it go;
//! * [`nodelifecycle`] marks nodes that stop heartbeating unreachable,
//!   taints them, and evicts the pods that do not tolerate it;
//! * [`gc`] is the garbage collector: it deletes objects whose owners are
//!   gone, and carries out foreground and orphan deletion;
//! * [`apiservice`] registers an APIService for every group version
//!   served and reports the local ones available;
//! * [`serviceaccount`] gives every namespace its `default`
//!   ServiceAccount and the `kube-root-ca.crt` ConfigMap;
//! * [`certificates`] approves the CertificateSigningRequests of joining
//!   and renewing nodes after asking the API whether their requester may
//!   ([`certificates::approver`]), and issues the certificates of
//!   approved node and proxy client requests with the cluster CA
//!   ([`certificates::signer`], when given an [`certificates::Authority`]).
//!
//! [`start`] runs them all as background tasks; `skiff server` calls it.
//! [`metrics`] counts and times their reconciles under client-go's
//! work-queue metric names ([`Config::metrics`]).
//! Shared pieces: [`owner`] (controller references, adoption), [`pods`]
//! (active/ready/available, which pod to remove first) and [`error`].

pub mod apiservice;
pub mod certificates;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod error;
pub mod gc;
pub mod job;
pub mod metrics;
pub mod namespace;
pub mod nodelifecycle;
pub mod owner;
pub mod podautoscaler;
pub mod pods;
pub mod replicaset;
pub mod serviceaccount;
pub mod statefulset;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;

use crate::error::Error;
pub(crate) use crate::metrics::metered;

/// The running controllers; dropping this stops them.
#[derive(Debug)]
pub struct Controllers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Settings of the controllers that have any.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub node_lifecycle: nodelifecycle::Config,
    /// PEM of the CA that signs the API server's certificate, published in
    /// every namespace's `kube-root-ca.crt` ConfigMap.
    pub root_ca: Option<String>,
    /// What issues client certificates with the cluster CA; without it, no
    /// CertificateSigningRequest is signed.
    pub authority: Option<certificates::Authority>,
    /// Where the controllers' work-queue metrics go (one set for the
    /// process, registered once, given to every [`start`]).
    pub metrics: metrics::Metrics,
    pub autoscaler: podautoscaler::Config,
}

/// Starts every controller with `client`, each recording into
/// `config.metrics`.
pub fn start(client: kube::Client, config: Config) -> Controllers {
    let metrics = config.metrics;
    let spawn = |controller| tokio::spawn(metrics.scope(controller));
    let mut tasks = vec![
        spawn(certificates::approver::run(client.clone()).boxed()),
        spawn(nodelifecycle::run(client.clone(), config.node_lifecycle).boxed()),
        spawn(replicaset::run(client.clone()).boxed()),
        spawn(replicaset::run_replication(client.clone()).boxed()),
        spawn(deployment::run(client.clone()).boxed()),
        spawn(job::run(client.clone()).boxed()),
        spawn(cronjob::run(client.clone()).boxed()),
        spawn(daemonset::run(client.clone()).boxed()),
        spawn(statefulset::run(client.clone()).boxed()),
        spawn(endpoints::run(client.clone()).boxed()),
        spawn(namespace::run(client.clone()).boxed()),
        spawn(apiservice::run(client.clone()).boxed()),
        spawn(serviceaccount::run(client.clone(), config.root_ca).boxed()),
        spawn(podautoscaler::run(client.clone(), config.autoscaler).boxed()),
    ];
    if let Some(authority) = config.authority {
        tasks.push(spawn(certificates::signer::run(client.clone(), authority).boxed()));
    }
    tasks.push(spawn(gc::run(client).boxed()));
    Controllers { tasks }
}

/// What a controller's reconciles share: its client, and an event recorder
/// under the controller's name.
struct Context {
    client: kube::Client,
    events: skiff_client::events::Recorder,
}

impl Context {
    fn new(client: &kube::Client, component: &str) -> Arc<Context> {
        Arc::new(Context {
            client: client.clone(),
            events: skiff_client::events::Recorder::new(client.clone(), component, None),
        })
    }
}

/// How long after a failed reconcile [`retry_later`] retries it.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The error policy every controller uses: log, and try again shortly.
fn retry_later<K, C>(object: Arc<K>, error: &Error, _: Arc<C>) -> Action
where
    K: kube::Resource,
{
    tracing::debug!(name = %object.meta().name.as_deref().unwrap_or_default(), %error, "reconcile failed; retrying");
    Action::requeue(RETRY_AFTER)
}

/// The longest a reconcile asks to wait before looking again. Longer
/// waits are cut to this (the reconcile then works out the rest): the
/// controller's timer wheel refuses deadlines more than about two years
/// out, and a cron schedule such as `0 0 29 2 *` or a large
/// `minReadySeconds` can ask for more.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Look again after `after`, or after [`LONGEST_WAIT`] if that is sooner.
fn requeue(after: Duration) -> Action {
    Action::requeue(after.min(LONGEST_WAIT))
}

/// `at` plus `seconds`, saturating at the end of time: durations come from
/// user input (`activeDeadlineSeconds`, `tolerationSeconds` are i64), and
/// an overflowing timestamp sum panics.
fn plus_seconds(at: k8s_openapi::jiff::Timestamp, seconds: i64) -> k8s_openapi::jiff::Timestamp {
    at.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(if seconds < 0 {
            k8s_openapi::jiff::Timestamp::MIN
        } else {
            k8s_openapi::jiff::Timestamp::MAX
        })
}

/// Merge-patches `status` onto the status of `name`; `Ok(false)` when the
/// object is gone (its reconcile then has nothing left to do).
async fn patch_status<K>(api: &kube::Api<K>, name: &str, status: &impl serde::Serialize) -> Result<bool, Error>
where
    K: Clone + serde::de::DeserializeOwned + Debug,
{
    let patch = kube::api::Patch::Merge(serde_json::json!({ "status": status }));
    match api.patch_status(name, &kube::api::PatchParams::default(), &patch).await {
        Ok(_) => Ok(true),
        Err(e) if error::is_not_found(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Logs a reconcile outcome the controller's stream yields.
fn log_outcome<K, QErr>(controller: &str, result: Result<(ObjectRef<K>, Action), controller::Error<Error, QErr>>)
where
    K: kube::Resource,
    K::DynamicType: Debug,
    QErr: std::error::Error,
{
    match result {
        Ok(_) => {}
        Err(controller::Error::ObjectNotFound(_)) => {}
        Err(e) => tracing::debug!(controller, error = %e, "reconcile"),
    }
}

/// The message of an API error, without kube-rs' decoration.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn user_given_seconds_saturate_instead_of_overflowing() {
        let now = Timestamp::now();
        assert_eq!(super::plus_seconds(now, i64::MAX), Timestamp::MAX);
        assert_eq!(super::plus_seconds(now, i64::MIN), Timestamp::MIN);
        assert_eq!(super::plus_seconds(now, 0), now);
    }
}
