//! `kubectl exec`, `cp`, `attach` (through `run -i`) and `port-forward`, and the Python client's exec
//! and port-forward, through the API server to the node agent: over
//! WebSocket as today's clients speak it and over SPDY as older ones do
//! (kubectl still falls back to it, and picks it when told to with
//! `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false` or
//! `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{Cluster, http_get, import};

/// The busybox applets the pods here use, kubectl cp's `tar` included.
const APPLETS: &[&str] = &[
    "sh", "cat", "date", "echo", "false", "gzip", "httpd", "ls", "mkdir", "nc", "seq", "sleep", "stty", "tar", "true",
    "tty", "uptime",
];

/// A cluster whose node runs busybox pods in runc and the HTTP test
/// component, with these pods running:
/// * `box`, which prints the date every 5 s (the Python e2e tests' pod);
/// * `ports`: echo servers on 1234 and 1235, and httpd on 80 serving a
///   page;
/// * `hello`, a Wasm pod serving HTTP on 8080.
fn cluster(cidr: &str) -> (Cluster, tempfile::TempDir) {
    let cluster = Cluster::start_with(&["--node-name", "streams", "--pod-cidr", cidr]);
    let build = tempfile::tempdir().unwrap();
    let layout = skiff_testing::busybox_layout(build.path(), APPLETS).unwrap();
    let agent = cluster.data.path().join("agent");
    import(layout.to_str().unwrap(), "local/busybox:1", &agent);
    import(skiff_test_programs::HTTP_HELLO, "local/hello:1", &agent);
    cluster.ok(&["wait", "--for=condition=Ready", "node/streams", "--timeout=60s"]);
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "box"},
             "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "sleep", "image": "local/busybox:1",
               "args": ["/bin/sh", "-c", "while true; do date; sleep 5; done"]}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ports"},
             "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "servers", "image": "local/busybox:1",
               "args": ["/bin/sh", "-c", "mkdir -p /www; echo '<h1>Welcome to skiff</h1>' > /www/index.html; nc -ll -p 1234 -e cat & nc -ll -p 1235 -e cat & exec httpd -f -p 80 -h /www"],
               "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1}}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello"},
             "spec": {"containers": [{"name": "main", "image": "local/hello:1",
               "env": [{"name": "GREETING", "value": "hello"}],
               "ports": [{"containerPort": 8080}]}]}}]}"#,
    );
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/box",
        "pod/ports",
        "pod/hello",
        "--timeout=120s",
    ]);
    (cluster, build)
}

