//! `require-node-label`: a scheduler Filter plugin. A pod names, in one of
//! its annotations, a node label it needs; nodes without that label are
//! ruled out as unresolvable (no amount of waiting puts the label there).
//!
//! * The annotation is `skiff.dev/require-node-label`, or the one named by
//!   the configuration's `annotation`.
//! * Its value is a label key (`gpu`), which the node must carry with any
//!   value, or `key=value`, which the node must carry with that value.
//! * A pod without the annotation fits every node.
//!
//! Configuration: `{"annotation": "skiff.dev/require-node-label"}` (all
//! fields optional).

use std::cell::RefCell;

use serde_json::Value;

wit_bindgen::generate!({
    path: "../../wit",
    world: "scheduler-filter",
});

const DEFAULT_ANNOTATION: &str = "skiff.dev/require-node-label";

thread_local! {
    static ANNOTATION: RefCell<String> = RefCell::new(DEFAULT_ANNOTATION.to_string());
}

/// What the pod asks of a node's labels.
#[derive(Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    value: Option<String>,
}

impl Requirement {
    /// Reads the annotation's value: `key` or `key=value`.
    fn parse(text: &str) -> Result<Self, String> {
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim().to_string())),
            None => (text.trim(), None),
        };
        if key.is_empty() {
            return Err(format!("the annotation value {text:?} names no label key"));
        }
        Ok(Self {
            key: key.to_string(),
            value,
        })
    }

    fn holds_for(&self, labels: &[(String, String)]) -> bool {
        labels
            .iter()
            .any(|(key, value)| *key == self.key && self.value.as_ref().is_none_or(|wanted| wanted == value))
    }

    fn reason(&self) -> String {
        match &self.value {
            Some(value) => format!("node(s) didn't have label {}={value}", self.key),
            None => format!("node(s) didn't have label {}", self.key),
        }
    }
}

/// Reads the configuration: an object with an optional string `annotation`.
fn parse_config(config: &str) -> Result<String, String> {
    let config: Value = serde_json::from_str(config).map_err(|e| format!("config is not JSON: {e}"))?;
    let Some(fields) = config.as_object() else {
        return Err("config must be a JSON object".to_string());
    };
    match fields.get("annotation") {
        None | Some(Value::Null) => Ok(DEFAULT_ANNOTATION.to_string()),
        Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
        Some(other) => Err(format!("config.annotation must be a non-empty string, not {other}")),
    }
}

/// The verdict for every node, or an error when the annotation is malformed.
fn decide(annotation: &str, pod_annotations: &[(String, String)], nodes: &[Node]) -> Result<Vec<Verdict>, String> {
    let Some((_, text)) = pod_annotations.iter().find(|(key, _)| key == annotation) else {
        return Ok(nodes.iter().map(|_| Verdict::Fits).collect());
    };
    let requirement = Requirement::parse(text).map_err(|e| format!("pod annotation {annotation}: {e}"))?;
    Ok(nodes
        .iter()
        .map(|node| {
            if requirement.holds_for(&node.labels) {
                Verdict::Fits
            } else {
                Verdict::Unresolvable(requirement.reason())
            }
        })
        .collect())
}

struct RequireNodeLabel;

impl Guest for RequireNodeLabel {
    fn init(config: String) -> Result<(), String> {
        let annotation = parse_config(&config)?;
        ANNOTATION.with(|a| *a.borrow_mut() = annotation);
        Ok(())
    }

    fn filter(pod: Pod, nodes: Vec<Node>) -> Result<Vec<Verdict>, String> {
        ANNOTATION.with(|a| decide(&a.borrow(), &pod.annotations, &nodes))
    }
}

export!(RequireNodeLabel);

#[cfg(test)]
mod tests {
    use super::*;
    use skiff::plugins::types::Resources;

    fn node(labels: &[(&str, &str)]) -> Node {
        let none = || Resources {
            milli_cpu: 0,
            memory: 0,
            pods: 0,
        };
        Node {
            name: "n".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            taints: Vec::new(),
            allocatable: none(),
            free: none(),
            pod_count: 0,
            images: Vec::new(),
        }
    }

    fn annotations(value: &str) -> Vec<(String, String)> {
        vec![(DEFAULT_ANNOTATION.to_string(), value.to_string())]
    }

    #[test]
    fn a_pod_without_the_annotation_fits_everywhere() {
        let verdicts = decide(DEFAULT_ANNOTATION, &[], &[node(&[]), node(&[("gpu", "x")])]).unwrap();
        assert_eq!(verdicts.len(), 2);
        assert!(verdicts.iter().all(|v| matches!(v, Verdict::Fits)));
    }

    #[test]
    fn a_key_needs_the_label_with_any_value() {
        let verdicts = decide(
            DEFAULT_ANNOTATION,
            &annotations("gpu"),
            &[node(&[("gpu", "a100")]), node(&[])],
        )
        .unwrap();
        assert!(matches!(verdicts[0], Verdict::Fits));
        assert!(matches!(&verdicts[1], Verdict::Unresolvable(r) if r == "node(s) didn't have label gpu"));
    }

    #[test]
    fn a_key_value_pair_needs_that_value() {
        let nodes = [node(&[("zone", "a")]), node(&[("zone", "b")])];
        let verdicts = decide(DEFAULT_ANNOTATION, &annotations("zone=b"), &nodes).unwrap();
        assert!(matches!(&verdicts[0], Verdict::Unresolvable(r) if r == "node(s) didn't have label zone=b"));
        assert!(matches!(verdicts[1], Verdict::Fits));
    }

    #[test]
    fn an_empty_key_is_an_error() {
        assert!(decide(DEFAULT_ANNOTATION, &annotations(" =x"), &[node(&[])]).is_err());
    }

    #[test]
    fn the_config_may_rename_the_annotation() {
        assert_eq!(parse_config("{}").unwrap(), DEFAULT_ANNOTATION);
        assert_eq!(parse_config(r#"{"annotation":"x/y"}"#).unwrap(), "x/y");
        assert!(parse_config(r#"{"annotation":3}"#).is_err());
        assert!(parse_config("[]").is_err());
        assert!(parse_config("nope").is_err());
    }
}
