//! The Node object and its heartbeat: registration with capacity,
//! addresses and runtime labels, a Lease renewed in `kube-node-lease`, and
//! the Ready condition kept fresh.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::AgentConfig;

/// How often the Lease is renewed by default ([`AgentConfig::heartbeat`]);
/// the node controller's grace period is several of these.
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
const LEASE_SECONDS: i64 = 40;
/// How often the Ready condition's heartbeat is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(30);
const FIELD_MANAGER: &str = "skiff-agent";

fn now() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}

fn micro_now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Total memory from /proc/meminfo, in bytes.
fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The Node as this agent describes it.
pub fn node_object(config: &AgentConfig) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": config.node_name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": go_arch(),
        "skiff.dev/runtime-wasm": "true",
    });
    if config.runc_usable {
        labels["skiff.dev/runtime-oci"] = json!("true");
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": config.node_name,
            "labels": labels,
            "annotations": {skiff_proxy::TUNNEL_PORT_ANNOTATION: config.tunnel_port.to_string()},
        },
        "spec": {},
    })
}

/// The Node's status: capacity, addresses, daemon endpoint, Ready.
pub fn node_status(config: &AgentConfig) -> Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let memory = format!("{}Ki", memory_bytes() / 1024);
    let capacity = json!({"cpu": cpus.to_string(), "memory": memory, "pods": config.max_pods.to_string()});
    let now = now();
    json!({
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": config.node_ip},
                {"type": "Hostname", "address": config.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": config.daemon_port}},
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "skiff agent is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }],
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": kernel_version(),
                "osImage": "skiff",
                "containerRuntimeVersion": format!("wasmtime://{}", config.wasmtime_version),
                "kubeletVersion": format!("v1.33.0-skiff-{}", env!("CARGO_PKG_VERSION")),
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": go_arch(),
            },
        }
    })
}

/// Registers the Node (or takes over an existing one of the same name)
/// and reports its status.
pub async fn register(client: &kube::Client, config: &AgentConfig) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let object: Node = serde_json::from_value(node_object(config)).map_err(kube::Error::SerdeError)?;
    match nodes.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let object = node_object(config);
            let metadata = json!({"metadata": {
                "labels": object["metadata"]["labels"],
                "annotations": object["metadata"]["annotations"],
            }});
            nodes
                .patch(&config.node_name, &PatchParams::default(), &Patch::Merge(metadata))
                .await?;
        }
        Err(other) => return Err(other),
    }
    nodes
        .patch_status(
            &config.node_name,
            &PatchParams::default(),
            &Patch::Merge(node_status(config)),
        )
        .await?;
    Ok(())
}

/// Renews the node's Lease and refreshes its status until the task is
/// dropped.
pub async fn heartbeat(client: kube::Client, config: AgentConfig) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client);
    let mut last_status = std::time::Instant::now();
    loop {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": config.node_name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": config.node_name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": micro_now(),
            },
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        if let Err(error) = leases.patch(&config.node_name, &params, &Patch::Apply(lease)).await {
            tracing::warn!(%error, "cannot renew the node lease");
        }
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = std::time::Instant::now();
            let status = node_status(&config);
            if let Err(error) = nodes
                .patch_status(&config.node_name, &PatchParams::default(), &Patch::Merge(status))
                .await
            {
                tracing::warn!(%error, "cannot refresh the node status");
            }
        }
        tokio::time::sleep(config.heartbeat).await;
    }
}
