//! End to end: the real kubectl (whichever `/usr/bin/kubectl` picks for the
//! server's version) against a started `skiff server`, using the kubeconfig
//! the server wrote.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{Cluster, Guard, agent_with_token, free_addr, import, second_agent, skiff_token, until};

const MANIFEST: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: e2e
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: e2e
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        image: registry.local/web:1
        ports:
        - containerPort: 8080
        env:
        - name: MODE
          value: fast
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: e2e
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
"#;

#[test]
fn discovery_and_explain() {
    let cluster = Cluster::start();
    let version = cluster.ok(&["version", "-o", "json"]);
    assert!(version.contains("\"minor\": \"33\""), "{version}");
    // The API server's metrics, under kube-apiserver's names.
    let metrics = cluster.ok(&["get", "--raw", "/metrics"]);
    assert!(metrics.contains("apiserver_request_total{verb=\"GET\""), "{metrics}");
    let resources = cluster.ok(&["api-resources"]);
    for line in [
        "deployments",
        "deploy",
        "apps/v1",
        "customresourcedefinitions",
        "wasmplugins",
    ] {
        assert!(resources.contains(line), "api-resources lacks {line}:\n{resources}");
    }
    // The API is a Service too, for in-cluster clients.
    let api_service = cluster.json(&["get", "service", "kubernetes"]);
    assert_eq!(api_service["spec"]["clusterIP"], "127.96.0.1");
    let api_port: u64 = cluster.url.rsplit(':').next().unwrap().parse().unwrap();
    cluster.json_until(&["endpoints", "kubernetes"], "the API server's endpoint", |e| {
        e["subsets"][0]["addresses"][0]["ip"] == "127.0.0.1" && e["subsets"][0]["ports"][0]["port"] == api_port
    });

    // Every served group version has its APIService, printed as the
    // aggregator prints it.
    cluster.json_until(&["apiservice", "v1.apps"], "v1.apps registered", |s| {
        s["status"]["conditions"][0]["reason"] == "Local"
    });
    let apiservices = cluster.ok(&["get", "apiservices"]);
    let row: Vec<&str> = apiservices
        .lines()
        .find(|l| l.starts_with("v1.apps "))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[..3], ["v1.apps", "Local", "True"], "{apiservices}");

    let explained = cluster.ok(&["explain", "deployment.spec.replicas"]);
    assert!(explained.contains("replicas"), "{explained}");
    let explained = cluster.ok(&["explain", "pods.spec.containers"]);
    assert!(explained.contains("image"), "{explained}");

    // A CRD's resource is usable right after the CRD is applied.
    cluster.ok_with_input(&["apply", "-f", "-"], CRD);
    cluster.ok_with_input(&["apply", "-f", "-"], WIDGET);
    let widgets = cluster.ok(&["get", "widgets"]);
    assert!(widgets.contains("blue-one"), "{widgets}");
    let widget = cluster.json(&["get", "wd", "blue-one"]);
    assert_eq!(widget["spec"]["size"], 3);
    let explained = cluster.ok(&["explain", "widget.spec"]);
    assert!(explained.contains("size"), "{explained}");
    // kubectl validates strictly by default: the server names the field.
    let mut apply = cluster
        .command(&["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let typo = WIDGET.replace("size: 3", "size: 3\n  colour: blue");
    apply.stdin.take().unwrap().write_all(typo.as_bytes()).unwrap();
    let refused = apply.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("unknown field \"spec.colour\""),
        "{stderr}"
    );
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.dev
spec:
  group: example.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, description: "How big the widget is."}
"#;

const WIDGET: &str = r#"
apiVersion: example.dev/v1
kind: Widget
metadata:
  name: blue-one
  namespace: default
spec:
  size: 3
"#;