/// kubectl with extra environment, its exit code, stdout and stderr.
fn kubectl_env(cluster: &Cluster, env: &[(&str, &str)], args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut command = cluster.command(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `kubectl port-forward`, killed on drop.
struct Forward(Child);

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kubectl port-forward <target> :<port>…` and returns it with
/// the local ports it chose, in order.
fn port_forward(cluster: &Cluster, env: &[(&str, &str)], target: &str, ports: &[u16]) -> (Forward, Vec<u16>) {
    let mut args = vec![
        "port-forward".to_string(),
        "--address".into(),
        "127.0.0.1".into(),
        target.into(),
    ];
    args.extend(ports.iter().map(|p| format!(":{p}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = cluster.command(&args);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even once nobody listens: kubectl, like any Go
        // program, dies of SIGPIPE writing to a closed stdout.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let forward = Forward(child);
    let mut local = Vec::new();
    while local.len() < ports.len() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("kubectl port-forward {target} printed no local port"));
        // "Forwarding from 127.0.0.1:40123 -> 80"
        if let Some(port) = line
            .strip_prefix("Forwarding from 127.0.0.1:")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
        {
            local.push(port);
        }
    }
    (forward, local)
}

/// Sends `message` to an echo server and reads it back.
fn echo(port: u16, message: &[u8]) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(message).unwrap();
    let mut reply = vec![0u8; message.len()];
    stream.read_exact(&mut reply).unwrap();
    reply
}

#[test]
fn kubectl_execs_copies_and_forwards_ports() {
    let (cluster, _build) = cluster("127.73.0.0");
    for (protocol, env) in [
        ("WebSocket", &[][..]),
        ("SPDY", &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")][..]),
    ] {
        // Output on both streams, and the exit code.
        let (code, stdout, stderr) = kubectl_env(
            &cluster,
            env,
            &["exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
            b"",
        );
        assert_eq!(code, 3, "{protocol}: the exit code comes through; stderr: {stderr}");
        assert_eq!(stdout, "out\n", "{protocol}");
        assert!(stderr.starts_with("err\n"), "{protocol}: {stderr}");
        assert!(
            stderr.contains("command terminated with exit code 3"),
            "{protocol}: {stderr}"
        );
        // Stdin, to its end: cat exits when it is closed.
        let (code, stdout, stderr) = kubectl_env(&cluster, env, &["exec", "-i", "box", "--", "cat"], b"one\ntwo\n");
        assert_eq!((code, stdout.as_str()), (0, "one\ntwo\n"), "{protocol}: {stderr}");
    }

    // kubectl cp both ways (tar through exec, stdin closed at its end).
    let files = tempfile::tempdir().unwrap();
    let original = files.path().join("original.bin");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&original, &data).unwrap();
    cluster.ok(&["cp", original.to_str().unwrap(), "box:/copied.bin"]);
    let back = files.path().join("back.bin");
    cluster.ok(&["cp", "box:/copied.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "the file comes back as it went");

    // Bad input: an exec into a Wasm component, a command that is not
    // there; the agent keeps serving.
    let (code, _, stderr) = kubectl_env(&cluster, &[], &["exec", "hello", "--", "sh"], b"");
    assert_ne!(code, 0);
    assert!(stderr.contains("Wasm component"), "{stderr}");
    let (code, _, stderr) = kubectl_env(&cluster, &[], &["exec", "box", "--", "no-such-command"], b"");
    assert_ne!(code, 0);
    assert!(stderr.contains("no-such-command"), "{stderr}");

    // port-forward, tunnelled in a WebSocket (kubectl's default) and over
    // SPDY, to a runc pod's own loopback and to a Wasm pod.
    for env in [&[][..], &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..]] {
        let (_forward, local) = port_forward(&cluster, env, "pod/ports", &[80, 1234, 1235]);
        let (status, body) = http_get(&format!("127.0.0.1:{}", local[0]), "/", true).unwrap();
        assert_eq!(status, 200, "{env:?}");
        assert!(body.contains("Welcome to skiff"), "{env:?}: {body}");
        for round in 0..3 {
            let message = format!("round {round} through {env:?}");
            assert_eq!(echo(local[1], message.as_bytes()), message.as_bytes());
            assert_eq!(echo(local[2], message.as_bytes()), message.as_bytes());
        }
        let (_wasm, local) = port_forward(&cluster, env, "pod/hello", &[8080]);
        let (status, body) = http_get(&format!("127.0.0.1:{}", local[0]), "/", true).unwrap();
        assert_eq!((status, body.contains("hello")), (200, true), "{env:?}: {body}");
    }

    // kubectl run -i --rm: a pod whose stdin is attached to, closed at
    // its end (stdinOnce), then removed; and one with a terminal (kubectl,
    // whose own input is no terminal here, attaches without one).
    let (code, stdout, stderr) = kubectl_env(
        &cluster,
        &[],
        &[
            "run",
            "reader",
            "-i",
            "--rm",
            "--restart=Never",
            "--image=local/busybox:1",
            "--",
            "sh",
            "-c",
            "read line; echo got $line; cat",
        ],
        b"hello\nrest\n",
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("got hello\nrest\n"), "{stdout}\n{stderr}");
    let (code, stdout, stderr) = kubectl_env(
        &cluster,
        &[],
        &[
            "run",
            "terminal",
            "-it",
            "--rm",
            "--restart=Never",
            "--image=local/busybox:1",
            "--",
            "sh",
            "-c",
            "read line; tty; echo got $line",
        ],
        b"hi\n",
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("/dev/pts/") && stdout.contains("got hi"),
        "{stdout}\n{stderr}"
    );
    support::until(Duration::from_secs(60), "kubectl run --rm to remove its pods", || {
        cluster
            .ok(&["get", "pods", "reader", "terminal", "--ignore-not-found", "-o", "name"])
            .trim()
            .is_empty()
            .then_some(())
    });

    // A container that has exited takes no exec.
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "done"},
            "spec": {"restartPolicy": "Never", "containers": [
              {"name": "quick", "image": "local/busybox:1", "args": ["true"]},
              {"name": "slow", "image": "local/busybox:1", "args": ["sleep", "600"]}]}}"#,
    );
    support::until(Duration::from_secs(60), "container quick to exit", || {
        let state = cluster.ok(&[
            "get",
            "pod",
            "done",
            "-o",
            "jsonpath={.status.containerStatuses[?(@.name==\"quick\")].state.terminated.reason}",
        ]);
        (state == "Completed").then_some(())
    });
    let (code, _, stderr) = kubectl_env(&cluster, &[], &["exec", "done", "-c", "quick", "--", "true"], b"");
    assert_ne!(code, 0);
    assert!(stderr.contains("is not running"), "{stderr}");
    cluster.ok(&["exec", "box", "--", "true"]);

    // The agent's endpoint takes only the API server (and admins): not a
    // caller without a certificate, nor one the cluster CA signed for
    // another group.
    let node = cluster.json(&["get", "node", "streams"]);
    let endpoint = format!(
        "127.0.0.1:{}",
        node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .unwrap()
    );
    // The cluster's CA, from a copy of the server's credentials (loading
    // writes what it finds missing).
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir(copy.path().join("pki")).unwrap();
    for file in ["ca.crt", "ca.key"] {
        std::fs::copy(
            cluster.data.path().join("pki").join(file),
            copy.path().join("pki").join(file),
        )
        .unwrap();
    }
    let pki = skiff_api::pki::Pki::load_or_create(copy.path(), &[]).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = |client: skiff_api::server::node_client::NodeClient| {
        runtime.block_on(async {
            client
                .get(&endpoint, "/containerLogs/default/box/sleep")
                .await
                .map(|answer| answer.status().as_u16())
        })
    };
    let (cert, key) = pki.issue_client("jane", Some("developers"), 2030).unwrap();
    let jane = skiff_api::server::node_client::NodeClient::with_certificate(&cert, &key).unwrap();
    assert_eq!(status(jane), Ok(403), "a certificate of another group is refused");
    let anonymous = status(skiff_api::server::node_client::NodeClient::default());
    assert!(anonymous.is_err(), "plain HTTP gets no answer: {anonymous:?}");
    let (cert, key) = pki
        .issue_client("kube-apiserver-kubelet-client", Some("system:masters"), 2030)
        .unwrap();
    let server = skiff_api::server::node_client::NodeClient::with_certificate(&cert, &key).unwrap();
    assert_eq!(status(server), Ok(200));
}

#[test]
fn the_python_client_execs_and_forwards_ports() {
    let python = std::env::var("SKIFF_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", "import kubernetes"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "{python} cannot import the `kubernetes` package; run `cargo xtask test`, which installs it, or set SKIFF_PYTHON"
    );
    let (cluster, _build) = cluster("127.74.0.0");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/streams.py");
    let out = Command::new(&python)
        .arg(script)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python streams script failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIGTERM to the server stops its node's containers gracefully: a
/// container that traps SIGTERM runs its handler (its log says so, kept
/// on the node) and the server exits within the grace period.
#[test]
fn a_stopping_server_lets_its_containers_stop() {
    let cluster = Cluster::start_with(&["--node-name", "stopping", "--pod-cidr", "127.76.0.0"]);
    let build = tempfile::tempdir().unwrap();
    let layout = skiff_testing::busybox_layout(build.path(), &["sh", "sleep", "echo"]).unwrap();
    import(
        layout.to_str().unwrap(),
        "local/busybox:1",
        &cluster.data.path().join("agent"),
    );
    cluster.ok(&["wait", "--for=condition=Ready", "node/stopping", "--timeout=60s"]);
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "polite"},
            "spec": {"terminationGracePeriodSeconds": 30, "containers": [{"name": "main", "image": "local/busybox:1",
              "args": ["sh", "-c", "trap 'echo stopping on TERM; exit 0' TERM; echo running; while true; do sleep 0.2; done"]}]}}"#,
    );
    cluster.ok(&["wait", "--for=condition=Ready", "pod/polite", "--timeout=60s"]);
    let uid = cluster.ok(&["get", "pod", "polite", "-o", "jsonpath={.metadata.uid}"]);
    let (data, graceful) = cluster.stop_keeping_data();
    assert!(graceful, "the server exited on SIGTERM within ten seconds");
    let log = data.path().join(format!("agent/logs/default_polite_{uid}/main/0.log"));
    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert!(
        text.contains("stopping on TERM"),
        "the container stopped on SIGTERM: {text}"
    );
}

/// A server killed outright (SIGKILL: its agent stops nothing) and
/// started again adopts the containers it left: the same runs go on
/// (same start time, no restart, init containers not run again), their
/// output still reaches the log, their pod keeps its address, and a
/// container that exits after the restart is reported with its own exit
/// code, which its shim recorded.
#[test]
fn a_killed_server_adopts_its_containers_when_it_restarts() {
    let mut cluster = Cluster::start_with(&["--node-name", "adopting", "--pod-cidr", "127.77.0.0"]);
    let build = tempfile::tempdir().unwrap();
    let layout =
        skiff_testing::busybox_layout(build.path(), &["sh", "sleep", "echo", "httpd", "mkdir", "touch"]).unwrap();
    import(
        layout.to_str().unwrap(),
        "local/busybox:1",
        &cluster.data.path().join("agent"),
    );
    cluster.ok(&["wait", "--for=condition=Ready", "node/adopting", "--timeout=60s"]);
    cluster.ok_with_input(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
             "spec": {"terminationGracePeriodSeconds": 1,
               "initContainers": [{"name": "init", "image": "local/busybox:1", "command": ["echo", "init ran"]}],
               "containers": [
                 {"name": "httpd", "image": "local/busybox:1",
                  "command": ["sh", "-c", "mkdir -p /www && echo adopted > /www/index.html && exec httpd -f -p 80 -h /www"]},
                 {"name": "ticker", "image": "local/busybox:1",
                  "command": ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "quitter"},
             "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
               "containers": [{"name": "main", "image": "local/busybox:1",
                 "command": ["sh", "-c", "while [ ! -e /armed ]; do sleep 0.1; done; sleep 2; exit 7"]}]}}]}"#,
    );
    cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/web",
        "pod/quitter",
        "--timeout=120s",
    ]);
    let before = cluster.json(&["get", "pod", "web"]);
    let ip = before["status"]["podIP"].as_str().unwrap().to_string();
    let addr = format!("{ip}:80");
    assert_eq!(http_get(&addr, "/", false).unwrap().1, "adopted\n");
    let last_tick = |cluster: &Cluster| -> u64 {
        let logs = cluster.ok(&["logs", "web", "-c", "ticker"]);
        let last = logs.lines().last().unwrap_or_default().to_string();
        last.trim_start_matches("tick ").parse().unwrap_or(0)
    };
    let ticks = last_tick(&cluster);
    cluster.ok(&["exec", "quitter", "--", "touch", "/armed"]);

    cluster.kill_and_restart();

    // The same runs, going on: pod address, start times, restart counts,
    // and the init container's one run.
    let after = cluster.json_until(&["pod", "web"], "web to be reported ready again", |pod| {
        pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    assert_eq!(after["status"]["podIP"], before["status"]["podIP"]);
    for (field, name) in [
        ("containerStatuses", "httpd"),
        ("containerStatuses", "ticker"),
        ("initContainerStatuses", "init"),
    ] {
        let status = |pod: &serde_json::Value| {
            pod["status"][field]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name)
                .cloned()
                .unwrap()
        };
        let (was, is) = (status(&before), status(&after));
        assert_eq!(is["containerID"], was["containerID"], "{name}");
        assert_eq!(is["restartCount"], was["restartCount"], "{name}");
        assert_eq!(is["state"], was["state"], "{name}: the same run");
    }
    assert_eq!(cluster.ok(&["logs", "web", "-c", "init"]), "init ran\n");
    assert_eq!(http_get(&addr, "/", false).unwrap().1, "adopted\n");
    // The ticker's output still reaches its log, counting on.
    support::until(Duration::from_secs(30), "the ticker's log to grow", || {
        (last_tick(&cluster) > ticks + 5).then_some(())
    });

    // The quitter's exit code, recorded by its shim.
    let quitter = cluster.json_until(&["pod", "quitter"], "the quitter to end", |pod| {
        pod["status"]["phase"] == "Failed"
    });
    assert_eq!(
        quitter["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 7,
        "{quitter}"
    );
}
