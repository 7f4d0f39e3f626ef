//! NetworkPolicy for this node's container pods, kept current in the
//! kernel: what each pod in a network namespace of its own may send and
//! receive, from the policies the node's proxy follows, loaded into the
//! node's nftables table ([`crate::podnet`] writes and loads the rules).
//!
//! A pod's rules are computed when its namespace is made and loaded with
//! it, before any container starts; after that they are computed again
//! whenever the policies, the namespaces' labels or any pod change (the
//! proxy's [`Policies`] is rebuilt then), since a pod joining or leaving
//! changes who a selector's peers are. A pod's labels are read from the
//! proxy's view once it has the pod, so relabelling a pod takes effect.
//!
//! Wasm pods need none of this: their connections pass through the agent,
//! which asks the same [`Policies`] about each.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use skiff_netpolicy::Direction;
use skiff_proxy::Proxy;
use skiff_proxy::policy::{PodEntry, Policies};
use tokio::sync::Notify;

use crate::podnet::{Isolation, PodNetwork};

/// How long a failed load waits before it is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// The container pods with namespaces of their own, and the task that
/// keeps their rules current.
#[derive(Debug, Default)]
pub(super) struct Isolator {
    /// Each pod as it was when its namespace was made, by address: its
    /// labels until the proxy knows it.
    pods: Mutex<BTreeMap<Ipv4Addr, Arc<PodEntry>>>,
    /// Wakes the task when a pod is added.
    added: Notify,
}

/// What `pod`'s policies allow, both ways.
fn isolation(policies: &Policies, pod: &PodEntry) -> Isolation {
    if policies.is_empty() {
        return Isolation::OPEN;
    }
    // The proxy's view of the pod, with its labels as they are now.
    let pod = policies.pod(&pod.namespace, &pod.name).unwrap_or(pod);
    Isolation {
        ingress: policies.allowed(pod, Direction::Ingress),
        egress: policies.allowed(pod, Direction::Egress),
    }
}

impl Isolator {
    /// Registers `pod`, about to get a namespace at `ip`, and says what
    /// its policies allow now.
    pub(super) fn add(&self, proxy: &Proxy, ip: Ipv4Addr, pod: &Pod) -> Isolation {
        let entry = Arc::new(PodEntry::of(pod));
        let isolation = isolation(&proxy.policies(), &entry);
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).insert(ip, entry);
        // Policies may have changed since: the task looks again.
        self.added.notify_one();
        isolation
    }

    pub(super) fn remove(&self, ip: Ipv4Addr) {
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).remove(&ip);
    }

    /// Loads every registered pod's rules again after each change of the
    /// policies, or when a pod was added; runs as long as the agent.
    pub(super) async fn follow(self: Arc<Self>, proxy: Arc<Proxy>, network: Arc<PodNetwork>) {
        let mut policies = proxy.follow_policies();
        loop {
            let current = policies.borrow_and_update().clone();
            let pods = self.pods.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let wanted: BTreeMap<Ipv4Addr, Isolation> =
                pods.iter().map(|(ip, pod)| (*ip, isolation(&current, pod))).collect();
            // A failed load is tried again a little later.
            let loaded = network.isolate(&wanted).await;
            if let Err(error) = &loaded {
                tracing::warn!(%error, "cannot load the NetworkPolicy rules of container pods");
            }
            let retry = async {
                match loaded {
                    Ok(()) => std::future::pending().await,
                    Err(_) => tokio::time::sleep(RETRY).await,
                }
            };
            tokio::select! {
                changed = policies.changed() => if changed.is_err() { return },
                () = self.added.notified() => {}
                () = retry => {}
            }
        }
    }
}
