//! The custom metrics API, `custom.metrics.k8s.io/v1beta2`, for the pods
//! of Wasm HTTP services: `requests-per-second` (the rate of requests
//! answered between two of the node's summaries) and `requests-in-flight`
//! (at the later one). Elsewhere a metrics adapter (prometheus-adapter,
//! KEDA) serves this API from a monitoring system; skiff's agents already
//! count the requests, so the API server answers from their summaries
//! through the same [`Scraper`](super::resource_metrics::Scraper) as the
//! Metrics API, and an autoscaler's `Pods` metric works with nothing else
//! installed.
//!
//! Served: `GET …/namespaces/<ns>/pods/<name>/<metric>` and
//! `…/pods/*/<metric>?labelSelector=…`, each a `MetricValueList` (the
//! form the autoscaler reads). `metricLabelSelector` is accepted and
//! ignored: these metrics have no labels.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use http::header;
use serde_json::{Value, json};

use super::resources::Call;
use crate::error::{ApiError, Result, Subject};
use crate::meta;
use crate::options::ListOptions;
use crate::request::Verb;
use crate::usage::{self, PodRequests};

/// Serves one metric of one pod, or of the pods a selector picks.
pub(super) async fn dispatch(call: &Call, metric: Option<&str>) -> Result<Response> {
    let Some(metric) = metric.filter(|m| usage::CUSTOM_METRICS.contains(m)) else {
        return Err(ApiError::NoSuchRoute);
    };
    if call.request.verb != Verb::Get {
        return Err(ApiError::MethodNotSupported);
    }
    let pods_resource = call.server.catalog.lookup("", "v1", "pods").ok_or(ApiError::Internal)?;
    // kubectl escapes the `*`.
    let every = matches!(call.name(), "*" | "%2A" | "%2a");
    let wanted = match call.name() {
        _ if every => {
            let options = call.query.list_options()?;
            let options = ListOptions {
                label_selector: options.label_selector,
                ..ListOptions::default()
            };
            call.server
                .registry
                .list(&pods_resource, call.namespace(), &options)
                .await?
                .items
        }
        name => {
            let pod = call.server.registry.get(&pods_resource, call.namespace(), name).await;
            vec![pod.map_err(|_| not_found(call, metric))?.object]
        }
    };
    let by_name: BTreeMap<String, &Value> = wanted
        .iter()
        .filter_map(|pod| Some((meta::name(pod)?.to_string(), pod)))
        .collect();
    let nodes = super::resource_metrics::nodes_of(call, &wanted).await?;
    let figures: Vec<PodRequests> = call
        .server
        .resource_metrics
        .pairs(&call.server.node_client, &nodes)
        .await
        .into_iter()
        .flat_map(|(_, earlier, later)| usage::requests(&earlier, &later))
        .filter(|f| Some(f.namespace.as_str()) == call.namespace() && by_name.contains_key(&f.name))
        .collect();
    if !every && figures.is_empty() {
        return Err(not_found(call, metric));
    }
    let items: Vec<Value> = figures.iter().map(|f| item(f, metric)).collect();
    let body = json!({
        "kind": "MetricValueList",
        "apiVersion": "custom.metrics.k8s.io/v1beta2",
        "metadata": {},
        "items": items,
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
}

fn not_found(call: &Call, metric: &str) -> ApiError {
    ApiError::NotFound(Subject::new(
        &call.resource.group,
        &format!("pods/{metric}"),
        call.name(),
    ))
}

/// One pod's figure as a `MetricValue`.
fn item(figures: &PodRequests, metric: &str) -> Value {
    let value = if metric == "requests-per-second" {
        format!("{}m", figures.per_second_milli)
    } else {
        figures.in_flight.to_string()
    };
    json!({
        "describedObject": {"kind": "Pod", "namespace": figures.namespace, "name": figures.name, "apiVersion": "/v1"},
        "metric": {"name": metric, "selector": null},
        "timestamp": figures.window.timestamp.to_string(),
        "windowSeconds": figures.window.length.as_secs().max(1),
        "value": value,
    })
}
