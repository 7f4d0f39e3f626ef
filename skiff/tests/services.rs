//! End to end: Services through skiff's proxy, driven by the real kubectl
//! against `skiff server`: ClusterIPs and NodePorts in front of Wasm and
//! OCI pods, spread over replicas, through a rollout, across nodes, and a
//! clear 503 when nothing serves.
//!
//! Each test's cluster has a service range of its own: the tests run in
//! parallel on one machine, and every node serves its ClusterIPs and DNS
//! address with `SO_REUSEPORT`, so two clusters sharing a range would
//! answer each other's requests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::{Cluster, import, only_from, second_agent_with, until};

/// `GET path` over a fresh connection: the status and the body.
fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    support::http_get(addr, path, false)
}

/// The pods (by the greeting each is given: its own name) that answered
/// `count` requests.
fn responders(addr: &str, count: usize) -> BTreeSet<String> {
    (0..count)
        .map(|_| {
            let (status, body) = get(addr, "/spread").unwrap_or_else(|e| panic!("{addr}: {e}"));
            assert_eq!(status, 200, "{addr}: {body}");
            body.lines()
                .find_map(|l| l.strip_prefix("greeting: "))
                .unwrap_or_else(|| panic!("no greeting in {body:?}"))
                .to_string()
        })
        .collect()
}

/// A Deployment of the HTTP test component whose pods greet with their
/// own name, and a NodePort Service in front of it.
fn hello(name: &str, replicas: u32, image: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "List", "items": [
            {{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "{name}"}},
              "spec": {{"replicas": {replicas},
                "strategy": {{"type": "RollingUpdate", "rollingUpdate": {{"maxSurge": 1, "maxUnavailable": 0}}}},
                "selector": {{"matchLabels": {{"app": "{name}"}}}},
                "template": {{"metadata": {{"labels": {{"app": "{name}"}}}},
                  "spec": {{"containers": [{{"name": "main", "image": "{image}",
                    "env": [{{"name": "GREETING", "valueFrom": {{"fieldRef": {{"fieldPath": "metadata.name"}}}}}}],
                    "ports": [{{"name": "http", "containerPort": 8080}}]}}]}}}}}}}},
            {{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "{name}"}},
              "spec": {{"type": "NodePort", "selector": {{"app": "{name}"}},
                "ports": [{{"name": "web", "port": 80, "targetPort": "http"}}]}}}}]}}"#
    )
}

/// A Deployment of `replicas` busybox `httpd`s in runc, each on `port` of
/// its own pod address, serving `served by runc` at `<page>/`, and a
/// Service `httpd` selecting them with the rest of its spec given (JSON,
/// without the selector).
fn httpd(replicas: u32, port: &str, page: &str, service_spec: &str) -> String {
    let mut service: serde_json::Value = serde_json::from_str(service_spec).unwrap();
    service["selector"] = serde_json::json!({"app": "httpd"});
    format!(
        r#"{{"apiVersion": "v1", "kind": "List", "items": [
            {{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "httpd"}},
              "spec": {{"replicas": {replicas}, "selector": {{"matchLabels": {{"app": "httpd"}}}},
                "template": {{"metadata": {{"labels": {{"app": "httpd"}}}},
                  "spec": {{"runtimeClassName": "runc", "terminationGracePeriodSeconds": 2,
                    "containers": [{{"name": "httpd", "image": "local/busybox:1",
                      "command": ["sh", "-c", "mkdir -p /www{page} && echo served by runc > /www{page}/index.html && exec httpd -f -p {port} -h /www"],
                      "ports": [{{"name": "http", "containerPort": {port}}}],
                      "readinessProbe": {{"tcpSocket": {{"port": {port}}}, "periodSeconds": 1}}}}]}}}}}}}},
            {{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "httpd"}}, "spec": {service}}}]}}"#
    )
}

