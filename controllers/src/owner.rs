//! Controller references: which object controls which, and claiming
//! (adopting matching orphans, releasing non-matching children) as
//! Kubernetes' controller reference manager does.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{Result, is_not_found};

/// The owner reference a controller puts on what it creates: it is the
/// controller, and foreground deletion of it waits for the child.
pub fn controller_reference<K>(owner: &K) -> OwnerReference
where
    K: Resource<DynamicType = ()>,
{
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The controller reference among `meta`'s owner references.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// The owners of kind `K` a child event concerns: its controller if that
/// is a `K`, or for an orphan every `K` in its namespace whose selector
/// (`selector_of`) is not empty and matches it.
pub fn owners_of_child<K>(
    owners: &Store<K>,
    child: &ObjectMeta,
    selector_of: impl Fn(&K) -> Option<LabelSelector>,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let namespace = child.namespace.clone().unwrap_or_default();
    if let Some(r) = controller_of(child) {
        if r.kind == K::kind(&()) && r.api_version == K::api_version(&()) {
            return vec![ObjectRef::new(&r.name).within(&namespace)];
        }
        return Vec::new();
    }
    static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();
    let labels = child.labels.as_ref().unwrap_or(&NO_LABELS);
    owners
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace.as_str()))
        .filter(|o| {
            selector_of(o)
                .is_some_and(|s| !skiff_client::selector::is_empty(&s) && skiff_client::selector::matches(&s, labels))
        })
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Of `candidates` (everything in the owner's namespace that the owner's
/// selector might pick), the ones `owner` controls after claiming:
///
/// * its children that still match `selector` are kept;
/// * its children that no longer match are released (their reference to
///   the owner is removed);
/// * orphans that match and are not being deleted are adopted, unless the
///   owner itself is being deleted.
///
/// A child that vanished meanwhile is skipped; any other failed write is
/// an error, so the reconcile retries.
pub async fn claim<K, C>(api: &Api<C>, owner: &K, selector: &LabelSelector, candidates: Vec<C>) -> Result<Vec<C>>
where
    K: Resource<DynamicType = ()>,
    C: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let owner_deleting = owner.meta().deletion_timestamp.is_some();
    let empty = BTreeMap::new();
    let mut claimed = Vec::new();
    for child in candidates {
        let labels = child.meta().labels.as_ref().unwrap_or(&empty);
        let matching = skiff_client::selector::matches(selector, labels);
        match controller_of(child.meta()) {
            Some(r) if r.uid == uid => {
                if matching {
                    claimed.push(child);
                } else if !owner_deleting {
                    release(api, &child, &uid).await?;
                }
            }
            Some(_) => {}
            None if matching && !owner_deleting && child.meta().deletion_timestamp.is_none() => {
                if let Some(adopted) = adopt(api, &child, controller_reference(owner)).await? {
                    claimed.push(adopted);
                }
            }
            None => {}
        }
    }
    Ok(claimed)
}

/// Adds `reference` to the child.
async fn adopt<C>(api: &Api<C>, child: &C, reference: OwnerReference) -> Result<Option<C>>
where
    C: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut references = child.meta().owner_references.clone().unwrap_or_default();
    references.push(reference);
    set_references(api, child, &references).await
}

/// Removes the reference to `uid` from the child.
async fn release<C>(api: &Api<C>, child: &C, uid: &str) -> Result<()>
where
    C: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let references: Vec<OwnerReference> = child
        .meta()
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.uid != uid)
        .cloned()
        .collect();
    set_references(api, child, &references).await.map(|_| ())
}

/// Replaces the child's owner references, guarded by its
/// resourceVersion; `None` if the child is gone.
async fn set_references<C>(api: &Api<C>, child: &C, references: &[OwnerReference]) -> Result<Option<C>>
where
    C: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {
        "ownerReferences": references,
        "resourceVersion": child.meta().resource_version,
    }});
    match api
        .patch(&child.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(patched) => Ok(Some(patched)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
