//! A profile: the plugins enabled at each extension point, under one
//! scheduler name.
//!
//! A profile is built from a configuration file
//! ([`ProfileConfig::build`](crate::ProfileConfig::build)) or in code with
//! [`Profile::builder`]; either way a plugin value is shared by every
//! point it is enabled at, so what its PreFilter stores its Filter finds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{BindOutcome, ClusterEvent, CycleState, Plugin, Status};
use crate::{Error, Result};

/// The scheduler name pods get when they name none.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Where in a cycle a plugin is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtensionPoint {
    PreFilter,
    Filter,
    PostFilter,
    PreScore,
    Score,
    Reserve,
    Bind,
}

impl ExtensionPoint {
    pub const ALL: [ExtensionPoint; 7] = [
        ExtensionPoint::PreFilter,
        ExtensionPoint::Filter,
        ExtensionPoint::PostFilter,
        ExtensionPoint::PreScore,
        ExtensionPoint::Score,
        ExtensionPoint::Reserve,
        ExtensionPoint::Bind,
    ];

    /// Whether `plugin` implements this point.
    pub fn implemented_by(self, plugin: &dyn Plugin) -> bool {
        match self {
            ExtensionPoint::PreFilter => plugin.as_pre_filter().is_some(),
            ExtensionPoint::Filter => plugin.as_filter().is_some(),
            ExtensionPoint::PostFilter => plugin.as_post_filter().is_some(),
            ExtensionPoint::PreScore => plugin.as_pre_score().is_some(),
            ExtensionPoint::Score => plugin.as_score().is_some(),
            ExtensionPoint::Reserve => plugin.as_reserve().is_some(),
            ExtensionPoint::Bind => plugin.as_bind().is_some(),
        }
    }

    /// The point's key in a configuration file (`preFilter`).
    pub fn config_name(self) -> &'static str {
        match self {
            ExtensionPoint::PreFilter => "preFilter",
            ExtensionPoint::Filter => "filter",
            ExtensionPoint::PostFilter => "postFilter",
            ExtensionPoint::PreScore => "preScore",
            ExtensionPoint::Score => "score",
            ExtensionPoint::Reserve => "reserve",
            ExtensionPoint::Bind => "bind",
        }
    }
}

impl fmt::Display for ExtensionPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

/// A plugin enabled at a point, with its weight (used at Score only).
#[derive(Clone, Debug)]
pub(crate) struct Enabled {
    pub plugin: Arc<dyn Plugin>,
    pub weight: i64,
}

/// The plugins of one scheduler name, by extension point, in call order.
#[derive(Clone, Debug)]
pub struct Profile {
    scheduler_name: String,
    points: BTreeMap<ExtensionPoint, Vec<Enabled>>,
    /// `percentageOfNodesToScore`; `None` for the adaptive default.
    percentage_of_nodes_to_score: Option<u32>,
}

impl Profile {
    /// A profile with no plugins, to be filled by the builder.
    pub fn builder(scheduler_name: impl Into<String>) -> ProfileBuilder {
        ProfileBuilder {
            profile: Profile {
                scheduler_name: scheduler_name.into(),
                points: BTreeMap::new(),
                percentage_of_nodes_to_score: None,
            },
            problems: Vec::new(),
        }
    }

    /// The `default-scheduler` profile with the built-in plugins and
    /// default weights.
    pub fn default_profile() -> Result<Profile> {
        crate::config::ProfileConfig::default().build(&crate::Registry::builtin())
    }

    /// The `spec.schedulerName` this profile serves.
    pub fn scheduler_name(&self) -> &str {
        &self.scheduler_name
    }

    /// The share of the nodes a cycle looks for feasible ones among
    /// (`None`: the adaptive default; see [`crate::cycle::nodes_to_find`]).
    pub fn percentage_of_nodes_to_score(&self) -> Option<u32> {
        self.percentage_of_nodes_to_score
    }

    /// The names of the plugins enabled at `point`, in call order.
    pub fn plugin_names(&self, point: ExtensionPoint) -> Vec<&str> {
        self.enabled(point).iter().map(|e| e.plugin.name()).collect()
    }

    /// The Score plugins with their weights, in call order.
    pub fn score_weights(&self) -> Vec<(&str, i64)> {
        self.enabled(ExtensionPoint::Score)
            .iter()
            .map(|e| (e.plugin.name(), e.weight))
            .collect()
    }

