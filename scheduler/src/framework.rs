//! The scheduling framework: the extension points a plugin implements.
//!
//! The points follow the Kubernetes scheduling framework, in the order a
//! cycle visits them:
//!
//! | point | trait | called | may |
//! | --- | --- | --- | --- |
//! | PreFilter | [`PreFilterPlugin`] | once per pod, with the whole [`Snapshot`] | reject the pod, narrow the candidate nodes, precompute [`CycleState`] |
//! | Filter | [`FilterPlugin`] | once per pod, with **all** candidate nodes | return one [`Status`] per node |
//! | PostFilter | [`PostFilterPlugin`] | when no node passed Filter | nominate a node (preemption) |
//! | PreScore | [`PreScorePlugin`] | once per pod, with the feasible nodes | precompute [`CycleState`] |
//! | Score | [`ScorePlugin`] | once per pod, with **all** feasible nodes | return one score per node, then normalise them to `0..=100` |
//! | Reserve | [`ReservePlugin`] | once the node is chosen | hold plugin state for the pod, undone by `unreserve` |
//! | Bind | [`BindPlugin`] | asynchronously, after the cycle | write the binding (the only point that does I/O) |
//!
//! Filter and Score are batched on purpose: a plugin sees every candidate
//! node in one call, so a plugin behind an expensive boundary (a Wasm
//! component) costs one call per pod, not one per node.
//!
//! One plugin value may implement several points; it says which through
//! the `as_*` methods of [`Plugin`], and a
//! [`Profile`](crate::Profile) calls it at every point it is enabled for.
//! Everything but Bind is synchronous and pure over its inputs, so a whole
//! cycle can run in a unit test.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;

use crate::snapshot::{NodeInfo, Snapshot};

/// The highest score a Score plugin may give a node after normalising.
pub const MAX_NODE_SCORE: i64 = 100;
/// The lowest score a Score plugin may give a node after normalising.
pub const MIN_NODE_SCORE: i64 = 0;

/// What a plugin concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// The pod may go ahead (at this node, for Filter).
    Success,
    /// The pod does not fit, but could after the cluster changes or other
    /// pods are preempted.
    Unschedulable,
    /// The pod does not fit, and preempting pods would not help (a node
    /// selector, a taint).
    UnschedulableAndUnresolvable,
    /// The plugin failed; the cycle ends and the pod is retried later.
    Error,
    /// From PreFilter or PreScore: this plugin has nothing to say about
    /// this pod, so its Filter or Score is not called.
    Skip,
}

/// A plugin's answer: a [`Code`], the reasons behind it (the phrases that
/// make up the FailedScheduling message) and which plugin gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    code: Code,
    reasons: Vec<String>,
    plugin: Option<String>,
}

impl Status {
    /// A status with `code` and `reasons`.
    pub fn new(code: Code, reasons: Vec<String>) -> Status {
        Status {
            code,
            reasons,
            plugin: None,
        }
    }

    pub fn success() -> Status {
        Status::new(Code::Success, Vec::new())
    }

    pub fn skip() -> Status {
        Status::new(Code::Skip, Vec::new())
    }

    /// The pod does not fit, for `reason`; the cluster changing may help.
    pub fn unschedulable(reason: impl Into<String>) -> Status {
        Status::new(Code::Unschedulable, vec![reason.into()])
    }

    /// The pod does not fit, for `reason`; preemption would not help.
    pub fn unresolvable(reason: impl Into<String>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, vec![reason.into()])
    }

    /// The plugin failed with `message`.
    pub fn error(message: impl Into<String>) -> Status {
        Status::new(Code::Error, vec![message.into()])
    }

    /// The same status, attributed to `plugin`.
    pub fn with_plugin(mut self, plugin: impl Into<String>) -> Status {
        self.plugin = Some(plugin.into());
        self
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }

    /// The plugin that gave this status, once the framework has recorded it.
    pub fn plugin(&self) -> Option<&str> {
        self.plugin.as_deref()
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether the pod was turned away (either unschedulable code).
    pub fn is_rejected(&self) -> bool {
        matches!(self.code, Code::Unschedulable | Code::UnschedulableAndUnresolvable)
    }

    /// The reasons joined with `", "`, as Kubernetes renders a status.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.plugin {
            Some(plugin) => write!(f, "{:?} from {plugin}: {}", self.code, self.message()),
            None => write!(f, "{:?}: {}", self.code, self.message()),
        }
    }
}

