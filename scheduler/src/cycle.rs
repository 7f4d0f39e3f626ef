//! The scheduling cycle: a pure function from a pod, a snapshot and a
//! profile to a [`Decision`].
//!
//! 1. PreFilter plugins run once; one may reject the pod outright or
//!    narrow the nodes worth looking at.
//! 2. Filter plugins run in order over the nodes every plugin before it
//!    accepted; a node's first rejection is its reason. In a large cluster
//!    a cycle does not look at every node: like kube-scheduler it stops
//!    once it has found [`nodes_to_find`] feasible ones (100, or a share
//!    that shrinks from 50% towards 5% as the cluster grows, or the
//!    profile's `percentageOfNodesToScore`). Nodes are examined in windows
//!    of that many, each window through every Filter plugin in one call
//!    per plugin, starting where the caller says (the runner starts each
//!    cycle where the previous one stopped, so every node gets its turn).
//! 3. With no feasible node, PostFilter plugins may nominate one; the
//!    decision is [`Decision::Unschedulable`] with the per-node reasons.
//! 4. With one feasible node, it is chosen without scoring (as
//!    kube-scheduler does). With several, PreScore and Score plugins run
//!    once each over all the feasible nodes found; each plugin's scores
//!    are normalised to
//!    `0..=100` and weighted, and the node with the highest sum wins.
//!    Ties are broken by `seed`: the tied nodes in name order, index
//!    `seed % ties`.
//!
//! Nothing here does I/O or reads a clock: the same inputs give the same
//! decision.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{Code, CycleState, MAX_NODE_SCORE, MIN_NODE_SCORE, Status};
use crate::message::FitError;
use crate::profile::{ExtensionPoint, Profile};
use crate::snapshot::{NodeInfo, Snapshot};

/// One plugin's contribution to a node's score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginScore {
    /// Shared by every node's entry for the plugin.
    pub plugin: Arc<str>,
    /// The normalised score, `0..=100`.
    pub score: i64,
    pub weight: i64,
}

/// A feasible node's score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeScore {
    pub node: String,
    /// The sum of `score × weight` over the plugins.
    pub total: i64,
    pub plugins: Vec<PluginScore>,
}

/// The outcome of a cycle that found a node.
#[derive(Debug)]
pub struct Scheduled {
    /// The chosen node.
    pub node: String,
    /// Every feasible node's score, in name order (empty when only one
    /// node was feasible and scoring was skipped).
    pub scores: Vec<NodeScore>,
    /// Why each infeasible node was rejected.
    pub rejected: BTreeMap<String, Status>,
    /// How many nodes passed Filter.
    pub feasible: usize,
    /// How many nodes the cycle looked at (passed to Filter, or rejected by
    /// PreFilter's narrowing); the next cycle should start that far on.
    pub examined: usize,
    /// The cycle's state, for Reserve and Bind.
    pub state: CycleState,
}

/// What a cycle decided for a pod.
#[derive(Debug)]
pub enum Decision {
    /// The pod should be bound to `node`.
    Scheduled(Scheduled),
    /// No node fits; the error holds the reasons and the message.
    Unschedulable(FitError),
    /// A plugin failed; the pod should be retried after a back-off.
    Error(Status),
}

impl Decision {
    /// The chosen node, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Decision::Scheduled(s) => Some(&s.node),
            _ => None,
        }
    }
}

/// Below this many nodes every cycle looks at all of them, and it never
/// stops with fewer feasible ones found (kube-scheduler's
/// `minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;