#[test]
fn typed_creates_and_edits() {
    // The API server's part alone: no controllers act on what is made.
    let cluster = Cluster::start_with(&["--no-controllers"]);
    // Typed create commands send protobuf bodies.
    cluster.ok(&["create", "namespace", "e2e"]);
    cluster.ok(&["-n", "e2e", "create", "configmap", "cfg", "--from-literal=a=1"]);
    cluster.ok(&[
        "-n",
        "e2e",
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=s3cret",
    ]);
    cluster.ok(&[
        "-n",
        "e2e",
        "create",
        "deployment",
        "web",
        "--image=registry.local/web:1",
        "--replicas=2",
    ]);

    let secret = cluster.json(&["-n", "e2e", "get", "secret", "creds"]);
    assert_eq!(secret["data"]["password"], "czNjcmV0");
    assert_eq!(secret["type"], "Opaque");
    let deployment = cluster.json(&["-n", "e2e", "get", "deployment", "web"]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/web:1"
    );

    let wide = cluster.ok(&["-n", "e2e", "get", "deployments", "-o", "wide"]);
    assert!(
        wide.contains("UP-TO-DATE") && wide.contains("registry.local/web:1"),
        "{wide}"
    );
    let yaml = cluster.ok(&["-n", "e2e", "get", "configmap", "cfg", "-o", "yaml"]);
    assert!(yaml.contains("a: \"1\""), "{yaml}");

    // A ReplicationController, printed as Kubernetes prints it.
    let rc = r#"{"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "legacy", "namespace": "e2e"},
        "spec": {"replicas": 0, "template": {"metadata": {"labels": {"app": "legacy"}},
            "spec": {"containers": [{"name": "c", "image": "registry.local/legacy:1"}]}}}}"#;
    cluster.ok_with_input(&["apply", "-f", "-"], rc);
    let rcs = cluster.ok(&["-n", "e2e", "get", "rc", "-o", "wide"]);
    let header: Vec<&str> = rcs.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(
        rcs.contains("registry.local/legacy:1") && rcs.contains("app=legacy"),
        "{rcs}"
    );

    cluster.ok(&["-n", "e2e", "label", "configmap", "cfg", "tier=front"]);
    cluster.ok(&["-n", "e2e", "annotate", "configmap", "cfg", "note=hi"]);
    let cfg = cluster.json(&["-n", "e2e", "get", "configmap", "cfg"]);
    assert_eq!(cfg["metadata"]["labels"]["tier"], "front");
    assert_eq!(cfg["metadata"]["annotations"]["note"], "hi");
    let selected = cluster.ok(&["-n", "e2e", "get", "configmaps", "-l", "tier=front", "-o", "name"]);
    assert_eq!(selected.trim(), "configmap/cfg");

    cluster.ok(&[
        "-n",
        "e2e",
        "patch",
        "configmap",
        "cfg",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    cluster.ok(&[
        "-n",
        "e2e",
        "patch",
        "configmap",
        "cfg",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/a","value":"9"}]"#,
    ]);
    cluster.ok(&[
        "-n",
        "e2e",
        "patch",
        "deployment",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"registry.local/web:2"}]}}}}"#,
    ]);
    let cfg = cluster.json(&["-n", "e2e", "get", "configmap", "cfg"]);
    assert_eq!(cfg["data"], serde_json::json!({"a": "9", "b": "2"}));
    let deployment = cluster.json(&["-n", "e2e", "get", "deployment", "web"]);
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "strategic merge by name");
    assert_eq!(containers[0]["image"], "registry.local/web:2");

    cluster.ok(&["-n", "e2e", "scale", "deployment", "web", "--replicas=5"]);
    assert_eq!(
        cluster.json(&["-n", "e2e", "get", "deployment", "web"])["spec"]["replicas"],
        5
    );

    let mut replaced = cluster.json(&["-n", "e2e", "get", "configmap", "cfg"]);
    replaced["data"] = serde_json::json!({"only": "this"});
    cluster.ok_with_input(&["replace", "-f", "-"], &replaced.to_string());
    assert_eq!(
        cluster.json(&["-n", "e2e", "get", "configmap", "cfg"])["data"],
        serde_json::json!({"only": "this"})
    );

    let conflict = cluster.kubectl(&["-n", "e2e", "create", "configmap", "cfg"]);
    assert!(!conflict.status.success());
    assert!(String::from_utf8_lossy(&conflict.stderr).contains("already exists"));

    cluster.ok(&["-n", "e2e", "delete", "configmap", "cfg", "--cascade=background"]);
    let missing = cluster.kubectl(&["-n", "e2e", "get", "configmap", "cfg"]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("NotFound"),
        "{missing:?}"
    );
    // Foreground and orphan deletion leave a finalizer for the garbage
    // collector (not running here; the workload tests cover it).
    cluster.ok(&[
        "-n",
        "e2e",
        "delete",
        "deployment",
        "web",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let deleting = cluster.json(&["-n", "e2e", "get", "deployment", "web"]);
    assert_eq!(
        deleting["metadata"]["finalizers"],
        serde_json::json!(["foregroundDeletion"])
    );
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    cluster.ok(&[
        "-n",
        "e2e",
        "delete",
        "secret",
        "creds",
        "--cascade=orphan",
        "--wait=false",
    ]);
    let orphaning = cluster.json(&["-n", "e2e", "get", "secret", "creds"]);
    assert_eq!(orphaning["metadata"]["finalizers"], serde_json::json!(["orphan"]));
}

#[test]
fn apply_client_side_then_server_side_and_watch() {
    let cluster = Cluster::start();
    cluster.ok(&["create", "namespace", "e2e"]);
    let applied = cluster.ok_with_input(&["apply", "-f", "-"], MANIFEST);
    assert!(applied.contains("deployment.apps/web created"), "{applied}");
    let again = cluster.ok_with_input(&["apply", "-f", "-"], MANIFEST);
    assert!(again.contains("deployment.apps/web unchanged"), "{again}");
    let changed = MANIFEST
        .replace("greeting: hello", "greeting: hi")
        .replace("replicas: 2", "replicas: 3");
    let applied = cluster.ok_with_input(&["apply", "-f", "-"], &changed);
    assert!(applied.contains("configmap/settings configured"), "{applied}");
    assert_eq!(
        cluster.json(&["-n", "e2e", "get", "configmap", "settings"])["data"]["greeting"],
        "hi"
    );
    assert_eq!(
        cluster.json(&["-n", "e2e", "get", "deployment", "web"])["spec"]["replicas"],
        3
    );

    let server_side = changed.replace("greeting: hi", "greeting: hey");
    let applied = cluster.ok_with_input(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &server_side,
    );
    assert!(applied.contains("serverside-applied"), "{applied}");
    assert_eq!(
        cluster.json(&["-n", "e2e", "get", "configmap", "settings"])["data"]["greeting"],
        "hey"
    );

    // `get -w` sees an update made while it watches.
    let mut watcher = cluster
        .command(&[
            "-n",
            "e2e",
            "get",
            "configmap",
            "settings",
            "-w",
            "-o",
            "jsonpath={.data.greeting}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = watcher.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), "hey");
    cluster.ok(&[
        "-n",
        "e2e",
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"greeting":"watched"}}"#,
    ]);
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), "watched");
    watcher.kill().unwrap();
    watcher.wait().unwrap();
}