/// Data a plugin computes in PreFilter or PreScore and reads back in
/// Filter or Score during the same cycle, keyed by a string the plugin
/// chooses (its name, by convention).
///
/// A cycle state lives for one pod's cycle, including its Reserve and Bind.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<String, Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for CycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.data.keys().collect();
        keys.sort();
        f.debug_struct("CycleState").field("keys", &keys).finish()
    }
}

impl CycleState {
    pub fn new() -> CycleState {
        CycleState::default()
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn write<T: Any + Send + Sync>(&mut self, key: impl Into<String>, value: T) {
        self.data.insert(key.into(), Box::new(value));
    }

    /// The value under `key`, if there is one of type `T`.
    pub fn read<T: Any>(&self, key: &str) -> Option<&T> {
        self.data.get(key).and_then(|value| value.downcast_ref::<T>())
    }

    /// The value under `key`, or an error status saying it is missing
    /// (a plugin whose Filter runs without its PreFilter is misconfigured).
    pub fn require<T: Any>(&self, key: &str) -> Result<&T, Status> {
        self.read(key)
            .ok_or_else(|| Status::error(format!("{key} is missing from the cycle state")))
    }
}

/// A change in the cluster that may make a pod schedulable that was not.
///
/// Plugins list the events that can undo their rejections
/// ([`Plugin::events`]); the queue retries an unschedulable pod only on an
/// event one of the plugins that rejected it listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClusterEvent {
    NodeAdded,
    /// A node's labels, taints, allocatable resources, images or
    /// unschedulable flag changed.
    NodeChanged,
    /// A pod was bound to a node (by anyone).
    AssignedPodAdded,
    /// A bound pod's labels changed.
    AssignedPodChanged,
    /// A bound pod was deleted or finished, freeing what it requested.
    AssignedPodDeleted,
}

impl ClusterEvent {
    /// Every event.
    pub const ALL: &'static [ClusterEvent] = &[
        ClusterEvent::NodeAdded,
        ClusterEvent::NodeChanged,
        ClusterEvent::AssignedPodAdded,
        ClusterEvent::AssignedPodChanged,
        ClusterEvent::AssignedPodDeleted,
    ];
    /// Events about nodes only.
    pub const NODE: &'static [ClusterEvent] = &[ClusterEvent::NodeAdded, ClusterEvent::NodeChanged];
}

/// A scheduling plugin: a name, the events that may undo its rejections,
/// and the extension points it implements.
///
/// Each `as_*` method returns `Some(self)` for a point the plugin
/// implements; the defaults say it implements none.
pub trait Plugin: Send + Sync + fmt::Debug {
    /// The name configuration files use (`NodeResourcesFit`).
    fn name(&self) -> &str;

    /// The cluster events after which a pod this plugin rejected is worth
    /// retrying. The default, every event, is always safe.
    fn events(&self) -> &'static [ClusterEvent] {
        ClusterEvent::ALL
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        None
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        None
    }
}

/// What a PreFilter plugin decided.
#[derive(Clone, Debug)]
pub struct PreFilterResult {
    /// Success, Skip (do not call this plugin's Filter), a rejection of
    /// the pod on every node, or an error.
    pub status: Status,
    /// When set, only these nodes can fit; the others are rejected without
    /// running Filter.
    pub nodes: Option<BTreeSet<String>>,
}

impl PreFilterResult {
    /// Success, all nodes remain candidates.
    pub fn success() -> PreFilterResult {
        Status::success().into()
    }
}

impl From<Status> for PreFilterResult {
    fn from(status: Status) -> PreFilterResult {
        PreFilterResult { status, nodes: None }
    }
}

