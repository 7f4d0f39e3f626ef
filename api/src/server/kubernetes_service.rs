//! The `default/kubernetes` Service, through which pods reach the API, as
//! kube-apiserver keeps it: a ClusterIP at the first address of the
//! Service range, port 443 (`https`), no selector, and Endpoints and
//! EndpointSlices that list the API servers alive now.
//!
//! Which servers are alive is kept in Lease objects, one per server
//! (kube-apiserver's lease endpoint reconciler keeps the same facts in
//! etcd keys with a TTL; Lease objects make them readable through the
//! API): `kube-system/apiserver-<identity>`, labelled
//! `apiserver.kubernetes.io/identity: kube-apiserver` as kube-apiserver's
//! identity Leases are, naming the address the server answers at in the
//! annotation [`ADDRESS_ANNOTATION`]. Each server renews its own every
//! [`RENEW_EVERY`] for [`LEASE_DURATION`] ([`ApiServer::keep_registered`])
//! and then rewrites the Endpoints and EndpointSlices from the Leases
//! that are current ([`alive`], pure). So a server that died leaves the
//! lists within about 40 s, and a cluster restored from a backup forgets
//! the old cluster's servers. Servers on different ports (several on one
//! machine) get one Endpoints subset, and one EndpointSlice, per port.
//! Clients follow the lists: a node agent's balancer
//! (`skiff_client::balancer`) and `skiff kubeconfig`.
//!
//! The first Service address is kept for this Service as Kubernetes keeps
//! it. A data directory from before, where another Service already holds
//! that address, gets the Endpoints but no Service, and a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::ApiServer;
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::options::{DeleteOptions, ListOptions, Part, WriteOptions};
use crate::selector::LabelSelector;

const NAMESPACE: &str = "default";
const NAME: &str = "kubernetes";
const PORT_NAME: &str = "https";
/// Where the servers' Leases live, and the label they carry.
const LEASE_NAMESPACE: &str = "kube-system";
pub const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
const IDENTITY_VALUE: &str = "kube-apiserver";
/// The annotation of a server's Lease naming where it answers
/// (`ip:port`).
pub const ADDRESS_ANNOTATION: &str = "skiff.dev/apiserver-address";
/// How often a server renews its Lease, and for how long a renewal holds.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
pub const LEASE_DURATION: Duration = Duration::from_secs(30);

/// The addresses of the servers whose Leases are current at `now`, by
/// port.
pub fn alive(leases: &[Value], now: Timestamp) -> BTreeMap<u16, BTreeSet<IpAddr>> {
    let mut alive: BTreeMap<u16, BTreeSet<IpAddr>> = BTreeMap::new();
    for lease in leases {
        let renewed = lease["spec"]["renewTime"]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok());
        let duration = lease["spec"]["leaseDurationSeconds"].as_i64().unwrap_or(0);
        let address = lease["metadata"]["annotations"][ADDRESS_ANNOTATION]
            .as_str()
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let (Some(renewed), Some(address)) = (renewed, address) else {
            continue;
        };
        let Ok(until) = renewed.checked_add(jiff::SignedDuration::from_secs(duration)) else {
            continue;
        };
        if until > now {
            alive.entry(address.port()).or_default().insert(address.ip());
        }
    }
    alive
}

/// The Endpoints' subsets for `alive`: one per port.
fn subsets(alive: &BTreeMap<u16, BTreeSet<IpAddr>>) -> Value {
    alive
        .iter()
        .map(|(port, ips)| {
            json!({
                "addresses": ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect::<Vec<_>>(),
                "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
            })
        })
        .collect()
}

/// The EndpointSlices for `alive`, by name: `kubernetes` for the first
/// port, `kubernetes-<port>` for any other.
fn slices(alive: &BTreeMap<u16, BTreeSet<IpAddr>>) -> BTreeMap<String, Value> {
    alive
        .iter()
        .enumerate()
        .map(|(i, (port, ips))| {
            let name = if i == 0 { NAME.to_string() } else { format!("{NAME}-{port}") };
            let family = if ips.iter().all(IpAddr::is_ipv4) { "IPv4" } else { "IPv6" };
            let slice = json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": name, "labels": {"kubernetes.io/service-name": NAME}},
                "addressType": family,
                "endpoints": ips.iter().map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}})).collect::<Vec<_>>(),
                "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
            });
            (name, slice)
        })
        .collect()
}

