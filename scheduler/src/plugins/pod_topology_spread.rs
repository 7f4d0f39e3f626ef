//! `PodTopologySpread`: honours the pod's `topologySpreadConstraints`.
//!
//! A constraint groups nodes into domains by the value of its
//! `topologyKey` label and counts, per domain, the pods in the pod's
//! namespace that its `labelSelector` (plus `matchLabelKeys`) selects. The
//! skew of placing the pod in a domain is that domain's count, plus one if
//! the pod matches its own selector, minus the smallest count of any
//! domain (taken as 0 while there are fewer domains than `minDomains`).
//!
//! * `whenUnsatisfiable: DoNotSchedule` constraints filter: a node whose
//!   skew would exceed `maxSkew` is rejected, and a node without the
//!   topology label cannot take the pod at all.
//! * `ScheduleAnyway` constraints score: nodes in emptier domains score
//!   higher (each constraint weighted by the log of its domain count, as
//!   in Kubernetes), and nodes lacking a topology label score 0.
//!
//! Only nodes the pod could use count towards domains: with
//! `nodeAffinityPolicy: Honor` (the default) those matching its node
//! selector and required affinity, with `nodeTaintsPolicy: Honor` (default
//! `Ignore`) those whose hard taints it tolerates. Kubernetes' cluster-wide
//! default constraints, applied to pods that set none, are not applied.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::matching::{
    is_hard_taint, label_selector_matches, pod_tolerations, required_node_affinity_matches, untolerated_taint,
};
use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin, ScorePlugin,
    Status,
};
use crate::snapshot::{NodeInfo, Snapshot};

/// The reason given for a node where the skew would be too large.
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
/// The reason given for a node without a constraint's topology label.
pub const MISSING_LABEL_REASON: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

const PRE_FILTER_KEY: &str = "PreFilterPodTopologySpread";
const PRE_SCORE_KEY: &str = "PreScorePodTopologySpread";

#[derive(Debug, Default)]
pub struct PodTopologySpread;

impl Plugin for PodTopologySpread {
    fn name(&self) -> &str {
        super::POD_TOPOLOGY_SPREAD
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

/// One constraint, resolved against the pod.
#[derive(Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    min_domains: usize,
    /// `None` selects no pods.
    selector: Option<LabelSelector>,
    honor_affinity: bool,
    honor_taints: bool,
}

impl Constraint {
    fn resolve(pod: &Pod, constraint: &TopologySpreadConstraint) -> Constraint {
        let pod_labels = pod.metadata.labels.clone().unwrap_or_default();
        let selector = constraint.label_selector.clone().map(|mut selector| {
            for key in constraint.match_label_keys.iter().flatten() {
                if let Some(value) = pod_labels.get(key) {
                    selector
                        .match_expressions
                        .get_or_insert_with(Vec::new)
                        .push(LabelSelectorRequirement {
                            key: key.clone(),
                            operator: "In".into(),
                            values: Some(vec![value.clone()]),
                        });
                }
            }
            selector
        });
        Constraint {
            max_skew: i64::from(constraint.max_skew),
            topology_key: constraint.topology_key.clone(),
            min_domains: constraint.min_domains.map_or(1, |m| usize::try_from(m).unwrap_or(1)),
            selector,
            honor_affinity: constraint.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: constraint.node_taints_policy.as_deref() == Some("Honor"),
        }
    }

    fn selects(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.selector
            .as_ref()
            .is_some_and(|s| label_selector_matches(s, labels))
    }

    /// Whether `node` counts towards this constraint's domains for `pod`.
    fn counts_node(&self, pod: &Pod, node: &NodeInfo) -> bool {
        (!self.honor_affinity || required_node_affinity_matches(pod, node))
            && (!self.honor_taints || untolerated_taint(node.taints(), pod_tolerations(pod), is_hard_taint).is_none())
    }

    /// The pods on `node` in `namespace` this constraint selects.
    fn matching_pods(&self, namespace: &str, node: &NodeInfo) -> i64 {
        node.pods()
            .iter()
            .filter(|p| {
                p.pod.metadata.namespace.as_deref().unwrap_or("") == namespace
                    && p.pod.metadata.deletion_timestamp.is_none()
                    && p.pod.metadata.labels.as_ref().is_some_and(|l| self.selects(l))
            })
            .count() as i64
    }
}

fn constraints(pod: &Pod, when: &str) -> Vec<Constraint> {
    pod.spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.when_unsatisfiable == when)
        .map(|c| Constraint::resolve(pod, c))
        .collect()
}

fn has_all_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    constraints.iter().all(|c| node.label(&c.topology_key).is_some())
}

/// Adds matching pod counts per domain to `counts` (one map per
/// constraint), over the nodes that carry every constraint's key. With
/// `only_known`, only domains already in the maps are counted.
fn domain_counts(
    pod: &Pod,
    constraints: &[Constraint],
    snapshot: &Snapshot,
    mut counts: Vec<HashMap<String, i64>>,
    only_known: bool,
) -> Vec<HashMap<String, i64>> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    for node in snapshot.nodes().filter(|n| has_all_keys(n, constraints)) {
        for (constraint, domains) in constraints.iter().zip(counts.iter_mut()) {
            if !constraint.counts_node(pod, node) {
                continue;
            }
            let Some(value) = node.label(&constraint.topology_key) else {
                continue;
            };
            if only_known && !domains.contains_key(value) {
                continue;
            }
            *domains.entry(value.to_string()).or_default() += constraint.matching_pods(namespace, node);
        }
    }
    counts
}

