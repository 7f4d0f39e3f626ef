//! What the node and its pods use: the kubelet's summary
//! (`GET /stats/summary` on the agent's endpoint, [`super::daemon`]),
//! which metrics-server and `kubectl top` read.
//!
//! The pod workers list each running container's [`Meter`] here
//! ([`StatsIndex`]); a summary reads them all at that moment. CPU is
//! cumulative (`usageCoreNanoSeconds`, with the `time` it was read), so a
//! reader takes the rate between two summaries, as metrics-server does.
//! Memory is the working set: for runc the cgroup's, for Wasm the linear
//! memory of the container's live instances (see [`skiff_wasm::memory`]).
//! The node's own figures come from `/proc/stat` and `/proc/meminfo`.
//!
//! One addition to the kubelet's shape: a pod whose Wasm HTTP service
//! runs here has `requests: {time, total, inFlight}`, the requests it has
//! answered (a counter, whose rate is its requests per second) and has in
//! flight, which the API server serves as custom metrics for the
//! autoscaler.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::runtime::{Meter, Requests, Usage};

/// One running container of a pod.
#[derive(Debug)]
struct Listed {
    started: Timestamp,
    meter: Arc<dyn Meter>,
}

#[derive(Debug)]
struct PodEntry {
    uid: String,
    started: Timestamp,
    containers: BTreeMap<String, Listed>,
}

/// The running containers of the node's pods, by namespace and name.
#[derive(Debug, Default)]
pub struct StatsIndex {
    pods: Mutex<BTreeMap<(String, String), PodEntry>>,
}

/// A pod as the index names it.
#[derive(Clone, Copy, Debug)]
pub struct PodId<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub started: Timestamp,
}

impl StatsIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), PodEntry>> {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A container of `pod` started; it is read through `meter` until it
    /// exits.
    pub fn started(&self, pod: PodId<'_>, container: &str, meter: Arc<dyn Meter>) {
        let mut pods = self.lock();
        let entry = pods
            .entry((pod.namespace.to_string(), pod.name.to_string()))
            .or_insert_with(|| PodEntry {
                uid: pod.uid.to_string(),
                started: pod.started,
                containers: BTreeMap::new(),
            });
        entry.containers.insert(
            container.to_string(),
            Listed {
                started: Timestamp::now(),
                meter,
            },
        );
    }

    /// A container exited.
    pub fn exited(&self, namespace: &str, pod: &str, container: &str) {
        let mut pods = self.lock();
        let key = (namespace.to_string(), pod.to_string());
        if let Some(entry) = pods.get_mut(&key) {
            entry.containers.remove(container);
            if entry.containers.is_empty() {
                pods.remove(&key);
            }
        }
    }

    /// The pod is gone from the node.
    pub fn remove(&self, namespace: &str, pod: &str) {
        self.lock().remove(&(namespace.to_string(), pod.to_string()));
    }

    /// Every running container's usage now (reading runc containers'
    /// cgroup files: call off the async threads).
    fn sample(&self) -> Vec<PodSample> {
        // The meters are read outside the lock.
        let listed: Vec<_> = self
            .lock()
            .iter()
            .map(|((namespace, name), entry)| {
                let containers: Vec<_> = entry
                    .containers
                    .iter()
                    .map(|(name, listed)| (name.clone(), listed.started, listed.meter.clone()))
                    .collect();
                (
                    namespace.clone(),
                    name.clone(),
                    entry.uid.clone(),
                    entry.started,
                    containers,
                )
            })
            .collect();
        listed
            .into_iter()
            .map(|(namespace, name, uid, started, containers)| PodSample {
                requests: containers.iter().find_map(|(_, _, meter)| meter.requests()),
                namespace,
                name,
                uid,
                started,
                containers: containers
                    .into_iter()
                    .filter_map(|(name, started, meter)| {
                        Some(ContainerSample {
                            name,
                            started,
                            usage: meter.usage()?,
                        })
                    })
                    .collect(),
            })
            .collect()
    }

