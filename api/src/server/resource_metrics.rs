//! The Metrics API, `metrics.k8s.io/v1beta1` NodeMetrics and PodMetrics,
//! served by the API server itself from the node agents' summaries (what
//! metrics-server does as a separate, aggregated server), so that
//! `kubectl top` and the HorizontalPodAutoscaler work with nothing else
//! installed.
//!
//! Objects are made when asked, never stored. For each node a request
//! needs, the [`Scraper`] keeps its last two summaries (`GET
//! /stats/summary` on the agent's endpoint, through the
//! [`NodeClient`](super::node_client::NodeClient)); [`crate::usage`] turns
//! a pair into figures. A node is read again once its last summary is
//! older than the resolution (`--metric-resolution`, 15 s by default, as
//! metrics-server is deployed), so a steady reader such as the autoscaler
//! sees windows of about that length. When the older summary of the pair
//! is more than [`MAX_WINDOW`] old (nobody asked for a while, or this is
//! the first question), a second summary is taken [`SHORT_WINDOW`] after
//! the first, so that an answer is never an average over hours and the
//! first `kubectl top` answers at once rather than "metrics not available
//! yet"; such answers carry the short window they were measured over.
//!
//! Every API server of a cluster reads the agents on its own; requests are
//! authorized by RBAC on the `metrics.k8s.io` resources `nodes` and `pods`
//! (`get`, `list`) like any other. Label selectors select among the nodes
//! and pods as stored; the objects carry their labels.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::node_client::NodeClient;
use super::resources::Call;
use crate::error::{ApiError, Result, Subject};
use crate::meta;
use crate::options::ListOptions;
use crate::request::Verb;
use crate::usage::{self, NodeUsage, PodUsage, Summary};

/// How often a node is read by default (metrics-server's usual
/// `--metric-resolution`).
pub const DEFAULT_RESOLUTION: Duration = Duration::from_secs(15);

/// The longest window an answer is measured over.
pub const MAX_WINDOW: Duration = Duration::from_secs(60);

/// The window of a first answer.
pub const SHORT_WINDOW: Duration = Duration::from_secs(1);

/// How long reading one node may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest summary read (a node with hundreds of pods is well under).
const MAX_SUMMARY_BYTES: usize = 16 << 20;

/// A node's summaries, newest last.
#[derive(Debug, Default)]
struct Samples {
    earlier: Option<(Instant, Arc<Summary>)>,
    later: Option<(Instant, Arc<Summary>)>,
}

impl Samples {
    fn push(&mut self, at: Instant, summary: Summary) {
        self.earlier = self.later.take();
        self.later = Some((at, Arc::new(summary)));
    }

    fn pair(&self) -> Option<(Arc<Summary>, Arc<Summary>)> {
        Some((self.earlier.as_ref()?.1.clone(), self.later.as_ref()?.1.clone()))
    }
}

/// Reads the agents' summaries and keeps the last two of each node.
#[derive(Debug)]
pub struct Scraper {
    resolution: Duration,
    nodes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Samples>>>>,
}

impl Default for Scraper {
    fn default() -> Self {
        Scraper::new(DEFAULT_RESOLUTION)
    }
}

impl Scraper {
    /// A scraper reading each node at most once per `resolution`.
    pub fn new(resolution: Duration) -> Scraper {
        Scraper {
            resolution: resolution.max(Duration::from_millis(100)),
            nodes: Mutex::default(),
        }
    }

    fn samples(&self, node: &str) -> Arc<tokio::sync::Mutex<Samples>> {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        nodes.entry(node.to_string()).or_default().clone()
    }

