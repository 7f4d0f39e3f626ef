//! The ReplicaSet controller: keeps `spec.replicas` active pods that
//! match the set's selector, and reports how many are ready and
//! available.
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
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use skiff_client::events::{Kind, reference};

use crate::Context;
use crate::error::{Error, Result, is_not_found};
use crate::owner::{self, controller_reference};
use crate::pods;

/// The most pods one reconcile creates or deletes (Kubernetes' burst).
const BURST: usize = 500;

/// Runs the controller until the client's watches end.
pub async fn run(client: kube::Client) {
    let context = Context::new(&client, "replicaset-controller");
    let controller = Controller::new(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default());
    let sets = controller.store();
    controller
        .watches(Api::<Pod>::all(client), watcher::Config::default(), move |pod| {
            owner::owners_of_child(&sets, &pod.metadata, |set| set.spec.as_ref().map(|s| &s.selector))
        })
        .run(reconcile, crate::retry_later, context)
        .for_each(|result| async move { crate::log_outcome("replicaset", result) })
        .await;
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = rs.namespace().unwrap_or_default();
    let Some(spec) = rs.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if skiff_client::selector::is_empty(&spec.selector) {
        // The API refuses such sets; one stored before validation existed
        // is left alone rather than allowed to claim every pod.
        return Ok(Action::await_change());
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = pods_api
        .list(&ListParams::default().labels(&skiff_client::selector::to_query(&spec.selector)))
        .await?;
    let claimed = owner::claim(&pods_api, rs.as_ref(), &spec.selector, listed.items).await?;
    let active: Vec<&Pod> = claimed.iter().filter(|p| pods::is_active(p)).collect();
    let want = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);

    let mut failure = None;
    if rs.metadata.deletion_timestamp.is_none() {
        if active.len() < want {
            let missing = (want - active.len()).min(BURST);
            let template = spec.template.clone().unwrap_or_default();
            failure = create_pods(&ctx, &rs, &pods_api, &template, missing).await.err();
        } else if active.len() > want {
            let mut surplus = active.clone();
            surplus.sort_by(|a, b| pods::deletion_order(a, b));
            surplus.truncate((active.len() - want).min(BURST));
            delete_pods(&ctx, &rs, &pods_api, &surplus).await?;
        }
    }

    let now = Timestamp::now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let status = status_of(&rs, &active, min_ready, now, failure.as_deref());
    if rs.status.as_ref() != Some(&status) {
        let sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
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

/// A pod for `rs` from its template.
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
async fn create_pods(
    ctx: &Context,
    rs: &ReplicaSet,
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

async fn delete_pods(ctx: &Context, rs: &ReplicaSet, api: &Api<Pod>, pods: &[&Pod]) -> Result<()> {
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
fn status_of(
    rs: &ReplicaSet,
    active: &[&Pod],
    min_ready: i32,
    now: Timestamp,
    failure: Option<&str>,
) -> ReplicaSetStatus {
    let template_labels: BTreeMap<String, String> = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX);
    let old = rs.status.clone().unwrap_or_default();
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
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    }
}
