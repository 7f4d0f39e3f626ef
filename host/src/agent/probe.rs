//! Container probes, as the kubelet runs them: startup first, then
//! liveness and readiness, each every `periodSeconds` after
//! `initialDelaySeconds`, flipping after `successThreshold` successes or
//! `failureThreshold` failures in a row.
//!
//! `httpGet` (any status in 200–399 succeeds) and `tcpSocket` go to the
//! pod IP, so an HTTP probe of a Wasm component is served by a fresh
//! instance like any request. `exec` runs in the container with
//! `runc exec`; Wasm containers have nothing to exec into.
//!
//! Lifecycle hooks (`postStart`, `preStop`) run the same actions once
//! ([`run_hook`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// A probe's verdict changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub kind: Kind,
    pub ok: bool,
    /// Why the last attempt failed.
    pub message: Option<String>,
}

/// How to exec in a container, for `exec` probes: `None` when the
/// container cannot exec (Wasm).
pub type Exec = Option<std::sync::Arc<dyn Fn(Vec<String>, Duration) -> Result<(), String> + Send + Sync>>;

fn seconds(value: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(value.unwrap_or(default).max(0)).unwrap_or(0))
}

/// The port a probe names: a number, or a container port's name.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("no container port named {name:?}")),
    }
}

async fn http_get(addr: SocketAddr, host: &str, path: &str, headers: &[(String, String)]) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("Get \"http://{addr}{path}\": {e}"))?;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kube-probe/1.33\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 64];
    let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP response from {addr}"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// An `httpGet` action (probe or hook): to the pod IP unless it names a
/// host; any status in 200–399 succeeds.
async fn http_action(get: &HTTPGetAction, container: &Container, pod_ip: IpAddr) -> Result<(), String> {
    let port = resolve_port(&get.port, container)?;
    let ip = match get.host.as_deref().filter(|h| !h.is_empty()) {
        Some(host) => host
            .parse()
            .map_err(|_| format!("probe host {host:?} is not an IP address"))?,
        None => pod_ip,
    };
    if get.scheme.as_deref().is_some_and(|s| s != "HTTP") {
        return Err("only HTTP probes are supported".to_string());
    }
    let path = get.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
    let headers: Vec<(String, String)> = get
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    http_get(SocketAddr::new(ip, port), &ip.to_string(), &path, &headers).await
}

/// An `exec` action (`what`: probes or hooks) in the container.
async fn exec_action(command: &ExecAction, exec: &Exec, timeout: Duration, what: &str) -> Result<(), String> {
    let Some(exec) = exec.clone() else {
        return Err(format!("exec {what} are not supported for Wasm containers"));
    };
    let command = command.command.clone().unwrap_or_default();
    tokio::task::spawn_blocking(move || exec(command, timeout))
        .await
        .map_err(|e| e.to_string())?
}

/// One attempt of `probe`.
pub async fn attempt(probe: &Probe, container: &Container, pod_ip: IpAddr, exec: &Exec) -> Result<(), String> {
    let timeout = seconds(probe.timeout_seconds, 1).max(Duration::from_millis(100));
    let work = async {
        if let Some(get) = &probe.http_get {
            http_action(get, container, pod_ip).await
        } else if let Some(tcp) = &probe.tcp_socket {
            let port = resolve_port(&tcp.port, container)?;
            tokio::net::TcpStream::connect(SocketAddr::new(pod_ip, port))
                .await
                .map(drop)
                .map_err(|e| format!("dial tcp {pod_ip}:{port}: {e}"))
        } else if let Some(command) = &probe.exec {
            exec_action(command, exec, timeout, "probes").await
        } else {
            Err("the probe has no handler skiff supports (httpGet, tcpSocket, exec)".to_string())
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs_f32())),
    }
}

/// Runs a lifecycle hook (`postStart`, `preStop`) of `container`, as the
/// kubelet does: `exec` in the container, `httpGet` to the pod, or
/// `sleep`, given at most `limit`. The error is the kubelet's message.
pub async fn run_hook(
    hook: &LifecycleHandler,
    container: &Container,
    pod_ip: IpAddr,
    exec: &Exec,
    limit: Duration,
) -> Result<(), String> {
    let name = &container.name;
    let work = async {
        if let Some(command) = &hook.exec {
            let args = command.command.clone().unwrap_or_default();
            exec_action(command, exec, limit, "hooks")
                .await
                .map_err(|e| format!("Exec lifecycle hook ({args:?}) for Container \"{name}\" failed - error: {e}"))
        } else if let Some(get) = &hook.http_get {
            let path = get.path.clone().unwrap_or_default();
            http_action(get, container, pod_ip)
                .await
                .map_err(|e| format!("HTTP lifecycle hook ({path}) for Container \"{name}\" failed - error: {e}"))
        } else if let Some(sleep) = &hook.sleep {
            tokio::time::sleep(Duration::from_secs(u64::try_from(sleep.seconds).unwrap_or(0))).await;
            Ok(())
        } else {
            Err(format!(
                "lifecycle hook for Container \"{name}\" has no handler skiff supports (exec, httpGet, sleep)"
            ))
        }
    };
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "lifecycle hook for Container \"{name}\" did not finish within {}s",
            limit.as_secs()
        )),
    }
}