impl Cluster {
    /// The Service's ClusterIP and its first port's node port.
    fn addresses(&self, service: &str) -> (String, u64) {
        let svc = self.json(&["get", "service", service]);
        (
            svc["spec"]["clusterIP"].as_str().unwrap().to_string(),
            svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap_or(0),
        )
    }

    /// Waits until the Service's Endpoints list `count` ready addresses.
    fn wait_endpoints(&self, service: &str, count: usize) {
        self.json_until(
            &["endpoints", service],
            &format!("{count} endpoints of {service}"),
            |e| {
                let ready: usize = e["subsets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| s["addresses"].as_array().map_or(0, Vec::len))
                    .sum();
                ready == count
            },
        );
    }

    fn pod_names(&self, app: &str) -> BTreeSet<String> {
        let pods = self.json(&["get", "pods", "-l", &format!("app={app}")]);
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Polls `get` until it answers with `status` (the proxy follows the
/// Endpoints a moment after the API does).
fn until_status(addr: &str, path: &str, status: u16) -> String {
    let mut last = None;
    skiff_testing::eventually_blocking(
        Duration::from_secs(30),
        &format!("{addr}{path} to answer {status}"),
        || match get(addr, path) {
            Ok((got, body)) if got == status => Some(body),
            other => {
                last = Some(other);
                None
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}; the last answer: {last:?}"))
}

#[test]
fn wasm_pods_are_reached_through_cluster_ips_and_node_ports() {
    let cluster = Cluster::start_with(&[
        "--node-name",
        "local",
        "--pod-cidr",
        "127.31.0.0",
        "--service-cluster-ip-range",
        "127.131.0.0/16",
    ]);
    import(
        skiff_test_programs::HTTP_HELLO,
        "local/hello:1",
        &cluster.data.path().join("agent"),
    );
    cluster.ok_with_input(&["apply", "-f", "-"], &hello("hello", 2, "local/hello:1"));
    cluster.ok(&["rollout", "status", "deployment/hello", "--timeout=60s"]);
    cluster.wait_endpoints("hello", 2);
    let (ip, node_port) = cluster.addresses("hello");
    assert!(ip.starts_with("127.131."), "from the range given: {ip}");
    let cluster_ip = format!("{ip}:80");
    let node_address = format!("127.0.0.1:{node_port}");
    until_status(&cluster_ip, "/", 200);

    // Both replicas answer, through the ClusterIP and through the node port.
    assert_eq!(responders(&cluster_ip, 20), cluster.pod_names("hello"));
    assert_eq!(responders(&node_address, 20), cluster.pod_names("hello"));

    // Scaling changes the spread.
    cluster.ok(&["scale", "deployment/hello", "--replicas=3"]);
    cluster.ok(&["rollout", "status", "deployment/hello", "--timeout=60s"]);
    cluster.wait_endpoints("hello", 3);
    until(Duration::from_secs(30), "the third replica to answer", || {
        (responders(&cluster_ip, 30).len() >= 3).then_some(())
    });

    // A rollout under a bounded request loop loses no request.
    let before = cluster.pod_names("hello");
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let looping = {
        let (stop, answered) = (stop.clone(), answered.clone());
        let addr = cluster_ip.clone();
        std::thread::spawn(move || {
            let (mut served, mut failed) = (0, Vec::new());
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match get(&addr, "/rollout") {
                    Ok((200, _)) => served += 1,
                    other => failed.push(format!("{other:?}")),
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
            (served, failed)
        })
    };
    cluster.ok(&["rollout", "restart", "deployment/hello"]);
    cluster.ok(&["rollout", "status", "deployment/hello", "--timeout=120s"]);
    cluster.wait_endpoints("hello", 3);
    // The loop runs on until every old pod is gone, not only out of the
    // Endpoints, and then for a few more requests (unless it has used up
    // its bound).
    cluster.json_until(&["pods", "-l", "app=hello"], "the old pods to be gone", |pods| {
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| !before.contains(p["metadata"]["name"].as_str().unwrap()))
    });
    let so_far = answered.load(Ordering::Relaxed);
    until(Duration::from_secs(30), "more requests after the old pods went", || {
        (answered.load(Ordering::Relaxed) >= so_far + 20 || looping.is_finished()).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let (served, failed) = looping.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        served + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(served > 50, "the loop ran through the rollout: {served} requests");
    let after = cluster.pod_names("hello");
    assert!(after.is_disjoint(&before), "new pods: {before:?} -> {after:?}");
    until(Duration::from_secs(30), "the new pods all to answer", || {
        (responders(&cluster_ip, 30) == after).then_some(())
    });

    // No endpoints: a 503 that says why, at once.
    cluster.ok(&["scale", "deployment/hello", "--replicas=0"]);
    cluster.wait_endpoints("hello", 0);
    let body = until_status(&cluster_ip, "/", 503);
    assert!(body.contains("no endpoints for Service default/hello"), "{body}");
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bare"},
            "spec": {"ports": [{"port": 8000}]}}"#,
    );
    let (bare, _) = cluster.addresses("bare");
    let body = until_status(&format!("{bare}:8000"), "/", 503);
    assert!(body.contains("it has no selector"), "{body}");
}

#[test]
fn a_request_entering_one_node_is_served_on_another() {
    let cluster = Cluster::start_with(&[
        "--node-name",
        "local",
        "--pod-cidr",
        "127.32.0.0",
        "--service-cluster-ip-range",
        "127.132.0.0/16",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let _second = second_agent_with(
        &cluster,
        "second",
        "127.33.0.0",
        dir.path(),
        &[(skiff_test_programs::HTTP_HELLO, "local/hello:1")],
        &["--node-ip", "127.0.0.2"],
    );
    cluster.ok(&["wait", "--for=condition=Ready", "node/local", "--timeout=60s"]);
    until(Duration::from_secs(60), "the second agent to register", || {
        cluster
            .kubectl(&["get", "node", "second"])
            .status
            .success()
            .then_some(())
    });
    let node = cluster.json(&["get", "node", "second"]);
    assert!(
        node["metadata"]["annotations"]["skiff.dev/proxy-tunnel-port"]
            .as_str()
            .is_some()
    );

    // The only replica runs on the second node.
    let mut manifest: serde_json::Value = serde_json::from_str(&hello("far", 1, "local/hello:1")).unwrap();
    manifest["items"][0]["spec"]["template"]["spec"]["nodeName"] = "second".into();
    cluster.ok_with_input(&["apply", "-f", "-"], &manifest.to_string());
    cluster.ok(&["rollout", "status", "deployment/far", "--timeout=60s"]);
    cluster.wait_endpoints("far", 1);
    let (ip, node_port) = cluster.addresses("far");
    let pods = cluster.pod_names("far");

    // 127.0.0.1 is only the first node's: its proxy has no local endpoint
    // and must go through the second node's tunnel.
    for addr in [
        format!("127.0.0.1:{node_port}"),
        format!("127.0.0.2:{node_port}"),
        format!("{ip}:80"),
    ] {
        until_status(&addr, "/", 200);
        assert_eq!(responders(&addr, 5), pods, "{addr}");
    }

    // The tunnel the first node went through takes only another node's
    // proxy, over mutual TLS: a plain CONNECT to the pod gets nowhere.
    let port = node["metadata"]["annotations"]["skiff.dev/proxy-tunnel-port"]
        .as_str()
        .unwrap();
    let pod = pods.first().unwrap();
    let pod_ip = cluster.json(&["get", "pod", pod])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let mut plain = std::net::TcpStream::connect(format!("127.0.0.2:{port}")).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut plain, format!("CONNECT {pod_ip}:8080 HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut answer);
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "a plain caller passed the tunnel: {}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn oci_pods_serve_behind_a_service_and_call_a_wasm_service() {
    let cluster = Cluster::start_with(&[
        "--node-name",
        "oci",
        "--pod-cidr",
        "127.34.0.0",
        "--service-cluster-ip-range",
        "127.134.0.0/16",
    ]);
    let build = tempfile::tempdir().unwrap();
    let layout = skiff_testing::busybox_layout(
        build.path(),
        &[
            "sh", "httpd", "wget", "mkdir", "echo", "nslookup", "cat", "sleep", "timeout",
        ],
    )
    .unwrap();
    let images = cluster.data.path().join("agent");
    import(layout.to_str().unwrap(), "local/busybox:1", &images);
    import(skiff_test_programs::HTTP_HELLO, "local/hello:1", &images);
    cluster.ok(&["wait", "--for=condition=Ready", "node/oci", "--timeout=60s"]);
    let node = cluster.json(&["get", "node", "oci"]);
    assert_eq!(
        node["metadata"]["labels"]["skiff.dev/runtime-oci"], "true",
        "runc works here (the test command installs it; OCI containers need root)"
    );

    // Two replicas of a container Deployment on port 80, each in its own
    // network namespace, beside the node's Ingress on port 80 of the
    // node's address, behind a Service.
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &httpd(
            2,
            "80",
            "",
            r#"{"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}"#,
        ),
    );
    cluster.ok_with_input(&["apply", "-f", "-"], &hello("hello", 1, "local/hello:1"));
    cluster.ok(&[
        "rollout",
        "status",
        "deployment/httpd",
        "deployment/hello",
        "--timeout=120s",
    ]);
    cluster.wait_endpoints("httpd", 2);
    cluster.wait_endpoints("hello", 1);
    let pod_ips = |app: &str| -> Vec<String> {
        let listed = cluster.ok(&[
            "get",
            "pods",
            "-l",
            &format!("app={app}"),
            "-o",
            "jsonpath={range .items[*]}{.status.podIP}{\"\\n\"}{end}",
        ]);
        listed.lines().map(str::to_string).collect()
    };
    let httpd_ips = pod_ips("httpd");
    assert_eq!(httpd_ips.len(), 2, "{httpd_ips:?}");
    assert_ne!(httpd_ips[0], httpd_ips[1]);
    for ip in &httpd_ips {
        assert!(ip.starts_with("127.34."), "an address of the node's pod range: {ip}");
        assert_eq!(until_status(&format!("{ip}:80"), "/", 200), "served by runc\n", "{ip}");
    }
    let (ip, node_port) = cluster.addresses("httpd");
    for addr in [format!("{ip}:80"), format!("127.0.0.1:{node_port}")] {
        let body = until_status(&addr, "/", 200);
        assert_eq!(body, "served by runc\n", "{addr}");
    }
    let (hello_ip, _) = cluster.addresses("hello");
    until_status(&format!("{hello_ip}:80"), "/", 200);

    // A container calls the Wasm Service by the variables it was given,
    // then by its name through the cluster DNS, then the Wasm pod and an
    // httpd pod at their addresses.
    let hello_pod = pod_ips("hello").remove(0);
    let caller = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "caller"},
        "spec": {"runtimeClassName": "runc", "restartPolicy": "Never",
          "containers": [{"name": "wget", "image": "local/busybox:1",
            "command": ["sh", "-c", format!(
                "wget -q -O - http://$HELLO_SERVICE_HOST:$HELLO_SERVICE_PORT/from-runc && cat /etc/resolv.conf \
                 && nslookup hello.default.svc.cluster.local && wget -q -O - http://hello/by-name \
                 && wget -q -O - http://{hello_pod}:8080/direct && wget -q -O - http://{}/", httpd_ips[0])]}]}});
    cluster.ok_with_input(&["apply", "-f", "-"], &caller.to_string());
    cluster.json_until(&["pod", "caller"], "the caller to finish", |pod| {
        matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    let logs = cluster.ok(&["logs", "caller"]);
    assert!(logs.contains("path: /from-runc"), "{logs}");
    assert!(logs.contains("nameserver 127.134.0.10"), "the cluster DNS: {logs}");
    assert!(
        logs.contains("Address: 127.134."),
        "nslookup of the Service's name: {logs}"
    );
    assert!(
        logs.contains("path: /by-name"),
        "the short name through the search path: {logs}"
    );
    assert!(logs.contains("path: /direct"), "the Wasm pod at its address: {logs}");
    assert!(
        logs.ends_with("served by runc\n"),
        "another container pod at its address: {logs}"
    );
    let phase = cluster.ok(&["get", "pod", "caller", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Succeeded", "{logs}");

    // A NetworkPolicy cuts a path between two container pods, enforced
    // by the node's kernel, and then allows it again. The client stays
    // up, and fetches by `kubectl exec`.
    let client = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "client", "labels": {"app": "client"}},
        "spec": {"runtimeClassName": "runc", "terminationGracePeriodSeconds": 1,
          "containers": [{"name": "sleep", "image": "local/busybox:1", "command": ["sleep", "3600"]}]}});
    cluster.ok_with_input(&["apply", "-f", "-"], &client.to_string());
    cluster.ok(&["wait", "--for=condition=Ready", "pod/client", "--timeout=60s"]);
    let url = format!("http://{}/", httpd_ips[0]);
    // (Debian's busybox wget crashes with its own `-T`.)
    let fetch = || cluster.kubectl(&["exec", "client", "--", "timeout", "10", "wget", "-q", "-O", "-", &url]);
    let fetched = fetch();
    assert_eq!(
        String::from_utf8_lossy(&fetched.stdout),
        "served by runc\n",
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    cluster.ok_with_input(&["apply", "-f", "-"], &only_from("httpd", "nobody"));
    let refused = until(Duration::from_secs(30), "the policy to cut client from httpd", || {
        let out = fetch();
        (!out.status.success()).then_some(out)
    });
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("Connection refused"), "{said}");
    // The node itself still gets through, as Kubernetes requires.
    assert_eq!(
        until_status(&format!("{}:80", httpd_ips[0]), "/", 200),
        "served by runc\n"
    );
    cluster.ok_with_input(&["apply", "-f", "-"], &only_from("httpd", "client"));
    until(
        Duration::from_secs(30),
        "the policy to let client reach httpd again",
        || {
            let out = fetch();
            (String::from_utf8_lossy(&out.stdout) == "served by runc\n").then_some(())
        },
    );
}

/// curl, over `https` when `ca` is given, resolving `host` to `addr`:
/// the status and the body.
fn curl(host: &str, addr: &str, path: &str, ca: Option<&std::path::Path>) -> (u16, String) {
    let (ip, port) = addr.rsplit_once(':').unwrap();
    let scheme = if ca.is_some() { "https" } else { "http" };
    let mut command = std::process::Command::new("curl");
    command
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(["--resolve", &format!("{host}:{port}:{ip}")])
        .arg(format!("{scheme}://{host}:{port}{path}"));
    if let Some(ca) = ca {
        command.arg("--cacert").arg(ca);
    }
    let out = command.output().expect("curl is installed by the test command");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn ingress_routes_hosts_and_paths_to_wasm_and_oci_pods_with_tls_from_a_secret() {
    let http = support::free_addr().rsplit_once(':').unwrap().1.to_string();
    let https = support::free_addr().rsplit_once(':').unwrap().1.to_string();
    let cluster = Cluster::start_with(&[
        "--node-name",
        "edge",
        "--pod-cidr",
        "127.35.0.0",
        "--service-cluster-ip-range",
        "127.135.0.0/16",
        "--ingress-http-port",
        &http,
        "--ingress-https-port",
        &https,
    ]);
    let (http, https) = (format!("127.0.0.1:{http}"), format!("127.0.0.1:{https}"));
    let build = tempfile::tempdir().unwrap();
    let layout = skiff_testing::busybox_layout(build.path(), &["sh", "httpd", "mkdir", "echo"]).unwrap();
    let images = cluster.data.path().join("agent");
    import(layout.to_str().unwrap(), "local/busybox:1", &images);
    import(skiff_test_programs::HTTP_HELLO, "local/hello:1", &images);
    cluster.ok_with_input(&["apply", "-f", "-"], &hello("hello", 2, "local/hello:1"));
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &httpd(
            1,
            "80",
            "/runc",
            r#"{"ports": [{"name": "web", "port": 8000, "targetPort": "http"}]}"#,
        ),
    );
    cluster.ok(&[
        "rollout",
        "status",
        "deployment/hello",
        "deployment/httpd",
        "--timeout=120s",
    ]);

    // A certificate for secure.skiff.test, stored the way kubectl stores one.
    let certs = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["secure.skiff.test".to_string()]).unwrap();
    let (cert, key) = (certs.path().join("tls.crt"), certs.path().join("tls.key"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    cluster.ok(&[
        "create",
        "secret",
        "tls",
        "secure",
        &format!("--cert={}", cert.display()),
        &format!("--key={}", key.display()),
    ]);
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
            "spec": {
              "defaultBackend": {"service": {"name": "hello", "port": {"name": "web"}}},
              "tls": [{"hosts": ["secure.skiff.test"], "secretName": "secure"}],
              "rules": [
                {"host": "wasm.skiff.test", "http": {"paths": [
                  {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "hello", "port": {"number": 80}}}},
                  {"path": "/runc", "pathType": "Prefix", "backend": {"service": {"name": "httpd", "port": {"number": 8000}}}}]}},
                {"host": "secure.skiff.test", "http": {"paths": [
                  {"path": "/exact", "pathType": "Exact", "backend": {"service": {"name": "hello", "port": {"number": 80}}}}]}}]}}"#,
    );
    until(Duration::from_secs(30), "the Ingress to serve /runc", || {
        (curl("wasm.skiff.test", &http, "/runc/", None).0 == 200).then_some(())
    });
    let (status, body) = curl("wasm.skiff.test", &http, "/runc/", None);
    assert_eq!((status, body.as_str()), (200, "served by runc\n"));
    let (status, body) = curl("wasm.skiff.test", &http, "/hello/there", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("path: /hello/there"), "{body}");
    let (status, body) = curl("unknown.example", &http, "/anything", None);
    assert_eq!(status, 200, "the default backend: {body}");
    let (status, body) = curl("secure.skiff.test", &https, "/exact", Some(&cert));
    assert_eq!(status, 200, "HTTPS with the Secret's certificate: {body}");
    assert!(body.contains("path: /exact"), "{body}");
    let (status, body) = curl("secure.skiff.test", &https, "/exact/not", Some(&cert));
    assert_eq!(
        status, 200,
        "an Exact path does not match below it, so the default backend answers: {body}"
    );

    // The node's address is the Ingress's.
    cluster.json_until(&["ingress", "web"], "the ingress address", |ing| {
        ing["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.0.1"
    });

    // Bad input: a missing Service and a missing Secret are reported on
    // the Ingress; its requests get a 503 that names the Service; the
    // Ingress before it still serves.
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "broken"},
            "spec": {
              "tls": [{"hosts": ["broken.skiff.test"], "secretName": "nowhere"}],
              "rules": [{"host": "broken.skiff.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "ghost", "port": {"number": 80}}}}]}}]}}"#,
    );
    let mut events = String::new();
    skiff_testing::eventually_blocking(Duration::from_secs(30), "events for the broken Ingress", || {
        events = cluster.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=broken",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ]);
        (events.contains("BackendNotFound: Service default/ghost not found")
            && events.contains("SecretNotFound: TLS Secret default/nowhere not found"))
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {events}"));
    let (status, body) = curl("broken.skiff.test", &http, "/", None);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("Ingress default/broken: Service default/ghost not found"),
        "{body}"
    );
    let (status, _) = curl("wasm.skiff.test", &http, "/runc/", None);
    assert_eq!(status, 200, "the other Ingress is unaffected");
}
