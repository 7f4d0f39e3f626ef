//! `NodeAffinity`: the pod's `nodeSelector` and required node affinity
//! must match the node's labels (and name, through `matchFields`);
//! preferred node affinity terms score the nodes they match by their
//! weights.
//!
//! The terms of `requiredDuringSchedulingIgnoredDuringExecution` are ORed,
//! the expressions inside a term ANDed, and an empty term matches nothing,
//! as in Kubernetes.

use k8s_openapi::api::core::v1::{Pod, PreferredSchedulingTerm};

use super::matching::{node_selector_term_matches, required_node_affinity_matches};
use crate::framework::{
    ClusterEvent, CycleState, FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin, ScorePlugin,
    Status, default_normalize,
};
use crate::snapshot::{NodeInfo, Snapshot};

/// The reason given for a node that does not match.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

#[derive(Debug, Default)]
pub struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &str {
        super::NODE_AFFINITY
    }
    fn events(&self) -> &'static [ClusterEvent] {
        ClusterEvent::NODE
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

fn preferred_terms(pod: &Pod) -> &[PreferredSchedulingTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or(&[])
}

impl PreFilterPlugin for NodeAffinity {
    /// Skips Filter for pods with neither a node selector nor a required
    /// node affinity: every node matches them.
    fn pre_filter(&self, _: &mut CycleState, pod: &Pod, _: &Snapshot) -> PreFilterResult {
        let spec = pod.spec.as_ref();
        let selector = spec
            .and_then(|s| s.node_selector.as_ref())
            .is_some_and(|s| !s.is_empty());
        let required = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .is_some_and(|a| a.required_during_scheduling_ignored_during_execution.is_some());
        if selector || required {
            PreFilterResult::success()
        } else {
            Status::skip().into()
        }
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
        Ok(nodes
            .iter()
            .map(|node| {
                if required_node_affinity_matches(pod, node) {
                    Status::success()
                } else {
                    Status::unresolvable(REASON)
                }
            })
            .collect())
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(&self, _: &mut CycleState, pod: &Pod, _: &[&NodeInfo], _: &Snapshot) -> Status {
        if preferred_terms(pod).is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<i64>, Status> {
        let terms = preferred_terms(pod);
        Ok(nodes
            .iter()
            .map(|node| {
                terms
                    .iter()
                    .filter(|term| node_selector_term_matches(&term.preference, node))
                    .map(|term| i64::from(term.weight))
                    .sum()
            })
            .collect())
    }

    fn normalize(&self, _: &CycleState, _: &Pod, _: &[&NodeInfo], scores: &mut [i64]) -> Status {
        default_normalize(scores, false);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn nodes() -> Vec<std::sync::Arc<k8s_openapi::api::core::v1::Node>> {
        vec![
            node("a", json!({"metadata": {"labels": {"zone": "east", "disk": "ssd"}}})),
            node("b", json!({"metadata": {"labels": {"zone": "west", "disk": "ssd"}}})),
            node("c", json!({"metadata": {"labels": {"zone": "west"}}})),
        ]
    }

    fn required(terms: serde_json::Value) -> serde_json::Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    #[test]
    fn selectors_and_required_affinity() {
        let cases = [
            ("nothing asked", json!({}), Ok("a")),
            (
                "node selector",
                json!({"nodeSelector": {"zone": "west", "disk": "ssd"}}),
                Ok("b"),
            ),
            (
                "node selector matches nothing",
                json!({"nodeSelector": {"zone": "north"}}),
                Err("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."),
            ),
            (
                "terms are ORed",
                required(json!([
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["north"]}]},
                    {"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]},
                ])),
                Ok("c"),
            ),
            (
                "expressions are ANDed",
                required(json!([{"matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["west"]},
                    {"key": "disk", "operator": "Exists"},
                ]}])),
                Ok("b"),
            ),
            (
                "match fields name a node",
                required(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}])),
                Ok("c"),
            ),
            (
                "selector and affinity both apply",
                {
                    let mut spec = required(
                        json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["west"]}]}]),
                    );
                    spec["nodeSelector"] = json!({"zone": "east"});
                    spec
                },
                Err("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."),
            ),
            (
                "no terms match nothing",
                required(json!([])),
                Err("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."),
            ),
        ];
        for (name, spec, expected) in cases {
            let decision = decide(&[plugin(NodeAffinity)], &pod(spec), &nodes());
            assert_eq!(
                outcome(&decision),
                expected.map(str::to_string).map_err(str::to_string),
                "{name}"
            );
        }
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let spec = json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["west"]}]}},
            {"weight": 30, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        ]}}});
        let decision = decide(&[plugin(NodeAffinity)], &pod(spec), &nodes());
        assert_eq!(outcome(&decision), Ok("b".to_string()));
        // Raw 30, 40, 10, scaled so the best is 100.
        assert_eq!(
            scores(&decision),
            [("a".to_string(), 75), ("b".to_string(), 100), ("c".to_string(), 25)]
        );
    }
}
