//! The ReplicaSet controller: keeps `spec.replicas` active pods that
//! match the set's selector, and reports how many are ready and
//! available. ReplicationControllers (core/v1) are run by the same code
//! through the [`Replicated`] adapter, as in Kubernetes, where the
//! replication manager is the ReplicaSet controller behind a conversion.
//!
//! Each reconcile lists the namespace's pods that match the selector
//! straight from the API (a consistent read, so pods created by the
//! previous reconcile are always seen and no "expectations" bookkeeping
//! is needed), claims them (adopting matching orphans), then creates the
//! missing pods in slow-start batches (1, 2, 4, …, so a template the API
//! refuses costs one request, not hundreds) or deletes the surplus, least
//! useful first. Any change to a set or to a pod it controls (or an
//! orphan it could adopt) triggers a reconcile.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use skiff_client::events::{Kind, reference};

use crate::Context;
use crate::error::{Error, Result, is_not_found};
use crate::owner::{self, controller_reference};
use crate::pods;

/// What the controller reads of a set of replicas. A ReplicaSet's own
/// fields; a ReplicationController's converted (its equality selector
/// becomes `matchLabels`; its status has the ReplicaSet's fields).
pub(crate) trait Replicated:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// `None` when the object has no spec.
    fn selector(&self) -> Option<LabelSelector>;
    fn replicas(&self) -> i32;
    fn min_ready_seconds(&self) -> i32;
    fn template(&self) -> Option<&PodTemplateSpec>;
    fn status(&self) -> Option<ReplicaSetStatus>;
}

impl Replicated for ReplicaSet {
    fn selector(&self) -> Option<LabelSelector> {
        self.spec.as_ref().map(|s| s.selector.clone())
    }
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }
    fn status(&self) -> Option<ReplicaSetStatus> {
        self.status.clone()
    }
}

impl Replicated for ReplicationController {
    fn selector(&self) -> Option<LabelSelector> {
        self.spec.as_ref().map(|s| LabelSelector {
            match_labels: s.selector.clone(),
            match_expressions: None,
        })
    }
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }
    fn status(&self) -> Option<ReplicaSetStatus> {
        // The same fields under another name.
        let status = self.status.as_ref()?;
        serde_json::to_value(status)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
    }
}

/// The most pods one reconcile creates or deletes (Kubernetes' burst).
const BURST: usize = 500;

/// Runs the controller for ReplicaSets until the client's watches end.
pub async fn run(client: kube::Client) {
    run_for::<ReplicaSet>(client, "replicaset-controller", "replicaset").await;
}

/// Runs the controller for ReplicationControllers until the client's
/// watches end.
pub async fn run_replication(client: kube::Client) {
    run_for::<ReplicationController>(client, "replication-controller", "replicationcontroller").await;
}

async fn run_for<K: Replicated>(client: kube::Client, component: &'static str, name: &'static str) {
    let context = Context::new(&client, component);
    let controller = Controller::new(Api::<K>::all(client.clone()), watcher::Config::default());
    let sets = controller.store();
    controller
        .watches(Api::<Pod>::all(client), watcher::Config::default(), move |pod| {
            owner::owners_of_child(&sets, &pod.metadata, K::selector)
        })
        .run(crate::metered(name, reconcile::<K>), crate::retry_later, context)
        .for_each(|result| async move { crate::log_outcome(name, result) })
        .await;
}

