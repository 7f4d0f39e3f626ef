//! The Deployment controller: one ReplicaSet per pod template, rolled
//! from old to new by [`rollout`], with the revision history and status
//! `kubectl rollout status|history|undo|restart` work from.
//!
//! A reconcile:
//! 1. lists the ReplicaSets in the Deployment's namespace that match its
//!    selector (a consistent read) and claims them;
//! 2. picks the *new* set, the one whose template equals the Deployment's
//!    (ignoring the `pod-template-hash` label), and numbers it with the
//!    next revision (`deployment.kubernetes.io/revision`), so a template
//!    brought back by `rollout undo` reuses its old set;
//! 3. takes one rollout step: creates the new set (named
//!    `<deployment>-<hash of the template>`) or scales sets, recording a
//!    `ScalingReplicaSet` Event for each;
//! 4. when the rollout is complete, deletes empty old sets beyond
//!    `revisionHistoryLimit`;
//! 5. writes the status: replica counts summed over the sets, and the
//!    `Available` and `Progressing` conditions (with
//!    `ProgressDeadlineExceeded` when `progressDeadlineSeconds` pass
//!    without progress).
//!
//! A paused Deployment is scaled but not rolled. Scaling during a
//! rollout is not proportional across the sets as in Kubernetes: the new
//! set absorbs the change, within maxSurge.

pub mod rollout;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use skiff_client::events::{Kind, reference};

use crate::Context;
use crate::error::{Error, Result, is_conflict, is_not_found};
use crate::owner::{self, controller_reference};
use rollout::{Scale, Set};

/// The label that tells the pods of one template from another's.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The revision a ReplicaSet (and its Deployment) is at.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations a Deployment passes on to its ReplicaSets: all but
/// kubectl's own bookkeeping.
const NOT_COPIED: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration", REVISION];

/// Runs the controller until the client's watches end.
pub async fn run(client: kube::Client) {
    let context = Context::new(&client, "deployment-controller");
    Controller::new(Api::<Deployment>::all(client.clone()), watcher::Config::default())
        .owns(Api::<ReplicaSet>::all(client), watcher::Config::default())
        .run(crate::metered("deployment", reconcile), crate::retry_later, context)
        .for_each(|result| async move { crate::log_outcome("deployment", result) })
        .await;
}

