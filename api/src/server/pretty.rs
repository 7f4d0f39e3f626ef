//! Indented JSON for people, as kube-apiserver writes it: when the query
//! says `pretty=true` (or, without `pretty`, when the User-Agent is curl's,
//! Wget's or a browser's), JSON replies are indented by two spaces and end
//! without a newline. Scripts that read `curl` output see the same text
//! from skiff as from Kubernetes.
//!
//! It is one layer over the router, so every handler and every error
//! renders once and is indented here. The indenting transcodes the JSON
//! (serde-transcode) rather than parsing it into a `serde_json::Value`,
//! which would sort the keys out of the Go field order the reply was
//! written in. Watches stream and are left alone.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Uri, header};

/// Whether the request asks for indented JSON (`isPrettyPrint` in
/// kube-apiserver's terms).
pub fn wanted(uri: &Uri, headers: &HeaderMap) -> bool {
    let query = uri.query().unwrap_or_default();
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    };
    if param("watch").and_then(parse_bool) == Some(true) {
        return false;
    }
    if let Some(pretty) = param("pretty").filter(|v| !v.is_empty()) {
        return parse_bool(pretty).unwrap_or(false);
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    ["curl", "Wget", "Mozilla/5.0"].iter().any(|p| agent.starts_with(p))
}

/// Go's `strconv.ParseBool`.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The layer: indents a JSON reply when [`wanted`].
pub async fn layer(request: Request, next: Next) -> Response {
    let pretty = wanted(request.uri(), request.headers());
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !pretty || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let text = indent(&bytes).unwrap_or_else(|| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

/// `json` indented by two spaces, its keys in the order written; `None`
/// when it is not one JSON document.
pub fn indent(json: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(json.len() * 2);
    let mut reader = serde_json::Deserializer::from_slice(json);
    let mut writer = serde_json::Serializer::pretty(&mut out);
    serde_transcode::transcode(&mut reader, &mut writer).ok()?;
    reader.end().ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asks(uri: &str, agent: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, agent.parse().unwrap());
        wanted(&uri.parse().unwrap(), &headers)
    }

    #[test]
    fn people_get_indented_json_and_programs_do_not() {
        assert!(asks("/api/v1/pods", "curl/8.5.0"));
        assert!(asks("/api/v1/pods", "Mozilla/5.0 (X11)"));
        assert!(!asks("/api/v1/pods", "kubectl/v1.33.0"));
        assert!(asks("/api/v1/pods?pretty=true", "kubectl/v1.33.0"));
        assert!(!asks("/api/v1/pods?pretty=0", "curl/8.5.0"));
        assert!(!asks("/api/v1/pods?pretty=bogus", "curl/8.5.0"));
        assert!(!asks("/api/v1/pods?watch=true", "curl/8.5.0"));
    }

    #[test]
    fn indenting_keeps_the_order_written() {
        let json = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"code":404}"#;
        assert_eq!(
            String::from_utf8(indent(json).unwrap()).unwrap(),
            "{\n  \"kind\": \"Status\",\n  \"apiVersion\": \"v1\",\n  \"metadata\": {},\n  \"code\": 404\n}"
        );
        assert_eq!(indent(b"{} trailing"), None);
    }
}
