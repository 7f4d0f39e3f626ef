//! `NodeResourcesBalancedAllocation`: prefers nodes whose cpu and memory
//! would be used in similar proportions once the pod is placed, so that
//! one resource does not run out while the other sits idle.
//!
//! The score is `(1 - σ) × 100`, where σ is the standard deviation of the
//! requested fractions (`requested / allocatable`, each at most 1) of cpu
//! and memory, counting the pod's real requests, as Kubernetes does.

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, PreScorePlugin, ScorePlugin, Status};
use crate::resources::{self, Resources};
use crate::snapshot::{NodeInfo, Snapshot};

const PRE_SCORE_KEY: &str = "PreScoreNodeResourcesBalancedAllocation";

#[derive(Debug, Default)]
pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &str {
        super::BALANCED_ALLOCATION
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for BalancedAllocation {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, _: &[&NodeInfo], _: &Snapshot) -> Status {
        state.write(PRE_SCORE_KEY, resources::pod_requests(pod));
        Status::success()
    }
}

fn fraction(requested: i64, allocatable: i64) -> f64 {
    if allocatable <= 0 {
        return 1.0;
    }
    (requested as f64 / allocatable as f64).min(1.0)
}

/// The balance score of a node with `requested` of `allocatable` in use.
pub fn balance_score(requested: Resources, allocatable: Resources) -> i64 {
    let cpu = fraction(requested.milli_cpu, allocatable.milli_cpu);
    let memory = fraction(requested.memory, allocatable.memory);
    // With two resources the standard deviation is half their difference.
    let deviation = (cpu - memory).abs() / 2.0;
    ((1.0 - deviation) * MAX_NODE_SCORE as f64) as i64
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, state: &CycleState, _: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<i64>, Status> {
        let request = *state.require::<Resources>(PRE_SCORE_KEY)?;
        Ok(nodes
            .iter()
            .map(|node| balance_score(node.requested().plus(request), node.allocatable()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn balanced_nodes_score_higher() {
        let nodes = [
            node(
                "cpu-heavy",
                json!({"status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10"}}}),
            ),
            node(
                "even",
                json!({"status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10"}}}),
            ),
        ];
        let placed = [bound(
            "x",
            "cpu-heavy",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}]}),
        )];
        let pod = pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}));
        let decision = decide_in(&[plugin(BalancedAllocation)], &pod, &snapshot(&nodes, &placed));
        assert_eq!(outcome(&decision), Ok("even".to_string()));
        // cpu-heavy: cpu 4/4 = 1, memory 2/4 = 0.5 → σ = 0.25 → 75; even: 0.25 and 0.25 → 100.
        assert_eq!(
            scores(&decision),
            [("cpu-heavy".to_string(), 75), ("even".to_string(), 100)]
        );
    }

    #[test]
    fn scores_by_table() {
        let cases = [
            (Resources::new(0, 0, 0), Resources::new(1000, 1000, 1), 100),
            (Resources::new(1000, 0, 0), Resources::new(1000, 1000, 1), 50),
            (Resources::new(500, 250, 0), Resources::new(1000, 1000, 1), 87),
            (Resources::new(5000, 0, 0), Resources::new(1000, 1000, 1), 50),
        ];
        for (requested, allocatable, expected) in cases {
            assert_eq!(balance_score(requested, allocatable), expected, "{requested:?}");
        }
    }
}
