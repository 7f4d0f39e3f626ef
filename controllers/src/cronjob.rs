//! The CronJob controller: starts a Job from a CronJob's template at each
//! time its schedule names, and keeps a few finished ones.
//!
//! What a reconcile decides is pure ([`plan`], with the schedule in
//! [`schedule`]); the reconcile lists the Jobs the CronJob controls (a
//! consistent read, so a Job created by the previous reconcile is always
//! seen), carries the plan out and writes the status.
//!
//! * The schedule is read in `spec.timeZone`, from the system's time zone
//!   database (UTC when unset, and always available); an unknown zone or
//!   a schedule that does not parse is reported with an
//!   `UnknownTimeZone` or `UnparseableSchedule` Warning, and nothing runs
//!   until the CronJob changes.
//! * The time due is the latest scheduled time at or before now and after
//!   `status.lastScheduleTime` (or the CronJob's creation). With
//!   `startingDeadlineSeconds` it must also be at most that many seconds
//!   old; an older one is missed (`MissSchedule`). As in
//!   kube-controller-manager, nothing records a miss (no status field
//!   says so), so every reconcile until the next time notices the same
//!   miss again; the event recorder counts these repeats on one Event
//!   (`count`, `lastTimestamp`) instead of writing one each. More than
//!   100 times passed since the last start (within the deadline) are
//!   reported (`TooManyMissedTimes`); only the latest runs, in any case.
//! * `concurrencyPolicy`: `Allow` starts the Job whatever else runs;
//!   `Forbid` starts nothing while one of the CronJob's Jobs is unfinished
//!   (`JobAlreadyActive`): the time stays due, and runs once the Job
//!   finishes if the deadline allows; `Replace` deletes the unfinished
//!   Jobs first.
//! * The Job is named `<cronjob>-<scheduled time in minutes since the
//!   epoch>`, so a time is never started twice, and is annotated with
//!   `batch.kubernetes.io/cronjob-scheduled-timestamp` (RFC 3339, in the
//!   CronJob's time zone).
//! * `suspend` stops new Jobs; running ones go on.
//! * Finished Jobs beyond `successfulJobsHistoryLimit` (3) and
//!   `failedJobsHistoryLimit` (1) are deleted, oldest first.
//! * `status.active` lists the unfinished Jobs the CronJob controls;
//!   `lastScheduleTime` is the time last started and
//!   `lastSuccessfulTime` the latest completion of a Job that succeeded.
//!   The reconcile is queued again for the next scheduled time.

pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::tz::{Offset, TimeZone};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use skiff_client::events::{Kind, reference};

use crate::Context;
use crate::error::{Result, is_conflict, is_not_found};
use crate::owner::{self, controller_reference};
pub use schedule::Schedule;

/// The annotation on a Job saying which scheduled time it was started for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// More missed times than this since the last start are reported.
const MISSED_TIMES_REPORTED: usize = 100;

/// Runs the controller until the client's watches end.
pub async fn run(client: kube::Client) {
    let context = Context::new(&client, "cronjob-controller");
    Controller::new(Api::<CronJob>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Job>::all(client), watcher::Config::default())
        .run(crate::metered("cronjob", reconcile), crate::retry_later, context)
        .for_each(|result| async move { crate::log_outcome("cronjob", result) })
        .await;
}

/// Something a reconcile tells people about, as an Event on the CronJob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The schedule does not parse (the schedule, why).
    UnparseableSchedule(String, String),
    /// The time zone is not known (the zone, why).
    UnknownTimeZone(String, String),
    /// More than [`MISSED_TIMES_REPORTED`] times passed since the last
    /// start.
    TooManyMissedTimes,
    /// The time due is older than `startingDeadlineSeconds` allows.
    MissSchedule(Timestamp),
    /// `Forbid`, and a Job is still running.
    JobAlreadyActive,
    /// A Job the status listed as active has finished (its name, and
    /// `Complete` or `Failed`).
    SawCompletedJob(String, &'static str),
    /// A Job the status listed as active is gone.
    MissingJob(String),
}

