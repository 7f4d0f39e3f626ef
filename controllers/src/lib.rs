//! skiff's controllers: the loops that turn what users ask for into pods.
//!
//! Each controller is a kube-runtime [`Controller`](kube::runtime::Controller)
//! over the kind it owns, reconciling one object at a time, and talks to
//! the API through kube-rs like any other client:
//!
//! * [`replicaset`] keeps `replicas` pods from a ReplicaSet's template;
//! * [`deployment`] rolls a Deployment's ReplicaSets (RollingUpdate with
//!   maxSurge/maxUnavailable, or Recreate), keeps revision history for
//!   `kubectl rollout undo`, and reports the Progressing/Available
//!   conditions `kubectl rollout status` reads. The rollout arithmetic is
//!   a pure function in [`deployment::rollout`];
//! * [`daemonset`] runs one pod of a DaemonSet on every node that should
//!   have it, and rolls them to a new template;
//! * [`job`] runs a Job's pods to completion, within its backoffLimit
//!   and activeDeadlineSeconds, and removes it after
//!   ttlSecondsAfterFinished;
//! * [`endpoints`] keeps each Service's Endpoints and EndpointSlice in
//!   line with the pods it selects;
//! * [`namespace`] empties a namespace being deleted, then lets it go;
//! * [`nodelifecycle`] marks nodes that stop heartbeating unreachable,
//!   taints them, and evicts the pods that do not tolerate it;
//! * [`gc`] is the garbage collector: it deletes objects whose owners are
//!   gone, and carries out foreground and orphan deletion.
//!
//! [`start`] runs them all as background tasks; `skiff server` calls it.
//! Shared pieces: [`owner`] (controller references, adoption), [`pods`]
//! (active/ready/available, which pod to remove first) and [`error`].

pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod error;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod owner;
pub mod pods;
pub mod replicaset;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;

use crate::error::Error;

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
}

/// Starts every controller with `client`.
pub fn start(client: kube::Client, config: Config) -> Controllers {
    Controllers {
        tasks: vec![
            tokio::spawn(nodelifecycle::run(client.clone(), config.node_lifecycle)),
            tokio::spawn(replicaset::run(client.clone())),
            tokio::spawn(deployment::run(client.clone())),
            tokio::spawn(job::run(client.clone())),
            tokio::spawn(daemonset::run(client.clone())),
            tokio::spawn(endpoints::run(client.clone())),
            tokio::spawn(namespace::run(client.clone())),
            tokio::spawn(gc::run(client)),
        ],
    }
}

/// The error policy every controller uses: log, and try again shortly.
fn retry_later<K, C>(object: Arc<K>, error: &Error, _: Arc<C>) -> Action
where
    K: kube::Resource,
{
    tracing::debug!(name = %object.meta().name.as_deref().unwrap_or_default(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
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
