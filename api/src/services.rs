//! Service addresses: ClusterIPs and NodePorts.
//!
//! A Service of type ClusterIP, NodePort or LoadBalancer gets a virtual
//! address from the service range unless it is headless (`clusterIP:
//! None`); NodePort and LoadBalancer Services also get a node port for each
//! of their ports. The default range, `127.96.0.0/16`, is on loopback: every
//! node's proxy can bind its ClusterIPs without iptables or interface
//! changes (see `docs/ARCHITECTURE.md`, Service networking).
//!
//! Each address in use is held by a reservation key written in the same
//! store transaction as the Service, so two API servers never hand out the
//! same one, and the write that deletes a Service frees what it held:
//!
//! * `/registry/skiff.dev/serviceips/<8 hex digits>`
//! * `/registry/skiff.dev/nodeports/<5 decimal digits>`
//!
//! The fixed-width keys sort as the numbers do, so the first free one after
//! a random start is one range read away. (Kubernetes keeps the same facts
//! in allocator bitmaps, or IPAddress objects since 1.33.)
//!
//! As in Kubernetes, an update that leaves `clusterIP` or a port's
//! `nodePort` empty keeps the one allocated; changing an allocated
//! `clusterIP` is refused; a Service that stops being a NodePort gives its
//! node ports back.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde_json::{Value, json};
use skiff_store::{Compare, KeyRange, RangeRequest, ReadConsistency, Store, TxnOp};

use crate::error::{ApiError, Cause, Result};
use crate::meta;

const IP_PREFIX: &str = "/registry/skiff.dev/serviceips/";
const PORT_PREFIX: &str = "/registry/skiff.dev/nodeports/";
/// Reservation keys read per range request while looking for a free one.
const PAGE: usize = 256;

/// An IPv4 network, `a.b.c.d/n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    base: u32,
    prefix: u8,
}

impl Ipv4Cidr {
    pub fn new(address: Ipv4Addr, prefix: u8) -> Option<Ipv4Cidr> {
        if !(8..=30).contains(&prefix) {
            return None;
        }
        let mask = u32::MAX << (32 - prefix);
        Some(Ipv4Cidr {
            base: u32::from(address) & mask,
            prefix,
        })
    }

    fn size(self) -> u32 {
        1 << (32 - self.prefix)
    }

    /// The `n`th address of the network, if it is inside.
    pub fn nth(self, n: u32) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(self.base + n))
    }

    pub fn contains(self, address: Ipv4Addr) -> bool {
        u32::from(address).wrapping_sub(self.base) < self.size()
    }

    /// The addresses Services may get: all but the network's first and
    /// last.
    fn usable(self) -> (u32, u32) {
        (self.base + 1, self.base + self.size() - 2)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Ipv4Cidr, String> {
        let bad = || format!("{text:?} is not an IPv4 CIDR such as 127.96.0.0/16 (prefix 8 to 30)");
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Ipv4Cidr::new(address, prefix).ok_or_else(bad)
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// Where Services get their addresses from (kube-apiserver's
/// `--service-cluster-ip-range` and `--service-node-port-range`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceRanges {
    pub cluster_ips: Ipv4Cidr,
    pub node_ports: (u16, u16),
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ips: Ipv4Cidr {
                base: u32::from(Ipv4Addr::new(127, 96, 0, 0)),
                prefix: 16,
            },
            node_ports: (30000, 32767),
        }
    }
}

/// One address a Service holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Held {
    Ip(u32),
    Port(u16),
}

impl Held {
    fn key(self) -> String {
        match self {
            Held::Ip(ip) => format!("{IP_PREFIX}{ip:08x}"),
            Held::Port(port) => format!("{PORT_PREFIX}{port:05}"),
        }
    }
}

/// The reservation keys a Service write takes and frees, to be added to
/// its transaction.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    take: Vec<String>,
    free: Vec<String>,
    owner: String,
}

impl Reservations {
    pub(crate) fn is_empty(&self) -> bool {
        self.take.is_empty() && self.free.is_empty()
    }

