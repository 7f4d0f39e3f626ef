//! The horizontal pod autoscaler: every sync period, each
//! `autoscaling/v2` HorizontalPodAutoscaler's target is scaled through its
//! `scale` subresource (Deployments, ReplicaSets, StatefulSets, and custom
//! resources that declare one) to the count its metrics ask for, as
//! kube-controller-manager's does.
//!
//! A sync reads the target's scale, the pods its selector names, and their
//! figures: for `Resource` metrics (CPU, memory) the Metrics API
//! (`metrics.k8s.io`, which the API server serves from the agents'
//! summaries), as a `Utilization` of the pods' requests or an
//! `AverageValue`; for `Pods` metrics the custom metrics API
//! (`custom.metrics.k8s.io`, where the API server serves Wasm services'
//! `requests-per-second` and `requests-in-flight`). Each metric proposes a count ([`replicas`], pure); the
//! highest wins; [`behavior`] (pure) holds it to the stabilization windows
//! and rate policies and to min/max. The target is rescaled when the count
//! changes, with a `SuccessfulRescale` Event; the status gets the current
//! figures and the conditions `kubectl describe hpa` shows (`AbleToScale`,
//! `ScalingActive`, `ScalingLimited`, with Kubernetes' reasons).
//!
//! Simplified compared with Kubernetes:
//! * A pod counts as unready for CPU when it is not Ready; Kubernetes also
//!   treats a Ready pod as unready during its first five minutes when its
//!   last figure predates its readiness.
//! * `Object`, `External` and `ContainerResource` metrics are not read:
//!   such a metric reports `ScalingActive=False` (`FailedGetObjectMetric`
//!   and the like) and proposes nothing, while other metrics still count.
//! * An autoscaler without `behavior` follows Kubernetes' default
//!   `behavior` (see [`behavior`]).
//! * The windows and scale events an autoscaler remembers live in this
//!   process: a new leader starts them afresh, as a restarted
//!   kube-controller-manager does.

pub mod behavior;
pub mod replicas;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::{
    HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerCondition,
    MetricSpec,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use skiff_client::events::{Kind, Recorder, reference};
use skiff_quantity::Quantity;

use crate::error::{Result, is_not_found};
use behavior::{Bounds, History, Rules};
use replicas::{Phase, Pod as CountedPod, Proposal, Unavailable};

/// How the autoscaler runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often each autoscaler is synced
    /// (`--horizontal-pod-autoscaler-sync-period`, 15 s).
    pub sync_period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sync_period: Duration::from_secs(15),
        }
    }
}

struct Context {
    client: kube::Client,
    events: Recorder,
    config: Config,
    histories: Mutex<HashMap<ObjectRef<HorizontalPodAutoscaler>, History>>,
}

/// Runs the autoscaler until the client's watches end.
pub async fn run(client: kube::Client, config: Config) {
    let context = Arc::new(Context {
        events: Recorder::new(client.clone(), "horizontal-pod-autoscaler", None),
        client: client.clone(),
        config,
        histories: Mutex::default(),
    });
    Controller::new(Api::<HorizontalPodAutoscaler>::all(client), watcher::Config::default())
        .run(
            crate::metered("horizontalpodautoscaler", reconcile),
            crate::retry_later,
            context,
        )
        .for_each(|result| async move { crate::log_outcome("horizontal-pod-autoscaler", result) })
        .await;
}

/// What one sync found and did, written to the status.
#[derive(Debug, Default)]
struct Outcome {
    conditions: Vec<(&'static str, bool, &'static str, String)>,
    current_metrics: Vec<Value>,
    desired: i32,
    current: i32,
    rescaled: bool,
}

impl Outcome {
    fn condition(&mut self, kind: &'static str, status: bool, reason: &'static str, message: impl Into<String>) {
        self.conditions.retain(|c| c.0 != kind);
        self.conditions.push((kind, status, reason, message.into()));
    }
}

