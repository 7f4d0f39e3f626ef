//! The HorizontalPodAutoscaler end to end: `kubectl autoscale` on a runc
//! Deployment whose pods spin on their CPU limit, scaled up from the
//! Metrics API's figures and back down once the load stops, within the
//! autoscaler's behavior; and the autoscaling/v1 view of the same object.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::{Cluster, import, until};

/// The Deployment's wanted replicas.
fn replicas(cluster: &Cluster) -> i64 {
    cluster.json(&["get", "deployment", "burn"])["spec"]["replicas"]
        .as_i64()
        .unwrap_or(0)
}

#[test]
fn an_hpa_scales_a_cpu_loaded_runc_deployment_up_and_back_down() {
    let cluster = Cluster::start_with(&[
        "--node-name",
        "hpa",
        "--pod-cidr",
        "127.65.0.0",
        "--metric-resolution",
        "1",
        "--horizontal-pod-autoscaler-sync-period",
        "1",
    ]);
    let build = tempfile::tempdir().unwrap();
    let layout = skiff_testing::busybox_layout(build.path(), &["sh", "test", "[", "touch", "sleep"]).unwrap();
    import(
        layout.to_str().unwrap(),
        "local/busybox:1",
        &cluster.data.path().join("agent"),
    );
    cluster.ok(&["wait", "--for=condition=Ready", "node/hpa", "--timeout=60s"]);
    // Each pod spins within its limit (twice its request) until told to
    // stop.
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "burn"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burn"}},
              "template": {"metadata": {"labels": {"app": "burn"}},
                "spec": {"runtimeClassName": "runc", "terminationGracePeriodSeconds": 1,
                  "containers": [{"name": "burn", "image": "local/busybox:1",
                    "command": ["sh", "-c", "while [ ! -e /flags/stop ]; do :; done; exec sleep 100000"],
                    "volumeMounts": [{"name": "flags", "mountPath": "/flags"}],
                    "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "100m"}}}],
                  "volumes": [{"name": "flags", "emptyDir": {}}]}}}}"#,
    );
    cluster.ok(&["rollout", "status", "deployment/burn", "--timeout=90s"]);

    cluster.ok(&[
        "autoscale",
        "deployment",
        "burn",
        "--min=1",
        "--max=3",
        "--cpu-percent=50",
    ]);
    // Scale down soon after the load stops, one pod per second at most.
    cluster.ok(&[
        "patch",
        "hpa",
        "burn",
        "--type=merge",
        "-p",
        r#"{"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 3,
             "policies": [{"type": "Pods", "value": 1, "periodSeconds": 1}]}}}}"#,
    ]);

    // ~200% of the request against 50%: up to the maximum.
    until(Duration::from_secs(90), "the autoscaler to scale up to 3", || {
        (replicas(&cluster) == 3).then_some(())
    });
    let table = cluster.ok(&["get", "hpa", "burn"]);
    assert!(table.contains("Deployment/burn") && table.contains("/50%"), "{table}");
    let hpa = cluster.json(&["get", "hpa", "burn"]);
    let conditions = hpa["status"]["conditions"].as_array().unwrap();
    let reason = |kind: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == kind)
            .map(|c| c["reason"].as_str().unwrap().to_string())
    };
    assert_eq!(reason("ScalingActive").as_deref(), Some("ValidMetricFound"), "{hpa}");
    assert!(
        reason("AbleToScale").is_some() && reason("ScalingLimited").is_some(),
        "{hpa}"
    );
    let events = cluster.ok(&["get", "events", "--field-selector", "involvedObject.name=burn"]);
    assert!(
        events.contains("SuccessfulRescale") && events.contains("New size: "),
        "{events}"
    );

    // The v1 view of the same object: its one CPU target, and the
    // behavior it cannot hold kept in an annotation.
    let v1 = cluster.json(&["get", "horizontalpodautoscalers.v1.autoscaling", "burn"]);
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    assert!(
        v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/behavior"]
            .as_str()
            .is_some_and(|b| b.contains("stabilizationWindowSeconds")),
        "{v1}"
    );

    // The load stops; the autoscaler scales back to the minimum.
    cluster.ok(&["rollout", "status", "deployment/burn", "--timeout=90s"]);
    let pods = cluster.ok(&["get", "pods", "-l", "app=burn", "-o", "name"]);
    for pod in pods.lines() {
        cluster.ok(&["exec", pod, "--", "touch", "/flags/stop"]);
    }
    until(
        Duration::from_secs(90),
        "the autoscaler to scale back down to 1",
        || (replicas(&cluster) == 1).then_some(()),
    );
    let hpa = cluster.json(&["get", "hpa", "burn"]);
    assert_eq!(hpa["status"]["desiredReplicas"], 1, "{hpa}");
}