/// The Deployment's sets, the new one apart.
struct Sets {
    new: Option<ReplicaSet>,
    /// Oldest first.
    old: Vec<ReplicaSet>,
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action> {
    let Some(spec) = d.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if d.metadata.deletion_timestamp.is_some() || skiff_client::selector::is_empty(&spec.selector) {
        return Ok(Action::await_change());
    }
    let namespace = d.namespace().unwrap_or_default();
    let sets_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = sets_api
        .list(&ListParams::default().labels(&skiff_client::selector::to_query(&spec.selector)))
        .await?;
    let claimed = owner::claim(&sets_api, d.as_ref(), &spec.selector, listed.items).await?;
    let mut sets = split(&spec.template, claimed);
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let (surge, unavailable) = if recreate {
        (0, replicas)
    } else {
        let rolling = spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
        rollout::fenceposts(
            rolling.and_then(|r| r.max_surge.as_ref()),
            rolling.and_then(|r| r.max_unavailable.as_ref()),
            replicas,
        )
    };

    // The new set is numbered after every old one.
    let next_revision = sets.old.iter().map(revision).max().unwrap_or(0) + 1;
    if let Some(new) = &sets.new
        && revision(new) < next_revision
    {
        let patched = annotate_set(&sets_api, new, &[(REVISION, next_revision.to_string())]).await?;
        sets.new = Some(patched);
    }

    let paused = spec.paused.unwrap_or(false);
    let mut created = None;
    let steps: Vec<Scale> = if paused {
        // Scaled, not rolled: only a lone set follows replicas.
        match (&sets.new, sets.old.iter().all(|s| set_replicas(s) == 0)) {
            (Some(new), true) if set_replicas(new) != replicas => vec![Scale {
                name: new.name_any(),
                replicas,
            }],
            _ => Vec::new(),
        }
    } else if recreate {
        let old_pods_remain = if sets.old.iter().all(|s| set_replicas(s) == 0) {
            old_pods_remain(&ctx, &namespace, &sets.old).await?
        } else {
            true
        };
        rollout::recreate_step(
            replicas,
            sets.new.as_ref().map(view).as_ref(),
            &sets.old.iter().map(view).collect::<Vec<_>>(),
            old_pods_remain,
        )
    } else {
        let old: Vec<Set> = sets.old.iter().map(view).collect();
        match &sets.new {
            Some(new) => rollout::rolling_step(replicas, surge, unavailable, &view(new), &old),
            None => {
                let empty = Set {
                    name: String::new(),
                    replicas: 0,
                    available: 0,
                };
                let all: Vec<&Set> = old.iter().collect();
                vec![Scale {
                    name: String::new(),
                    replicas: rollout::new_set_replicas(replicas, surge, &all, &empty),
                }]
            }
        }
    };

    for step in steps {
        if step.name.is_empty() {
            match create_new_set(&ctx, &d, &sets_api, step.replicas, next_revision, surge).await? {
                Some(new) => {
                    created = Some(new.name_any());
                    sets.new = Some(new);
                }
                // A name collision: the status now counts it; try again.
                None => return Ok(Action::requeue(Duration::from_millis(100))),
            }
            continue;
        }
        let Some(set) = sets
            .new
            .iter_mut()
            .chain(sets.old.iter_mut())
            .find(|s| s.name_any() == step.name)
        else {
            continue;
        };
        *set = scale_set(&ctx, &d, &sets_api, set, step.replicas, replicas, surge).await?;
    }

    let now = Timestamp::now();
    let status = status_of(&d, &sets, created.as_deref(), unavailable, now);
    let complete = is_complete(&d, &status);
    if complete {
        clean_up_history(&d, &sets_api, &sets.old).await?;
    }
    if d.status.as_ref() != Some(&status) {
        let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
        let mut patch = json!({"status": status});
        // Conditions are replaced as a whole, not merged.
        patch["status"]["conditions"] = json!(status.conditions);
        match deployments
            .patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(new) = &sets.new
        && d.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)) != Some(&revision(new).to_string())
    {
        let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({"metadata": {"annotations": {REVISION: revision(new).to_string()}}});
        match deployments
            .patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if complete || paused {
        return Ok(Action::await_change());
    }
    // Progress shows up as ReplicaSet changes; the deadline passing and
    // old pods going away under Recreate do not.
    let mut after = if recreate {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    };
    if let Some(left) = until_deadline(&d, &status, now) {
        after = after.min(left + Duration::from_millis(100));
    }
    Ok(Action::requeue(after))
}

/// Time left before the rollout misses `progressDeadlineSeconds`, while
/// it is still progressing.
fn until_deadline(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let seconds = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(600);
    let progressing = status.conditions.iter().flatten().find(|c| c.type_ == "Progressing")?;
    if progressing.status != "True" {
        return None;
    }
    let since = progressing.last_update_time.as_ref()?.0;
    let at = since + SignedDuration::from_secs(i64::from(seconds));
    Some(Duration::try_from(at - now).unwrap_or_default())
}

/// The template with the hash label taken out, for comparing a set's
/// template with its Deployment's.
fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    template
}

fn split(template: &PodTemplateSpec, claimed: Vec<ReplicaSet>) -> Sets {
    let mut claimed = claimed;
    claimed.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    let wanted = without_hash(template);
    let mut new = None;
    let mut old = Vec::new();
    for set in claimed {
        let matches = set
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| without_hash(t) == wanted);
        if matches && new.is_none() {
            new = Some(set);
        } else {
            old.push(set);
        }
    }
    Sets { new, old }
}

