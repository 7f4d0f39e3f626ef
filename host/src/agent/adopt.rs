//! A restarted agent adopts the runc containers an earlier agent left
//! running, rather than killing and starting them again, as a kubelet
//! restarted beside containerd does.
//!
//! This works because each container has a shim ([`crate::oci::shim`])
//! that outlives its agent and records the exit code, and because a pod
//! namespace stays pinned on disk. At start the agent lists what was left
//! ([`Leftovers`]: container ids and pod namespaces); as the first list of
//! the node's pods arrives, each pod [claims](Leftovers::claim) its own,
//! by the container ids and the pod IP its status reports; once that list
//! is complete, whatever no pod claimed is removed ([`sweep`]).
//!
//! A pod's worker then takes over its claimed containers: it reopens their
//! log FIFOs (appending to the same log), watches them again and keeps
//! their status (start time, restart count, readiness); its init
//! containers, which already succeeded, do not run again. A container
//! that exited while no agent ran is reported with the code its shim
//! recorded, and restarts as its pod's policy says.
//!
//! Not adopted: containers with a terminal or a stdin (those ended with
//! the agent that held them, as with a kubelet without its runtime), Wasm
//! pods (they run inside the agent), and anything when the agent runs
//! without a shim.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::Shared;

/// What an earlier agent left on this node and no pod has claimed yet.
#[derive(Debug, Default)]
pub(super) struct Leftovers {
    /// runc container ids.
    pub containers: BTreeSet<String>,
    /// Addresses of pinned pod namespaces.
    pub sandboxes: BTreeSet<Ipv4Addr>,
    /// Set once the rest was removed: nothing more is claimed.
    swept: bool,
}

/// What one pod takes over.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Adoption {
    /// The pod's namespace, by its address (none on the host network).
    pub sandbox: Option<Ipv4Addr>,
    /// App containers by name.
    pub containers: BTreeMap<String, Adopted>,
}

/// One container taken over.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Adopted {
    /// The runc id.
    pub id: String,
    /// Its run, which names its log and FIFOs.
    pub run: u32,
    /// Its status as the earlier agent reported it.
    pub status: ContainerStatus,
}

impl Leftovers {
    pub fn new(containers: impl IntoIterator<Item = String>, sandboxes: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        Leftovers {
            containers: containers.into_iter().collect(),
            sandboxes: sandboxes.into_iter().collect(),
            swept: false,
        }
    }

    /// Takes what `pod` (not finished) left running, by its status: its
    /// running app containers whose ids are left, and its namespace. A pod
    /// whose namespace is gone adopts nothing (its containers' network
    /// went with it), nor does one none of whose containers is left.
    pub fn claim(&mut self, pod: &Pod) -> Option<Adoption> {
        if self.swept {
            return None;
        }
        let spec = pod.spec.as_ref()?;
        let status = pod.status.as_ref()?;
        let sandbox = if spec.host_network.unwrap_or(false) {
            None
        } else {
            let ip = status.pod_ip.as_deref()?.parse::<IpAddr>().ok()?;
            match ip {
                IpAddr::V4(ip) if self.sandboxes.contains(&ip) => Some(ip),
                _ => return None,
            }
        };
        let mut containers = BTreeMap::new();
        for container_status in status.container_statuses.iter().flatten() {
            let running = container_status.state.as_ref().is_some_and(|s| s.running.is_some());
            let Some(id) = container_status
                .container_id
                .as_deref()
                .and_then(|id| id.strip_prefix("runc://"))
            else {
                continue;
            };
            let interactive = spec
                .containers
                .iter()
                .find(|c| c.name == container_status.name)
                .is_none_or(|c| c.tty.unwrap_or(false) || c.stdin.unwrap_or(false));
            let run = id.rsplit_once('-').and_then(|(_, run)| run.parse::<u32>().ok());
            if let (true, false, Some(run)) = (running, interactive, run)
                && self.containers.contains(id)
            {
                containers.insert(
                    container_status.name.clone(),
                    Adopted {
                        id: id.to_string(),
                        run,
                        status: container_status.clone(),
                    },
                );
            }
        }
        if containers.is_empty() {
            return None;
        }
        for adopted in containers.values() {
            self.containers.remove(&adopted.id);
        }
        if let Some(ip) = sandbox {
            self.sandboxes.remove(&ip);
        }
        Some(Adoption { sandbox, containers })
    }

