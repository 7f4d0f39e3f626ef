//! The agent's Prometheus metrics: one registry per agent process, served
//! on the agent's endpoint ([`super::daemon`]) in the OpenMetrics text
//! format, as the kubelet serves its own on its port.
//!
//! * `GET /metrics/resource`: what the node, its pods and their
//!   containers use, under the kubelet's names, read from the pod
//!   workers' meters at scrape time (the figures of `/stats/summary`,
//!   [`super::stats`]): `container_cpu_usage_seconds_total`,
//!   `container_memory_working_set_bytes` and
//!   `container_start_time_seconds` `{container, pod, namespace}`,
//!   `pod_cpu_usage_seconds_total` and `pod_memory_working_set_bytes`
//!   `{pod, namespace}`, `node_cpu_usage_seconds_total`,
//!   `node_memory_working_set_bytes` and `resource_scrape_error`. runc
//!   containers are read from their cgroups; Wasm containers report the
//!   CPU time their instances ran and the linear memory the live ones
//!   hold. Unlike the kubelet's, the samples carry no timestamp of their
//!   own (the scrape's time stands).
//! * `GET /metrics`: the agent's own.
//!   * `kubelet_image_pull_duration_seconds{image_size_in_bytes}`: pulls
//!     from a registry (not images found on the node), by the kubelet's
//!     size classes, with its buckets and three under a second (Wasm
//!     images are small).
//!   * The Wasm engine's ([`skiff_wasm::metrics`]): per pod, requests,
//!     their latency, instantiation latency, requests in flight and
//!     instances alive; and compile durations.
//!   * The node's service proxy's ([`skiff_proxy::metrics`]): requests
//!     and upstream latency by Service, spliced connections.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::stats::StatsIndex;

/// The content type both paths answer with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The kubelet's image-pull buckets, in seconds, with three below its
/// first.
const PULL_BUCKETS: [f64; 21] = [
    0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 480.0, 600.0, 900.0, 1200.0,
    1800.0, 2700.0, 3600.0,
];

fn pull_histogram() -> Histogram {
    Histogram::new(PULL_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PullLabels {
    image_size_in_bytes: &'static str,
}

/// The kubelet's size class of an image of `bytes` (compressed layers).
fn size_class(bytes: u64) -> &'static str {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    let classes: [(u64, &'static str); 11] = [
        (100 * GIB, "GT100GB"),
        (60 * GIB, "60GB-100GB"),
        (40 * GIB, "40GB-60GB"),
        (30 * GIB, "30GB-40GB"),
        (20 * GIB, "20GB-30GB"),
        (10 * GIB, "10GB-20GB"),
        (5 * GIB, "5GB-10GB"),
        (GIB, "1GB-5GB"),
        (500 * MIB, "500MB-1GB"),
        (100 * MIB, "100MB-500MB"),
        (10 * MIB, "10MB-100MB"),
    ];
    match bytes {
        0 => "N/A",
        _ => classes
            .iter()
            .find(|(above, _)| bytes > *above)
            .map_or("0-10MB", |(_, class)| class),
    }
}

/// The agent's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    /// `/metrics`.
    registry: Arc<Registry>,
    /// `/metrics/resource`.
    resource: Arc<Registry>,
    pulls: Family<PullLabels, Histogram>,
    wasm: skiff_wasm::Metrics,
    proxy: skiff_proxy::metrics::Metrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The agent's registries; resource metrics are read from `stats`.
    pub fn new(stats: Arc<StatsIndex>) -> Metrics {
        let mut registry = Registry::default();
        let pulls = Family::<PullLabels, Histogram>::new_with_constructor(pull_histogram as fn() -> Histogram);
        registry.register(
            "kubelet_image_pull_duration_seconds",
            "Duration in seconds to pull an image, by the image's size class",
            pulls.clone(),
        );
        let wasm = skiff_wasm::Metrics::register(&mut registry);
        let proxy = skiff_proxy::metrics::Metrics::register(&mut registry);
        let mut resource = Registry::default();
        resource.register_collector(Box::new(Resources(stats)));
        Metrics {
            registry: Arc::new(registry),
            resource: Arc::new(resource),
            pulls,
            wasm,
            proxy,
        }
    }

    /// Where the Wasm runtime counts.
    pub fn wasm(&self) -> &skiff_wasm::Metrics {
        &self.wasm
    }

    /// Where the service proxy counts.
    pub fn proxy(&self) -> &skiff_proxy::metrics::Metrics {
        &self.proxy
    }

    /// An image of `bytes` was pulled in `took`.
    pub(crate) fn pulled(&self, bytes: u64, took: Duration) {
        let labels = PullLabels {
            image_size_in_bytes: size_class(bytes),
        };
        self.pulls.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// `/metrics`, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        encode(&self.registry)
    }

    /// `/metrics/resource`, read now: runc containers' cgroup files are
    /// read, so call it off the async threads.
    pub fn encode_resource(&self) -> String {
        encode(&self.resource)
    }
}

fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::error!(%error, "cannot encode the agent's metrics");
    }
    text
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    container: String,
    pod: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodLabels {
    pod: String,
    namespace: String,
}

/// The kubelet's resource metrics, read from the index on each scrape.
#[derive(Debug)]
struct Resources(Arc<StatsIndex>);

/// One metric family of constant samples.
fn family<'a, L, M>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (&'a L, M)>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet + 'a,
    M: EncodeMetric,
{
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: M,
) -> Result<(), std::fmt::Error> {
    let kind = value.metric_type();
    value.encode(encoder.encode_descriptor(name, help, None, kind)?)
}

