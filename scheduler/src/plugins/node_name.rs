//! `NodeName`: a pod that names its node (`spec.nodeName`) fits only there.
//!
//! The runner never queues a pod that already has a node name (it is
//! bound), so this matters for callers of the core that evaluate such pods,
//! and it keeps the default plugin set the same as Kubernetes'.

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{ClusterEvent, CycleState, FilterPlugin, Plugin, Status};
use crate::snapshot::{NodeInfo, pod_node_name};

/// The reason given for every other node.
pub const REASON: &str = "node(s) didn't match the requested node name";

#[derive(Debug, Default)]
pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &str {
        super::NODE_NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdded]
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
        let wanted = pod_node_name(pod);
        Ok(nodes
            .iter()
            .map(|node| match wanted {
                Some(name) if name != node.name() => Status::unresolvable(REASON),
                _ => Status::success(),
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
    fn only_the_named_node_fits() {
        let nodes = [node("a", json!({})), node("b", json!({})), node("c", json!({}))];
        let cases = [
            ("no node name", json!({}), Ok("a")),
            ("named node", json!({"nodeName": "b"}), Ok("b")),
            (
                "missing node",
                json!({"nodeName": "z"}),
                Err("0/3 nodes are available: 3 node(s) didn't match the requested node name."),
            ),
        ];
        for (name, spec, expected) in cases {
            let decision = decide(&[plugin(NodeName)], &pod(spec), &nodes);
            assert_eq!(
                outcome(&decision),
                expected.map(str::to_string).map_err(str::to_string),
                "{name}"
            );
        }
    }
}