impl Notice {
    /// The Event's type, reason and message.
    pub fn event(&self) -> (Kind, &'static str, String) {
        match self {
            Notice::UnparseableSchedule(schedule, why) => (
                Kind::Warning,
                "UnparseableSchedule",
                format!("unparseable schedule {schedule:?}: {why}"),
            ),
            Notice::UnknownTimeZone(zone, why) => (
                Kind::Warning,
                "UnknownTimeZone",
                format!("invalid timeZone {zone:?}: {why}"),
            ),
            Notice::TooManyMissedTimes => (
                Kind::Warning,
                "TooManyMissedTimes",
                format!(
                    "more than {MISSED_TIMES_REPORTED} start times missed; only the latest runs. \
                     Set or lower .spec.startingDeadlineSeconds, or check the clock"
                ),
            ),
            Notice::MissSchedule(at) => (
                Kind::Warning,
                "MissSchedule",
                format!("Missed scheduled time to start a job: {}", rfc1123z(*at)),
            ),
            Notice::JobAlreadyActive => (
                Kind::Normal,
                "JobAlreadyActive",
                "Not starting job: the previous one is still running and concurrencyPolicy is Forbid".into(),
            ),
            Notice::SawCompletedJob(name, condition) => (
                Kind::Normal,
                "SawCompletedJob",
                format!("Saw completed job: {name}, condition: {condition}"),
            ),
            Notice::MissingJob(name) => (Kind::Normal, "MissingJob", format!("Active job went missing: {name}")),
        }
    }
}

/// What to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Start a Job for this scheduled time.
    pub start: Option<Timestamp>,
    /// Unfinished Jobs to delete before starting (`Replace`), by name.
    pub replace: Vec<String>,
    /// Finished Jobs beyond the history limits, by name.
    pub expire: Vec<String>,
    pub notices: Vec<Notice>,
    /// The next scheduled time, to look again then.
    pub next: Option<Timestamp>,
}

/// `Complete` or `Failed` once the Job has finished.
pub fn finished(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    ["Complete", "Failed"]
        .into_iter()
        .find(|kind| conditions.iter().any(|c| c.type_ == *kind && c.status == "True"))
}

/// The time zone a CronJob's schedule is read in.
pub fn time_zone(name: Option<&str>) -> std::result::Result<TimeZone, String> {
    match name {
        None | Some("" | "UTC" | "Etc/UTC") => Ok(TimeZone::UTC),
        Some(local) if local.eq_ignore_ascii_case("local") => {
            Err("the controller's local time zone is not a time zone a CronJob can name".into())
        }
        Some(name) => jiff::tz::db().get(name).map_err(|e| e.to_string()),
    }
}

/// `at` in UTC as Go's `time.RFC1123Z` writes it, as kube-controller-manager
/// words a missed time: `Tue, 10 Mar 2026 09:05:00 +0000`.
fn rfc1123z(at: Timestamp) -> String {
    at.to_zoned(TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

/// The name of the Job for scheduled time `at`.
pub fn job_name(cronjob: &str, at: Timestamp) -> String {
    format!("{cronjob}-{}", at.as_second().div_euclid(60))
}

/// `at` in RFC 3339 in `tz` (`Z` for UTC).
fn rfc3339_in(at: Timestamp, tz: &TimeZone) -> String {
    let offset = tz.to_offset(at);
    if offset == Offset::UTC {
        at.to_string()
    } else {
        at.display_with_offset(offset).to_string()
    }
}

/// Oldest first: by start time (creation for a Job not started), then name.
fn age(job: &Job) -> (Option<Timestamp>, String) {
    let started = job
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(job.metadata.creation_timestamp.as_ref())
        .map(|t| t.0);
    (started, job.name_any())
}

/// The finished Jobs beyond the history limits, oldest first.
fn expired(cronjob: &CronJob, jobs: &[Job]) -> Vec<String> {
    let spec = cronjob.spec.clone().unwrap_or_default();
    let mut names = Vec::new();
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
        ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<&Job> = jobs
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none() && finished(j) == Some(kind))
            .collect();
        done.sort_by_key(|j| age(j));
        let surplus = done.len().saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        names.extend(done.into_iter().take(surplus).map(|j| j.name_any()));
    }
    names
}