    /// Every key taken must still be free when the write commits.
    pub(crate) fn compares(&self) -> impl Iterator<Item = Compare> + '_ {
        self.take.iter().map(|key| Compare::absent(key.clone()))
    }

    pub(crate) fn ops(&self) -> impl Iterator<Item = TxnOp> + '_ {
        let take = self
            .take
            .iter()
            .map(|key| TxnOp::put(key.clone(), self.owner.clone().into_bytes()));
        take.chain(self.free.iter().map(|key| TxnOp::delete(key.clone())))
    }
}

fn is_service(group: &str, kind: &str) -> bool {
    group.is_empty() && kind == "Service"
}

fn spec_str<'a>(service: &'a Value, field: &str) -> Option<&'a str> {
    service.get("spec")?.get(field)?.as_str()
}

fn service_type(service: &Value) -> &str {
    spec_str(service, "type").unwrap_or("ClusterIP")
}

fn wants_cluster_ip(service: &Value) -> bool {
    service_type(service) != "ExternalName" && spec_str(service, "clusterIP") != Some("None")
}

fn wants_node_ports(service: &Value) -> bool {
    matches!(service_type(service), "NodePort" | "LoadBalancer")
}

fn ports(service: &Value) -> Vec<&Value> {
    service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| ports.iter().collect())
        .unwrap_or_default()
}

/// What `service` holds as it is written.
fn held(service: &Value) -> BTreeSet<Held> {
    let mut held = BTreeSet::new();
    if wants_cluster_ip(service)
        && let Some(ip) = spec_str(service, "clusterIP").and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    {
        held.insert(Held::Ip(ip.into()));
    }
    if wants_node_ports(service) {
        for port in ports(service) {
            if let Some(n) = port
                .get("nodePort")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
            {
                held.insert(Held::Port(n));
            }
        }
    }
    held
}

/// Whether `old` and `new` are the same port across an update: by name
/// when both have one, else by number and protocol.
fn same_port(old: &Value, new: &Value) -> bool {
    let name = |p: &Value| {
        p.get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
    };
    match (name(old), name(new)) {
        (Some(a), Some(b)) => a == b,
        (None, None) => old.get("port") == new.get("port") && old.get("protocol") == new.get("protocol"),
        _ => false,
    }
}

/// Carries what `old` was given into `new` where `new` leaves it empty,
/// and drops what `new`'s type no longer has. Pure.
fn keep_allocated(old: &Value, new: &mut Value) {
    if wants_cluster_ip(old)
        && wants_cluster_ip(new)
        && spec_str(new, "clusterIP").is_none_or(str::is_empty)
        && let Some(ip) = spec_str(old, "clusterIP").map(String::from)
    {
        new["spec"]["clusterIP"] = json!(ip);
    }
    if wants_node_ports(old) && wants_node_ports(new) {
        let old_ports = ports(old);
        for port in new
            .pointer_mut("/spec/ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if port.get("nodePort").and_then(Value::as_u64).is_some_and(|n| n != 0) {
                continue;
            }
            if let Some(node_port) = old_ports
                .iter()
                .find(|o| same_port(o, port))
                .and_then(|o| o.get("nodePort").cloned())
            {
                port["nodePort"] = node_port;
            }
        }
    }
    if !wants_node_ports(new) {
        for port in new
            .pointer_mut("/spec/ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(port) = port.as_object_mut() {
                port.remove("nodePort");
            }
        }
    }
}

