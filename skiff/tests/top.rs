//! The Metrics API end to end: `kubectl top` (the real kubectl) against a
//! started `skiff server`, for a Wasm pod taking requests and a runc pod
//! spinning on a CPU.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Cluster, http_get, import, until};

/// The CPU column of a `kubectl top` row, in millicores.
fn millicores(cell: &str) -> u64 {
    cell.trim_end_matches('m')
        .parse()
        .unwrap_or_else(|_| panic!("a CPU figure: {cell:?}"))
}

/// The row of `top` output whose first (or, with `--containers`, second)
/// cell is `name`, split into cells.
fn row<'a>(table: &'a str, column: usize, name: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.get(column) == Some(&name))
}

fn raw(cluster: &Cluster, path: &str) -> serde_json::Value {
    serde_json::from_str(&cluster.ok(&["get", "--raw", path])).unwrap()
}

#[test]
fn kubectl_top_shows_nodes_and_wasm_and_runc_pods_under_load() {
    let cluster = Cluster::start_with(&[
        "--node-name",
        "top",
        "--pod-cidr",
        "127.64.0.0",
        "--metric-resolution",
        "1",
    ]);
    let agent = cluster.data.path().join("agent");
    import(skiff_test_programs::HTTP_HELLO, "local/hello:1", &agent);
    let build = tempfile::tempdir().unwrap();
    let layout = skiff_testing::busybox_layout(build.path(), &["sh"]).unwrap();
    import(layout.to_str().unwrap(), "local/busybox:1", &agent);
    cluster.ok(&["wait", "--for=condition=Ready", "node/top", "--timeout=60s"]);

    // Discovery lists the Metrics API, as metrics-server's APIService would.
    let resources = cluster.ok(&["api-resources", "--api-group=metrics.k8s.io"]);
    assert!(
        resources.contains("NodeMetrics") && resources.contains("PodMetrics"),
        "{resources}"
    );

    cluster.ok_with_input(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "List", "items": [
             {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
              "spec": {"containers": [{"name": "main", "image": "local/hello:1",
                                       "ports": [{"containerPort": 8080}]}]}},
             {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "spin", "labels": {"app": "spin"}},
              "spec": {"runtimeClassName": "runc", "terminationGracePeriodSeconds": 1,
                       "containers": [{"name": "burn", "image": "local/busybox:1",
                                       "command": ["sh", "-c", "while :; do :; done"],
                                       "resources": {"requests": {"cpu": "100m", "memory": "16Mi"}}}]}}]}"#,
    );
    cluster.ok(&["wait", "--for=condition=Ready", "pod/web", "pod/spin", "--timeout=90s"]);

    // Load on the Wasm pod for as long as the test reads figures (bounded).
    let ip = cluster.ok(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, served) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
                if matches!(http_get(&format!("{ip}:8080"), "/load", true), Ok((200, _))) {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // The node: its CPU and memory, and their share of what it has.
    let nodes = until(Duration::from_secs(60), "kubectl top nodes to list the node", || {
        let out = cluster.kubectl(&["top", "nodes", "--no-headers"]);
        let table = String::from_utf8_lossy(&out.stdout).into_owned();
        row(&table, 0, "top").map(|cells| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>())
    });
    assert_eq!(nodes.len(), 5, "NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%: {nodes:?}");
    assert!(nodes[3].ends_with("Mi"), "{nodes:?}");

    // The runc pod spins on one CPU: most of a core, from its cgroup.
    until(
        Duration::from_secs(60),
        "kubectl top to show the spinning runc pod",
        || {
            let out = cluster.kubectl(&["top", "pods", "--no-headers"]);
            let table = String::from_utf8_lossy(&out.stdout).into_owned();
            let spin = row(&table, 0, "spin")?;
            (millicores(spin[1]) >= 200 && row(&table, 0, "web").is_some()).then_some(())
        },
    );
    let containers = cluster.ok(&["top", "pods", "--containers", "--no-headers"]);
    assert!(row(&containers, 1, "burn").is_some(), "{containers}");
    let main = row(&containers, 1, "main").unwrap_or_else(|| panic!("{containers}"));
    assert!(main[3].ends_with("Mi"), "the Wasm pod's memory: {containers}");

    // The Wasm pod's CPU is what its instances ran, which the load makes
    // more than nothing (too little, perhaps, for kubectl's millicores).
    until(Duration::from_secs(60), "the Wasm pod under load to use CPU", || {
        let out = cluster.kubectl(&[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
        ]);
        let metrics: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let cpu = metrics["containers"][0]["usage"]["cpu"]
            .as_str()?
            .trim_end_matches('n')
            .parse::<u64>()
            .ok()?;
        (cpu > 0 && served.load(Ordering::Relaxed) > 0).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    // Selectors select; a pod that is not running has no metrics.
    let selected = cluster.ok(&["top", "pods", "-l", "app=spin", "--no-headers"]);
    assert!(
        row(&selected, 0, "spin").is_some() && row(&selected, 0, "web").is_none(),
        "{selected}"
    );
    let missing = cluster.kubectl(&["top", "pod", "nonesuch"]);
    assert!(!missing.status.success());
    let listed = raw(&cluster, "/apis/metrics.k8s.io/v1beta1/pods");
    assert_eq!(listed["kind"], "PodMetricsList");
    let node = raw(&cluster, "/apis/metrics.k8s.io/v1beta1/nodes/top");
    assert_eq!(node["kind"], "NodeMetrics");
    assert!(node["window"].as_str().unwrap().ends_with('s'), "{node}");

    // Whoever may view a namespace may read its pods' metrics (the view
    // role aggregates system:aggregated-metrics-reader), not the nodes'.
    cluster.ok(&["create", "serviceaccount", "viewer"]);
    cluster.ok(&[
        "create",
        "rolebinding",
        "viewer",
        "--clusterrole=view",
        "--serviceaccount=default:viewer",
    ]);
    let token = cluster.ok(&["create", "token", "viewer"]);
    let viewer = cluster.token_kubeconfig("viewer", token.trim(), "default");
    let pods = cluster.kubectl_as(&viewer, &["top", "pods", "--no-headers"]);
    let table = String::from_utf8_lossy(&pods.stdout);
    assert!(
        row(&table, 0, "spin").is_some(),
        "{table} {}",
        String::from_utf8_lossy(&pods.stderr)
    );
    let nodes = cluster.kubectl_as(&viewer, &["top", "nodes"]);
    assert!(
        String::from_utf8_lossy(&nodes.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&nodes.stderr)
    );
}
