//! Starting and stopping skiff and etcd clusters as child processes on loopback.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Child processes that are stopped ([`stop`]) when dropped.
#[derive(Debug)]
pub struct Cluster {
    pub children: Vec<Child>,
    /// Client endpoints, `host:port`.
    pub endpoints: Vec<String>,
    /// For skiff: each node's Kubernetes API address and data directory.
    pub api: Vec<(String, PathBuf)>,
    /// How each child was started, to start it again after a kill.
    commands: Vec<(PathBuf, Vec<std::ffi::OsString>)>,
}

impl Cluster {
    /// Kills child `i` with SIGKILL, as a crash would.
    pub fn kill(&mut self, i: usize) {
        if let Some(child) = self.children.get_mut(i) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts child `i` again as it was started first.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let (bin, args) = self.commands.get(i).context("no such child")?;
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        if let Some(slot) = self.children.get_mut(i) {
            *slot = child;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            stop(child);
        }
    }
}

/// Stops a child as an operator would: SIGTERM (a skiff node then removes
/// its containers and their network namespaces), SIGKILL if it has not
/// exited within ten seconds.
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{addr} did not start listening within {timeout:?}")
}

/// How skiff servers speak on their peer port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerTransport {
    /// Mutual TLS with the cluster's peer CA: what skiff runs.
    MutualTls,
    /// Plain HTTP (`--peer-plain-http`): the baseline that shows TLS's cost.
    Plain,
}

impl Cluster {
    /// A store client for skiff's peer ports, as the first server: with its
    /// peer certificate, unless the cluster speaks plain HTTP.
    pub fn store_client(&self, transport: PeerTransport) -> anyhow::Result<skiff_store::Client> {
        let tls = match transport {
            PeerTransport::Plain => None,
            PeerTransport::MutualTls => {
                let (_, dir) = self.api.first().context("not a skiff cluster")?;
                let pki = dir.join("pki");
                let deadline = Instant::now() + Duration::from_secs(30);
                while !pki.join("peer.key").exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let peer = skiff_api::pki::peer::PeerPki::read(&pki)?;
                Some(peer.client_config()?)
            }
        };
        Ok(skiff_store::Client::with_tls(self.endpoints.clone(), tls)?)
    }
}

/// `nodes` skiff servers forming one cluster.
pub fn skiff(bin: &Path, root: &Path, nodes: usize) -> anyhow::Result<Cluster> {
    skiff_with(bin, root, nodes, PeerTransport::MutualTls)
}

/// `nodes` skiff servers forming one cluster, with `transport` between them.
pub fn skiff_with(bin: &Path, root: &Path, nodes: usize, transport: PeerTransport) -> anyhow::Result<Cluster> {
    let ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect::<Result<_, _>>()?;
    let peers: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect();
    let mut cluster = Cluster {
        children: Vec::new(),
        endpoints: ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        api: Vec::new(),
        commands: Vec::new(),
    };
    for (i, port) in ports.iter().enumerate() {
        let api = format!("127.0.0.1:{}", free_port()?);
        let dir = root.join(format!("skiff{}", i + 1));
        cluster.api.push((api.clone(), dir.clone()));
        let mut cmd = Command::new(bin);
        cmd.args(["server", "--node-id", &(i + 1).to_string()])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--peer-listen", &format!("127.0.0.1:{port}")])
            .args(["--listen", &api])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("SKIFF_BENCH_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        if transport == PeerTransport::Plain {
            cmd.arg("--peer-plain-http");
        }
        if nodes > 1 {
            // Members other than the first get its credentials with it.
            cmd.args(["--peers", &peers.join(","), "--token", "skiff-bench"]);
        }
        cluster
            .commands
            .push((bin.to_path_buf(), cmd.get_args().map(|a| a.to_os_string()).collect()));
        cluster
            .children
            .push(cmd.spawn().with_context(|| format!("starting {}", bin.display()))?);
    }
    for ep in cluster.endpoints.iter().chain(cluster.api.iter().map(|(a, _)| a)) {
        wait_for_port(ep, Duration::from_secs(30))?;
    }
    Ok(cluster)
}

/// `nodes` etcd members forming one cluster.
pub fn etcd(root: &Path, nodes: usize) -> anyhow::Result<Cluster> {
    let client_ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect::<Result<_, _>>()?;
    let peer_ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect::<Result<_, _>>()?;
    let initial: Vec<String> = peer_ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("e{}=http://127.0.0.1:{p}", i + 1))
        .collect();
    let mut cluster = Cluster {
        children: Vec::new(),
        endpoints: client_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        api: Vec::new(),
        commands: Vec::new(),
    };
    for i in 0..nodes {
        let dir: PathBuf = root.join(format!("etcd{}", i + 1));
        let child = Command::new("etcd")
            .args(["--name", &format!("e{}", i + 1)])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", client_ports[i])])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{}", client_ports[i]),
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", peer_ports[i])])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", peer_ports[i]),
            ])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", "new", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting etcd (apt-get install etcd-server)")?;
        cluster.children.push(child);
    }
    for ep in &cluster.endpoints {
        wait_for_port(ep, Duration::from_secs(30))?;
    }
    Ok(cluster)
}

/// CPU seconds (user + system) process `pid` has used so far; `self`
/// for this process. `/proc` counts in USER_HZ, which Linux fixes at 100.
pub fn cpu_seconds(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name may hold spaces; fields start after its `)`.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

/// Resident memory of `pid`, MiB.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The cores this machine gives the benchmark, for the report.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
}

/// A report as pretty JSON, written to `out` when given; returns the JSON.
pub fn write_report(out: Option<&Path>, report: &impl serde::Serialize) -> anyhow::Result<String> {
    let json = serde_json::to_string_pretty(report)?;
    if let Some(path) = out {
        std::fs::write(path, format!("{json}\n")).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(json)
}

/// Whether this process runs as root (runc pods need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