/// Runs the container's probes until `verdicts` is closed, sending each
/// change of verdict. Startup gates the others; with no startup probe the
/// container counts as started at once.
pub async fn run(container: Container, pod_ip: IpAddr, exec: Exec, verdicts: mpsc::UnboundedSender<Verdict>) {
    if let Some(startup) = container.startup_probe.clone()
        && !watch_probe(Kind::Startup, &startup, &container, pod_ip, &exec, &verdicts, true).await
    {
        return;
    }
    let liveness = container.liveness_probe.clone();
    let readiness = container.readiness_probe.clone();
    let live = async {
        if let Some(p) = &liveness {
            watch_probe(Kind::Liveness, p, &container, pod_ip, &exec, &verdicts, false).await;
        }
    };
    let ready = async {
        if let Some(p) = &readiness {
            watch_probe(Kind::Readiness, p, &container, pod_ip, &exec, &verdicts, false).await;
        }
    };
    tokio::join!(live, ready);
}

/// Probes on a period, reporting each change. With `until_success`, stops
/// (returning true) at the first success, as a startup probe does; it
/// returns false once the receiver is gone or a startup probe failed.
async fn watch_probe(
    kind: Kind,
    probe: &Probe,
    container: &Container,
    pod_ip: IpAddr,
    exec: &Exec,
    verdicts: &mpsc::UnboundedSender<Verdict>,
    until_success: bool,
) -> bool {
    let period = seconds(probe.period_seconds, 10).max(Duration::from_millis(100));
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::time::sleep(seconds(probe.initial_delay_seconds, 0)).await;
    let mut current: Option<bool> = None;
    let (mut successes, mut failures) = (0, 0);
    loop {
        if verdicts.is_closed() {
            return false;
        }
        match attempt(probe, container, pod_ip, exec).await {
            Ok(()) => {
                successes += 1;
                failures = 0;
                if successes >= success_threshold && current != Some(true) {
                    current = Some(true);
                    if verdicts
                        .send(Verdict {
                            kind,
                            ok: true,
                            message: None,
                        })
                        .is_err()
                    {
                        return false;
                    }
                    if until_success {
                        return true;
                    }
                }
            }
            Err(message) => {
                failures += 1;
                successes = 0;
                if failures >= failure_threshold && current != Some(false) {
                    current = Some(false);
                    let sent = verdicts.send(Verdict {
                        kind,
                        ok: false,
                        message: Some(format!("{} probe failed: {message}", kind.name())),
                    });
                    if sent.is_err() || until_success {
                        return false;
                    }
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let status = if req.starts_with("GET /healthz") {
                        "200 OK"
                    } else {
                        "503 Unavailable"
                    };
                    let _ = s
                        .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                        .await;
                });
            }
        });
        let container: Container =
            serde_json::from_value(json!({"name": "c", "ports": [{"name": "web", "containerPort": port}]})).unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let probe = |v: serde_json::Value| -> Probe { serde_json::from_value(v).unwrap() };
        let ok = probe(json!({"httpGet": {"path": "/healthz", "port": "web"}}));
        assert_eq!(attempt(&ok, &container, ip, &None).await, Ok(()));
        let bad = probe(json!({"httpGet": {"path": "/other", "port": port}}));
        assert!(
            attempt(&bad, &container, ip, &None)
                .await
                .unwrap_err()
                .contains("statuscode: 503")
        );
        let tcp = probe(json!({"tcpSocket": {"port": port}}));
        assert_eq!(attempt(&tcp, &container, ip, &None).await, Ok(()));
        let closed = probe(json!({"tcpSocket": {"port": 1}}));
        assert!(attempt(&closed, &container, ip, &None).await.is_err());
        let exec = probe(json!({"exec": {"command": ["true"]}}));
        assert!(
            attempt(&exec, &container, ip, &None)
                .await
                .unwrap_err()
                .contains("Wasm")
        );

        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut with_probes = container.clone();
        with_probes.readiness_probe = Some(probe(
            json!({"httpGet": {"path": "/other", "port": port}, "periodSeconds": 1, "failureThreshold": 1}),
        ));
        with_probes.startup_probe = Some(probe(json!({"tcpSocket": {"port": port}, "periodSeconds": 1})));
        let task = tokio::spawn(run(with_probes, ip, None, tx));
        let first = rx.recv().await.unwrap();
        assert_eq!((first.kind, first.ok), (Kind::Startup, true));
        let second = rx.recv().await.unwrap();
        assert_eq!((second.kind, second.ok), (Kind::Readiness, false));
        assert!(
            second
                .message
                .unwrap()
                .starts_with("Readiness probe failed: HTTP probe failed")
        );
        drop(rx);
        task.abort();
    }
}