/// The next step for `cronjob`, given the Jobs it controls, at `now`.
pub fn plan(cronjob: &CronJob, jobs: &[Job], now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let Some(spec) = cronjob.spec.as_ref() else {
        return plan;
    };
    if cronjob.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    let status = cronjob.status.clone().unwrap_or_default();
    for listed in status.active.iter().flatten() {
        let name = listed.name.clone().unwrap_or_default();
        let job = jobs.iter().find(|j| match &listed.uid {
            Some(uid) => j.metadata.uid.as_ref() == Some(uid),
            None => j.name_any() == name,
        });
        match job {
            None => plan.notices.push(Notice::MissingJob(name)),
            Some(job) => {
                if let Some(condition) = finished(job) {
                    plan.notices.push(Notice::SawCompletedJob(name, condition));
                }
            }
        }
    }
    plan.expire = expired(cronjob, jobs);

    let tz = match time_zone(spec.time_zone.as_deref()) {
        Ok(tz) => tz,
        Err(why) => {
            let zone = spec.time_zone.clone().unwrap_or_default();
            plan.notices.push(Notice::UnknownTimeZone(zone, why));
            return plan;
        }
    };
    let schedule: Schedule = match spec.schedule.parse() {
        Ok(schedule) => schedule,
        Err(why) => {
            plan.notices
                .push(Notice::UnparseableSchedule(spec.schedule.clone(), why.to_string()));
            return plan;
        }
    };
    if spec.suspend.unwrap_or(false) {
        return plan;
    }
    plan.next = schedule.next_after(now, &tz);

    let since = status
        .last_schedule_time
        .as_ref()
        .or(cronjob.metadata.creation_timestamp.as_ref())
        .map_or(now, |t| t.0);
    let Some(due) = schedule.last_at_or_before(now, &tz).filter(|t| *t > since) else {
        return plan;
    };
    let window = spec.starting_deadline_seconds.map(|deadline| {
        now.checked_sub(SignedDuration::from_secs(deadline.max(0)))
            .unwrap_or(Timestamp::MIN)
    });
    // Too late once the deadline has passed, not at the deadline itself.
    if let Some(window) = window
        && due < window
    {
        plan.notices.push(Notice::MissSchedule(due));
        return plan;
    }
    // The status may lag the Jobs listed: the Job's name settles it.
    let name = job_name(&cronjob.name_any(), due);
    if jobs.iter().any(|j| j.name_any() == name) {
        return plan;
    }
    let mut missed = 0;
    let mut at = window.map_or(since, |w| w.max(since));
    while let Some(next) = schedule.next_after(at, &tz).filter(|t| *t <= now) {
        missed += 1;
        if missed > MISSED_TIMES_REPORTED {
            plan.notices.push(Notice::TooManyMissedTimes);
            break;
        }
        at = next;
    }
    let active: Vec<&Job> = jobs.iter().filter(|j| finished(j).is_none()).collect();
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            plan.notices.push(Notice::JobAlreadyActive);
            return plan;
        }
        Some("Replace") => {
            plan.replace = active
                .iter()
                .filter(|j| j.metadata.deletion_timestamp.is_none())
                .map(|j| j.name_any())
                .collect();
        }
        _ => {}
    }
    plan.start = Some(due);
    plan
}

/// The Job for scheduled time `at`.
pub fn job_for(cronjob: &CronJob, at: Timestamp) -> Job {
    let spec = cronjob.spec.clone().unwrap_or_default();
    let tz = time_zone(spec.time_zone.as_deref()).unwrap_or(TimeZone::UTC);
    let meta = spec.job_template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339_in(at, &tz));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cronjob.name_any(), at)),
            namespace: cronjob.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_reference(cronjob)]),
            ..ObjectMeta::default()
        },
        spec: spec.job_template.spec,
        status: None,
    }
}