fn pod_on(node: &str, name: &str, image: &str, extra: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
            "spec": {{"nodeName": "{node}", "restartPolicy": "Never",
                      "containers": [{{"name": "main", "image": "{image}", "ports": [{{"containerPort": 8080}}]{extra}}}]}}}}"#
    )
}

#[test]
fn pods_run_on_the_local_agent_and_on_a_second_agent_process() {
    let cluster = Cluster::start_with(&["--node-name", "local", "--pod-cidr", "127.21.0.0"]);
    import(
        skiff_test_programs::HTTP_HELLO,
        "local/hello:1",
        &cluster.data.path().join("agent"),
    );
    import(
        skiff_test_programs::CLI_HELLO,
        "local/cli:1",
        &cluster.data.path().join("agent"),
    );

    // A second node agent in its own process.
    let agent_dir = tempfile::tempdir().unwrap();
    import(skiff_test_programs::HTTP_HELLO, "local/hello:1", agent_dir.path());
    let pki = cluster.data.path().join("pki");
    let _agent = Guard {
        child: Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args([
                "agent",
                "--server",
                &cluster.url,
                "--name",
                "second",
                "--pod-cidr",
                "127.22.0.0",
            ])
            .arg("--ca-file")
            .arg(pki.join("ca.crt"))
            .arg("--token-file")
            .arg(pki.join("admin.token"))
            .arg("--data-dir")
            .arg(agent_dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
        data_dir: agent_dir.path().to_path_buf(),
    };
    cluster.ok(&["wait", "--for=condition=Ready", "node/local", "--timeout=60s"]);
    until(Duration::from_secs(60), "the second agent to register", || {
        cluster
            .kubectl(&["get", "node", "second"])
            .status
            .success()
            .then_some(())
    });
    cluster.ok(&["wait", "--for=condition=Ready", "node/second", "--timeout=60s"]);
    let wide = cluster.ok(&["get", "nodes", "-o", "wide"]);
    assert!(wide.contains("wasmtime://"), "{wide}");

    cluster.ok_with_input(&["apply", "-f", "-"], &pod_on("local", "web", "local/hello:1", ""));
    cluster.ok_with_input(&["apply", "-f", "-"], &pod_on("second", "web2", "local/hello:1", ""));
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &pod_on("local", "job", "local/cli:1", r#", "args": ["0", "from", "kubectl"]"#),
    );
    cluster.ok(&["wait", "--for=condition=Ready", "pod/web", "pod/web2", "--timeout=60s"]);
    for (pod, range) in [("web", "127.21."), ("web2", "127.22.")] {
        let ip = cluster.ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]);
        assert!(ip.starts_with(range), "{pod}: {ip}");
        let mut stream = std::net::TcpStream::connect(format!("{ip}:8080")).unwrap();
        stream.write_all(b"GET /from-kubectl HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        std::io::Read::read_to_string(&mut stream, &mut reply).unwrap();
        assert!(reply.contains("path: /from-kubectl"), "{pod}: {reply}");
    }
    cluster.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/job",
        "--timeout=60s",
    ]);
    let logs = cluster.ok(&["logs", "job"]);
    assert!(logs.contains("args: 0 from kubectl"), "{logs}");
    let last = cluster.ok(&["logs", "job", "--tail=1"]);
    assert_eq!(last.lines().count(), 1, "{last}");
    let table = cluster.ok(&["get", "pods", "-o", "wide"]);
    assert!(table.contains("Completed") && table.contains("second"), "{table}");

    cluster.ok(&["delete", "pod", "web", "web2", "job", "--timeout=60s"]);
    let left = cluster.ok(&["get", "pods", "-o", "name"]);
    assert!(left.trim().is_empty(), "{left}");
}

fn wasm_deployment(name: &str, replicas: u32, image: &str) -> String {
    format!(
        r#"{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "{name}"}},
            "spec": {{"replicas": {replicas},
              "strategy": {{"type": "RollingUpdate", "rollingUpdate": {{"maxSurge": 1, "maxUnavailable": 1}}}},
              "selector": {{"matchLabels": {{"app": "{name}"}}}},
              "template": {{"metadata": {{"labels": {{"app": "{name}"}}}},
                "spec": {{
                  "tolerations": [{{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                    "effect": "NoExecute", "tolerationSeconds": 2}}],
                  "containers": [{{"name": "main", "image": "{image}", "ports": [{{"containerPort": 8080}}]}}]}}}}}}}}"#
    )
}