async fn reconcile(hpa: Arc<HorizontalPodAutoscaler>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = hpa.namespace().unwrap_or_default();
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), &namespace);
    if hpa.metadata.deletion_timestamp.is_some() {
        lock(&ctx.histories).remove(&ObjectRef::from_obj(hpa.as_ref()));
        return Ok(Action::await_change());
    }
    let mut outcome = Outcome::default();
    let synced = sync(&hpa, &ctx, &mut outcome).await;
    if let Err(error) = &synced {
        tracing::debug!(hpa = %hpa.name_any(), %error, "autoscaler sync failed");
    }
    let status = status(&hpa, &outcome);
    match hpas
        .patch_status(
            &hpa.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
        Err(e) => return Err(e.into()),
    }
    Ok(Action::requeue(ctx.config.sync_period))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The target's scale subresource, through discovery of its kind.
async fn scale_api(ctx: &Context, hpa: &HorizontalPodAutoscaler) -> Result<(Api<DynamicObject>, String), String> {
    let spec = hpa.spec.clone().unwrap_or_default();
    let target = &spec.scale_target_ref;
    let api_version = target.api_version.clone().unwrap_or_else(|| "v1".into());
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group.to_string(), version.to_string()),
        None => (String::new(), api_version.clone()),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, &target.kind);
    let (resource, _) = kube::discovery::pinned_kind(&ctx.client, &gvk)
        .await
        .map_err(|e| format!("the HPA controller was unable to get the target's current scale: no matches for kind {:?} in group {group:?}: {e}", target.kind))?;
    let namespace = hpa.namespace().unwrap_or_default();
    Ok((
        Api::namespaced_with(ctx.client.clone(), &namespace, &resource),
        target.name.clone(),
    ))
}