/// The status once the plan is carried out: `jobs` are the Jobs the
/// CronJob controls now, `started` the scheduled time of the one just
/// created, if any.
pub fn status_of(cronjob: &CronJob, jobs: &[Job], started: Option<Timestamp>) -> CronJobStatus {
    let old = cronjob.status.clone().unwrap_or_default();
    let mut active: Vec<&Job> = jobs.iter().filter(|j| finished(j).is_none()).collect();
    active.sort_by_key(|j| (j.metadata.creation_timestamp.as_ref().map(|t| t.0), j.name_any()));
    let active: Vec<ObjectReference> = active
        .into_iter()
        .map(|j| ObjectReference {
            resource_version: None,
            ..reference(j)
        })
        .collect();
    let succeeded = jobs
        .iter()
        .filter(|j| finished(j) == Some("Complete"))
        .filter_map(|j| j.status.as_ref()?.completion_time.as_ref().map(|t| t.0));
    let last_successful = old
        .last_successful_time
        .as_ref()
        .map(|t| t.0)
        .into_iter()
        .chain(succeeded)
        .max();
    CronJobStatus {
        active: (!active.is_empty()).then_some(active),
        last_schedule_time: started.map(Time).or(old.last_schedule_time),
        last_successful_time: last_successful.map(Time),
    }
}

