//! Pod network namespaces made by [`PodNetwork`], with busybox servers
//! and clients run inside them by `nsenter`: two pods on one port, pod to
//! pod, pod to the node's loopback services (where ClusterIPs and Wasm
//! pods live), and pod to another host through the masquerade. The other
//! host is a network namespace this test makes itself, on a documentation
//! range (198.51.100.0/24); nothing leaves the machine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skiff_host::podnet::{HostPort, Isolation, PodNetwork};
use skiff_netpolicy::{Addresses, Allowance, Allowed, PortSpan, Protocol};
use support::{eventually, http_get, is_root};

/// `busybox ARGS…` inside the namespace pinned at `netns`.
fn inside(netns: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={}", netns.display()))
        .arg("busybox")
        .args(args);
    command
}

/// A process the test started, killed when dropped (a failing test
/// leaves nothing running).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An httpd inside `netns` serving `text` on port 80.
fn serve(netns: &Path, root: &Path, text: &str) -> Server {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("index.html"), text).unwrap();
    Server(
        inside(netns, &["httpd", "-f", "-p", "80", "-h", root.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// What `curl url` prints from inside `netns`, if it succeeds. (The
/// node's curl: busybox's static wget crashes on the node's name service
/// modules.)
fn fetch(netns: &Path, url: &str) -> Option<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["curl", "-sf", "--max-time", "5", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A host outside the node: a namespace holding 198.51.100.2, wired to
/// the node's 198.51.100.1 by a veth. Removed on drop.
struct OutsideHost(&'static str);

impl OutsideHost {
    fn new(name: &'static str) -> OutsideHost {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        ip(&["netns", "add", name]);
        let host = OutsideHost(name);
        ip(&[
            "link", "add", "skt-out", "type", "veth", "peer", "name", "eth0", "netns", name,
        ]);
        ip(&["addr", "add", "198.51.100.1/24", "dev", "skt-out"]);
        ip(&["link", "set", "skt-out", "up"]);
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "set", "eth0", "up"],
            &["addr", "add", "198.51.100.2/24", "dev", "eth0"],
        ] {
            ip(&[&["-n", name], args].concat());
        }
        host
    }

    fn netns(&self) -> std::path::PathBuf {
        Path::new("/run/netns").join(self.0)
    }
}

impl Drop for OutsideHost {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", "skt-out"]).output();
        let _ = Command::new("ip").args(["netns", "del", self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_their_own_namespace_and_address() {
    if !is_root() {
        eprintln!("skipping: network namespaces need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let network = PodNetwork::start(
        dir.path().join("netns"),
        Ipv4Addr::new(127, 72, 0, 0),
        Ipv4Addr::LOCALHOST,
    )
    .await
    .unwrap();
    // Pod a also takes a port of the node's address (a hostPort).
    let host_port = skiff_testing::free_port().unwrap();
    let forwarded = HostPort {
        protocol: "tcp",
        host_ip: None,
        host_port,
        container_port: 80,
    };
    let a = network
        .attach(
            Ipv4Addr::new(127, 72, 0, 2),
            std::slice::from_ref(&forwarded),
            Isolation::OPEN,
        )
        .await
        .unwrap();
    let b = network
        .attach(Ipv4Addr::new(127, 72, 0, 3), &[], Isolation::OPEN)
        .await
        .unwrap();

    // Two pods serve port 80, each on its own address.
    let mut servers = vec![
        serve(&a.netns, &dir.path().join("a"), "pod a\n"),
        serve(&b.netns, &dir.path().join("b"), "pod b\n"),
    ];
    let node_port = format!("127.0.0.1:{host_port}");
    for (addr, text) in [
        ("127.72.0.2:80", "pod a\n"),
        ("127.72.0.3:80", "pod b\n"),
        (node_port.as_str(), "pod a\n"),
    ] {
        let body = eventually(Duration::from_secs(10), addr, || async {
            http_get(addr, "/").await.ok()
        })
        .await;
        assert!(body.ends_with(text), "{addr}: {body}");
    }
    // Pod to pod, and a pod to its own loopback.
    assert_eq!(fetch(&b.netns, "http://127.72.0.2/").as_deref(), Some("pod a\n"));
    assert_eq!(fetch(&a.netns, "http://127.0.0.1/").as_deref(), Some("pod a\n"));

    // NetworkPolicy in the kernel. Pod b takes port 80 from a pod that is
    // not a: a is refused, and the node still gets through, as always.
    let only_from = |peer: &str| Isolation {
        ingress: Allowed::Only(vec![Allowance {
            peers: Some(vec![Addresses::Pod(peer.parse().unwrap())]),
            ports: Some(vec![PortSpan {
                protocol: Protocol::Tcp,
                first: 80,
                last: 80,
            }]),
        }]),
        egress: Allowed::Everything,
    };
    let isolate = |ip: Ipv4Addr, isolation: Isolation| {
        let network = &network;
        async move {
            network
                .isolate(&std::collections::BTreeMap::from([(ip, isolation)]))
                .await
                .unwrap()
        }
    };
    isolate(b.ip, only_from("127.72.0.9")).await;
    assert_eq!(fetch(&a.netns, "http://127.72.0.3/"), None);
    assert!(http_get("127.72.0.3:80", "/").await.unwrap().ends_with("pod b\n"));
    // Allowed again, for a.
    isolate(b.ip, only_from("127.72.0.2")).await;
    assert_eq!(fetch(&a.netns, "http://127.72.0.3/").as_deref(), Some("pod b\n"));
    isolate(b.ip, Isolation::OPEN).await;

    // A pod reaches the node's loopback services (a ClusterIP's listener,
    // a Wasm pod's gateway) and they see the pod's own address.
    let service = tokio::net::TcpListener::bind("127.172.0.5:0").await.unwrap();
    let url = format!("http://{}/", service.local_addr().unwrap());
    let netns = a.netns.clone();
    let client = tokio::task::spawn_blocking(move || fetch(&netns, &url));
    let (mut stream, peer) = service.accept().await.unwrap();
    assert_eq!(peer.ip().to_string(), "127.72.0.2");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = [0u8; 512];
    let _ = stream.read(&mut request).await.unwrap();
    stream
        .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nnode\n")
        .await
        .unwrap();
    drop(stream);
    assert_eq!(client.await.unwrap().as_deref(), Some("node\n"));

    // Another host, through the masquerade: it sees the node's address.
    let outside = OutsideHost::new("skiff-test-outside");
    let outside_root = dir.path().join("outside");
    servers.push(serve(&outside.netns(), &outside_root, "outside\n"));
    let reached = eventually(Duration::from_secs(10), "the outside host", || async {
        let netns = b.netns.clone();
        tokio::task::spawn_blocking(move || fetch(&netns, "http://198.51.100.2/"))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(reached, "outside\n");
    // Egress to a block except that host is refused, then open again.
    let block = Isolation {
        ingress: Allowed::Everything,
        egress: Allowed::Only(vec![Allowance {
            peers: Some(vec![Addresses::Block {
                cidr: "198.51.100.0/24".parse().unwrap(),
                except: vec!["198.51.100.2/32".parse().unwrap()],
            }]),
            ports: None,
        }]),
    };
    isolate(b.ip, block).await;
    let netns = b.netns.clone();
    let refused = tokio::task::spawn_blocking(move || fetch(&netns, "http://198.51.100.2/"));
    assert_eq!(refused.await.unwrap(), None);
    isolate(b.ip, Isolation::OPEN).await;
    let netns = b.netns.clone();
    let reached = tokio::task::spawn_blocking(move || fetch(&netns, "http://198.51.100.2/"));
    assert_eq!(reached.await.unwrap().as_deref(), Some("outside\n"));
    // Nobody outside the node reaches its loopback, pods included: the
    // outside host routes 127.72/16 to the node, which drops it.
    let status = inside(
        &outside.netns(),
        &["sysctl", "-w", "net.ipv4.conf.all.route_localnet=1"],
    )
    .stdout(Stdio::null())
    .status()
    .unwrap();
    assert!(status.success());
    ip(&[
        "-n",
        outside.0,
        "route",
        "add",
        "127.72.0.0/16",
        "via",
        "198.51.100.1",
        "dev",
        "eth0",
        "table",
        "local",
    ]);
    assert_eq!(fetch(&outside.netns(), "http://127.72.0.2/"), None);

    drop(servers);
    drop(outside);

    // Detached: the namespace's file, the node's link and the forward are
    // gone.
    network.detach(&a).await;
    assert!(!a.netns.exists());
    let rules = Command::new("nft")
        .args(["list", "table", "ip", "skiff_127_72"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&rules.stdout).contains(&format!("dport {host_port}")));
    let links = Command::new("ip").args(["-br", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("skp480002"));
    network.detach(&b).await;
    network.shut_down();
    let tables = Command::new("nft").args(["list", "tables"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&tables.stdout).contains("skiff_127_72"));
}