/// Runs once per pod before Filter.
pub trait PreFilterPlugin: Plugin {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot) -> PreFilterResult;
}

/// Decides, for every candidate node at once, whether the pod may run there.
pub trait FilterPlugin: Plugin {
    /// One status per entry of `nodes`, in the same order. `Err` fails the
    /// whole call (the cycle ends with an error).
    fn filter(&self, state: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status>;
}

/// What a PostFilter plugin decided.
#[derive(Clone, Debug)]
pub struct PostFilterResult {
    /// Success when it found a way (then `nominated_node` is set), a
    /// rejection with a message for the FailedScheduling event otherwise.
    pub status: Status,
    pub nominated_node: Option<String>,
}

/// Runs when no node passed Filter; preemption lives here in Kubernetes.
pub trait PostFilterPlugin: Plugin {
    /// `statuses` holds why each node was rejected.
    fn post_filter(
        &self,
        state: &CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        statuses: &BTreeMap<String, Status>,
    ) -> PostFilterResult;
}

/// Runs once per pod before Score, with the feasible nodes.
pub trait PreScorePlugin: Plugin {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, nodes: &[&NodeInfo], snapshot: &Snapshot) -> Status;
}

/// Ranks every feasible node at once.
pub trait ScorePlugin: Plugin {
    /// One raw score per entry of `nodes`, in the same order.
    fn score(&self, state: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<i64>, Status>;

    /// Maps the raw scores onto `MIN_NODE_SCORE..=MAX_NODE_SCORE` in place.
    /// The default leaves them as they are, for plugins that already score
    /// in that range.
    fn normalize(&self, state: &CycleState, pod: &Pod, nodes: &[&NodeInfo], scores: &mut [i64]) -> Status {
        let _ = (state, pod, nodes, scores);
        Status::success()
    }
}

/// Holds plugin state for a pod once its node is chosen, before binding.
pub trait ReservePlugin: Plugin {
    fn reserve(&self, state: &mut CycleState, pod: &Pod, node: &str) -> Status;
    /// Undoes `reserve`; called when reserving or binding fails. Must be
    /// idempotent.
    fn unreserve(&self, state: &mut CycleState, pod: &Pod, node: &str);
}

/// What a Bind plugin did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindOutcome {
    /// The pod is bound; no other Bind plugin runs.
    Bound,
    /// Not this plugin's pod; the next Bind plugin decides.
    Skipped,
}

/// Writes the decision to the API: the one asynchronous extension point.
pub trait BindPlugin: Plugin {
    fn bind<'a>(
        &'a self,
        client: &'a kube::Client,
        state: &'a CycleState,
        pod: &'a Pod,
        node: &'a str,
    ) -> BoxFuture<'a, crate::Result<BindOutcome>>;
}

/// Kubernetes' default normalisation: scales scores so the highest becomes
/// [`MAX_NODE_SCORE`], and with `reverse` turns "fewest is best" counts
/// into scores (all nodes score the maximum when every count is zero).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max <= 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for score in scores.iter_mut() {
        let scaled = MAX_NODE_SCORE * *score / max;
        *score = if reverse { MAX_NODE_SCORE - scaled } else { scaled };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_normalize_scales_and_reverses() {
        let mut scores = [0, 5, 10];
        default_normalize(&mut scores, false);
        assert_eq!(scores, [0, 50, 100]);
        let mut counts = [0, 1, 2];
        default_normalize(&mut counts, true);
        assert_eq!(counts, [100, 50, 0]);
        let mut zeros = [0, 0];
        default_normalize(&mut zeros, true);
        assert_eq!(zeros, [100, 100]);
        let mut zeros = [0, 0];
        default_normalize(&mut zeros, false);
        assert_eq!(zeros, [0, 0]);
    }

    #[test]
    fn cycle_state_is_typed() {
        let mut state = CycleState::new();
        state.write("a", 3_u32);
        assert_eq!(state.read::<u32>("a"), Some(&3));
        assert_eq!(state.read::<i64>("a"), None);
        assert!(state.require::<u32>("b").is_err());
    }
}
