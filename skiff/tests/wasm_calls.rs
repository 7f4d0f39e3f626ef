//! End to end: Wasm pods that call out, through `skiff server` and the
//! real kubectl. The components are the examples the published `wstd`
//! crate ships, built as they stand (`skiff_test_programs::WSTD_*`): its
//! HTTP server, its proxy (which forwards `/proxy/<rest>` to
//! `$TARGET_URL<rest>`), its command-line client and its TCP echo server
//! (which binds `127.0.0.1:8080`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{Cluster, import, only_from};

/// `GET path` over a fresh connection: the status and the body.
fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    support::http_get(addr, path, true)
}

/// A Deployment of one Wasm component with `env`, listening on 8080, and
/// a Service of the same name on port 80.
fn wasm_service(name: &str, image: &str, env: serde_json::Value) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
           "template": {"metadata": {"labels": {"app": name}},
             "spec": {"containers": [{"name": "main", "image": image, "env": env,
               "ports": [{"name": "http", "containerPort": 8080}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}]}}]})
    .to_string()
}

/// A Deployment of busybox `httpd` in runc on the host's `port`, serving
/// `served by runc`, and a Service `httpd` on port 80.
fn httpd(port: &str) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "httpd"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "httpd"}},
           "template": {"metadata": {"labels": {"app": "httpd"}},
             "spec": {"runtimeClassName": "runc", "terminationGracePeriodSeconds": 2,
               "containers": [{"name": "httpd", "image": "local/busybox:1",
                 "command": ["sh", "-c", format!("mkdir -p /www && echo served by runc > /www/index.html && exec httpd -f -p {port} -h /www")],
                 "ports": [{"name": "http", "containerPort": port.parse::<u16>().unwrap()}],
                 "readinessProbe": {"tcpSocket": {"port": port.parse::<u16>().unwrap()}, "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "httpd"},
         "spec": {"selector": {"app": "httpd"}, "ports": [{"port": 80, "targetPort": "http"}]}}]})
    .to_string()
}

/// A Job running wstd's client once with `args`.
fn client_job(name: &str, args: &[&str]) -> String {
    serde_json::json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "client", "image": "local/wstd-client:1", "args": args}]}}}})
    .to_string()
}

impl Cluster {
    fn cluster_ip(&self, service: &str) -> String {
        let svc = self.json(&["get", "service", service]);
        svc["spec"]["clusterIP"].as_str().unwrap().to_string()
    }

    /// Waits for the Job to finish; its pod's logs and whether it
    /// succeeded.
    fn job_logs(&self, name: &str) -> (String, bool) {
        self.json_until(&["job", name], &format!("job {name} to finish"), |job| {
            job["status"]["succeeded"].as_u64() == Some(1) || job["status"]["failed"].as_u64() == Some(1)
        });
        let job = self.json(&["get", "job", name]);
        (
            self.ok(&["logs", &format!("job/{name}")]),
            job["status"]["succeeded"].as_u64() == Some(1),
        )
    }
}

/// A cluster of one node, `(name, pod CIDR, service range)`, running
/// front (Wasm) → middle (Wasm) → httpd (runc), each a Deployment behind
/// a Service: front calls `front_target`, middle `http://httpd/` (both
/// wstd's proxy). `more` images are imported too.
fn chain((node, cidr, range): (&str, &str, &str), front_target: &str, more: &[(&str, &str)]) -> Cluster {
    let cluster = Cluster::start_with(&[
        "--node-name",
        node,
        "--pod-cidr",
        cidr,
        "--service-cluster-ip-range",
        range,
    ]);
    let build = tempfile::tempdir().unwrap();
    let layout = skiff_testing::busybox_layout(build.path(), &["sh", "httpd", "mkdir", "echo"]).unwrap();
    let images = cluster.data.path().join("agent");
    import(layout.to_str().unwrap(), "local/busybox:1", &images);
    import(
        skiff_test_programs::WSTD_HTTP_SERVER_PROXY,
        "local/wstd-proxy:1",
        &images,
    );
    for (program, reference) in more {
        import(program, reference, &images);
    }
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("node/{node}"),
        "--timeout=60s",
    ]);
    let port = support::free_addr().rsplit_once(':').unwrap().1.to_string();
    cluster.ok_with_input(&["apply", "-f", "-"], &httpd(&port));
    let target = |url: &str| serde_json::json!([{"name": "TARGET_URL", "value": url}]);
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &wasm_service("middle", "local/wstd-proxy:1", target("http://httpd/")),
    );
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &wasm_service("front", "local/wstd-proxy:1", target(front_target)),
    );
    cluster.ok(&[
        "rollout",
        "status",
        "deployment/httpd",
        "deployment/middle",
        "deployment/front",
        "--timeout=120s",
    ]);
    cluster
}

