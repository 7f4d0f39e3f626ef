//! The built-in plugins, one per file, and their names.
//!
//! | plugin | points | what it does |
//! | --- | --- | --- |
//! | [`NodeUnschedulable`] | Filter | keeps pods off cordoned nodes |
//! | [`NodeName`] | Filter | honours `spec.nodeName` |
//! | [`TaintToleration`] | Filter, Score | hard taints filter, `PreferNoSchedule` taints score |
//! | [`NodeAffinity`] | PreFilter, Filter, PreScore, Score | `nodeSelector`, required and preferred node affinity |
//! | [`RuntimeSupport`] | Filter | Wasm pods to nodes with the Wasm runtime, OCI pods to nodes with runc |
//! | [`NodePorts`] | Filter | host ports, and the container ports of `hostNetwork` pods, free on the node |
//! | [`NodeResourcesFit`] | PreFilter, Filter, PreScore, Score | cpu, memory and pod-count fit; least- or most-allocated scoring |
//! | [`PodTopologySpread`] | PreFilter, Filter, PreScore, Score | `topologySpreadConstraints` |
//! | [`BalancedAllocation`] | PreScore, Score | even cpu/memory use |
//! | [`ImageLocality`] | PreScore, Score | nodes that already have the pod's images or components |
//! | [`DefaultBinder`] | Bind | `pods/binding` |

mod balanced_allocation;
mod default_binder;
mod image_locality;
pub mod matching;
mod node_affinity;
mod node_name;
mod node_ports;
mod node_resources_fit;
mod node_unschedulable;
mod pod_topology_spread;
pub mod runtime_support;
mod taint_toleration;

#[cfg(test)]
pub(crate) mod testing;

pub use balanced_allocation::BalancedAllocation;
pub use default_binder::DefaultBinder;
pub use image_locality::ImageLocality;
pub use node_affinity::NodeAffinity;
pub use node_name::NodeName;
pub use node_ports::NodePorts;
pub use node_resources_fit::{Args as NodeResourcesFitArgs, NodeResourcesFit, Strategy as ScoringStrategy};
pub use node_unschedulable::NodeUnschedulable;
pub use pod_topology_spread::PodTopologySpread;
pub use runtime_support::RuntimeSupport;
pub use taint_toleration::TaintToleration;

pub const NODE_UNSCHEDULABLE: &str = "NodeUnschedulable";
pub const NODE_NAME: &str = "NodeName";
pub const TAINT_TOLERATION: &str = "TaintToleration";
pub const NODE_AFFINITY: &str = "NodeAffinity";
pub const RUNTIME_SUPPORT: &str = "RuntimeSupport";
pub const NODE_PORTS: &str = "NodePorts";
pub const NODE_RESOURCES_FIT: &str = "NodeResourcesFit";
pub const POD_TOPOLOGY_SPREAD: &str = "PodTopologySpread";
pub const BALANCED_ALLOCATION: &str = "NodeResourcesBalancedAllocation";
pub const IMAGE_LOCALITY: &str = "ImageLocality";
pub const DEFAULT_BINDER: &str = "DefaultBinder";

/// The reasons built-in Filter plugins give, for matching on messages.
pub mod reasons {
    pub use super::node_affinity::REASON as NODE_AFFINITY;
    pub use super::node_name::REASON as NODE_NAME;
    pub use super::node_ports::REASON as NODE_PORTS;
    pub use super::node_resources_fit::{INSUFFICIENT_CPU, INSUFFICIENT_MEMORY, TOO_MANY_PODS};
    pub use super::node_unschedulable::REASON as NODE_UNSCHEDULABLE;
    pub use super::pod_topology_spread::{MISSING_LABEL_REASON as TOPOLOGY_MISSING_LABEL, REASON as TOPOLOGY_SPREAD};
    pub use super::runtime_support::{NO_OCI_REASON, NO_RUNTIME_REASON, NO_WASM_REASON};
}
