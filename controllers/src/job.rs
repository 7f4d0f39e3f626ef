//! The Job controller: runs pods until enough of them succeed, gives up
//! after `backoffLimit` failures or `activeDeadlineSeconds`, and deletes
//! finished Jobs after `ttlSecondsAfterFinished`.
//!
//! What a reconcile decides is pure ([`plan`]); the reconcile lists the
//! Job's pods (selected by the uid label the API puts on its template),
//! counts them, and carries the plan out: creating pods, deleting active
//! ones when the Job fails or is suspended, and writing the status with
//! the `Complete`/`Failed` conditions (`SuccessCriteriaMet` and
//! `FailureTarget` alongside, as Kubernetes 1.33 reports them) that
//! `kubectl wait --for=condition=complete` reads.
//!
//! Counting: succeeded and failed counts never go down. A terminal pod is
//! counted while it exists, so one deleted before any reconcile saw it is
//! not counted (Kubernetes closes that gap with a tracking finalizer on
//! every pod; skiff does not yet). Failed pods are replaced after a
//! back-off of 10 s doubling per failure, capped at 6 minutes. Only the
//! `NonIndexed` completion mode is run; an `Indexed` Job is marked Failed
//! with a reason saying so.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use skiff_client::events::{Kind, reference};

use crate::Context;
use crate::error::{Result, is_not_found};
use crate::owner::{self, controller_reference};
use crate::pods;

/// Runs the controller until the client's watches end.
pub async fn run(client: kube::Client) {
    let context = Context::new(&client, "job-controller");
    Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default())
        .run(crate::metered("job", reconcile), crate::retry_later, context)
        .for_each(|result| async move { crate::log_outcome("job", result) })
        .await;
}

/// The Job's pods, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub active: i32,
    pub ready: i32,
    pub terminating: i32,
    pub succeeded: i32,
    /// Failed pods, plus container restarts of `OnFailure` pods.
    pub failed: i32,
    /// When the latest failure happened, if any.
    pub last_failure: Option<Timestamp>,
}

/// What the Job should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Create this many pods now.
    Create(i32),
    /// Delete this many active pods (parallelism went down).
    Remove(i32),
    /// Nothing to create before this much time has passed (back-off).
    Wait(Duration),
    /// Succeeded: enough pods completed.
    Complete,
    /// Failed, with a reason and message; active pods are to be deleted.
    Fail(&'static str, String),
    /// Suspended: active pods are to be deleted.
    Suspend,
    /// The right pods are running.
    Steady,
}

/// The back-off before replacing a failed pod: 10 s doubling per
/// failure, at most 6 minutes.
pub fn backoff(failures: i32) -> Duration {
    let exponent = u32::try_from(failures.saturating_sub(1).clamp(0, 6)).unwrap_or(0);
    Duration::from_secs(10 * 2u64.pow(exponent)).min(Duration::from_secs(360))
}

/// The next step for `job` given its pods, at `now`.
pub fn plan(job: &Job, counts: &Counts, now: Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    if spec.completion_mode.as_deref() == Some("Indexed") {
        return Plan::Fail(
            "UnsupportedCompletionMode",
            "skiff does not run Indexed Jobs yet".into(),
        );
    }
    let completions = spec.completions;
    let succeeded = counts.succeeded;
    let complete = match completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && counts.active == 0,
    };
    if complete {
        return Plan::Complete;
    }
    if spec.suspend.unwrap_or(false) {
        return Plan::Suspend;
    }
    if counts.failed > spec.backoff_limit.unwrap_or(6) {
        return Plan::Fail(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".into(),
        );
    }
    if let (Some(deadline), Some(start)) = (
        spec.active_deadline_seconds,
        job.status.as_ref().and_then(|s| s.start_time.as_ref()),
    ) && crate::plus_seconds(start.0, deadline) <= now
    {
        return Plan::Fail(
            "DeadlineExceeded",
            "Job was active longer than specified deadline".into(),
        );
    }
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let wanted = match completions {
        Some(c) => parallelism.min(c - succeeded),
        // A work queue: once one succeeded, no new pods; the running
        // ones finish their work.
        None if succeeded > 0 => return Plan::Steady,
        None => parallelism,
    };
    let running = counts.active;
    if running > wanted {
        return Plan::Remove(running - wanted);
    }
    if running == wanted {
        return Plan::Steady;
    }
    if let Some(last) = counts.last_failure {
        let until = last + SignedDuration::try_from(backoff(counts.failed)).unwrap_or(SignedDuration::ZERO);
        if until > now {
            return Plan::Wait(Duration::try_from(until - now).unwrap_or_default());
        }
    }
    Plan::Create(wanted - running)
}

