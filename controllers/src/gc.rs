//! The garbage collector: ownerReferences made real.
//!
//! It watches every kind the API serves that can be listed, watched and
//! deleted (found through discovery, refreshed so new CRDs are covered)
//! and keeps a graph of owners and dependents by uid. Three things follow
//! from that graph:
//!
//! * **Background deletion.** When an object's owners are all gone, the
//!   object is deleted. "Gone" is confirmed by a live read of the owner
//!   (by name, comparing uids) before anything is deleted, so a dependent
//!   created just before its owner shows up in the graph is safe. Owner
//!   references to owners that are gone while others remain are removed.
//! * **Foreground deletion.** An owner being deleted with the
//!   `foregroundDeletion` finalizer has its dependents deleted (in the
//!   foreground too, when they have dependents of their own); the
//!   finalizer is removed, and so the owner deleted, once no dependent
//!   with `blockOwnerDeletion` remains.
//! * **Orphaning.** An owner being deleted with the `orphan` finalizer has
//!   its reference removed from every dependent, then the finalizer. The
//!   dependents are listed live, not taken from the graph, so one whose
//!   watch event is late is not left pointing at a deleted owner (and
//!   then collected).
//!
//! The graph is one task's state; API calls are made from that task in
//! order. A failed call puts the work back after a second. No work is done
//! until every watched kind has been listed once or its watch has failed
//! (after discovery adds a kind, work pauses until then): an owner's
//! dependents may be of any kind, and a foreground deletion on a partial
//! graph would let the owner go before them.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::discovery::{ApiResource, Discovery, Scope, verbs};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::mpsc;

use crate::error::is_not_found;

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";
/// How often discovery is repeated to pick up new kinds.
const REDISCOVER: Duration = Duration::from_secs(15);

/// A watched kind.
#[derive(Clone, Debug)]
struct Kind {
    resource: ApiResource,
    namespaced: bool,
}

/// One object as the graph knows it.
#[derive(Clone, Debug)]
struct Item {
    kind: usize,
    namespace: Option<String>,
    name: String,
    /// The version the graph saw: writes that act on `owners` are made
    /// conditional on it, so a stale graph never deletes or rewrites an
    /// object whose references have changed since.
    resource_version: Option<String>,
    owners: Vec<OwnerReference>,
    finalizers: Vec<String>,
    deleting: bool,
}

/// Work for the collector.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Work {
    /// Delete the object (by uid) if its owners are gone.
    CheckOwners(String),
    /// Carry on the foreground deletion of this owner.
    Foreground(String),
    /// Orphan the dependents of this owner.
    Orphan(String),
}

enum Input {
    Kind(usize, Box<watcher::Event<DynamicObject>>),
    /// The kind's watch failed: its first list is waited for no longer.
    Failed(usize),
    Retry(Work),
}

struct Collector {
    client: kube::Client,
    kinds: Vec<Kind>,
    /// `group/kind` → index in `kinds`.
    by_kind: HashMap<(String, String), usize>,
    items: HashMap<String, Item>,
    dependents: HashMap<String, BTreeSet<String>>,
    /// Per kind, the uids seen since its watch (re)started listing.
    relisting: HashMap<usize, BTreeSet<String>>,
    /// Kinds whose first list is in the graph, or whose watch failed. Work
    /// waits for all of them: an owner's dependents may be of a kind not
    /// listed yet, which a foreground deletion would miss.
    listed: BTreeSet<usize>,
    queue: VecDeque<Work>,
    queued: BTreeSet<Work>,
    input: mpsc::Sender<Input>,
}

/// Runs the collector until the client can no longer discover the API.
pub async fn run(client: kube::Client) {
    let (input, mut events) = mpsc::channel(1024);
    let mut gc = Collector {
        client,
        kinds: Vec::new(),
        by_kind: HashMap::new(),
        items: HashMap::new(),
        dependents: HashMap::new(),
        relisting: HashMap::new(),
        listed: BTreeSet::new(),
        queue: VecDeque::new(),
        queued: BTreeSet::new(),
        input,
    };
    let mut rediscover = tokio::time::interval(REDISCOVER);
    loop {
        tokio::select! {
            _ = rediscover.tick() => gc.discover().await,
            received = events.recv() => match received {
                Some(Input::Kind(kind, event)) => gc.observe(kind, *event),
                // A kind that cannot be listed (its CRD deleted just after
                // discovery) must not hold all other work back.
                Some(Input::Failed(kind)) => {
                    gc.listed.insert(kind);
                }
                Some(Input::Retry(work)) => gc.enqueue(work),
                None => return,
            },
            () = std::future::ready(()), if gc.ready() => gc.work_one().await,
        }
    }
}

