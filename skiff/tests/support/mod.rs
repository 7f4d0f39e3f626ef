//! What the end-to-end tests share: a `skiff server` child with the real
//! kubectl pointed at it, second agents in their own processes, and
//! bounded polling ([`until`], over [`skiff_testing::eventually_blocking`]).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const KUBECTL: &str = "/usr/bin/kubectl";

/// A loopback address for a child to listen on ([`skiff_testing::free_port`]).
pub fn free_addr() -> String {
    skiff_testing::free_addr().unwrap()
}

/// A `skiff server` child and a kubectl pointed at it.
pub struct Cluster {
    child: Child,
    pub kubeconfig: PathBuf,
    pub cache: tempfile::TempDir,
    pub url: String,
    pub data: tempfile::TempDir,
    /// How the server was started: its addresses and extra flags.
    listen: String,
    peer_listen: String,
    extra: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop(&mut self.child);
        remove_containers(&self.data.path().join("agent"));
    }
}

/// Stops a server or agent as an operator would: SIGTERM, on which its
/// agent stops its containers and removes them and their network
/// namespaces, then SIGKILL if it has not exited within ten seconds.
/// Whether it exited on SIGTERM.
fn stop(child: &mut Child) -> bool {
    let Ok(id) = i32::try_from(child.id()) else {
        return false;
    };
    if let Some(pid) = rustix::process::Pid::from_raw(id) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let exited = skiff_testing::eventually_blocking(Duration::from_secs(10), "the child to exit", || {
            child.try_wait().ok().flatten()
        });
        if exited.is_ok() {
            return true;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Kills and removes the runc containers of the node agent whose data
/// directory is `agent_dir`, and unmounts their root filesystems. An
/// agent that is killed leaves its containers running (to adopt them when
/// it starts again), so a test that started some stops them itself once
/// the agent is gone.
fn remove_containers(agent_dir: &Path) {
    let root = agent_dir.join("runc/runc");
    if !root.is_dir() {
        return;
    }
    let runc = |args: &[&str]| Command::new("runc").arg("--root").arg(&root).args(args).output();
    let Ok(listed) = runc(&["list", "-q"]) else { return };
    for id in String::from_utf8_lossy(&listed.stdout).lines() {
        let _ = runc(&["delete", "--force", id]);
    }
    // The agent unmounts a container's root filesystem when it removes
    // the pod; one that was killed leaves it mounted, and its pods'
    // network namespaces, links and nftables table in place.
    let containers = agent_dir.join("runc/containers");
    for entry in std::fs::read_dir(&containers).into_iter().flatten().flatten() {
        let rootfs = entry.path().join("rootfs");
        let _ = Command::new("umount").arg("--lazy").arg(&rootfs).output();
    }
    for entry in std::fs::read_dir(agent_dir.join("netns"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = Command::new("umount").arg("--lazy").arg(entry.path()).output();
        if let Some(ip) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<std::net::Ipv4Addr>().ok())
        {
            let [_, b, c, d] = ip.octets();
            let link = format!("skp{b:02x}{c:02x}{d:02x}");
            let _ = Command::new("ip").args(["link", "del", &link]).output();
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", &format!("skiff_127_{b}")])
                .output();
        }
    }
}

impl Cluster {
    /// Stops the server with SIGTERM ([`stop`]); its data directory, and
    /// whether it exited on SIGTERM within ten seconds.
    #[allow(dead_code)]
    pub fn stop_keeping_data(mut self) -> (tempfile::TempDir, bool) {
        let graceful = stop(&mut self.child);
        let data = std::mem::replace(&mut self.data, tempfile::tempdir().unwrap());
        remove_containers(&data.path().join("agent"));
        (data, graceful)
    }

    pub fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// A server with `extra` flags.
    ///
    /// A server that exits before it is ready (its port was taken after
    /// [`free_addr`] found it free) is started again on other ports, a few
    /// times.
    pub fn start_with(extra: &[&str]) -> Cluster {
        assert!(
            Path::new(KUBECTL).exists(),
            "{KUBECTL} is not installed; these tests drive the real kubectl"
        );
        for _ in 0..4 {
            if let Some(cluster) = Cluster::try_start(extra) {
                return cluster;
            }
        }
        panic!("skiff server exited before it was ready, four times; its stderr is above");
    }

    /// A server on a data directory made beforehand (a restored backup).
    pub fn start_on(data: tempfile::TempDir, extra: &[&str]) -> Cluster {
        let mut data = Some(data);
        for _ in 0..4 {
            match Cluster::try_start_on(data.take().unwrap(), extra) {
                Ok(cluster) => return cluster,
                Err(back) => data = Some(back),
            }
        }
        panic!("skiff server exited before it was ready, four times; its stderr is above");
    }

    /// Starts a server and waits until it is ready; `None` if it exited.
    fn try_start(extra: &[&str]) -> Option<Cluster> {
        Cluster::try_start_on(tempfile::tempdir().unwrap(), extra).ok()
    }

    /// Starts a server on `data`; the directory back if it exited.
    fn try_start_on(data: tempfile::TempDir, extra: &[&str]) -> Result<Cluster, tempfile::TempDir> {
        let listen = free_addr();
        let peer_listen = free_addr();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Cluster::spawn(data.path(), &listen, &peer_listen, &extra);
        let mut cluster = Cluster {
            child,
            kubeconfig: data.path().join("kubeconfig"),
            cache: tempfile::tempdir().unwrap(),
            url: format!("https://{listen}"),
            data,
            listen,
            peer_listen,
            extra,
        };
        if cluster.wait_ready() {
            Ok(cluster)
        } else {
            let _ = cluster.child.wait();
            Err(std::mem::replace(&mut cluster.data, tempfile::tempdir().unwrap()))
        }
    }

    fn spawn(data: &Path, listen: &str, peer_listen: &str, extra: &[String]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["server", "--listen", listen, "--peer-listen", peer_listen])
            // Test pods ignore SIGTERM (a shell as PID 1): a short grace
            // keeps stopping quick.
            .args(["--shutdown-grace-period", "2"])
            .args(extra)
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "warn")
            // A server exporting spans sends them every 100 ms, not 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start skiff server")
    }

    /// Waits until the server answers `/readyz`; `false` if it exited.
    fn wait_ready(&mut self) -> bool {
        until(Duration::from_secs(60), "skiff server to become ready", || {
            if self.child.try_wait().unwrap().is_some() {
                return Some(false);
            }
            (self.kubeconfig.exists() && self.kubectl(&["get", "--raw", "/readyz"]).status.success()).then_some(true)
        })
    }

    /// Where the server's peer endpoint listens.
    #[allow(dead_code)]
    pub fn peer_addr(&self) -> &str {
        &self.peer_listen
    }

    /// Kills the server (SIGKILL: its agent stops nothing, as in a crash)
    /// and starts it again on the same data directory and addresses.
    #[allow(dead_code)]
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a killed server again on its data directory and addresses.
    pub fn restart(&mut self) {
        self.child = Cluster::spawn(self.data.path(), &self.listen, &self.peer_listen, &self.extra);
        assert!(self.wait_ready(), "the restarted server exited; its stderr is above");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(KUBECTL);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .arg("--request-timeout=30s")
            .args(args);
        command
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs kubectl, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with_input(args, "")
    }

    pub fn ok_with_input(&self, args: &[&str], input: &str) -> String {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// A kubeconfig for this cluster that authenticates with `token` alone
    /// (the admin's also holds a client certificate, which kubectl would
    /// present too, and which would win), in `namespace`.
    pub fn token_kubeconfig(&self, name: &str, token: &str, namespace: &str) -> PathBuf {
        let path = self.data.path().join(format!("{name}.kubeconfig"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: {name}\n  context: {{cluster: skiff, user: {name}, namespace: {namespace}}}\ncurrent-context: {name}\n",
            self.url,
            self.data.path().join("pki/ca.crt").display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs kubectl with another kubeconfig (and its own cache).
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path().join("other"))
            .arg("--request-timeout=30s")
            .args(args)
            .output()
            .unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
}

/// `skiff image import`, asserting success.
pub fn import(file: &str, name: &str, data_dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["image", "import", file, "--name", name])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
}

/// Polls `f` until it returns `Some`, for at most `limit`
/// ([`skiff_testing::eventually_blocking`]); panics on the timeout.
pub fn until<T>(limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    skiff_testing::eventually_blocking(limit, what, f).unwrap_or_else(|e| panic!("{e}"))
}

/// A node agent in its own process: stopped on drop, and its containers
/// with it.
pub struct Guard {
    pub child: Child,
    pub data_dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        stop(&mut self.child);
        remove_containers(&self.data_dir);
    }
}

/// A second node agent in its own process, named `name`, with its own
/// image store in `dir` holding the images given.
pub fn second_agent(cluster: &Cluster, name: &str, cidr: &str, dir: &Path, images: &[(&str, &str)]) -> Guard {
    second_agent_with(cluster, name, cidr, dir, images, &[])
}

/// The same, with more flags for `skiff agent`.
pub fn second_agent_with(
    cluster: &Cluster,
    name: &str,
    cidr: &str,
    dir: &Path,
    images: &[(&str, &str)],
    extra: &[&str],
) -> Guard {
    for (file, reference) in images {
        import(file, reference, dir);
    }
    let token = cluster.data.path().join("pki/admin.token");
    agent_with_token(cluster, name, cidr, dir, &token, extra)
}

/// A node agent in its own process that authenticates with the token in
/// `token_file` (the admin's, or a join token), its data in `dir`.
pub fn agent_with_token(
    cluster: &Cluster,
    name: &str,
    cidr: &str,
    dir: &Path,
    token_file: &Path,
    extra: &[&str],
) -> Guard {
    let pki = cluster.data.path().join("pki");
    Guard {
        child: Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["agent", "--server", &cluster.url, "--name", name, "--pod-cidr", cidr])
            .args(["--heartbeat-interval", "1", "--shutdown-grace-period", "2"])
            .args(extra)
            .arg("--ca-file")
            .arg(pki.join("ca.crt"))
            .arg("--token-file")
            .arg(token_file)
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
        data_dir: dir.to_path_buf(),
    }
}

