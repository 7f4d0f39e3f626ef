//! Pod networking for OCI containers: each pod that is not on the host
//! network gets a network namespace of its own, with loopback and one
//! interface holding the pod's address, and all its containers share it.
//!
//! # The model
//!
//! Pod addresses come from the node's pod CIDR, a /16 on loopback, as the
//! Wasm pods' do; ClusterIPs (and the cluster DNS) are on loopback too.
//! So a pod namespace is wired to the node by a veth pair and plain
//! routes, without a bridge:
//!
//! ```text
//!  node (host namespace)                          pod namespace, pinned at <data>/netns/<pod IP>
//!  lo   127.0.0.0/8 local: ClusterIPs, DNS,       lo    127.0.0.1/32 (the rest of 127/8 is the node's)
//!       Wasm pods, other pods' next hop
//!  skp<ip> ◄─────────────── veth ───────────────► eth0  <pod IP>/32
//!    route <pod IP>/32 src <gateway> (table local)      route 127.0.0.0/8 and default
//!    neighbour <pod IP> → eth0's MAC                      via 169.254.1.1 onlink src <pod IP>
//!    route_localnet, forwarding                         neighbour 169.254.1.1 → skp<ip>'s MAC
//! ```
//!
//! * The node reaches a pod through a /32 route in the `local` table,
//!   which the kernel consults first and where 127.0.0.0/8 would
//!   otherwise be delivered locally. Its source is the CIDR's first
//!   address, the *gateway*, which no pod holds.
//! * A pod reaches ClusterIPs, the DNS, Wasm pods, other pods and the
//!   node's loopback services through the node: everything in 127/8 but
//!   its own 127.0.0.1, and the default route.
//! * Loopback addresses may cross a link only where `route_localnet` is
//!   set (both ends), and ARP never answers for them, so both ends carry
//!   a permanent neighbour entry for the other.
//! * Pod-to-pod traffic is forwarded by the node (forwarding is turned
//!   on); traffic that leaves for other hosts is masqueraded behind the
//!   node's address. With `route_localnet` on for the whole node (replies
//!   are translated back to a loopback address before they are routed),
//!   a filter drops any other packet that arrives from outside for
//!   127.0.0.0/8, so that the node's loopback services stay its own.
//!
//! * A container port's `hostPort` is forwarded from the node's address
//!   (or its `hostIP`) to the pod (DNAT); a client on the node itself is
//!   made to come from the gateway, since the pod's 127.0.0.1 is its own.
//!
//! * NetworkPolicy is enforced on what the node forwards to and from its
//!   pods ([`isolation`]).
//!
//! Links, addresses, routes and neighbours are made over netlink with
//! `rtnetlink`; the node's rules (masquerade, the loopback guard, host
//! ports, NetworkPolicy) are one nftables table per pod CIDR, reloaded whole by the
//! `nft` binary when they change, as
//! kube-proxy's nftables mode loads its own. Debian's CNI plugins were
//! the alternative: their `bridge` and `host-local` give pods addresses
//! on a bridge subnet, off loopback, from where the loopback ClusterIPs
//! and Wasm pods cannot be reached without the same routing as here.

mod isolation;
mod netns;

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

pub use isolation::Isolation;

/// The pods' next hop. No interface holds it; each pod's neighbour entry
/// maps it to its veth peer (Calico's choice of address).
const NEXT_HOP: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The kernel's `local` routing table.
const TABLE_LOCAL: u32 = 255;
/// Host-side veth names: this prefix and the pod IP's low 24 bits in hex.
const LINK_PREFIX: &str = "skp";

/// Why a pod's network could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("cannot load the node's nftables rules: {0}")]
    Nft(String),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

fn netlink_error(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |source| Error::Netlink { what, source }
}

/// A pod's network: its pinned namespace, address and host-side link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    /// The namespace's file, for runc's `linux.namespaces[].path`.
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    link: String,
}

/// The node's side of pod networking: makes and removes pods' namespaces.
pub struct PodNetwork {
    host: Handle,
    runtime: tokio::runtime::Handle,
    cidr: Ipv4Addr,
    gateway: Ipv4Addr,
    node_ip: Ipv4Addr,
    dir: PathBuf,
    table: String,
    /// What the table holds; it is reloaded whole when this changes.
    rules: tokio::sync::Mutex<Rules>,
    /// Held while `nft` runs; `true` once the table is removed for good
    /// ([`shut_down`](PodNetwork::shut_down)), after which nothing loads
    /// it again (a pod worker still finishing would).
    removed: Arc<std::sync::Mutex<bool>>,
}

