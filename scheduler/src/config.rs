//! The scheduler configuration file, in the shape of kube-scheduler's
//! `KubeSchedulerConfiguration`.
//!
//! ```yaml
//! apiVersion: kubescheduler.config.k8s.io/v1   # optional
//! kind: KubeSchedulerConfiguration             # optional
//! parallelism: 16                 # pods being bound at once (default 16)
//! podInitialBackoffSeconds: 1     # first retry delay (default 1)
//! podMaxBackoffSeconds: 10        # longest retry delay (default 10)
//! percentageOfNodesToScore: 0     # share of nodes a cycle looks at (0: adaptive)
//! profiles:
//!   - schedulerName: default-scheduler
//!     percentageOfNodesToScore: 100 # this profile looks at every node
//!     plugins:
//!       score:
//!         enabled:
//!           - {name: ImageLocality, weight: 40}
//!         disabled:
//!           - {name: NodeResourcesBalancedAllocation}
//!     pluginConfig:
//!       - name: NodeResourcesFit
//!         args:
//!           scoringStrategy: {type: MostAllocated}
//!   - schedulerName: wasm-packer
//!     plugins:
//!       multiPoint:
//!         disabled: [{name: PodTopologySpread}]
//! ```
//!
//! Every profile starts from the default plugins ([`DEFAULT_PLUGINS`],
//! enabled at every point they implement, like kube-scheduler's
//! `multiPoint` defaults) and then applies its `plugins`:
//!
//! * `multiPoint.disabled` removes default plugins from every point
//!   (`name: "*"` removes them all); `multiPoint.enabled` adds plugins at
//!   every point they implement;
//! * `<point>.disabled` removes default plugins from that point only
//!   (`"*"` for all), `<point>.enabled` adds a plugin there, or changes the
//!   weight of one already there; the plugin must implement the point.
//!
//! The points are `preFilter`, `filter`, `postFilter`, `preScore`,
//! `score`, `reserve` and `bind`. An unknown plugin name, an unknown
//! field, a duplicate scheduler name, a weight below 1 or a profile left
//! without a Bind plugin is an error naming the problem. No configuration
//! at all means the one default profile, `default-scheduler`.
//!
//! The default Score weights are the shares the design sets: resource
//! balance 30% (`NodeResourcesFit` 15, `NodeResourcesBalancedAllocation`
//! 15), image locality 20% (`ImageLocality`), node affinity 25%
//! (`NodeAffinity`). The design's remaining 25%, pod affinity, has no
//! built-in plugin yet; until it does, the pod-to-pod plugin
//! `PodTopologySpread` (20) and `TaintToleration`'s `PreferNoSchedule`
//! scoring (5) hold that share, so the weights still sum to 100.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::framework::Plugin;
use crate::plugins;
use crate::profile::{DEFAULT_SCHEDULER_NAME, ExtensionPoint, Profile};
use crate::queue::QueueConfig;
use crate::registry::Registry;
use crate::{Error, Result};

/// The default plugins in call order, with their Score weights (`None` for
/// plugins that do not score).
pub const DEFAULT_PLUGINS: &[(&str, Option<i64>)] = &[
    (plugins::NODE_UNSCHEDULABLE, None),
    (plugins::NODE_NAME, None),
    (plugins::TAINT_TOLERATION, Some(5)),
    (plugins::NODE_AFFINITY, Some(25)),
    (plugins::RUNTIME_SUPPORT, None),
    (plugins::NODE_PORTS, None),
    (plugins::NODE_RESOURCES_FIT, Some(15)),
    (plugins::POD_TOPOLOGY_SPREAD, Some(20)),
    (plugins::BALANCED_ALLOCATION, Some(15)),
    (plugins::IMAGE_LOCALITY, Some(20)),
    (plugins::DEFAULT_BINDER, None),
];