    /// The summary of node `node_name`, read now.
    pub fn summary(&self, node_name: &str) -> Value {
        let node = NodeUsage::read();
        summary(node_name, &node, &self.sample(), Timestamp::now())
    }
}

/// One pod's containers, read at one moment.
#[derive(Clone, Debug)]
struct PodSample {
    namespace: String,
    name: String,
    uid: String,
    started: Timestamp,
    containers: Vec<ContainerSample>,
    requests: Option<Requests>,
}

#[derive(Clone, Debug)]
struct ContainerSample {
    name: String,
    started: Timestamp,
    usage: Usage,
}

/// The machine's use, from `/proc`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct NodeUsage {
    booted: Option<Timestamp>,
    cpu: Duration,
    working_set_bytes: u64,
}

impl NodeUsage {
    fn read() -> NodeUsage {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
        let booted = uptime
            .split_whitespace()
            .next()
            .and_then(|s| s.parse::<f64>().ok())
            .and_then(|s| {
                Timestamp::now()
                    .checked_sub(jiff::SignedDuration::from_secs_f64(s))
                    .ok()
            });
        NodeUsage {
            booted,
            cpu: busy_cpu(&stat).unwrap_or_default(),
            working_set_bytes: used_memory(&meminfo).unwrap_or_default(),
        }
    }
}

/// The CPU time all cores spent busy, from `/proc/stat`'s `cpu` line
/// (in USER_HZ ticks, 100 per second on Linux): everything but idle and
/// iowait.
fn busy_cpu(stat: &str) -> Option<Duration> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Some(Duration::from_millis(total.saturating_sub(idle) * 10))
}

/// Memory in use, from `/proc/meminfo`: total less available.
fn used_memory(meminfo: &str) -> Option<u64> {
    let field = |key: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(key))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some(field("MemTotal:")?.saturating_sub(field("MemAvailable:")?))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn usage_json(usage: Usage, at: Timestamp) -> (Value, Value) {
    (
        json!({"time": at.to_string(), "usageCoreNanoSeconds": nanos(usage.cpu)}),
        json!({"time": at.to_string(), "workingSetBytes": usage.working_set_bytes}),
    )
}

/// The kubelet's `stats/v1alpha1` Summary, with the fields its readers use.
fn summary(node_name: &str, node: &NodeUsage, pods: &[PodSample], at: Timestamp) -> Value {
    let (node_cpu, node_memory) = usage_json(
        Usage {
            cpu: node.cpu,
            working_set_bytes: node.working_set_bytes,
        },
        at,
    );
    let pods: Vec<Value> = pods
        .iter()
        .map(|pod| {
            let mut total = Usage::default();
            let containers: Vec<Value> = pod
                .containers
                .iter()
                .map(|c| {
                    total.cpu += c.usage.cpu;
                    total.working_set_bytes += c.usage.working_set_bytes;
                    let (cpu, memory) = usage_json(c.usage, at);
                    json!({"name": c.name, "startTime": c.started.to_string(), "cpu": cpu, "memory": memory})
                })
                .collect();
            let (cpu, memory) = usage_json(total, at);
            let mut pod_json = json!({
                "podRef": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
                "startTime": pod.started.to_string(),
                "containers": containers,
                "cpu": cpu,
                "memory": memory,
            });
            if let Some(requests) = pod.requests {
                pod_json["requests"] =
                    json!({"time": at.to_string(), "total": requests.total, "inFlight": requests.in_flight});
            }
            pod_json
        })
        .collect();
    let mut node_json = json!({"nodeName": node_name, "cpu": node_cpu, "memory": node_memory});
    if let Some(booted) = node.booted {
        node_json["startTime"] = json!(booted.to_string());
    }
    json!({"node": node_json, "pods": pods})
}

/// What the node and its running containers use, read at one moment:
/// the summary's figures, for the agent's `/metrics/resource`
/// ([`super::metrics`]).
#[derive(Clone, Debug, Default)]
pub struct Usages {
    pub node: Usage,
    pub pods: Vec<PodUsage>,
}