    /// The last two summaries of the node `object`, read now if they are
    /// stale; none if the node cannot be read.
    async fn pair(&self, client: &NodeClient, object: &Value) -> Option<(Arc<Summary>, Arc<Summary>)> {
        let name = meta::str_field(object, &["metadata", "name"])?;
        let endpoint = super::connect::endpoint_of(object)?;
        let samples = self.samples(name);
        let mut samples = samples.lock().await;
        let stale = samples
            .later
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= self.resolution);
        if stale {
            match read(client, &endpoint).await {
                Ok(summary) => samples.push(Instant::now(), summary),
                Err(error) => {
                    tracing::debug!(node = name, %error, "cannot read the node's summary");
                    *samples = Samples::default();
                    return None;
                }
            }
        }
        let short = samples.earlier.as_ref().is_none_or(|(at, _)| at.elapsed() > MAX_WINDOW);
        if short {
            tokio::time::sleep(SHORT_WINDOW).await;
            match read(client, &endpoint).await {
                Ok(summary) => samples.push(Instant::now(), summary),
                Err(error) => {
                    tracing::debug!(node = name, %error, "cannot read the node's summary");
                    return None;
                }
            }
        }
        samples.pair()
    }

    /// The pairs of several nodes, read side by side.
    pub(super) async fn pairs<'a>(
        &self,
        client: &NodeClient,
        nodes: impl IntoIterator<Item = &'a Value>,
    ) -> Vec<(&'a Value, Arc<Summary>, Arc<Summary>)> {
        let reads = nodes.into_iter().map(|node| async move {
            let (earlier, later) = self.pair(client, node).await?;
            Some((node, earlier, later))
        });
        futures::future::join_all(reads).await.into_iter().flatten().collect()
    }
}

/// Reads one agent's summary.
async fn read(client: &NodeClient, endpoint: &str) -> std::result::Result<Summary, String> {
    use http_body_util::BodyExt;
    let fetch = async {
        let response = client.get(endpoint, "/stats/summary").await?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(format!(
                "{status}: {}",
                super::node_client::text(response.into_body()).await
            ));
        }
        let body = http_body_util::Limited::new(response.into_body(), MAX_SUMMARY_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| format!("the summary does not parse: {e}"))
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Serves `get` and `list` of NodeMetrics and PodMetrics.
pub(super) async fn dispatch(call: &Call, subresource: Option<&str>) -> Result<Response> {
    if subresource.is_some() {
        return Err(ApiError::NoSuchRoute);
    }
    let output = call.output()?;
    let options = call.query.list_options()?;
    let (items, revision) = match (call.request.verb, call.resource.plural.as_str()) {
        (Verb::Get, "nodes") => (vec![node_metrics(call).await?], 0),
        (Verb::Get, "pods") => (vec![pod_metrics(call).await?], 0),
        (Verb::List, "nodes") => list_nodes(call, &options).await?,
        (Verb::List, "pods") => list_pods(call, &options).await?,
        _ => return Err(ApiError::MethodNotSupported),
    };
    if call.request.verb == Verb::Get {
        let object = items.into_iter().next().ok_or(ApiError::Internal)?;
        return Ok(super::negotiate::object(
            StatusCode::OK,
            output,
            &call.resource,
            &object,
        ));
    }
    Ok(super::negotiate::list(output, &call.resource, items, revision, None))
}

fn not_found(call: &Call) -> ApiError {
    ApiError::NotFound(Subject::new(&call.resource.group, &call.resource.plural, call.name()))
}

/// Everything stored of `resource` that `options` select (all pages).
async fn stored(
    call: &Call,
    resource: &str,
    namespace: Option<&str>,
    options: &ListOptions,
) -> Result<(Vec<Value>, u64)> {
    let resource = call
        .server
        .catalog
        .lookup("", "v1", resource)
        .ok_or(ApiError::Internal)?;
    let options = ListOptions {
        label_selector: options.label_selector.clone(),
        field_selector: options.field_selector.clone(),
        ..ListOptions::default()
    };
    let page = call.server.registry.list(&resource, namespace, &options).await?;
    Ok((page.items, page.revision))
}

async fn node_metrics(call: &Call) -> Result<Value> {
    let nodes = call
        .server
        .catalog
        .lookup("", "v1", "nodes")
        .ok_or(ApiError::Internal)?;
    let node = call
        .server
        .registry
        .get(&nodes, None, call.name())
        .await
        .map_err(|_| not_found(call))?
        .object;
    let scraper = &call.server.resource_metrics;
    let (_, earlier, later) = scraper
        .pairs(&call.server.node_client, [&node])
        .await
        .into_iter()
        .next()
        .ok_or_else(|| not_found(call))?;
    let usage = usage::node(&earlier, &later).ok_or_else(|| not_found(call))?;
    Ok(node_object(&node, &usage))
}

async fn list_nodes(call: &Call, options: &ListOptions) -> Result<(Vec<Value>, u64)> {
    let (nodes, revision) = stored(call, "nodes", None, options).await?;
    let scraper = &call.server.resource_metrics;
    let items = scraper
        .pairs(&call.server.node_client, &nodes)
        .await
        .into_iter()
        .filter_map(|(node, earlier, later)| Some(node_object(node, &usage::node(&earlier, &later)?)))
        .collect();
    Ok((items, revision))
}

async fn pod_metrics(call: &Call) -> Result<Value> {
    let pods = call.server.catalog.lookup("", "v1", "pods").ok_or(ApiError::Internal)?;
    let pod = call
        .server
        .registry
        .get(&pods, call.namespace(), call.name())
        .await
        .map_err(|_| not_found(call))?
        .object;
    let items = pods_usage(call, vec![pod]).await?;
    items.into_iter().next().ok_or_else(|| not_found(call))
}

async fn list_pods(call: &Call, options: &ListOptions) -> Result<(Vec<Value>, u64)> {
    let (pods, revision) = stored(call, "pods", call.namespace(), options).await?;
    Ok((pods_usage(call, pods).await?, revision))
}

/// The Nodes `pods` are bound to (those still registered).
pub(super) async fn nodes_of<'a>(call: &Call, pods: impl IntoIterator<Item = &'a Value>) -> Result<Vec<Value>> {
    let names: BTreeSet<&str> = pods
        .into_iter()
        .filter_map(|pod| meta::str_field(pod, &["spec", "nodeName"]))
        .collect();
    let resource = call
        .server
        .catalog
        .lookup("", "v1", "nodes")
        .ok_or(ApiError::Internal)?;
    let mut nodes = Vec::new();
    for name in names {
        if let Ok(node) = call.server.registry.get(&resource, None, name).await {
            nodes.push(node.object);
        }
    }
    Ok(nodes)
}

