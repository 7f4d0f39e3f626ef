//! Label selectors compiled once per policy: `matchLabels` and
//! `matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`), all of
//! which must hold.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A compiled `metav1.LabelSelector`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Selector {
    /// Every term must hold; no terms selects everything.
    All(Vec<Term>),
    /// A selector kube-apiserver would have refused (an unknown operator,
    /// `In` without values, `Exists` with values): Kubernetes cannot turn
    /// it into a selector at all, so it selects nothing here.
    Nothing,
}

/// One requirement on one label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Term {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// The selector that selects everything (`{}`).
    pub(crate) fn everything() -> Selector {
        Selector::All(Vec::new())
    }

    pub(crate) fn compile(selector: &LabelSelector) -> Selector {
        let mut terms: Vec<Term> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(key, value)| Term::In(key.clone(), vec![value.clone()]))
            .collect();
        for expression in selector.match_expressions.iter().flatten() {
            let key = expression.key.clone();
            let values = expression.values.clone().unwrap_or_default();
            terms.push(match (expression.operator.as_str(), values.is_empty()) {
                ("In", false) => Term::In(key, values),
                ("NotIn", false) => Term::NotIn(key, values),
                ("Exists", true) => Term::Exists(key),
                ("DoesNotExist", true) => Term::DoesNotExist(key),
                _ => return Selector::Nothing,
            });
        }
        Selector::All(terms)
    }

    /// Whether the labels `get` looks up satisfy every term.
    pub(crate) fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let Selector::All(terms) = self else { return false };
        terms.iter().all(|term| match term {
            Term::In(key, values) => get(key).is_some_and(|v| values.iter().any(|x| x == v)),
            Term::NotIn(key, values) => get(key).is_none_or(|v| values.iter().all(|x| x != v)),
            Term::Exists(key) => get(key).is_some(),
            Term::DoesNotExist(key) => get(key).is_none(),
        })
    }

    /// Whether `labels` satisfy every term.
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|key| labels.get(key).map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn selector(value: serde_json::Value) -> Selector {
        Selector::compile(&serde_json::from_value(value).unwrap())
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn terms_all_hold() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let db = labels(&[("app", "db")]);
        let none = labels(&[]);
        let cases = [
            (json!({}), [true, true, true]),
            (json!({"matchLabels": {"app": "web"}}), [true, false, false]),
            (
                json!({"matchLabels": {"app": "web", "tier": "front"}}),
                [true, false, false],
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]}),
                [true, true, false],
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}),
                [true, false, true],
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
                [true, false, false],
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
                [false, true, true],
            ),
            (
                json!({"matchLabels": {"app": "db"}, "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
                [false, true, false],
            ),
            // What kube-apiserver refuses selects nothing.
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}),
                [false, false, false],
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": []}]}),
                [false, false, false],
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["web"]}]}),
                [false, false, false],
            ),
        ];
        for (spec, expected) in cases {
            let compiled = selector(spec.clone());
            let got = [&web, &db, &none].map(|l| compiled.matches(l));
            assert_eq!(got, expected, "{spec}");
        }
    }
}
