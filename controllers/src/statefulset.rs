//! The StatefulSet controller: pods with stable names, `<set>-<ordinal>`,
//! created, removed and rolled in ordinal order.
//!
//! Every pod of a set is one member: ordinals run from `spec.ordinals.start`
//! (0 unless set) for `replicas` places. A member carries its identity in
//! the labels `statefulset.kubernetes.io/pod-name` (its name, so a
//! Service can select one member) and `apps.kubernetes.io/pod-index` (its
//! ordinal), has `spec.hostname` set to its name and `spec.subdomain` to
//! the set's `serviceName`, and records the revision it was made from in
//! `controller-revision-hash`: `<set>-<hash of the template>`, the hash
//! the Deployment controller uses ([`crate::deployment::template_hash`]).
//! `status.updateRevision` is the template's revision now;
//! `status.currentRevision` the one the set was at before the template
//! last changed, and becomes the update revision once every member is
//! updated and ready.
//!
//! A reconcile lists the pods matching the selector (a consistent read)
//! and claims them as the other controllers do (adopting matching
//! orphans); what it then does is pure ([`plan`]):
//!
//! * `OrderedReady` (the default): members are created one at a time
//!   from the lowest ordinal, each only when all below it are Running and
//!   Ready (and available, with `minReadySeconds`); surplus members go
//!   from the highest ordinal down, one at a time, each after the one
//!   above it is gone, and only while every member is healthy (an
//!   unhealthy surplus member may go if it is the lowest unhealthy one).
//!   A member being deleted holds everything up.
//! * `Parallel`: every missing member is created, and every surplus one
//!   deleted, at once.
//! * A member that failed (or succeeded) is deleted (the API removes a
//!   finished pod at once) and created again under the same name; finished
//!   surplus members are deleted at once, out of turn.
//! * `RollingUpdate` replaces members whose revision is not the update
//!   revision from the highest ordinal down to `partition`, one at a time:
//!   the next goes only once the replacement above it is healthy.
//!   `maxUnavailable` is treated as 1. `OnDelete` leaves members alone
//!   until someone else deletes them; their replacements are made from
//!   the new template. Scaling goes before rolling.
//! * A member whose identity labels are missing or wrong (an adopted
//!   orphan) has them put right.
//!
//! Not supported: skiff serves no PersistentVolumeClaims, so a set with
//! `volumeClaimTemplates` gets no pods (a `FailedCreate` Warning says
//! why) and `persistentVolumeClaimRetentionPolicy` means nothing. skiff
//! serves no ControllerRevisions either: revisions exist only as the
//! label and status strings, so `kubectl rollout history|undo` have
//! nothing to read, and a member below the partition that has to be
//! created again is made from the new template, not its old one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use skiff_client::events::{Kind, reference};

use crate::Context;
use crate::daemonset::REVISION_HASH;
use crate::error::{Result, is_not_found};
use crate::owner::{self, controller_reference};
use crate::pods;

/// The label holding a member's own name.
pub const POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding a member's ordinal.
pub const POD_INDEX: &str = "apps.kubernetes.io/pod-index";

/// Runs the controller until the client's watches end.
pub async fn run(client: kube::Client) {
    let context = Context::new(&client, "statefulset-controller");
    let controller = Controller::new(Api::<StatefulSet>::all(client.clone()), watcher::Config::default());
    let sets = controller.store();
    controller
        .watches(Api::<Pod>::all(client), watcher::Config::default(), move |pod| {
            owner::owners_of_child(&sets, &pod.metadata, |set| {
                set.spec.as_ref().map(|s| s.selector.clone())
            })
        })
        .run(crate::metered("statefulset", reconcile), crate::retry_later, context)
        .for_each(|result| async move { crate::log_outcome("statefulset", result) })
        .await;
}

/// The ordinal of pod `pod` of set `set`, if its name is `<set>-<n>`
/// with `n` written the way the controller writes it.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let digits = pod.strip_prefix(set)?.strip_prefix('-')?;
    let ordinal: i32 = digits.parse().ok()?;
    (ordinal >= 0 && ordinal.to_string() == digits).then_some(ordinal)
}

