//! Wasm Validate and Mutate plugins in the API server's admission chain.
//!
//! A [`WasmAdmissionPlugin`] sees the writes its match rules select
//! (Kubernetes' webhook rules: groups, versions, resources with
//! subresources, operations; a namespace and an object selector). Its
//! denial reaches the client as a webhook denial does. A failed call
//! applies the failure policy: `Fail` refuses the write with a 500 that
//! says which plugin failed and how, `Ignore` lets it through unchanged.
//!
//! WasmPlugin objects themselves never pass through Wasm plugins, so a
//! plugin that refuses everything can still be deleted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde_json::Value;
use skiff_api::admission::{Attributes, Denial, MutatingPlugin, Operation, ValidatingPlugin};

use crate::bindings::admission::{Mutation, Verdict};
use crate::convert;
use crate::error::CallError;
use crate::instance::PluginInstance;
use crate::metrics::Metrics;
use crate::spec::{FailurePolicy, MatchRules, Rule, Stage};

/// The group of the kinds Wasm admission plugins never see.
const OWN_GROUP: &str = "skiff.dev";

/// Namespace labels by name, for namespace selectors; kept current by the
/// plugin manager's watch. Cheap to clone; clones share one map.
#[derive(Clone, Debug, Default)]
pub struct NamespaceLabels {
    inner: Arc<RwLock<HashMap<String, BTreeMap<String, String>>>>,
}

impl NamespaceLabels {
    pub fn set(&self, namespace: &str, labels: BTreeMap<String, String>) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(namespace.to_string(), labels);
    }

    pub fn remove(&self, namespace: &str) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).remove(namespace);
    }

    fn get(&self, namespace: &str) -> BTreeMap<String, String> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }
}

/// A loaded Validate or Mutate plugin.
#[derive(Debug)]
pub struct WasmAdmissionPlugin {
    name: String,
    stage: Stage,
    failure_policy: FailurePolicy,
    rules: MatchRules,
    namespaces: NamespaceLabels,
    instance: PluginInstance,
    metrics: Arc<Metrics>,
}

impl WasmAdmissionPlugin {
    pub fn new(
        name: String,
        stage: Stage,
        failure_policy: FailurePolicy,
        rules: MatchRules,
        namespaces: NamespaceLabels,
        instance: PluginInstance,
        metrics: Arc<Metrics>,
    ) -> WasmAdmissionPlugin {
        WasmAdmissionPlugin {
            name,
            stage,
            failure_policy,
            rules,
            namespaces,
            instance,
            metrics,
        }
    }

    /// Whether the rules, the namespace selector and the object selector
    /// all select this write (one `handles` let through).
    fn selects(&self, attributes: &Attributes<'_>, object: &Value) -> bool {
        if !self.rules.rules.is_empty() && !self.rules.rules.iter().any(|rule| rule_matches(rule, attributes)) {
            return false;
        }
        if self.rules.rules.is_empty() && !default_operation(attributes.operation) {
            return false;
        }
        if let Some(selector) = &self.rules.namespace_selector {
            let labels = if attributes.resource.plural == "namespaces" && attributes.resource.group.is_empty() {
                labels_of(object)
            } else if let Some(namespace) = attributes.namespace {
                self.namespaces.get(namespace)
            } else {
                // Cluster-scoped objects are not in any namespace to select.
                return true;
            };
            if !skiff_client::selector::matches(selector, &labels) {
                return false;
            }
        }
        self.rules
            .object_selector
            .as_ref()
            .is_none_or(|selector| skiff_client::selector::matches(selector, &labels_of(object)))
    }

    /// Records a call and applies the failure policy to its error:
    /// `Ok(None)` to go on as if allowed, `Err` to refuse.
    fn failed(&self, started: Instant, error: CallError) -> Result<(), Denial> {
        self.metrics.record(started.elapsed(), Some(error.to_string()));
        match self.failure_policy {
            FailurePolicy::Ignore => {
                tracing::debug!(plugin = %self.name, %error, "plugin failed; ignored by its failure policy");
                Ok(())
            }
            FailurePolicy::Fail => Err(Denial {
                message: format!("failed calling plugin: {error}"),
                code: Some(500),
            }),
        }
    }
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Without rules, a plugin sees creates and updates.
fn default_operation(operation: Operation) -> bool {
    matches!(operation, Operation::Create | Operation::Update)
}

fn listed(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|item| item == "*" || item == value)
}

/// Kubernetes' rule matching: `deployments` matches the resource only,
/// `deployments/status` one subresource, `deployments/*` the resource's
/// subresources, `*` every resource and `*/*` everything.
fn rule_matches(rule: &Rule, attributes: &Attributes<'_>) -> bool {
    let resource = attributes.resource;
    let operation_listed = if rule.operations.is_empty() {
        default_operation(attributes.operation)
    } else {
        listed(&rule.operations, attributes.operation.as_str())
    };
    let resource_listed = rule.resources.is_empty()
        || rule.resources.iter().any(|pattern| {
            let (want_resource, want_sub) = match pattern.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (pattern.as_str(), None),
            };
            let resource_ok = want_resource == "*" || want_resource == resource.plural;
            let sub_ok = match (want_sub, attributes.subresource) {
                (None, None) => true,
                (None, Some(_)) => false,
                (Some("*"), _) => true,
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
            };
            resource_ok && sub_ok
        });
    operation_listed
        && resource_listed
        && listed(&rule.api_groups, &resource.group)
        && listed(&rule.api_versions, &resource.version)
}

fn denial(denial: crate::bindings::admission::Denial) -> Denial {
    Denial {
        message: denial.message,
        code: denial.code.filter(|code| *code >= 400),
    }
}

