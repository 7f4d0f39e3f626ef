//! `pods/exec`, `pods/attach` and `pods/portforward`: checked here, then spliced through
//! to the node agent running the pod, as kube-apiserver does to the
//! kubelet.
//!
//! The client's upgrade request (WebSocket or SPDY) is replayed to the
//! agent's `/exec/<namespace>/<pod>/<container>` (or `/attach/…`) or
//! `/portForward/<namespace>/<pod>` with the same query and upgrade
//! headers. The agent's answer comes back as it is: a refusal with its
//! status and `metav1.Status` body, or `101 Switching Protocols` with
//! the protocol it chose, after which bytes are copied both ways until
//! either side closes. The protocols themselves are the agent's
//! business (`skiff_host::agent::streams`).
//!
//! All are authorized as `create` on the subresource whatever the
//! method, as Kubernetes does from 1.31 for the GET a WebSocket starts
//! with.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{HeaderName, StatusCode, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::ApiServer;
use super::query::Query;
use crate::error::{ApiError, Result};
use crate::meta;
use crate::request::ResourceRequest;

/// Request headers the agent needs to answer the upgrade.
static UPGRADE_REQUEST: [HeaderName; 7] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_PROTOCOL,
    HeaderName::from_static("x-stream-protocol-version"),
    header::USER_AGENT,
];

/// Answer headers the client needs to finish it.
static UPGRADE_ANSWER: [HeaderName; 6] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_ACCEPT,
    header::SEC_WEBSOCKET_PROTOCOL,
    HeaderName::from_static("x-stream-protocol-version"),
    header::CONTENT_TYPE,
];

/// Whether `subresource` of `pods` is a streaming one served here.
pub(super) fn serves(request: &ResourceRequest) -> bool {
    request.group.is_empty()
        && request.resource == "pods"
        && request.name.is_some()
        && matches!(request.subresource.as_deref(), Some("attach" | "exec" | "portforward"))
}

/// The container a request names, or the pod's only one.
pub(super) fn container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String> {
    let names: Vec<&str> = ["/spec/containers", "/spec/initContainers"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let container = match asked {
        Some(c) if !c.is_empty() => c.to_string(),
        _ if names.len() <= 1 => names.first().copied().unwrap_or_default().to_string(),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    if !names.contains(&container.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    Ok(container)
}

/// `host:port` of the endpoint of the agent on `node` (its InternalIP and
/// `daemonEndpoints.kubeletEndpoint`).
pub(super) async fn node_endpoint(server: &ApiServer, node: &str, pod: &str) -> Result<String> {
    let nodes = server.catalog.lookup("", "v1", "nodes").ok_or(ApiError::Internal)?;
    let node_object = server
        .registry
        .get(&nodes, None, node)
        .await
        .map_err(|_| ApiError::BadRequest(format!("node \"{node}\" of pod \"{pod}\" is not registered")))?;
    endpoint_of(&node_object.object)
        .ok_or_else(|| ApiError::BadRequest(format!("no endpoint is known for node \"{node}\"")))
}

/// `host:port` of the agent's endpoint a Node object names, if it names
/// one.
pub(super) fn endpoint_of(node: &Value) -> Option<String> {
    let address = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
        .and_then(|a| a.get("address").and_then(Value::as_str))?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p > 0 && *p <= u64::from(u16::MAX))?;
    Some(if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    })
}

/// Serves `pods/<name>/exec`, `attach` or `portforward`.
pub(super) async fn handle(
    server: Arc<ApiServer>,
    request: ResourceRequest,
    mut parts: http::request::Parts,
    query: Query,
) -> Result<Response> {
    let pods = server.catalog.lookup("", "v1", "pods").ok_or(ApiError::Internal)?;
    let namespace = request.namespace.clone().unwrap_or_default();
    let name = request.name.clone().unwrap_or_default();
    let pod = server.registry.get(&pods, Some(&namespace), &name).await?.object;
    let node = meta::str_field(&pod, &["spec", "nodeName"])
        .unwrap_or_default()
        .to_string();
    let subresource = request.subresource.as_deref().unwrap_or_default();
    let path = if matches!(subresource, "exec" | "attach") {
        let phase = meta::str_field(&pod, &["status", "phase"]).unwrap_or_default();
        if matches!(phase, "Succeeded" | "Failed") {
            return Err(ApiError::BadRequest(format!(
                "cannot {subresource} {} a container in a completed pod; current phase is {phase}",
                if subresource == "exec" { "into" } else { "to" }
            )));
        }
        let container = container(&pod, &name, query.get("container"))?;
        if subresource == "exec" && query.get("command").is_none_or(str::is_empty) {
            return Err(ApiError::BadRequest(
                "you must specify at least one command for the container".into(),
            ));
        }
        let asked = |k| {
            query
                .get(k)
                .is_some_and(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"))
        };
        if !asked("stdin") && !asked("stdout") && !asked("stderr") {
            return Err(ApiError::BadRequest(
                "you must specify at least 1 of stdin, stdout, stderr".into(),
            ));
        }
        if node.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        format!("/{subresource}/{namespace}/{name}/{container}")
    } else {
        if node.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        format!("/portForward/{namespace}/{name}")
    };
    let client_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>().ok_or_else(|| {
        ApiError::BadRequest("upgrade request required (WebSocket or SPDY/3.1, over HTTP/1.1)".into())
    })?;
    let endpoint = node_endpoint(&server, &node, &name).await?;
    let mut sender = server.node_client.connect(&endpoint).await.map_err(|error| {
        tracing::warn!(%error, node = %node, "cannot reach the node to stream");
        ApiError::BadRequest(format!("cannot reach node \"{node}\": {error}"))
    })?;
    let unreachable = |error: String| ApiError::BadRequest(format!("cannot reach node \"{node}\": {error}"));
    let uri = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut upstream = http::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .header(header::HOST, &endpoint);
    for name in &UPGRADE_REQUEST {
        for value in parts.headers.get_all(name) {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = upstream
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut answer = sender
        .send_request(upstream)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = answer.status();
    let mut reply = Response::builder().status(status);
    for name in &UPGRADE_ANSWER {
        for value in answer.headers().get_all(name) {
            reply = reply.header(name, value);
        }
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        use http_body_util::BodyExt;
        let body = http_body_util::Limited::new(answer.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        return Ok(reply
            .body(axum::body::Body::from(body))
            .unwrap_or_else(|_| ApiError::Internal.into_response()));
    }
    let node_upgrade = hyper::upgrade::on(&mut answer);
    tokio::spawn(async move {
        let (client, node) = match tokio::join!(client_upgrade, node_upgrade) {
            (Ok(client), Ok(node)) => (client, node),
            (Err(error), _) | (_, Err(error)) => {
                tracing::debug!(%error, "a stream upgrade failed");
                return;
            }
        };
        let (mut client, mut node) = (TokioIo::new(client), TokioIo::new(node));
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut node).await {
            tracing::debug!(%error, "a stream ended with an error");
        }
    });
    Ok(reply
        .body(axum::body::Body::empty())
        .unwrap_or_else(|_| ApiError::Internal.into_response()))
}