#[test]
fn wasm_pods_call_services_by_name_and_serve_tcp_from_localhost() {
    // front → middle in-process, middle → httpd through the proxy, each
    // hop by a Service name in another form.
    let cluster = chain(
        ("calls", "127.54.0.0", "127.154.0.0/16"),
        "http://middle.default.svc.cluster.local/proxy/",
        &[
            (skiff_test_programs::WSTD_HTTP_SERVER, "local/wstd-server:1"),
            (skiff_test_programs::WSTD_HTTP_CLIENT, "local/wstd-client:1"),
            (skiff_test_programs::WSTD_TCP_ECHO_SERVER, "local/wstd-echo:1"),
        ],
    );
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &wasm_service("backend", "local/wstd-server:1", serde_json::json!([])),
    );
    // A TCP server that binds 127.0.0.1:8080, unchanged, behind a Service.
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &wasm_service("echo", "local/wstd-echo:1", serde_json::json!([])),
    );
    cluster.ok(&[
        "rollout",
        "status",
        "deployment/backend",
        "deployment/echo",
        "--timeout=120s",
    ]);
    let body = cluster.until_status("front", "/proxy/", 200);
    assert_eq!(body, "served by runc\n");

    let echo = format!("{}:80", cluster.cluster_ip("echo"));
    let echoed = support::until(Duration::from_secs(60), "the echo Service to echo", || {
        let mut stream = TcpStream::connect(&echo).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(b"hello from outside\n").ok()?;
        let mut echoed = [0u8; 19];
        stream.read_exact(&mut echoed).ok()?;
        Some(echoed)
    });
    assert_eq!(&echoed, b"hello from outside\n");

    // A command calls a Service by its short name and logs the answer.
    cluster.ok_with_input(&["apply", "-f", "-"], &client_job("call-backend", &["http://backend/"]));
    let (logs, succeeded) = cluster.job_logs("call-backend");
    assert!(succeeded, "{logs}");
    assert!(logs.contains("Hello, wasi:http/proxy world!"), "{logs}");

    // A command calls the runc pod at its own address, in its network
    // namespace, not through a Service.
    let httpd = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "app=httpd",
        "-o",
        "jsonpath={.items[0].status.podIP}:{.items[0].spec.containers[0].ports[0].containerPort}",
    ]);
    assert!(
        httpd.starts_with("127.54."),
        "the runc pod has its own address: {httpd}"
    );
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &client_job("call-runc-pod", &[&format!("http://{httpd}/")]),
    );
    let (logs, succeeded) = cluster.job_logs("call-runc-pod");
    assert!(succeeded, "{logs}");
    assert!(logs.contains("served by runc"), "{logs}");

    // A name no Service has fails as the cluster DNS says, not by hanging.
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &client_job("call-nobody", &["http://nobody.default.svc.cluster.local/"]),
    );
    let (logs, succeeded) = cluster.job_logs("call-nobody");
    assert!(!succeeded, "{logs}");
    assert!(logs.to_lowercase().contains("dns"), "{logs}");

    // A server that takes connections and never answers: the guest's
    // first-byte timeout holds.
    let stalled = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let stalled_url = format!("http://{}/", stalled.local_addr().unwrap());
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &client_job("call-stalled", &["--first-byte-timeout", "500ms", &stalled_url]),
    );
    let (logs, succeeded) = cluster.job_logs("call-stalled");
    assert!(!succeeded, "{logs}");
    assert!(logs.to_lowercase().contains("timeout"), "{logs}");
    drop(stalled);

    // HTTPS to the API server by its Service name: the cluster CA is
    // trusted, so TLS holds, and anyone may read the version.
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        &client_job("call-api", &["https://kubernetes.default.svc/version"]),
    );
    let (logs, succeeded) = cluster.job_logs("call-api");
    assert!(succeeded, "{logs}");
    assert!(logs.contains("< HTTP/1.1 200"), "{logs}");
    assert!(logs.contains("\"gitVersion\""), "{logs}");
}