/// The `apiVersion` a configuration may declare.
pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
/// The `kind` a configuration may declare.
pub const KIND: &str = "KubeSchedulerConfiguration";
/// Pods being bound at once, by default.
pub const DEFAULT_PARALLELISM: u32 = 16;

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// How many pods may be in their binding cycle at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_initial_backoff_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_max_backoff_seconds: Option<u64>,
    /// The share of the nodes (0–100) a cycle looks for feasible ones
    /// among, for profiles that set none; 0 or unset is the adaptive
    /// default (see [`crate::cycle::nodes_to_find`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage_of_nodes_to_score: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<ProfileConfig>,
}

/// One profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileConfig {
    /// The `spec.schedulerName` it serves; `default-scheduler` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
    /// Overrides the file's `percentageOfNodesToScore` for this profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage_of_nodes_to_score: Option<u32>,
    #[serde(default)]
    pub plugins: PluginsConfig,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugin_config: Vec<PluginConfig>,
}

/// Changes to the default plugins, per extension point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginsConfig {
    #[serde(default)]
    pub multi_point: PluginSet,
    #[serde(default)]
    pub pre_filter: PluginSet,
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub post_filter: PluginSet,
    #[serde(default)]
    pub pre_score: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
    #[serde(default)]
    pub reserve: PluginSet,
    #[serde(default)]
    pub bind: PluginSet,
}

impl PluginsConfig {
    fn at(&self, point: ExtensionPoint) -> &PluginSet {
        match point {
            ExtensionPoint::PreFilter => &self.pre_filter,
            ExtensionPoint::Filter => &self.filter,
            ExtensionPoint::PostFilter => &self.post_filter,
            ExtensionPoint::PreScore => &self.pre_score,
            ExtensionPoint::Score => &self.score,
            ExtensionPoint::Reserve => &self.reserve,
            ExtensionPoint::Bind => &self.bind,
        }
    }
}

/// Plugins to enable and to disable at one point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enabled: Vec<PluginRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled: Vec<PluginRef>,
}

impl PluginSet {
    fn disables(&self, name: &str) -> bool {
        self.disabled.iter().any(|p| p.name == name || p.name == "*")
    }
}

/// A plugin by name, with its Score weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

/// Arguments for one plugin of a profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub args: Value,
}

impl SchedulerConfig {
    /// Parses a configuration from YAML (JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<SchedulerConfig> {
        if text.trim().is_empty() {
            return Ok(SchedulerConfig::default());
        }
        let config: SchedulerConfig = serde_yaml::from_str(text).map_err(|source| Error::ParseConfig { source })?;
        config.check_header()?;
        Ok(config)
    }

    /// Reads and parses the configuration file at `path`.
    pub fn from_file(path: &Path) -> Result<SchedulerConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.display().to_string(),
            source,
        })?;
        SchedulerConfig::from_yaml(&text)
    }

    fn check_header(&self) -> Result<()> {
        if let Some(version) = self.api_version.as_deref().filter(|v| *v != API_VERSION) {
            return Err(Error::config(format!("apiVersion {version:?} is not {API_VERSION:?}")));
        }
        if let Some(kind) = self.kind.as_deref().filter(|k| *k != KIND) {
            return Err(Error::config(format!("kind {kind:?} is not {KIND:?}")));
        }
        Ok(())
    }

    /// How many pods may be bound at once.
    pub fn parallelism(&self) -> Result<usize> {
        match self.parallelism {
            Some(0) => Err(Error::config("parallelism must be at least 1")),
            Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            None => Ok(DEFAULT_PARALLELISM as usize),
        }
    }

    /// The retry delays of the scheduling queue.
    pub fn queue(&self) -> Result<QueueConfig> {
        let mut queue = QueueConfig::default();
        if let Some(seconds) = self.pod_initial_backoff_seconds {
            queue.initial_backoff = Duration::from_secs(seconds);
        }
        if let Some(seconds) = self.pod_max_backoff_seconds {
            queue.max_backoff = Duration::from_secs(seconds);
        }
        if queue.initial_backoff.is_zero() || queue.max_backoff < queue.initial_backoff {
            return Err(Error::config(
                "podInitialBackoffSeconds must be at least 1 and at most podMaxBackoffSeconds",
            ));
        }
        Ok(queue)
    }

    /// The profiles, built with the plugins of `registry`; the default
    /// profile when the file names none.
    pub fn build_profiles(&self, registry: &Registry) -> Result<Vec<Profile>> {
        self.check_header()?;
        let default = [ProfileConfig::default()];
        let configs = if self.profiles.is_empty() {
            &default[..]
        } else {
            &self.profiles[..]
        };
        let mut names = BTreeSet::new();
        let mut profiles = Vec::with_capacity(configs.len());
        for config in configs {
            let mut config = config.clone();
            config.percentage_of_nodes_to_score = config
                .percentage_of_nodes_to_score
                .or(self.percentage_of_nodes_to_score);
            let profile = config.build(registry)?;
            if !names.insert(profile.scheduler_name().to_string()) {
                return Err(Error::config(format!(
                    "two profiles are named {:?}",
                    profile.scheduler_name()
                )));
            }
            profiles.push(profile);
        }
        Ok(profiles)
    }
}