/// Checks the addresses `service` asks for by value against the ranges
/// and against `old`. Pure.
fn check(ranges: &ServiceRanges, old: Option<&Value>, service: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let ip = spec_str(service, "clusterIP").filter(|ip| !ip.is_empty());
    if service_type(service) == "ExternalName" {
        if let Some(ip) = ip.filter(|_| old.is_none_or(|o| service_type(o) == "ExternalName")) {
            causes.push(Cause::invalid(
                "spec.clusterIP",
                ip,
                "may not be set for ExternalName services",
            ));
        }
    } else if let Some(ip) = ip.filter(|ip| *ip != "None") {
        match ip.parse::<Ipv4Addr>() {
            Err(_) => causes.push(Cause::invalid(
                "spec.clusterIP",
                ip,
                "must be a valid IPv4 address or None",
            )),
            Ok(address) if !ranges.cluster_ips.contains(address) => causes.push(Cause::invalid(
                "spec.clusterIPs",
                ip,
                format!(
                    "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    ranges.cluster_ips
                ),
            )),
            Ok(_) => {}
        }
    }
    if let Some(old) = old
        && wants_cluster_ip(old)
        && service_type(service) != "ExternalName"
        && spec_str(old, "clusterIP") != spec_str(service, "clusterIP")
    {
        causes.push(Cause::invalid(
            "spec.clusterIPs[0]",
            spec_str(service, "clusterIP").unwrap_or_default(),
            "may not change once set",
        ));
    }
    let (low, high) = ranges.node_ports;
    let mut seen = BTreeSet::new();
    for (i, port) in ports(service).into_iter().enumerate() {
        let Some(node_port) = port.get("nodePort").and_then(Value::as_i64).filter(|n| *n != 0) else {
            continue;
        };
        let field = format!("spec.ports[{i}].nodePort");
        if !wants_node_ports(service) {
            causes.push(Cause::forbidden(
                field,
                format!("may not be used when `type` is '{}'", service_type(service)),
            ));
        } else if !(i64::from(low)..=i64::from(high)).contains(&node_port) {
            causes.push(Cause::invalid(
                field,
                node_port,
                format!("provided port is not in the valid range. The range of valid ports is {low}-{high}"),
            ));
        } else if !seen.insert(node_port) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: {node_port}"),
                field,
            });
        }
    }
    causes
}

fn invalid(service: &Value, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("", "Service", meta::name(service).unwrap_or_default(), causes)
}

/// Whether a reservation key is taken.
async fn taken(store: &Store, held: Held) -> Result<bool> {
    Ok(store.get(held.key()).await?.is_some())
}

/// A random starting point in `low..=high`.
fn random_in(low: u32, high: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(low);
    let spread = u64::from(high - low) + 1;
    low + u32::try_from(hasher.finish() % spread).unwrap_or(0)
}

/// The first value in `from..=to` whose key is free and not in `skip`.
async fn first_free(
    store: &Store,
    make: fn(u32) -> Held,
    from: u32,
    to: u32,
    skip: &BTreeSet<Held>,
) -> Result<Option<u32>> {
    let mut end = make(to).key().into_bytes();
    end.push(0);
    let mut next = from;
    while next <= to {
        let request = RangeRequest::new(KeyRange::between(make(next).key().into_bytes(), end.clone())).limit(PAGE);
        let page = store.range(request, ReadConsistency::Linearizable).await?;
        // The page holds the taken keys from `next` on, in numeric order.
        let mut used = page.kvs.iter().map(|kv| kv.key.as_slice()).peekable();
        while next <= to {
            let candidate = make(next);
            let key = candidate.key();
            if used.peek() == Some(&key.as_bytes()) {
                used.next();
            } else if used.peek().is_none() && page.more {
                break;
            } else if !skip.contains(&candidate) {
                return Ok(Some(next));
            }
            next += 1;
        }
    }
    Ok(None)
}

/// A free value in `low..=high`, searched from a random start and
/// wrapping around.
async fn allocate(
    store: &Store,
    make: fn(u32) -> Held,
    (low, high): (u32, u32),
    skip: &BTreeSet<Held>,
) -> Result<Option<Held>> {
    let start = random_in(low, high);
    if let Some(found) = first_free(store, make, start, high, skip).await? {
        return Ok(Some(make(found)));
    }
    if start > low
        && let Some(found) = first_free(store, make, low, start - 1, skip).await?
    {
        return Ok(Some(make(found)));
    }
    Ok(None)
}

