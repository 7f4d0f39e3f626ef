//! What nodes and pods use, as the Metrics API (`metrics.k8s.io`) reports
//! it: the arithmetic between two of an agent's summaries, with no I/O.
//!
//! An agent's summary (`GET /stats/summary`, the kubelet's Summary API
//! shape) gives cumulative CPU time (`usageCoreNanoSeconds`, with the
//! `time` it was read) and the memory working set now. As metrics-server
//! does, CPU usage is the rate between two summaries of the same node
//! (nanocores over the `window` between their times) and memory is the
//! later summary's working set. A container whose CPU time went backwards
//! or that started after the earlier summary (restarted, or new) has no
//! rate yet, and a pod is reported only when every container it had in
//! the later summary has one, as metrics-server leaves out pods it cannot
//! report whole.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

/// One agent summary, the parts the Metrics API reads.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub node: NodeStats,
    #[serde(default)]
    pub pods: Vec<PodStats>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodRef,
    #[serde(default)]
    pub containers: Vec<ContainerStats>,
    /// skiff's addition: what the pod's Wasm HTTP service has served.
    pub requests: Option<Requests>,
}

/// Requests a pod's Wasm HTTP service answered (a counter) and has in
/// flight, at a time.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requests {
    pub time: Timestamp,
    pub total: u64,
    pub in_flight: u64,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub uid: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: Option<Timestamp>,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    pub time: Timestamp,
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    pub working_set_bytes: Option<u64>,
}

/// CPU and memory in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU, in billionths of a core.
    pub nanocores: u64,
    pub memory_bytes: u64,
}

impl Usage {
    /// `{"cpu": "…n", "memory": "…Ki"}`, as metrics-server writes it.
    pub fn to_json(self) -> Value {
        json!({
            "cpu": format!("{}n", self.nanocores),
            "memory": format!("{}Ki", self.memory_bytes / 1024),
        })
    }
}

/// When a figure was taken and over how long its CPU rate was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub timestamp: Timestamp,
    pub length: Duration,
}

impl Window {
    /// The `window` field: a Go duration string such as `15.012s`.
    pub fn go_duration(&self) -> String {
        go_duration(self.length)
    }
}

/// A node's usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeUsage {
    pub window: Window,
    pub usage: Usage,
}

/// A pod's usage, container by container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub window: Window,
    pub containers: Vec<(String, Usage)>,
}

impl PodUsage {
    /// The pod's whole usage.
    pub fn total(&self) -> Usage {
        self.containers.iter().fold(Usage::default(), |sum, (_, u)| Usage {
            nanocores: sum.nanocores + u.nanocores,
            memory_bytes: sum.memory_bytes + u.memory_bytes,
        })
    }
}

/// The rate of cumulative CPU time between two readings, in nanocores.
fn rate(earlier: &Cpu, later: &Cpu) -> Option<(u64, Window)> {
    let before = earlier.usage_core_nano_seconds?;
    let after = later.usage_core_nano_seconds?;
    let spent = after.checked_sub(before)?;
    let length = later.time.duration_since(earlier.time);
    let nanos = u64::try_from(length.as_nanos()).ok().filter(|n| *n > 0)?;
    let nanocores = u128::from(spent) * 1_000_000_000 / u128::from(nanos);
    let window = Window {
        timestamp: later.time,
        length: length.unsigned_abs(),
    };
    Some((u64::try_from(nanocores).unwrap_or(u64::MAX), window))
}

/// The node's usage between `earlier` and `later`, if both read its CPU.
pub fn node(earlier: &Summary, later: &Summary) -> Option<NodeUsage> {
    let (nanocores, window) = rate(earlier.node.cpu.as_ref()?, later.node.cpu.as_ref()?)?;
    let memory_bytes = later.node.memory.and_then(|m| m.working_set_bytes).unwrap_or(0);
    Some(NodeUsage {
        window,
        usage: Usage {
            nanocores,
            memory_bytes,
        },
    })
}