/// The per-pod part of the node's table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Rules {
    /// The host ports of the pods that have some, by pod address.
    host_ports: BTreeMap<Ipv4Addr, Vec<HostPort>>,
    /// What each attached pod's NetworkPolicies allow, by pod address.
    isolation: BTreeMap<Ipv4Addr, Isolation>,
}

impl std::fmt::Debug for PodNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodNetwork")
            .field("cidr", &self.cidr)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The /16 `pod_cidr` lies in.
pub fn cidr_base(pod_cidr: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(pod_cidr) & 0xffff_0000)
}

/// The address the node uses towards its pods: the CIDR's first.
pub fn gateway(pod_cidr: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr_base(pod_cidr)) + 1)
}

fn link_name(ip: Ipv4Addr) -> String {
    format!("{LINK_PREFIX}{:06x}", u32::from(ip) & 0x00ff_ffff)
}

/// A node port forwarded to a pod (a container port's `hostPort`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// The node address it listens on (`hostIP`, else the node's).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
}

/// The node's nftables table for `cidr` (a /16): masquerade what pods
/// send off the node, drop what arrives from outside for loopback,
/// forward host ports to their pods and enforce pods' NetworkPolicies
/// (`rules`, by pod address; [`isolation`] writes those chains). A
/// mapped connection from a loopback address (a client on the node) is
/// made to come from the gateway, since the pod's own loopback is not
/// the node's.
fn ruleset(table: &str, cidr: Ipv4Addr, node_ip: Ipv4Addr, rules: &Rules) -> String {
    let gateway = gateway(cidr);
    let mut forwards = String::new();
    for (pod, ports) in &rules.host_ports {
        for port in ports {
            forwards.push_str(&format!(
                "\t\tip daddr {} {} dport {} dnat ip to {pod}:{}\n",
                port.host_ip.unwrap_or(node_ip),
                port.protocol,
                port.host_port,
                port.container_port
            ));
        }
    }
    format!(
        "table ip {table}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain host_ports {{\n\
         {forwards}\
         \t}}\n\
         \tchain prerouting_nat {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tjump host_ports\n\
         \t}}\n\
         \tchain output_nat {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         \t\tjump host_ports\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{LINK_PREFIX}*\" ct status dnat ip saddr 127.0.0.0/8 snat ip to {gateway}\n\
         \t\tip saddr {cidr}/16 oifname != {{ \"lo\", \"{LINK_PREFIX}*\" }} masquerade\n\
         \t}}\n\
         \tchain prerouting {{\n\
         \t\ttype filter hook prerouting priority filter; policy accept;\n\
         \t\tiifname {{ \"lo\", \"{LINK_PREFIX}*\" }} accept\n\
         \t\tip daddr 127.0.0.0/8 ct direction original ct status & dnat == 0 drop\n\
         \t}}\n\
         {policies}\
         }}\n",
        policies = isolation::chains(&rules.isolation),
    )
}

fn table_name(cidr: Ipv4Addr) -> String {
    let [a, b, ..] = cidr.octets();
    format!("skiff_{a}_{b}")
}

