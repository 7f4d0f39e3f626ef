//! End to end: `skiff server` with an audit policy, driven by the real
//! kubectl, and the log it writes: who did what, as whom, with which
//! result, and never a Secret's payload.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use support::{Cluster, until};

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
# Capped at Metadata by the server whatever this says.
- level: RequestResponse
  resources: [{group: "", resources: [secrets]}]
- level: Request
  resources: [{group: "", resources: [configmaps]}]
- level: Metadata
"#;

const PASSWORD: &str = "correct-horse-battery-staple";

/// Every event in the log directory, rotated files included.
fn events(dir: &Path) -> (String, Vec<Value>) {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let events = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    (text, events)
}

#[test]
fn the_audit_log_says_who_did_what_and_keeps_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let logs = dir.path().join("audit");
    let log = logs.join("audit.log");
    let cluster = Cluster::start_with(&[
        "--no-agent",
        "--audit-policy-file",
        policy.to_str().unwrap(),
        "--audit-log-path",
        log.to_str().unwrap(),
        "--audit-log-maxsize",
        "1",
        "--audit-log-maxbackup",
        "50",
    ]);
    cluster.ok(&["create", "configmap", "settings", "--from-literal=greeting=hello-audit"]);
    cluster.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        &format!("--from-literal=password={PASSWORD}"),
    ]);
    let secret = cluster.json(&["get", "secret", "creds"]);
    let encoded = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    assert_eq!(secret["data"]["password"], encoded.as_str());
    let refused = cluster.kubectl(&["--as", "jane", "get", "configmaps"]);
    assert!(!refused.status.success(), "jane may not list ConfigMaps");

    let forbidden = |e: &Value| e["responseStatus"]["code"] == 403 && e["impersonatedUser"]["username"] == "jane";
    let (text, events) = until(
        Duration::from_secs(60),
        "the forbidden request in the audit log",
        || {
            let (text, events) = events(&logs);
            events.iter().any(forbidden).then_some((text, events))
        },
    );

    for event in &events {
        assert_eq!(event["kind"], "Event", "{event}");
        assert_eq!(event["apiVersion"], "audit.k8s.io/v1", "{event}");
        assert!(!event["auditID"].as_str().unwrap().is_empty(), "{event}");
        assert!(
            ["ResponseStarted", "ResponseComplete"].contains(&event["stage"].as_str().unwrap()),
            "RequestReceived is omitted: {event}"
        );
        assert!(event["requestURI"].as_str().unwrap().starts_with('/'), "{event}");
        assert!(!event["verb"].as_str().unwrap().is_empty(), "{event}");
        for stamp in ["requestReceivedTimestamp", "stageTimestamp"] {
            let text = event[stamp].as_str().unwrap();
            let fraction = text.rsplit_once('.').map(|(_, f)| f).unwrap_or_default();
            assert!(fraction.len() == 7 && fraction.ends_with('Z'), "microseconds: {text}");
            assert!(text.parse::<jiff::Timestamp>().is_ok(), "{text}");
        }
        assert!(event["responseStatus"]["code"].as_u64().is_some(), "{event}");
    }
    assert!(
        !text.contains(PASSWORD) && !text.contains(&encoded),
        "a Secret's payload is in the audit log"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["requestURI"].as_str().unwrap().starts_with("/readyz")),
        "health checks are at level None"
    );

    let find = |what: &str, test: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| test(e))
            .unwrap_or_else(|| panic!("no event for {what} in:\n{text}"))
            .clone()
    };
    let created = find("the ConfigMap's create", &|e| {
        e["verb"] == "create" && e["objectRef"]["resource"] == "configmaps"
    });
    assert_eq!(created["level"], "Request");
    assert_eq!(created["objectRef"]["name"], "settings");
    assert_eq!(created["objectRef"]["namespace"], "default");
    assert_eq!(created["objectRef"]["apiVersion"], "v1");
    assert_eq!(created["requestObject"]["data"]["greeting"], "hello-audit");
    assert!(created.get("responseObject").is_none());
    assert_eq!(created["responseStatus"]["code"], 201);
    assert_eq!(created["user"]["username"], "skiff-admin");
    assert!(
        created["user"]["groups"]
            .as_array()
            .unwrap()
            .contains(&"system:masters".into())
    );
    assert!(
        created["sourceIPs"].as_array().unwrap().contains(&"127.0.0.1".into()),
        "{created}"
    );
    assert!(
        created["userAgent"].as_str().unwrap().starts_with("kubectl"),
        "{created}"
    );
    assert_eq!(created["annotations"]["authorization.k8s.io/decision"], "allow");

    let secret_created = find("the Secret's create", &|e| {
        e["verb"] == "create" && e["objectRef"]["resource"] == "secrets"
    });
    assert_eq!(secret_created["level"], "Metadata", "capped whatever the policy says");
    assert_eq!(secret_created["objectRef"]["name"], "creds");
    assert!(secret_created.get("requestObject").is_none() && secret_created.get("responseObject").is_none());
    let secret_read = find("the Secret's get", &|e| {
        e["verb"] == "get" && e["objectRef"]["resource"] == "secrets" && e["objectRef"]["name"] == "creds"
    });
    assert_eq!(secret_read["level"], "Metadata");
    assert_eq!(secret_read["responseStatus"]["code"], 200);

    let refused = find("the forbidden list", &forbidden);
    assert_eq!(refused["user"]["username"], "skiff-admin");
    assert_eq!(refused["verb"], "list");
    assert_eq!(refused["objectRef"]["resource"], "configmaps");
    assert_eq!(refused["responseStatus"]["reason"], "Forbidden");
    assert_eq!(refused["annotations"]["authorization.k8s.io/decision"], "forbid");

    // The server's own components are audited as themselves.
    assert!(
        events
            .iter()
            .any(|e| e["user"]["username"] == "system:kube-controller-manager"),
        "no event of the controllers"
    );
}

#[test]
fn bad_audit_flags_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_skiff"))
            .arg("server")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let log = dir.path().join("audit.log");
    let out = run(&[
        "--audit-policy-file",
        policy.to_str().unwrap(),
        "--audit-log-path",
        log.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("policy.yaml") && stderr.contains("unknown variant `Loud`"),
        "{stderr}"
    );
    // A policy with nowhere to write, or a log with no policy, is a mistake.
    let out = run(&["--audit-log-path", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!data.exists() && !log.exists(), "nothing was opened");
}