/// The usage of every pod `later` lists that can be reported whole, by
/// namespace and name.
pub fn pods(earlier: &Summary, later: &Summary) -> Vec<PodUsage> {
    let before: BTreeMap<(&str, &str), &PodStats> = earlier
        .pods
        .iter()
        .map(|p| ((p.pod_ref.namespace.as_str(), p.pod_ref.name.as_str()), p))
        .collect();
    let mut out: Vec<PodUsage> = later
        .pods
        .iter()
        .filter(|p| !p.containers.is_empty())
        .filter_map(|pod| {
            let key = (pod.pod_ref.namespace.as_str(), pod.pod_ref.name.as_str());
            let previous = before.get(&key).filter(|p| p.pod_ref.uid == pod.pod_ref.uid)?;
            let mut window: Option<Window> = None;
            let containers = pod
                .containers
                .iter()
                .map(|c| {
                    let old = previous.containers.iter().find(|o| o.name == c.name)?;
                    if old.start_time != c.start_time {
                        return None;
                    }
                    let (nanocores, w) = rate(old.cpu.as_ref()?, c.cpu.as_ref()?)?;
                    window = Some(window.map_or(w, |seen| if w.timestamp > seen.timestamp { w } else { seen }));
                    let memory_bytes = c.memory.and_then(|m| m.working_set_bytes).unwrap_or(0);
                    Some((
                        c.name.clone(),
                        Usage {
                            nanocores,
                            memory_bytes,
                        },
                    ))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(PodUsage {
                namespace: pod.pod_ref.namespace.clone(),
                name: pod.pod_ref.name.clone(),
                window: window?,
                containers,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

/// The custom metrics every pod with a Wasm HTTP service has.
pub const CUSTOM_METRICS: [&str; 2] = ["requests-per-second", "requests-in-flight"];

/// A pod's request figures: the custom metrics `requests-per-second`
/// and `requests-in-flight`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRequests {
    pub namespace: String,
    pub name: String,
    pub window: Window,
    /// Requests per second, in thousandths.
    pub per_second_milli: u64,
    pub in_flight: u64,
}

/// The request figures of every pod of `later` whose service `earlier`
/// also counted (same pod, counter not restarted).
pub fn requests(earlier: &Summary, later: &Summary) -> Vec<PodRequests> {
    let before: BTreeMap<(&str, &str, &str), Requests> = earlier
        .pods
        .iter()
        .filter_map(|p| {
            let r = p.requests?;
            Some((
                (
                    p.pod_ref.namespace.as_str(),
                    p.pod_ref.name.as_str(),
                    p.pod_ref.uid.as_str(),
                ),
                r,
            ))
        })
        .collect();
    later
        .pods
        .iter()
        .filter_map(|pod| {
            let now = pod.requests?;
            let then = before.get(&(
                pod.pod_ref.namespace.as_str(),
                pod.pod_ref.name.as_str(),
                pod.pod_ref.uid.as_str(),
            ))?;
            let answered = now.total.checked_sub(then.total)?;
            let length = now.time.duration_since(then.time);
            let nanos = u64::try_from(length.as_nanos()).ok().filter(|n| *n > 0)?;
            let per_second_milli = u128::from(answered) * 1_000_000_000_000 / u128::from(nanos);
            Some(PodRequests {
                namespace: pod.pod_ref.namespace.clone(),
                name: pod.pod_ref.name.clone(),
                window: Window {
                    timestamp: now.time,
                    length: length.unsigned_abs(),
                },
                per_second_milli: u64::try_from(per_second_milli).unwrap_or(u64::MAX),
                in_flight: now.in_flight,
            })
        })
        .collect()
}

/// `d` as Go's `time.Duration` prints it, to the millisecond: `850ms`,
/// `15.012s`, `2m3.5s`, `1h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis < 1000 {
        return if millis == 0 {
            "0s".into()
        } else {
            format!("{millis}ms")
        };
    }
    let seconds = |ms: u128| {
        let (whole, frac) = (ms / 1000, ms % 1000);
        if frac == 0 {
            format!("{whole}s")
        } else {
            format!("{whole}.{}s", format!("{frac:03}").trim_end_matches('0'))
        }
    };
    let (hours, rest) = (millis / 3_600_000, millis % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    match (hours, minutes) {
        (0, 0) => seconds(rest),
        (0, m) => format!("{m}m{}", seconds(rest)),
        (h, m) => format!("{h}h{m}m{}", seconds(rest)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn summary(at: &str, node_cpu: u64, pods: Value) -> Summary {
        serde_json::from_value(json!({
            "node": {
                "nodeName": "n1",
                "cpu": {"time": at, "usageCoreNanoSeconds": node_cpu},
                "memory": {"time": at, "workingSetBytes": 4u64 << 30},
            },
            "pods": pods,
        }))
        .unwrap()
    }

    fn pod(name: &str, uid: &str, at: &str, containers: &[(&str, &str, u64, u64)]) -> Value {
        json!({
            "podRef": {"namespace": "default", "name": name, "uid": uid},
            "containers": containers.iter().map(|(c, started, cpu, mem)| json!({
                "name": c,
                "startTime": started,
                "cpu": {"time": at, "usageCoreNanoSeconds": cpu},
                "memory": {"time": at, "workingSetBytes": mem},
            })).collect::<Vec<_>>(),
        })
    }

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:00:10Z";
    const START: &str = "2025-12-31T00:00:00Z";

    #[test]
    fn cpu_is_the_rate_between_two_summaries_and_memory_the_later_working_set() {
        let earlier = summary(
            T0,
            1_000_000_000,
            json!([pod("web", "u", T0, &[("app", START, 0, 1 << 20)])]),
        );
        let later = summary(
            T1,
            21_000_000_000,
            json!([pod("web", "u", T1, &[("app", START, 5_000_000_000, 3 << 20)])]),
        );
        let node = node(&earlier, &later).unwrap();
        assert_eq!(node.usage.nanocores, 2_000_000_000);
        assert_eq!(node.usage.memory_bytes, 4u64 << 30);
        assert_eq!(node.window.go_duration(), "10s");
        let pods = pods(&earlier, &later);
        assert_eq!(pods.len(), 1);
        assert_eq!(
            pods[0].containers,
            [(
                "app".to_string(),
                Usage {
                    nanocores: 500_000_000,
                    memory_bytes: 3 << 20
                }
            )]
        );
        assert_eq!(
            pods[0].total().to_json(),
            json!({"cpu": "500000000n", "memory": "3072Ki"})
        );
    }

    #[test]
    fn pods_that_cannot_be_reported_whole_are_left_out() {
        let earlier = summary(
            T0,
            0,
            json!([
                pod("restarted", "u1", T0, &[("app", START, 9_000, 1)]),
                pod("replaced", "old", T0, &[("app", START, 0, 1)]),
                pod("grew", "u3", T0, &[("app", START, 0, 1)]),
            ]),
        );
        let later = summary(
            T1,
            0,
            json!([
                pod("restarted", "u1", T1, &[("app", T0, 10, 1)]),
                pod("replaced", "new", T1, &[("app", START, 10, 1)]),
                pod("grew", "u3", T1, &[("app", START, 10, 1), ("sidecar", START, 10, 1)]),
                pod("new", "u4", T1, &[("app", START, 10, 1)]),
            ]),
        );
        assert_eq!(pods(&earlier, &later), []);
    }

    #[test]
    fn requests_per_second_is_the_rate_of_the_answered_counter() {
        let with = |at: &str, total: u64, in_flight: u64| {
            let mut s = summary(at, 0, json!([pod("web", "u", at, &[("app", START, 0, 1)])]));
            s.pods[0].requests = Some(Requests {
                time: at.parse().unwrap(),
                total,
                in_flight,
            });
            s
        };
        let figures = requests(&with(T0, 100, 0), &with(T1, 125, 3));
        assert_eq!(figures.len(), 1);
        assert_eq!((figures[0].per_second_milli, figures[0].in_flight), (2500, 3));
        // A counter that started again has no rate yet.
        assert_eq!(requests(&with(T0, 100, 0), &with(T1, 5, 0)), []);
    }

    #[test]
    fn windows_print_as_go_durations() {
        assert_eq!(go_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(go_duration(Duration::from_millis(15_012)), "15.012s");
        assert_eq!(go_duration(Duration::from_millis(123_500)), "2m3.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }
}
