//! Audit logging through the router: which events a policy gives, what
//! they say, and that Secret payloads never reach the log.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use skiff_api::audit::{Audit, Policy};
use skiff_api::auth::{Authentication, UserInfo};

use crate::support::{Api, TOKEN};

const JANE: &str = "jane-token";
const PASSWORD: &str = "hunter2-very-secret";

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*"]
- level: RequestResponse
  resources: [{group: "", resources: [secrets, configmaps]}]
- level: Request
  verbs: [create, update, patch]
  omitManagedFields: true
- level: Metadata
  omitStages: [RequestReceived]
"#;

/// Everything the server writes, as it writes it.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The events of request `id`, once there are `count`.
    async fn events(&self, id: &str, count: usize) -> Vec<Value> {
        skiff_testing::eventually(Duration::from_secs(10), &format!("{count} events of {id}"), || async {
            let events: Vec<Value> = self
                .text()
                .lines()
                .map(|line| serde_json::from_str::<Value>(line).unwrap())
                .filter(|e| e["auditID"] == id)
                .collect();
            (events.len() >= count).then_some(events)
        })
        .await
        .unwrap()
    }
}

async fn audited() -> (Api, Log) {
    let log = Log::default();
    let audit = Audit::with_writer(Policy::parse(POLICY).unwrap(), Box::new(log.clone())).unwrap();
    let authentication = Authentication::new()
        .with_token(TOKEN, UserInfo::admin())
        .with_token(JANE, UserInfo::new("jane", ["devs"]));
    let settings = skiff_api::server::Settings {
        audit: Some(audit),
        ..Default::default()
    };
    let api = Api::start_with_settings(authentication, settings).await;
    (api, log)
}

fn id(reply: &crate::support::Reply) -> String {
    reply.headers["audit-id"].to_str().unwrap().to_string()
}

