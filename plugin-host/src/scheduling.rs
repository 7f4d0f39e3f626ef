//! Wasm Filter and Score plugins in the scheduling framework.
//!
//! A [`WasmSchedulerPlugin`] is a framework plugin like the built-ins: the
//! cycle calls it once per pod with every candidate (Filter) or feasible
//! (Score) node, and its scores are weighted with the others'. A failed
//! call applies the object's failure policy: `Fail` ends the cycle with an
//! error (the pod is retried after a back-off), `Ignore` lets every node
//! pass (Filter) or scores them all zero (Score).

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use skiff_scheduler::{CycleState, FilterPlugin, NodeInfo, Plugin, ScorePlugin, Status};

use crate::bindings::scheduling::Verdict;
use crate::convert;
use crate::error::CallError;
use crate::instance::PluginInstance;
use crate::metrics::Metrics;
use crate::spec::{FailurePolicy, Stage};

/// A loaded Filter or Score plugin.
#[derive(Debug)]
pub struct WasmSchedulerPlugin {
    name: String,
    stage: Stage,
    failure_policy: FailurePolicy,
    instance: PluginInstance,
    metrics: Arc<Metrics>,
}

impl WasmSchedulerPlugin {
    pub fn new(
        name: String,
        stage: Stage,
        failure_policy: FailurePolicy,
        instance: PluginInstance,
        metrics: Arc<Metrics>,
    ) -> WasmSchedulerPlugin {
        WasmSchedulerPlugin {
            name,
            stage,
            failure_policy,
            instance,
            metrics,
        }
    }

    /// Calls the plugin through `call`, records the outcome, and turns a
    /// failure into the failure policy's answer (`ignored`) or an error
    /// status.
    fn guarded<T>(
        &self,
        nodes: usize,
        call: impl FnOnce() -> Result<Vec<T>, CallError>,
        ignored: impl FnOnce() -> Vec<T>,
    ) -> Result<Vec<T>, Status> {
        let started = Instant::now();
        let result = call().and_then(|answers| {
            if answers.len() == nodes {
                Ok(answers)
            } else {
                Err(CallError::Answer(format!(
                    "{} answers for {nodes} nodes",
                    answers.len()
                )))
            }
        });
        let failure = result.as_ref().err().map(ToString::to_string);
        self.metrics.record(started.elapsed(), failure);
        match result {
            Ok(answers) => Ok(answers),
            Err(error) => match self.failure_policy {
                FailurePolicy::Ignore => {
                    tracing::debug!(plugin = %self.name, %error, "plugin failed; ignored by its failure policy");
                    Ok(ignored())
                }
                FailurePolicy::Fail => Err(Status::error(format!("plugin {}: {error}", self.name))),
            },
        }
    }
}

impl Plugin for WasmSchedulerPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        (self.stage == Stage::Filter).then_some(self as &dyn FilterPlugin)
    }

    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        (self.stage == Stage::Score).then_some(self as &dyn ScorePlugin)
    }
}

fn records(
    nodes: &[&NodeInfo],
) -> (
    Vec<crate::bindings::scheduling::Node>,
    Vec<Arc<k8s_openapi::api::core::v1::Node>>,
) {
    nodes
        .iter()
        .map(|info| (convert::node(info), info.node_object().clone()))
        .unzip()
}

impl FilterPlugin for WasmSchedulerPlugin {
    fn filter(&self, _state: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<Status>, Status> {
        let verdicts = self.guarded(
            nodes.len(),
            || {
                let (records, objects) = records(nodes);
                self.instance.filter(convert::pod(pod), records, objects)
            },
            || vec![Verdict::Fits; nodes.len()],
        )?;
        Ok(verdicts
            .into_iter()
            .map(|verdict| match verdict {
                Verdict::Fits => Status::success(),
                Verdict::Unschedulable(reason) => Status::unschedulable(reason),
                Verdict::Unresolvable(reason) => Status::unresolvable(reason),
            })
            .collect())
    }
}

impl ScorePlugin for WasmSchedulerPlugin {
    fn score(&self, _state: &CycleState, pod: &Pod, nodes: &[&NodeInfo]) -> Result<Vec<i64>, Status> {
        let scores = self.guarded(
            nodes.len(),
            || {
                let (records, objects) = records(nodes);
                self.instance.score(convert::pod(pod), records, objects)
            },
            || vec![0; nodes.len()],
        )?;
        Ok(scores
            .into_iter()
            .map(|s| {
                s.clamp(
                    skiff_scheduler::framework::MIN_NODE_SCORE,
                    skiff_scheduler::framework::MAX_NODE_SCORE,
                )
            })
            .collect())
    }
}