/// Fills in and checks the addresses of a Service being written (`new`;
/// `None` when it is being deleted), and says which reservations the write
/// takes and frees. Other kinds pass through untouched.
pub(crate) async fn reserve(
    ranges: &ServiceRanges,
    store: &Store,
    (group, kind): (&str, &str),
    old: Option<&Value>,
    new: Option<&mut Value>,
) -> Result<Reservations> {
    if !is_service(group, kind) {
        return Ok(Reservations::default());
    }
    let Some(new) = new else {
        return Ok(Reservations {
            free: old.map(held).unwrap_or_default().into_iter().map(Held::key).collect(),
            ..Reservations::default()
        });
    };
    if let Some(old) = old {
        keep_allocated(old, new);
    }
    let causes = check(ranges, old, new);
    if !causes.is_empty() {
        return Err(invalid(new, causes));
    }
    let before = old.map(held).unwrap_or_default();
    // What the caller asked for by value must be free.
    let mut causes = Vec::new();
    for wanted in held(new).difference(&before) {
        if taken(store, *wanted).await? {
            let (field, what, value) = match wanted {
                Held::Ip(ip) => ("spec.clusterIPs", "IP", Ipv4Addr::from(*ip).to_string()),
                Held::Port(port) => ("spec.ports.nodePort", "port", port.to_string()),
            };
            causes.push(Cause::invalid(
                field,
                &value,
                format!("provided {what} is already allocated"),
            ));
        }
    }
    if !causes.is_empty() {
        return Err(invalid(new, causes));
    }
    // Then the rest is chosen.
    let mut chosen = held(new);
    if wants_cluster_ip(new) && spec_str(new, "clusterIP").is_none_or(str::is_empty) {
        let Some(Held::Ip(ip)) = allocate(store, Held::Ip, ranges.cluster_ips.usable(), &chosen).await? else {
            return Err(ApiError::Exhausted(format!(
                "failed to allocate a serviceIP: range {} is full",
                ranges.cluster_ips
            )));
        };
        chosen.insert(Held::Ip(ip));
        new["spec"]["clusterIP"] = json!(Ipv4Addr::from(ip).to_string());
    }
    if wants_node_ports(new) {
        let (low, high) = ranges.node_ports;
        let count = ports(new).len();
        for i in 0..count {
            if new["spec"]["ports"][i]
                .get("nodePort")
                .and_then(Value::as_u64)
                .is_some_and(|n| n != 0)
            {
                continue;
            }
            let Some(Held::Port(port)) = allocate(
                store,
                |n| Held::Port(u16::try_from(n).unwrap_or(u16::MAX)),
                (u32::from(low), u32::from(high)),
                &chosen,
            )
            .await?
            else {
                return Err(ApiError::Exhausted(format!(
                    "failed to allocate a nodePort: range {low}-{high} is full"
                )));
            };
            chosen.insert(Held::Port(port));
            new["spec"]["ports"][i]["nodePort"] = json!(port);
        }
    }
    set_families(new);
    let after = held(new);
    Ok(Reservations {
        take: after.difference(&before).copied().map(Held::key).collect(),
        free: before.difference(&after).copied().map(Held::key).collect(),
        owner: format!(
            "{}/{}",
            meta::namespace(new).unwrap_or_default(),
            meta::name(new).unwrap_or_default()
        ),
    })
}