/// How many feasible nodes a cycle over `nodes` candidates looks for
/// before it stops filtering; `percentage` is the profile's
/// `percentageOfNodesToScore` (`None` or 0: the adaptive default, 50% less
/// one point per 125 nodes, at least 5%).
pub fn nodes_to_find(nodes: usize, percentage: Option<u32>) -> usize {
    let percentage = match percentage {
        Some(p) if p > 0 => p as usize,
        _ => 50usize.saturating_sub(nodes / 125).max(5),
    };
    if nodes < MIN_FEASIBLE_NODES_TO_FIND || percentage >= 100 {
        return nodes;
    }
    (nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Runs one scheduling cycle for `pod` over `snapshot` with `profile`'s
/// plugins, starting with the first node; `seed` breaks score ties.
pub fn schedule(profile: &Profile, pod: &Pod, snapshot: &Snapshot, seed: u64) -> Decision {
    schedule_from(profile, pod, snapshot, seed, 0)
}

/// [`schedule`], looking at the nodes from the `start`-th (in name order,
/// wrapping around).
pub fn schedule_from(profile: &Profile, pod: &Pod, snapshot: &Snapshot, seed: u64, start: usize) -> Decision {
    let mut state = CycleState::new();
    let all: Vec<&NodeInfo> = snapshot.nodes().collect();
    let mut fit = FitError {
        num_all_nodes: all.len(),
        ..FitError::default()
    };
    if all.is_empty() {
        return Decision::Unschedulable(fit);
    }

    // PreFilter.
    let mut skip_filter = BTreeSet::new();
    let mut allowed: Option<BTreeSet<String>> = None;
    let mut narrowed_by = Vec::new();
    for enabled in profile.enabled(ExtensionPoint::PreFilter) {
        let Some(plugin) = enabled.plugin.as_pre_filter() else {
            continue;
        };
        let name = enabled.plugin.name();
        let result = plugin.pre_filter(&mut state, pod, snapshot);
        match result.status.code() {
            Code::Success => {}
            Code::Skip => {
                skip_filter.insert(name.to_string());
                continue;
            }
            Code::Error => return Decision::Error(result.status.with_plugin(name)),
            Code::Unschedulable | Code::UnschedulableAndUnresolvable => {
                fit.rejected_by.insert(name.to_string());
                fit.pre_filter = Some(result.status.with_plugin(name));
                return Decision::Unschedulable(fit);
            }
        }
        if let Some(nodes) = result.nodes {
            narrowed_by.push(name.to_string());
            allowed = Some(match allowed {
                Some(previous) => previous.intersection(&nodes).cloned().collect(),
                None => nodes,
            });
        }
    }

    // Filter.
    let mut candidates: Vec<&NodeInfo> = all;
    if let Some(allowed) = &allowed {
        let reason = format!("node(s) didn't satisfy plugin(s) [{}]", narrowed_by.join(" "));
        candidates.retain(|node| {
            let keep = allowed.contains(node.name());
            if !keep {
                fit.statuses
                    .insert(node.name().to_string(), Status::unresolvable(reason.clone()));
            }
            keep
        });
        fit.rejected_by.extend(narrowed_by);
    }
    let examined_before = fit.statuses.len();
    let to_find = nodes_to_find(candidates.len(), profile.percentage_of_nodes_to_score());
    // Rotate, so the windows start at `start`; keep each node's place in
    // name order to put the feasible ones back in it.
    let offset = if candidates.is_empty() {
        0
    } else {
        start % candidates.len()
    };
    let order: Vec<(usize, &NodeInfo)> = candidates
        .iter()
        .copied()
        .enumerate()
        .skip(offset)
        .chain(candidates.iter().copied().enumerate().take(offset))
        .collect();
    let mut feasible: Vec<(usize, &NodeInfo)> = Vec::new();
    let mut examined = 0;
    for window in order.chunks(to_find.max(1)) {
        if feasible.len() >= to_find {
            break;
        }
        examined += window.len();
        match filter(profile, &state, pod, window, &skip_filter, &mut fit) {
            Ok(kept) => feasible.extend(kept),
            Err(status) => return Decision::Error(status),
        }
    }
    feasible.sort_unstable_by_key(|(index, _)| *index);
    let candidates: Vec<&NodeInfo> = feasible.into_iter().map(|(_, node)| node).collect();
    let examined = examined + examined_before;

    // PostFilter.
    if candidates.is_empty() {
        for enabled in profile.enabled(ExtensionPoint::PostFilter) {
            let Some(plugin) = enabled.plugin.as_post_filter() else {
                continue;
            };
            let result = plugin.post_filter(&state, pod, snapshot, &fit.statuses);
            if result.status.code() == Code::Error {
                return Decision::Error(result.status.with_plugin(enabled.plugin.name()));
            }
            if result.status.is_success() {
                fit.nominated_node = result.nominated_node;
                fit.post_filter_message = None;
                break;
            }
            let message = result.status.message();
            if !message.is_empty() {
                fit.post_filter_message = Some(message);
            }
        }
        return Decision::Unschedulable(fit);
    }

    let feasible = candidates.len();
    if feasible == 1 {
        return Decision::Scheduled(Scheduled {
            node: candidates[0].name().to_string(),
            scores: Vec::new(),
            rejected: fit.statuses,
            feasible,
            examined,
            state,
        });
    }

    match score(profile, pod, snapshot, &candidates, &mut state) {
        Ok(scores) => {
            let best = scores.iter().map(|s| s.total).max().unwrap_or(0);
            let ties: Vec<&NodeScore> = scores.iter().filter(|s| s.total == best).collect();
            let index = usize::try_from(seed % ties.len() as u64).unwrap_or(0);
            let node = ties.get(index).map(|s| s.node.clone()).unwrap_or_default();
            Decision::Scheduled(Scheduled {
                node,
                scores,
                rejected: fit.statuses,
                feasible,
                examined,
                state,
            })
        }
        Err(status) => Decision::Error(status),
    }
}

/// Every Filter plugin over `window`, in order, each seeing the nodes the
/// ones before it accepted; the nodes that pass all of them. Rejections go
/// into `fit`.
fn filter<'a>(
    profile: &Profile,
    state: &CycleState,
    pod: &Pod,
    window: &[(usize, &'a NodeInfo)],
    skip: &BTreeSet<String>,
    fit: &mut FitError,
) -> Result<Vec<(usize, &'a NodeInfo)>, Status> {
    let mut candidates = window.to_vec();
    for enabled in profile.enabled(ExtensionPoint::Filter) {
        let name = enabled.plugin.name();
        let Some(plugin) = enabled.plugin.as_filter() else {
            continue;
        };
        if candidates.is_empty() {
            break;
        }
        if skip.contains(name) {
            continue;
        }
        let nodes: Vec<&NodeInfo> = candidates.iter().map(|(_, node)| *node).collect();
        let statuses = match plugin.filter(state, pod, &nodes) {
            Ok(statuses) if statuses.len() == nodes.len() => statuses,
            Ok(statuses) => {
                return Err(Status::error(format!(
                    "filter returned {} statuses for {} nodes",
                    statuses.len(),
                    nodes.len()
                ))
                .with_plugin(name));
            }
            Err(status) => return Err(status.with_plugin(name)),
        };
        if let Some(failed) = statuses.iter().find(|s| s.code() == Code::Error) {
            return Err(failed.clone().with_plugin(name));
        }
        let mut kept = Vec::with_capacity(candidates.len());
        for (candidate, status) in candidates.into_iter().zip(statuses) {
            if status.is_rejected() {
                fit.rejected_by.insert(name.to_string());
                fit.statuses
                    .insert(candidate.1.name().to_string(), status.with_plugin(name));
            } else {
                kept.push(candidate);
            }
        }
        candidates = kept;
    }
    Ok(candidates)
}

/// PreScore, Score and NormalizeScore over the feasible nodes.
fn score(
    profile: &Profile,
    pod: &Pod,
    snapshot: &Snapshot,
    nodes: &[&NodeInfo],
    state: &mut CycleState,
) -> Result<Vec<NodeScore>, Status> {
    let mut skip_score = BTreeSet::new();
    for enabled in profile.enabled(ExtensionPoint::PreScore) {
        let Some(plugin) = enabled.plugin.as_pre_score() else {
            continue;
        };
        let name = enabled.plugin.name();
        let status = plugin.pre_score(state, pod, nodes, snapshot);
        match status.code() {
            Code::Success => {}
            Code::Skip => {
                skip_score.insert(name.to_string());
            }
            _ => return Err(status.with_plugin(name)),
        }
    }

    let scorers = profile.enabled(ExtensionPoint::Score).len();
    let mut totals: Vec<NodeScore> = nodes
        .iter()
        .map(|node| NodeScore {
            node: node.name().to_string(),
            total: 0,
            plugins: Vec::with_capacity(scorers),
        })
        .collect();
    for enabled in profile.enabled(ExtensionPoint::Score) {
        let name = enabled.plugin.name();
        let Some(plugin) = enabled.plugin.as_score() else {
            continue;
        };
        if skip_score.contains(name) {
            continue;
        }
        let mut scores = plugin.score(state, pod, nodes).map_err(|s| s.with_plugin(name))?;
        if scores.len() != nodes.len() {
            return Err(Status::error(format!(
                "score returned {} scores for {} nodes",
                scores.len(),
                nodes.len()
            ))
            .with_plugin(name));
        }
        let status = plugin.normalize(state, pod, nodes, &mut scores);
        if !status.is_success() {
            return Err(status.with_plugin(name));
        }
        let plugin_name: Arc<str> = Arc::from(name);
        for (total, score) in totals.iter_mut().zip(scores) {
            if !(MIN_NODE_SCORE..=MAX_NODE_SCORE).contains(&score) {
                return Err(Status::error(format!(
                    "scored node {} {score}, outside {MIN_NODE_SCORE}..={MAX_NODE_SCORE}",
                    total.node
                ))
                .with_plugin(name));
            }
            total.total += score * enabled.weight;
            total.plugins.push(PluginScore {
                plugin: plugin_name.clone(),
                score,
                weight: enabled.weight,
            });
        }
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::framework::{FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult, ScorePlugin};
    use crate::plugins::NodeAffinity;
    use crate::plugins::testing::*;
    use serde_json::json;

    /// A plugin whose answers the test sets.
    #[derive(Debug, Default)]
    struct Scripted {
        name: &'static str,
        pre_filter: Option<PreFilterResult>,
        filter: Option<Result<Vec<Status>, Status>>,
        score: Option<Vec<i64>>,
    }

    impl Plugin for Scripted {
        fn name(&self) -> &str {
            self.name
        }
        fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
            self.pre_filter.as_ref().map(|_| self as &dyn PreFilterPlugin)
        }
        fn as_filter(&self) -> Option<&dyn FilterPlugin> {
            self.filter.as_ref().map(|_| self as &dyn FilterPlugin)
        }
        fn as_score(&self) -> Option<&dyn ScorePlugin> {
            self.score.as_ref().map(|_| self as &dyn ScorePlugin)
        }
    }

    impl PreFilterPlugin for Scripted {
        fn pre_filter(&self, _: &mut CycleState, _: &Pod, _: &Snapshot) -> PreFilterResult {
            self.pre_filter.clone().unwrap_or_else(PreFilterResult::success)
        }
    }

    impl FilterPlugin for Scripted {
        fn filter(&self, _: &CycleState, _: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
            self.filter
                .clone()
                .unwrap_or_else(|| Ok(nodes.iter().map(|_| Status::success()).collect()))
        }
    }

    impl ScorePlugin for Scripted {
        fn score(&self, _: &CycleState, _: &Pod, _: &[&NodeInfo]) -> Result<Vec<i64>, Status> {
            Ok(self.score.clone().unwrap_or_default())
        }
    }

    fn three() -> Vec<Arc<k8s_openapi::api::core::v1::Node>> {
        vec![node("a", json!({})), node("b", json!({})), node("c", json!({}))]
    }

    #[test]
    fn no_nodes_is_unschedulable() {
        let decision = decide(&[plugin(NodeAffinity)], &pod(json!({})), &[]);
        assert_eq!(
            outcome(&decision),
            Err("no nodes available to schedule pods".to_string())
        );
    }

    #[test]
    fn filters_see_only_the_survivors_and_the_first_rejection_counts() {
        let first = Scripted {
            name: "First",
            filter: Some(Ok(vec![
                Status::unschedulable("first says no"),
                Status::success(),
                Status::success(),
            ])),
            ..Scripted::default()
        };
        // Called with b and c only.
        let second = Scripted {
            name: "Second",
            filter: Some(Ok(vec![Status::unresolvable("second says no"), Status::success()])),
            ..Scripted::default()
        };
        let decision = decide(&[plugin(first), plugin(second)], &pod(json!({})), &three());
        let Decision::Scheduled(scheduled) = decision else {
            panic!("expected a node, got {decision:?}");
        };
        assert_eq!(scheduled.node, "c");
        assert_eq!(scheduled.feasible, 1);
        assert_eq!(scheduled.rejected["a"].plugin(), Some("First"));
        assert_eq!(scheduled.rejected["b"].reasons(), ["second says no"]);
    }

    #[test]
    fn plugin_failures_end_the_cycle() {
        let cases = [
            (
                "filter error",
                Scripted {
                    name: "Broken",
                    filter: Some(Err(Status::error("trap"))),
                    ..Scripted::default()
                },
            ),
            (
                "wrong number of statuses",
                Scripted {
                    name: "Broken",
                    filter: Some(Ok(vec![Status::success()])),
                    ..Scripted::default()
                },
            ),
            (
                "a per-node error",
                Scripted {
                    name: "Broken",
                    filter: Some(Ok(vec![
                        Status::success(),
                        Status::error("bad node"),
                        Status::success(),
                    ])),
                    ..Scripted::default()
                },
            ),
            (
                "a score out of range",
                Scripted {
                    name: "Broken",
                    score: Some(vec![0, 101, 5]),
                    ..Scripted::default()
                },
            ),
            (
                "a pre-filter error",
                Scripted {
                    name: "Broken",
                    pre_filter: Some(Status::error("no").into()),
                    ..Scripted::default()
                },
            ),
        ];
        for (name, broken) in cases {
            let decision = decide(&[plugin(broken)], &pod(json!({})), &three());
            let Decision::Error(status) = decision else {
                panic!("{name}: expected an error, got {decision:?}");
            };
            assert_eq!(status.plugin(), Some("Broken"), "{name}");
        }
    }

    #[test]
    fn pre_filter_rejects_or_narrows() {
        let rejecting = Scripted {
            name: "Gate",
            pre_filter: Some(Status::unresolvable("pod is gated").into()),
            ..Scripted::default()
        };
        let decision = decide(&[plugin(rejecting)], &pod(json!({})), &three());
        assert_eq!(
            outcome(&decision),
            Err("0/3 nodes are available: pod is gated.".to_string())
        );
        let Decision::Unschedulable(fit) = decision else {
            unreachable!()
        };
        assert_eq!(fit.rejected_by, BTreeSet::from(["Gate".to_string()]));

        let narrowing = Scripted {
            name: "Narrow",
            pre_filter: Some(PreFilterResult {
                status: Status::success(),
                nodes: Some(BTreeSet::from(["c".to_string()])),
            }),
            ..Scripted::default()
        };
        let decision = decide(&[plugin(narrowing)], &pod(json!({})), &three());
        assert_eq!(outcome(&decision), Ok("c".to_string()));
        let none = Scripted {
            name: "Narrow",
            pre_filter: Some(PreFilterResult {
                status: Status::success(),
                nodes: Some(BTreeSet::new()),
            }),
            ..Scripted::default()
        };
        let decision = decide(&[plugin(none)], &pod(json!({})), &three());
        assert_eq!(
            outcome(&decision),
            Err("0/3 nodes are available: 3 node(s) didn't satisfy plugin(s) [Narrow].".to_string())
        );
    }

    #[test]
    fn weights_multiply_and_ties_follow_the_seed() {
        let likes_a = Scripted {
            name: "LikesA",
            score: Some(vec![100, 0, 0]),
            ..Scripted::default()
        };
        let likes_c = Scripted {
            name: "LikesC",
            score: Some(vec![0, 0, 60]),
            ..Scripted::default()
        };
        let profile = Profile::builder("test")
            .plugin(plugin(likes_a), 1)
            .plugin(plugin(likes_c), 2)
            .build()
            .unwrap();
        let snapshot = snapshot(&three(), &[]);
        let decision = schedule(&profile, &pod(json!({})), &snapshot, 0);
        assert_eq!(decision.node(), Some("c"));
        let Decision::Scheduled(scheduled) = decision else {
            unreachable!()
        };
        assert_eq!(
            scheduled.scores.iter().map(|s| s.total).collect::<Vec<_>>(),
            [100, 0, 120]
        );

        let flat = Profile::builder("test")
            .plugin(plugin(NodeAffinity), 1)
            .build()
            .unwrap();
        let chosen: Vec<_> = (0..4)
            .map(|seed| {
                schedule(&flat, &pod(json!({})), &snapshot, seed)
                    .node()
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(
            chosen,
            [Some("a".into()), Some("b".into()), Some("c".into()), Some("a".into())]
        );
    }

    #[test]
    fn large_clusters_are_sampled_as_kube_scheduler_does() {
        // (nodes, percentageOfNodesToScore, feasible nodes to find)
        let cases = [
            (0, None, 0),
            (99, None, 99),
            (99, Some(10), 99),
            (100, None, 100),
            (200, None, 100),
            (1_000, None, 420),
            (5_000, None, 500),
            (6_000, None, 300),
            (100_000, None, 5_000),
            (5_000, Some(100), 5_000),
            (5_000, Some(1), 100),
            (5_000, Some(0), 500),
        ];
        for (nodes, percentage, expected) in cases {
            assert_eq!(
                nodes_to_find(nodes, percentage),
                expected,
                "{nodes} nodes at {percentage:?}"
            );
        }
    }

    /// Counts the nodes it is asked about; rejects those whose name ends
    /// in an odd digit.
    #[derive(Debug, Default)]
    struct EvenOnly {
        asked: std::sync::Mutex<Vec<usize>>,
    }

    impl Plugin for EvenOnly {
        fn name(&self) -> &str {
            "EvenOnly"
        }
        fn as_filter(&self) -> Option<&dyn FilterPlugin> {
            Some(self)
        }
    }

    impl FilterPlugin for EvenOnly {
        fn filter(&self, _: &CycleState, _: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
            self.asked.lock().unwrap().push(nodes.len());
            Ok(nodes
                .iter()
                .map(|n| {
                    let odd = n.name().bytes().last().is_some_and(|b| (b - b'0') % 2 == 1);
                    if odd {
                        Status::unschedulable("odd")
                    } else {
                        Status::success()
                    }
                })
                .collect())
        }
    }

    #[test]
    fn a_sampled_cycle_filters_in_windows_from_where_it_is_told_to_start() {
        let even = Arc::new(EvenOnly::default());
        let profile = Profile::builder("test")
            .plugin(even.clone(), 1)
            .plugin(plugin(NodeAffinity), 1)
            .percentage_of_nodes_to_score(Some(10))
            .build()
            .unwrap();
        let nodes: Vec<_> = (0..1_000).map(|i| node(&format!("n{i:04}"), json!({}))).collect();
        let snapshot = snapshot(&nodes, &[]);
        // 100 feasible wanted, half of each window feasible: two windows.
        let Decision::Scheduled(scheduled) = schedule_from(&profile, &pod(json!({})), &snapshot, 0, 950) else {
            panic!("expected a node");
        };
        assert_eq!(*even.asked.lock().unwrap(), [100, 100]);
        assert_eq!(scheduled.examined, 200);
        assert_eq!(scheduled.feasible, 100);
        assert_eq!(scheduled.rejected.len(), 100);
        // Scored in name order, wrapped around from n0950 to n0149.
        let scored: Vec<&str> = scheduled.scores.iter().map(|s| s.node.as_str()).collect();
        assert_eq!(scored.first(), Some(&"n0000"));
        assert_eq!(scored.last(), Some(&"n0998"));
        assert!(scored.contains(&"n0148") && !scored.contains(&"n0150"));

        // With nothing feasible every node is looked at, and counted.
        let none = schedule_from(&profile, &pod(json!({"nodeSelector": {"a": "b"}})), &snapshot, 0, 3);
        let Decision::Unschedulable(fit) = none else {
            panic!("expected no node");
        };
        assert_eq!(fit.statuses.len(), 1_000);
    }

    #[test]
    fn the_default_profile_combines_the_plugins() {
        let profile = Profile::default_profile().unwrap();
        let nodes = [
            node(
                "small",
                json!({"status": {"allocatable": {"cpu": "1", "memory": "512Mi", "pods": "10"}}}),
            ),
            node("cordoned", json!({"spec": {"unschedulable": true}})),
            node("west", json!({"metadata": {"labels": {"zone": "west"}}})),
            node("east", json!({"metadata": {"labels": {"zone": "east"}}})),
        ];
        let spec = json!({
            "nodeSelector": {"zone": "east"},
            "containers": [{"name": "c", "resources": {"requests": {"memory": "1Gi"}}}],
        });
        let snapshot = snapshot(&nodes, &[]);
        assert_eq!(
            schedule(&profile, &pod(spec.clone()), &snapshot, 0).node(),
            Some("east")
        );
        let mut spec = spec;
        spec["nodeSelector"] = json!({"zone": "north"});
        let decision = schedule(&profile, &pod(spec), &snapshot, 0);
        assert_eq!(
            outcome(&decision),
            Err("0/4 nodes are available: 1 node(s) were unschedulable, 3 node(s) didn't match Pod's node affinity/selector.".to_string())
        );

        // Without a selector, the two roomy nodes tie on everything but
        // their names; the small one is out of memory.
        let fits_big = pod(json!({"containers": [{"name": "c", "resources": {"requests": {"memory": "1Gi"}}}]}));
        let decision = schedule(&profile, &fits_big, &snapshot, 0);
        assert_eq!(decision.node(), Some("east"));
        let Decision::Scheduled(scheduled) = decision else {
            unreachable!()
        };
        assert_eq!(scheduled.feasible, 2);
        assert_eq!(scheduled.rejected["small"].reasons(), ["Insufficient memory"]);
        // TaintToleration, NodeResourcesFit and NodeResourcesBalancedAllocation
        // score; the others have nothing to say about this pod and skip.
        assert!(
            scheduled.scores.iter().all(|s| s.plugins.len() == 3),
            "{:?}",
            scheduled.scores
        );
    }
}