/// The revision the set's template is at now: `<set>-<template hash>`.
pub fn update_revision(set: &StatefulSet) -> String {
    let collisions = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    format!(
        "{}-{}",
        set.name_any(),
        crate::deployment::template_hash(&template, collisions)
    )
}

/// The first ordinal and one past the last.
fn ordinals(set: &StatefulSet) -> (i32, i32) {
    let spec = set.spec.as_ref();
    let start = spec
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0);
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1).max(0);
    (start, start.saturating_add(replicas))
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn is_deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && pods::is_ready(pod)
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.labels().get(REVISION_HASH).map(String::as_str)
}

/// Whether the pod's identity labels say what its name says.
fn identity_matches(pod: &Pod, ordinal: i32) -> bool {
    let labels = pod.labels();
    labels.get(POD_NAME) == pod.metadata.name.as_ref() && labels.get(POD_INDEX) == Some(&ordinal.to_string())
}

/// What to change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ordinals to create a member for.
    pub create: Vec<i32>,
    /// Pods to delete, by name, in this order.
    pub delete: Vec<String>,
    /// Members whose identity labels are to be put right, by name.
    pub relabel: Vec<String>,
}

impl Plan {
    fn remove(&mut self, pod: &Pod) {
        self.delete.push(pod.name_any());
    }
}

/// The next step for `set`, given its (claimed) `pods`, the template's
/// revision now, at `now`.
pub fn plan(set: &StatefulSet, pods: &[Pod], update_revision: &str, now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let Some(spec) = set.spec.as_ref() else {
        return plan;
    };
    if set.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    let name = set.name_any();
    let (start, end) = ordinals(set);
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let healthy = |p: &Pod| !is_deleting(p) && running_and_ready(p) && pods::is_available(p, min_ready, now);

    let mut members: BTreeMap<i32, &Pod> = BTreeMap::new();
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for pod in pods {
        let Some(ordinal) = ordinal_of(&name, &pod.name_any()) else {
            continue;
        };
        if (start..end).contains(&ordinal) {
            members.insert(ordinal, pod);
        } else {
            condemned.push((ordinal, pod));
        }
    }
    condemned.sort_by_key(|(ordinal, _)| *ordinal);

    // Places whose pod is being made this pass: not healthy yet.
    let mut replacing = BTreeSet::new();
    for ordinal in start..end {
        let Some(pod) = members.get(&ordinal).copied() else {
            plan.create.push(ordinal);
            replacing.insert(ordinal);
            if ordered {
                return plan;
            }
            continue;
        };
        if is_deleting(pod) {
            if ordered {
                return plan;
            }
            continue;
        }
        if is_finished(pod) {
            plan.remove(pod);
            replacing.insert(ordinal);
            if ordered {
                return plan;
            }
            continue;
        }
        if !identity_matches(pod, ordinal) {
            plan.relabel.push(pod.name_any());
        }
        if ordered && !healthy(pod) {
            return plan;
        }
    }

    // Surplus members, from the highest ordinal down. Finished ones run
    // nothing, so they go at once in any order.
    for (_, pod) in &condemned {
        if is_finished(pod) && !is_deleting(pod) {
            plan.remove(pod);
        }
    }
    let live: Vec<&Pod> = condemned
        .iter()
        .map(|(_, p)| *p)
        .filter(|p| !is_finished(p) || is_deleting(p))
        .collect();
    let first_unhealthy = live.iter().find(|p| !healthy(p)).map(|p| p.name_any());
    for pod in live.iter().rev() {
        if is_deleting(pod) {
            if ordered {
                return plan;
            }
            continue;
        }
        // Ordered: an unhealthy member is removed out of turn only when it
        // is the lowest unhealthy one, so a broken set can still shrink.
        if ordered && !healthy(pod) && first_unhealthy.as_deref() != Some(pod.name_any().as_str()) {
            return plan;
        }
        plan.remove(pod);
        if ordered {
            return plan;
        }
    }

    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref() == Some("OnDelete") {
        return plan;
    }
    let partition = strategy.rolling_update.and_then(|r| r.partition).unwrap_or(0).max(0);
    for ordinal in (start.saturating_add(partition)..end).rev() {
        if replacing.contains(&ordinal) {
            return plan;
        }
        let Some(pod) = members.get(&ordinal).copied() else {
            return plan;
        };
        if revision_of(pod) != Some(update_revision) && !is_deleting(pod) {
            plan.remove(pod);
            return plan;
        }
        if !healthy(pod) {
            return plan;
        }
    }
    plan
}

