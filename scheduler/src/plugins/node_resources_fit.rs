//! `NodeResourcesFit`: a pod fits a node only if the node has the cpu,
//! memory and pod slots it requests free; among the nodes that fit, it
//! scores by how much would be left (`LeastAllocated`, the default, which
//! spreads pods) or used (`MostAllocated`, which packs them).
//!
//! Free means `allocatable` minus the requests of the pods already placed
//! there (bound or assumed), as in Kubernetes; what the pods actually use
//! is not considered. Scoring counts request-less containers at Kubernetes'
//! defaults (see [`crate::resources`]).
//!
//! Arguments (`pluginConfig`):
//!
//! ```yaml
//! - name: NodeResourcesFit
//!   args:
//!     scoringStrategy:
//!       type: LeastAllocated        # or MostAllocated
//!       resources:                  # the default: cpu and memory, weight 1 each
//!         - {name: cpu, weight: 1}
//!         - {name: memory, weight: 1}
//! ```

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use crate::framework::{
    ClusterEvent, CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin,
    ScorePlugin, Status,
};
use crate::resources::{self, Resources};
use crate::snapshot::{NodeInfo, Snapshot};

pub const TOO_MANY_PODS: &str = "Too many pods";
pub const INSUFFICIENT_CPU: &str = "Insufficient cpu";
pub const INSUFFICIENT_MEMORY: &str = "Insufficient memory";

const PRE_FILTER_KEY: &str = "PreFilterNodeResourcesFit";
const PRE_SCORE_KEY: &str = "PreScoreNodeResourcesFit";

/// How to turn free capacity into a score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Strategy {
    /// Prefer the node with the most left free (spreads pods).
    #[default]
    LeastAllocated,
    /// Prefer the node with the least left free (packs pods).
    MostAllocated,
}

/// A resource and its weight in the score.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedResource {
    pub name: String,
    pub weight: i64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoringStrategy {
    #[serde(rename = "type", default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub resources: Vec<WeightedResource>,
}

/// `pluginConfig` arguments.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    pub scoring_strategy: ScoringStrategy,
}