impl Cluster {
    /// Polls `GET path` on the Service until it answers `status`.
    fn until_status(&self, service: &str, path: &str, status: u16) -> String {
        self.until_answer(service, path, &format!("status {status}"), |got, _| got == status)
    }

    /// Polls `GET path` on the Service until the answer passes `test`.
    fn until_answer(&self, service: &str, path: &str, what: &str, test: impl Fn(u16, &str) -> bool) -> String {
        let addr = format!("{}:80", self.cluster_ip(service));
        let last = std::cell::RefCell::new(None);
        let what = format!("{service}{path} to answer with {what}");
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            support::until(Duration::from_secs(60), &what, || match get(&addr, path) {
                Ok((got, body)) if test(got, &body) => Some(body),
                other => {
                    *last.borrow_mut() = Some(other);
                    None
                }
            })
        }));
        answered.unwrap_or_else(|_| panic!("{what}: the last answer was {:?}", last.borrow()))
    }
}

#[test]
fn network_policies_cut_a_hop_of_a_wasm_to_wasm_to_runc_chain_and_allow_it_again() {
    let cluster = chain(
        ("policies", "127.55.0.0", "127.155.0.0/16"),
        "http://middle/proxy/",
        &[],
    );
    assert_eq!(cluster.until_status("front", "/proxy/", 200), "served by runc\n");
    let pod_ip = |app: &str| {
        cluster.ok(&[
            "get",
            "pods",
            "-l",
            &format!("app={app}"),
            "-o",
            "jsonpath={.items[0].status.podIP}",
        ])
    };
    let (middle_ip, front_ip) = (pod_ip("middle"), pod_ip("front"));

    // The last hop (Wasm → runc, through the proxy) only from front: the
    // proxy sees middle's own address and refuses with a 403 that names
    // the policy. (wstd's proxy passes bodies on, not statuses.)
    cluster.ok_with_input(&["apply", "-f", "-"], &only_from("httpd", "front"));
    let body = cluster.until_answer("front", "/proxy/", "the refusal", |_, body| {
        body.contains("httpd-ingress")
    });
    assert_eq!(
        body,
        format!(
            "no endpoint of Service default/httpd:80 may be reached from {middle_ip}: denied by the ingress NetworkPolicy default/httpd-ingress\n"
        )
    );
    // Allowed again from middle.
    cluster.ok_with_input(&["apply", "-f", "-"], &only_from("httpd", "middle"));
    assert_eq!(cluster.until_status("front", "/proxy/", 200), "served by runc\n");

    // The first hop (Wasm → Wasm, in-process) from nobody: the host
    // refuses with a 403 of its own, which front passes on.
    cluster.ok_with_input(&["apply", "-f", "-"], &only_from("middle", "nobody"));
    let body = cluster.until_answer("front", "/proxy/", "the refusal", |_, body| {
        body.contains("middle-ingress")
    });
    assert!(
        body.starts_with(&format!("{front_ip} may not connect to {middle_ip}:8080")),
        "{body}"
    );
    cluster.ok(&["delete", "networkpolicy", "middle-ingress"]);
    assert_eq!(cluster.until_status("front", "/proxy/", 200), "served by runc\n");

    // Each refusing policy got one Warning Event.
    let events = cluster.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=PolicyDenied",
        "-o",
        "jsonpath={range .items[*]}{.involvedObject.name}{\"\\n\"}{end}",
    ]);
    let mut named: Vec<&str> = events.lines().collect();
    named.sort_unstable();
    named.dedup();
    assert_eq!(named, ["httpd-ingress", "middle-ingress"], "{events}");
}
