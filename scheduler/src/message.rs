//! Why a pod fits nowhere, and the FailedScheduling message that says so.
//!
//! The message is the one kube-scheduler writes, so that people and tools
//! reading `kubectl describe pod` see familiar text:
//!
//! ```text
//! 0/3 nodes are available: 1 Insufficient memory, 2 node(s) didn't match Pod's node affinity/selector.
//! ```
//!
//! Every reason of every rejected node is counted; the `"<count> <reason>"`
//! phrases are sorted as plain strings and joined with `", "`. When a
//! PreFilter plugin turned the pod away before any node was looked at, its
//! message stands in for the counts. A PostFilter message (preemption's)
//! follows. With no nodes at all the message is kube-scheduler's
//! `no nodes available to schedule pods`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::framework::Status;

/// The message when the cluster has no nodes.
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

/// The diagnosis of a cycle in which no node fit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FitError {
    /// How many nodes the snapshot had.
    pub num_all_nodes: usize,
    /// Why each node was rejected, by node name (empty when PreFilter
    /// rejected the pod outright).
    pub statuses: BTreeMap<String, Status>,
    /// The PreFilter rejection, when the pod was turned away before Filter.
    pub pre_filter: Option<Status>,
    /// What PostFilter had to say, if it ran and failed.
    pub post_filter_message: Option<String>,
    /// The node a PostFilter plugin nominated for the pod.
    pub nominated_node: Option<String>,
    /// The plugins that rejected the pod: the queue retries it when a
    /// cluster event one of them cares about happens.
    pub rejected_by: BTreeSet<String>,
}

impl FitError {
    /// The FailedScheduling message, exactly as kube-scheduler writes it.
    pub fn message(&self) -> String {
        if self.num_all_nodes == 0 {
            return NO_NODES_AVAILABLE.to_string();
        }
        let mut message = format!("0/{} nodes are available:", self.num_all_nodes);
        match &self.pre_filter {
            Some(status) => {
                message.push_str(&format!(" {}.", status.message()));
            }
            None => {
                let histogram = reason_histogram(self.statuses.values());
                if !histogram.is_empty() {
                    message.push_str(&format!(" {}.", histogram.join(", ")));
                }
            }
        }
        if let Some(post_filter) = self.post_filter_message.as_deref().filter(|m| !m.is_empty()) {
            message.push_str(&format!(" {post_filter}"));
        }
        message
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// `"<count> <reason>"` for every distinct reason across `statuses`,
/// sorted as strings (so `"10 …"` sorts before `"2 …"`, as in Kubernetes).
fn reason_histogram<'a>(statuses: impl Iterator<Item = &'a Status>) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for status in statuses {
        for reason in status.reasons() {
            *counts.entry(reason.as_str()).or_default() += 1;
        }
    }
    let mut phrases: Vec<String> = counts
        .into_iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    phrases.sort();
    phrases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;

    fn statuses(list: &[(&str, Status)]) -> BTreeMap<String, Status> {
        list.iter().map(|(n, s)| (n.to_string(), s.clone())).collect()
    }

    #[test]
    fn messages_match_kube_scheduler() {
        let affinity = Status::unresolvable("node(s) didn't match Pod's node affinity/selector");
        let cases = [
            (
                "one reason per node",
                FitError {
                    num_all_nodes: 3,
                    statuses: statuses(&[
                        ("a", Status::unschedulable("Insufficient memory")),
                        ("b", affinity.clone()),
                        ("c", affinity.clone()),
                    ]),
                    ..FitError::default()
                },
                "0/3 nodes are available: 1 Insufficient memory, 2 node(s) didn't match Pod's node affinity/selector.",
            ),
            (
                "several reasons on one node are each counted",
                FitError {
                    num_all_nodes: 2,
                    statuses: statuses(&[
                        (
                            "a",
                            Status::new(
                                Code::Unschedulable,
                                vec![
                                    "Too many pods".into(),
                                    "Insufficient cpu".into(),
                                    "Insufficient memory".into(),
                                ],
                            ),
                        ),
                        ("b", Status::unschedulable("Insufficient cpu")),
                    ]),
                    ..FitError::default()
                },
                "0/2 nodes are available: 1 Insufficient memory, 1 Too many pods, 2 Insufficient cpu.",
            ),
            (
                "counts sort as strings",
                FitError {
                    num_all_nodes: 12,
                    statuses: (0..12)
                        .map(|i| {
                            let status = if i < 10 {
                                Status::unresolvable("node(s) were unschedulable")
                            } else {
                                Status::unschedulable("Insufficient cpu")
                            };
                            (format!("n{i}"), status)
                        })
                        .collect(),
                    ..FitError::default()
                },
                "0/12 nodes are available: 10 node(s) were unschedulable, 2 Insufficient cpu.",
            ),
            (
                "a PreFilter rejection replaces the counts",
                FitError {
                    num_all_nodes: 2,
                    pre_filter: Some(Status::unresolvable("pod has an invalid node affinity")),
                    ..FitError::default()
                },
                "0/2 nodes are available: pod has an invalid node affinity.",
            ),
            (
                "a PostFilter message follows",
                FitError {
                    num_all_nodes: 1,
                    statuses: statuses(&[("a", Status::unschedulable("Insufficient cpu"))]),
                    post_filter_message: Some(
                        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.".into(),
                    ),
                    ..FitError::default()
                },
                "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
            ),
            ("no nodes", FitError::default(), NO_NODES_AVAILABLE),
        ];
        for (name, error, message) in cases {
            assert_eq!(error.message(), message, "{name}");
        }
    }
}
