//! `RuntimeSupport`: a pod goes only to a node that can run its
//! containers.
//!
//! Nodes say what they run with labels the node agent sets:
//! `skiff.dev/runtime-wasm: "true"` when it runs Wasm components (every
//! skiff agent does) and `skiff.dev/runtime-oci: "true"` when runc works
//! there. What a pod needs is decided, in order, by:
//!
//! 1. `spec.runtimeClassName`: `wasmtime` needs the Wasm label, `runc` the
//!    OCI label (these are the RuntimeClasses every skiff cluster has); any
//!    other class has no node that provides it;
//! 2. the annotation `skiff.dev/runtime`: `wasm` or `oci`, with the same
//!    meaning (other values match no node);
//! 3. otherwise, any node with at least one runtime label. Whether an
//!    image is a Wasm component is only known once it is pulled, so the
//!    agent, not the scheduler, reports a pod whose OCI image landed on a
//!    node without runc.

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{ClusterEvent, CycleState, FilterPlugin, Plugin, Status};
use crate::snapshot::NodeInfo;

/// The node label saying the node runs Wasm components.
pub const WASM_LABEL: &str = "skiff.dev/runtime-wasm";
/// The node label saying the node runs OCI containers with runc.
pub const OCI_LABEL: &str = "skiff.dev/runtime-oci";
/// The pod annotation asking for a runtime without a RuntimeClass.
pub const RUNTIME_ANNOTATION: &str = "skiff.dev/runtime";

pub const NO_WASM_REASON: &str = "node(s) didn't have the Wasm runtime";
pub const NO_OCI_REASON: &str = "node(s) didn't have the OCI runtime (runc)";
pub const NO_RUNTIME_REASON: &str = "node(s) didn't have a workload runtime";

/// What a pod needs of a node's runtimes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    Wasm,
    Oci,
    /// Either runtime will do.
    Any,
    /// A runtime no node provides: the RuntimeClass or annotation value.
    Unknown(String),
}

/// What `pod` needs, by the rules in the module documentation.
pub fn requirement(pod: &Pod) -> Requirement {
    if let Some(class) = pod.spec.as_ref().and_then(|s| s.runtime_class_name.as_deref()) {
        return match class {
            "wasmtime" => Requirement::Wasm,
            "runc" => Requirement::Oci,
            other => Requirement::Unknown(format!("RuntimeClass {other:?}")),
        };
    }
    match pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RUNTIME_ANNOTATION))
        .map(String::as_str)
    {
        Some("wasm") => Requirement::Wasm,
        Some("oci") => Requirement::Oci,
        Some(other) => Requirement::Unknown(format!("runtime {other:?}")),
        None => Requirement::Any,
    }
}

#[derive(Debug, Default)]
pub struct RuntimeSupport;

impl Plugin for RuntimeSupport {
    fn name(&self) -> &str {
        super::RUNTIME_SUPPORT
    }
    fn events(&self) -> &'static [ClusterEvent] {
        ClusterEvent::NODE
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for RuntimeSupport {
    fn filter(&self, _: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
        let needed = requirement(pod);
        Ok(nodes
            .iter()
            .map(|node| {
                // Only the labels the requirement needs are looked up: this
                // runs for every node in every cycle.
                let wasm = || node.label(WASM_LABEL) == Some("true");
                let oci = || node.label(OCI_LABEL) == Some("true");
                match &needed {
                    Requirement::Wasm if !wasm() => Status::unresolvable(NO_WASM_REASON),
                    Requirement::Oci if !oci() => Status::unresolvable(NO_OCI_REASON),
                    Requirement::Any if !wasm() && !oci() => Status::unresolvable(NO_RUNTIME_REASON),
                    Requirement::Unknown(what) => Status::unresolvable(format!("node(s) didn't have {what}")),
                    _ => Status::success(),
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
    fn pods_land_where_their_runtime_is() {
        let nodes = [
            node(
                "none",
                json!({"metadata": {"labels": {WASM_LABEL: null, OCI_LABEL: null}}}),
            ),
            node("oci-only", json!({"metadata": {"labels": {WASM_LABEL: null}}})),
            node("wasm-only", json!({"metadata": {"labels": {OCI_LABEL: null}}})),
        ];
        let cases = [
            ("any runtime", json!({}), json!({}), Ok("oci-only")),
            (
                "wasmtime class",
                json!({}),
                json!({"runtimeClassName": "wasmtime"}),
                Ok("wasm-only"),
            ),
            (
                "runc class",
                json!({}),
                json!({"runtimeClassName": "runc"}),
                Ok("oci-only"),
            ),
            (
                "the class wins over the annotation",
                json!({"annotations": {RUNTIME_ANNOTATION: "oci"}}),
                json!({"runtimeClassName": "wasmtime"}),
                Ok("wasm-only"),
            ),
            (
                "wasm annotation",
                json!({"annotations": {RUNTIME_ANNOTATION: "wasm"}}),
                json!({}),
                Ok("wasm-only"),
            ),
            (
                "oci annotation",
                json!({"annotations": {RUNTIME_ANNOTATION: "oci"}}),
                json!({}),
                Ok("oci-only"),
            ),
            (
                "unknown class",
                json!({}),
                json!({"runtimeClassName": "kata"}),
                Err("0/3 nodes are available: 3 node(s) didn't have RuntimeClass \"kata\"."),
            ),
        ];
        for (name, meta, spec, expected) in cases {
            let decision = decide(&[plugin(RuntimeSupport)], &pod_with(meta, spec), &nodes);
            assert_eq!(
                outcome(&decision),
                expected.map(str::to_string).map_err(str::to_string),
                "{name}"
            );
        }
    }

    #[test]
    fn failure_messages() {
        let bare = [node(
            "a",
            json!({"metadata": {"labels": {WASM_LABEL: null, OCI_LABEL: null}}}),
        )];
        let wasm = [node("a", json!({"metadata": {"labels": {OCI_LABEL: null}}}))];
        let oci = [node("a", json!({"metadata": {"labels": {WASM_LABEL: null}}}))];
        let cases = [
            (
                &bare,
                json!({}),
                "0/1 nodes are available: 1 node(s) didn't have a workload runtime.",
            ),
            (
                &wasm,
                json!({"runtimeClassName": "runc"}),
                "0/1 nodes are available: 1 node(s) didn't have the OCI runtime (runc).",
            ),
            (
                &oci,
                json!({"runtimeClassName": "wasmtime"}),
                "0/1 nodes are available: 1 node(s) didn't have the Wasm runtime.",
            ),
        ];
        for (nodes, spec, message) in cases {
            let decision = decide(&[plugin(RuntimeSupport)], &pod(spec), nodes);
            assert_eq!(outcome(&decision), Err(message.to_string()));
        }
    }
}
