//! CronJobs start a Job for the time due, keep a short history, and
//! honour their concurrency policy.
//!
//! No test waits for a schedule to come round: each tells the CronJob its
//! last run was ten minutes ago (what the controller reads from
//! `status.lastScheduleTime`), so with `* * * * *` and a generous
//! `startingDeadlineSeconds` the latest minute is due at once.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{Cluster, is_ready, until};

const SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

fn job_spec(app: &str) -> serde_json::Value {
    json!({
        "backoffLimit": 0,
        "template": {
            "metadata": {"labels": {"app": app}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "example.invalid/task:1"}]},
        },
    })
}

fn cron_job(name: &str, extra: serde_json::Value) -> CronJob {
    let mut spec = json!({
        "schedule": "* * * * *",
        "startingDeadlineSeconds": 3600,
        "jobTemplate": {"spec": job_spec(name)},
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// The start of the minute `at` is in.
fn minute_of(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second().div_euclid(60) * 60).unwrap()
}

/// Tells the CronJob it last ran ten minutes before this minute.
async fn ran_ten_minutes_ago(api: &Api<CronJob>, name: &str) {
    let last = minute_of(Timestamp::now()) - SignedDuration::from_mins(10);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"lastScheduleTime": last.to_string()}})),
    )
    .await
    .unwrap();
}

async fn set_suspend(api: &Api<CronJob>, name: &str, suspend: bool) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": suspend}})),
    )
    .await
    .unwrap();
}

/// The Jobs `cronjob` controls that are not being deleted.
async fn jobs_of(client: &kube::Client, cronjob: &CronJob) -> Vec<Job> {
    let uid = cronjob.uid().unwrap();
    Api::<Job>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter(|j| {
            j.owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .collect()
}

fn names(jobs: &[Job]) -> BTreeSet<String> {
    jobs.iter().map(|j| j.name_any()).collect()
}

/// Creates a Job controlled by `cronjob`, as if it had started it, and
/// waits for the Job controller to start it.
async fn job_of(client: &kube::Client, cronjob: &CronJob, name: &str) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob.name_any(),
            "uid": cronjob.uid().unwrap(), "controller": true, "blockOwnerDeletion": true}]},
        "spec": job_spec(&cronjob.name_any()),
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    until("the job started", || async {
        jobs.get(name).await.unwrap().status?.start_time.map(|_| ())
    })
    .await;
}

/// Ends the Job's pod in `phase` once the stand-in node has it running.
async fn finish(client: &kube::Client, job: &str, phase: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = until("the job's pod running", || async {
        let listed = pods
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .unwrap();
        listed.items.into_iter().find(is_ready)
    })
    .await;
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": phase}})),
    )
    .await
    .unwrap();
}