async fn reconcile<K: Replicated>(rs: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = rs.namespace().unwrap_or_default();
    let Some(selector) = rs.selector() else {
        return Ok(Action::await_change());
    };
    if skiff_client::selector::is_empty(&selector) {
        // The API refuses such sets; one stored before validation existed
        // is left alone rather than allowed to claim every pod.
        return Ok(Action::await_change());
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = pods_api
        .list(&ListParams::default().labels(&skiff_client::selector::to_query(&selector)))
        .await?;
    let claimed = owner::claim(&pods_api, rs.as_ref(), &selector, listed.items).await?;
    let active: Vec<&Pod> = claimed.iter().filter(|p| pods::is_active(p)).collect();
    let want = usize::try_from(rs.replicas().max(0)).unwrap_or(0);

    let mut failure = None;
    if rs.meta().deletion_timestamp.is_none() {
        if active.len() < want {
            let missing = (want - active.len()).min(BURST);
            let template = rs.template().cloned().unwrap_or_default();
            failure = create_pods(&ctx, rs.as_ref(), &pods_api, &template, missing)
                .await
                .err();
        } else if active.len() > want {
            let mut surplus = active.clone();
            surplus.sort_by(|a, b| pods::deletion_order(a, b));
            surplus.truncate((active.len() - want).min(BURST));
            delete_pods(&ctx, rs.as_ref(), &pods_api, &surplus).await?;
        }
    }

    let now = Timestamp::now();
    let min_ready = rs.min_ready_seconds();
    let status = status_of(rs.as_ref(), &active, min_ready, now, failure.as_deref());
    if rs.status().as_ref() != Some(&status) {
        let sets: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
        if !crate::patch_status(&sets, &rs.name_any(), &status).await? {
            return Ok(Action::await_change());
        }
    }
    if failure.is_some() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    // A pod that is ready but not yet available becomes available with no
    // event to say so: look again when it does.
    let next = active
        .iter()
        .filter_map(|p| pods::until_available(p, min_ready, now))
        .min();
    Ok(match next {
        Some(after) => crate::requeue(after + Duration::from_millis(100)),
        None => Action::await_change(),
    })
}

/// A pod for a set from its template.
pub(crate) fn pod_from_template(
    template: &PodTemplateSpec,
    owner: OwnerReference,
    namespace: &str,
    prefix: &str,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            namespace: Some(namespace.to_string()),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Creates `count` pods in batches of 1, 2, 4, …; stops at the first batch
/// with a failure and returns its message.
async fn create_pods<K: Replicated>(
    ctx: &Context,
    rs: &K,
    api: &Api<Pod>,
    template: &PodTemplateSpec,
    count: usize,
) -> std::result::Result<(), String> {
    let namespace = rs.namespace().unwrap_or_default();
    let pod = pod_from_template(template, controller_reference(rs), &namespace, &rs.name_any());
    let subject = reference(rs);
    let mut created = 0;
    let mut batch = 1;
    while created < count {
        let size = batch.min(count - created);
        let params = PostParams::default();
        let results = futures::future::join_all((0..size).map(|_| api.create(&params, &pod))).await;
        let mut failed = None;
        for result in results {
            match result {
                Ok(pod) => ctx.events.record(
                    &subject,
                    Kind::Normal,
                    "SuccessfulCreate",
                    "Create",
                    format!("Created pod: {}", pod.name_any()),
                ),
                Err(e) => {
                    let message = format!("Error creating: {}", crate::api_message(&e));
                    ctx.events
                        .record(&subject, Kind::Warning, "FailedCreate", "Create", message.clone());
                    failed = Some(message);
                }
            }
        }
        if let Some(message) = failed {
            return Err(message);
        }
        created += size;
        batch *= 2;
    }
    Ok(())
}

async fn delete_pods<K: Replicated>(ctx: &Context, rs: &K, api: &Api<Pod>, pods: &[&Pod]) -> Result<()> {
    let subject = reference(rs);
    let results = futures::future::join_all(pods.iter().map(|p| {
        let name = p.name_any();
        let params = DeleteParams::default().preconditions(kube::api::Preconditions {
            uid: p.metadata.uid.clone(),
            resource_version: None,
        });
        async move { (name.clone(), api.delete(&name, &params).await) }
    }))
    .await;
    for (name, result) in results {
        match result {
            Ok(_) => ctx.events.record(
                &subject,
                Kind::Normal,
                "SuccessfulDelete",
                "Delete",
                format!("Deleted pod: {name}"),
            ),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    Ok(())
}

/// The status `rs` reports for its active pods.
fn status_of<K: Replicated>(
    rs: &K,
    active: &[&Pod],
    min_ready: i32,
    now: Timestamp,
    failure: Option<&str>,
) -> ReplicaSetStatus {
    let template_labels: BTreeMap<String, String> = rs
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX);
    let old = rs.status().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = old
        .conditions
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "ReplicaFailure")
        .collect();
    if let Some(message) = failure {
        conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some(message.to_string()),
            last_transition_time: Some(Time(now)),
        });
    }
    ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: Some(count(&|p| {
            let labels = p.labels();
            template_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        })),
        ready_replicas: Some(count(&pods::is_ready)),
        available_replicas: Some(count(&|p| pods::is_available(p, min_ready, now))),
        observed_generation: rs.meta().generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    }
}