/// The pod for `ordinal`, from the set's template at `revision`.
fn member(set: &StatefulSet, ordinal: i32, revision: &str) -> Pod {
    let spec = set.spec.clone().unwrap_or_default();
    let name = format!("{}-{ordinal}", set.name_any());
    let meta = spec.template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(POD_NAME.into(), name.clone());
    labels.insert(POD_INDEX.into(), ordinal.to_string());
    labels.insert(REVISION_HASH.into(), revision.into());
    let mut pod_spec = spec.template.spec.unwrap_or_default();
    pod_spec.hostname = Some(name.clone());
    pod_spec.subdomain = spec.service_name.filter(|s| !s.is_empty());
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_reference(set)]),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// The status of `set` with these claimed pods.
pub fn status_of(set: &StatefulSet, pods: &[Pod], update_revision: &str, now: Timestamp) -> StatefulSetStatus {
    let name = set.name_any();
    let spec = set.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let want = spec.replicas.unwrap_or(1).max(0);
    let old = set.status.clone().unwrap_or_default();
    let mut current_revision = old
        .current_revision
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| update_revision.to_string());
    let members: Vec<&Pod> = pods
        .iter()
        .filter(|p| ordinal_of(&name, &p.name_any()).is_some())
        .collect();
    let count = |f: &dyn Fn(&Pod) -> bool| i32::try_from(members.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX);
    let at = |revision: &str| count(&|p: &Pod| !is_deleting(p) && revision_of(p) == Some(revision));
    let replicas = count(&|_| true);
    let ready = count(&running_and_ready);
    let updated = at(update_revision);
    // Every member updated and ready: the update is what the set is at.
    if replicas == want && updated == want && ready == want {
        current_revision = update_revision.to_string();
    }
    StatefulSetStatus {
        replicas,
        ready_replicas: Some(ready),
        available_replicas: Some(count(&|p| {
            running_and_ready(p) && pods::is_available(p, min_ready, now)
        })),
        current_replicas: Some(at(&current_revision)),
        updated_replicas: Some(updated),
        current_revision: Some(current_revision),
        update_revision: Some(update_revision.to_string()),
        observed_generation: set.metadata.generation,
        collision_count: old.collision_count,
        conditions: old.conditions,
    }
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action> {
    let Some(spec) = set.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if skiff_client::selector::is_empty(&spec.selector) {
        // The API refuses such sets; one stored before validation existed
        // is left alone rather than allowed to claim every pod.
        return Ok(Action::await_change());
    }
    let namespace = set.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = pods_api
        .list(&ListParams::default().labels(&skiff_client::selector::to_query(&spec.selector)))
        .await?;
    let claimed = owner::claim(&pods_api, set.as_ref(), &spec.selector, listed.items).await?;
    let revision = update_revision(&set);
    let now = Timestamp::now();
    let subject = reference(set.as_ref());
    let set_name = set.name_any();
    let record = |kind: Kind, verb: &str, pod: &str, error: Option<String>| {
        let (reason, message) = match error {
            None => (
                format!("Successful{}", title(verb)),
                format!("{verb} Pod {pod} in StatefulSet {set_name} successful"),
            ),
            Some(e) => (
                format!("Failed{}", title(verb)),
                format!("{verb} Pod {pod} in StatefulSet {set_name} failed error: {e}"),
            ),
        };
        ctx.events.record(&subject, kind, &reason, &title(verb), message);
    };

    let mut failed = false;
    let claims = spec.volume_claim_templates.as_ref().is_some_and(|t| !t.is_empty());
    if claims && set.metadata.deletion_timestamp.is_none() {
        ctx.events.record(
            &subject,
            Kind::Warning,
            "FailedCreate",
            "Create",
            "skiff serves no PersistentVolumeClaims: volumeClaimTemplates are not supported",
        );
    } else {
        let plan = plan(&set, &claimed, &revision, now);
        for name in &plan.relabel {
            let Some(ordinal) = ordinal_of(&set_name, name) else {
                continue;
            };
            let patch = json!({"metadata": {"labels": {POD_NAME: name, POD_INDEX: ordinal.to_string()}}});
            match pods_api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => record(Kind::Normal, "update", name, None),
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    record(Kind::Warning, "update", name, Some(crate::api_message(&e)));
                    return Err(e.into());
                }
            }
        }
        for name in &plan.delete {
            let Some(pod) = claimed.iter().find(|p| p.metadata.name.as_ref() == Some(name)) else {
                continue;
            };
            // The uid guards against deleting a replacement of the same name.
            let params = DeleteParams::default().preconditions(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            });
            match pods_api.delete(name, &params).await {
                Ok(_) => record(Kind::Normal, "delete", name, None),
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    record(Kind::Warning, "delete", name, Some(crate::api_message(&e)));
                    return Err(e.into());
                }
            }
        }
        for ordinal in &plan.create {
            let pod = member(&set, *ordinal, &revision);
            let name = pod.name_any();
            match pods_api.create(&PostParams::default(), &pod).await {
                Ok(_) => record(Kind::Normal, "create", &name, None),
                Err(e) => {
                    record(Kind::Warning, "create", &name, Some(crate::api_message(&e)));
                    failed = true;
                    break;
                }
            }
        }
    }

    let status = status_of(&set, &claimed, &revision, now);
    if set.status.as_ref() != Some(&status) {
        let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
        if !crate::patch_status(&sets, &set_name, &status).await? {
            return Ok(Action::await_change());
        }
    }
    if failed {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    // A member that is ready but not yet available becomes available with
    // no event to say so: look again when it does.
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let next = claimed
        .iter()
        .filter_map(|p| pods::until_available(p, min_ready, now))
        .min();
    Ok(match next {
        Some(after) => crate::requeue(after + Duration::from_millis(100)),
        None => Action::await_change(),
    })
}