/// The default Score weight of `name` (1 for plugins without one).
fn default_weight(name: &str) -> i64 {
    DEFAULT_PLUGINS
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, w)| *w)
        .unwrap_or(1)
}

impl ProfileConfig {
    /// The profile this configuration describes.
    pub fn build(&self, registry: &Registry) -> Result<Profile> {
        let scheduler_name = self.scheduler_name.as_deref().unwrap_or(DEFAULT_SCHEDULER_NAME);
        let context = |message: String| Error::config(format!("profile {scheduler_name:?}: {message}"));

        // Every name must be known (`*` may only disable).
        let sets =
            std::iter::once(&self.plugins.multi_point).chain(ExtensionPoint::ALL.iter().map(|p| self.plugins.at(*p)));
        for set in sets {
            for reference in set.enabled.iter().chain(&set.disabled) {
                let wildcard = reference.name == "*" && set.disabled.contains(reference);
                if !wildcard && !registry.contains(&reference.name) {
                    return Err(context(unknown(&reference.name, registry)));
                }
                if reference.weight.is_some_and(|w| w < 1) {
                    return Err(context(format!("the weight of {} must be at least 1", reference.name)));
                }
            }
        }
        let mut args: BTreeMap<&str, &Value> = BTreeMap::new();
        for config in &self.plugin_config {
            if !registry.contains(&config.name) {
                return Err(context(format!("pluginConfig: {}", unknown(&config.name, registry))));
            }
            if args.insert(&config.name, &config.args).is_some() {
                return Err(context(format!("pluginConfig names {} twice", config.name)));
            }
        }

        // One value per plugin, shared by every point it is enabled at.
        let mut instances: BTreeMap<String, Arc<dyn Plugin>> = BTreeMap::new();
        let mut instance = |name: &str| -> Result<Arc<dyn Plugin>> {
            if let Some(plugin) = instances.get(name) {
                return Ok(plugin.clone());
            }
            let plugin = registry.instantiate(name, args.get(name).copied().unwrap_or(&Value::Null))?;
            instances.insert(name.to_string(), plugin.clone());
            Ok(plugin)
        };

        let multi_point = &self.plugins.multi_point;
        let mut defaults: Vec<PluginRef> = DEFAULT_PLUGINS
            .iter()
            .filter(|(name, _)| !multi_point.disables(name))
            .map(|(name, weight)| PluginRef {
                name: name.to_string(),
                weight: *weight,
            })
            .collect();
        for enabled in &multi_point.enabled {
            match defaults.iter_mut().find(|d| d.name == enabled.name) {
                Some(existing) => existing.weight = enabled.weight.or(existing.weight),
                None => defaults.push(enabled.clone()),
            }
        }

        let mut builder =
            Profile::builder(scheduler_name).percentage_of_nodes_to_score(self.percentage_of_nodes_to_score);
        let mut profile_points: Vec<(ExtensionPoint, Arc<dyn Plugin>, i64)> = Vec::new();
        for point in ExtensionPoint::ALL {
            let set = self.plugins.at(point);
            for reference in &defaults {
                if set.disables(&reference.name) {
                    continue;
                }
                let plugin = instance(&reference.name)?;
                if point.implemented_by(plugin.as_ref()) {
                    let weight = reference.weight.unwrap_or_else(|| default_weight(&reference.name));
                    profile_points.push((point, plugin, weight));
                }
            }
            for reference in &set.enabled {
                let plugin = instance(&reference.name)?;
                if !point.implemented_by(plugin.as_ref()) {
                    return Err(context(format!("plugin {} does not implement {point}", reference.name)));
                }
                let weight = reference.weight.unwrap_or_else(|| default_weight(&reference.name));
                profile_points.push((point, plugin, weight));
            }
        }
        for (point, plugin, weight) in profile_points {
            builder = builder.at(point, plugin, weight);
        }
        let profile = builder.build().map_err(|e| context(e.to_string()))?;
        if profile.plugin_names(ExtensionPoint::Bind).is_empty() {
            return Err(context("no Bind plugin is enabled".into()));
        }
        Ok(profile)
    }
}

