//! The `WasmPlugin` kind (`skiff.dev/v1alpha1`, cluster-scoped): what a
//! policy author writes to load a plugin, and the status skiff reports.
//!
//! The API server serves the kind from a CustomResourceDefinition it
//! creates on start (`skiff_api` bootstrap); these are the typed views the
//! plugin manager reads and writes.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// A plugin to load: which stage it serves, where its component comes
/// from, its configuration and the limits its calls run under.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "skiff.dev",
    version = "v1alpha1",
    kind = "WasmPlugin",
    plural = "wasmplugins",
    status = "WasmPluginStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginSpec {
    pub stage: Stage,
    pub component: ComponentSource,
    /// Handed to the plugin's `init` as JSON text (`{}` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Score only: what the plugin's scores are multiplied by (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Validate and Mutate only: which writes the plugin sees.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_rules: Option<MatchRules>,
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
}

/// Where in the cluster's decisions the plugin takes part; each stage has
/// its world in `wit/plugins.wit`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Scheduler Filter: world `scheduler-filter`.
    #[default]
    Filter,
    /// Scheduler Score: world `scheduler-score`.
    Score,
    /// Admission, validating: world `admission-validate`.
    Validate,
    /// Admission, mutating: world `admission-mutate`.
    Mutate,
}

impl Stage {
    /// The WIT world a component for this stage must target.
    pub fn world(self) -> &'static str {
        match self {
            Stage::Filter => "scheduler-filter",
            Stage::Score => "scheduler-score",
            Stage::Validate => "admission-validate",
            Stage::Mutate => "admission-mutate",
        }
    }

    /// Whether the stage is part of admission (as opposed to scheduling).
    pub fn is_admission(self) -> bool {
        matches!(self, Stage::Validate | Stage::Mutate)
    }
}

/// The component's bytes: pulled from a registry, or given inline.
/// Exactly one of `oci` and `inline` is set.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSource {
    /// A registry reference (`127.0.0.1:5000/plugins/policy:v1`), pulled as
    /// a Wasm OCI artifact, as workloads are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<String>,
    /// The component itself, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// `sha256:<hex>` the component must have; a mismatch refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A pull Secret (`kubernetes.io/dockerconfigjson` or `dockercfg`) in
    /// `kube-system` whose logins pull `oci` from a private registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<String>,
}

/// What happens to the request (or the pod) when the plugin fails: traps,
/// runs out of fuel or time, exceeds its memory, returns an error, or is
/// not loaded at all.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Refuse the write; fail the scheduling cycle (the pod is retried).
    #[default]
    Fail,
    /// Go on as if the plugin had allowed the write, or passed (Filter) /
    /// scored zero (Score) every node.
    Ignore,
}

/// Which writes an admission plugin sees, after Kubernetes' webhook rules.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MatchRules {
    /// A write matches when any rule does; no rules match every resource.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// For namespaced objects: the namespace's labels must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// The object's labels (the old object's, for a delete) must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<LabelSelector>,
}

/// One rule: groups, versions, resources and operations, each a list in
/// which `*` matches anything. Empty lists match anything too, except
/// `operations`, which defaults to CREATE and UPDATE.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub api_versions: Vec<String>,
    /// Plural names, optionally with a subresource (`deployments/scale`).
    #[serde(default)]
    pub resources: Vec<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `*`.
    #[serde(default)]
    pub operations: Vec<String>,
}

/// Limits on each call, as written in the object.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Wall-clock time per call, in milliseconds (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_milliseconds: Option<u64>,
    /// Fuel (about one unit per Wasm instruction) per call; none by
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// The most any linear memory of the instance may grow to, as a
    /// quantity (`64Mi`; default `128Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// What skiff reports about a plugin.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginStatus {
    /// The generation the status speaks of (the newest one tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: a version of the plugin is loaded and called. `Degraded`:
    /// the newest generation could not be loaded (an older one may still
    /// serve), or recent calls failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation whose component is serving now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_generation: Option<i64>,
    /// `sha256:<hex>` of the component serving now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Why the newest generation could not be loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_error: Option<String>,
    /// Calls made since the plugin was loaded in this server, and how many
    /// of them failed (trapped, ran out of fuel, time or memory, or
    /// returned an error).
    #[serde(default)]
    pub calls: u64,
    #[serde(default)]
    pub errors: u64,
    /// The most recent failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Call latency over the recent calls, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_microseconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_microseconds: Option<u64>,
}

/// Default wall-clock limit of a call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
/// Default memory limit of an instance.
pub const DEFAULT_MEMORY: u64 = 128 << 20;
/// The most a limit may set memory to.
pub const MAX_MEMORY: u64 = 4 << 30;
/// The most a limit may set the timeout to.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits a call runs under, resolved from a [`LimitsSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    pub fuel: Option<u64>,
    pub memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_TIMEOUT,
            fuel: None,
            memory: DEFAULT_MEMORY,
        }
    }
}