struct FilterState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: the smallest domain count the skew is measured from.
    minimum: Vec<i64>,
    /// Per constraint: whether the pod matches its own selector.
    self_match: Vec<bool>,
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot) -> PreFilterResult {
        let constraints = constraints(pod, "DoNotSchedule");
        if constraints.is_empty() {
            return Status::skip().into();
        }
        let counts = domain_counts(
            pod,
            &constraints,
            snapshot,
            vec![HashMap::new(); constraints.len()],
            false,
        );
        let minimum = constraints
            .iter()
            .zip(&counts)
            .map(|(c, domains)| {
                if domains.len() < c.min_domains {
                    0
                } else {
                    domains.values().copied().min().unwrap_or(0)
                }
            })
            .collect();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let self_match = constraints.iter().map(|c| c.selects(&labels)).collect();
        state.write(
            PRE_FILTER_KEY,
            FilterState {
                constraints,
                counts,
                minimum,
                self_match,
            },
        );
        PreFilterResult::success()
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, _: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
        let s = state.require::<FilterState>(PRE_FILTER_KEY)?;
        Ok(nodes
            .iter()
            .map(|node| {
                for (i, constraint) in s.constraints.iter().enumerate() {
                    let Some(value) = node.label(&constraint.topology_key) else {
                        return Status::unresolvable(MISSING_LABEL_REASON);
                    };
                    let count = s.counts[i].get(value).copied().unwrap_or(0);
                    let skew = count + i64::from(s.self_match[i]) - s.minimum[i];
                    if skew > constraint.max_skew {
                        return Status::unschedulable(REASON);
                    }
                }
                Status::success()
            })
            .collect())
    }
}

