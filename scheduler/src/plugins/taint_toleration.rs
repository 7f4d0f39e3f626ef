//! `TaintToleration`: a pod may only go to a node whose `NoSchedule` and
//! `NoExecute` taints it tolerates; among those, nodes with fewer
//! untolerated `PreferNoSchedule` taints score higher.

use k8s_openapi::api::core::v1::Pod;

use super::matching::{is_hard_taint, pod_tolerations, tolerates, untolerated_taint};
use crate::framework::{ClusterEvent, CycleState, FilterPlugin, Plugin, ScorePlugin, Status, default_normalize};
use crate::snapshot::NodeInfo;

#[derive(Debug, Default)]
pub struct TaintToleration;

impl Plugin for TaintToleration {
    fn name(&self) -> &str {
        super::TAINT_TOLERATION
    }
    fn events(&self) -> &'static [ClusterEvent] {
        ClusterEvent::NODE
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
        let tolerations = pod_tolerations(pod);
        Ok(nodes
            .iter()
            .map(
                |node| match untolerated_taint(node.taints(), tolerations, is_hard_taint) {
                    Some(taint) => Status::unresolvable(format!(
                        "node(s) had untolerated taint {{{}: {}}}",
                        taint.key,
                        taint.value.as_deref().unwrap_or("")
                    )),
                    None => Status::success(),
                },
            )
            .collect())
    }
}

impl ScorePlugin for TaintToleration {
    /// The number of `PreferNoSchedule` taints the pod does not tolerate.
    fn score(&self, _: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<i64>, Status> {
        let tolerations: Vec<_> = pod_tolerations(pod)
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .collect();
        Ok(nodes
            .iter()
            .map(|node| {
                node.taints()
                    .iter()
                    .filter(|taint| taint.effect == "PreferNoSchedule")
                    .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
                    .count() as i64
            })
            .collect())
    }

    fn normalize(&self, _: &CycleState, _: &Pod, _: &[&NodeInfo], scores: &mut [i64]) -> Status {
        default_normalize(scores, true);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn tainted(name: &str, taints: serde_json::Value) -> std::sync::Arc<k8s_openapi::api::core::v1::Node> {
        node(name, json!({"spec": {"taints": taints}}))
    }

    #[test]
    fn hard_taints_filter() {
        let nodes = [
            tainted("a", json!([{"key": "gpu", "value": "only", "effect": "NoSchedule"}])),
            tainted("b", json!([{"key": "dedicated", "effect": "NoExecute"}])),
            tainted("c", json!([{"key": "soft", "effect": "PreferNoSchedule"}])),
        ];
        let cases = [
            ("soft taints do not filter", json!({}), Ok("c")),
            (
                "tolerating one hard taint",
                json!({"tolerations": [{"key": "gpu", "value": "only", "effect": "NoSchedule"}]}),
                Ok("a"),
            ),
            (
                "tolerating everything",
                json!({"tolerations": [{"operator": "Exists"}]}),
                Ok("a"),
            ),
        ];
        for (name, spec, expected) in cases {
            let decision = decide(&[plugin(TaintToleration)], &pod(spec), &nodes);
            assert_eq!(
                outcome(&decision),
                expected.map(str::to_string).map_err(str::to_string),
                "{name}"
            );
        }
        let decision = decide(&[plugin(TaintToleration)], &pod(json!({})), &nodes[..2]);
        assert_eq!(
            outcome(&decision),
            Err("0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: }, 1 node(s) had untolerated taint {gpu: only}.".to_string())
        );
    }

    #[test]
    fn soft_taints_score() {
        let nodes = [
            tainted(
                "a",
                json!([{"key": "x", "effect": "PreferNoSchedule"}, {"key": "y", "effect": "PreferNoSchedule"}]),
            ),
            tainted("b", json!([{"key": "x", "effect": "PreferNoSchedule"}])),
            tainted("c", json!([])),
        ];
        let decision = decide(&[plugin(TaintToleration)], &pod(json!({})), &nodes);
        assert_eq!(outcome(&decision), Ok("c".to_string()));
        assert_eq!(
            scores(&decision),
            [("a".to_string(), 0), ("b".to_string(), 50), ("c".to_string(), 100)]
        );
        let tolerant = pod(json!({"tolerations": [{"key": "x", "operator": "Exists", "effect": "PreferNoSchedule"}]}));
        let decision = decide(&[plugin(TaintToleration)], &tolerant, &nodes);
        assert_eq!(
            scores(&decision),
            [("a".to_string(), 0), ("b".to_string(), 100), ("c".to_string(), 100)]
        );
    }
}