fn nft(script: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Nft(format!("cannot run nft (Debian: apt-get install -y nftables): {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| Error::Nft(e.to_string()))?;
    }
    let output = child.wait_with_output().map_err(|e| Error::Nft(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Nft(String::from_utf8_lossy(&output.stderr).trim().to_string()))
    }
}

impl PodNetwork {
    /// Prepares the node for pods of `pod_cidr` (a /16) whose namespaces
    /// are pinned under `dir`: forwarding and `route_localnet` on, the
    /// node's nftables table loaded, and what an earlier agent left
    /// (namespaces, links) removed.
    pub async fn start(dir: PathBuf, pod_cidr: Ipv4Addr, node_ip: Ipv4Addr) -> Result<PodNetwork, Error> {
        std::fs::create_dir_all(&dir).map_err(io_error(format!("cannot create {}", dir.display())))?;
        let (connection, host, _) = rtnetlink::new_connection().map_err(io_error("cannot open a netlink socket"))?;
        tokio::spawn(connection);
        for key in ["net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet"] {
            netns::sysctl(key, "1").map_err(io_error("cannot prepare the node's network"))?;
        }
        let cidr = cidr_base(pod_cidr);
        let network = PodNetwork {
            host,
            runtime: tokio::runtime::Handle::current(),
            cidr,
            gateway: gateway(cidr),
            node_ip,
            dir,
            table: table_name(cidr),
            rules: tokio::sync::Mutex::default(),
            removed: Arc::default(),
        };
        network.load(&Rules::default()).await?;
        Ok(network)
    }

    /// The addresses of the pod namespaces an earlier agent left, to adopt
    /// ([`adopt`](Self::adopt)) or remove ([`remove_leftover`](Self::remove_leftover)).
    pub fn leftovers(&self) -> Vec<Ipv4Addr> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect()
    }

    /// Removes the namespace and link of a pod at `ip` an earlier agent ran.
    pub async fn remove_leftover(&self, ip: Ipv4Addr) {
        netns::remove(&self.dir.join(ip.to_string()));
        self.delete_link(&link_name(ip)).await;
        tracing::info!(%ip, "removed the network of a pod an earlier agent ran");
    }

    /// Takes over the namespace of a pod at `ip` that an earlier agent
    /// made and whose containers still run: its host ports and policies
    /// are loaded again. Fails when the namespace or its link is gone.
    pub async fn adopt(&self, ip: Ipv4Addr, host_ports: &[HostPort], isolation: Isolation) -> Result<Sandbox, Error> {
        let sandbox = Sandbox {
            netns: self.dir.join(ip.to_string()),
            ip,
            link: link_name(ip),
        };
        if !sandbox.netns.exists() {
            return Err(Error::Io {
                what: format!("cannot adopt the network of {ip}"),
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        }
        find(&self.host, &sandbox.link).await?;
        self.change(|rules| {
            if !host_ports.is_empty() {
                rules.host_ports.insert(ip, host_ports.to_vec());
            }
            rules.isolation.insert(ip, isolation);
        })
        .await?;
        Ok(sandbox)
    }

    /// Loads the node's table with `rules`, replacing what it held.
    async fn load(&self, rules: &Rules) -> Result<(), Error> {
        let script = ruleset(&self.table, self.cidr, self.node_ip, rules);
        let removed = self.removed.clone();
        tokio::task::spawn_blocking(move || {
            let removed = removed.lock().unwrap_or_else(|p| p.into_inner());
            if *removed { Ok(()) } else { nft(&script) }
        })
        .await
        .map_err(|e| Error::Nft(e.to_string()))?
    }

    /// Changes the table's rules with `change`, reloading it when the
    /// table would read differently (a pod with no host port and no
    /// policy adds nothing to it, so its coming and going costs no
    /// reload); if the load fails, the rules stay as they were.
    async fn change(&self, change: impl FnOnce(&mut Rules)) -> Result<(), Error> {
        let mut rules = self.rules.lock().await;
        let mut changed = rules.clone();
        change(&mut changed);
        let (now, then) = (
            ruleset(&self.table, self.cidr, self.node_ip, &rules),
            ruleset(&self.table, self.cidr, self.node_ip, &changed),
        );
        if now != then {
            self.load(&changed).await?;
        }
        *rules = changed;
        Ok(())
    }

    /// Replaces what the NetworkPolicies of attached pods allow (`pods`,
    /// by address; pods it leaves out keep theirs, addresses of pods not
    /// attached are ignored).
    pub async fn isolate(&self, pods: &BTreeMap<Ipv4Addr, Isolation>) -> Result<(), Error> {
        self.change(|rules| {
            for (ip, isolation) in &mut rules.isolation {
                if let Some(wanted) = pods.get(ip) {
                    isolation.clone_from(wanted);
                }
            }
        })
        .await
    }

    /// Removes the namespaces and links of every pod an earlier agent ran.
    pub async fn sweep(&self) {
        for ip in self.leftovers() {
            self.remove_leftover(ip).await;
        }
        // Files that name no address.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                netns::remove(&entry.path());
            }
        }
    }

    /// Makes the namespace of a pod with address `ip`: loopback, `eth0`
    /// with the address, routes and neighbours both ways, the node's
    /// `host_ports` forwarded to it and its NetworkPolicies (`isolation`)
    /// enforced, all before anything runs in it.
    pub async fn attach(&self, ip: Ipv4Addr, host_ports: &[HostPort], isolation: Isolation) -> Result<Sandbox, Error> {
        let path = self.dir.join(ip.to_string());
        let link = link_name(ip);
        // A namespace or link of this address that an agent left behind.
        netns::remove(&path);
        self.delete_link(&link).await;
        let runtime = self.runtime.clone();
        let (connection, pod, _) = netns::create(path.clone(), move || {
            // containerd's defaults for a pod: any user may bind low
            // ports and ping.
            netns::sysctl("net/ipv4/conf/all/route_localnet", "1")?;
            netns::sysctl("net/ipv4/ip_unprivileged_port_start", "0")?;
            netns::sysctl("net/ipv4/ping_group_range", "0 2147483647")?;
            let _entered = runtime.enter();
            rtnetlink::new_connection()
        })
        .await
        .map_err(io_error("cannot create the pod's network namespace"))?;
        tokio::spawn(connection);
        let sandbox = Sandbox { netns: path, ip, link };
        let wired = match self.wire(&sandbox, &pod).await {
            Ok(()) => {
                self.change(|rules| {
                    if !host_ports.is_empty() {
                        rules.host_ports.insert(ip, host_ports.to_vec());
                    }
                    rules.isolation.insert(ip, isolation);
                })
                .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = wired {
            self.detach(&sandbox).await;
            return Err(error);
        }
        Ok(sandbox)
    }

    async fn wire(&self, sandbox: &Sandbox, pod: &Handle) -> Result<(), Error> {
        let Sandbox {
            netns: pinned,
            ip,
            link,
        } = sandbox;
        let ip = *ip;
        // The peer is made inside the pod's namespace, as `eth0`: moving
        // a link between namespaces afterwards waits for the kernel's
        // network synchronisation, some 15 ms a pod on this machine kind.
        let file = std::fs::File::open(pinned).map_err(io_error(format!("cannot open {}", pinned.display())))?;
        let peer = LinkUnspec::new_with_name("eth0").setns_by_fd(file.as_raw_fd()).build();
        let pair = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(link.clone())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.host
            .link()
            .add(pair)
            .execute()
            .await
            .map_err(netlink_error(format!("cannot create the veth pair {link}")))?;
        drop(file);

        // The node's end.
        let host_link = find(&self.host, link).await?;
        let host_index = host_link.header.index;
        for key in ["route_localnet", "forwarding"] {
            netns::sysctl(&format!("net/ipv4/conf/{link}/{key}"), "1")
                .map_err(io_error("cannot prepare the pod's link"))?;
        }
        up(&self.host, host_index).await?;

        // The pod's end: loopback keeps only 127.0.0.1.
        let lo = find(pod, "lo").await?.header.index;
        up(pod, lo).await?;
        let wide: Vec<AddressMessage> = pod
            .address()
            .get()
            .set_link_index_filter(lo)
            .execute()
            .try_filter(|a| std::future::ready(a.header.family == rtnetlink::packet_route::AddressFamily::Inet))
            .try_collect()
            .await
            .map_err(netlink_error("cannot list the pod's loopback addresses"))?;
        for address in wide {
            pod.address()
                .del(address)
                .execute()
                .await
                .map_err(netlink_error("cannot narrow the pod's loopback"))?;
        }
        pod.address()
            .add(lo, IpAddr::V4(Ipv4Addr::LOCALHOST), 32)
            .execute()
            .await
            .map_err(netlink_error("cannot narrow the pod's loopback"))?;
        let eth0 = find(pod, "eth0").await?;
        let eth0_index = eth0.header.index;
        up(pod, eth0_index).await?;
        pod.address()
            .add(eth0_index, IpAddr::V4(ip), 32)
            .execute()
            .await
            .map_err(netlink_error("cannot give the pod its address"))?;

        // Each end knows the other's MAC: ARP does not answer for loopback.
        neighbour(pod, eth0_index, NEXT_HOP, &host_link, "the pod's").await?;
        neighbour(&self.host, host_index, ip, &eth0, "the node's").await?;
        for (destination, prefix) in [(Ipv4Addr::new(127, 0, 0, 0), 8), (Ipv4Addr::UNSPECIFIED, 0)] {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(destination, prefix)
                .gateway(NEXT_HOP)
                .output_interface(eth0_index)
                .pref_source(ip)
                .onlink()
                .build();
            pod.route()
                .add(route)
                .execute()
                .await
                .map_err(netlink_error(format!("cannot route {destination}/{prefix} in the pod")))?;
        }
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(ip, 32)
            .output_interface(host_index)
            .pref_source(self.gateway)
            .table_id(TABLE_LOCAL)
            .scope(RouteScope::Link)
            .build();
        self.host
            .route()
            .add(route)
            .execute()
            .await
            .map_err(netlink_error(format!("cannot route {ip} to its pod")))?;
        Ok(())
    }

    /// Removes a pod's network: its namespace ends with its last process,
    /// and the veth pair and the node's route to it go now.
    pub async fn detach(&self, sandbox: &Sandbox) {
        let removed = self
            .change(|rules| {
                rules.host_ports.remove(&sandbox.ip);
                rules.isolation.remove(&sandbox.ip);
            })
            .await;
        if let Err(error) = removed {
            tracing::warn!(%error, pod = %sandbox.ip, "cannot remove a pod's host ports and policies");
        }
        netns::remove(&sandbox.netns);
        self.delete_link(&sandbox.link).await;
    }

    async fn delete_link(&self, name: &str) {
        let Ok(link) = find(&self.host, name).await else {
            return;
        };
        if let Err(error) = self.host.link().del(link.header.index).execute().await {
            tracing::warn!(%error, link = name, "cannot remove a pod's link");
        }
    }

    /// Unpins every pod namespace and removes the node's nftables table
    /// (the agent is stopping and its containers are gone; the kernel
    /// removes the links with the namespaces).
    pub fn shut_down(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                netns::remove(&entry.path());
            }
        }
        let mut removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
        *removed = true;
        if let Err(error) = nft(&format!("delete table ip {}\n", self.table)) {
            tracing::warn!(%error, "cannot remove the node's nftables table");
        }
    }
}