/// Waits for an Event with `reason` about `name`.
async fn event(client: &kube::Client, name: &str, reason: &str) -> Event {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    until(reason, || async {
        let listed = events.list(&ListParams::default()).await.unwrap();
        listed
            .items
            .into_iter()
            .find(|e| e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_starts_for_the_time_due_and_its_success_is_recorded() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let begun = minute_of(Timestamp::now());
    let cronjob = api
        .create(&PostParams::default(), &cron_job("tick", json!({})))
        .await
        .unwrap();
    ran_ten_minutes_ago(&api, "tick").await;

    let job = until("a job", || async {
        let mut jobs = jobs_of(&client, &cronjob).await;
        jobs.sort_by_key(|j| j.name_any());
        jobs.into_iter().next()
    })
    .await;
    let scheduled: Timestamp = job.annotations()[SCHEDULED].parse().unwrap();
    assert_eq!(scheduled.as_second() % 60, 0, "{scheduled}");
    assert!(scheduled >= begun && scheduled <= Timestamp::now(), "{scheduled}");
    assert_eq!(job.name_any(), format!("tick-{}", scheduled.as_second() / 60));
    let status = until("the job listed as active", || async {
        let status = api.get("tick").await.unwrap().status?;
        let active = status.active.clone()?;
        active.iter().any(|r| r.uid == job.uid()).then_some(status)
    })
    .await;
    assert!(status.last_schedule_time.unwrap().0 >= scheduled);
    let created = event(&client, "tick", "SuccessfulCreate").await;
    assert_eq!(created.message.unwrap(), format!("Created job {}", job.name_any()));

    finish(&client, &job.name_any(), "Succeeded").await;
    let status = until("the success recorded", || async {
        let status = api.get("tick").await.unwrap().status?;
        let still_active = status.active.iter().flatten().any(|r| r.uid == job.uid());
        (!still_active && status.last_successful_time.is_some()).then_some(status)
    })
    .await;
    let completed = Api::<Job>::namespaced(client.clone(), "default")
        .get(&job.name_any())
        .await
        .unwrap();
    assert_eq!(status.last_successful_time, completed.status.unwrap().completion_time);
    event(&client, "tick", "SawCompletedJob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_beyond_the_history_limits_are_deleted_oldest_first() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api: Api<CronJob> = Api::namespaced(client.clone(), "default");
    // Suspended: the only Jobs are the ones made here.
    let cronjob = api
        .create(
            &PostParams::default(),
            &cron_job(
                "hist",
                json!({"suspend": true, "successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1}),
            ),
        )
        .await
        .unwrap();
    // One after another, so they start in this order.
    for name in ["hist-s1", "hist-s2", "hist-s3", "hist-f1", "hist-f2"] {
        job_of(&client, &cronjob, name).await;
    }
    for (name, phase) in [
        ("hist-s1", "Succeeded"),
        ("hist-s2", "Succeeded"),
        ("hist-s3", "Succeeded"),
        ("hist-f1", "Failed"),
        ("hist-f2", "Failed"),
    ] {
        finish(&client, name, phase).await;
    }
    let want: BTreeSet<String> = ["hist-s2", "hist-s3", "hist-f2"].map(String::from).into();
    until("two successes and one failure kept", || async {
        (names(&jobs_of(&client, &cronjob).await) == want).then_some(())
    })
    .await;
    let deleted = event(&client, "hist", "SuccessfulDelete").await;
    assert!(deleted.message.unwrap().starts_with("Deleted job hist-"));
    let status = api.get("hist").await.unwrap().status.unwrap_or_default();
    assert_eq!(status.active, None);
    assert_eq!(status.last_schedule_time, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_waits_for_the_running_job_and_replace_deletes_it() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let mut cronjobs = Vec::new();
    for (name, policy) in [("solo", "Forbid"), ("swap", "Replace")] {
        let cronjob = api
            .create(
                &PostParams::default(),
                &cron_job(name, json!({"suspend": true, "concurrencyPolicy": policy})),
            )
            .await
            .unwrap();
        job_of(&client, &cronjob, &format!("{name}-manual")).await;
        ran_ten_minutes_ago(&api, name).await;
        set_suspend(&api, name, false).await;
        cronjobs.push(cronjob);
    }
    let [solo, swap] = cronjobs.as_slice() else {
        unreachable!()
    };

    // Forbid: nothing new while the manual Job runs...
    event(&client, "solo", "JobAlreadyActive").await;
    assert_eq!(
        names(&jobs_of(&client, solo).await),
        BTreeSet::from(["solo-manual".to_string()])
    );
    // ...and the time still due starts once it is done.
    finish(&client, "solo-manual", "Succeeded").await;
    let started = until("a scheduled job", || async {
        jobs_of(&client, solo)
            .await
            .into_iter()
            .find(|j| j.annotations().contains_key(SCHEDULED))
    })
    .await;
    assert!(started.name_any().starts_with("solo-"));

    // Replace: the manual Job is deleted for the scheduled one.
    let replacement = until("the manual job replaced", || async {
        let jobs = jobs_of(&client, swap).await;
        let manual = jobs.iter().any(|j| j.name_any() == "swap-manual");
        let scheduled = jobs.into_iter().find(|j| j.annotations().contains_key(SCHEDULED));
        if manual { None } else { scheduled }
    })
    .await;
    let deleted = event(&client, "swap", "SuccessfulDelete").await;
    assert_eq!(deleted.message.as_deref(), Some("Deleted job swap-manual"));
    until("only the replacement active", || async {
        let active = api.get("swap").await.unwrap().status?.active?;
        let uids: Vec<_> = active.iter().map(|r| r.uid.clone()).collect();
        (uids == [replacement.uid()]).then_some(())
    })
    .await;
}

/// The MissSchedule Events about `name`.
async fn misses(events: &Api<Event>, name: &str) -> Vec<Event> {
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some("MissSchedule"))
        .collect()
}

/// A time missed beyond `startingDeadlineSeconds` is noticed again at
/// every reconcile until the next time, as kube-controller-manager does;
/// the notices are one Event whose count grows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_time_noticed_at_each_reconcile_is_one_counted_event() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    // Yearly, last run in 2000, ten seconds to start: this year's time is
    // long missed, and stays the time due all year.
    let yearly = json!({"schedule": "0 0 1 1 *", "startingDeadlineSeconds": 10});
    api.create(&PostParams::default(), &cron_job("late", yearly))
        .await
        .unwrap();
    api.patch_status(
        "late",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"lastScheduleTime": "2000-01-01T00:00:00Z"}})),
    )
    .await
    .unwrap();

    let first = until("a MissSchedule event", || async { misses(&events, "late").await.pop() }).await;
    let message = first.message.clone().unwrap();
    let year = Timestamp::now().to_zoned(TimeZone::UTC).year();
    assert!(
        message.starts_with("Missed scheduled time to start a job: ")
            && message.ends_with(&format!(", 01 Jan {year} 00:00:00 +0000")),
        "{message}"
    );
    // Event times are whole seconds: let the clock reach the next one,
    // then make the controller look again (any change to the CronJob).
    let first_seen = first.first_timestamp.clone().unwrap().0;
    until("the next second", || async {
        (Timestamp::now().as_second() > first_seen.as_second()).then_some(())
    })
    .await;
    let mut pokes = 0;
    let counted = until("the miss counted again", || {
        pokes += 1;
        let (api, events) = (&api, &events);
        async move {
            let poke = json!({"metadata": {"annotations": {"example.com/poke": pokes.to_string()}}});
            api.patch("late", &PatchParams::default(), &Patch::Merge(poke))
                .await
                .unwrap();
            misses(events, "late")
                .await
                .into_iter()
                .find(|e| e.count.is_some_and(|c| c >= 2))
        }
    })
    .await;
    let all = misses(&events, "late").await;
    assert_eq!(all.len(), 1, "one Event, counted: {all:?}");
    assert_eq!(counted.metadata.name, first.metadata.name);
    assert_eq!(counted.message.as_deref(), Some(message.as_str()));
    assert_eq!(counted.first_timestamp, first.first_timestamp);
    assert!(counted.last_timestamp.clone().unwrap().0 > first_seen, "{counted:?}");
    assert!(
        jobs_of(&client, &api.get("late").await.unwrap()).await.is_empty(),
        "a missed time starts nothing"
    );
}