impl Limits {
    /// The limits `spec` asks for, or what is wrong with them.
    pub fn from_spec(spec: Option<&LimitsSpec>) -> Result<Limits, String> {
        let mut limits = Limits::default();
        let Some(spec) = spec else {
            return Ok(limits);
        };
        if let Some(ms) = spec.timeout_milliseconds {
            let timeout = Duration::from_millis(ms);
            if ms == 0 || timeout > MAX_TIMEOUT {
                return Err(format!(
                    "limits.timeoutMilliseconds must be between 1 and {}",
                    MAX_TIMEOUT.as_millis()
                ));
            }
            limits.timeout = timeout;
        }
        if let Some(fuel) = spec.fuel {
            if fuel == 0 {
                return Err("limits.fuel must be above 0".into());
            }
            limits.fuel = Some(fuel);
        }
        if let Some(memory) = &spec.memory {
            let bytes = skiff_quantity::Quantity::parse(memory)
                .map_err(|_| format!("limits.memory {memory:?} is not a quantity of bytes"))?
                .value();
            if bytes < (1 << 20) || bytes > i128::from(MAX_MEMORY) {
                return Err(format!("limits.memory must be between 1Mi and 4Gi, not {memory}"));
            }
            limits.memory = bytes as u64;
        }
        Ok(limits)
    }
}

impl WasmPluginSpec {
    /// The plugin's configuration as the JSON text `init` receives.
    pub fn config_json(&self) -> String {
        match &self.config {
            None | Some(serde_json::Value::Null) => "{}".to_string(),
            Some(value) => value.to_string(),
        }
    }

    /// The Score weight (1 unless set).
    pub fn weight(&self) -> i64 {
        self.weight.unwrap_or(1)
    }

    /// What is wrong with the spec beyond its shape, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match (&self.component.oci, &self.component.inline) {
            (Some(_), Some(_)) => problems.push("component: set one of oci and inline, not both".to_string()),
            (None, None) => problems.push("component: set one of oci and inline".to_string()),
            _ => {}
        }
        if self.weight.is_some() && self.stage != Stage::Score {
            problems.push("weight applies to the Score stage only".to_string());
        }
        if self.weight.is_some_and(|w| !(1..=100).contains(&w)) {
            problems.push("weight must be between 1 and 100".to_string());
        }
        if self.match_rules.is_some() && !self.stage.is_admission() {
            problems.push("match applies to the Validate and Mutate stages only".to_string());
        }
        for rule in self.match_rules.iter().flat_map(|m| &m.rules) {
            for op in &rule.operations {
                if !matches!(op.as_str(), "CREATE" | "UPDATE" | "DELETE" | "*") {
                    problems.push(format!("match.rules.operations: unknown operation {op:?}"));
                }
            }
        }
        if let Err(problem) = Limits::from_spec(self.limits.as_ref()) {
            problems.push(problem);
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_parse() {
        assert_eq!(Limits::from_spec(None), Ok(Limits::default()));
        let spec = LimitsSpec {
            timeout_milliseconds: Some(20),
            fuel: Some(1_000_000),
            memory: Some("64Mi".into()),
        };
        assert_eq!(
            Limits::from_spec(Some(&spec)),
            Ok(Limits {
                timeout: Duration::from_millis(20),
                fuel: Some(1_000_000),
                memory: 64 << 20
            })
        );
        for bad in [
            LimitsSpec {
                timeout_milliseconds: Some(0),
                ..Default::default()
            },
            LimitsSpec {
                memory: Some("lots".into()),
                ..Default::default()
            },
            LimitsSpec {
                memory: Some("100".into()),
                ..Default::default()
            },
            LimitsSpec {
                fuel: Some(0),
                ..Default::default()
            },
        ] {
            assert!(Limits::from_spec(Some(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spec_problems() {
        let mut spec = WasmPluginSpec::default();
        assert_eq!(spec.problems(), ["component: set one of oci and inline"]);
        spec.component.inline = Some("AA==".into());
        assert!(spec.problems().is_empty());
        spec.weight = Some(3);
        assert_eq!(spec.problems(), ["weight applies to the Score stage only"]);
        spec.stage = Stage::Score;
        assert!(spec.problems().is_empty());
        assert_eq!(spec.config_json(), "{}");
        spec.config = Some(serde_json::json!({"a": 1}));
        assert_eq!(spec.config_json(), r#"{"a":1}"#);
    }

    #[test]
    fn decodes_a_manifest() {
        let plugin: WasmPlugin = serde_json::from_value(serde_json::json!({
            "apiVersion": "skiff.dev/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": "p"},
            "spec": {
                "stage": "Validate",
                "component": {"oci": "127.0.0.1:5000/p:v1"},
                "failurePolicy": "Ignore",
                "match": {"rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "operations": ["CREATE"]}]},
                "limits": {"timeoutMilliseconds": 50}
            }
        }))
        .unwrap();
        assert_eq!(plugin.spec.stage, Stage::Validate);
        assert_eq!(plugin.spec.failure_policy, FailurePolicy::Ignore);
        assert_eq!(plugin.spec.match_rules.unwrap().rules[0].resources, ["deployments"]);
    }
}