async fn find(handle: &Handle, name: &str) -> Result<LinkMessage, Error> {
    handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .map_err(netlink_error(format!("cannot find link {name}")))?
        .ok_or_else(|| Error::Io {
            what: format!("link {name}"),
            source: io::Error::from(io::ErrorKind::NotFound),
        })
}

async fn up(handle: &Handle, index: u32) -> Result<(), Error> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(netlink_error("cannot bring a link up"))
}

/// A permanent neighbour entry on link `index`: `ip` is at `peer`'s MAC.
async fn neighbour(handle: &Handle, index: u32, ip: Ipv4Addr, peer: &LinkMessage, whose: &str) -> Result<(), Error> {
    handle
        .neighbours()
        .add(index, IpAddr::V4(ip))
        .link_layer_address(&mac(peer))
        .state(NeighbourState::Permanent)
        .execute()
        .await
        .map_err(netlink_error(format!("cannot add {whose} neighbour")))
}

fn mac(link: &LinkMessage) -> Vec<u8> {
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(mac) => Some(mac.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Connects to `localhost:<port>` inside the pod namespace pinned at
/// `netns` (port-forward reaches the pod's own loopback, as containerd's
/// does).
pub async fn connect_inside(
    netns: PathBuf,
    port: u16,
    timeout: std::time::Duration,
) -> io::Result<std::net::TcpStream> {
    netns::enter(netns, move || {
        std::net::TcpStream::connect_timeout(&std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port)), timeout)
    })
    .await
}