#[test]
fn deployments_roll_scale_undo_heal_and_jobs_complete() {
    let cluster = Cluster::start_with(&[
        "--node-name",
        "local",
        "--pod-cidr",
        "127.23.0.0",
        "--heartbeat-interval",
        "1",
        "--node-monitor-grace-period",
        "4",
    ]);
    let local_images = cluster.data.path().join("agent");
    let images = [
        (skiff_test_programs::HTTP_HELLO, "local/hello:1"),
        (skiff_test_programs::HTTP_HELLO, "local/hello:2"),
        (skiff_test_programs::CLI_HELLO, "local/cli:1"),
    ];
    for (file, reference) in images {
        import(file, reference, &local_images);
    }
    let second_dir = tempfile::tempdir().unwrap();
    let mut second = Some(second_agent(
        &cluster,
        "second",
        "127.24.0.0",
        second_dir.path(),
        &images,
    ));
    for node in ["local", "second"] {
        cluster.json_until(&["node", node], &format!("node {node}"), |_| true);
        cluster.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("node/{node}"),
            "--timeout=60s",
        ]);
    }

    // A Deployment of a Wasm component rolls out.
    cluster.ok_with_input(&["apply", "-f", "-"], &wasm_deployment("hello", 2, "local/hello:1"));
    cluster.ok(&["rollout", "status", "deployment/hello", "--timeout=120s"]);

    // Scaling 1 → 10 → 0 → 3 through the scale subresource.
    for replicas in [1, 10, 0, 3] {
        cluster.ok(&["scale", "deployment/hello", &format!("--replicas={replicas}")]);
        cluster.ok(&["rollout", "status", "deployment/hello", "--timeout=120s"]);
        cluster.json_until(&["pods", "-l", "app=hello"], &format!("{replicas} pods"), |pods| {
            let live = pods["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .count();
            live == replicas
        });
    }
    // The pods spread over both nodes and serve.
    let nodes = cluster.ready_pods_nodes("hello");
    assert_eq!(nodes.len(), 3, "{nodes:?}");

    // A new image rolls, never below replicas - maxUnavailable available.
    cluster.ok(&["set", "image", "deployment/hello", "main=local/hello:2"]);
    let mut least = i64::MAX;
    let mut last = serde_json::Value::Null;
    skiff_testing::eventually_blocking(Duration::from_secs(120), "the rolling update to finish", || {
        let d = cluster.json(&["get", "deployment", "hello"]);
        least = least.min(d["status"]["availableReplicas"].as_i64().unwrap_or(0));
        let done = d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["updatedReplicas"] == 3
            && d["status"]["replicas"] == 3
            && d["status"]["availableReplicas"] == 3;
        last = d;
        done.then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {last}"));
    assert!(least >= 2, "available replicas dipped to {least}");
    cluster.ok(&["rollout", "status", "deployment/hello", "--timeout=60s"]);
    let history = cluster.ok(&["rollout", "history", "deployment/hello"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // `rollout undo` goes back to the first image.
    cluster.ok(&["rollout", "undo", "deployment/hello"]);
    cluster.ok(&["rollout", "status", "deployment/hello", "--timeout=120s"]);
    let image = cluster.ok(&[
        "get",
        "deployment",
        "hello",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "local/hello:1");
    cluster.json_until(&["pods", "-l", "app=hello"], "only first-image pods", |pods| {
        let items = pods["items"].as_array().unwrap();
        items.len() == 3
            && items
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "local/hello:1")
    });
    // `rollout restart` makes a new revision of the same image.
    cluster.ok(&["rollout", "restart", "deployment/hello"]);
    cluster.ok(&["rollout", "status", "deployment/hello", "--timeout=120s"]);

    // A Job of a Wasm command runs to completion.
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
            "spec": {"completions": 2, "parallelism": 2, "template": {"spec": {"restartPolicy": "Never",
              "containers": [{"name": "main", "image": "local/cli:1", "args": ["0", "from", "a", "job"]}]}}}}"#,
    );
    cluster.ok(&["wait", "--for=condition=complete", "job/once", "--timeout=120s"]);
    let job = cluster.json(&["get", "job", "once"]);
    assert_eq!(job["status"]["succeeded"], 2, "{job}");
    let logs = cluster.ok(&["logs", "job/once"]);
    assert!(logs.contains("args: 0 from a job"), "{logs}");

    // A pod nothing can host says why.
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "picky"},
            "spec": {"nodeSelector": {"disk": "ssd"},
              "containers": [{"name": "main", "image": "local/hello:1"}]}}"#,
    );
    let events = cluster.json_until(
        &[
            "events",
            "--field-selector",
            "involvedObject.name=picky,reason=FailedScheduling",
        ],
        "a FailedScheduling event",
        |e| !e["items"].as_array().unwrap().is_empty(),
    );
    assert_eq!(
        events["items"][0]["message"], "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
        "{events}"
    );
    let described = cluster.ok(&["describe", "pod", "picky"]);
    assert!(described.contains("FailedScheduling"), "{described}");
    cluster.ok(&["delete", "pod", "picky"]);

    // A node that stops: its pods are evicted and recreated elsewhere.
    cluster.ok(&["scale", "deployment/hello", "--replicas=4"]);
    cluster.ok(&["rollout", "status", "deployment/hello", "--timeout=120s"]);
    let before = cluster.ready_pods_nodes("hello");
    assert!(
        before.iter().any(|n| n == "second"),
        "some pods on the second node: {before:?}"
    );
    drop(second.take());
    cluster.json_until(&["node", "second"], "the node marked unreachable", |n| {
        n["spec"]["taints"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["key"] == "node.kubernetes.io/unreachable"))
    });
    let mut nodes = Vec::new();
    skiff_testing::eventually_blocking(Duration::from_secs(90), "pods recreated on the live node", || {
        nodes = cluster.ready_pods_nodes("hello");
        (nodes.len() == 4 && nodes.iter().all(|n| n == "local")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {nodes:?}"));

    // The evicted pods wait, Terminating, for their node; deleting the
    // Node lets them go.
    cluster.ok(&["delete", "node", "second"]);
    cluster.json_until(&["pods", "-l", "app=hello"], "the lost node's pods collected", |pods| {
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["spec"]["nodeName"] == "local")
    });

    // Deletion with each cascade mode.
    cluster.ok(&["delete", "deployment", "hello", "--cascade=orphan"]);
    let sets = cluster.json(&["get", "replicasets", "-l", "app=hello"]);
    assert!(!sets["items"].as_array().unwrap().is_empty(), "orphaned sets remain");
    let pods = cluster.json(&["get", "pods", "-l", "app=hello"]);
    assert_eq!(pods["items"].as_array().unwrap().len(), 4, "and so do their pods");
    cluster.ok(&[
        "delete",
        "replicasets",
        "-l",
        "app=hello",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    let left = cluster.ok(&["get", "pods", "-l", "app=hello", "-o", "name"]);
    assert!(left.trim().is_empty(), "the pods went before their sets: {left}");
    cluster.ok(&["delete", "job", "once", "--cascade=background"]);
    cluster.json_until(&["pods", "-l", "job-name=once"], "the job's pods collected", |pods| {
        pods["items"].as_array().unwrap().is_empty()
    });
}

#[test]
fn an_oci_deployment_rolls_out_in_runc() {
    let cluster = Cluster::start_with(&["--node-name", "oci", "--pod-cidr", "127.25.0.0"]);
    let build = tempfile::tempdir().unwrap();
    let layout = skiff_testing::busybox_layout(build.path(), &["sh", "httpd"]).unwrap();
    import(
        layout.to_str().unwrap(),
        "local/busybox:1",
        &cluster.data.path().join("agent"),
    );
    cluster.ok(&["wait", "--for=condition=Ready", "node/oci", "--timeout=60s"]);
    let labels = cluster.json(&["get", "node", "oci"]);
    assert_eq!(
        labels["metadata"]["labels"]["skiff.dev/runtime-oci"], "true",
        "runc works here (the test command installs it; OCI containers need root)"
    );
    let port = free_addr().rsplit_once(':').unwrap().1.to_string();
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &format!(
            r#"{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "httpd"}},
                "spec": {{"replicas": 1, "strategy": {{"type": "Recreate"}},
                  "selector": {{"matchLabels": {{"app": "httpd"}}}},
                  "template": {{"metadata": {{"labels": {{"app": "httpd"}}}},
                    "spec": {{"runtimeClassName": "runc", "terminationGracePeriodSeconds": 2,
                      "containers": [{{"name": "httpd", "image": "local/busybox:1",
                        "command": ["httpd", "-f", "-p", "{port}", "-h", "/"],
                        "ports": [{{"containerPort": {port}}}],
                        "readinessProbe": {{"tcpSocket": {{"port": {port}}}, "periodSeconds": 1}}}}]}}}}}}}}"#
        ),
    );
    cluster.ok(&["rollout", "status", "deployment/httpd", "--timeout=120s"]);
    // At the pod's own address, in its network namespace.
    let pod_ip = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "app=httpd",
        "-o",
        "jsonpath={.items[0].status.podIP}",
    ]);
    let reply = std::net::TcpStream::connect(format!("{pod_ip}:{port}")).map(|mut s| {
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        std::io::Read::read_to_string(&mut s, &mut reply).unwrap();
        reply
    });
    let reply = reply.unwrap_or_else(|e| panic!("httpd on port {port}: {e}"));
    assert!(reply.starts_with("HTTP/1."), "httpd answers: {reply}");
    cluster.ok(&["delete", "deployment", "httpd", "--cascade=foreground", "--timeout=60s"]);
    let left = cluster.ok(&["get", "pods", "-l", "app=httpd", "-o", "name"]);
    assert!(
        left.trim().is_empty(),
        "foreground deletion removed the pods first: {left}"
    );
}