impl Collector for Resources {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let usages = self.0.usages();
        let seconds = |d: Duration| d.as_secs_f64();
        let containers: Vec<_> = usages
            .pods
            .iter()
            .flat_map(|pod| {
                pod.containers.iter().map(|c| {
                    let labels = ContainerLabels {
                        container: c.name.clone(),
                        pod: pod.name.clone(),
                        namespace: pod.namespace.clone(),
                    };
                    (labels, c)
                })
            })
            .collect();
        let pods: Vec<_> = usages
            .pods
            .iter()
            .map(|pod| {
                let labels = PodLabels {
                    pod: pod.name.clone(),
                    namespace: pod.namespace.clone(),
                };
                let cpu: Duration = pod.containers.iter().map(|c| c.usage.cpu).sum();
                let memory: u64 = pod.containers.iter().map(|c| c.usage.working_set_bytes).sum();
                (labels, cpu, memory)
            })
            .collect();
        family(
            &mut encoder,
            "container_cpu_usage_seconds",
            "Cumulative cpu time consumed by the container in core-seconds",
            MetricType::Counter,
            containers
                .iter()
                .map(|(l, c)| (l, ConstCounter::new(seconds(c.usage.cpu)))),
        )?;
        family(
            &mut encoder,
            "container_memory_working_set_bytes",
            "Current working set of the container in bytes",
            MetricType::Gauge,
            containers
                .iter()
                .map(|(l, c)| (l, ConstGauge::new(saturating_i64(c.usage.working_set_bytes)))),
        )?;
        family(
            &mut encoder,
            "container_start_time_seconds",
            "Start time of the container since unix epoch in seconds",
            MetricType::Gauge,
            containers.iter().map(|(l, c)| {
                let started = c.started.as_millisecond() as f64 / 1000.0;
                (l, ConstGauge::new(started))
            }),
        )?;
        family(
            &mut encoder,
            "pod_cpu_usage_seconds",
            "Cumulative cpu time consumed by the pod in core-seconds",
            MetricType::Counter,
            pods.iter().map(|(l, cpu, _)| (l, ConstCounter::new(seconds(*cpu)))),
        )?;
        family(
            &mut encoder,
            "pod_memory_working_set_bytes",
            "Current working set of the pod in bytes",
            MetricType::Gauge,
            pods.iter()
                .map(|(l, _, memory)| (l, ConstGauge::new(saturating_i64(*memory)))),
        )?;
        single(
            &mut encoder,
            "node_cpu_usage_seconds",
            "Cumulative cpu time consumed by the node in core-seconds",
            ConstCounter::new(seconds(usages.node.cpu)),
        )?;
        single(
            &mut encoder,
            "node_memory_working_set_bytes",
            "Current working set of the node in bytes",
            ConstGauge::new(saturating_i64(usages.node.working_set_bytes)),
        )?;
        single(
            &mut encoder,
            "resource_scrape_error",
            "1 if there was an error while getting container metrics, 0 otherwise",
            ConstGauge::new(0i64),
        )
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::agent::runtime::{Meter, Usage};
    use crate::agent::stats::PodId;

    #[derive(Debug)]
    struct Fixed(Usage);

    impl Meter for Fixed {
        fn usage(&self) -> Option<Usage> {
            Some(self.0)
        }
    }

    #[test]
    fn resource_metrics_carry_the_kubelets_names_and_labels() {
        let stats = Arc::new(StatsIndex::default());
        let pod = PodId {
            namespace: "default",
            name: "web",
            uid: "u1",
            started: jiff::Timestamp::UNIX_EPOCH,
        };
        let usage = |ms, bytes| {
            Arc::new(Fixed(Usage {
                cpu: Duration::from_millis(ms),
                working_set_bytes: bytes,
            }))
        };
        stats.started(pod, "app", usage(1500, 4096));
        stats.started(pod, "sidecar", usage(500, 1024));
        let metrics = Metrics::new(stats);
        let text = metrics.encode_resource();
        for line in [
            "# TYPE container_cpu_usage_seconds counter",
            r#"container_cpu_usage_seconds_total{container="app",pod="web",namespace="default"} 1.5"#,
            r#"container_memory_working_set_bytes{container="sidecar",pod="web",namespace="default"} 1024"#,
            r#"pod_cpu_usage_seconds_total{pod="web",namespace="default"} 2.0"#,
            r#"pod_memory_working_set_bytes{pod="web",namespace="default"} 5120"#,
            "resource_scrape_error 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.contains("\nnode_cpu_usage_seconds_total "), "{text}");
        assert!(text.contains("\nnode_memory_working_set_bytes "), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn pulls_are_classed_by_size_as_the_kubelet_classes_them() {
        assert_eq!(size_class(0), "N/A");
        assert_eq!(size_class(3 << 20), "0-10MB");
        assert_eq!(size_class(10 << 20), "0-10MB");
        assert_eq!(size_class((10 << 20) + 1), "10MB-100MB");
        assert_eq!(size_class(2 << 30), "1GB-5GB");
        assert_eq!(size_class(200 << 30), "GT100GB");
        let metrics = Metrics::new(Arc::default());
        metrics.pulled(3 << 20, Duration::from_millis(300));
        let text = metrics.encode();
        assert!(
            text.contains(r#"kubelet_image_pull_duration_seconds_count{image_size_in_bytes="0-10MB"} 1"#),
            "{text}"
        );
        // Families show once they have a series; a plain histogram always.
        assert!(
            text.contains("# TYPE skiff_wasm_compile_duration_seconds histogram"),
            "{text}"
        );
    }
}