    pub(crate) fn enabled(&self, point: ExtensionPoint) -> &[Enabled] {
        self.points.get(&point).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Enables `plugin` at `point`, replacing a plugin of the same name
    /// there (and its weight).
    pub(crate) fn enable(&mut self, point: ExtensionPoint, plugin: Arc<dyn Plugin>, weight: i64) {
        let list = self.points.entry(point).or_default();
        match list.iter_mut().find(|e| e.plugin.name() == plugin.name()) {
            Some(existing) => *existing = Enabled { plugin, weight },
            None => list.push(Enabled { plugin, weight }),
        }
    }

    /// This profile with `plugin` also enabled at every point it
    /// implements, after the profile's own plugins.
    pub fn with_plugin(&self, plugin: Arc<dyn Plugin>, weight: i64) -> Profile {
        let mut profile = self.clone();
        profile.enable_everywhere(plugin, weight);
        profile
    }

    /// Enables `plugin` at every point it implements.
    pub(crate) fn enable_everywhere(&mut self, plugin: Arc<dyn Plugin>, weight: i64) {
        for point in ExtensionPoint::ALL {
            if point.implemented_by(plugin.as_ref()) {
                self.enable(point, plugin.clone(), weight);
            }
        }
    }

    /// Which plugins of this profile care about each cluster event.
    pub fn event_interest(&self) -> BTreeMap<ClusterEvent, BTreeSet<String>> {
        let mut interest: BTreeMap<ClusterEvent, BTreeSet<String>> = BTreeMap::new();
        for enabled in self.points.values().flatten() {
            for event in enabled.plugin.events() {
                interest
                    .entry(*event)
                    .or_default()
                    .insert(enabled.plugin.name().to_string());
            }
        }
        interest
    }

    /// Runs the Reserve plugins for `pod` on `node`. When one fails, every
    /// Reserve plugin is unreserved and its status returned.
    pub fn reserve(&self, state: &mut CycleState, pod: &Pod, node: &str) -> Status {
        for enabled in self.enabled(ExtensionPoint::Reserve) {
            let Some(plugin) = enabled.plugin.as_reserve() else {
                continue;
            };
            let status = plugin.reserve(state, pod, node);
            if !status.is_success() {
                self.unreserve(state, pod, node);
                return status.with_plugin(enabled.plugin.name());
            }
        }
        Status::success()
    }

    /// Runs every Reserve plugin's `unreserve`, in reverse order.
    pub fn unreserve(&self, state: &mut CycleState, pod: &Pod, node: &str) {
        for enabled in self.enabled(ExtensionPoint::Reserve).iter().rev() {
            if let Some(plugin) = enabled.plugin.as_reserve() {
                plugin.unreserve(state, pod, node);
            }
        }
    }

    /// Runs the Bind plugins in order until one binds the pod.
    pub async fn bind(&self, client: &kube::Client, state: &CycleState, pod: &Pod, node: &str) -> Result<()> {
        for enabled in self.enabled(ExtensionPoint::Bind) {
            let Some(plugin) = enabled.plugin.as_bind() else {
                continue;
            };
            if plugin.bind(client, state, pod, node).await? == BindOutcome::Bound {
                return Ok(());
            }
        }
        Err(Error::config(format!(
            "no Bind plugin of profile {:?} bound the pod",
            self.scheduler_name
        )))
    }
}

/// Assembles a [`Profile`] in code.
#[derive(Debug)]
pub struct ProfileBuilder {
    profile: Profile,
    problems: Vec<String>,
}

impl ProfileBuilder {
    /// Enables `plugin` at every point it implements; `weight` is its
    /// Score weight.
    pub fn plugin(mut self, plugin: Arc<dyn Plugin>, weight: i64) -> ProfileBuilder {
        self.profile.enable_everywhere(plugin, weight);
        self
    }

    /// Sets `percentageOfNodesToScore` (1–100; `None` for the adaptive
    /// default).
    pub fn percentage_of_nodes_to_score(mut self, percentage: Option<u32>) -> ProfileBuilder {
        if percentage.is_some_and(|p| p > 100) {
            self.problems
                .push("percentageOfNodesToScore must be between 0 and 100".to_string());
        }
        self.profile.percentage_of_nodes_to_score = percentage.filter(|p| *p > 0);
        self
    }

    /// Enables `plugin` at `point` only.
    pub fn at(mut self, point: ExtensionPoint, plugin: Arc<dyn Plugin>, weight: i64) -> ProfileBuilder {
        if point.implemented_by(plugin.as_ref()) {
            self.profile.enable(point, plugin, weight);
        } else {
            self.problems
                .push(format!("plugin {} does not implement {point}", plugin.name()));
        }
        self
    }

    /// The profile, or what was wrong with it.
    pub fn build(self) -> Result<Profile> {
        if !self.problems.is_empty() {
            return Err(Error::config(self.problems.join("; ")));
        }
        for enabled in self.profile.enabled(ExtensionPoint::Score) {
            if enabled.weight < 1 {
                return Err(Error::config(format!(
                    "the score weight of plugin {} must be at least 1",
                    enabled.plugin.name()
                )));
            }
        }
        Ok(self.profile)
    }
}