#[test]
fn manifests_given_with_apply_exist_once_the_server_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: applied\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: applied\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    let cluster = Cluster::start_with(&["--no-agent", "--apply", manifest.to_str().unwrap()]);
    let value = cluster.json_until(
        &["-n", "applied", "configmap", "settings"],
        "the applied ConfigMap",
        |_| true,
    );
    assert_eq!(value["data"]["a"], "1");
    let missing = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["server", "--apply", "/nonexistent/m.yaml", "--data-dir"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "a missing manifest is a usage error");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/m.yaml"));
}

/// Identities with kubectl: `auth whoami`, `auth can-i` (with `--as` and
/// `--list`), `create role`/`rolebinding`, and `create token` for a
/// ServiceAccount whose kubeconfig then gets what its role grants and no
/// more.
#[test]
fn identities_roles_and_tokens() {
    let cluster = Cluster::start_with(&["--no-controllers", "--no-agent"]);
    let whoami = cluster.ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("skiff-admin") && whoami.contains("system:masters"),
        "{whoami}"
    );
    cluster.ok(&["create", "namespace", "team"]);
    cluster.ok(&["create", "serviceaccount", "ci", "-n", "team"]);
    cluster.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
        "-n",
        "team",
    ]);
    cluster.ok(&[
        "create",
        "rolebinding",
        "ci-reads",
        "--role=pod-reader",
        "--serviceaccount=team:ci",
        "-n",
        "team",
    ]);
    let as_ci = "--as=system:serviceaccount:team:ci";
    assert_eq!(
        cluster
            .ok(&["auth", "can-i", "list", "pods", "-n", "team", as_ci])
            .trim(),
        "yes"
    );
    let denied = cluster.kubectl(&["auth", "can-i", "delete", "pods", "-n", "team", as_ci]);
    assert!(!denied.status.success());
    assert_eq!(String::from_utf8_lossy(&denied.stdout).trim(), "no");

    // A token for the ServiceAccount, in a kubeconfig of its own.
    let token = cluster.ok(&["create", "token", "ci", "-n", "team", "--duration=15m"]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let kubeconfig = cluster.token_kubeconfig("ci", token, "team");
    let as_token = |args: &[&str]| cluster.kubectl_as(&kubeconfig, args);
    let listed = as_token(&["get", "pods"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let refused = as_token(&["get", "secrets"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "secrets is forbidden: User \"system:serviceaccount:team:ci\" cannot list resource \"secrets\" in API group \"\" in the namespace \"team\""
        ),
        "{stderr}"
    );
    let me = as_token(&["auth", "whoami", "-o", "json"]);
    let me: serde_json::Value = serde_json::from_slice(&me.stdout).unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], "system:serviceaccount:team:ci");
    let rules = String::from_utf8_lossy(&as_token(&["auth", "can-i", "--list"]).stdout).into_owned();
    assert!(
        rules
            .lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{rules}"
    );

    // The ServiceAccount deleted, its token is refused.
    cluster.ok(&["delete", "serviceaccount", "ci", "-n", "team"]);
    let gone = as_token(&["get", "pods"]);
    assert!(!gone.status.success());
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(
        stderr.contains("Unauthorized") || stderr.contains("provide credentials"),
        "{stderr}"
    );
}

