//! A `metav1.LabelSelector` field checked as kube-apiserver's
//! `ValidateLabelSelector` does: its label keys and values, and each
//! expression's operator and values.

use serde_json::Value;

use crate::error::Cause;
use crate::selector::{label_key_errors, label_value_errors};

/// The selector at `at` (a JSON path such as `spec.podSelector`); absent or
/// `null` is fine.
pub fn validate(selector: Option<&Value>, at: &str, causes: &mut Vec<Cause>) {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return;
    };
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        let field = format!("{at}.matchLabels");
        for (key, value) in labels {
            for problem in label_key_errors(key) {
                causes.push(Cause::invalid(&field, key, problem));
            }
            let value = value.as_str().unwrap_or_default();
            for problem in label_value_errors(value) {
                causes.push(Cause::invalid(&field, value, problem));
            }
        }
    }
    let expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, expression) in expressions.iter().enumerate() {
        let at = format!("{at}.matchExpressions[{i}]");
        let operator = expression.get("operator").and_then(Value::as_str).unwrap_or_default();
        let values = expression
            .get("values")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        match operator {
            "In" | "NotIn" if values.is_empty() => causes.push(Cause {
                reason: "FieldValueRequired",
                message: "Required value: must be specified when `operator` is 'In' or 'NotIn'".into(),
                field: format!("{at}.values"),
            }),
            "Exists" | "DoesNotExist" if !values.is_empty() => causes.push(Cause::forbidden(
                format!("{at}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(Cause::invalid(
                format!("{at}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        let key = expression.get("key").and_then(Value::as_str).unwrap_or_default();
        for problem in label_key_errors(key) {
            causes.push(Cause::invalid(format!("{at}.key"), key, problem));
        }
        for (j, value) in values.iter().enumerate() {
            let value = value.as_str().unwrap_or_default();
            for problem in label_value_errors(value) {
                causes.push(Cause::invalid(format!("{at}.values[{j}]"), value, problem));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(selector: Value) -> Vec<String> {
        let mut causes = Vec::new();
        validate(Some(&selector), "spec.podSelector", &mut causes);
        causes
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn keys_values_and_operators() {
        assert!(causes(json!({})).is_empty());
        assert!(
            causes(json!({"matchLabels": {"app": "web", "example.com/tier": ""},
                          "matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]},
                                               {"key": "b", "operator": "DoesNotExist"}]}))
            .is_empty()
        );
        let found = causes(json!({
            "matchLabels": {"-bad": "ok", "good": "not ok!"},
            "matchExpressions": [
                {"key": "a", "operator": "In"},
                {"key": "b", "operator": "Exists", "values": ["x"]},
                {"key": "c", "operator": "Gt", "values": ["1"]},
                {"key": "d/e/f", "operator": "NotIn", "values": ["fine", "bad value"]},
            ],
        }));
        for expected in [
            "spec.podSelector.matchLabels: Invalid value: \"-bad\"",
            "spec.podSelector.matchLabels: Invalid value: \"not ok!\"",
            "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.podSelector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            "spec.podSelector.matchExpressions[2].operator: Invalid value: \"Gt\": not a valid selector operator",
            "spec.podSelector.matchExpressions[3].key: Invalid value: \"d/e/f\"",
            "spec.podSelector.matchExpressions[3].values[1]: Invalid value: \"bad value\"",
        ] {
            assert!(
                found.iter().any(|c| c.starts_with(expected)),
                "{expected} in {found:#?}"
            );
        }
        assert_eq!(found.len(), 7, "{found:#?}");
    }
}