fn unknown(name: &str, registry: &Registry) -> String {
    format!(
        "unknown plugin {name:?} (known plugins: {})",
        registry.names().collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str) -> Result<Vec<Profile>> {
        SchedulerConfig::from_yaml(yaml)?.build_profiles(&Registry::builtin())
    }

    #[test]
    fn no_configuration_is_the_default_profile() {
        let profiles = build("").unwrap();
        assert_eq!(profiles.len(), 1);
        let profile = &profiles[0];
        assert_eq!(profile.scheduler_name(), "default-scheduler");
        assert_eq!(
            profile.plugin_names(ExtensionPoint::Filter),
            [
                "NodeUnschedulable",
                "NodeName",
                "TaintToleration",
                "NodeAffinity",
                "RuntimeSupport",
                "NodePorts",
                "NodeResourcesFit",
                "PodTopologySpread",
            ]
        );
        assert_eq!(
            profile.score_weights(),
            [
                ("TaintToleration", 5),
                ("NodeAffinity", 25),
                ("NodeResourcesFit", 15),
                ("PodTopologySpread", 20),
                ("NodeResourcesBalancedAllocation", 15),
                ("ImageLocality", 20),
            ]
        );
        assert_eq!(profile.score_weights().iter().map(|(_, w)| w).sum::<i64>(), 100);
        assert_eq!(profile.plugin_names(ExtensionPoint::Bind), ["DefaultBinder"]);
        assert_eq!(
            profile.plugin_names(ExtensionPoint::PreFilter),
            ["NodeAffinity", "NodeResourcesFit", "PodTopologySpread"]
        );
    }

    #[test]
    fn the_documented_example_builds() {
        let example: String = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.strip_prefix("//! ").unwrap_or("").to_string() + "\n")
            .collect();
        let profiles = build(&example).unwrap();
        assert_eq!(
            profiles.iter().map(Profile::scheduler_name).collect::<Vec<_>>(),
            ["default-scheduler", "wasm-packer"]
        );
        assert!(
            !profiles[1]
                .plugin_names(ExtensionPoint::Filter)
                .contains(&"PodTopologySpread")
        );
    }

    #[test]
    fn profiles_change_the_defaults() {
        let profiles = build(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
parallelism: 4
profiles:
  - plugins:
      score:
        enabled:
          - {name: ImageLocality, weight: 40}
        disabled:
          - {name: NodeResourcesBalancedAllocation}
    pluginConfig:
      - name: NodeResourcesFit
        args:
          scoringStrategy: {type: MostAllocated}
  - schedulerName: bare
    plugins:
      multiPoint:
        disabled: [{name: "*"}]
        enabled: [{name: NodeResourcesFit, weight: 3}, {name: DefaultBinder}]
  - schedulerName: no-spread
    plugins:
      filter:
        disabled: [{name: PodTopologySpread}]
"#,
        )
        .unwrap();
        let weights = profiles[0].score_weights();
        assert!(weights.contains(&("ImageLocality", 40)), "{weights:?}");
        assert!(!weights.iter().any(|(n, _)| *n == "NodeResourcesBalancedAllocation"));
        assert_eq!(profiles[1].scheduler_name(), "bare");
        assert_eq!(profiles[1].plugin_names(ExtensionPoint::Filter), ["NodeResourcesFit"]);
        assert_eq!(profiles[1].score_weights(), [("NodeResourcesFit", 3)]);
        assert!(
            !profiles[2]
                .plugin_names(ExtensionPoint::Filter)
                .contains(&"PodTopologySpread")
        );
        assert!(
            profiles[2]
                .plugin_names(ExtensionPoint::Score)
                .contains(&"PodTopologySpread")
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                "profiles: [{plugins: {filter: {enabled: [{name: Bogus}]}}}]",
                "unknown plugin \"Bogus\"",
            ),
            (
                "profiles: [{pluginConfig: [{name: Nope, args: {}}]}]",
                "unknown plugin \"Nope\"",
            ),
            ("profiles: [{}, {}]", "two profiles are named \"default-scheduler\""),
            (
                "profiles: [{plugins: {score: {enabled: [{name: NodeName}]}}}]",
                "plugin NodeName does not implement score",
            ),
            (
                "profiles: [{plugins: {score: {enabled: [{name: ImageLocality, weight: 0}]}}}]",
                "must be at least 1",
            ),
            (
                "profiles: [{plugins: {bind: {disabled: [{name: \"*\"}]}}}]",
                "no Bind plugin",
            ),
            (
                "profiles: [{pluginConfig: [{name: NodeName, args: {x: 1}}]}]",
                "takes no arguments",
            ),
            ("kind: Deployment", "kind \"Deployment\""),
            ("parallelism: 0", "parallelism must be at least 1"),
            (
                "percentageOfNodesToScore: 101",
                "percentageOfNodesToScore must be between 0 and 100",
            ),
            (
                "profiles: [{percentageOfNodesToScore: 150}]",
                "percentageOfNodesToScore must be between 0 and 100",
            ),
        ];
        for (yaml, expected) in cases {
            let error = SchedulerConfig::from_yaml(yaml)
                .and_then(|c| {
                    c.parallelism()?;
                    c.build_profiles(&Registry::builtin())
                })
                .err()
                .unwrap_or_else(|| panic!("{yaml} should fail"));
            assert!(error.to_string().contains(expected), "{yaml}: {error}");
        }
        let unknown_field = SchedulerConfig::from_yaml("profiles: [{plugins: {permit: {}}}]").unwrap_err();
        // A profile's share overrides the file's.
        let shares = build(
            "percentageOfNodesToScore: 30\nprofiles: [{schedulerName: a}, {schedulerName: b, percentageOfNodesToScore: 100}]",
        )
        .unwrap();
        assert_eq!(shares[0].percentage_of_nodes_to_score(), Some(30));
        assert_eq!(shares[1].percentage_of_nodes_to_score(), Some(100));
        assert!(matches!(unknown_field, Error::ParseConfig { .. }));
        let bad_args =
            build("profiles: [{pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy: {type: Packed}}}]}]")
                .unwrap_err();
        assert!(matches!(bad_args, Error::PluginArgs { .. }), "{bad_args}");
    }

    #[test]
    fn queue_delays() {
        let config = SchedulerConfig::from_yaml("podInitialBackoffSeconds: 2\npodMaxBackoffSeconds: 20").unwrap();
        let queue = config.queue().unwrap();
        assert_eq!(queue.initial_backoff, Duration::from_secs(2));
        assert_eq!(queue.max_backoff, Duration::from_secs(20));
        assert!(
            SchedulerConfig::from_yaml("podInitialBackoffSeconds: 0")
                .unwrap()
                .queue()
                .is_err()
        );
        assert_eq!(SchedulerConfig::default().parallelism().unwrap(), 16);
    }
}