impl ValidatingPlugin for WasmAdmissionPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        self.stage == Stage::Validate && attributes.resource.group != OWN_GROUP
    }

    fn validate(&self, attributes: &Attributes<'_>, object: &Value, old: Option<&Value>) -> Result<(), Denial> {
        if !self.selects(attributes, object) {
            return Ok(());
        }
        // On a delete the chain hands over the stored object.
        let (object, old) = match attributes.operation {
            Operation::Delete => (None, Some(object)),
            _ => (Some(object), old),
        };
        let started = Instant::now();
        match self.instance.validate(convert::request(attributes, object, old)) {
            Ok(verdict) => {
                self.metrics.record(started.elapsed(), None);
                match verdict {
                    Verdict::Allowed => Ok(()),
                    Verdict::Denied(refusal) => Err(denial(refusal)),
                }
            }
            Err(error) => self.failed(started, error),
        }
    }
}

impl MutatingPlugin for WasmAdmissionPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        self.stage == Stage::Mutate
            && attributes.resource.group != OWN_GROUP
            && attributes.operation != Operation::Delete
    }

    fn mutate(&self, attributes: &Attributes<'_>, object: &mut Value, old: Option<&Value>) -> Result<(), Denial> {
        if !self.selects(attributes, object) {
            return Ok(());
        }
        let started = Instant::now();
        let answer = self
            .instance
            .mutate(convert::request(attributes, Some(object), old))
            .and_then(|mutation| match mutation {
                Mutation::Unchanged => Ok(None),
                Mutation::Denied(refusal) => Ok(Some(Err(denial(refusal)))),
                Mutation::Patch(patch) => {
                    let patched = apply_patch(object, &patch).map_err(CallError::Answer)?;
                    Ok(Some(Ok(patched)))
                }
            });
        match answer {
            Ok(outcome) => {
                self.metrics.record(started.elapsed(), None);
                match outcome {
                    None => Ok(()),
                    Some(Err(refusal)) => Err(refusal),
                    Some(Ok(patched)) => {
                        *object = patched;
                        Ok(())
                    }
                }
            }
            Err(error) => self.failed(started, error),
        }
    }
}

/// `object` with an RFC 6902 patch applied, or why it cannot be.
fn apply_patch(object: &Value, patch: &str) -> Result<Value, String> {
    let patch: json_patch::Patch =
        serde_json::from_str(patch).map_err(|e| format!("the patch is not a JSON patch: {e}"))?;
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).map_err(|e| format!("the patch does not apply: {e}"))?;
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_apply_or_say_why_not() {
        let object = serde_json::json!({"spec": {"a": 1}});
        let patched = apply_patch(&object, r#"[{"op": "add", "path": "/spec/b", "value": 2}]"#).unwrap();
        assert_eq!(patched, serde_json::json!({"spec": {"a": 1, "b": 2}}));
        assert!(apply_patch(&object, "nope").unwrap_err().contains("not a JSON patch"));
        assert!(
            apply_patch(&object, r#"[{"op": "remove", "path": "/nothing"}]"#)
                .unwrap_err()
                .contains("does not apply")
        );
    }

    fn rule(groups: &[&str], resources: &[&str], operations: &[&str]) -> Rule {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        Rule {
            api_groups: strings(groups),
            api_versions: Vec::new(),
            resources: strings(resources),
            operations: strings(operations),
        }
    }

    #[test]
    fn rules_match_as_webhook_rules_do() {
        let catalog = skiff_api::catalog::Catalog::new();
        let deployments = catalog.lookup("apps", "v1", "deployments").unwrap();
        let pods = catalog.lookup("", "v1", "pods").unwrap();
        let user = skiff_api::auth::UserInfo::admin();
        fn attributes<'a>(
            resource: &'a skiff_api::catalog::Resource,
            operation: Operation,
            subresource: Option<&'a str>,
            user: &'a skiff_api::auth::UserInfo,
        ) -> Attributes<'a> {
            Attributes {
                operation,
                resource,
                subresource,
                namespace: Some("default"),
                name: "x",
                user,
                dry_run: false,
            }
        }
        let create = attributes(&deployments, Operation::Create, None, &user);
        let delete = attributes(&deployments, Operation::Delete, None, &user);
        let scale = attributes(&deployments, Operation::Update, Some("scale"), &user);
        let pod = attributes(&pods, Operation::Create, None, &user);

        let apps = rule(&["apps"], &["deployments"], &["CREATE"]);
        assert!(rule_matches(&apps, &create));
        assert!(!rule_matches(&apps, &delete));
        assert!(!rule_matches(&apps, &pod));
        // No operations: creates and updates.
        let any_op = rule(&["apps"], &["deployments"], &[]);
        assert!(rule_matches(&any_op, &create));
        assert!(!rule_matches(&any_op, &delete));
        assert!(rule_matches(&rule(&["*"], &["*"], &["*"]), &delete));
        // Subresources only when named.
        assert!(!rule_matches(&rule(&[], &["deployments"], &["UPDATE"]), &scale));
        assert!(rule_matches(&rule(&[], &["deployments/scale"], &["UPDATE"]), &scale));
        assert!(rule_matches(&rule(&[], &["*/*"], &["UPDATE"]), &scale));
        assert!(!rule_matches(&rule(&[], &["*"], &["UPDATE"]), &scale));
        // The core group is the empty string.
        assert!(rule_matches(&rule(&[""], &["pods"], &[]), &pod));
        assert!(!rule_matches(&rule(&["apps"], &["pods"], &[]), &pod));
    }

    #[test]
    fn listed_treats_empty_and_star_as_any() {
        assert!(listed(&[], "apps"));
        assert!(listed(&["*".into()], "apps"));
        assert!(listed(&["apps".into()], "apps"));
        assert!(!listed(&["batch".into()], "apps"));
    }
}
