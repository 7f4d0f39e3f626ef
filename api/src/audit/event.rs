//! The `audit.k8s.io/v1` `Event`, and the pure pieces an event is built
//! from: the user, the object reference, the response status, the source
//! addresses, timestamps. Fields are declared in the order kube-apiserver
//! writes them, and empty ones are left out as Go's `omitempty` leaves
//! them out, so a line reads like one of kube-apiserver's.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use skiff_auth::{Target, UserInfo};

use super::policy::{Level, Stage};
use crate::status::{Details, Empty, Status};

/// One audit event: one line of the log.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: Stage,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    /// The authenticated user (empty when authentication failed).
    pub user: User,
    /// Whom the user acted as, when impersonating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<User>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    pub request_received_timestamp: String,
    pub stage_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Event {
    /// An event about a request received at `received`, at level
    /// `Metadata` and stage `RequestReceived` until told otherwise.
    pub fn new(audit_id: String, request_uri: String, verb: String, received: jiff::Timestamp) -> Event {
        let received = micro_time(received);
        Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: Level::Metadata,
            audit_id,
            stage: Stage::RequestReceived,
            request_uri,
            verb,
            user: User::default(),
            impersonated_user: None,
            source_ips: Vec::new(),
            user_agent: String::new(),
            object_ref: None,
            response_status: None,
            request_object: None,
            response_object: None,
            stage_timestamp: received.clone(),
            request_received_timestamp: received,
            annotations: BTreeMap::new(),
        }
    }

    /// The event as written: one line of JSON.
    pub fn line(&self) -> Vec<u8> {
        // Strings, numbers and JSON values always serialize.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// `authentication.k8s.io/v1` `UserInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct User {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<&UserInfo> for User {
    fn from(user: &UserInfo) -> User {
        User {
            username: user.name.clone(),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            extra: user.extra.clone(),
        }
    }
}

/// What a resource request is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

impl ObjectRef {
    /// The reference for `target` at `api_version`; `None` for a
    /// non-resource URL.
    pub fn of(target: &Target, api_version: &str) -> Option<ObjectRef> {
        let Target::Resource(r) = target else {
            return None;
        };
        Some(ObjectRef {
            resource: r.resource.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            api_group: r.group.clone(),
            api_version: api_version.to_string(),
            subresource: r.subresource.clone(),
        })
    }
}

/// The result: a `metav1.Status` with the fields kube-apiserver keeps
/// (`{"metadata":{},"code":200}` for a success).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResponseStatus {
    pub metadata: Empty,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
    pub code: u16,
}

impl ResponseStatus {
    /// The status of a response with HTTP status `code`, and the
    /// `metav1.Status` it carried if it was one.
    pub fn of(code: u16, status: Option<&Status>) -> ResponseStatus {
        match status {
            Some(status) => ResponseStatus {
                metadata: Empty {},
                status: status.status,
                message: status.message.clone(),
                reason: status.reason,
                details: status.details.clone(),
                code,
            },
            None => ResponseStatus {
                code,
                ..Default::default()
            },
        }
    }
}

/// A `metav1.MicroTime`: RFC 3339 in UTC with microseconds, e.g.
/// `2024-05-01T12:00:00.123456Z`.
pub fn micro_time(at: jiff::Timestamp) -> String {
    let t = at.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.subsec_nanosecond() / 1000
    )
}

/// The addresses a request came from, as kube-apiserver lists them: the
/// `X-Forwarded-For` addresses, then `X-Real-Ip` unless already listed,
/// then the peer's address unless it is the last one listed. All but the
/// last may be set by the client at will.
pub fn source_ips(headers: &HeaderMap, peer: Option<IpAddr>) -> Vec<String> {
    let mut ips: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|ip| ip.trim().parse().ok())
        .collect();
    if let Some(real) = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        && !ips.contains(&real)
    {
        ips.push(real);
    }
    if let Some(peer) = peer
        && ips.last() != Some(&peer)
    {
        ips.push(peer);
    }
    ips.iter().map(IpAddr::to_string).collect()
}

/// `object` without `metadata.managedFields`, in itself or in each of
/// its items (a list).
pub fn omit_managed_fields(object: &mut Value) {
    let strip = |v: &mut Value| {
        if let Some(metadata) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
    };
    strip(object);
    if let Some(items) = object.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(strip);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;
    use skiff_auth::ResourceAttributes;

    use super::*;

    #[test]
    fn events_serialize_as_kube_apiserver_writes_them() {
        let received = jiff::Timestamp::from_microsecond(1_714_564_800_123_456).unwrap();
        let mut event = Event::new(
            "0b4c-id".into(),
            "/api/v1/namespaces/a/configmaps?fieldManager=kubectl".into(),
            "create".into(),
            received,
        );
        event.user = User::from(&UserInfo::admin());
        event.object_ref = ObjectRef::of(
            &Target::Resource(ResourceAttributes {
                namespace: "a".into(),
                resource: "configmaps".into(),
                ..Default::default()
            }),
            "v1",
        );
        event.stage = Stage::ResponseComplete;
        event.response_status = Some(ResponseStatus::of(201, None));
        let line = String::from_utf8(event.line()).unwrap();
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        assert!(
            line.starts_with(r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"0b4c-id","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/a/configmaps?fieldManager=kubectl","verb":"create","user":{"username":"skiff-admin","groups":["system:masters","system:authenticated"]},"objectRef":{"resource":"configmaps","namespace":"a","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2024-05-01T12:00:00.123456Z","stageTimestamp":"2024-05-01T12:00:00.123456Z"}"#),
            "{line}"
        );
    }

    #[test]
    fn failures_keep_the_status_fields() {
        let status = crate::error::ApiError::Forbidden("configmaps is forbidden: no".into()).status();
        let value = serde_json::to_value(ResponseStatus::of(403, Some(&status))).unwrap();
        assert_eq!(
            value,
            json!({"metadata": {}, "status": "Failure", "message": "configmaps is forbidden: no", "reason": "Forbidden", "code": 403})
        );
    }

    #[test]
    fn source_ips_list_proxies_then_the_peer() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(source_ips(&headers, Some(peer)), ["10.0.0.9"]);
        headers.insert("x-forwarded-for", "1.2.3.4, 10.0.0.9".parse().unwrap());
        assert_eq!(source_ips(&headers, Some(peer)), ["1.2.3.4", "10.0.0.9"]);
        headers.insert("x-real-ip", "5.6.7.8".parse().unwrap());
        assert_eq!(
            source_ips(&headers, Some(peer)),
            ["1.2.3.4", "10.0.0.9", "5.6.7.8", "10.0.0.9"]
        );
        assert_eq!(source_ips(&HeaderMap::new(), None), Vec::<String>::new());
    }

    #[test]
    fn managed_fields_go_from_objects_and_items() {
        let mut list =
            json!({"metadata": {"managedFields": [1]}, "items": [{"metadata": {"name": "a", "managedFields": [2]}}]});
        omit_managed_fields(&mut list);
        assert_eq!(list, json!({"metadata": {}, "items": [{"metadata": {"name": "a"}}]}));
    }
}