#[derive(Debug)]
pub struct NodeResourcesFit {
    strategy: Strategy,
    /// (resource, weight) for `cpu` and `memory`.
    weights: Vec<(Resource, i64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resource {
    Cpu,
    Memory,
}

impl Default for NodeResourcesFit {
    fn default() -> Self {
        NodeResourcesFit {
            strategy: Strategy::LeastAllocated,
            weights: vec![(Resource::Cpu, 1), (Resource::Memory, 1)],
        }
    }
}

impl NodeResourcesFit {
    /// The plugin as `args` configure it.
    pub fn new(args: Args) -> Result<NodeResourcesFit, String> {
        let mut plugin = NodeResourcesFit {
            strategy: args.scoring_strategy.strategy,
            ..NodeResourcesFit::default()
        };
        if !args.scoring_strategy.resources.is_empty() {
            plugin.weights = args
                .scoring_strategy
                .resources
                .iter()
                .map(|r| {
                    let resource = match r.name.as_str() {
                        "cpu" => Resource::Cpu,
                        "memory" => Resource::Memory,
                        other => return Err(format!("cannot score on resource {other:?} (only cpu and memory)")),
                    };
                    if r.weight < 1 {
                        return Err(format!("the weight of {} must be at least 1", r.name));
                    }
                    Ok((resource, r.weight))
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(plugin)
    }
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &str {
        super::NODE_RESOURCES_FIT
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::NodeAdded,
            ClusterEvent::NodeChanged,
            ClusterEvent::AssignedPodDeleted,
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodeResourcesFit {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, _: &Snapshot) -> PreFilterResult {
        state.write(PRE_FILTER_KEY, resources::pod_requests(pod));
        PreFilterResult::success()
    }
}

/// Why `request` does not fit on `node`; empty when it fits.
pub fn insufficient(request: Resources, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    let allocatable = node.allocatable();
    let requested = node.requested();
    if requested.pods + 1 > allocatable.pods {
        reasons.push(TOO_MANY_PODS.to_string());
    }
    if request.milli_cpu > 0 && request.milli_cpu > allocatable.milli_cpu - requested.milli_cpu {
        reasons.push(INSUFFICIENT_CPU.to_string());
    }
    if request.memory > 0 && request.memory > allocatable.memory - requested.memory {
        reasons.push(INSUFFICIENT_MEMORY.to_string());
    }
    reasons
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, state: &CycleState, _: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
        let request = *state.require::<Resources>(PRE_FILTER_KEY)?;
        Ok(nodes
            .iter()
            .map(|node| {
                let reasons = insufficient(request, node);
                if reasons.is_empty() {
                    Status::success()
                } else {
                    Status::new(crate::framework::Code::Unschedulable, reasons)
                }
            })
            .collect())
    }
}

impl PreScorePlugin for NodeResourcesFit {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, _: &[&NodeInfo], _: &Snapshot) -> Status {
        state.write(PRE_SCORE_KEY, resources::pod_non_zero_requests(pod));
        Status::success()
    }
}

/// `0..=100`: the share of `capacity` left free after `requested`.
fn least_allocated(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// `0..=100`: the share of `capacity` taken by `requested`.
fn most_allocated(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, state: &CycleState, _: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<i64>, Status> {
        let request = *state.require::<Resources>(PRE_SCORE_KEY)?;
        let score = |node: &NodeInfo| {
            let requested = node.non_zero_requested().plus(request);
            let allocatable = node.allocatable();
            let (mut sum, mut weights) = (0, 0);
            for &(resource, weight) in &self.weights {
                let (requested, capacity) = match resource {
                    Resource::Cpu => (requested.milli_cpu, allocatable.milli_cpu),
                    Resource::Memory => (requested.memory, allocatable.memory),
                };
                let one = match self.strategy {
                    Strategy::LeastAllocated => least_allocated(requested, capacity),
                    Strategy::MostAllocated => most_allocated(requested, capacity),
                };
                sum += one * weight;
                weights += weight;
            }
            if weights == 0 { 0 } else { sum / weights }
        };
        Ok(nodes.iter().map(|node| score(node)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn sized(name: &str, cpu: &str, memory: &str, pods: &str) -> std::sync::Arc<k8s_openapi::api::core::v1::Node> {
        node(
            name,
            json!({"status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}}),
        )
    }

    fn requesting(cpu: &str, memory: &str) -> serde_json::Value {
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]})
    }

    #[test]
    fn filter_reports_every_shortage() {
        let nodes = [
            sized("small-cpu", "500m", "8Gi", "10"),
            sized("small-memory", "8", "64Mi", "10"),
            sized("full", "8", "8Gi", "1"),
            sized("tiny", "100m", "1Mi", "0"),
        ];
        let placed = [bound("existing", "full", requesting("100m", "1Mi"))];
        let cases = [
            (
                "nothing fits",
                requesting("1", "1Gi"),
                Err("0/4 nodes are available: 2 Insufficient cpu, 2 Insufficient memory, 2 Too many pods."),
            ),
            (
                "limits count as requests",
                json!({"containers": [{"name": "c", "resources": {"limits": {"cpu": "1"}}}]}),
                Ok("small-memory"),
            ),
        ];
        for (name, spec, expected) in cases {
            let snapshot = snapshot(&nodes, &placed);
            let decision = decide_in(&[plugin(NodeResourcesFit::default())], &pod(spec), &snapshot);
            assert_eq!(
                outcome(&decision),
                expected.map(str::to_string).map_err(str::to_string),
                "{name}"
            );
        }
    }

    #[test]
    fn filter_counts_placed_pods() {
        let nodes = [sized("a", "2", "2Gi", "10"), sized("b", "2", "2Gi", "10")];
        let placed = [bound("x", "a", requesting("1500m", "1Gi"))];
        let decision = decide_in(
            &[plugin(NodeResourcesFit::default())],
            &pod(requesting("1", "1Gi")),
            &snapshot(&nodes, &placed),
        );
        assert_eq!(outcome(&decision), Ok("b".to_string()));
    }

    #[test]
    fn least_allocated_spreads_and_most_allocated_packs() {
        let nodes = [sized("busy", "4", "4Gi", "10"), sized("idle", "4", "4Gi", "10")];
        let placed = [bound("x", "busy", requesting("2", "2Gi"))];
        let pod = pod(requesting("1", "1Gi"));
        let least = decide_in(&[plugin(NodeResourcesFit::default())], &pod, &snapshot(&nodes, &placed));
        assert_eq!(outcome(&least), Ok("idle".to_string()));
        // busy: (4-3)/4 = 25 for both resources; idle: (4-1)/4 = 75.
        assert_eq!(scores(&least), [("busy".to_string(), 25), ("idle".to_string(), 75)]);

        let args: Args = serde_json::from_value(json!({"scoringStrategy": {"type": "MostAllocated"}})).unwrap();
        let most = decide_in(
            &[plugin(NodeResourcesFit::new(args).unwrap())],
            &pod,
            &snapshot(&nodes, &placed),
        );
        assert_eq!(outcome(&most), Ok("busy".to_string()));
        assert_eq!(scores(&most), [("busy".to_string(), 75), ("idle".to_string(), 25)]);
    }

    #[test]
    fn weights_and_bad_arguments() {
        let args: Args = serde_json::from_value(json!({"scoringStrategy": {"resources": [
            {"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1},
        ]}}))
        .unwrap();
        let plugin = NodeResourcesFit::new(args).unwrap();
        assert_eq!(plugin.weights, [(Resource::Cpu, 3), (Resource::Memory, 1)]);
        let args: Args =
            serde_json::from_value(json!({"scoringStrategy": {"resources": [{"name": "gpu", "weight": 1}]}})).unwrap();
        assert!(NodeResourcesFit::new(args).is_err());
        assert!(serde_json::from_value::<Args>(json!({"bogus": 1})).is_err());
    }
}
