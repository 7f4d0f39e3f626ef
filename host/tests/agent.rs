//! The node agent against a real API server (skiff-api on a one-node
//! store, over TLS, through kube-rs): pods bound to the node run in
//! wasmtime or runc, report status, restart, serve logs through
//! `pods/log`, and are released when deleted.
//!
//! The OCI test needs root, runc, umoci and busybox-static (which
//! `cargo xtask test` installs); the Wasm tests need neither.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, LogParams, PostParams};
use serde_json::json;
use support::{
    busybox_layout, cluster, container, eventually, http_get, phase, pod, pod_where, ready, sample, scrape,
    start_agent, waiting_reason,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_node_registers_with_its_runtimes() {
    let c = cluster(11).await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node = nodes.get("node-a").await.unwrap();
    let labels = node.metadata.labels.unwrap();
    assert_eq!(labels["skiff.dev/runtime-wasm"], "true");
    assert_eq!(labels.contains_key("skiff.dev/runtime-oci"), c.agent.runc_usable());
    let status = node.status.unwrap();
    let conditions = status.conditions.unwrap();
    assert!(conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    assert_eq!(
        status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port,
        i32::from(c.agent.daemon_addr().port())
    );
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(c.client.clone(), "kube-node-lease");
    eventually(Duration::from_secs(10), "the node lease", || async {
        leases.get_opt("node-a").await.unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wasm_http_pod_serves_then_stops_when_deleted() {
    let c = cluster(12).await;
    let bytes = std::fs::read(skiff_test_programs::HTTP_HELLO).unwrap();
    c.agent.images().import_component(&bytes, "local/http-hello:1").unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    maps.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "web-config"},
            "data": {"greeting": "from a configmap", "GREETING": "hi"},
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod(json!({
            "metadata": {"name": "web"},
            "spec": {
                "nodeName": "node-a",
                "terminationGracePeriodSeconds": 5,
                "containers": [{
                    "name": "web",
                    "image": "local/http-hello:1",
                    "ports": [{"containerPort": 8080}],
                    "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "GREETING"}}}],
                    "volumeMounts": [{"name": "config", "mountPath": "/config"}],
                    "resources": {"limits": {"memory": "64Mi"}},
                }],
                "volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
            },
        })),
    )
    .await
    .unwrap();
    let running = pod_where(&pods, "web", "web Running and Ready", |p| {
        phase(p) == "Running" && ready(p)
    })
    .await;
    let status = running.status.unwrap();
    let ip = status.pod_ip.unwrap();
    assert!(ip.starts_with("127.12."), "{ip}");
    let container = &status.container_statuses.unwrap()[0];
    assert!(container.image_id.contains("@sha256:"), "{}", container.image_id);
    assert!(container.container_id.as_deref().unwrap().starts_with("wasmtime://"));
    let reply = http_get(&format!("{ip}:8080"), "/hello").await.unwrap();
    assert!(
        reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
        "{reply}"
    );
    assert!(reply.contains("hello from skiff"), "{reply}");
    assert!(reply.contains("path: /hello"), "{reply}");
    assert!(reply.contains("greeting: hi"), "{reply}");
    assert!(reply.contains("config: from a configmap"), "{reply}");
    // A fresh instance per request.
    for _ in 0..3 {
        let reply = http_get(&format!("{ip}:8080"), "/count").await.unwrap();
        let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
        assert_eq!(body.trim_end(), "1", "{reply}");
    }

    pods.delete("web", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), "web deleted", || async {
        pods.get_opt("web").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(
        http_get(&format!("{ip}:8080"), "/").await.is_err(),
        "the pod no longer listens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wasm_commands_complete_restart_and_log() {
    let c = cluster(13).await;
    let bytes = std::fs::read(skiff_test_programs::CLI_HELLO).unwrap();
    c.agent.images().import_component(&bytes, "local/cli-hello:1").unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let job = |name: &str, policy: &str, code: &str| {
        pod(json!({
            "metadata": {"name": name},
            "spec": {
                "nodeName": "node-a",
                "restartPolicy": policy,
                "containers": [{
                    "name": "main",
                    "image": "local/cli-hello:1",
                    "args": [code, "$(WHO)"],
                    "env": [{"name": "WHO", "value": "world"}],
                }],
            },
        }))
    };
    pods.create(&PostParams::default(), &job("once", "Never", "0"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &job("crash", "Always", "3"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &job("failed", "Never", "2"))
        .await
        .unwrap();

    let done = pod_where(&pods, "once", "once Succeeded", |p| phase(p) == "Succeeded").await;
    let state = done.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap();
    let terminated = state.terminated.unwrap();
    assert_eq!(terminated.exit_code, 0);
    assert_eq!(terminated.reason.as_deref(), Some("Completed"));
    let logs = pods.logs("once", &LogParams::default()).await.unwrap();
    assert!(logs.contains("hello from skiff\n"), "{logs}");
    assert!(logs.contains("args: 0 world\n"), "{logs}");
    assert!(logs.contains("cli-hello: to stderr\n"), "{logs}");
    let tail = pods
        .logs(
            "once",
            &LogParams {
                tail_lines: Some(1),
                timestamps: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("20"), "timestamped: {tail}");

    let failed = pod_where(&pods, "failed", "failed Failed", |p| phase(p) == "Failed").await;
    let state = failed.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap();
    assert_ne!(state.terminated.unwrap().exit_code, 0);

    let looping = pod_where(&pods, "crash", "crash restarted twice", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| c[0].restart_count >= 2)
    })
    .await;
    assert_eq!(phase(&looping), "Running", "a crash-looping pod stays Running");
    let status = &looping.status.unwrap().container_statuses.unwrap()[0];
    let last = status.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_ne!(last.exit_code, 0);
    let previous = pods
        .logs(
            "crash",
            &LogParams {
                previous: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert!(previous.contains("args: 3 world"), "{previous}");
    let missing = pods
        .logs(
            "crash",
            &LogParams {
                container: Some("nope".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("not valid for pod"), "{missing}");

    // What kubectl describe lists: the node's events about the pod.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.client.clone(), "default");
    let uid = looping.metadata.uid.clone().unwrap();
    let selector = format!("involvedObject.name=crash,involvedObject.namespace=default,involvedObject.uid={uid}");
    let reasons = eventually(Duration::from_secs(10), "events about crash", || async {
        let listed = events
            .list(&kube::api::ListParams::default().fields(&selector))
            .await
            .unwrap();
        let reasons: Vec<String> = listed.items.iter().filter_map(|e| e.reason.clone()).collect();
        reasons.iter().any(|r| r == "BackOff").then_some(reasons)
    })
    .await;
    assert!(reasons.iter().any(|r| r == "Started"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "Created"), "{reasons:?}");

    for name in ["once", "crash", "failed"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ["once", "crash", "failed"] {
        eventually(Duration::from_secs(30), "pods released", || async {
            pods.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }
}

/// The node's summary (`/stats/summary` on the agent's endpoint).
async fn summary(c: &support::Cluster) -> serde_json::Value {
    let reply = http_get(&c.agent.daemon_addr().to_string(), "/stats/summary")
        .await
        .unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    serde_json::from_str(body).unwrap()
}

/// A pod's entry in a summary.
fn pod_stats<'a>(summary: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    summary["pods"].as_array()?.iter().find(|p| p["podRef"]["name"] == name)
}

/// What Wasm pods use is reported: the CPU their instances ran (a
/// spinning command, limited to 200m, gains CPU time at no more than its
/// limit) and the linear memory of the live instances (the command's
/// while it runs; none for an HTTP service between requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_node_reports_what_wasm_pods_use() {
    let c = cluster(17).await;
    c.import(skiff_test_programs::CLI_SPIN, "spin");
    c.import(skiff_test_programs::HTTP_HELLO, "http-hello");
    let pods = c.pods();
    for (name, image, cpu) in [("spin", "local/spin:1", "200m"), ("web", "local/http-hello:1", "1")] {
        pods.create(
            &PostParams::default(),
            &pod(json!({
                "metadata": {"name": name},
                "spec": {
                    "nodeName": "node-a",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main",
                        "image": image,
                        "ports": [{"containerPort": 8080}],
                        "resources": {"limits": {"cpu": cpu, "memory": "64Mi"}},
                    }],
                },
            })),
        )
        .await
        .unwrap();
    }
    let web = pod_where(&pods, "web", "web Running", |p| phase(p) == "Running" && ready(p)).await;
    let web_ip = web.status.unwrap().pod_ip.unwrap();
    let reply = http_get(&format!("{web_ip}:8080"), "/").await.unwrap();
    assert!(reply.contains(" 200 "), "{reply}");
    let used = |summary: &serde_json::Value, name: &str| {
        let pod = pod_stats(summary, name)?;
        Some((
            pod["cpu"]["usageCoreNanoSeconds"].as_u64()?,
            pod["memory"]["workingSetBytes"].as_u64()?,
            pod["containers"][0]["name"].as_str()?.to_string(),
        ))
    };
    let (first, at) = eventually(Duration::from_secs(20), "the spinner's CPU time reported", || async {
        let summary = summary(&c).await;
        let (cpu, memory, container) = used(&summary, "spin")?;
        (cpu >= 50_000_000).then_some(((cpu, memory, container), Instant::now()))
    })
    .await;
    assert_eq!(first.2, "main");
    assert!(
        first.1 >= 64 << 10,
        "a running command holds its linear memory: {first:?}"
    );
    // CPU time keeps growing, at no more than the limit (with room for a
    // slow reader).
    let (later, elapsed) = eventually(Duration::from_secs(20), "more CPU time", || async {
        let (cpu, _, _) = used(&summary(&c).await, "spin")?;
        let elapsed = at.elapsed();
        (cpu > first.0 && elapsed >= Duration::from_secs(1)).then_some((cpu, elapsed))
    })
    .await;
    let rate = (later - first.0) as f64 / elapsed.as_nanos() as f64;
    assert!(rate <= 0.2 * 1.5, "a 200m spinner used {rate:.2} of a core");
    // The HTTP service ran one request (some CPU) and holds no instance.
    let now = summary(&c).await;
    let (cpu, memory, _) = used(&now, "web").expect("web is listed");
    assert!(cpu > 0, "{now}");
    assert_eq!(memory, 0, "{now}");
    assert!(now["node"]["memory"]["workingSetBytes"].as_u64().unwrap() > 0);
    assert_eq!(now["node"]["nodeName"], "node-a");
    // Deleted pods leave the summary.
    c.delete_all(&["spin", "web"]).await;
    eventually(Duration::from_secs(20), "the pods gone from the summary", || async {
        let summary = summary(&c).await;
        (pod_stats(&summary, "spin").is_none() && pod_stats(&summary, "web").is_none()).then_some(())
    })
    .await;
}

/// The agent serves Prometheus metrics on its endpoint: a Wasm service's
/// requests, latency, instantiations and instances by pod and the compile
/// that made it on `/metrics`, and on `/metrics/resource` what the pod
/// uses under the kubelet's names. The same request counts are
/// readable from the stats index. A deleted pod's series go.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_serves_metrics() {
    let c = cluster(28).await;
    c.import(skiff_test_programs::HTTP_HELLO, "http-hello");
    let pods = c.pods();
    pods.create(
        &PostParams::default(),
        &pod(json!({
            "metadata": {"name": "web"},
            "spec": {
                "nodeName": "node-a",
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "main",
                    "image": "local/http-hello:1",
                    "ports": [{"containerPort": 8080}],
                }],
            },
        })),
    )
    .await
    .unwrap();
    let web = pod_where(&pods, "web", "web Running", |p| phase(p) == "Running" && ready(p)).await;
    let ip = web.status.unwrap().pod_ip.unwrap();
    let requests: u32 = 5;
    for _ in 0..requests {
        let reply = http_get(&format!("{ip}:8080"), "/").await.unwrap();
        assert!(reply.contains(" 200 "), "{reply}");
    }
    // Another status: counted apart.
    let reply = http_get(&format!("{ip}:8080"), "/sleep").await.unwrap();
    assert!(reply.contains(" 400 "), "{reply}");

    let metrics = scrape(&c, "/metrics").await;
    let web_labels = [("namespace", "default"), ("pod", "web")];
    let ok = [("namespace", "default"), ("pod", "web"), ("code", "200")];
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&metrics, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in\n{metrics}"))
    };
    assert_eq!(value("skiff_wasm_requests_total", &ok), f64::from(requests));
    let bad = [("namespace", "default"), ("pod", "web"), ("code", "400")];
    assert_eq!(value("skiff_wasm_requests_total", &bad), 1.0);
    assert_eq!(
        value("skiff_wasm_request_duration_seconds_count", &web_labels),
        f64::from(requests + 1)
    );
    assert!(value("skiff_wasm_request_duration_seconds_sum", &web_labels) > 0.0);
    assert_eq!(
        value("skiff_wasm_instantiation_duration_seconds_count", &web_labels),
        f64::from(requests + 1)
    );
    assert_eq!(value("skiff_wasm_requests_in_flight", &web_labels), 0.0);
    assert!(value("skiff_wasm_instances", &web_labels) >= 0.0);
    assert!(value("skiff_wasm_compile_duration_seconds_count", &[]) >= 1.0);
    // The same counts, for the autoscaler's summary.
    let counted = c.agent.stats().wasm_requests("default", "web").unwrap();
    assert_eq!((counted.total, counted.in_flight), (u64::from(requests) + 1, 0));

    let resource = scrape(&c, "/metrics/resource").await;
    let container = [("container", "main"), ("pod", "web"), ("namespace", "default")];
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&resource, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in\n{resource}"))
    };
    assert!(value("container_cpu_usage_seconds_total", &container) > 0.0);
    // An HTTP service between requests holds no instance.
    assert_eq!(value("container_memory_working_set_bytes", &container), 0.0);
    assert!(value("container_start_time_seconds", &container) > 1.0e9);
    assert!(value("pod_cpu_usage_seconds_total", &web_labels) > 0.0);
    assert!(value("node_cpu_usage_seconds_total", &[]) > 0.0);
    assert!(value("node_memory_working_set_bytes", &[]) > 0.0);
    assert_eq!(value("resource_scrape_error", &[]), 0.0);

    c.delete_all(&["web"]).await;
    eventually(Duration::from_secs(20), "web's series gone", || async {
        let metrics = scrape(&c, "/metrics").await;
        let resource = scrape(&c, "/metrics/resource").await;
        (!metrics.contains("pod=\"web\"") && !resource.contains("pod=\"web\"")).then_some(())
    })
    .await;
    assert!(c.agent.stats().wasm_requests("default", "web").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_with_a_missing_image_waits_with_a_reason() {
    let c = cluster(14).await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod(json!({
            "metadata": {"name": "ghost"},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "local/absent:1", "imagePullPolicy": "Never"}]},
        })),
    )
    .await
    .unwrap();
    let waiting = pod_where(&pods, "ghost", "ghost waiting on its image", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c[0].state.as_ref()?.waiting.as_ref()?.reason.clone())
            .is_some_and(|r| r == "ErrImageNeverPull")
    })
    .await;
    assert_eq!(phase(&waiting), "Pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oci_pod_runs_in_runc_and_is_stopped_on_delete() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: runc containers need root");
        return;
    }
    // A container an earlier agent process left running in this data dir
    // is removed when the agent starts.
    let api = skiff_testing::TestApi::start().await.unwrap();
    let data = api.dir().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let layout = busybox_layout(dir.path());
    let leftover = {
        let images = skiff_image::ImageStore::open(data.join("agent/images")).unwrap();
        let image = images.import_layout(&layout, "local/busybox:1").unwrap();
        let runc = skiff_host::oci::RuncRuntime::new(data.join("agent/runc"), "runc").unwrap();
        let log = data.join("leftover.log");
        runc.create(&skiff_host::oci::ContainerSpec {
            id: "leftover".into(),
            hostname: "leftover".into(),
            image,
            command: vec!["sleep".into(), "300".into()],
            args: vec![],
            env: vec![],
            working_dir: None,
            pod: "default/leftover".into(),
            container: "leftover".into(),
            security: Default::default(),
            mounts: vec![],
            memory_limit_bytes: None,
            cpu_millis: None,
            netns: None,
            stdout: log.clone(),
            stderr: log,
            stdin: None,
            terminal: false,
        })
        .unwrap();
        runc.start("leftover").unwrap();
        assert!(matches!(
            runc.state("leftover"),
            Ok(skiff_host::oci::ContainerState::Running { .. })
        ));
        runc
    };
    let c = start_agent(api, 15, |_| {}).await;
    // Killed (this process reaped it, so it knows the exit) and deleted.
    let state = leftover.state("leftover");
    assert_eq!(
        state.ok(),
        Some(skiff_host::oci::ContainerState::Stopped { exit_code: Some(137) })
    );
    assert!(
        !leftover.bundle_dir("leftover").exists(),
        "the leftover container was removed"
    );
    let listed = Command::new("runc")
        .arg("--root")
        .arg(c.agent_dir.join("runc/runc"))
        .arg("list")
        .arg("-q")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("leftover"));
    assert!(c.agent.runc_usable(), "runc is installed but the agent cannot use it");
    c.agent.images().import_layout(&layout, "local/busybox:1").unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod(json!({
            "metadata": {"name": "box"},
            "spec": {
                "nodeName": "node-a",
                "terminationGracePeriodSeconds": 2,
                "containers": [{
                    "name": "sh",
                    "image": "local/busybox:1",
                    "command": ["sh", "-c", "echo hi from $(NAME); cat /etc/cfg/k; echo; for i in 1 2 3; do sleep 1; echo tick $i; done; exec sleep 300"],
                    "env": [{"name": "NAME", "value": "busybox"}],
                    "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}],
                }],
                "volumes": [{"name": "cfg", "configMap": {"name": "box-cfg"}}],
            },
        })),
    )
    .await
    .unwrap();
    // The ConfigMap comes after the pod: the pod waits for it, then starts.
    let waiting = pod_where(&pods, "box", "box waiting for its ConfigMap", |p| {
        waiting_reason(container(p, 0)) == Some("CreateContainerConfigError")
    })
    .await;
    assert_eq!(phase(&waiting), "Pending");
    let maps: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    maps.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "box-cfg"}, "data": {"k": "from the configmap"}})).unwrap(),
    )
    .await
    .unwrap();
    let running = pod_where(&pods, "box", "box Running", |p| phase(p) == "Running" && ready(p)).await;
    let status = running.status.unwrap();
    // Its own network namespace, with the first pod address of the node.
    assert_eq!(status.pod_ip.as_deref(), Some("127.15.0.2"), "the pod's own address");
    assert!(
        status.container_statuses.unwrap()[0]
            .container_id
            .as_deref()
            .unwrap()
            .starts_with("runc://")
    );
    let logs = eventually(Duration::from_secs(10), "box logs", || async {
        let logs = pods.logs("box", &LogParams::default()).await.ok()?;
        logs.contains("from the configmap").then_some(logs)
    })
    .await;
    assert!(logs.contains("hi from busybox\n"), "{logs}");
    // What it uses is read from its cgroup.
    let box_stats = eventually(Duration::from_secs(10), "box in the summary", || async {
        let summary = summary(&c).await;
        let pod = pod_stats(&summary, "box")?.clone();
        (pod["memory"]["workingSetBytes"].as_u64()? > 0).then_some(pod)
    })
    .await;
    assert_eq!(box_stats["containers"][0]["name"], "sh", "{box_stats}");
    assert!(
        box_stats["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0,
        "{box_stats}"
    );
    // And served under the kubelet's names.
    let resource = scrape(&c, "/metrics/resource").await;
    let sh = [("container", "sh"), ("pod", "box"), ("namespace", "default")];
    for name in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    ] {
        let value = sample(&resource, name, &sh).unwrap_or_else(|| panic!("{name} in\n{resource}"));
        assert!(value > 0.0, "{name} {value}");
    }
    let pod_memory = sample(&resource, "pod_memory_working_set_bytes", &[("pod", "box")]).unwrap();
    assert!(pod_memory > 0.0, "{resource}");

    // Followed logs stream as the container writes them.
    let stream = pods
        .log_stream(
            "box",
            &LogParams {
                follow: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    let mut lines = futures::AsyncBufReadExt::lines(stream);
    let followed = tokio::time::timeout(Duration::from_secs(20), async {
        let mut seen = Vec::new();
        while let Some(line) = futures::StreamExt::next(&mut lines).await {
            let line = line.unwrap();
            let done = line == "tick 3";
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .expect("the followed log never showed tick 3");
    assert_eq!(
        followed.first().map(String::as_str),
        Some("hi from busybox"),
        "{followed:?}"
    );
    assert_eq!(followed.last().map(String::as_str), Some("tick 3"), "{followed:?}");

    let deleted_at = Instant::now();
    pods.delete("box", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), "box deleted", || async {
        pods.get_opt("box").await.unwrap().is_none().then_some(())
    })
    .await;
    // sleep ignores SIGTERM as PID 1, so it was killed after the grace period.
    assert!(deleted_at.elapsed() >= Duration::from_secs(2));
}

/// A pod whose name (100 characters) and runc container id (pod uid,
/// a 40-character container name, run) are both longer than the 64 bytes
/// `sethostname` takes still runs: its hostname is its name cut to 63
/// characters, without the `.` the cut leaves at the end, as the kubelet
/// does it. When the agent stops, its container goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oci_pod_with_a_long_name_runs_with_its_name_cut_as_hostname() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: runc containers need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = busybox_layout(dir.path());
    let c = cluster(16).await;
    assert!(c.agent.runc_usable(), "runc is installed but the agent cannot use it");
    c.agent.images().import_layout(&layout, "local/busybox:1").unwrap();
    // Two DNS labels: skiff's API takes no label longer than 63.
    let name = format!("{}.{}", "h".repeat(62), "t".repeat(37));
    assert_eq!(name.len(), 100);
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod(json!({
            "metadata": {"name": name},
            "spec": {
                "nodeName": "node-a",
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "c".repeat(40),
                    "image": "local/busybox:1",
                    "command": ["sh", "-c", "echo hostname $(cat /proc/sys/kernel/hostname); exec sleep 300"],
                }],
            },
        })),
    )
    .await
    .unwrap();
    pod_where(&pods, &name, "the long-named pod Running", |p| phase(p) == "Running").await;
    let logs = eventually(Duration::from_secs(10), "the hostname in the log", || async {
        let logs = pods.logs(&name, &LogParams::default()).await.ok()?;
        logs.contains("hostname ").then_some(logs)
    })
    .await;
    assert_eq!(logs, format!("hostname {}\n", "h".repeat(62)));
    // An agent that stops takes its containers with it.
    let support::Cluster {
        agent, agent_dir, api, ..
    } = c;
    drop(agent);
    let listed = Command::new("runc")
        .arg("--root")
        .arg(agent_dir.join("runc/runc"))
        .arg("list")
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "", "left running");
    drop(api);
}