/// One pod's running containers.
#[derive(Clone, Debug)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerUsage>,
}

#[derive(Clone, Debug)]
pub struct ContainerUsage {
    pub name: String,
    pub started: Timestamp,
    pub usage: Usage,
}

impl StatsIndex {
    /// What the node and every running container use now (reading runc
    /// containers' cgroup files: call off the async threads).
    pub fn usages(&self) -> Usages {
        let node = NodeUsage::read();
        let pods = self
            .sample()
            .into_iter()
            .map(|pod| PodUsage {
                namespace: pod.namespace,
                name: pod.name,
                containers: pod
                    .containers
                    .into_iter()
                    .map(|c| ContainerUsage {
                        name: c.name,
                        started: c.started,
                        usage: c.usage,
                    })
                    .collect(),
            })
            .collect();
        Usages {
            node: Usage {
                cpu: node.cpu,
                working_set_bytes: node.working_set_bytes,
            },
            pods,
        }
    }

    /// The requests pod `namespace/pod`'s Wasm HTTP service has answered
    /// (`total`, a counter whose rate is its requests per second) and has
    /// in flight now; `None` when no Wasm HTTP container of that pod runs
    /// here. A pod's HTTP containers share one count (their runs too, as
    /// long as one is alive; it starts again at 0 after none was). Cheap:
    /// atomic reads under the index's lock, no meter is read.
    pub fn wasm_requests(&self, namespace: &str, pod: &str) -> Option<Requests> {
        let pods = self.lock();
        let entry = pods.get(&(namespace.to_string(), pod.to_string()))?;
        entry.containers.values().find_map(|listed| listed.meter.requests())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Usage);

    impl Meter for Fixed {
        fn usage(&self) -> Option<Usage> {
            Some(self.0)
        }
    }

    #[derive(Debug)]
    struct Gone;

    impl Meter for Gone {
        fn usage(&self) -> Option<Usage> {
            None
        }
    }

    fn usage(cpu_ms: u64, bytes: u64) -> Arc<dyn Meter> {
        Arc::new(Fixed(Usage {
            cpu: Duration::from_millis(cpu_ms),
            working_set_bytes: bytes,
        }))
    }

    #[test]
    fn a_pod_sums_its_running_containers() {
        let index = StatsIndex::default();
        let pod = PodId {
            namespace: "default",
            name: "web",
            uid: "u1",
            started: Timestamp::UNIX_EPOCH,
        };
        index.started(pod, "app", usage(1500, 4096));
        index.started(pod, "sidecar", usage(500, 1024));
        index.started(pod, "going", Arc::new(Gone));
        let summary = index.summary("node-a");
        assert_eq!(summary["node"]["nodeName"], "node-a");
        let pods = summary["pods"].as_array().unwrap();
        assert_eq!(pods.len(), 1);
        let web = &pods[0];
        assert_eq!(
            web["podRef"],
            json!({"name": "web", "namespace": "default", "uid": "u1"})
        );
        assert_eq!(web["cpu"]["usageCoreNanoSeconds"], 2_000_000_000u64);
        assert_eq!(web["memory"]["workingSetBytes"], 5120);
        let names: Vec<_> = web["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(names, [json!("app"), json!("sidecar")]);

        index.exited("default", "web", "app");
        index.exited("default", "web", "sidecar");
        assert_eq!(
            index.summary("node-a")["pods"][0]["containers"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        index.exited("default", "web", "going");
        assert!(index.summary("node-a")["pods"].as_array().unwrap().is_empty());
    }

    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 50 2 25 500 10 0 1 1 0 0\n";
        // user+nice+system+irq+softirq+steal = 161 ticks of 10 ms.
        assert_eq!(busy_cpu(stat), Some(Duration::from_millis(1610)));
        let meminfo = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n";
        assert_eq!(used_memory(meminfo), Some(600 * 1024));
    }
}
