//! A pod's lifecycle on the node agent, against a real API server (see
//! `support`): restarts and their back-off, restart policies, init
//! containers, probes, logs (filtering, rotation), Secrets and emptyDir
//! volumes, and components the host cannot run.
//!
//! Every wait is bounded. Timing is only ever checked as a lower bound
//! (nothing restarts before its back-off), never as an upper one. Each
//! test's Wasm pods get addresses from their own `127.<n>.0.0/16`, 41 and
//! up: `agent.rs` takes 11–16, skiff's end-to-end tests 21–25, the
//! benchmarks 31.
//!
//! The OCI test needs root, runc, umoci and busybox-static (which
//! `cargo xtask test` installs) and is skipped when not root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{LogParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use skiff_host::agent::logs::LogLimits;
use support::{
    Cluster, busybox_layout, cluster, cluster_with, condition, container, eventually, http_get, init_container,
    is_root, phase, pod, pod_where, ready, restarts, waiting_reason,
};

/// A pod on `node-a` with the given spec fields.
fn pod_named(name: &str, spec: Value) -> Pod {
    let spec = with_fields(spec, json!({"nodeName": "node-a"}));
    pod(json!({"metadata": {"name": name}, "spec": spec}))
}

/// `base` (an object) with the fields of `extra` set on it.
fn with_fields(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

async fn create(c: &Cluster, pod: Pod) {
    c.pods().create(&PostParams::default(), &pod).await.unwrap();
}

async fn logs(c: &Cluster, name: &str, params: LogParams) -> String {
    c.pods().logs(name, &params).await.unwrap()
}

/// The delay a `CrashLoopBackOff` message announces: `back-off 400ms
/// restarting failed container=…`, in Go's notation (`200ms`, `1.6s`).
fn announced_back_off(message: &str) -> Duration {
    let text = message
        .strip_prefix("back-off ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("not a back-off message: {message:?}"));
    match text.strip_suffix("ms") {
        Some(ms) => Duration::from_millis(ms.parse().unwrap()),
        None => {
            let seconds: f64 = text.strip_suffix('s').unwrap().parse().unwrap();
            Duration::from_millis((seconds * 1000.0).round() as u64)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_looping_container_backs_off_exponentially_up_to_the_cap() {
    let (initial, cap) = (Duration::from_millis(200), Duration::from_millis(1600));
    let c = cluster_with(41, |config| {
        config.backoff_initial = initial;
        config.backoff_max = cap;
    })
    .await;
    let cli = c.import(skiff_test_programs::CLI_HELLO, "cli-hello");
    // Watched from before the pod exists, so no status is missed.
    let config = watcher::Config::default().fields("metadata.name=crash");
    let mut updates = watcher(c.pods(), config).applied_objects().boxed();
    create(
        &c,
        pod_named(
            "crash",
            json!({"restartPolicy": "Always", "containers": [{"name": "main", "image": cli, "args": ["3"]}]}),
        ),
    )
    .await;

    // Per restart count: when it was first seen, and the back-off its
    // CrashLoopBackOff message announced.
    let last = 7;
    let mut first_seen: BTreeMap<i32, Instant> = BTreeMap::new();
    let mut announced: BTreeMap<i32, Duration> = BTreeMap::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(update) = updates.next().await {
            let Ok(pod) = update else { continue };
            let Some(status) = container(&pod, 0) else { continue };
            let n = status.restart_count;
            first_seen.entry(n).or_insert_with(Instant::now);
            let waiting = status.state.as_ref().and_then(|s| s.waiting.as_ref());
            if let Some(waiting) = waiting.filter(|w| w.reason.as_deref() == Some("CrashLoopBackOff")) {
                let message = waiting.message.clone().unwrap_or_default();
                assert!(message.contains("container=main pod=crash_default("), "{message}");
                let terminated = status.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                assert_ne!(terminated.map(|t| t.exit_code), Some(0), "the last run failed");
                assert_eq!(phase(&pod), "Running", "a crash-looping pod stays Running");
                announced.insert(n, announced_back_off(&message));
            }
            if announced.contains_key(&last) {
                return;
            }
        }
        panic!("the watch ended");
    })
    .await
    .unwrap_or_else(|_| panic!("no {last}th restart in time: announced {announced:?}"));

    // The first restart is immediate; from the second on, the back-off
    // doubles from its first delay to the cap and stays there.
    let back_off = |n: i32| (initial * 2u32.pow(u32::try_from(n - 2).unwrap())).min(cap);
    assert!(!announced.contains_key(&1), "{announced:?}");
    assert!(announced.len() >= 4, "{announced:?}");
    for (n, delay) in &announced {
        assert_eq!(*delay, back_off(*n), "restart {n}: {announced:?}");
    }
    assert!(announced.values().filter(|d| **d == cap).count() >= 2, "{announced:?}");
    // No restart came before its back-off: between two restarts' exits lie
    // at least the back-off and the run. (Lower bounds only, with slack for
    // when the watch saw each.)
    let seen = |n: i32| {
        *first_seen
            .get(&n)
            .unwrap_or_else(|| panic!("restart {n} was not seen: {first_seen:?}"))
    };
    let gap = |n: i32| seen(n + 1) - seen(n);
    for n in (2..last).filter(|n| back_off(*n) >= Duration::from_millis(800)) {
        assert!(
            gap(n) >= back_off(n) / 2,
            "restart {} came {:?} after the one before",
            n + 1,
            gap(n)
        );
    }
    let total: Duration = (2..last).map(back_off).sum();
    let elapsed = seen(last) - seen(2);
    assert!(elapsed >= total * 4 / 5, "{elapsed:?} for back-offs of {total:?}");
    assert!(gap(5) > gap(2), "the gaps grow: {:?} then {:?}", gap(2), gap(5));
    c.event_where("crash", "BackOff", "Back-off restarting failed container main")
        .await;
    c.delete_all(&["crash"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_failure_restarts_a_failed_container_but_not_a_completed_one() {
    let c = cluster(42).await;
    let cli = c.import(skiff_test_programs::CLI_HELLO, "cli-hello");
    let job = |code: &str| json!({"restartPolicy": "OnFailure", "containers": [{"name": "main", "image": cli, "args": [code]}]});
    create(&c, pod_named("done", job("0"))).await;
    create(&c, pod_named("retry", job("3"))).await;
    let pods = c.pods();

    let done = pod_where(&pods, "done", "done Succeeded", |p| phase(p) == "Succeeded").await;
    let terminated = container(&done, 0).unwrap().state.clone().unwrap().terminated.unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (0, Some("Completed"))
    );

    let retry = pod_where(&pods, "retry", "retry restarted twice", |p| restarts(p) >= 2).await;
    assert_eq!(phase(&retry), "Running", "a failed container under OnFailure restarts");
    let last = container(&retry, 0)
        .unwrap()
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_ne!(last.exit_code, 0);

    // By now the completed one would have restarted (its first restart
    // would be immediate), had it been going to.
    let done = pods.get("done").await.unwrap();
    assert_eq!(phase(&done), "Succeeded");
    let status = container(&done, 0).unwrap();
    assert_eq!(status.restart_count, 0);
    assert!(
        status.last_state.as_ref().is_none_or(|s| s.terminated.is_none()),
        "{status:?}"
    );
    assert!(
        status.container_id.as_deref().unwrap().ends_with("-main-0"),
        "one run only"
    );
    c.delete_all(&["done", "retry"]).await;
}

/// A cli-hello container that appends its arguments to `/config/greeting`
/// on the pod's `work` volume (and prints the file).
fn step(cli: &str, name: &str, code: &str) -> Value {
    json!({
        "name": name,
        "image": cli,
        "args": [code, name],
        "env": [{"name": "APPEND_TO", "value": "/config/greeting"}],
        "volumeMounts": [{"name": "work", "mountPath": "/config"}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn init_containers_run_in_order_before_the_app_and_share_an_empty_dir() {
    let c = cluster(43).await;
    let cli = c.import(skiff_test_programs::CLI_HELLO, "cli-hello");
    let http = c.import(skiff_test_programs::HTTP_HELLO, "http-hello");
    let work = json!([{"name": "work", "emptyDir": {}}]);
    create(
        &c,
        pod_named(
            "steps",
            json!({
                "restartPolicy": "Never",
                "initContainers": [step(&cli, "first", "0"), step(&cli, "second", "0")],
                "containers": [step(&cli, "main", "0")],
                "volumes": work,
            }),
        ),
    )
    .await;
    let pods = c.pods();
    let done = pod_where(&pods, "steps", "steps Succeeded", |p| phase(p) == "Succeeded").await;
    assert_eq!(condition(&done, "Initialized"), Some("True"));
    for (i, name) in ["first", "second"].into_iter().enumerate() {
        let status = init_container(&done, i).unwrap();
        assert_eq!(status.name, name);
        let terminated = status.state.clone().unwrap().terminated.unwrap();
        assert_eq!(
            (terminated.exit_code, terminated.reason.as_deref()),
            (0, Some("Completed"))
        );
    }
    // Each container appended to the file, then printed it: the init
    // containers ran one after the other, and the app after both.
    let of = |name: &str| LogParams {
        container: Some(name.into()),
        ..LogParams::default()
    };
    let first = logs(&c, "steps", of("first")).await;
    assert!(first.contains("config: 0 first\n"), "{first}");
    let second = logs(&c, "steps", of("second")).await;
    assert!(second.contains("config: 0 first\n0 second\n"), "{second}");
    let main = logs(&c, "steps", of("main")).await;
    assert!(main.contains("config: 0 first\n0 second\n0 main\n"), "{main}");

    // What a cli init container writes, an HTTP component serves.
    create(
        &c,
        pod_named(
            "served",
            json!({
                "initContainers": [step(&cli, "writer", "0")],
                "containers": [{
                    "name": "web",
                    "image": http,
                    "ports": [{"containerPort": 8080}],
                    "volumeMounts": [{"name": "work", "mountPath": "/config"}],
                }],
                "volumes": work,
            }),
        ),
    )
    .await;
    let running = pod_where(&pods, "served", "served Ready", ready).await;
    let ip = running.status.unwrap().pod_ip.unwrap();
    let reply = http_get(&format!("{ip}:8080"), "/hello").await.unwrap();
    assert!(reply.contains("config: 0 writer\n"), "{reply}");
    c.delete_all(&["steps", "served"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_init_container_fails_the_pod_or_is_retried_by_restart_policy() {
    let c = cluster(44).await;
    let cli = c.import(skiff_test_programs::CLI_HELLO, "cli-hello");
    let spec = |policy: &str| {
        json!({
            "restartPolicy": policy,
            "initContainers": [
                {"name": "setup", "image": cli, "args": ["2", "setup"]},
                {"name": "later", "image": cli, "args": ["0"]},
            ],
            "containers": [{"name": "main", "image": cli, "args": ["0"]}],
        })
    };
    create(&c, pod_named("never", spec("Never"))).await;
    create(&c, pod_named("always", spec("Always"))).await;
    let pods = c.pods();
    // Neither the init container after the failed one nor the app ran.
    let untouched = |p: &Pod| {
        let later = init_container(p, 1).unwrap();
        let main = container(p, 0).unwrap();
        later.container_id.is_none()
            && later.restart_count == 0
            && main.container_id.is_none()
            && main.restart_count == 0
            && waiting_reason(Some(main)) == Some("PodInitializing")
    };

    let failed = pod_where(&pods, "never", "never Failed", |p| phase(p) == "Failed").await;
    let setup = init_container(&failed, 0).unwrap();
    assert_eq!(setup.name, "setup");
    let terminated = setup.state.clone().unwrap().terminated.unwrap();
    assert_ne!(terminated.exit_code, 0);
    assert_eq!(terminated.reason.as_deref(), Some("Error"));
    assert_eq!(setup.restart_count, 0);
    assert!(untouched(&failed), "{:?}", failed.status);
    assert_eq!(condition(&failed, "Initialized"), Some("False"));
    let params = LogParams {
        container: Some("setup".into()),
        ..LogParams::default()
    };
    assert!(logs(&c, "never", params).await.contains("args: 2 setup"));

    // Under Always the failed init container is retried, with back-off,
    // and the pod stays Pending with nothing after it started.
    let retried = eventually(Duration::from_secs(60), "always retried twice", || async {
        let p = pods.get("always").await.unwrap();
        if p.status.as_ref().is_some_and(|s| s.init_container_statuses.is_some()) {
            assert!(untouched(&p), "{:?}", p.status);
            assert_eq!(phase(&p), "Pending");
        }
        init_container(&p, 0).is_some_and(|s| s.restart_count >= 2).then_some(p)
    })
    .await;
    assert_eq!(condition(&retried, "Initialized"), Some("False"));
    let looping = pod_where(&pods, "always", "setup in CrashLoopBackOff", |p| {
        waiting_reason(init_container(p, 0)) == Some("CrashLoopBackOff")
    })
    .await;
    assert!(untouched(&looping));
    assert_eq!(phase(&looping), "Pending");
    c.event_where("always", "BackOff", "Back-off restarting failed container setup")
        .await;
    c.delete_all(&["never", "always"]).await;
}

/// An http-hello pod on port 8080 with `probes` on its container.
/// (`/sleep` without `ms` answers 400: the failing path.)
fn web(http: &str, policy: &str, probes: Value) -> Value {
    let container = with_fields(
        json!({"name": "web", "image": http, "ports": [{"containerPort": 8080}]}),
        probes,
    );
    json!({"restartPolicy": policy, "terminationGracePeriodSeconds": 1, "containers": [container]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_probes_decide_readiness_without_restarting() {
    let c = cluster(45).await;
    let http = c.import(skiff_test_programs::HTTP_HELLO, "http-hello");
    let every_second = |handler: Value| json!({"readinessProbe": with_fields(json!({"periodSeconds": 1, "failureThreshold": 1}), handler)});
    let pods_and_probes = [
        ("ready", json!({"httpGet": {"path": "/hello", "port": 8080}})),
        ("tcp", json!({"tcpSocket": {"port": 8080}})),
        ("unready", json!({"httpGet": {"path": "/sleep", "port": 8080}})),
        ("closed", json!({"tcpSocket": {"port": 8081}})),
        ("exec", json!({"exec": {"command": ["true"]}})),
    ];
    for (name, handler) in &pods_and_probes {
        create(&c, pod_named(name, web(&http, "Always", every_second(handler.clone())))).await;
    }
    let pods = c.pods();
    for name in ["ready", "tcp"] {
        let p = pod_where(&pods, name, &format!("{name} Ready"), ready).await;
        assert_eq!(condition(&p, "ContainersReady"), Some("True"));
        assert!(container(&p, 0).unwrap().ready);
    }
    let failures = [
        (
            "unready",
            "Readiness probe failed: HTTP probe failed with statuscode: 400",
        ),
        ("closed", "Readiness probe failed: dial tcp"),
        ("exec", "exec probes are not supported for Wasm containers"),
    ];
    for (name, message) in failures {
        c.event_where(name, "Unhealthy", message).await;
        let p = pods.get(name).await.unwrap();
        assert_eq!(phase(&p), "Running", "{name}");
        assert_eq!(condition(&p, "Ready"), Some("False"), "{name}");
        assert_eq!(condition(&p, "ContainersReady"), Some("False"), "{name}");
        let status = container(&p, 0).unwrap();
        assert!(
            !status.ready && status.state.as_ref().unwrap().running.is_some(),
            "{name}: {status:?}"
        );
        assert_eq!(status.restart_count, 0, "{name}: readiness never restarts");
    }
    // Not ready is not down: the unready pod still serves when asked.
    let ip = pods.get("unready").await.unwrap().status.unwrap().pod_ip.unwrap();
    let reply = http_get(&format!("{ip}:8080"), "/hello").await.unwrap();
    assert!(reply.contains("hello from skiff"), "{reply}");
    let names: Vec<&str> = pods_and_probes.iter().map(|(n, _)| *n).collect();
    c.delete_all(&names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_liveness_probe_restarts_the_container() {
    let c = cluster(46).await;
    let http = c.import(skiff_test_programs::HTTP_HELLO, "http-hello");
    let liveness = json!({"livenessProbe": {
        "httpGet": {"path": "/sleep", "port": 8080},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }});
    create(&c, pod_named("always", web(&http, "Always", liveness.clone()))).await;
    // A Wasm HTTP service that is stopped exits 0; killed for its probe,
    // it is restarted all the same.
    create(&c, pod_named("on-failure", web(&http, "OnFailure", liveness))).await;
    let pods = c.pods();
    for name in ["always", "on-failure"] {
        let p = pod_where(&pods, name, &format!("{name} restarted twice"), |p| {
            assert_ne!(phase(p), "Succeeded", "{name} was not restarted: {:?}", p.status);
            restarts(p) >= 2
        })
        .await;
        assert_eq!(phase(&p), "Running", "{name}");
        let last = container(&p, 0)
            .unwrap()
            .last_state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        let message = last.message.unwrap_or_default();
        assert!(
            message.contains("Liveness probe failed: HTTP probe failed with statuscode: 400"),
            "{name}: {message}"
        );
        c.event_where(name, "Unhealthy", "Liveness probe failed").await;
        c.event_where(name, "Killing", "failed liveness probe, will be restarted")
            .await;
    }
    c.delete_all(&["always", "on-failure"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_startup_probe_holds_back_liveness_and_readiness() {
    let c = cluster(47).await;
    let http = c.import(skiff_test_programs::HTTP_HELLO, "http-hello");
    // Readiness would pass at once and liveness fail at once, but neither
    // runs before the startup probe passes, which it never does: after
    // four failures the container is restarted.
    create(
        &c,
        pod_named(
            "never-starts",
            web(
                &http,
                "Always",
                json!({
                    "startupProbe": {"httpGet": {"path": "/sleep", "port": 8080}, "periodSeconds": 1, "failureThreshold": 4},
                    "readinessProbe": {"httpGet": {"path": "/hello", "port": 8080}, "periodSeconds": 1},
                    "livenessProbe": {"httpGet": {"path": "/sleep", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1},
                }),
            ),
        ),
    )
    .await;
    // A startup probe that passes (over TCP) lets readiness decide.
    create(
        &c,
        pod_named(
            "starts",
            web(
                &http,
                "Always",
                json!({
                    "startupProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    "readinessProbe": {"httpGet": {"path": "/hello", "port": 8080}, "periodSeconds": 1},
                }),
            ),
        ),
    )
    .await;
    let pods = c.pods();
    let restarted = eventually(Duration::from_secs(60), "never-starts restarted", || async {
        let p = pods.get("never-starts").await.unwrap();
        assert!(!ready(&p), "readiness ran before startup passed: {:?}", p.status);
        if let Some(status) = container(&p, 0) {
            assert_ne!(status.started, Some(true), "{status:?}");
        }
        (restarts(&p) >= 1).then_some(p)
    })
    .await;
    let last = container(&restarted, 0)
        .unwrap()
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert!(
        last.message
            .as_deref()
            .unwrap_or_default()
            .contains("Startup probe failed"),
        "{last:?}"
    );
    c.event_where("never-starts", "Killing", "failed startup probe").await;
    let events = c.events("never-starts").await;
    assert!(
        !events.iter().any(|(_, m)| m.contains("Liveness probe")),
        "liveness ran before startup passed: {events:?}"
    );
    let started = pod_where(&pods, "starts", "starts Ready", ready).await;
    assert_eq!(container(&started, 0).unwrap().started, Some(true));
    c.delete_all(&["never-starts", "starts"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oci_container_has_exec_probes_and_logs_since_a_time() {
    if !is_root() {
        eprintln!("skipping: runc containers need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = busybox_layout(dir.path());
    let c = cluster(48).await;
    assert!(c.agent.runc_usable(), "runc is installed but the agent cannot use it");
    c.agent.images().import_layout(&layout, "local/busybox:1").unwrap();
    create(
        &c,
        pod_named(
            "probed",
            json!({
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "sh",
                    "image": "local/busybox:1",
                    "command": ["sh", "-c", "echo early; sleep 4; echo ok > /work/ready; echo late; exec sleep 300"],
                    "readinessProbe": {
                        "exec": {"command": ["cat", "/work/ready"]},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                        "timeoutSeconds": 5,
                    },
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                }],
                "volumes": [{"name": "work", "emptyDir": {}}],
            }),
        ),
    )
    .await;
    // Not ready while the file is missing, ready once it is there.
    let message = c.event_where("probed", "Unhealthy", "Readiness probe failed").await;
    assert!(message.contains("cat"), "{message}");
    let pods = c.pods();
    let p = pod_where(&pods, "probed", "probed Ready", ready).await;
    assert_eq!(restarts(&p), 0);

    // `sinceSeconds` reaching back past "late" but not to "early", four
    // seconds before it.
    let stamped = eventually(Duration::from_secs(20), "the late line", || async {
        let params = LogParams {
            timestamps: true,
            ..LogParams::default()
        };
        let text = pods.logs("probed", &params).await.ok()?;
        text.contains(" late\n").then_some(text)
    })
    .await;
    let stamp = |word: &str| -> jiff::Timestamp {
        let line = stamped.lines().find(|l| l.ends_with(word)).unwrap();
        line.split(' ').next().unwrap().parse().unwrap()
    };
    let (early, late) = (stamp(" early"), stamp(" late"));
    let since_late = jiff::Timestamp::now().duration_since(late).as_secs() + 2;
    assert!(
        jiff::Timestamp::now().duration_since(early).as_secs() > since_late,
        "too slow to tell {early} from {late}"
    );
    let params = LogParams {
        since_seconds: Some(since_late),
        ..LogParams::default()
    };
    let recent = pods.logs("probed", &params).await.unwrap();
    assert!(recent.contains("late\n") && !recent.contains("early"), "{recent}");
    c.delete_all(&["probed"]).await;
}

/// The CRI records in a log file (one per line).
fn records(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The numbers of the `line N` lines of a log, checked to be consecutive
/// and to end with `last`.
fn numbered(text: &str, last: u32) -> Vec<u32> {
    let numbers: Vec<u32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("line "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(numbers.last(), Some(&last), "{text}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    numbers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_rotate_keep_two_runs_and_filter_by_age() {
    // A file holds about 20 records of `line N`; the tail asked for is
    // longer than that.
    const TAIL: usize = 25;
    let max_bytes = 1000;
    let c = cluster_with(49, |config| {
        config.log_limits = LogLimits { max_bytes };
        // Long pauses between restarts, to read the logs in.
        config.backoff_initial = Duration::from_secs(3);
        config.backoff_max = Duration::from_secs(3);
    })
    .await;
    let cli = c.import(skiff_test_programs::CLI_HELLO, "cli-hello");
    // Each run writes about ten times what one log file holds.
    create(
        &c,
        pod_named(
            "chatty",
            json!({"containers": [{
                "name": "main",
                "image": cli,
                "args": ["0"],
                "env": [{"name": "LINES", "value": "200"}],
            }]}),
        ),
    )
    .await;
    create(
        &c,
        pod_named(
            "quiet",
            json!({"restartPolicy": "Never", "containers": [{"name": "main", "image": cli, "args": ["0"]}]}),
        ),
    )
    .await;
    let pods = c.pods();

    // Three runs are over (0, 1 and 2) and the fourth waits: read while
    // nothing runs (the pod is waiting before and after the reads).
    let waiting = |p: &Pod| restarts(p) >= 3 && waiting_reason(container(p, 0)) == Some("CrashLoopBackOff");
    let (n, current, previous, tailed) = eventually(Duration::from_secs(60), "chatty between runs", || async {
        let before = pods.get("chatty").await.unwrap();
        if !waiting(&before) {
            return None;
        }
        let current = pods.logs("chatty", &LogParams::default()).await.unwrap();
        let previous = LogParams {
            previous: true,
            ..LogParams::default()
        };
        let previous = pods.logs("chatty", &previous).await.unwrap();
        let tail = LogParams {
            tail_lines: Some(TAIL as i64),
            ..LogParams::default()
        };
        let tailed = pods.logs("chatty", &tail).await.unwrap();
        let after = pods.get("chatty").await.unwrap();
        (waiting(&after) && restarts(&after) == restarts(&before))
            .then(|| (restarts(&before), current, previous, tailed))
    })
    .await;
    let uid = pods.get("chatty").await.unwrap().metadata.uid.unwrap();
    let dir = c.agent_dir.join(format!("logs/default_chatty_{uid}/main"));
    let (run, before) = (n - 1, n - 2);

    // On disk: the last two runs' logs, each rotated once; nothing older.
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let want: BTreeSet<String> = [before, run]
        .iter()
        .flat_map(|r| [format!("{r}.log"), format!("{r}.log.1")])
        .collect();
    assert_eq!(files, want, "in {}", dir.display());
    for file in &files {
        let size = std::fs::metadata(dir.join(file)).unwrap().len();
        assert!(size <= max_bytes, "{file} holds {size} bytes");
    }

    // Served: exactly what the two files of a run hold, the newest lines
    // of the run, in order.
    for (text, r) in [(&current, run), (&previous, before)] {
        let held = records(&dir.join(format!("{r}.log.1"))).len() + records(&dir.join(format!("{r}.log"))).len();
        assert_eq!(text.lines().count(), held, "run {r}: {text}");
        let numbers = numbered(text, 200);
        assert!(numbers[0] > 1, "run {r}: its first lines were rotated away");
        assert!(!text.contains("hello from skiff"), "run {r}: {text}");
    }
    // The last lines span the rotation: more than the current file holds
    // (about 20 records), taken from the end of what is served.
    let in_current = records(&dir.join(format!("{run}.log"))).len();
    let all: Vec<&str> = current.lines().collect();
    let want = &all[all.len().saturating_sub(TAIL)..];
    assert_eq!(tailed.lines().collect::<Vec<_>>(), want);
    assert!(want.len() > in_current, "{in_current} records in the current file");

    // sinceSeconds: once the run has been over for a second, nothing of it
    // is newer than a second, and everything is newer than ten minutes.
    let finished = pod_where(&pods, "quiet", "quiet Succeeded", |p| phase(p) == "Succeeded").await;
    assert_eq!(restarts(&finished), 0);
    let since = |seconds: i64| LogParams {
        since_seconds: Some(seconds),
        ..LogParams::default()
    };
    eventually(
        Duration::from_secs(10),
        "no quiet log lines newer than a second",
        || async { logs(&c, "quiet", since(1)).await.is_empty().then_some(()) },
    )
    .await;
    let all = logs(&c, "quiet", since(600)).await;
    assert!(all.contains("hello from skiff\n") && all.contains("args: 0\n"), "{all}");
    c.delete_all(&["chatty", "quiet"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_reach_a_wasm_http_pod_as_env_and_files() {
    let c = cluster(50).await;
    let http = c.import(skiff_test_programs::HTTP_HELLO, "http-hello");
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), "default");
    for secret in [
        // "hi from a secret", "a secret file"
        json!({"metadata": {"name": "web-secret"}, "data": {"GREETING": "aGkgZnJvbSBhIHNlY3JldA==", "greeting": "YSBzZWNyZXQgZmlsZQ=="}}),
        // As manifests often write them.
        json!({"metadata": {"name": "plain-secret"}, "stringData": {"GREETING": "hi from stringData", "greeting": "a stringData file"}}),
    ] {
        secrets
            .create(&PostParams::default(), &serde_json::from_value(secret).unwrap())
            .await
            .unwrap();
    }
    let with = |secret: &str, env: Value| {
        let container = with_fields(
            json!({
                "name": "web",
                "image": http,
                "ports": [{"containerPort": 8080}],
                "volumeMounts": [{"name": "config", "mountPath": "/config"}],
            }),
            env,
        );
        json!({"containers": [container], "volumes": [{"name": "config", "secret": {"secretName": secret}}]})
    };
    let key_ref = json!({"env": [{"name": "GREETING", "valueFrom": {"secretKeyRef": {"name": "web-secret", "key": "GREETING"}}}]});
    create(&c, pod_named("web", with("web-secret", key_ref))).await;
    let from = json!({"envFrom": [{"secretRef": {"name": "plain-secret"}}]});
    create(&c, pod_named("plain", with("plain-secret", from))).await;
    let pods = c.pods();
    for (name, greeting, file) in [
        ("web", "hi from a secret", "a secret file"),
        ("plain", "hi from stringData", "a stringData file"),
    ] {
        let running = pod_where(&pods, name, &format!("{name} Ready"), ready).await;
        let ip = running.status.unwrap().pod_ip.unwrap();
        let reply = http_get(&format!("{ip}:8080"), "/hello").await.unwrap();
        assert!(reply.contains(&format!("greeting: {greeting}\n")), "{name}: {reply}");
        assert!(reply.contains(&format!("config: {file}\n")), "{name}: {reply}");
    }
    c.delete_all(&["web", "plain"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn components_the_host_cannot_run_wait_with_a_reason_while_others_serve() {
    let c = cluster(51).await;
    let http = c.import(skiff_test_programs::HTTP_HELLO, "http-hello");
    let core = c.import(skiff_test_programs::NOT_A_COMPONENT, "core-module");
    let unlinked = c.import(skiff_test_programs::BAD_IMPORT, "bad-import");
    create(&c, pod_named("web", web(&http, "Always", json!({})))).await;
    let pods = c.pods();
    let running = pod_where(&pods, "web", "web Ready", ready).await;
    let addr = format!("{}:8080", running.status.unwrap().pod_ip.unwrap());
    for (name, image) in [("core", &core), ("unlinked", &unlinked)] {
        create(
            &c,
            pod_named(name, json!({"containers": [{"name": "main", "image": image}]})),
        )
        .await;
    }
    for (name, reason, text) in [
        ("core", "InvalidImage", "a core WebAssembly module, not a component"),
        ("unlinked", "CreateContainerError", "skiff:test/nothing"),
    ] {
        let p = pod_where(&pods, name, &format!("{name} waiting with {reason}"), |p| {
            waiting_reason(container(p, 0)) == Some(reason)
        })
        .await;
        assert_eq!(phase(&p), "Pending", "{name}");
        let status = container(&p, 0).unwrap();
        let message = status
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap()
            .message
            .unwrap_or_default();
        assert!(message.contains(text), "{name}: {message}");
        assert_eq!(status.restart_count, 0);
        c.event_where(name, "Failed", text).await;
    }
    // While the two are retried (with back-off), the other pod serves:
    // it answers every time until each of them has failed three times.
    eventually(Duration::from_secs(30), "core and unlinked retried twice", || async {
        let reply = http_get(&addr, "/hello").await.unwrap();
        assert!(reply.contains("hello from skiff"), "{reply}");
        for name in ["core", "unlinked"] {
            if c.event_count(name, "Failed").await < 3 {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(ready(&pods.get("web").await.unwrap()));
    for name in ["core", "unlinked"] {
        let p = pods.get(name).await.unwrap();
        assert!(waiting_reason(container(&p, 0)).is_some(), "{name}: {:?}", p.status);
    }
    c.delete_all(&["web", "core", "unlinked"]).await;
}

/// The claims of a JWT, unverified (the API server verifies them).
fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_account_tokens_reach_wasm_and_oci_pods_and_end_with_them() {
    let c = cluster(53).await;
    // A Wasm component reads a projected token for another audience as a
    // file of a read-only preopen (http-hello answers with /config/greeting).
    let http = c.import(skiff_test_programs::HTTP_HELLO, "http-hello");
    let token_volume = json!({"name": "vault-token", "projected": {"sources": [
        {"serviceAccountToken": {"path": "greeting", "audience": "vault", "expirationSeconds": 600}},
    ]}});
    create(
        &c,
        pod_named(
            "web",
            json!({
                "containers": [{
                    "name": "web",
                    "image": http,
                    "ports": [{"containerPort": 8080}],
                    "volumeMounts": [{"name": "vault-token", "mountPath": "/config"}],
                }],
                "volumes": [token_volume],
            }),
        ),
    )
    .await;
    let pods = c.pods();
    let web = pod_where(&pods, "web", "web Ready", ready).await;
    let reply = http_get(&format!("{}:8080", web.status.unwrap().pod_ip.unwrap()), "/hello")
        .await
        .unwrap();
    let jwt = reply
        .lines()
        .find_map(|l| l.strip_prefix("config: "))
        .unwrap_or_else(|| panic!("no token in {reply}"));
    let said = claims(jwt);
    assert_eq!(said["aud"], json!(["vault"]));
    assert_eq!(said["sub"], "system:serviceaccount:default:default");
    assert_eq!(said["kubernetes.io"]["pod"]["name"], "web");
    assert_eq!(said["kubernetes.io"]["pod"]["uid"], web.metadata.uid.unwrap().as_str());
    let exp = said["exp"].as_i64().unwrap() - said["iat"].as_i64().unwrap();
    assert_eq!(exp, 600);
    c.delete_all(&["web"]).await;

    if !is_root() {
        eprintln!("skipping the runc part: runc containers need root");
        return;
    }
    // A runc container finds the token the admission step mounted for it,
    // with the CA and its namespace, where in-cluster clients look.
    let dir = tempfile::tempdir().unwrap();
    c.agent
        .images()
        .import_layout(&busybox_layout(dir.path()), "local/busybox:1")
        .unwrap();
    let at = "/var/run/secrets/kubernetes.io/serviceaccount";
    create(
        &c,
        pod_named(
            "shell",
            json!({
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "sh",
                    "image": "local/busybox:1",
                    "command": ["sh", "-c", format!(
                        "echo token=$(cat {at}/token); echo namespace=$(cat {at}/namespace); head -1 {at}/ca.crt; \
                         touch {at}/x 2>/dev/null || echo read-only; exec sleep 300"
                    )],
                }],
            }),
        ),
    )
    .await;
    let text = eventually(Duration::from_secs(60), "the shell's lines", || async {
        let text = pods.logs("shell", &LogParams::default()).await.ok()?;
        text.contains("read-only").then_some(text)
    })
    .await;
    assert!(text.contains("namespace=default\n"), "{text}");
    assert!(text.contains("-----BEGIN CERTIFICATE-----\n"), "{text}");
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .unwrap_or_else(|| panic!("no token in {text}"))
        .to_string();
    assert_eq!(claims(&token)["aud"], json!([skiff_api::auth::DEFAULT_ISSUER]));

    // The token is the pod's account's: authenticated, and refused what
    // the account holds no role for. Once the pod is gone, it is refused.
    let as_pod = c
        .api
        .client_with(&skiff_api::pki::Credential::Token(&token))
        .await
        .unwrap();
    let listed = Api::<Pod>::namespaced(as_pod.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&listed, kube::Error::Api(s) if s.code == 403 && s.message.contains("system:serviceaccount:default:default")),
        "{listed:?}"
    );
    c.delete_all(&["shell"]).await;
    let pods_as_pod = Api::<Pod>::namespaced(as_pod, "default");
    eventually(Duration::from_secs(10), "the gone pod's token refused", || async {
        let refused = pods_as_pod.list(&Default::default()).await.err()?;
        matches!(&refused, kube::Error::Api(s) if s.code == 401).then_some(())
    })
    .await;
}