    /// What no pod claimed; nothing is claimed after this.
    fn take_rest(&mut self) -> (BTreeSet<String>, BTreeSet<Ipv4Addr>) {
        self.swept = true;
        (
            std::mem::take(&mut self.containers),
            std::mem::take(&mut self.sandboxes),
        )
    }
}

/// Removes what no pod claimed: containers (killed) and namespaces.
pub(super) async fn sweep(shared: Arc<Shared>) {
    let (containers, sandboxes) = shared.leftovers.lock().unwrap_or_else(|p| p.into_inner()).take_rest();
    if let Some(runc) = shared.runc.clone()
        && !containers.is_empty()
    {
        let count = containers.len();
        let _ = tokio::task::spawn_blocking(move || {
            for id in &containers {
                if let Err(error) = runc.delete(id, true) {
                    tracing::warn!(%error, container = %id, "cannot remove a container left by an earlier agent");
                }
            }
        })
        .await;
        tracing::info!(
            count,
            "removed the containers left by an earlier agent that no pod adopted"
        );
    }
    if let Ok(network) = &shared.pod_network {
        for ip in sandboxes {
            network.remove_leftover(ip).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(host_network: bool, ip: &str, statuses: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"hostNetwork": host_network, "containers": [
                {"name": "web", "image": "i"},
                {"name": "shell", "image": "i", "stdin": true, "tty": true},
                {"name": "side", "image": "i"}]},
            "status": {"podIP": ip, "containerStatuses": statuses},
        }))
        .unwrap()
    }

    fn running(name: &str, id: &str) -> serde_json::Value {
        json!({"name": name, "image": "i", "imageID": "", "ready": true, "restartCount": 2,
            "containerID": format!("runc://{id}"),
            "state": {"running": {"startedAt": "2026-12-07T05:00:00Z"}}})
    }

    #[test]
    fn a_pod_claims_its_running_containers_and_namespace() {
        let ip: Ipv4Addr = "127.9.0.2".parse().unwrap();
        let mut left = Leftovers::new(
            ["u-web-2", "u-shell-0", "u-side-0", "other-0"].map(String::from),
            [ip, "127.9.0.3".parse().unwrap()],
        );
        let statuses = json!([
            running("web", "u-web-2"),
            running("shell", "u-shell-0"),
            {"name": "side", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "containerID": "runc://u-side-0", "state": {"terminated": {"exitCode": 0}}},
        ]);
        let adoption = left.claim(&pod(false, "127.9.0.2", statuses.clone())).unwrap();
        assert_eq!(adoption.sandbox, Some(ip));
        assert_eq!(adoption.containers.keys().collect::<Vec<_>>(), ["web"]);
        assert_eq!(adoption.containers["web"].run, 2);
        // Claimed once; the rest is swept.
        assert_eq!(left.claim(&pod(false, "127.9.0.2", statuses)), None);
        let (containers, sandboxes) = left.take_rest();
        assert_eq!(
            containers.into_iter().collect::<Vec<_>>(),
            ["other-0", "u-shell-0", "u-side-0"]
        );
        assert_eq!(sandboxes.len(), 1);
        assert_eq!(
            left.claim(&pod(true, "127.0.0.1", json!([running("web", "u-web-2")]))),
            None
        );
    }

    #[test]
    fn without_its_namespace_a_pod_adopts_nothing() {
        let mut left = Leftovers::new(["u-web-0".to_string()], []);
        assert_eq!(
            left.claim(&pod(false, "127.9.0.2", json!([running("web", "u-web-0")]))),
            None
        );
        assert!(left.containers.contains("u-web-0"));
        // On the host network no namespace is needed.
        let adoption = left.claim(&pod(true, "127.0.0.1", json!([running("web", "u-web-0")])));
        assert_eq!(adoption.unwrap().sandbox, None);
    }
}
