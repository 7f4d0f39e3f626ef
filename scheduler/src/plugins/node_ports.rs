//! `NodePorts`: a pod that needs ports on its node's own address goes to a
//! node where they are free.
//!
//! The ports a pod takes on its node are every container's `hostPort`, as
//! in Kubernetes, and the `containerPort`s of a pod that sets
//! `hostNetwork`, which listen on the node's address. Other pods, Wasm or
//! OCI, listen on addresses of their own. Ports clash on
//! (protocol, port), whatever the host IP.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{ClusterEvent, CycleState, FilterPlugin, Plugin, Status};
use crate::snapshot::NodeInfo;

/// The reason given for nodes where a port is taken.
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// The (protocol, port) pairs `pod` takes on its node.
pub fn node_ports(pod: &Pod) -> BTreeSet<(String, i32)> {
    let Some(spec) = pod.spec.as_ref() else {
        return BTreeSet::new();
    };
    let host_network = spec.host_network == Some(true);
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p
                .host_port
                .filter(|h| *h > 0)
                .or(host_network.then_some(p.container_port))?;
            Some((p.protocol.clone().unwrap_or_else(|| "TCP".into()), port))
        })
        .collect()
}

#[derive(Debug, Default)]
pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &str {
        super::NODE_PORTS
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdded, ClusterEvent::AssignedPodDeleted]
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
        let wanted = node_ports(pod);
        if wanted.is_empty() {
            return Ok(vec![Status::success(); nodes.len()]);
        }
        Ok(nodes
            .iter()
            .map(|node| {
                let taken = node
                    .pods()
                    .iter()
                    .any(|placed| !node_ports(&placed.pod).is_disjoint(&wanted));
                if taken {
                    Status::unschedulable(REASON)
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
    fn ports_on_the_node_are_host_ports_and_those_of_host_network_pods() {
        let ports = |spec: serde_json::Value| node_ports(&pod(spec));
        let containers =
            json!([{"name": "c", "ports": [{"containerPort": 8080}, {"containerPort": 9090, "hostPort": 19090}]}]);
        assert_eq!(
            ports(json!({"containers": containers})),
            BTreeSet::from([("TCP".into(), 19090)])
        );
        assert_eq!(
            ports(json!({"runtimeClassName": "runc", "containers": containers})),
            BTreeSet::from([("TCP".into(), 19090)])
        );
        assert_eq!(
            ports(json!({"hostNetwork": true, "containers": containers})),
            BTreeSet::from([("TCP".into(), 8080), ("TCP".into(), 19090)])
        );
        assert!(ports(json!({"runtimeClassName": "wasmtime", "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]})).is_empty());
    }

    #[test]
    fn a_taken_port_keeps_the_pod_off_that_node() {
        let on_host_network = |port: i32| json!({"runtimeClassName": "runc", "hostNetwork": true, "containers": [{"name": "c", "ports": [{"containerPort": port}]}]});
        let nodes = [node("a", json!({})), node("b", json!({}))];
        let placed = snapshot(&nodes, &[bound("httpd", "a", on_host_network(8081))]);
        let decision = decide_in(&[plugin(NodePorts)], &pod(on_host_network(8081)), &placed);
        assert_eq!(outcome(&decision), Ok("b".to_string()));
        let full = snapshot(
            &nodes,
            &[
                bound("one", "a", on_host_network(8081)),
                bound("two", "b", on_host_network(8081)),
            ],
        );
        let decision = decide_in(&[plugin(NodePorts)], &pod(on_host_network(8081)), &full);
        assert_eq!(outcome(&decision), Err(format!("0/2 nodes are available: 2 {REASON}.")));
    }
}