/// `skiff token create|list|delete`: a join token authenticates as
/// `system:bootstrap:<id>` until it is deleted.
#[test]
fn join_tokens_authenticate_until_deleted() {
    let cluster = Cluster::start_with(&["--no-controllers", "--no-agent"]);
    let skiff = |args: &[&str]| skiff_token(&cluster, args);
    let token = skiff(&["create", "--ttl", "1h", "--description", "for node-2"]);
    let token = token.trim().to_string();
    let (id, secret) = token.split_once('.').unwrap();
    assert_eq!((id.len(), secret.len()), (6, 16), "{token}");
    let listed = skiff(&["list"]);
    assert!(
        listed.lines().any(|l| l.starts_with(id) && l.contains("for node-2")),
        "{listed}"
    );
    let kubeconfig = cluster.token_kubeconfig("join", &token, "default");
    let whoami = || cluster.kubectl_as(&kubeconfig, &["auth", "whoami", "-o", "json"]);
    let me = whoami();
    assert!(me.status.success(), "{}", String::from_utf8_lossy(&me.stderr));
    let me: serde_json::Value = serde_json::from_slice(&me.stdout).unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], format!("system:bootstrap:{id}"));
    assert!(
        me["status"]["userInfo"]["groups"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("system:bootstrappers")),
        "{me}"
    );
    skiff(&["delete", id]);
    let gone = whoami();
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("Unauthorized"));
    let bad = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["token", "create", "--ttl", "soon", "--data-dir"])
        .arg(cluster.data.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "a bad --ttl is a usage error");
}

