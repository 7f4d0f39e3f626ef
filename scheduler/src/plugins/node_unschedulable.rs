//! `NodeUnschedulable`: cordoned nodes (`spec.unschedulable: true`) take
//! no new pods, unless the pod tolerates the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint that Kubernetes
//! puts on such nodes.

use k8s_openapi::api::core::v1::{Pod, Taint};

use super::matching::{pod_tolerations, tolerates};
use crate::framework::{ClusterEvent, CycleState, FilterPlugin, Plugin, Status};
use crate::snapshot::NodeInfo;

/// The reason given for a cordoned node.
pub const REASON: &str = "node(s) were unschedulable";
/// The taint a cordoned node is treated as having.
pub const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

#[derive(Debug, Default)]
pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &str {
        super::NODE_UNSCHEDULABLE
    }
    fn events(&self) -> &'static [ClusterEvent] {
        ClusterEvent::NODE
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
        let taint = Taint {
            key: TAINT_KEY.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let tolerated = pod_tolerations(pod).iter().any(|t| tolerates(t, &taint));
        Ok(nodes
            .iter()
            .map(|node| {
                if node.is_unschedulable() && !tolerated {
                    Status::unresolvable(REASON)
                } else {
                    Status::success()
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn cordoned_nodes_are_skipped() {
        let cordoned = json!({"spec": {"unschedulable": true}});
        let cases = [
            (
                "one cordoned",
                vec![node("a", cordoned.clone()), node("b", json!({}))],
                json!({}),
                Ok("b"),
            ),
            (
                "all cordoned",
                vec![node("a", cordoned.clone()), node("b", cordoned.clone())],
                json!({}),
                Err("0/2 nodes are available: 2 node(s) were unschedulable."),
            ),
            (
                "tolerated",
                vec![node("a", cordoned.clone())],
                json!({"tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]}),
                Ok("a"),
            ),
        ];
        for (name, nodes, spec, expected) in cases {
            let decision = decide(&[plugin(NodeUnschedulable)], &pod(spec), &nodes);
            assert_eq!(
                outcome(&decision),
                expected.map(str::to_string).map_err(str::to_string),
                "{name}"
            );
        }
    }
}