/// The selector `label=value`.
fn equals(label: &str, value: &str) -> crate::Result<LabelSelector> {
    LabelSelector::parse(&format!("{label}={value}")).map_err(|error| {
        tracing::error!(%error, label, "a built-in selector does not parse");
        ApiError::Internal
    })
}

fn system() -> WriteOptions {
    WriteOptions {
        user: UserInfo::apiserver(),
        ..Default::default()
    }
}

impl ApiServer {
    /// Creates the Service if it is missing, with `address`'s port as its
    /// target, and registers `address` as where this server answers (its
    /// Lease, the Endpoints).
    pub async fn register_endpoint(&self, identity: &str, address: SocketAddr) -> crate::Result<()> {
        if let (Some(resource), Some(ip)) = (
            self.catalog.lookup("", "v1", "services"),
            self.registry.service_ranges().cluster_ips.nth(1),
        ) {
            let service = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": NAME, "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {
                    "clusterIP": ip.to_string(),
                    "ports": [{"name": PORT_NAME, "port": 443, "protocol": "TCP", "targetPort": address.port()}],
                },
            });
            match self
                .registry
                .create(&resource, Some(NAMESPACE), service, &system())
                .await
            {
                Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
                Err(ApiError::Invalid { causes, .. }) => {
                    tracing::warn!(?causes, %ip, "the kubernetes Service cannot have the range's first address");
                }
                Err(error) => return Err(error),
            }
        }
        self.renew_lease(identity, address).await?;
        self.reconcile_endpoints().await
    }

    /// Renews this server's Lease and reconciles the Endpoints every
    /// [`RENEW_EVERY`], for as long as the returned future runs (the
    /// Service was made by [`register_endpoint`](Self::register_endpoint)).
    pub async fn keep_registered(&self, identity: String, address: SocketAddr) {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let renewed = match self.renew_lease(&identity, address).await {
                Ok(()) => self.reconcile_endpoints().await,
                Err(error) => Err(error),
            };
            if let Err(error) = renewed {
                tracing::warn!(%error, "cannot renew this API server's Lease; trying again");
            }
        }
    }

    async fn renew_lease(&self, identity: &str, address: SocketAddr) -> crate::Result<()> {
        let Some(resource) = self.catalog.lookup("coordination.k8s.io", "v1", "leases") else {
            return Ok(());
        };
        let name = format!("apiserver-{identity}");
        let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "labels": {IDENTITY_LABEL: IDENTITY_VALUE},
                "annotations": {ADDRESS_ANNOTATION: address.to_string()},
            },
            "spec": {
                "holderIdentity": identity,
                "leaseDurationSeconds": LEASE_DURATION.as_secs(),
                "renewTime": now,
            },
        });
        match self
            .registry
            .create(&resource, Some(LEASE_NAMESPACE), lease.clone(), &system())
            .await
        {
            Ok(_) => Ok(()),
            Err(ApiError::AlreadyExists(_)) => self
                .registry
                .update(
                    &resource,
                    Some(LEASE_NAMESPACE),
                    &name,
                    Part::Main,
                    &system(),
                    |current| {
                        let mut next = lease.clone();
                        next["metadata"] = current["metadata"].clone();
                        crate::meta::metadata_mut(&mut next).remove("resourceVersion");
                        next["metadata"]["labels"][IDENTITY_LABEL] = IDENTITY_VALUE.into();
                        next["metadata"]["annotations"][ADDRESS_ANNOTATION] = address.to_string().into();
                        Ok(next)
                    },
                )
                .await
                .map(|_| ()),
            Err(error) => Err(error),
        }
    }

    /// Rewrites the Endpoints and EndpointSlices of `default/kubernetes`
    /// to the servers alive now.
    async fn reconcile_endpoints(&self) -> crate::Result<()> {
        let Some(leases) = self.catalog.lookup("coordination.k8s.io", "v1", "leases") else {
            return Ok(());
        };
        let options = ListOptions {
            label_selector: Some(equals(IDENTITY_LABEL, IDENTITY_VALUE)?),
            ..ListOptions::default()
        };
        let current = self.registry.list(&leases, Some(LEASE_NAMESPACE), &options).await?;
        let alive = alive(&current.items, Timestamp::now());
        if alive.is_empty() {
            return Ok(());
        }
        self.put(
            ("", "v1", "endpoints"),
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": NAME}, "subsets": subsets(&alive)}),
            "subsets",
        )
        .await?;
        let Some(resource) = self.catalog.lookup("discovery.k8s.io", "v1", "endpointslices") else {
            return Ok(());
        };
        let wanted = slices(&alive);
        let options = ListOptions {
            label_selector: Some(equals("kubernetes.io/service-name", NAME)?),
            ..ListOptions::default()
        };
        let present = self.registry.list(&resource, Some(NAMESPACE), &options).await?;
        for slice in wanted.values() {
            self.put(("discovery.k8s.io", "v1", "endpointslices"), slice.clone(), "endpoints")
                .await?;
        }
        for stale in present.items.iter().filter_map(|s| crate::meta::name(s)) {
            if !wanted.contains_key(stale) {
                match self
                    .registry
                    .delete(
                        &resource,
                        Some(NAMESPACE),
                        stale,
                        &DeleteOptions {
                            user: UserInfo::apiserver(),
                            ..DeleteOptions::default()
                        },
                    )
                    .await
                {
                    Ok(_) | Err(ApiError::NotFound(_)) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }

    /// Creates `object` in `default`, or sets its fields other than
    /// metadata to `object`'s (`ports` and `addressType` with `field`).
    async fn put(&self, (group, version, plural): (&str, &str, &str), object: Value, field: &str) -> crate::Result<()> {
        let Some(resource) = self.catalog.lookup(group, version, plural) else {
            return Ok(());
        };
        let name = crate::meta::name(&object).unwrap_or(NAME).to_string();
        match self
            .registry
            .create(&resource, Some(NAMESPACE), object.clone(), &system())
            .await
        {
            Ok(_) => return Ok(()),
            Err(ApiError::AlreadyExists(_)) => {}
            Err(error) => return Err(error),
        }
        self.registry
            .update(&resource, Some(NAMESPACE), &name, Part::Main, &system(), |current| {
                let mut next = current.clone();
                // Not a precondition: a racing server's write is retried.
                crate::meta::metadata_mut(&mut next).remove("resourceVersion");
                for key in [field, "ports", "addressType"] {
                    match object.get(key) {
                        Some(value) => next[key] = value.clone(),
                        None => {
                            if let Some(map) = next.as_object_mut() {
                                map.remove(key);
                            }
                        }
                    }
                }
                Ok(next)
            })
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lease(address: &str, renewed: &str, seconds: i64) -> Value {
        json!({
            "metadata": {"annotations": {ADDRESS_ANNOTATION: address}},
            "spec": {"renewTime": renewed, "leaseDurationSeconds": seconds},
        })
    }

    #[test]
    fn current_leases_give_the_addresses_by_port() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let leases = [
            lease("10.0.0.1:6443", "2026-01-01T00:00:50.000000Z", 30),
            lease("10.0.0.2:6443", "2026-01-01T00:00:45.000000Z", 30),
            // Expired, unparsable, or naming no address: left out.
            lease("10.0.0.3:6443", "2026-01-01T00:00:10.000000Z", 30),
            lease("10.0.0.4:6443", "yesterday", 30),
            lease("nowhere", "2026-01-01T00:00:50.000000Z", 30),
            lease("127.0.0.1:7000", "2026-01-01T00:00:59.000000Z", 30),
        ];
        let alive = alive(&leases, now);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            alive,
            BTreeMap::from([
                (6443, BTreeSet::from([ip("10.0.0.1"), ip("10.0.0.2")])),
                (7000, BTreeSet::from([ip("127.0.0.1")])),
            ])
        );
        let subsets = subsets(&alive);
        assert_eq!(subsets[0]["addresses"][1]["ip"], "10.0.0.2");
        assert_eq!(subsets[1]["ports"][0]["port"], 7000);
        let slices = slices(&alive);
        assert_eq!(slices.keys().collect::<Vec<_>>(), ["kubernetes", "kubernetes-7000"]);
        assert_eq!(slices["kubernetes"]["endpoints"][0]["addresses"][0], "10.0.0.1");
    }
}