async fn sync(hpa: &HorizontalPodAutoscaler, ctx: &Context, outcome: &mut Outcome) -> Result<(), String> {
    let subject = reference(hpa);
    let (targets, target_name) = match scale_api(ctx, hpa).await {
        Ok(found) => found,
        Err(message) => {
            ctx.events
                .record(&subject, Kind::Warning, "FailedGetScale", "Scale", message.clone());
            outcome.condition("AbleToScale", false, "FailedGetScale", message.clone());
            return Err(message);
        }
    };
    let scale = match targets.get_scale(&target_name).await {
        Ok(scale) => scale,
        Err(e) => {
            let message = format!(
                "the HPA controller was unable to get the target's current scale: {}",
                crate::api_message(&e)
            );
            ctx.events
                .record(&subject, Kind::Warning, "FailedGetScale", "Scale", message.clone());
            outcome.condition("AbleToScale", false, "FailedGetScale", message.clone());
            return Err(message);
        }
    };
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    outcome.current = scale.status.as_ref().map_or(current, |s| s.replicas);
    outcome.desired = current;
    outcome.condition(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    );
    let spec = hpa.spec.clone().unwrap_or_default();
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    // Out of bounds, the count goes straight to the bound, with no
    // metric read and no behavior applied, as in kube-controller-manager.
    let (desired, why) = if current == 0 && min != 0 {
        outcome.condition(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
        (0, String::new())
    } else if current == 0 {
        // minReplicas 0, and taken there: nothing runs to measure, and
        // the service proxy brings one replica up on the first request.
        outcome.condition(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "the target is at zero replicas; a request to its Service brings one up",
        );
        (0, String::new())
    } else if current > max {
        (max, "Current number of replicas above Spec.MaxReplicas".to_string())
    } else if current < min {
        (min, "Current number of replicas below Spec.MinReplicas".to_string())
    } else {
        let selector = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let Some((proposed, why)) = from_metrics(hpa, ctx, current, &selector, outcome).await else {
            return Ok(());
        };
        (
            normalize(hpa, ctx, current, proposed, Bounds { min, max }, outcome),
            why,
        )
    };
    outcome.desired = desired;
    if desired == current {
        return Ok(());
    }
    let patch = Patch::Merge(json!({"spec": {"replicas": desired}}));
    match targets.patch_scale(&target_name, &PatchParams::default(), &patch).await {
        Ok(_) => {
            outcome.rescaled = true;
            let why = if why.is_empty() {
                "All metrics below target".to_string()
            } else {
                why
            };
            ctx.events.record(
                &subject,
                Kind::Normal,
                "SuccessfulRescale",
                "Scale",
                format!("New size: {desired}; reason: {why}"),
            );
            outcome.condition(
                "AbleToScale",
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
            let (up, down) = rules(spec.behavior.as_ref());
            lock(&ctx.histories)
                .entry(ObjectRef::from_obj(hpa))
                .or_default()
                .scaled(Timestamp::now(), current, desired, &up, &down);
            Ok(())
        }
        Err(e) => {
            let message = format!("New size: {desired}; reason: {why}; error: {}", crate::api_message(&e));
            ctx.events
                .record(&subject, Kind::Warning, "FailedRescale", "Scale", message.clone());
            outcome.condition(
                "AbleToScale",
                false,
                "FailedUpdateScale",
                format!(
                    "the HPA controller was unable to update the target scale: {}",
                    crate::api_message(&e)
                ),
            );
            outcome.desired = current;
            Err(message)
        }
    }
}

/// The count the metrics ask for, and why, or `None` when none could be
/// read (the conditions and an Event say so).
async fn from_metrics(
    hpa: &HorizontalPodAutoscaler,
    ctx: &Context,
    current: i32,
    selector: &str,
    outcome: &mut Outcome,
) -> Option<(i32, String)> {
    let subject = reference(hpa);
    let namespace = hpa.namespace().unwrap_or_default();
    let pods = match list_pods(ctx, &namespace, selector).await {
        Ok(pods) => pods,
        Err(message) => {
            outcome.condition("ScalingActive", false, "InvalidSelector", message.clone());
            ctx.events
                .record(&subject, Kind::Warning, "SelectorRequired", "Scale", message);
            return None;
        }
    };
    let usage = pod_usage(ctx, &namespace, selector).await;
    let mut best: Option<(i32, String)> = None;
    let mut failure: Option<(&'static str, String)> = None;
    let metrics = hpa.spec.as_ref().and_then(|s| s.metrics.clone()).unwrap_or_default();
    for metric in &metrics {
        let custom = match metric.pods.as_ref().filter(|_| metric.type_ == "Pods") {
            Some(source) => Some(custom_values(ctx, &namespace, selector, &source.metric.name).await),
            None => None,
        };
        match propose(metric, current, &pods, usage.as_ref(), custom) {
            Ok((proposal, status, name)) => {
                outcome.current_metrics.push(status);
                if best.as_ref().is_none_or(|(r, _)| proposal.replicas > *r) {
                    let direction = if proposal.replicas > current { "above" } else { "below" };
                    best = Some((
                        proposal.replicas,
                        format!("{name} above target").replace("above", direction),
                    ));
                }
            }
            Err((reason, message)) => {
                outcome.current_metrics.push(json!({"type": metric.type_}));
                ctx.events
                    .record(&subject, Kind::Warning, reason, "Scale", message.clone());
                failure.get_or_insert((reason, message));
            }
        }
    }
    match (best, failure) {
        (Some((replicas, why)), _) => {
            outcome.condition(
                "ScalingActive",
                true,
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count from the metrics",
            );
            Some((replicas, why))
        }
        (None, Some((reason, message))) => {
            outcome.condition("ScalingActive", false, reason, message);
            None
        }
        (None, None) => {
            outcome.condition(
                "ScalingActive",
                false,
                "NoMetrics",
                "the HPA has no metrics to scale on",
            );
            None
        }
    }
}

/// The pods a scale selector names, as the calculator sees them.
async fn list_pods(ctx: &Context, namespace: &str, selector: &str) -> Result<Vec<Pod>, String> {
    if selector.is_empty() {
        return Err("the HPA target's scale is missing a selector".into());
    }
    Api::<Pod>::namespaced(ctx.client.clone(), namespace)
        .list(&ListParams::default().labels(selector))
        .await
        .map(|list| list.items)
        .map_err(|e| {
            format!(
                "couldn't convert selector into a corresponding internal selector object: {}",
                crate::api_message(&e)
            )
        })
}

/// What each pod uses, by name and resource, in thousandths; `None` when
/// the Metrics API could not be read.
async fn pod_usage(ctx: &Context, namespace: &str, selector: &str) -> Option<BTreeMap<String, BTreeMap<String, i64>>> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
        "pods",
    );
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), namespace, &resource);
    let list = api.list(&ListParams::default().labels(selector)).await.ok()?;
    Some(
        list.items
            .into_iter()
            .map(|pod| {
                let mut totals: BTreeMap<String, i64> = BTreeMap::new();
                for container in pod.data["containers"].as_array().into_iter().flatten() {
                    for (name, value) in container["usage"].as_object().into_iter().flatten() {
                        let Some(quantity) = value.as_str().and_then(|q| Quantity::parse(q).ok()) else {
                            continue;
                        };
                        *totals.entry(name.clone()).or_default() += thousandths(name, &quantity);
                    }
                }
                (pod.name_any(), totals)
            })
            .collect(),
    )
}