/// Counts `pods`, starting from the counts the Job already reported (they
/// never go down).
pub fn count(job: &Job, pods: &[Pod]) -> Counts {
    let status = job.status.clone().unwrap_or_default();
    let on_failure = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    let phase = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    let mut counts = Counts::default();
    let mut succeeded = 0;
    let mut failed = 0;
    for pod in pods {
        match phase(pod).as_str() {
            "Succeeded" => succeeded += 1,
            "Failed" => {
                failed += 1;
                counts.last_failure = counts.last_failure.max(Some(finished_at(pod)));
            }
            _ if pod.metadata.deletion_timestamp.is_some() => counts.terminating += 1,
            _ => {
                counts.active += 1;
                counts.ready += i32::from(pods::is_ready(pod));
                if on_failure {
                    let restarts: i32 = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .map(|c| c.iter().map(|c| c.restart_count).sum())
                        .unwrap_or(0);
                    failed += restarts;
                }
            }
        }
    }
    counts.succeeded = succeeded.max(status.succeeded.unwrap_or(0));
    counts.failed = failed.max(status.failed.unwrap_or(0));
    counts
}

/// When a failed pod's last container finished (or the pod was created).
fn finished_at(pod: &Pod) -> Timestamp {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0))
        .max()
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn is_finished(job: &Job) -> Option<Timestamp> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH)
        })
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = job.namespace().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = Timestamp::now();
    if let Some(finished) = is_finished(&job) {
        return expire(&jobs, &job, finished, now).await;
    }
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(selector) = job.spec.as_ref().and_then(|s| s.selector.clone()) else {
        return Ok(Action::await_change());
    };
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = pods_api
        .list(&ListParams::default().labels(&skiff_client::selector::to_query(&selector)))
        .await?;
    let claimed = owner::claim(&pods_api, job.as_ref(), &selector, listed.items).await?;
    let counts = count(&job, &claimed);
    let plan = plan(&job, &counts, now);
    let subject = reference(job.as_ref());
    let mut counts_after = counts.clone();
    let mut requeue = None;
    let mut finish = None;
    match &plan {
        Plan::Create(n) => {
            let template = job.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
            let pod = crate::replicaset::pod_from_template(
                &template,
                controller_reference(job.as_ref()),
                &namespace,
                &job.name_any(),
            );
            for _ in 0..*n {
                match pods_api.create(&PostParams::default(), &pod).await {
                    Ok(created) => {
                        counts_after.active += 1;
                        ctx.events.record(
                            &subject,
                            Kind::Normal,
                            "SuccessfulCreate",
                            "Create",
                            format!("Created pod: {}", created.name_any()),
                        );
                    }
                    Err(e) => {
                        ctx.events.record(
                            &subject,
                            Kind::Warning,
                            "FailedCreate",
                            "Create",
                            format!("Error creating: {}", crate::api_message(&e)),
                        );
                        requeue = Some(Duration::from_secs(5));
                        break;
                    }
                }
            }
        }
        Plan::Remove(n) => {
            let mut active: Vec<&Pod> = claimed.iter().filter(|p| pods::is_active(p)).collect();
            active.sort_by(|a, b| pods::deletion_order(a, b));
            for pod in active.into_iter().take(usize::try_from(*n).unwrap_or(0)) {
                delete(&pods_api, pod).await?;
                counts_after.active -= 1;
            }
        }
        Plan::Wait(after) => requeue = Some(*after),
        Plan::Suspend | Plan::Fail(..) => {
            for pod in claimed.iter().filter(|p| pods::is_active(p)) {
                delete(&pods_api, pod).await?;
                counts_after.active -= 1;
            }
            if let Plan::Fail(reason, message) = &plan {
                ctx.events
                    .record(&subject, Kind::Warning, reason, "Fail", message.clone());
                finish = Some(("Failed", "FailureTarget", *reason, message.clone()));
            }
        }
        Plan::Complete => {
            // Pods still running past the last completion are not needed.
            for pod in claimed.iter().filter(|p| pods::is_active(p)) {
                delete(&pods_api, pod).await?;
                counts_after.active -= 1;
            }
            ctx.events
                .record(&subject, Kind::Normal, "Completed", "Complete", "Job completed");
            finish = Some((
                "Complete",
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods".into(),
            ));
        }
        Plan::Steady => {}
    }

    let status = status_of(&job, &counts_after, matches!(plan, Plan::Suspend), finish, now);
    if job.status.as_ref() != Some(&status) {
        let mut patch = json!({"status": status});
        patch["status"]["conditions"] = json!(status.conditions);
        match jobs
            .patch_status(&job.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    // The deadline passes with no event to say so.
    if let (Some(deadline), Some(start)) = (
        job.spec.as_ref().and_then(|s| s.active_deadline_seconds),
        status.start_time.as_ref(),
    ) {
        let at = crate::plus_seconds(start.0, deadline);
        let left = Duration::try_from(at - now).unwrap_or_default() + Duration::from_millis(100);
        requeue = Some(requeue.map_or(left, |r: Duration| r.min(left)));
    }
    Ok(match requeue {
        Some(after) => crate::requeue(after),
        None => Action::await_change(),
    })
}

async fn delete(api: &Api<Pod>, pod: &Pod) -> Result<()> {
    match api.delete(&pod.name_any(), &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a finished Job once `ttlSecondsAfterFinished` has passed.
async fn expire(jobs: &Api<Job>, job: &Job, finished: Timestamp, now: Timestamp) -> Result<Action> {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ok(Action::await_change());
    };
    let at = finished + SignedDuration::from_secs(i64::from(ttl));
    if at > now {
        return Ok(crate::requeue(
            Duration::try_from(at - now).unwrap_or_default() + Duration::from_millis(100),
        ));
    }
    let params = DeleteParams::background().preconditions(kube::api::Preconditions {
        uid: job.metadata.uid.clone(),
        resource_version: None,
    });
    match jobs.delete(&job.name_any(), &params).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

fn status_of(
    job: &Job,
    counts: &Counts,
    suspended: bool,
    finish: Option<(&str, &str, &str, String)>,
    now: Timestamp,
) -> JobStatus {
    let old = job.status.clone().unwrap_or_default();
    let mut conditions: Vec<JobCondition> = old.conditions.clone().unwrap_or_default();
    let was_suspended = conditions.iter().any(|c| c.type_ == "Suspended" && c.status == "True");
    let mut set = |kind: &str, status: &str, reason: &str, message: &str| {
        set_condition(&mut conditions, now, kind, status, reason, message);
    };
    if suspended {
        set("Suspended", "True", "JobSuspended", "Job suspended");
    } else if was_suspended {
        set("Suspended", "False", "JobResumed", "Job resumed");
    }
    let mut completion_time = old.completion_time.clone();
    if let Some((kind, target, reason, message)) = &finish {
        set(target, "True", reason, message);
        set(kind, "True", reason, message);
        if *kind == "Complete" {
            completion_time = Some(Time(now));
        }
    }
    let start_time = match (&old.start_time, suspended) {
        (Some(t), _) => Some(t.clone()),
        (None, false) => Some(Time(now)),
        (None, true) => None,
    };
    JobStatus {
        active: Some(counts.active.max(0)),
        ready: Some(counts.ready),
        terminating: Some(counts.terminating),
        succeeded: Some(counts.succeeded),
        failed: Some(counts.failed),
        start_time,
        completion_time,
        conditions: (!conditions.is_empty()).then_some(conditions),
        ..old
    }
}

/// Sets condition `kind`, moving its transition time only when its
/// status changes.
fn set_condition(
    conditions: &mut Vec<JobCondition>,
    now: Timestamp,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == kind) {
        if c.status != status {
            c.last_transition_time = Some(Time(now));
        }
        c.status = status.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
    } else {
        conditions.push(JobCondition {
            type_: kind.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_probe_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn job(spec: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": spec})).unwrap()
    }

    fn counts(active: i32, succeeded: i32, failed: i32) -> Counts {
        Counts {
            active,
            succeeded,
            failed,
            ..Counts::default()
        }
    }

    #[test]
    fn plans_follow_completions_parallelism_and_limits() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let template = json!({"spec": {"containers": []}});
        let cases = [
            (
                json!({"completions": 5, "parallelism": 2, "template": template}),
                counts(0, 0, 0),
                Plan::Create(2),
            ),
            (
                json!({"completions": 5, "parallelism": 2, "template": template}),
                counts(2, 3, 0),
                Plan::Steady,
            ),
            (
                json!({"completions": 5, "parallelism": 2, "template": template}),
                counts(1, 4, 0),
                Plan::Steady,
            ),
            (
                json!({"completions": 5, "parallelism": 2, "template": template}),
                counts(0, 5, 0),
                Plan::Complete,
            ),
            (
                json!({"completions": 5, "parallelism": 1, "template": template}),
                counts(2, 0, 0),
                Plan::Remove(1),
            ),
            (
                json!({"parallelism": 3, "template": template}),
                counts(2, 1, 0),
                Plan::Steady,
            ),
            (
                json!({"parallelism": 3, "template": template}),
                counts(0, 1, 0),
                Plan::Complete,
            ),
            (
                json!({"completions": 1, "backoffLimit": 2, "template": template}),
                counts(0, 0, 3),
                Plan::Fail(
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit".into(),
                ),
            ),
            (
                json!({"completions": 1, "suspend": true, "template": template}),
                counts(1, 0, 0),
                Plan::Suspend,
            ),
            (
                json!({"completions": 1, "completionMode": "Indexed", "template": template}),
                counts(0, 0, 0),
                Plan::Fail(
                    "UnsupportedCompletionMode",
                    "skiff does not run Indexed Jobs yet".into(),
                ),
            ),
        ];
        for (spec, counts, want) in cases {
            assert_eq!(plan(&job(spec.clone()), &counts, now), want, "{spec} with {counts:?}");
        }
    }

    #[test]
    fn a_failed_pod_is_replaced_after_a_back_off_and_deadlines_fail_the_job() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let spec = json!({"completions": 1, "template": {"spec": {"containers": []}}});
        let mut c = counts(0, 0, 1);
        c.last_failure = Some("2026-01-01T00:00:55Z".parse().unwrap());
        assert_eq!(plan(&job(spec.clone()), &c, now), Plan::Wait(Duration::from_secs(5)));
        c.last_failure = Some("2026-01-01T00:00:40Z".parse().unwrap());
        assert_eq!(plan(&job(spec), &c, now), Plan::Create(1));
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(20), Duration::from_secs(360));

        let mut deadline =
            job(json!({"completions": 1, "activeDeadlineSeconds": 30, "template": {"spec": {"containers": []}}}));
        deadline.status = Some(JobStatus {
            start_time: Some(Time("2026-01-01T00:00:00Z".parse().unwrap())),
            ..JobStatus::default()
        });
        assert_eq!(
            plan(&deadline, &counts(1, 0, 0), now),
            Plan::Fail(
                "DeadlineExceeded",
                "Job was active longer than specified deadline".into()
            )
        );
    }
}