/// `skiff token <args> --data-dir <the server's>`, asserting success;
/// its stdout.
pub fn skiff_token(cluster: &Cluster, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("token")
        .args(args)
        .arg("--data-dir")
        .arg(cluster.data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skiff token {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Cluster {
    /// Polls `kubectl get <args> -o json` until `test` holds (60 s).
    pub fn json_until(
        &self,
        args: &[&str],
        what: &str,
        test: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut full = vec!["get"];
        full.extend(args);
        full.extend(["-o", "json"]);
        until(Duration::from_secs(60), what, || {
            let out = self.kubectl(&full);
            if !out.status.success() {
                return None;
            }
            let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            test(&value).then_some(value)
        })
    }

    /// The names of the nodes the ready pods labelled `app=<app>` run on,
    /// one entry per pod.
    pub fn ready_pods_nodes(&self, app: &str) -> Vec<String> {
        let pods = self.json(&["get", "pods", "-l", &format!("app={app}")]);
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .map(|p| p["spec"]["nodeName"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// `GET path` over a fresh connection, as HTTP/1.0 (the body runs to the
/// end of the connection, never chunked) or HTTP/1.1 with `Connection:
/// close`: the status and the body as sent.
pub fn http_get(addr: &str, path: &str, http_1_0: bool) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = if http_1_0 {
        format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n")
    } else {
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    };
    stream.write_all(request.as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {reply:?}")))?;
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A NetworkPolicy letting pods labelled `app: <target>` take connections
/// only from pods labelled `app: <from>`.
pub fn only_from(target: &str, from: &str) -> String {
    serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": format!("{target}-ingress")},
        "spec": {"podSelector": {"matchLabels": {"app": target}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": from}}}]}]}})
    .to_string()
}
