//! Selector and toleration matching shared by several plugins, with
//! Kubernetes' semantics.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration};

use crate::snapshot::NodeInfo;

pub use skiff_client::selector::matches as label_selector_matches;
pub use skiff_client::taints::tolerates;

/// Whether a node's labels satisfy one node selector requirement
/// (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`).
fn label_requirement_matches(requirement: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = requirement.values.as_deref().unwrap_or(&[]);
    let value = labels.get(&requirement.key);
    let compare = |ordering: std::cmp::Ordering| {
        let (Some(value), [bound]) = (value, values) else {
            return false;
        };
        match (value.parse::<i64>(), bound.parse::<i64>()) {
            (Ok(value), Ok(bound)) => value.cmp(&bound) == ordering,
            _ => false,
        }
    };
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compare(std::cmp::Ordering::Greater),
        "Lt" => compare(std::cmp::Ordering::Less),
        _ => false,
    }
}

/// Whether a node satisfies a node selector term: all its label
/// expressions and all its field expressions (only `metadata.name` is a
/// node field selectors may name). An empty term matches no node.
pub fn node_selector_term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.labels();
    expressions.iter().all(|r| label_requirement_matches(r, labels))
        && fields.iter().all(|requirement| {
            let values = requirement.values.as_deref().unwrap_or(&[]);
            let name = node.name().to_string();
            match (requirement.key.as_str(), requirement.operator.as_str()) {
                ("metadata.name", "In") => values.contains(&name),
                ("metadata.name", "NotIn") => !values.contains(&name),
                _ => false,
            }
        })
}

/// Whether `node` satisfies the pod's hard node constraints: every
/// `nodeSelector` pair, and at least one term of the required node
/// affinity (when the pod has one).
pub fn required_node_affinity_matches(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node.labels();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref());
    selector_ok
        && required.is_none_or(|selector| {
            selector
                .node_selector_terms
                .iter()
                .any(|term| node_selector_term_matches(term, node))
        })
}

/// The first taint in `taints` that `keep` selects and no toleration
/// tolerates.
pub fn untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    keep: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|taint| keep(taint))
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// Taints that keep pods off a node: `NoSchedule` and `NoExecute`.
pub fn is_hard_taint(taint: &Taint) -> bool {
    matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
}

/// The pod's tolerations (empty when it has none).
pub fn pod_tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn labels(value: Value) -> BTreeMap<String, String> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn label_selectors() {
        let l = labels(json!({"app": "web", "tier": "front"}));
        let cases = [
            (json!({}), true),
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "db"}}), false),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Bogus"}]}),
                false,
            ),
        ];
        for (selector, expected) in cases {
            let parsed: LabelSelector = serde_json::from_value(selector.clone()).unwrap();
            assert_eq!(label_selector_matches(&parsed, &l), expected, "{selector}");
        }
    }

    #[test]
    fn node_selector_terms() {
        let node = NodeInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "n1", "labels": {"cores": "8", "zone": "a"}}})).unwrap(),
        ));
        let cases = [
            (json!({}), false),
            (
                json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["x"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}),
                true,
            ),
            (
                json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}),
                true,
            ),
            (
                json!({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}),
                false,
            ),
            (
                json!({
                    "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
                    "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}],
                }),
                false,
            ),
        ];
        for (term, expected) in cases {
            let parsed: NodeSelectorTerm = serde_json::from_value(term.clone()).unwrap();
            assert_eq!(node_selector_term_matches(&parsed, &node), expected, "{term}");
        }
    }

    #[test]
    fn tolerations() {
        let taint: Taint =
            serde_json::from_value(json!({"key": "gpu", "value": "yes", "effect": "NoSchedule"})).unwrap();
        let cases = [
            (
                json!({"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}),
                true,
            ),
            (json!({"key": "gpu", "value": "yes"}), true),
            (json!({"key": "gpu", "value": "no"}), false),
            (json!({"key": "gpu", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (
                json!({"key": "gpu", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"key": "other", "operator": "Exists"}), false),
        ];
        for (toleration, expected) in cases {
            let parsed: Toleration = serde_json::from_value(toleration.clone()).unwrap();
            assert_eq!(tolerates(&parsed, &taint), expected, "{toleration}");
        }
    }
}