impl Collector {
    /// Starts a watch on every kind not watched yet.
    async fn discover(&mut self) {
        let discovery = match Discovery::new(self.client.clone()).run().await {
            Ok(d) => d,
            Err(error) => {
                tracing::debug!(%error, "garbage collector: discovery failed");
                return;
            }
        };
        for group in discovery.groups() {
            for (resource, caps) in group.recommended_resources() {
                let key = (resource.group.clone(), resource.kind.clone());
                let watchable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                    .iter()
                    .all(|v| caps.supports_operation(v));
                // Events are many and never owners.
                if !watchable || resource.plural == "events" || self.by_kind.contains_key(&key) {
                    continue;
                }
                let index = self.kinds.len();
                self.kinds.push(Kind {
                    resource: resource.clone(),
                    namespaced: caps.scope == Scope::Namespaced,
                });
                self.by_kind.insert(key, index);
                let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
                let input = self.input.clone();
                tokio::spawn(async move {
                    let mut stream = watcher(api, watcher::Config::default()).boxed();
                    while let Some(event) = stream.next().await {
                        match event {
                            Ok(event) => {
                                if input.send(Input::Kind(index, Box::new(event))).await.is_err() {
                                    return;
                                }
                            }
                            Err(error) => {
                                tracing::debug!(%error, "garbage collector: watch failed; the watcher retries");
                                if input.send(Input::Failed(index)).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    }
                });
            }
        }
    }

    /// Whether there is work and the graph holds every watched kind.
    fn ready(&self) -> bool {
        !self.queue.is_empty() && self.listed.len() == self.kinds.len()
    }

    fn enqueue(&mut self, work: Work) {
        if self.queued.insert(work.clone()) {
            self.queue.push_back(work);
        }
    }

    fn retry(&self, work: Work) {
        let input = self.input.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = input.send(Input::Retry(work)).await;
        });
    }

    /// Updates the graph from a watch event and queues what it implies.
    fn observe(&mut self, kind: usize, event: watcher::Event<DynamicObject>) {
        match event {
            watcher::Event::Init => {
                self.relisting.insert(kind, BTreeSet::new());
            }
            watcher::Event::InitApply(object) => {
                if let Some(uid) = object.metadata.uid.clone() {
                    self.relisting.entry(kind).or_default().insert(uid);
                }
                self.upsert(kind, object);
            }
            watcher::Event::InitDone => {
                self.listed.insert(kind);
                // What the relist did not return was deleted meanwhile.
                let seen = self.relisting.remove(&kind).unwrap_or_default();
                let gone: Vec<String> = self
                    .items
                    .iter()
                    .filter(|(uid, item)| item.kind == kind && !seen.contains(*uid))
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in gone {
                    self.remove(&uid);
                }
            }
            watcher::Event::Apply(object) => self.upsert(kind, object),
            watcher::Event::Delete(object) => {
                if let Some(uid) = object.metadata.uid.as_deref() {
                    self.remove(uid);
                }
            }
        }
    }