/// The PodMetrics of those of `pods` whose nodes report them whole.
async fn pods_usage(call: &Call, pods: Vec<Value>) -> Result<Vec<Value>> {
    let wanted: BTreeMap<(String, String), Value> = pods
        .into_iter()
        .filter_map(|pod| {
            let namespace = meta::str_field(&pod, &["metadata", "namespace"])?.to_string();
            let name = meta::str_field(&pod, &["metadata", "name"])?.to_string();
            Some(((namespace, name), pod))
        })
        .collect();
    let nodes = nodes_of(call, wanted.values()).await?;
    let scraper = &call.server.resource_metrics;
    let mut items: Vec<Value> = scraper
        .pairs(&call.server.node_client, &nodes)
        .await
        .into_iter()
        .flat_map(|(_, earlier, later)| usage::pods(&earlier, &later))
        .filter_map(|usage| {
            let pod = wanted.get(&(usage.namespace.clone(), usage.name.clone()))?;
            Some(pod_object(pod, &usage))
        })
        .collect();
    items.sort_by(|a, b| {
        let key = |v: &Value| (meta::namespace(v).map(String::from), meta::name(v).map(String::from));
        key(a).cmp(&key(b))
    });
    Ok(items)
}

/// The metadata of a metrics object about `source` (a Node or Pod).
fn metadata(source: &Value, namespace: Option<&str>) -> Value {
    let mut metadata = json!({
        "name": meta::name(source),
        "creationTimestamp": jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_default().to_string(),
    });
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    if let Some(labels) = source.pointer("/metadata/labels").filter(|l| l.is_object()) {
        metadata["labels"] = labels.clone();
    }
    metadata
}

fn node_object(node: &Value, usage: &NodeUsage) -> Value {
    json!({
        "kind": "NodeMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": metadata(node, None),
        "timestamp": usage.window.timestamp.to_string(),
        "window": usage.window.go_duration(),
        "usage": usage.usage.to_json(),
    })
}

fn pod_object(pod: &Value, usage: &PodUsage) -> Value {
    json!({
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": metadata(pod, Some(&usage.namespace)),
        "timestamp": usage.window.timestamp.to_string(),
        "window": usage.window.go_duration(),
        "containers": usage
            .containers
            .iter()
            .map(|(name, usage)| json!({"name": name, "usage": usage.to_json()}))
            .collect::<Vec<_>>(),
    })
}