/// A runc container under a securityContext, observed from inside: its
/// user and groups (`fsGroup` among them), a read-only root filesystem,
/// an emptyDir the `fsGroup` may write, no capabilities, and the default
/// seccomp profile refusing `unshare`. `runAsNonRoot` with an image that
/// runs as root is refused with the kubelet's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oci_pod_runs_as_its_security_context_says() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: runc containers need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = skiff_testing::busybox_layout(
        dir.path(),
        &[
            "sh", "echo", "sleep", "cat", "id", "touch", "grep", "unshare", "stat", "mkdir",
        ],
    )
    .unwrap();
    let c = cluster(19).await;
    c.agent.images().import_layout(&layout, "local/busybox:1").unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let script = "id; touch /x 2>&1 || echo read-only root; touch /data/ok && echo data writable; \
                  stat -c 'data %g %A' /data; grep CapEff /proc/self/status; \
                  if unshare -U true; then echo unshare allowed; else echo unshare refused; fi; exec sleep 300";
    pods.create(
        &PostParams::default(),
        &pod(json!({
            "metadata": {"name": "confined"},
            "spec": {
                "nodeName": "node-a",
                "terminationGracePeriodSeconds": 1,
                "securityContext": {"runAsUser": 1234, "runAsGroup": 5678, "fsGroup": 4242,
                    "supplementalGroups": [777], "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "sh",
                    "image": "local/busybox:1",
                    "command": ["sh", "-c", script],
                    "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }],
                "volumes": [{"name": "data", "emptyDir": {}}],
            },
        })),
    )
    .await
    .unwrap();
    let logs = eventually(Duration::from_secs(30), "the confined pod's report", || async {
        let logs = pods.logs("confined", &LogParams::default()).await.ok()?;
        logs.contains("unshare").then_some(logs)
    })
    .await;
    assert!(logs.contains("uid=1234 gid=5678 groups=777,4242"), "{logs}");
    assert!(logs.contains("read-only root"), "{logs}");
    assert!(logs.contains("data writable"), "{logs}");
    assert!(logs.contains("data 4242 drwxrws"), "{logs}");
    assert!(logs.contains("CapEff:\t0000000000000000"), "{logs}");
    assert!(logs.contains("unshare refused"), "{logs}");

    pods.create(
        &PostParams::default(),
        &pod(json!({
            "metadata": {"name": "rootless"},
            "spec": {
                "nodeName": "node-a",
                "securityContext": {"runAsNonRoot": true},
                "containers": [{"name": "sh", "image": "local/busybox:1", "command": ["sleep", "300"]}],
            },
        })),
    )
    .await
    .unwrap();
    // A Localhost seccomp profile from the node's profiles directory; one
    // that is not there is a clear refusal.
    std::fs::create_dir_all(c.agent_dir.join("seccomp/profiles")).unwrap();
    std::fs::write(
        c.agent_dir.join("seccomp/profiles/no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    for (name, profile) in [
        ("profiled", "profiles/no-mkdir.json"),
        ("unprofiled", "profiles/missing.json"),
    ] {
        pods.create(
            &PostParams::default(),
            &pod(json!({
                "metadata": {"name": name},
                "spec": {
                    "nodeName": "node-a",
                    "terminationGracePeriodSeconds": 1,
                    "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": profile}},
                    "containers": [{"name": "sh", "image": "local/busybox:1",
                        "command": ["sh", "-c", "mkdir /made && echo made || echo mkdir refused; exec sleep 300"]}],
                },
            })),
        )
        .await
        .unwrap();
    }
    let logs = eventually(Duration::from_secs(30), "the profiled pod's report", || async {
        let logs = pods.logs("profiled", &LogParams::default()).await.ok()?;
        // Its verdict line, not mkdir's own complaint, which comes first.
        logs.lines()
            .any(|line| line == "made" || line == "mkdir refused")
            .then_some(logs)
    })
    .await;
    assert!(logs.contains("mkdir refused"), "{logs}");
    let unprofiled = pod_where(&pods, "unprofiled", "a missing profile refused", |p| {
        waiting_reason(container(p, 0)).is_some_and(|r| r != "ContainerCreating")
    })
    .await;
    let message = container(&unprofiled, 0)
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
        .unwrap_or_default();
    assert!(message.contains("cannot load seccomp profile"), "{message}");

    let refused = pod_where(&pods, "rootless", "rootless refused", |p| {
        waiting_reason(container(p, 0)) == Some("CreateContainerConfigError")
    })
    .await;
    let message = container(&refused, 0)
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
        .unwrap_or_default();
    let uid = refused.metadata.uid.clone().unwrap();
    assert_eq!(
        message,
        format!(
            "container has runAsNonRoot and image will run as root (pod: \"rootless_default({uid})\", container: sh)"
        )
    );
}

