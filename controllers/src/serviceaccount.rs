//! What every namespace holds for its pods' identity, as kube-controller-
//! manager's service-account and root-CA publisher controllers keep it:
//! the `default` ServiceAccount, and the `kube-root-ca.crt` ConfigMap
//! whose `ca.crt` lets an in-cluster client verify the API server.
//!
//! One reconcile per namespace, triggered by the namespace and by a change
//! to either object (so a deleted `default` ServiceAccount comes back, and
//! an edited ConfigMap is put right). A namespace being deleted is left
//! alone: the namespace controller is emptying it.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::error::{Result, is_conflict};

/// The ServiceAccount a pod runs as when it names none.
pub const DEFAULT_ACCOUNT: &str = "default";
/// The ConfigMap holding the cluster's root CA.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its key.
pub const ROOT_CA_KEY: &str = "ca.crt";

struct Context {
    client: kube::Client,
    /// PEM of the CA that signs the API server's certificate; no
    /// ConfigMap is published without one.
    root_ca: Option<String>,
}

/// Runs the controller until the client's watches end.
pub async fn run(client: kube::Client, root_ca: Option<String>) {
    let context = Arc::new(Context {
        client: client.clone(),
        root_ca,
    });
    let by_namespace = |name: &str, wanted: &str, namespace: Option<String>| {
        (name == wanted)
            .then_some(namespace)
            .flatten()
            .map(|ns| ObjectRef::<Namespace>::new(&ns))
    };
    Controller::new(Api::<Namespace>::all(client.clone()), watcher::Config::default())
        .watches(
            Api::<ServiceAccount>::all(client.clone()),
            watcher::Config::default().fields(&format!("metadata.name={DEFAULT_ACCOUNT}")),
            move |sa| by_namespace(&sa.name_any(), DEFAULT_ACCOUNT, sa.namespace()),
        )
        .watches(
            Api::<ConfigMap>::all(client),
            watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIG_MAP}")),
            move |cm| by_namespace(&cm.name_any(), ROOT_CA_CONFIG_MAP, cm.namespace()),
        )
        .run(crate::metered("serviceaccount", reconcile), crate::retry_later, context)
        .for_each(|result| async move { crate::log_outcome("serviceaccount", result) })
        .await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action> {
    let terminating = ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if ns.metadata.deletion_timestamp.is_some() || terminating {
        return Ok(Action::await_change());
    }
    let namespace = ns.name_any();
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &namespace);
    if accounts.get_opt(DEFAULT_ACCOUNT).await?.is_none() {
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT_ACCOUNT.into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Err(e) if !is_conflict(&e) => return Err(e.into()),
            _ => {}
        }
    }
    if let Some(ca) = &ctx.root_ca {
        let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
        let wanted = BTreeMap::from([(ROOT_CA_KEY.to_string(), ca.clone())]);
        match maps.get_opt(ROOT_CA_CONFIG_MAP).await? {
            Some(current) if current.data.as_ref() == Some(&wanted) => {}
            Some(current) => {
                // Put right: the CA and nothing else in `data`.
                let mut data: serde_json::Map<String, serde_json::Value> = current
                    .data
                    .unwrap_or_default()
                    .into_keys()
                    .map(|key| (key, serde_json::Value::Null))
                    .collect();
                data.insert(ROOT_CA_KEY.into(), json!(ca));
                let patch = json!({"data": data});
                maps.patch(ROOT_CA_CONFIG_MAP, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            None => {
                let map = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(ROOT_CA_CONFIG_MAP.into()),
                        ..ObjectMeta::default()
                    },
                    data: Some(wanted),
                    ..ConfigMap::default()
                };
                match maps.create(&PostParams::default(), &map).await {
                    Err(e) if !is_conflict(&e) => return Err(e.into()),
                    _ => {}
                }
            }
        }
    }
    Ok(Action::await_change())
}
