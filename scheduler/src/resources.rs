//! What a pod requests and what a node offers, in the units the scheduler
//! compares: milli-cpu, bytes of memory, a count of pods.
//!
//! A pod's request follows Kubernetes:
//!
//! * a container that sets a limit but no request requests its limit (the
//!   Kubernetes API defaults this; skiff's API does not, so it happens here);
//! * app containers and sidecars (init containers with
//!   `restartPolicy: Always`) run together, so their requests add up; the
//!   other init containers run one at a time, each next to the sidecars
//!   started before it, so the pod needs the larger of the two;
//! * the RuntimeClass overhead in `spec.overhead` is added on top;
//! * pod-level `spec.resources.requests`, when set for a resource, replaces
//!   the per-container sum for it.
//!
//! For scoring, Kubernetes counts a container that requests no cpu as
//! 100m and one that requests no memory as 200 MiB
//! ([`pod_non_zero_requests`]), so that many request-less pods do not all
//! land on one node.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// cpu assumed for scoring a container that requests none.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for scoring a container that requests none.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler accounts for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// A number of pods: allowed, for a node's allocatable; running, for
    /// what is requested on a node; 1 for one pod.
    pub pods: i64,
}

impl Resources {
    pub fn new(milli_cpu: i64, memory: i64, pods: i64) -> Resources {
        Resources {
            milli_cpu,
            memory,
            pods,
        }
    }

    /// `self + other`, saturating.
    pub fn plus(self, other: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.saturating_add(other.milli_cpu),
            memory: self.memory.saturating_add(other.memory),
            pods: self.pods.saturating_add(other.pods),
        }
    }

    /// `self - other`, saturating.
    pub fn minus(self, other: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.saturating_sub(other.milli_cpu),
            memory: self.memory.saturating_sub(other.memory),
            pods: self.pods.saturating_sub(other.pods),
        }
    }

    fn max(self, other: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.max(other.milli_cpu),
            memory: self.memory.max(other.memory),
            pods: self.pods.max(other.pods),
        }
    }

    /// Reads `cpu`, `memory` and `pods` out of a resource list; other
    /// resources are not scheduled on yet.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        Resources {
            milli_cpu: list.get("cpu").map(milli).unwrap_or(0),
            memory: list.get("memory").map(units).unwrap_or(0),
            pods: list.get("pods").map(units).unwrap_or(0),
        }
    }
}

/// `quantity` in thousandths, 0 when it does not parse (the API rejects
/// such quantities, so this only guards against foreign data).
fn milli(quantity: &Quantity) -> i64 {
    skiff_quantity::Quantity::parse(&quantity.0)
        .map(|q| saturate(q.milli_value()))
        .unwrap_or(0)
}

/// `quantity` in whole units, rounded up; 0 when it does not parse.
fn units(quantity: &Quantity) -> i64 {
    skiff_quantity::Quantity::parse(&quantity.0)
        .map(|q| saturate(q.value()))
        .unwrap_or(0)
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// What a node offers pods: `status.allocatable`, or `status.capacity` for
/// a node that reports no allocatable.
pub fn node_allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    let list = status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()));
    list.map(Resources::from_list).unwrap_or_default()
}

/// One container's request for cpu and memory: `(milli_cpu, memory)`,
/// each `None` when the container neither requests nor limits it.
fn container_request(container: &Container) -> (Option<i64>, Option<i64>) {
    let resources = container.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let pick = |name: &str| {
        requests
            .and_then(|r| r.get(name))
            .or_else(|| limits.and_then(|l| l.get(name)))
    };
    (pick("cpu").map(milli), pick("memory").map(units))
}

/// The pod's requests with `fill` standing in for what a container leaves
/// unset: `(0, 0)` for the real requests, the scoring defaults otherwise.
fn requests_with(pod: &Pod, fill: (i64, i64)) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::new(0, 0, 1);
    };
    let of = |container: &Container| {
        let (cpu, memory) = container_request(container);
        Resources::new(cpu.unwrap_or(fill.0), memory.unwrap_or(fill.1), 0)
    };
    let mut running = Resources::default();
    for container in &spec.containers {
        running = running.plus(of(container));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for container in spec.init_containers.iter().flatten() {
        let request = of(container);
        if container.restart_policy.as_deref() == Some("Always") {
            running = running.plus(request);
            sidecars = sidecars.plus(request);
        } else {
            init_peak = init_peak.max(request.plus(sidecars));
        }
    }
    let mut total = running.max(init_peak);
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        if let Some(cpu) = pod_level.get("cpu") {
            total.milli_cpu = milli(cpu);
        }
        if let Some(memory) = pod_level.get("memory") {
            total.memory = units(memory);
        }
    }
    if let Some(overhead) = spec.overhead.as_ref() {
        let overhead = Resources::from_list(overhead);
        total = total.plus(Resources::new(overhead.milli_cpu, overhead.memory, 0));
    }
    total.pods = 1;
    total
}

/// What the pod needs a node to have free (and counts as one pod).
pub fn pod_requests(pod: &Pod) -> Resources {
    requests_with(pod, (0, 0))
}

/// The pod's requests for scoring, with Kubernetes' defaults for
/// containers that request no cpu or memory.
pub fn pod_non_zero_requests(pod: &Pod) -> Resources {
    requests_with(pod, (DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn requests_follow_kubernetes() {
        let cases = [
            (
                "no containers request anything",
                json!({"containers": [{"name": "a"}]}),
                (0, 0),
                (100, 200 << 20),
            ),
            (
                "app containers add up",
                json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                ]}),
                (1250, (64 << 20) + (1 << 30)),
                (1250, (64 << 20) + (1 << 30)),
            ),
            (
                "a limit without a request is the request",
                json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "1Mi"}}}]}),
                (500, 1 << 20),
                (500, 1 << 20),
            ),
            (
                "the largest init container wins over a smaller sum",
                json!({
                    "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "10Mi"}}}],
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "20Mi"}}}],
                }),
                (2000, 20 << 20),
                (2000, 20 << 20),
            ),
            (
                "sidecars run alongside the app and the later init containers",
                json!({
                    "initContainers": [
                        {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                        {"name": "i", "resources": {"requests": {"cpu": "2"}}},
                    ],
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
                }),
                (2100, 0),
                (2100, 2 * (200 << 20)),
            ),
            (
                "overhead is added",
                json!({
                    "overhead": {"cpu": "10m", "memory": "1Mi"},
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}],
                }),
                (1010, 2 << 20),
                (1010, 2 << 20),
            ),
            (
                "pod-level requests replace the container sum",
                json!({
                    "resources": {"requests": {"cpu": "3"}},
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}],
                }),
                (3000, 1 << 20),
                (3000, 1 << 20),
            ),
        ];
        for (name, spec, real, scoring) in cases {
            let pod = pod(spec);
            assert_eq!(pod_requests(&pod), Resources::new(real.0, real.1, 1), "{name}");
            assert_eq!(
                pod_non_zero_requests(&pod),
                Resources::new(scoring.0, scoring.1, 1),
                "{name} (scoring)"
            );
        }
    }

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
        }))
        .unwrap();
        assert_eq!(node_allocatable(&node), Resources::new(4000, 8 << 30, 110));
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "3500m"}},
        }))
        .unwrap();
        assert_eq!(node_allocatable(&node), Resources::new(3500, 0, 0));
    }
}