fn stages(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["stage"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn events_say_who_did_what_as_whom_with_which_result() {
    let (api, log) = audited().await;

    // A create at RequestResponse: both bodies, in two stages.
    api.create_namespace("a").await;
    let reply = api
        .post(
            "/api/v1/namespaces/a/configmaps",
            json!({"metadata": {"name": "settings"}, "data": {"greeting": "hello"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let events = log.events(&id(&reply), 2).await;
    assert_eq!(stages(&events), ["RequestReceived", "ResponseComplete"]);
    let done = &events[1];
    assert_eq!(done["kind"], "Event");
    assert_eq!(done["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(done["level"], "RequestResponse");
    assert_eq!(done["verb"], "create");
    assert_eq!(done["requestURI"], "/api/v1/namespaces/a/configmaps");
    assert_eq!(done["user"]["username"], "skiff-admin");
    assert_eq!(
        done["objectRef"],
        json!({"resource": "configmaps", "namespace": "a", "name": "settings", "apiVersion": "v1"})
    );
    assert_eq!(done["responseStatus"], json!({"metadata": {}, "code": 201}));
    assert_eq!(done["requestObject"]["data"]["greeting"], "hello");
    assert_eq!(done["responseObject"]["metadata"]["uid"], reply.body["metadata"]["uid"]);
    assert_eq!(done["annotations"]["authorization.k8s.io/decision"], "allow");
    for stamp in ["requestReceivedTimestamp", "stageTimestamp"] {
        let text = done[stamp].as_str().unwrap();
        assert!(text.parse::<jiff::Timestamp>().is_ok(), "{text}");
        assert_eq!(text.len(), "2024-05-01T12:00:00.123456Z".len(), "{text}");
    }
    // Nothing was known yet when the request was received.
    assert!(events[0].get("responseStatus").is_none() && events[0].get("requestObject").is_none());

    // A create at Request: the request body without managed fields, no
    // response body.
    let namespace_create = log
        .text()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["objectRef"]["resource"] == "namespaces" && e["stage"] == "ResponseComplete")
        .unwrap();
    assert_eq!(namespace_create["level"], "Request");
    assert_eq!(namespace_create["objectRef"]["name"], "a");
    assert_eq!(namespace_create["requestObject"]["metadata"]["name"], "a");
    assert!(namespace_create.get("responseObject").is_none());

    // Forbidden, and a client's own audit ID kept.
    let reply = api
        .request_with(
            Some(JANE),
            Method::GET,
            "/api/v1/namespaces/a/configmaps",
            &[("audit-id", "jane-asks-1")],
            vec![],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(id(&reply), "jane-asks-1");
    let events = log.events("jane-asks-1", 2).await;
    let done = events.iter().find(|e| e["stage"] == "ResponseComplete").unwrap();
    assert_eq!(done["user"]["username"], "jane");
    assert_eq!(done["responseStatus"]["code"], 403);
    assert_eq!(done["responseStatus"]["reason"], "Forbidden");
    assert!(
        done["responseStatus"]["message"]
            .as_str()
            .unwrap()
            .contains("User \"jane\" cannot list")
    );
    assert_eq!(done["annotations"]["authorization.k8s.io/decision"], "forbid");

    // Impersonation: the real user, and whom it acted as.
    let reply = api
        .request(
            Method::GET,
            "/api/v1/namespaces/a/pods",
            &[("impersonate-user", "jane")],
            vec![],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let events = log.events(&id(&reply), 1).await;
    assert_eq!(
        stages(&events),
        ["ResponseComplete"],
        "Metadata's rule omits RequestReceived"
    );
    assert_eq!(events[0]["level"], "Metadata");
    assert_eq!(events[0]["user"]["username"], "skiff-admin");
    assert_eq!(events[0]["impersonatedUser"]["username"], "jane");
    assert_eq!(events[0]["verb"], "list");

    // Failed authentication: one event, no user.
    let reply = api
        .request_with(Some("wrong"), Method::GET, "/api/v1/namespaces", &[], vec![])
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let events = log.events(&id(&reply), 1).await;
    assert_eq!(stages(&events), ["ResponseStarted"]);
    assert_eq!(events[0]["user"], json!({}));
    assert_eq!(events[0]["responseStatus"]["code"], 401);

    // Non-resource URLs: the lower-cased method; health is not audited.
    let reply = api.get("/version").await;
    let events = log.events(&id(&reply), 1).await;
    assert_eq!(events[0]["verb"], "get");
    assert!(events[0].get("objectRef").is_none());
    let health = api.get("/healthz").await;
    let version = api.get("/version").await;
    log.events(&id(&version), 1).await;
    assert!(!log.text().contains(&id(&health)), "/healthz is at level None");
}

#[tokio::test]
async fn watches_start_before_they_complete() {
    let (api, log) = audited().await;
    let reply = api
        .get("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let events = log.events(&id(&reply), 3).await;
    assert_eq!(
        stages(&events),
        ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    );
    assert_eq!(events[1]["verb"], "watch");
    assert_eq!(events[1]["responseStatus"]["code"], 200);
    assert!(events[2].get("responseObject").is_none(), "a stream is not recorded");
}

#[tokio::test]
async fn secret_payloads_never_reach_the_log() {
    let (api, log) = audited().await;
    let encoded = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    let secret = json!({"metadata": {"name": "creds"}, "data": {"password": encoded}});
    let create = api.post("/api/v1/namespaces/default/secrets", secret.clone()).await;
    assert_eq!(create.status, StatusCode::CREATED, "{}", create.text);
    let get = api.get("/api/v1/namespaces/default/secrets/creds").await;
    let list = api.get("/api/v1/secrets").await;
    let patch = api
        .patch(
            "/api/v1/namespaces/default/secrets/creds",
            "application/merge-patch+json",
            json!({"stringData": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.text);
    // A Secret sent where ConfigMaps go (RequestResponse) lowers its event
    // to Metadata once the body is seen.
    let misplaced = api
        .post(
            "/api/v1/namespaces/default/configmaps",
            json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "oops"}, "stringData": {"p": PASSWORD}}),
        )
        .await;
    for reply in [&create, &get, &list, &patch, &misplaced] {
        let events = log.events(&id(reply), 2).await;
        assert_eq!(stages(&events), ["RequestReceived", "ResponseComplete"]);
        assert_eq!(events[1]["level"], "Metadata", "{}", events[1]);
        for event in events {
            assert!(event.get("requestObject").is_none() && event.get("responseObject").is_none());
        }
    }
    let text = log.text();
    assert!(!text.contains(PASSWORD) && !text.contains(&encoded), "{text}");
    let created = log.events(&id(&create), 2).await;
    assert_eq!(created[1]["objectRef"]["name"], "creds", "the name is still recorded");
}

#[tokio::test]
async fn without_a_policy_nothing_is_audited() {
    let api = Api::start().await;
    let reply = api.get("/api/v1/namespaces").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.get("audit-id").is_none());
    assert!(api.server.audit_stats().is_none());
}