fn revision(set: &ReplicaSet) -> i64 {
    set.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn set_replicas(set: &ReplicaSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn view(set: &ReplicaSet) -> Set {
    Set {
        name: set.name_any(),
        replicas: set_replicas(set),
        available: set.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0),
    }
}

/// The template's hash, as the `pod-template-hash` label and the set's
/// name suffix carry it: FNV-1a over the template's JSON and the
/// collision count, spelled with the consonants and digits Kubernetes
/// uses for generated names (no vowels, so no words).
pub fn template_hash(template: &PodTemplateSpec, collisions: i32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u32 = 0x811c_9dc5;
    let json = serde_json::to_vec(template).unwrap_or_default();
    let salt = if collisions > 0 {
        collisions.to_le_bytes().to_vec()
    } else {
        Vec::new()
    };
    for byte in json.iter().chain(salt.iter()) {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.to_string()
        .bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// Creates the new set, or adopts an identical one a previous reconcile
/// created. `None` when the name is taken by a different template: the
/// collision count is raised so the next attempt hashes differently.
async fn create_new_set(
    ctx: &Context,
    d: &Deployment,
    api: &Api<ReplicaSet>,
    replicas: i32,
    revision: i64,
    surge: i32,
) -> Result<Option<ReplicaSet>> {
    let spec = d.spec.clone().unwrap_or_default();
    let collisions = d.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    let hash = template_hash(&spec.template, collisions);
    let mut template = spec.template.clone();
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let mut annotations = copied_annotations(d);
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(DESIRED_REPLICAS.into(), spec.replicas.unwrap_or(1).to_string());
    annotations.insert(MAX_REPLICAS.into(), (spec.replicas.unwrap_or(1) + surge).to_string());
    let name = format!("{}-{hash}", d.name_any());
    let set = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: d.namespace(),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_reference(d)]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    };
    match api.create(&PostParams::default(), &set).await {
        Ok(created) => {
            ctx.events.record(
                &reference(d),
                Kind::Normal,
                "ScalingReplicaSet",
                "Scaling",
                format!("Scaled up replica set {name} from 0 to {replicas}"),
            );
            Ok(Some(created))
        }
        Err(e) if is_conflict(&e) => {
            let existing = api.get(&name).await?;
            let same = existing
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| without_hash(t) == without_hash(&spec.template));
            let ours = owner::is_controlled_by(&existing.metadata, d.metadata.uid.as_deref().unwrap_or_default());
            if same && ours {
                return Ok(Some(existing));
            }
            let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
            let patch = json!({"status": {"collisionCount": collisions + 1}});
            deployments
                .patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .collect()
}

async fn annotate_set(api: &Api<ReplicaSet>, set: &ReplicaSet, pairs: &[(&str, String)]) -> Result<ReplicaSet> {
    let annotations: serde_json::Map<String, serde_json::Value> =
        pairs.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
    let patch = json!({"metadata": {"annotations": annotations}});
    Ok(api
        .patch(&set.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await?)
}

async fn scale_set(
    ctx: &Context,
    d: &Deployment,
    api: &Api<ReplicaSet>,
    set: &ReplicaSet,
    to: i32,
    replicas: i32,
    surge: i32,
) -> Result<ReplicaSet> {
    let from = set_replicas(set);
    let patch = json!({
        "metadata": {
            "annotations": {DESIRED_REPLICAS: replicas.to_string(), MAX_REPLICAS: (replicas + surge).to_string()},
            "resourceVersion": set.metadata.resource_version,
        },
        "spec": {"replicas": to},
    });
    let scaled = api
        .patch(&set.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    if from != to {
        let direction = if to > from { "up" } else { "down" };
        ctx.events.record(
            &reference(d),
            Kind::Normal,
            "ScalingReplicaSet",
            "Scaling",
            format!("Scaled {direction} replica set {} from {from} to {to}", set.name_any()),
        );
    }
    Ok(scaled)
}

/// Whether any pod of the old sets still exists (running or shutting
/// down): Recreate starts nothing new until none does.
async fn old_pods_remain(ctx: &Context, namespace: &str, old: &[ReplicaSet]) -> Result<bool> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    for set in old {
        let Some(selector) = set.spec.as_ref().map(|s| &s.selector) else {
            continue;
        };
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let listed = pods
            .list(&ListParams::default().labels(&skiff_client::selector::to_query(selector)))
            .await?;
        let remaining = listed.items.iter().any(|p| {
            owner::is_controlled_by(&p.metadata, &uid)
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        });
        if remaining {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes the oldest empty old sets beyond `revisionHistoryLimit`.
async fn clean_up_history(d: &Deployment, api: &Api<ReplicaSet>, old: &[ReplicaSet]) -> Result<()> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0);
    let empty: Vec<&ReplicaSet> = old
        .iter()
        .filter(|s| set_replicas(s) == 0 && s.status.as_ref().is_none_or(|st| st.replicas == 0))
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect();
    let excess = empty.len().saturating_sub(usize::try_from(limit).unwrap_or(0));
    for set in empty.into_iter().take(excess) {
        match api.delete(&set.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    Ok(())
}

fn is_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    status.updated_replicas == Some(replicas)
        && status.replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && status.observed_generation >= d.metadata.generation
}

/// The status the Deployment reports after this reconcile.
fn status_of(d: &Deployment, sets: &Sets, created: Option<&str>, unavailable: i32, now: Timestamp) -> DeploymentStatus {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| -> i32 { sets.new.iter().chain(sets.old.iter()).map(f).sum() };
    let total = sum(&|s| s.status.as_ref().map_or(0, |st| st.replicas));
    let ready = sum(&|s| s.status.as_ref().and_then(|st| st.ready_replicas).unwrap_or(0));
    let available = sum(&|s| s.status.as_ref().and_then(|st| st.available_replicas).unwrap_or(0));
    let updated = sets
        .new
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .map_or(0, |st| st.replicas);
    let old_status = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((replicas - available).max(0)),
        collision_count: old_status.collision_count,
        conditions: None,
        terminating_replicas: None,
    };
    let old_conditions = old_status.conditions.clone().unwrap_or_default();
    let previous = |kind: &str| old_conditions.iter().find(|c| c.type_ == kind).cloned();

    let minimum = available >= replicas - unavailable;
    let available_condition = condition(
        previous("Available"),
        "Available",
        if minimum { "True" } else { "False" },
        if minimum {
            "MinimumReplicasAvailable"
        } else {
            "MinimumReplicasUnavailable"
        },
        if minimum {
            "Deployment has minimum availability.".into()
        } else {
            "Deployment does not have minimum availability.".into()
        },
        now,
        false,
    );

    let new_name = sets.new.as_ref().map(|s| s.name_any()).unwrap_or_default();
    let progressing_before = previous("Progressing");
    let progressed = status.updated_replicas > old_status.updated_replicas
        || status.ready_replicas > old_status.ready_replicas
        || status.available_replicas > old_status.available_replicas
        || status.replicas < old_status.replicas;
    let progressing = if spec.paused.unwrap_or(false) {
        condition(
            progressing_before,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            now,
            false,
        )
    } else if progressing_before.as_ref().and_then(|c| c.reason.as_deref()) == Some("DeploymentPaused") {
        condition(
            progressing_before,
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed".into(),
            now,
            false,
        )
    } else if is_complete(d, &status) {
        condition(
            progressing_before,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            now,
            false,
        )
    } else if let Some(name) = created {
        condition(
            progressing_before,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set \"{name}\""),
            now,
            true,
        )
    } else if progressed || progressing_before.is_none() {
        condition(
            progressing_before,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
            now,
            true,
        )
    } else {
        let deadline = SignedDuration::from_secs(i64::from(spec.progress_deadline_seconds.unwrap_or(600)));
        let since = progressing_before
            .as_ref()
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| t.0)
            .unwrap_or(now);
        let already = progressing_before.as_ref().and_then(|c| c.reason.as_deref()) == Some("ProgressDeadlineExceeded");
        if already || since + deadline <= now {
            condition(
                progressing_before,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                now,
                false,
            )
        } else {
            progressing_before.unwrap_or_default()
        }
    };
    status.conditions = Some(vec![available_condition, progressing]);
    status
}

/// A condition of `kind`: `lastTransitionTime` moves only when the status
/// does, `lastUpdateTime` when anything does (or always, with `touch`).
fn condition(
    before: Option<DeploymentCondition>,
    kind: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
    touch: bool,
) -> DeploymentCondition {
    let same_status = before.as_ref().is_some_and(|c| c.status == status);
    let unchanged = same_status
        && before.as_ref().and_then(|c| c.reason.as_deref()) == Some(reason)
        && before.as_ref().and_then(|c| c.message.as_deref()) == Some(message.as_str());
    DeploymentCondition {
        type_: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: if same_status {
            before.as_ref().and_then(|c| c.last_transition_time.clone())
        } else {
            Some(Time(now))
        },
        last_update_time: if unchanged && !touch {
            before.as_ref().and_then(|c| c.last_update_time.clone())
        } else {
            Some(Time(now))
        },
    }
}