/// A server (node `node`, pods in `cidr`) reading figures and syncing
/// autoscalers every second, with the hello Wasm component imported.
fn wasm_cluster(node: &str, cidr: &str) -> Cluster {
    let cluster = Cluster::start_with(&[
        "--node-name",
        node,
        "--pod-cidr",
        cidr,
        "--metric-resolution",
        "1",
        "--horizontal-pod-autoscaler-sync-period",
        "1",
    ]);
    import(
        skiff_test_programs::HTTP_HELLO,
        "local/hello:1",
        &cluster.data.path().join("agent"),
    );
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("node/{node}"),
        "--timeout=60s",
    ]);
    cluster
}

/// A Wasm Deployment `name` of one replica, its Service, and an
/// autoscaler on requests per second (5 a pod) between `min` and `max`
/// with `behavior`.
fn wasm_app(name: &str, min: u32, max: u32, behavior: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "List", "items": [
             {{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "{name}"}},
              "spec": {{"replicas": 1, "selector": {{"matchLabels": {{"app": "{name}"}}}},
                "template": {{"metadata": {{"labels": {{"app": "{name}"}}}},
                  "spec": {{"containers": [{{"name": "main", "image": "local/hello:1",
                                           "ports": [{{"containerPort": 8080}}]}}]}}}}}}}},
             {{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "{name}"}},
              "spec": {{"selector": {{"app": "{name}"}}, "ports": [{{"port": 80, "targetPort": 8080}}]}}}},
             {{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {{"name": "{name}"}},
              "spec": {{"scaleTargetRef": {{"apiVersion": "apps/v1", "kind": "Deployment", "name": "{name}"}},
                "minReplicas": {min}, "maxReplicas": {max},
                "metrics": [{{"type": "Pods", "pods": {{"metric": {{"name": "requests-per-second"}},
                             "target": {{"type": "AverageValue", "averageValue": "5"}}}}}}],
                "behavior": {behavior}}}}}]}}"#
    )
}

#[test]
fn an_hpa_scales_a_request_loaded_wasm_deployment_on_requests_per_second() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    let cluster = wasm_cluster("hpaw", "127.66.0.0");
    let behavior = r#"{"scaleDown": {"stabilizationWindowSeconds": 3,
                        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 1}]}}"#;
    cluster.ok_with_input(&["apply", "-f", "-"], &wasm_app("hello", 1, 3, behavior));
    cluster.ok(&["rollout", "status", "deployment/hello", "--timeout=60s"]);
    let ip = cluster.ok(&["get", "service", "hello", "-o", "jsonpath={.spec.clusterIP}"]);
    let target = format!("{ip}:80");

    // Requests through the Service for as long as the test needs them
    // (bounded): far more than 5 a second for one pod.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
                let _ = support::http_get(&target, "/", true);
            }
        })
    };
    until(
        Duration::from_secs(90),
        "the autoscaler to scale the Wasm Deployment up to 3",
        || (cluster.json(&["get", "deployment", "hello"])["spec"]["replicas"] == 3).then_some(()),
    );
    let figures = cluster.ok(&[
        "get",
        "--raw",
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/requests-per-second?labelSelector=app%3Dhello",
    ]);
    assert!(
        figures.contains("MetricValueList") && figures.contains("\"describedObject\""),
        "{figures}"
    );
    let table = cluster.ok(&["get", "hpa", "hello"]);
    assert!(
        table.contains("requests-per-second: ") && table.contains("/5"),
        "{table}"
    );
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    // Idle: back to one.
    until(
        Duration::from_secs(90),
        "the autoscaler to scale the idle Deployment down to 1",
        || (cluster.json(&["get", "deployment", "hello"])["spec"]["replicas"] == 1).then_some(()),
    );
}

#[test]
fn an_idle_wasm_deployment_scales_to_zero_and_its_first_requests_wake_it() {
    use std::time::Instant;

    let cluster = wasm_cluster("zero", "127.67.0.0");
    let behavior = r#"{"scaleDown": {"stabilizationWindowSeconds": 2}}"#;
    cluster.ok_with_input(&["apply", "-f", "-"], &wasm_app("idle", 0, 2, behavior));
    // No requests: the autoscaler takes it to zero.
    until(Duration::from_secs(90), "the idle Deployment to scale to zero", || {
        let deployment = cluster.json(&["get", "deployment", "idle"]);
        let pods = cluster.ok(&["get", "pods", "-l", "app=idle", "-o", "name"]);
        (deployment["spec"]["replicas"] == 0 && pods.trim().is_empty()).then_some(())
    });
    let ip = cluster.ok(&["get", "service", "idle", "-o", "jsonpath={.spec.clusterIP}"]);
    let target = format!("{ip}:80");

    // Several first requests at once: each is held while one replica
    // comes up, then answered; none is lost.
    let started = Instant::now();
    let requests: Vec<_> = (0..4)
        .map(|i| {
            let target = target.clone();
            std::thread::spawn(move || support::http_get(&target, &format!("/first-{i}"), true))
        })
        .collect();
    for request in requests {
        let (status, body) = request.join().unwrap().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("path: /first-"), "{body}");
    }
    eprintln!("first requests from zero answered in {:?}", started.elapsed());
    let events = cluster.ok(&["get", "events", "--field-selector", "involvedObject.name=idle"]);
    assert!(events.contains("ScalingReplicaSet"), "{events}");
}
