//! The node's cluster DNS: `<service>.<namespace>.svc.cluster.local`.
//!
//! Every node's proxy answers on the ClusterIP of the Service
//! `kube-system/kube-dns` (UDP port 53), which the API server creates with
//! the tenth address of the service range, as kubeadm clusters have it;
//! several nodes on one machine share the address (`SO_REUSEPORT`).
//! A name under `svc.cluster.local` gets the Service's ClusterIP, or for a
//! headless Service the addresses of its ready endpoints; other names
//! under `cluster.local` get NXDOMAIN; any other name is relayed to the
//! first nameserver of the node's own `/etc/resolv.conf`. Only `A`
//! records are served (a cluster name has no `AAAA`: an empty answer);
//! no `SRV`, no pod names, and no DNS over TCP.
//!
//! An address that cannot be bound (another process holds UDP port 53
//! there without `SO_REUSEPORT`) is tried again with back-off
//! ([`crate::retry`]) until it binds or the Service's address changes;
//! the first failure is logged and recorded as a Warning Event,
//! `FailedToListen`, on the `kube-dns` Service.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, ObjectReference, Service};
use skiff_client::events::{Kind, Recorder};
use tokio::net::UdpSocket;

use crate::retry::{self, Backoff, FAILED_TO_LISTEN};

/// The cluster's domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The Service whose ClusterIP the resolver answers on.
pub const SERVICE: (&str, &str) = ("kube-system", "kube-dns");
/// Seconds a client may keep an answer.
const TTL: u32 = 5;
/// How long a relayed query may take.
const RELAY_TIMEOUT: Duration = Duration::from_secs(2);

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const NXDOMAIN: u8 = 3;
const SERVFAIL: u8 = 2;
const FORMERR: u8 = 1;
const NOTIMP: u8 = 4;

/// The names the resolver knows: `svc.ns.svc.cluster.local` → addresses.
pub type Records = HashMap<String, Vec<Ipv4Addr>>;

/// The records for these Services and their Endpoints.
pub fn records(services: &[Arc<Service>], endpoints: &[Arc<Endpoints>]) -> Records {
    let ready: HashMap<(String, String), Vec<Ipv4Addr>> = endpoints
        .iter()
        .map(|e| {
            let ips = e
                .subsets
                .iter()
                .flatten()
                .flat_map(|s| s.addresses.iter().flatten())
                .filter_map(|a| a.ip.parse().ok())
                .collect();
            (crate::table::key_of(&e.metadata), ips)
        })
        .collect();
    let mut records = Records::new();
    for service in services {
        let (namespace, name) = crate::table::key_of(&service.metadata);
        let spec = service.spec.as_ref();
        let addresses = match spec.and_then(|s| s.cluster_ip.as_deref()) {
            Some("None") => {
                let mut ips = ready
                    .get(&(namespace.clone(), name.clone()))
                    .cloned()
                    .unwrap_or_default();
                ips.sort();
                ips.dedup();
                ips
            }
            Some(ip) => ip.parse().map(|ip| vec![ip]).unwrap_or_default(),
            None => Vec::new(),
        };
        records.insert(format!("{name}.{namespace}.svc.{CLUSTER_DOMAIN}"), addresses);
    }
    records
}

/// What a name means to a pod, as its resolver would find it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A cluster name: its fully qualified form and its addresses (none
    /// for a headless Service without ready endpoints).
    Cluster { name: String, addresses: Vec<Ipv4Addr> },
    /// A name under the cluster domain that no Service has.
    NotFound,
    /// Not a cluster name: the node's resolver answers it.
    External,
}

/// Resolves `name` for a pod in `namespace` the way the pod's
/// `/etc/resolv.conf` (search `<ns>.svc.cluster.local svc.cluster.local
/// cluster.local`, `ndots:5`) has its resolver try it: a name with fewer
/// than five dots and no trailing dot is tried in each search domain
/// first, then as it stands. Pure.
pub fn lookup(records: &Records, name: &str, namespace: &str) -> Lookup {
    let absolute = name.ends_with('.');
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let in_cluster = |n: &str| n == CLUSTER_DOMAIN || n.ends_with(&format!(".{CLUSTER_DOMAIN}"));
    let found = |n: String| {
        records.get(&n).map(|addresses| Lookup::Cluster {
            name: n.clone(),
            addresses: addresses.clone(),
        })
    };
    if !absolute && name.matches('.').count() < 5 {
        let searched = [
            format!("{name}.{namespace}.svc.{CLUSTER_DOMAIN}"),
            format!("{name}.svc.{CLUSTER_DOMAIN}"),
            format!("{name}.{CLUSTER_DOMAIN}"),
        ];
        if let Some(hit) = searched.into_iter().find_map(found) {
            return hit;
        }
    }
    if in_cluster(&name) {
        return found(name).unwrap_or(Lookup::NotFound);
    }
    Lookup::External
}