/// A kubeconfig for this cluster that authenticates with the client
/// certificate and key in these files.
fn certificate_kubeconfig(
    cluster: &Cluster,
    name: &str,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::path::PathBuf {
    let path = cluster.data.path().join(format!("{name}.kubeconfig"));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {name}\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: {name}\n  context: {{cluster: skiff, user: {name}, namespace: default}}\ncurrent-context: {name}\n",
        cluster.url,
        cluster.data.path().join("pki/ca.crt").display(),
        cert.display(),
        key.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Seconds from now until the certificate in `file` expires.
fn seconds_left(file: &std::path::Path) -> i64 {
    let pem = std::fs::read(file).unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let (_, certificate) = x509_parser::parse_x509_certificate(&block.contents).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    certificate.validity().not_after.timestamp() - i64::try_from(now).unwrap()
}

/// Replaces the certificate in `agent_pki/node.crt` with one the cluster
/// CA signs for the same key and node, nine tenths of whose ten days
/// have passed.
fn age_node_certificate(cluster: &Cluster, agent_pki: &std::path::Path, node: &str) {
    let pki = cluster.data.path().join("pki");
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key")).unwrap()).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(pki.join("ca.crt")).unwrap(), ca_key).unwrap();
    let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(agent_pki.join("node.key")).unwrap()).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let day = Duration::from_secs(24 * 60 * 60);
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + (now - 9 * day);
    params.not_after = epoch + (now + day);
    let certificate = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(agent_pki.join("node.crt"), certificate.pem()).unwrap();
}

/// An agent given a join token obtains its node's client certificate
/// through a CertificateSigningRequest the controllers approve and issue,
/// runs pods, and with its certificate reads its own pods' Secrets and
/// no other node's. Restarted after its token is deleted, it goes on with
/// its certificate, and renews one near its end as the node.
/// `kubectl certificate approve` approves a request to another signer.
#[test]
fn agents_join_with_a_join_token_and_read_only_their_pods_secrets() {
    let cluster = Cluster::start_with(&["--node-name", "first", "--pod-cidr", "127.23.0.0"]);
    import(
        skiff_test_programs::HTTP_HELLO,
        "local/hello:1",
        &cluster.data.path().join("agent"),
    );
    let token = skiff_token(&cluster, &["create", "--ttl", "1h"]);
    let token = token.trim();
    let id = token.split('.').next().unwrap();
    let token_file = cluster.data.path().join("join.token");
    std::fs::write(&token_file, token).unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    import(skiff_test_programs::HTTP_HELLO, "local/hello:1", agent_dir.path());
    let agent = agent_with_token(&cluster, "joiner", "127.24.0.0", agent_dir.path(), &token_file, &[]);
    until(Duration::from_secs(60), "the joining agent to register", || {
        cluster
            .kubectl(&["get", "node", "joiner"])
            .status
            .success()
            .then_some(())
    });
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "node/joiner",
        "node/first",
        "--timeout=60s",
    ]);

    // Its requests, as kubectl lists them: the node's, with the token; the
    // proxy's, as the node.
    let listed = cluster.ok(&["get", "csr"]);
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ]
    );
    let row = |signer: &str, requestor: &str| {
        listed.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.get(2) == Some(&signer)
                && cells.get(3) == Some(&requestor)
                && cells.get(5) == Some(&"Approved,Issued")
        })
    };
    assert!(
        row(
            "kubernetes.io/kube-apiserver-client-kubelet",
            &format!("system:bootstrap:{id}")
        ),
        "{listed}"
    );
    assert!(
        row("kubernetes.io/kube-apiserver-client", "system:node:joiner"),
        "{listed}"
    );
    let agent_pki = agent_dir.path().join("pki");
    use std::os::unix::fs::PermissionsExt;
    for file in ["node.crt", "node.key", "proxy.crt", "proxy.key"] {
        let mode = std::fs::metadata(agent_pki.join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{file} is private");
    }

    // A pod on each node, each with a Secret.
    for (node, pod, secret) in [
        ("first", "on-first", "first-secret"),
        ("joiner", "on-joiner", "joiner-secret"),
    ] {
        cluster.ok(&[
            "create",
            "secret",
            "generic",
            secret,
            &format!("--from-literal=k={node}"),
        ]);
        let env = format!(
            r#", "env": [{{"name": "S", "valueFrom": {{"secretKeyRef": {{"name": "{secret}", "key": "k"}}}}}}]"#
        );
        cluster.ok_with_input(&["apply", "-f", "-"], &pod_on(node, pod, "local/hello:1", &env));
    }
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/on-first",
        "pod/on-joiner",
        "--timeout=60s",
    ]);

    // The node's certificate: its own pod's Secret, not the other node's.
    let as_node = certificate_kubeconfig(
        &cluster,
        "joiner",
        &agent_pki.join("node.crt"),
        &agent_pki.join("node.key"),
    );
    let me = cluster.kubectl_as(
        &as_node,
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
    );
    assert_eq!(String::from_utf8_lossy(&me.stdout), "system:node:joiner");
    let own = cluster.kubectl_as(&as_node, &["get", "secret", "joiner-secret", "-o", "name"]);
    assert!(own.status.success(), "{}", String::from_utf8_lossy(&own.stderr));
    let as_proxy = certificate_kubeconfig(
        &cluster,
        "joiner-proxy",
        &agent_pki.join("proxy.crt"),
        &agent_pki.join("proxy.key"),
    );
    let me = cluster.kubectl_as(
        &as_proxy,
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
    );
    assert_eq!(String::from_utf8_lossy(&me.stdout), "system:kube-proxy");
    let other = cluster.kubectl_as(&as_node, &["get", "secret", "first-secret"]);
    assert!(!other.status.success());
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        stderr.contains("(Forbidden)")
            && stderr.contains("User \"system:node:joiner\" cannot get resource \"secrets\""),
        "{stderr}"
    );

    // `kubectl certificate approve` for a request to a signer skiff does
    // not run: approved, and left for that signer to issue.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "jane");
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    use base64::Engine;
    let manifest = format!(
        r#"{{"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {{"name": "jane"}},
            "spec": {{"request": "{}", "signerName": "example.com/signer", "usages": ["client auth"], "expirationSeconds": 3600}}}}"#,
        base64::engine::general_purpose::STANDARD.encode(request)
    );
    cluster.ok_with_input(&["create", "-f", "-"], &manifest);
    let pending = cluster.ok(&["get", "csr", "jane", "--no-headers"]);
    assert!(
        pending.contains("example.com/signer") && pending.contains("60m") && pending.contains("Pending"),
        "{pending}"
    );
    let approve = cluster
        .command(&["certificate", "approve", "jane", "-v=6"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&approve.stderr);
    assert!(approve.status.success(), "{log}");
    assert!(
        log.lines().any(|l| l.contains("PUT")
            && l.contains("/apis/certificates.k8s.io/v1/certificatesigningrequests/jane/approval")
            && l.contains("200")),
        "{log}"
    );
    let approved = cluster.ok(&["get", "csr", "jane", "--no-headers"]);
    assert_eq!(approved.split_whitespace().last(), Some("Approved"), "{approved}");
    let reason = cluster.ok(&["get", "csr", "jane", "-o", "jsonpath={.status.conditions[0].reason}"]);
    assert_eq!(reason, "KubectlApprove");

    // Restarted with its token deleted and its certificate near its end:
    // it goes on with the certificate and renews it, as the node.
    drop(agent);
    skiff_token(&cluster, &["delete", id]);
    age_node_certificate(&cluster, &agent_pki, "joiner");
    assert!(seconds_left(&agent_pki.join("node.crt")) < 2 * 24 * 60 * 60);
    let _agent = agent_with_token(&cluster, "joiner", "127.24.0.0", agent_dir.path(), &token_file, &[]);
    until(Duration::from_secs(60), "the node certificate to be renewed", || {
        (seconds_left(&agent_pki.join("node.crt")) > 300 * 24 * 60 * 60).then_some(())
    });
    let renewals = cluster.ok(&["get", "csr", "--no-headers"]);
    assert!(
        renewals.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.get(2) == Some(&"kubernetes.io/kube-apiserver-client-kubelet")
                && cells.get(3) == Some(&"system:node:joiner")
                && cells.get(5) == Some(&"Approved,Issued")
        }),
        "{renewals}"
    );
    let me = cluster.kubectl_as(
        &as_node,
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
    );
    assert_eq!(String::from_utf8_lossy(&me.stdout), "system:node:joiner");
}