/// `clusterIPs`, `ipFamilies` and `ipFamilyPolicy` as Kubernetes fills
/// them for a single-stack IPv4 cluster.
fn set_families(service: &mut Value) {
    let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    match spec.get("clusterIP").and_then(Value::as_str).map(String::from) {
        Some(ip) if !ip.is_empty() && spec.get("type").and_then(Value::as_str) != Some("ExternalName") => {
            spec.insert("clusterIPs".into(), json!([ip]));
            spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
            spec.entry("ipFamilyPolicy").or_insert_with(|| json!("SingleStack"));
            spec.entry("internalTrafficPolicy").or_insert_with(|| json!("Cluster"));
        }
        _ => {
            spec.remove("clusterIPs");
        }
    }
    if matches!(
        spec.get("type").and_then(Value::as_str),
        Some("NodePort" | "LoadBalancer")
    ) {
        spec.entry("externalTrafficPolicy").or_insert_with(|| json!("Cluster"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges() -> ServiceRanges {
        ServiceRanges::default()
    }

    #[test]
    fn cidrs_parse_and_bound_their_addresses() {
        let cidr: Ipv4Cidr = "127.96.0.0/16".parse().unwrap();
        assert!(cidr.contains(Ipv4Addr::new(127, 96, 255, 1)));
        assert!(!cidr.contains(Ipv4Addr::new(127, 97, 0, 1)));
        assert_eq!(cidr.usable(), (0x7f60_0001, 0x7f60_fffe));
        assert_eq!("10.1.2.3/24".parse::<Ipv4Cidr>().unwrap().to_string(), "10.1.2.0/24");
        for bad in ["127.96.0.0", "127.96.0.0/33", "x/16", "127.96.0.0/4"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn reservation_keys_sort_as_numbers() {
        assert!(Held::Ip(0x7f60_0009).key() < Held::Ip(0x7f60_000a).key());
        assert!(Held::Port(9999).key() < Held::Port(30000).key());
        assert_eq!(Held::Port(30080).key(), "/registry/skiff.dev/nodeports/30080");
    }

    #[test]
    fn updates_keep_what_was_allocated_and_drop_node_ports_with_the_type() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "127.96.0.7",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "tls", "port": 443, "nodePort": 30443}]}});
        let mut new = json!({"spec": {"type": "NodePort",
            "ports": [{"name": "http", "port": 8080}, {"name": "tls", "port": 443}]}});
        keep_allocated(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "127.96.0.7");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080, "kept by name");
        assert_eq!(new["spec"]["ports"][1]["nodePort"], 30443);
        assert_eq!(held(&new).len(), 3);

        let mut back =
            json!({"spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}});
        keep_allocated(&old, &mut back);
        assert!(back["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(held(&back), BTreeSet::from([Held::Ip(0x7f60_0007)]));
    }

    #[test]
    fn addresses_asked_for_are_checked() {
        let messages = |old: Option<&Value>, service: Value| -> Vec<String> {
            check(&ranges(), old, &service)
                .into_iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect()
        };
        assert!(messages(None, json!({"spec": {"clusterIP": "127.96.1.1"}})).is_empty());
        assert!(messages(None, json!({"spec": {"clusterIP": "None"}})).is_empty());
        let outside = messages(None, json!({"spec": {"clusterIP": "10.0.0.1"}}));
        assert!(
            outside[0].contains("not in the valid range. The range of valid IPs is 127.96.0.0/16"),
            "{outside:?}"
        );
        assert!(messages(None, json!({"spec": {"clusterIP": "nope"}}))[0].contains("valid IPv4"));
        let changed = messages(
            Some(&json!({"spec": {"clusterIP": "127.96.0.1"}})),
            json!({"spec": {"clusterIP": "127.96.0.2"}}),
        );
        assert!(changed[0].contains("may not change"), "{changed:?}");
        let ports = messages(
            None,
            json!({"spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": 80}, {"port": 2, "nodePort": 30001}, {"port": 3, "nodePort": 30001}]}}),
        );
        assert_eq!(ports.len(), 2, "{ports:?}");
        assert!(ports[0].contains("range of valid ports is 30000-32767"));
        assert!(ports[1].contains("Duplicate value: 30001"));
        let wrong_type = messages(None, json!({"spec": {"ports": [{"port": 1, "nodePort": 30001}]}}));
        assert!(
            wrong_type[0].contains("may not be used when `type` is 'ClusterIP'"),
            "{wrong_type:?}"
        );
    }

    #[test]
    fn families_follow_the_cluster_ip() {
        let mut service = json!({"spec": {"type": "NodePort", "clusterIP": "127.96.0.3"}});
        set_families(&mut service);
        assert_eq!(service["spec"]["clusterIPs"], json!(["127.96.0.3"]));
        assert_eq!(service["spec"]["externalTrafficPolicy"], "Cluster");
        let mut headless = json!({"spec": {"clusterIP": "None", "clusterIPs": ["x"]}});
        set_families(&mut headless);
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    }
}