/// The `kube-dns` Service, if it exists.
pub(crate) fn service(services: &[Arc<Service>]) -> Option<&Service> {
    services
        .iter()
        .find(|s| s.metadata.namespace.as_deref() == Some(SERVICE.0) && s.metadata.name.as_deref() == Some(SERVICE.1))
        .map(Arc::as_ref)
}

/// The resolver's address, from the `kube-dns` Service.
pub fn address(services: &[Arc<Service>]) -> Option<SocketAddr> {
    let service = service(services)?;
    let ip: IpAddr = service.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok()?;
    Some(SocketAddr::new(ip, 53))
}

/// A parsed question: the name (lower case, no trailing dot), its type,
/// and where the question section ends.
#[derive(Debug, PartialEq, Eq)]
struct Question {
    name: String,
    kind: u16,
    class: u16,
    end: usize,
}

fn question(message: &[u8]) -> Option<Question> {
    if message.len() < 12 || u16::from_be_bytes([message[4], message[5]]) != 1 {
        return None;
    }
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let length = usize::from(*message.get(at)?);
        at += 1;
        if length == 0 {
            break;
        }
        if length > 63 {
            return None;
        }
        let label = message.get(at..at + length)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += length;
    }
    let kind = u16::from_be_bytes([*message.get(at)?, *message.get(at + 1)?]);
    let class = u16::from_be_bytes([*message.get(at + 2)?, *message.get(at + 3)?]);
    Some(Question {
        name: labels.join("."),
        kind,
        class,
        end: at + 4,
    })
}

/// A reply to `query` (whose question ends at `end`) with `rcode` and
/// these A records.
fn reply(query: &[u8], end: usize, rcode: u8, addresses: &[Ipv4Addr]) -> Vec<u8> {
    let mut out = Vec::with_capacity(end + addresses.len() * 16);
    out.extend_from_slice(&query[..2]);
    // QR, opcode from the query, AA, RD from the query; RA clear.
    out.push(0x80 | (query[2] & 0x78) | 0x04 | (query[2] & 0x01));
    out.push(rcode & 0x0f);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::try_from(addresses.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..end]);
    for address in addresses {
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&address.octets());
    }
    out
}

/// What to do with a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Reply(Vec<u8>),
    /// Not a cluster name: relay it.
    Relay,
    Drop,
}

/// Answers `query` from `records`. Pure.
pub fn answer(query: &[u8], records: &Records) -> Outcome {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Outcome::Drop;
    }
    let Some(question) = question(query) else {
        let mut header = query[..12].to_vec();
        header[2] = 0x80 | (query[2] & 0x01);
        header[3] = FORMERR;
        header[4..12].fill(0);
        return Outcome::Reply(header);
    };
    if (query[2] >> 3) & 0x0f != 0 {
        return Outcome::Reply(reply(query, question.end, NOTIMP, &[]));
    }
    let name = question.name.trim_end_matches('.');
    if name != CLUSTER_DOMAIN && !name.ends_with(&format!(".{CLUSTER_DOMAIN}")) {
        return Outcome::Relay;
    }
    let Some(addresses) = records.get(name) else {
        return Outcome::Reply(reply(query, question.end, NXDOMAIN, &[]));
    };
    let addresses: &[Ipv4Addr] = match (question.kind, question.class) {
        (TYPE_A, CLASS_IN) => addresses,
        _ => &[],
    };
    Outcome::Reply(reply(query, question.end, 0, addresses))
}

/// The first nameserver of the node's resolv.conf that is not `ours`.
fn upstream(ours: SocketAddr) -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .find(|addr| *addr != ours)
}

async fn relay(query: Vec<u8>, upstream: Option<SocketAddr>) -> Option<Vec<u8>> {
    let upstream = upstream?;
    let socket = UdpSocket::bind(if upstream.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })
        .await
        .ok()?;
    socket.send_to(&query, upstream).await.ok()?;
    let mut buffer = vec![0u8; 4096];
    let (read, _) = tokio::time::timeout(RELAY_TIMEOUT, socket.recv_from(&mut buffer))
        .await
        .ok()?
        .ok()?;
    buffer.truncate(read);
    Some(buffer)
}

fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Serves DNS on `addr` from `records` until aborted, binding it with
/// back-off; a failure to bind is an Event on `service`, the `kube-dns`
/// Service, from `recorder`.
pub(crate) async fn serve(
    addr: SocketAddr,
    records: Arc<RwLock<Arc<Records>>>,
    recorder: Recorder,
    service: ObjectReference,
) {
    let report = |error: &std::io::Error| {
        recorder.record(
            &service,
            Kind::Warning,
            FAILED_TO_LISTEN,
            "Listen",
            format!("cannot listen on {addr} (UDP) for cluster DNS: {error}; retrying with back-off"),
        );
    };
    let socket = Arc::new(retry::until_bound(addr, "cluster DNS", Backoff::default(), bind, report).await);
    let upstream = upstream(addr);
    let mut buffer = vec![0u8; 4096];
    loop {
        let Ok((read, client)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let query = buffer[..read].to_vec();
        let current = records.read().unwrap_or_else(|p| p.into_inner()).clone();
        match answer(&query, &current) {
            Outcome::Reply(bytes) => {
                let _ = socket.send_to(&bytes, client).await;
            }
            Outcome::Relay => {
                let socket = socket.clone();
                tokio::spawn(async move {
                    let bytes = match relay(query.clone(), upstream).await {
                        Some(bytes) => bytes,
                        None => match question(&query) {
                            Some(q) => reply(&query, q.end, SERVFAIL, &[]),
                            None => return,
                        },
                    };
                    let _ = socket.send_to(&bytes, client).await;
                });
            }
            Outcome::Drop => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const TYPE_AAAA: u16 = 28;

    fn query(name: &str, kind: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(u8::try_from(label.len()).unwrap());
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&kind.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    fn parse<T: k8s_openapi::serde::de::DeserializeOwned>(value: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn services_answer_by_name() {
        let services = [
            parse::<Service>(
                json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "127.96.0.7"}}),
            ),
            parse::<Service>(json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "None"}})),
        ];
        let endpoints = [parse::<Endpoints>(
            json!({"metadata": {"name": "db", "namespace": "shop"},
            "subsets": [{"addresses": [{"ip": "127.1.0.9"}, {"ip": "127.1.0.4"}], "notReadyAddresses": [{"ip": "127.1.0.5"}]}]}),
        )];
        let records = records(&services, &endpoints);

        let Outcome::Reply(bytes) = answer(&query("WEB.shop.svc.cluster.local", TYPE_A), &records) else {
            panic!()
        };
        assert_eq!(&bytes[..2], &[0x12, 0x34], "the query's id");
        assert_eq!(bytes[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([bytes[6], bytes[7]]), 1);
        assert_eq!(&bytes[bytes.len() - 4..], &[127, 96, 0, 7]);

        let Outcome::Reply(bytes) = answer(&query("db.shop.svc.cluster.local", TYPE_A), &records) else {
            panic!()
        };
        assert_eq!(
            u16::from_be_bytes([bytes[6], bytes[7]]),
            2,
            "the ready endpoints of a headless Service"
        );

        let Outcome::Reply(bytes) = answer(&query("web.shop.svc.cluster.local", TYPE_AAAA), &records) else {
            panic!()
        };
        assert_eq!((bytes[3] & 0x0f, bytes[7]), (0, 0), "no AAAA, and no error");

        let Outcome::Reply(bytes) = answer(&query("nope.shop.svc.cluster.local", TYPE_A), &records) else {
            panic!()
        };
        assert_eq!(bytes[3] & 0x0f, NXDOMAIN);

        assert_eq!(answer(&query("example.org", TYPE_A), &records), Outcome::Relay);
        let Outcome::Reply(bytes) = answer(&[0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'x'], &records) else {
            panic!()
        };
        assert_eq!(bytes[3] & 0x0f, FORMERR, "a truncated question");
        assert_eq!(answer(&[1, 2, 3], &records), Outcome::Drop);
    }

    #[test]
    fn pods_find_services_through_their_search_domains() {
        let mut records = Records::new();
        records.insert("web.shop.svc.cluster.local".into(), vec![Ipv4Addr::new(127, 96, 0, 7)]);
        records.insert("db.data.svc.cluster.local".into(), vec![Ipv4Addr::new(127, 96, 0, 9)]);
        let web = Lookup::Cluster {
            name: "web.shop.svc.cluster.local".into(),
            addresses: vec![Ipv4Addr::new(127, 96, 0, 7)],
        };
        assert_eq!(lookup(&records, "web", "shop"), web);
        assert_eq!(lookup(&records, "WEB.shop", "other"), web);
        assert_eq!(lookup(&records, "web.shop.svc", "other"), web);
        assert_eq!(lookup(&records, "web.shop.svc.cluster.local", "x"), web);
        assert_eq!(lookup(&records, "web.shop.svc.cluster.local.", "x"), web);
        // Another namespace's Service by its short name is not found.
        assert_eq!(lookup(&records, "db", "shop"), Lookup::External);
        assert_eq!(
            lookup(&records, "nope.shop.svc.cluster.local", "shop"),
            Lookup::NotFound
        );
        assert_eq!(lookup(&records, "example.com", "shop"), Lookup::External);
        assert_eq!(lookup(&records, "web.", "shop"), Lookup::External);
    }
}
