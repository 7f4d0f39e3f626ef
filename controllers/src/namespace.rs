//! Namespace deletion: a namespace being deleted is emptied, then its
//! `kubernetes` finalizer is removed (through `namespaces/finalize`) so
//! the API server lets it go.
//!
//! Every namespaced kind discovery lists (with `list` and `delete`) is
//! emptied with one delete-collection per kind, pods with their grace
//! period. The namespace waits while anything remains (objects held by
//! finalizers or terminating pods included), and its status says what,
//! with the `NamespaceContentRemaining` condition `kubectl describe`
//! shows.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::error::{Result, is_not_found};

/// The finalizer the API server puts on every namespace.
pub const FINALIZER: &str = "kubernetes";

struct Context {
    client: kube::Client,
}

/// Runs the controller until the client's watches end.
pub async fn run(client: kube::Client) {
    let context = Arc::new(Context { client: client.clone() });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .run(crate::metered("namespace", reconcile), crate::retry_later, context)
        .for_each(|result| async move { crate::log_outcome("namespace", result) })
        .await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.clone()).unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let remaining = empty(&ctx.client, &name).await?;
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    if !remaining.is_empty() {
        let message = format!("Some resources are remaining: {}", remaining.join(", "));
        let condition = NamespaceCondition {
            type_: "NamespaceContentRemaining".into(),
            status: "True".into(),
            reason: Some("SomeResourcesRemain".into()),
            message: Some(message),
            last_transition_time: Some(Time(Timestamp::now())),
        };
        let patch = json!({"status": {"conditions": [condition]}});
        let _ = namespaces
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await;
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let mut finalizing = (*ns).clone();
    if let Some(spec) = finalizing.spec.as_mut() {
        spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
    }
    match namespaces
        .replace_subresource("finalize", &name, &PostParams::default(), &finalizing)
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes everything in `namespace`; returns what is still there, as
/// `N resource` entries (empty when the namespace is empty).
async fn empty(client: &kube::Client, namespace: &str) -> Result<Vec<String>> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut remaining = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            let usable = caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::DELETE);
            if !usable {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
            let listed = api.list(&ListParams::default()).await?;
            if listed.items.is_empty() {
                continue;
            }
            remaining.push(format!("{}: {}", resource.plural, listed.items.len()));
            let live = listed.items.iter().filter(|o| o.metadata.deletion_timestamp.is_none());
            let live: Vec<String> = live.map(|o| o.name_any()).collect();
            if live.is_empty() {
                continue;
            }
            if caps.supports_operation(verbs::DELETE_COLLECTION) {
                api.delete_collection(&DeleteParams::background(), &ListParams::default())
                    .await?;
            } else {
                for name in live {
                    match api.delete(&name, &DeleteParams::background()).await {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
    Ok(remaining)
}