/// An unmodified in-cluster client: curl in a runc pod, configured only by
/// what every pod gets (`KUBERNETES_SERVICE_HOST`/`_PORT`, and the token,
/// CA and namespace at the ServiceAccount mount), reaches the API through
/// the `kubernetes` Service as its own account, which may list pods and
/// nothing else.
#[test]
fn an_in_cluster_client_lists_pods_with_its_own_token_and_no_more() {
    let cluster = Cluster::start_with(&[
        "--node-name",
        "incluster",
        "--pod-cidr",
        "127.26.0.0",
        "--service-cluster-ip-range",
        "127.141.0.0/16",
    ]);
    let build = tempfile::tempdir().unwrap();
    let layout = skiff_testing::busybox_layout_with(build.path(), &["sh", "cat", "sleep"], &["/usr/bin/curl"]).unwrap();
    import(
        layout.to_str().unwrap(),
        "local/curl:1",
        &cluster.data.path().join("agent"),
    );
    cluster.ok(&["create", "serviceaccount", "reader"]);
    cluster.ok(&["create", "role", "pod-reader", "--verb=get,list", "--resource=pods"]);
    cluster.ok(&[
        "create",
        "rolebinding",
        "reader-reads-pods",
        "--role=pod-reader",
        "--serviceaccount=default:reader",
    ]);
    let script = r#"sa=/var/run/secrets/kubernetes.io/serviceaccount
ask() { curl -sS -o /dev/null -w "$1=%{http_code}\n" --cacert $sa/ca.crt -H "Authorization: Bearer $(cat $sa/token)" "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT$2"; }
ask pods /api/v1/namespaces/$(cat $sa/namespace)/pods
ask secrets /api/v1/namespaces/$(cat $sa/namespace)/secrets
ask nodes /api/v1/nodes
echo done
exec sleep 300"#;
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client"},
        "spec": {
            "serviceAccountName": "reader",
            "runtimeClassName": "runc",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "curl", "image": "local/curl:1", "command": ["sh", "-c", script]}],
        },
    });
    cluster.ok_with_input(&["apply", "-f", "-"], &pod.to_string());
    let logs = until(Duration::from_secs(90), "the client's answers", || {
        let out = cluster.kubectl(&["logs", "client"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("done").then_some(text)
    });
    assert!(logs.contains("pods=200\n"), "{logs}");
    assert!(logs.contains("secrets=403\n"), "{logs}");
    assert!(logs.contains("nodes=403\n"), "{logs}");
    let spec = cluster.json(&["get", "pod", "client"]);
    let mounts = spec["spec"]["containers"][0]["volumeMounts"].to_string();
    assert!(mounts.contains("kube-api-access-"), "{mounts}");
    cluster.ok(&["delete", "pod", "client", "--timeout=60s"]);
}