/// Lifecycle hooks and termination messages of runc containers: postStart
/// runs in the container before it is left alone, a failing one is an
/// Event; preStop calls out before SIGTERM; what a container leaves at
/// its `terminationMessagePath`, or under `FallbackToLogsOnError` the end
/// of its log, becomes its terminated state's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oci_hooks_run_and_termination_messages_are_kept() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: runc containers need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = skiff_testing::busybox_layout(dir.path(), &["sh", "echo", "sleep", "cat", "[", "false"]).unwrap();
    let c = cluster(20).await;
    c.agent.images().import_layout(&layout, "local/busybox:1").unwrap();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    // Where the preStop hook calls, on the node.
    let hook_server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_port = hook_server.local_addr().unwrap().port();
    let boxed = |name: &str, spec: serde_json::Value| {
        let mut container = json!({"name": "sh", "image": "local/busybox:1"});
        for (k, v) in spec.as_object().unwrap() {
            container[k] = v.clone();
        }
        pod(
            json!({"metadata": {"name": name}, "spec": {"nodeName": "node-a", "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5, "containers": [container]}}),
        )
    };
    for p in [
        boxed(
            "hooked",
            json!({"command": ["sh", "-c", "until [ -f /started ]; do sleep 0.1; done; echo saw $(cat /started); exec sleep 300"],
                "lifecycle": {
                    "postStart": {"exec": {"command": ["sh", "-c", "echo post-start > /started"]}},
                    "preStop": {"httpGet": {"host": "127.0.0.1", "port": hook_port, "path": "/bye"}}}}),
        ),
        boxed(
            "failing-hook",
            json!({"command": ["sleep", "300"], "lifecycle": {"postStart": {"exec": {"command": ["false"]}}}}),
        ),
        boxed(
            "leaves-a-message",
            json!({"command": ["sh", "-c", "echo all done > /dev/termination-log; exit 3"]}),
        ),
        boxed(
            "falls-back",
            json!({"command": ["sh", "-c", "echo first; echo last words; exit 1"],
                "terminationMessagePolicy": "FallbackToLogsOnError"}),
        ),
    ] {
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let logs = eventually(Duration::from_secs(30), "the postStart hook's mark", || async {
        let logs = pods.logs("hooked", &LogParams::default()).await.ok()?;
        logs.contains("saw").then_some(logs)
    })
    .await;
    assert_eq!(logs, "saw post-start\n");
    let event = c.event_where("failing-hook", "FailedPostStartHook", "false").await;
    assert!(
        event.contains("Exec lifecycle hook ([\"false\"]) for Container \"sh\" failed"),
        "{event}"
    );

    let message = |p: &Pod| {
        container(p, 0)
            .and_then(|s| s.state.as_ref()?.terminated.as_ref())
            .map(|t| (t.exit_code, t.message.clone().unwrap_or_default()))
    };
    let left = pod_where(&pods, "leaves-a-message", "its message", |p| message(p).is_some()).await;
    assert_eq!(message(&left), Some((3, "all done\n".to_string())));
    let fell_back = pod_where(&pods, "falls-back", "its log's end", |p| message(p).is_some()).await;
    assert_eq!(message(&fell_back), Some((1, "first\nlast words\n".to_string())));

    // Deleting the hooked pod calls its preStop hook first.
    pods.delete("hooked", &DeleteParams::default()).await.unwrap();
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(20), hook_server.accept())
        .await
        .expect("the preStop hook never called")
        .unwrap();
    let mut request = vec![0u8; 1024];
    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await.unwrap();
    assert!(String::from_utf8_lossy(&request[..n]).starts_with("GET /bye "));
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
}