/// A custom metric of each pod (`custom.metrics.k8s.io`), in
/// thousandths, or why it could not be read.
async fn custom_values(
    ctx: &Context,
    namespace: &str,
    selector: &str,
    metric: &str,
) -> Result<BTreeMap<String, i64>, String> {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("labelSelector", selector)
        .finish();
    let url = format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/pods/*/{metric}?{query}");
    let request = http::Request::get(url).body(Vec::new()).map_err(|e| e.to_string())?;
    let list: Value = ctx
        .client
        .request(request)
        .await
        .map_err(|e| format!("unable to get metric {metric}: {}", crate::api_message(&e)))?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let pod = item["describedObject"]["name"].as_str()?;
            let value = Quantity::parse(item["value"].as_str()?).ok()?;
            Some((pod.to_string(), thousandths(metric, &value)))
        })
        .collect())
}

/// A quantity in the calculator's unit: millicores for CPU, thousandths
/// of a byte (or unit) otherwise.
fn thousandths(_resource: &str, quantity: &Quantity) -> i64 {
    i64::try_from(quantity.milli_value()).unwrap_or(i64::MAX)
}

/// One metric's proposal, its `currentMetrics` entry, and how an Event
/// names it; or the reason and message it could not be read.
fn propose(
    metric: &MetricSpec,
    current: i32,
    pods: &[Pod],
    usage: Option<&BTreeMap<String, BTreeMap<String, i64>>>,
    custom: Option<Result<BTreeMap<String, i64>, String>>,
) -> Result<(Proposal, Value, String), (&'static str, String)> {
    match metric.type_.as_str() {
        "Resource" => {
            let Some(source) = &metric.resource else {
                return Err(("FailedGetResourceMetric", "the metric has no resource source".into()));
            };
            let name = source.name.clone();
            let usage = usage.ok_or((
                "FailedGetResourceMetric",
                format!("failed to get {name} utilization: unable to get metrics for resource {name}: unable to fetch metrics from resource metrics API"),
            ))?;
            let values: BTreeMap<String, i64> = usage
                .iter()
                .filter_map(|(pod, resources)| Some((pod.clone(), *resources.get(&name)?)))
                .collect();
            let counted: Vec<CountedPod> = pods.iter().map(|p| counted(p, &name)).collect();
            let target = &source.target;
            let failed = |e: Unavailable| {
                (
                    "FailedGetResourceMetric",
                    format!("failed to get {name} utilization: {e}"),
                )
            };
            if let Some(percent) = target.average_utilization.filter(|_| target.type_ == "Utilization") {
                let proposal = replicas::utilization(current, percent, &name, &counted, &values).map_err(failed)?;
                let status = json!({"type": "Resource", "resource": {"name": name, "current": {
                    "averageUtilization": proposal.utilization.unwrap_or(0),
                    "averageValue": Quantity::from_milli(i128::from(proposal.average)).to_string(),
                }}});
                let why = format!("{name} resource utilization (percentage of request)");
                Ok((proposal, status, why))
            } else if let Some(value) = target.average_value.as_ref().filter(|_| target.type_ == "AverageValue") {
                let target = Quantity::parse(&value.0).map_err(|e| ("FailedGetResourceMetric", e.to_string()))?;
                let proposal =
                    replicas::average_value(current, thousandths(&name, &target), &counted, &values).map_err(failed)?;
                let status = json!({"type": "Resource", "resource": {"name": name, "current": {
                    "averageValue": Quantity::from_milli(i128::from(proposal.average)).to_string(),
                }}});
                Ok((proposal, status, format!("{name} resource")))
            } else {
                Err((
                    "FailedGetResourceMetric",
                    format!("invalid target for resource metric {name}"),
                ))
            }
        }
        "Pods" => {
            let Some(source) = &metric.pods else {
                return Err(("FailedGetPodsMetric", "the metric has no pods source".into()));
            };
            let name = source.metric.name.clone();
            let values = custom
                .unwrap_or_else(|| Err("no figures".into()))
                .map_err(|e| ("FailedGetPodsMetric", format!("failed to get pods metric value: {e}")))?;
            let target = source
                .target
                .average_value
                .as_ref()
                .filter(|_| source.target.type_ == "AverageValue")
                .and_then(|v| Quantity::parse(&v.0).ok())
                .ok_or(("FailedGetPodsMetric", format!("invalid target for pods metric {name}")))?;
            let counted: Vec<CountedPod> = pods.iter().map(|p| counted(p, "")).collect();
            let proposal = replicas::average_value(current, thousandths(&name, &target), &counted, &values)
                .map_err(|e| ("FailedGetPodsMetric", format!("failed to get pods metric value: {e}")))?;
            let status = json!({"type": "Pods", "pods": {"metric": {"name": name}, "current": {
                "averageValue": Quantity::from_milli(i128::from(proposal.average)).to_string(),
            }}});
            Ok((proposal, status, format!("pods metric {name}")))
        }
        "Object" => Err(("FailedGetObjectMetric", "Object metrics are not served".into())),
        "External" => Err(("FailedGetExternalMetric", "External metrics are not served".into())),
        "ContainerResource" => Err((
            "FailedGetContainerResourceMetric",
            "ContainerResource metrics are not served".into(),
        )),
        other => Err((
            "InvalidMetricSourceType",
            format!("unknown metric source type {other:?}"),
        )),
    }
}

/// A pod as the calculator sees it, with its request of `resource`.
fn counted(pod: &Pod, resource: &str) -> CountedPod {
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Pending") => Phase::Pending,
        Some("Running") => Phase::Running,
        Some("Succeeded") => Phase::Succeeded,
        Some("Failed") => Phase::Failed,
        _ => Phase::Unknown,
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    let request = containers
        .iter()
        .map(|c| {
            let q = c.resources.as_ref()?.requests.as_ref()?.get(resource)?;
            Quantity::parse(&q.0).ok().map(|q| thousandths(resource, &q))
        })
        .sum::<Option<i64>>();
    CountedPod {
        name: pod.name_any(),
        phase,
        ready,
        deleting: pod.metadata.deletion_timestamp.is_some(),
        request,
    }
}

/// The scale-up and scale-down rules of `behavior`, Kubernetes' defaults
/// where it says nothing.
fn rules(behavior: Option<&HorizontalPodAutoscalerBehavior>) -> (Rules, Rules) {
    let convert = |rules: Option<&HPAScalingRules>, default: Rules| {
        let Some(rules) = rules else { return default };
        Rules {
            stabilization: rules
                .stabilization_window_seconds
                .map_or(default.stabilization, |s| Duration::from_secs(s.max(0) as u64)),
            select: match rules.select_policy.as_deref() {
                Some("Min") => behavior::Select::Min,
                Some("Disabled") => behavior::Select::Disabled,
                Some(_) => behavior::Select::Max,
                None => default.select,
            },
            policies: rules.policies.as_ref().map_or(default.policies, |policies| {
                policies
                    .iter()
                    .map(|p| {
                        let period = Duration::from_secs(p.period_seconds.max(1) as u64);
                        if p.type_ == "Pods" {
                            behavior::Policy::Pods { value: p.value, period }
                        } else {
                            behavior::Policy::Percent { value: p.value, period }
                        }
                    })
                    .collect()
            }),
        }
    };
    (
        convert(behavior.and_then(|b| b.scale_up.as_ref()), Rules::default_up()),
        convert(behavior.and_then(|b| b.scale_down.as_ref()), Rules::default_down()),
    )
}

/// The proposal held to the behavior and the bounds, with the conditions
/// that say how.
fn normalize(
    hpa: &HorizontalPodAutoscaler,
    ctx: &Context,
    current: i32,
    proposed: i32,
    bounds: Bounds,
    outcome: &mut Outcome,
) -> i32 {
    let (up, down) = rules(hpa.spec.as_ref().and_then(|s| s.behavior.as_ref()));
    let now = Timestamp::now();
    let mut histories = lock(&ctx.histories);
    let history = histories.entry(ObjectRef::from_obj(hpa)).or_default();
    let (stabilized, held) = behavior::stabilize(history, now, current, proposed, &up, &down);
    match held {
        Some(behavior::Held::Up) => outcome.condition(
            "AbleToScale",
            true,
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        ),
        Some(behavior::Held::Down) => outcome.condition(
            "AbleToScale",
            true,
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        ),
        None => outcome.condition(
            "AbleToScale",
            true,
            "ReadyForNewScale",
            "recommended size matches current size",
        ),
    }
    let (limited, why) = behavior::limit(history, now, current, stabilized, bounds, &up, &down);
    match why {
        Some(why) => outcome.condition("ScalingLimited", true, why.reason(), why.message()),
        None => outcome.condition(
            "ScalingLimited",
            false,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        ),
    }
    limited
}

/// The status a sync writes: figures, and conditions whose
/// `lastTransitionTime` moves only when their status does.
fn status(hpa: &HorizontalPodAutoscaler, outcome: &Outcome) -> Value {
    let old = hpa.status.clone().unwrap_or_default();
    let previous: HashMap<&str, &HorizontalPodAutoscalerCondition> =
        old.conditions.iter().flatten().map(|c| (c.type_.as_str(), c)).collect();
    let now = Time(Timestamp::now());
    let order = ["AbleToScale", "ScalingActive", "ScalingLimited"];
    let mut conditions: Vec<_> = outcome.conditions.iter().collect();
    conditions.sort_by_key(|c| order.iter().position(|o| *o == c.0).unwrap_or(order.len()));
    let conditions: Vec<Value> = conditions
        .into_iter()
        .map(|(kind, status, reason, message)| {
            let status = if *status { "True" } else { "False" };
            let since = previous
                .get(kind)
                .filter(|c| c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            json!({"type": kind, "status": status, "lastTransitionTime": since, "reason": reason, "message": message})
        })
        .collect();
    let mut status = json!({
        "currentReplicas": outcome.current,
        "desiredReplicas": outcome.desired,
        "conditions": conditions,
        "currentMetrics": outcome.current_metrics,
    });
    if let Some(generation) = hpa.metadata.generation {
        status["observedGeneration"] = json!(generation);
    }
    if outcome.rescaled {
        status["lastScaleTime"] = json!(now);
    }
    status
}