    fn upsert(&mut self, kind: usize, object: DynamicObject) {
        let Some(uid) = object.metadata.uid.clone() else {
            return;
        };
        let item = Item {
            kind,
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone().unwrap_or_default(),
            resource_version: object.metadata.resource_version.clone(),
            owners: object.metadata.owner_references.clone().unwrap_or_default(),
            finalizers: object.metadata.finalizers.clone().unwrap_or_default(),
            deleting: object.metadata.deletion_timestamp.is_some(),
        };
        if let Some(old) = self.items.get(&uid) {
            for owner in &old.owners {
                if let Some(set) = self.dependents.get_mut(&owner.uid) {
                    set.remove(&uid);
                }
            }
        }
        for owner in &item.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.clone());
            // An owner waiting in the foreground re-checks as its
            // dependents change.
            if self.items.get(&owner.uid).is_some_and(|o| o.deleting) {
                self.enqueue(Work::Foreground(owner.uid.clone()));
            }
        }
        if item.deleting && item.finalizers.iter().any(|f| f == ORPHAN) {
            self.enqueue(Work::Orphan(uid.clone()));
        }
        if item.deleting && item.finalizers.iter().any(|f| f == FOREGROUND) {
            self.enqueue(Work::Foreground(uid.clone()));
        }
        let check = !item.owners.is_empty()
            && item
                .owners
                .iter()
                .any(|o| self.items.get(&o.uid).is_none_or(|owner| owner.deleting));
        self.items.insert(uid.clone(), item);
        if check {
            self.enqueue(Work::CheckOwners(uid));
        }
    }

    fn remove(&mut self, uid: &str) {
        let Some(item) = self.items.remove(uid) else {
            return;
        };
        for owner in &item.owners {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(uid);
            }
            if self.items.contains_key(&owner.uid) {
                self.enqueue(Work::Foreground(owner.uid.clone()));
            }
        }
        for dependent in self.dependents.get(uid).cloned().unwrap_or_default() {
            self.enqueue(Work::CheckOwners(dependent));
        }
    }

    async fn work_one(&mut self) {
        let Some(work) = self.queue.pop_front() else {
            return;
        };
        self.queued.remove(&work);
        let done = match &work {
            Work::CheckOwners(uid) => self.check_owners(uid).await,
            Work::Foreground(uid) => self.foreground(uid).await,
            Work::Orphan(uid) => self.orphan(uid).await,
        };
        if let Err(error) = done {
            tracing::debug!(?work, %error, "garbage collector: retrying");
            self.retry(work);
        }
    }

    fn api_for(&self, kind: usize, namespace: Option<&str>) -> Api<DynamicObject> {
        let resource = &self.kinds[kind].resource;
        match namespace {
            Some(ns) if self.kinds[kind].namespaced => Api::namespaced_with(self.client.clone(), ns, resource),
            _ => Api::all_with(self.client.clone(), resource),
        }
    }

    /// The kind an owner reference names.
    fn kind_of(&self, owner: &OwnerReference) -> Option<usize> {
        let group = owner.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        self.by_kind.get(&(group.to_string(), owner.kind.clone())).copied()
    }

    /// Whether `owner` of a dependent in `namespace` still exists: in the
    /// graph, or by a live read.
    async fn owner_exists(&self, owner: &OwnerReference, namespace: Option<&str>) -> kube::Result<bool> {
        if self.items.get(&owner.uid).is_some_and(|o| !o.deleting) {
            return Ok(true);
        }
        let Some(kind) = self.kind_of(owner) else {
            // A kind the API does not serve (yet): leave the dependent be.
            return Ok(true);
        };
        let namespace = if self.kinds[kind].namespaced { namespace } else { None };
        match self.api_for(kind, namespace).get_opt(&owner.name).await? {
            Some(found) => Ok(found.metadata.uid.as_deref() == Some(owner.uid.as_str())),
            None => Ok(false),
        }
    }

    async fn check_owners(&mut self, uid: &str) -> kube::Result<()> {
        let Some(item) = self.items.get(uid).cloned() else {
            return Ok(());
        };
        if item.owners.is_empty() {
            return Ok(());
        }
        let mut gone = Vec::new();
        let mut waiting_in_foreground = false;
        for owner in &item.owners {
            if self.owner_exists(owner, item.namespace.as_deref()).await? {
                if let Some(o) = self.items.get(&owner.uid)
                    && o.deleting
                    && o.finalizers.iter().any(|f| f == FOREGROUND)
                {
                    waiting_in_foreground = true;
                }
            } else {
                gone.push(owner.uid.clone());
            }
        }
        if gone.is_empty() || item.deleting {
            return Ok(());
        }
        let api = self.api_for(item.kind, item.namespace.as_deref());
        if gone.len() == item.owners.len() && !waiting_in_foreground {
            tracing::debug!(name = %item.name, "garbage collector: owners gone; deleting");
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(uid.to_string()),
                    resource_version: item.resource_version.clone(),
                }),
                ..DeleteParams::default()
            };
            return ignore_gone(api.delete(&item.name, &params).await.map(|_| ()));
        }
        if gone.len() < item.owners.len() {
            let remaining: Vec<&OwnerReference> = item.owners.iter().filter(|o| !gone.contains(&o.uid)).collect();
            let patch = json!({"metadata": {
                "ownerReferences": remaining,
                "resourceVersion": item.resource_version,
            }});
            return ignore_gone(
                api.patch(&item.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ()),
            );
        }
        Ok(())
    }

    async fn foreground(&mut self, uid: &str) -> kube::Result<()> {
        let Some(owner) = self.items.get(uid).cloned() else {
            return Ok(());
        };
        if !owner.deleting || !owner.finalizers.iter().any(|f| f == FOREGROUND) {
            return Ok(());
        }
        let dependents: Vec<(String, Item)> = self
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.items.get(d).map(|i| (d.clone(), i.clone())))
            .collect();
        let mut blocking = false;
        for (dependent_uid, dependent) in &dependents {
            let blocks = dependent
                .owners
                .iter()
                .any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
            blocking |= blocks;
            if dependent.deleting {
                continue;
            }
            let has_dependents = self.dependents.get(dependent_uid).is_some_and(|d| !d.is_empty());
            let params = DeleteParams {
                propagation_policy: Some(if has_dependents {
                    PropagationPolicy::Foreground
                } else {
                    PropagationPolicy::Background
                }),
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(dependent_uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let api = self.api_for(dependent.kind, dependent.namespace.as_deref());
            ignore_gone(api.delete(&dependent.name, &params).await.map(|_| ()))?;
        }
        if blocking {
            // Removed when the last blocking dependent is gone.
            return Ok(());
        }
        self.remove_finalizer(uid, &owner, FOREGROUND).await
    }

    async fn orphan(&mut self, uid: &str) -> kube::Result<()> {
        let Some(owner) = self.items.get(uid).cloned() else {
            return Ok(());
        };
        if !owner.deleting || !owner.finalizers.iter().any(|f| f == ORPHAN) {
            return Ok(());
        }
        // Listed live rather than taken from the graph: each kind has its
        // own watch, and a dependent's event may still be on its way when
        // the owner's arrives. Orphaning is rare enough to afford the lists.
        for kind in 0..self.kinds.len() {
            let namespace = match (&owner.namespace, self.kinds[kind].namespaced) {
                (_, false) => None,
                (Some(ns), true) => Some(ns.as_str()),
                // A cluster-scoped owner may have dependents in any namespace.
                (None, true) => None,
            };
            let api = self.api_for(kind, namespace);
            let listed = match api.list(&ListParams::default()).await {
                Ok(list) => list.items,
                // A kind gone since discovery has no dependents.
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            for dependent in listed {
                let owners = dependent.metadata.owner_references.clone().unwrap_or_default();
                if !owners.iter().any(|o| o.uid == uid) {
                    continue;
                }
                let remaining: Vec<&OwnerReference> = owners.iter().filter(|o| o.uid != uid).collect();
                let patch = json!({"metadata": {
                    "ownerReferences": remaining,
                    "resourceVersion": dependent.metadata.resource_version,
                }});
                let api = self.api_for(kind, dependent.metadata.namespace.as_deref());
                // A conflict is not done here: the finalizer stays until
                // every dependent has lost the reference, so the work is
                // retried.
                match api
                    .patch(&dependent.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Err(e) if !is_not_found(&e) => return Err(e),
                    _ => {}
                }
            }
        }
        self.remove_finalizer(uid, &owner, ORPHAN).await
    }

    async fn remove_finalizer(&self, uid: &str, owner: &Item, finalizer: &str) -> kube::Result<()> {
        let api = self.api_for(owner.kind, owner.namespace.as_deref());
        // Read fresh: other finalizers may have come and gone.
        let Some(current) = api.get_opt(&owner.name).await? else {
            return Ok(());
        };
        if current.metadata.uid.as_deref() != Some(uid) {
            return Ok(());
        }
        let finalizers: Vec<String> = current
            .metadata
            .finalizers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": current.metadata.resource_version,
        }});
        ignore_gone(
            api.patch(&owner.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ()),
        )
    }
}

/// A 404 means the work was done by someone else; a 409 (precondition or
/// resourceVersion) that the object changed, which a watch event will
/// bring back. Both are success here.
fn ignore_gone(result: kube::Result<()>) -> kube::Result<()> {
    match result {
        Err(e) if is_not_found(&e) || crate::error::is_conflict(&e) => Ok(()),
        other => other,
    }
}