/// `create` → `Create`.
fn title(verb: &str) -> String {
    let mut chars = verb.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:10:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn set(replicas: i32, extra: serde_json::Value) -> StatefulSet {
        let mut spec = json!({
            "replicas": replicas,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec})).unwrap()
    }

    /// A member in one of the states the tests need.
    #[derive(Clone, Copy)]
    enum State {
        Ready,
        NotReady,
        /// Ready for 5 s at [`NOW`].
        JustReady,
        Failed,
        Deleting,
    }

    fn pod(ordinal: i32, revision: &str, state: State) -> Pod {
        let name = format!("web-{ordinal}");
        let ready_at = match state {
            State::JustReady => "2026-01-01T00:09:55Z",
            _ => "2026-01-01T00:00:00Z",
        };
        let (phase, ready) = match state {
            State::Ready | State::JustReady | State::Deleting => ("Running", "True"),
            State::NotReady => ("Running", "False"),
            State::Failed => ("Failed", "False"),
        };
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name, "labels": {
                "app": "web", POD_NAME: name, POD_INDEX: ordinal.to_string(), REVISION_HASH: revision}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": ready, "lastTransitionTime": ready_at}]},
        }))
        .unwrap();
        if matches!(state, State::Deleting) {
            pod.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        }
        pod
    }

    fn ready(ordinals: std::ops::Range<i32>, revision: &str) -> Vec<Pod> {
        ordinals.map(|o| pod(o, revision, State::Ready)).collect()
    }

    fn gone(name: &str) -> String {
        name.into()
    }

    fn steps(create: &[i32], delete: &[String]) -> Plan {
        Plan {
            create: create.to_vec(),
            delete: delete.to_vec(),
            relabel: Vec::new(),
        }
    }

    #[test]
    fn members_come_and_go_in_order_or_all_at_once() {
        use State::*;
        let parallel = json!({"podManagementPolicy": "Parallel"});
        let cases: Vec<(&str, StatefulSet, Vec<Pod>, Plan)> = vec![
            ("the first member first", set(3, json!({})), vec![], steps(&[0], &[])),
            (
                "the next once it is ready",
                set(3, json!({})),
                ready(0..1, "r"),
                steps(&[1], &[]),
            ),
            (
                "nothing while one below is not ready",
                set(3, json!({})),
                vec![pod(0, "r", NotReady)],
                steps(&[], &[]),
            ),
            (
                "nothing while one below is not yet available",
                set(3, json!({"minReadySeconds": 10})),
                vec![pod(0, "r", JustReady)],
                steps(&[], &[]),
            ),
            (
                "a gap is filled before anything above it",
                set(3, json!({})),
                vec![pod(0, "r", Ready), pod(2, "r", Ready)],
                steps(&[1], &[]),
            ),
            (
                "parallel: every member at once",
                set(3, parallel.clone()),
                vec![],
                steps(&[0, 1, 2], &[]),
            ),
            (
                "parallel: readiness holds nothing up",
                set(3, parallel.clone()),
                vec![pod(0, "r", NotReady)],
                steps(&[1, 2], &[]),
            ),
            (
                "scaling down removes the highest first, alone",
                set(3, json!({})),
                ready(0..5, "r"),
                steps(&[], &[gone("web-4")]),
            ),
            (
                "the next surplus member waits for the one above to go",
                set(3, json!({})),
                [ready(0..4, "r"), vec![pod(4, "r", Deleting)]].concat(),
                steps(&[], &[]),
            ),
            (
                "parallel: surplus members go at once",
                set(3, parallel.clone()),
                ready(0..5, "r"),
                steps(&[], &[gone("web-4"), gone("web-3")]),
            ),
            (
                "an unhealthy surplus member goes when it is the lowest unhealthy one",
                set(1, json!({})),
                vec![pod(0, "r", Ready), pod(1, "r", Ready), pod(2, "r", NotReady)],
                steps(&[], &[gone("web-2")]),
            ),
            (
                "finished surplus members go at once",
                set(1, json!({})),
                vec![pod(0, "r", Ready), pod(1, "r", Ready), pod(2, "r", Failed)],
                steps(&[], &[gone("web-2"), gone("web-1")]),
            ),
            (
                "a higher unhealthy one holds scaling down",
                set(1, json!({})),
                vec![pod(0, "r", Ready), pod(1, "r", NotReady), pod(2, "r", NotReady)],
                steps(&[], &[]),
            ),
            (
                "a failed member is deleted at once, to be made again",
                set(3, json!({})),
                vec![pod(0, "r", Ready), pod(1, "r", Failed), pod(2, "r", Ready)],
                steps(&[], &[gone("web-1")]),
            ),
            (
                "a member being deleted holds everything up",
                set(3, json!({})),
                vec![pod(0, "r", Deleting)],
                steps(&[], &[]),
            ),
            (
                "ordinals may start elsewhere",
                set(2, json!({"ordinals": {"start": 5}})),
                vec![pod(0, "r", Ready), pod(5, "r", Ready), pod(6, "r", Ready)],
                steps(&[], &[gone("web-0")]),
            ),
        ];
        for (what, set, pods, want) in cases {
            assert_eq!(plan(&set, &pods, "r", now()), want, "{what}");
        }
    }

    #[test]
    fn a_new_template_rolls_from_the_highest_ordinal_down_to_the_partition() {
        use State::*;
        let partition =
            |p: i32| json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": p}}});
        let on_delete = json!({"updateStrategy": {"type": "OnDelete"}});
        let cases: Vec<(&str, StatefulSet, Vec<Pod>, Plan)> = vec![
            (
                "the highest goes first",
                set(3, json!({})),
                ready(0..3, "old"),
                steps(&[], &[gone("web-2")]),
            ),
            (
                "its replacement is made once it is gone",
                set(3, json!({})),
                ready(0..2, "old"),
                steps(&[2], &[]),
            ),
            (
                "the next waits for the replacement to be ready",
                set(3, json!({})),
                [ready(0..2, "old"), vec![pod(2, "new", NotReady)]].concat(),
                steps(&[], &[]),
            ),
            (
                "then it goes",
                set(3, json!({})),
                [ready(0..2, "old"), ready(2..3, "new")].concat(),
                steps(&[], &[gone("web-1")]),
            ),
            (
                "members below the partition stay",
                set(3, partition(2)),
                [ready(0..2, "old"), ready(2..3, "new")].concat(),
                steps(&[], &[]),
            ),
            (
                "a partition beyond the replicas rolls nothing",
                set(3, partition(5)),
                ready(0..3, "old"),
                steps(&[], &[]),
            ),
            (
                "OnDelete rolls nothing",
                set(3, on_delete),
                ready(0..3, "old"),
                steps(&[], &[]),
            ),
            (
                "parallel sets roll one at a time too",
                set(3, json!({"podManagementPolicy": "Parallel"})),
                ready(0..3, "old"),
                steps(&[], &[gone("web-2")]),
            ),
            (
                "scaling goes before rolling",
                set(2, json!({})),
                ready(0..3, "old"),
                steps(&[], &[gone("web-2")]),
            ),
        ];
        for (what, set, pods, want) in cases {
            assert_eq!(plan(&set, &pods, "new", now()), want, "{what}");
        }
    }

    #[test]
    fn members_missing_their_identity_are_relabelled_and_strays_ignored() {
        let mut orphan = pod(0, "r", State::Ready);
        orphan.metadata.labels = Some(
            [("app", "web"), (REVISION_HASH, "r")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
        );
        let stray = serde_json::from_value::<Pod>(json!({"metadata": {"name": "web-01"}})).unwrap();
        let plan = plan(&set(1, json!({})), &[orphan, stray], "r", now());
        assert_eq!(plan.relabel, ["web-0"]);
        assert_eq!((plan.create.len(), plan.delete.len()), (0, 0));

        let mut deleting = set(3, json!({}));
        deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        assert_eq!(super::plan(&deleting, &[], "r", now()), Plan::default());
    }

    #[test]
    fn names_carry_the_ordinal() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "web--1"), None);
        assert_eq!(ordinal_of("web", "webs-1"), None);
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web-1", "web-1-2"), Some(2));

        let set = set(2, json!({}));
        let pod = member(&set, 1, "web-abc");
        assert_eq!(pod.metadata.name.as_deref(), Some("web-1"));
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels[POD_NAME], "web-1");
        assert_eq!(labels[POD_INDEX], "1");
        assert_eq!(labels[REVISION_HASH], "web-abc");
        assert_eq!(labels["app"], "web");
        let spec = pod.spec.unwrap();
        assert_eq!(
            (spec.hostname.as_deref(), spec.subdomain.as_deref()),
            (Some("web-1"), Some("web"))
        );
        assert!(update_revision(&set).starts_with("web-"));
    }

    #[test]
    fn the_current_revision_follows_once_every_member_is_updated_and_ready() {
        let mut rolling = set(3, json!({}));
        rolling.status = Some(StatefulSetStatus {
            current_revision: Some("old".into()),
            ..StatefulSetStatus::default()
        });
        let pods = [ready(0..2, "old"), vec![pod(2, "new", State::NotReady)]].concat();
        let status = status_of(&rolling, &pods, "new", now());
        assert_eq!(
            (
                status.replicas,
                status.ready_replicas,
                status.current_replicas,
                status.updated_replicas
            ),
            (3, Some(2), Some(2), Some(1))
        );
        assert_eq!(status.current_revision.as_deref(), Some("old"));
        let status = status_of(&rolling, &ready(0..3, "new"), "new", now());
        assert_eq!(status.current_revision.as_deref(), Some("new"));
        assert_eq!(status.current_replicas, Some(3));
        assert_eq!(status.available_replicas, Some(3));
        // A new set starts at its update revision.
        let status = status_of(&set(3, json!({})), &[], "new", now());
        assert_eq!(status.current_revision.as_deref(), Some("new"));
    }
}