/// Where the pod namespaces of a node with data directory `data_dir` are pinned.
pub fn netns_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("netns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_address() {
        assert_eq!(link_name(Ipv4Addr::new(127, 70, 0, 5)), "skp460005");
        assert!(link_name(Ipv4Addr::new(127, 255, 255, 254)).len() <= 15);
        assert_eq!(table_name(cidr_base(Ipv4Addr::new(127, 70, 3, 9))), "skiff_127_70");
        assert_eq!(gateway(Ipv4Addr::new(127, 70, 3, 9)), Ipv4Addr::new(127, 70, 0, 1));
    }

    #[test]
    fn the_ruleset_replaces_its_own_table_only() {
        let pod = Ipv4Addr::new(127, 70, 0, 2);
        let rules = Rules {
            host_ports: BTreeMap::from([(
                pod,
                vec![HostPort {
                    protocol: "tcp",
                    host_ip: None,
                    host_port: 8080,
                    container_port: 80,
                }],
            )]),
            isolation: BTreeMap::from([(
                pod,
                Isolation {
                    ingress: skiff_netpolicy::Allowed::Only(vec![]),
                    egress: skiff_netpolicy::Allowed::Everything,
                },
            )]),
        };
        let rules = ruleset(
            "skiff_127_70",
            Ipv4Addr::new(127, 70, 0, 0),
            Ipv4Addr::LOCALHOST,
            &rules,
        );
        assert!(rules.starts_with("table ip skiff_127_70\ndelete table ip skiff_127_70\n"));
        // Not what stays on the node (Wasm pods' calls to local addresses
        // go out through lo) nor what goes to another pod.
        assert!(rules.contains("ip saddr 127.70.0.0/16 oifname != { \"lo\", \"skp*\" } masquerade"));
        assert!(rules.contains("ip daddr 127.0.0.0/8 ct direction original ct status & dnat == 0 drop"));
        assert!(rules.contains("ip daddr 127.0.0.1 tcp dport 8080 dnat ip to 127.70.0.2:80\n"));
        assert!(rules.contains("ct status dnat ip saddr 127.0.0.0/8 snat ip to 127.70.0.1\n"));
        assert!(rules.contains("\t\tip daddr vmap { 127.70.0.2 : jump ingress_127_70_0_2 }\n"));
        assert!(rules.ends_with("\t}\n}\n"));
    }
}