struct ScoreState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    /// Feasible nodes lacking a topology label: they score 0.
    ignored: HashSet<String>,
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, nodes: &[&NodeInfo], snapshot: &Snapshot) -> Status {
        let constraints = constraints(pod, "ScheduleAnyway");
        if constraints.is_empty() {
            return Status::skip();
        }
        let mut ignored = HashSet::new();
        let mut domains = vec![HashMap::new(); constraints.len()];
        for node in nodes {
            if !has_all_keys(node, &constraints) {
                ignored.insert(node.name().to_string());
                continue;
            }
            for (constraint, domains) in constraints.iter().zip(domains.iter_mut()) {
                if let Some(value) = node.label(&constraint.topology_key) {
                    domains.insert(value.to_string(), 0);
                }
            }
        }
        let weights = domains.iter().map(|d| ((d.len() + 2) as f64).ln()).collect();
        let counts = domain_counts(pod, &constraints, snapshot, domains, true);
        state.write(
            PRE_SCORE_KEY,
            ScoreState {
                constraints,
                counts,
                weights,
                ignored,
            },
        );
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, _: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<i64>, Status> {
        let s = state.require::<ScoreState>(PRE_SCORE_KEY)?;
        Ok(nodes
            .iter()
            .map(|node| {
                if s.ignored.contains(node.name()) {
                    return 0;
                }
                let mut score = 0.0;
                for (i, constraint) in s.constraints.iter().enumerate() {
                    if let Some(value) = node.label(&constraint.topology_key) {
                        let count = s.counts[i].get(value).copied().unwrap_or(0);
                        score += count as f64 * s.weights[i] + (constraint.max_skew - 1) as f64;
                    }
                }
                score.round() as i64
            })
            .collect())
    }

    /// Fewer matching pods is better: the emptiest node scores 100.
    fn normalize(&self, state: &CycleState, _: &Pod, nodes: &[&NodeInfo], scores: &mut [i64]) -> Status {
        let s = match state.require::<ScoreState>(PRE_SCORE_KEY) {
            Ok(s) => s,
            Err(status) => return status,
        };
        let counted: Vec<i64> = nodes
            .iter()
            .zip(scores.iter())
            .filter(|(node, _)| !s.ignored.contains(node.name()))
            .map(|(_, score)| *score)
            .collect();
        let (Some(&min), Some(&max)) = (counted.iter().min(), counted.iter().max()) else {
            scores.iter_mut().for_each(|score| *score = 0);
            return Status::success();
        };
        for (node, score) in nodes.iter().zip(scores.iter_mut()) {
            *score = if s.ignored.contains(node.name()) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *score) / max
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::{Value, json};

    fn zoned(name: &str, zone: Option<&str>) -> std::sync::Arc<k8s_openapi::api::core::v1::Node> {
        let mut labels = json!({"kubernetes.io/hostname": name});
        if let Some(zone) = zone {
            labels["zone"] = json!(zone);
        }
        node(name, json!({"metadata": {"labels": labels}}))
    }

    fn web(name: &str, node: &str) -> std::sync::Arc<Pod> {
        bound_with(name, node, json!({"labels": {"app": "web"}}), json!({}))
    }

    fn spread(when: &str, extra: Value) -> Value {
        let mut constraint = json!({
            "maxSkew": 1,
            "topologyKey": "zone",
            "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}},
        });
        if let Some(map) = extra.as_object() {
            for (k, v) in map {
                constraint[k] = v.clone();
            }
        }
        json!({"topologySpreadConstraints": [constraint]})
    }

    fn web_pod(spec: Value) -> Pod {
        pod_with(json!({"labels": {"app": "web"}}), spec)
    }

    #[test]
    fn hard_constraints_filter() {
        let nodes = [
            zoned("a1", Some("a")),
            zoned("a2", Some("a")),
            zoned("b1", Some("b")),
            zoned("x", None),
        ];
        let placed = [web("w1", "a1"), web("w2", "a2"), web("w3", "b1")];
        let cases = [
            (
                "the emptier zone is the only fit",
                web_pod(spread("DoNotSchedule", json!({}))),
                &placed[..],
                Ok("b1"),
            ),
            (
                "a larger skew is allowed",
                web_pod(spread("DoNotSchedule", json!({"maxSkew": 2}))),
                &placed[..],
                Ok("a1"),
            ),
            (
                "pods elsewhere in the namespace do not count unless selected",
                web_pod(spread(
                    "DoNotSchedule",
                    json!({"labelSelector": {"matchLabels": {"app": "db"}}}),
                )),
                &placed[..],
                Ok("a1"),
            ),
            (
                "minDomains treats missing domains as empty",
                web_pod(spread("DoNotSchedule", json!({"minDomains": 3}))),
                &placed[..],
                Err(
                    "0/4 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label), 3 node(s) didn't match pod topology spread constraints.",
                ),
            ),
        ];
        for (name, pod, placed, expected) in cases {
            let decision = decide_in(&[plugin(PodTopologySpread)], &pod, &snapshot(&nodes, placed));
            assert_eq!(
                outcome(&decision),
                expected.map(str::to_string).map_err(str::to_string),
                "{name}"
            );
        }
    }

    #[test]
    fn node_affinity_policy_limits_the_domains() {
        let nodes = [zoned("a1", Some("a")), zoned("b1", Some("b"))];
        let placed = [web("w1", "a1")];
        // Zone b is out of reach of the pod's selector, so with the default
        // policy only zone a counts and its skew is 1 + 1 - 1 = 1.
        let mut spec = spread("DoNotSchedule", json!({}));
        spec["nodeSelector"] = json!({"zone": "a"});
        let decision = decide_in(
            &[plugin(PodTopologySpread)],
            &web_pod(spec.clone()),
            &snapshot(&nodes, &placed),
        );
        assert_eq!(outcome(&decision), Ok("a1".to_string()));
        // Ignoring the selector, zone b counts with 0 pods and a1 is too skewed.
        spec["topologySpreadConstraints"][0]["nodeAffinityPolicy"] = json!("Ignore");
        let decision = decide_in(&[plugin(PodTopologySpread)], &web_pod(spec), &snapshot(&nodes, &placed));
        assert_eq!(outcome(&decision), Ok("b1".to_string()));
    }

    #[test]
    fn match_label_keys_narrow_the_selector() {
        let nodes = [zoned("a1", Some("a")), zoned("b1", Some("b"))];
        let placed = [
            bound_with("old1", "a1", json!({"labels": {"app": "web", "rev": "1"}}), json!({})),
            bound_with("old2", "a1", json!({"labels": {"app": "web", "rev": "1"}}), json!({})),
            bound_with("new1", "b1", json!({"labels": {"app": "web", "rev": "2"}}), json!({})),
        ];
        let pod = pod_with(
            json!({"labels": {"app": "web", "rev": "2"}}),
            spread("DoNotSchedule", json!({"matchLabelKeys": ["rev"]})),
        );
        // Only rev 2 counts: a has 0, b has 1, so a is the only fit.
        let decision = decide_in(&[plugin(PodTopologySpread)], &pod, &snapshot(&nodes, &placed));
        assert_eq!(outcome(&decision), Ok("a1".to_string()));
    }

    #[test]
    fn soft_constraints_score() {
        let nodes = [zoned("a1", Some("a")), zoned("b1", Some("b")), zoned("x", None)];
        let placed = [web("w1", "a1"), web("w2", "a1"), web("w3", "b1")];
        let decision = decide_in(
            &[plugin(PodTopologySpread)],
            &web_pod(spread("ScheduleAnyway", json!({}))),
            &snapshot(&nodes, &placed),
        );
        assert_eq!(outcome(&decision), Ok("b1".to_string()));
        // Two domains: weight ln(4); a1 = round(2 × 1.386) = 3, b1 = round(1.386) = 1;
        // normalised 100 × (3 + 1 - s) / 3; x has no zone and scores 0.
        assert_eq!(
            scores(&decision),
            [("a1".to_string(), 33), ("b1".to_string(), 100), ("x".to_string(), 0)]
        );
    }
}