async fn reconcile(cronjob: Arc<CronJob>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = cronjob.namespace().unwrap_or_default();
    let name = cronjob.name_any();
    let uid = cronjob.metadata.uid.clone().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut jobs: Vec<Job> = jobs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| owner::is_controlled_by(&j.metadata, &uid))
        .collect();
    let now = Timestamp::now();
    let plan = plan(&cronjob, &jobs, now);
    let subject = reference(cronjob.as_ref());
    for notice in &plan.notices {
        let (kind, reason, message) = notice.event();
        ctx.events.record(&subject, kind, reason, "Schedule", message);
    }

    for doomed in plan.expire.iter().chain(&plan.replace) {
        let Some(job) = jobs.iter().find(|j| j.name_any() == *doomed) else {
            continue;
        };
        let params = DeleteParams::background().preconditions(Preconditions {
            uid: job.metadata.uid.clone(),
            resource_version: None,
        });
        match jobs_api.delete(doomed, &params).await {
            Ok(_) => ctx.events.record(
                &subject,
                Kind::Normal,
                "SuccessfulDelete",
                "Delete",
                format!("Deleted job {doomed}"),
            ),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        jobs.retain(|j| j.name_any() != *doomed);
    }

    let mut started = None;
    let mut retry = None;
    if let Some(at) = plan.start {
        let job = job_for(&cronjob, at);
        match jobs_api.create(&PostParams::default(), &job).await {
            Ok(created) => {
                ctx.events.record(
                    &subject,
                    Kind::Normal,
                    "SuccessfulCreate",
                    "Create",
                    format!("Created job {}", created.name_any()),
                );
                jobs.push(created);
                started = Some(at);
            }
            Err(e) => {
                ctx.events.record(
                    &subject,
                    Kind::Warning,
                    "FailedCreate",
                    "Create",
                    format!("Error creating job: {}", crate::api_message(&e)),
                );
                // A Job of someone else's holding the name keeps it until
                // the next time; anything else may pass sooner.
                if !is_conflict(&e) {
                    retry = Some(Duration::from_secs(5));
                }
            }
        }
    }

    // Only what changed is written, so a field someone else just set is
    // not put back from a stale copy.
    let status = status_of(&cronjob, &jobs, started);
    let old = cronjob.status.clone().unwrap_or_default();
    let mut changed = serde_json::Map::new();
    if status.active != old.active {
        // Null clears a field in a merge patch: an empty list goes.
        changed.insert("active".into(), json!(status.active));
    }
    if status.last_schedule_time != old.last_schedule_time {
        changed.insert("lastScheduleTime".into(), json!(status.last_schedule_time));
    }
    if status.last_successful_time != old.last_successful_time {
        changed.insert("lastSuccessfulTime".into(), json!(status.last_successful_time));
    }
    if !changed.is_empty() {
        let cronjobs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
        if !crate::patch_status(&cronjobs, &name, &changed).await? {
            return Ok(Action::await_change());
        }
    }

    let next = plan.next.map(|at| {
        Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or_default() + Duration::from_millis(100)
    });
    Ok(match (next, retry) {
        (Some(next), Some(retry)) => crate::requeue(next.min(retry)),
        (Some(after), None) | (None, Some(after)) => crate::requeue(after),
        (None, None) => Action::await_change(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CREATED: &str = "2026-03-10T09:00:30Z";

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn cronjob(spec: serde_json::Value, last_schedule: Option<&str>) -> CronJob {
        let mut full = json!({
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}},
        });
        for (k, v) in spec.as_object().unwrap() {
            full[k] = v.clone();
        }
        serde_json::from_value(json!({
            "metadata": {"name": "tick", "namespace": "default", "uid": "cj", "creationTimestamp": CREATED},
            "spec": full,
            "status": {"lastScheduleTime": last_schedule},
        }))
        .unwrap()
    }

    /// A Job of the CronJob: running, or finished `Complete`/`Failed` at
    /// `when`.
    fn job(name: &str, started: &str, outcome: Option<&str>) -> Job {
        let mut status = json!({"startTime": started});
        if let Some(kind) = outcome {
            status["conditions"] = json!([{"type": kind, "status": "True"}]);
            if kind == "Complete" {
                status["completionTime"] = json!(started);
            }
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name, "creationTimestamp": started},
            "status": status,
        }))
        .unwrap()
    }

    fn starts(due: &str, next: &str) -> Plan {
        Plan {
            start: Some(at(due)),
            next: Some(at(next)),
            ..Plan::default()
        }
    }

    fn waits(next: &str) -> Plan {
        Plan {
            next: Some(at(next)),
            ..Plan::default()
        }
    }

    #[test]
    fn a_job_starts_at_each_scheduled_time_once() {
        let running = job("tick-29552220", "2026-03-10T09:00:00Z", None);
        let cases: Vec<(&str, CronJob, Vec<Job>, &str, Plan)> = vec![
            (
                "nothing before the first time after creation",
                cronjob(json!({}), None),
                vec![],
                "2026-03-10T09:04:59Z",
                waits("2026-03-10T09:05:00Z"),
            ),
            (
                "the first time after creation",
                cronjob(json!({}), None),
                vec![],
                "2026-03-10T09:05:00Z",
                starts("2026-03-10T09:05:00Z", "2026-03-10T09:10:00Z"),
            ),
            (
                "a little late is still on time",
                cronjob(json!({}), Some("2026-03-10T09:00:00Z")),
                vec![],
                "2026-03-10T09:07:12Z",
                starts("2026-03-10T09:05:00Z", "2026-03-10T09:10:00Z"),
            ),
            (
                "not twice for one time",
                cronjob(json!({}), Some("2026-03-10T09:05:00Z")),
                vec![],
                "2026-03-10T09:07:00Z",
                waits("2026-03-10T09:10:00Z"),
            ),
            (
                "not twice when the status lags the Jobs",
                cronjob(json!({}), Some("2026-03-10T09:00:00Z")),
                vec![job("tick-29552225", "2026-03-10T09:05:01Z", None)],
                "2026-03-10T09:07:00Z",
                waits("2026-03-10T09:10:00Z"),
            ),
            (
                "only the latest of several missed times",
                cronjob(json!({}), Some("2026-03-10T08:00:00Z")),
                vec![],
                "2026-03-10T09:07:00Z",
                starts("2026-03-10T09:05:00Z", "2026-03-10T09:10:00Z"),
            ),
            (
                "within the starting deadline",
                cronjob(json!({"startingDeadlineSeconds": 180}), Some("2026-03-10T09:00:00Z")),
                vec![],
                "2026-03-10T09:07:59Z",
                starts("2026-03-10T09:05:00Z", "2026-03-10T09:10:00Z"),
            ),
            (
                "at the starting deadline",
                cronjob(json!({"startingDeadlineSeconds": 120}), Some("2026-03-10T09:00:00Z")),
                vec![],
                "2026-03-10T09:07:00Z",
                starts("2026-03-10T09:05:00Z", "2026-03-10T09:10:00Z"),
            ),
            (
                "past the starting deadline",
                cronjob(json!({"startingDeadlineSeconds": 120}), Some("2026-03-10T09:00:00Z")),
                vec![],
                "2026-03-10T09:07:01Z",
                Plan {
                    notices: vec![Notice::MissSchedule(at("2026-03-10T09:05:00Z"))],
                    ..waits("2026-03-10T09:10:00Z")
                },
            ),
            (
                "suspended",
                cronjob(json!({"suspend": true}), Some("2026-03-10T09:00:00Z")),
                vec![],
                "2026-03-10T09:05:00Z",
                Plan::default(),
            ),
            (
                "Allow runs alongside",
                cronjob(json!({"concurrencyPolicy": "Allow"}), Some("2026-03-10T09:00:00Z")),
                vec![running.clone()],
                "2026-03-10T09:05:00Z",
                starts("2026-03-10T09:05:00Z", "2026-03-10T09:10:00Z"),
            ),
            (
                "Forbid waits for the running one",
                cronjob(json!({"concurrencyPolicy": "Forbid"}), Some("2026-03-10T09:00:00Z")),
                vec![running.clone()],
                "2026-03-10T09:05:00Z",
                Plan {
                    notices: vec![Notice::JobAlreadyActive],
                    ..waits("2026-03-10T09:10:00Z")
                },
            ),
            (
                "Forbid starts the time still due once it finished",
                cronjob(json!({"concurrencyPolicy": "Forbid"}), Some("2026-03-10T09:00:00Z")),
                vec![job("tick-29552220", "2026-03-10T09:00:00Z", Some("Complete"))],
                "2026-03-10T09:06:00Z",
                starts("2026-03-10T09:05:00Z", "2026-03-10T09:10:00Z"),
            ),
            (
                "Replace deletes the running one",
                cronjob(json!({"concurrencyPolicy": "Replace"}), Some("2026-03-10T09:00:00Z")),
                vec![running.clone()],
                "2026-03-10T09:05:00Z",
                Plan {
                    replace: vec!["tick-29552220".into()],
                    ..starts("2026-03-10T09:05:00Z", "2026-03-10T09:10:00Z")
                },
            ),
            (
                "in the CronJob's time zone",
                cronjob(
                    json!({"schedule": "0 9 * * *", "timeZone": "Europe/Berlin"}),
                    Some("2026-03-09T08:00:00Z"),
                ),
                vec![],
                "2026-03-10T08:00:00Z",
                starts("2026-03-10T08:00:00Z", "2026-03-11T08:00:00Z"),
            ),
            (
                "an unknown time zone",
                cronjob(json!({"timeZone": "Mars/Olympus_Mons"}), None),
                vec![],
                "2026-03-10T09:05:00Z",
                Plan {
                    notices: vec![Notice::UnknownTimeZone(
                        "Mars/Olympus_Mons".into(),
                        time_zone(Some("Mars/Olympus_Mons")).unwrap_err(),
                    )],
                    ..Plan::default()
                },
            ),
            (
                "a schedule that does not parse",
                cronjob(json!({"schedule": "every day"}), None),
                vec![],
                "2026-03-10T09:05:00Z",
                Plan {
                    notices: vec![Notice::UnparseableSchedule(
                        "every day".into(),
                        "expected 5 fields, found 2".into(),
                    )],
                    ..Plan::default()
                },
            ),
        ];
        for (what, cronjob, jobs, now, want) in cases {
            assert_eq!(plan(&cronjob, &jobs, at(now)), want, "{what}");
        }
    }

    #[test]
    fn a_missed_time_is_worded_as_kubernetes_words_it() {
        let (kind, reason, message) = Notice::MissSchedule(at("2026-03-10T09:05:00Z")).event();
        assert_eq!((kind, reason), (Kind::Warning, "MissSchedule"));
        assert_eq!(
            message,
            "Missed scheduled time to start a job: Tue, 10 Mar 2026 09:05:00 +0000"
        );
    }

    #[test]
    fn many_missed_times_are_reported() {
        let cj = cronjob(json!({"schedule": "* * * * *"}), Some("2026-03-10T07:00:00Z"));
        let got = plan(&cj, &[], at("2026-03-10T09:00:30Z"));
        assert_eq!(got.start, Some(at("2026-03-10T09:00:00Z")));
        assert_eq!(got.notices, [Notice::TooManyMissedTimes]);
        // A deadline bounds how far back they count.
        let cj = cronjob(
            json!({"schedule": "* * * * *", "startingDeadlineSeconds": 600}),
            Some("2026-03-10T07:00:00Z"),
        );
        assert_eq!(plan(&cj, &[], at("2026-03-10T09:00:30Z")).notices, []);
    }

    #[test]
    fn finished_jobs_beyond_the_history_limits_go_oldest_first() {
        let jobs = [
            job("s1", "2026-03-10T09:01:00Z", Some("Complete")),
            job("s3", "2026-03-10T09:03:00Z", Some("Complete")),
            job("s2", "2026-03-10T09:02:00Z", Some("Complete")),
            job("s4", "2026-03-10T09:04:00Z", Some("Complete")),
            job("f1", "2026-03-10T09:01:00Z", Some("Failed")),
            job("f2", "2026-03-10T09:02:00Z", Some("Failed")),
            job("r", "2026-03-10T09:00:00Z", None),
        ];
        let cases = [
            (json!({}), vec!["s1", "f1"]),
            (
                json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 0}),
                vec!["s1", "s2", "s3", "f1", "f2"],
            ),
            (
                json!({"successfulJobsHistoryLimit": 10, "failedJobsHistoryLimit": 2}),
                vec![],
            ),
        ];
        for (spec, want) in cases {
            let cj = cronjob(spec.clone(), None);
            assert_eq!(plan(&cj, &jobs, at(CREATED)).expire, want, "{spec}");
        }
        // Suspended CronJobs are tidied too.
        let suspended = cronjob(json!({"suspend": true}), None);
        assert_eq!(plan(&suspended, &jobs, at(CREATED)).expire, ["s1", "f1"]);
    }

    #[test]
    fn the_status_lists_running_jobs_and_the_last_times() {
        let mut cj = cronjob(json!({}), Some("2026-03-10T09:00:00Z"));
        cj.status.as_mut().unwrap().active = Some(vec![
            ObjectReference {
                name: Some("done".into()),
                uid: Some("done".into()),
                ..ObjectReference::default()
            },
            ObjectReference {
                name: Some("gone".into()),
                uid: Some("gone".into()),
                ..ObjectReference::default()
            },
        ]);
        let jobs = [
            job("done", "2026-03-10T09:00:00Z", Some("Complete")),
            job("tick-29552225", "2026-03-10T09:05:00Z", None),
        ];
        let got = plan(&cj, &jobs, at("2026-03-10T09:06:00Z"));
        assert_eq!(
            got.notices,
            [
                Notice::SawCompletedJob("done".into(), "Complete"),
                Notice::MissingJob("gone".into())
            ]
        );
        let status = status_of(&cj, &jobs, Some(at("2026-03-10T09:05:00Z")));
        let active: Vec<_> = status.active.unwrap().into_iter().map(|r| r.name.unwrap()).collect();
        assert_eq!(active, ["tick-29552225"]);
        assert_eq!(status.last_schedule_time, Some(Time(at("2026-03-10T09:05:00Z"))));
        assert_eq!(status.last_successful_time, Some(Time(at("2026-03-10T09:00:00Z"))));
    }

    #[test]
    fn jobs_are_named_and_annotated_for_their_time() {
        let when = at("2026-03-10T09:05:00Z");
        assert_eq!(when.as_second() / 60, 29_552_225);
        let cj = cronjob(
            json!({"jobTemplate": {"metadata": {"labels": {"app": "tick"}}, "spec": {"template": {"spec": {"containers": []}}}}}),
            None,
        );
        let job = job_for(&cj, when);
        assert_eq!(job.metadata.name.as_deref(), Some("tick-29552225"));
        assert_eq!(job.annotations()[SCHEDULED_TIMESTAMP], "2026-03-10T09:05:00Z");
        assert_eq!(job.labels()["app"], "tick");
        assert_eq!(job.owner_references()[0].kind, "CronJob");
        let berlin = cronjob(json!({"timeZone": "Europe/Berlin"}), None);
        assert_eq!(
            job_for(&berlin, when).annotations()[SCHEDULED_TIMESTAMP],
            "2026-03-10T10:05:00+01:00"
        );
        assert_eq!(time_zone(Some("UTC")), Ok(TimeZone::UTC));
        assert!(time_zone(Some("Local")).is_err());
    }
}
