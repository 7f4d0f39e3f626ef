//! Access control through the router: who is authenticated as whom, and
//! what RBAC, the Node authorizer, NodeRestriction and the escalation check
//! let each of them do.
//!
//! The expected decisions are Kubernetes' for the same bindings: the
//! bootstrap roles (`edit`, `view`, `admin`, `system:node`, …) are
//! Kubernetes 1.33's, so what a subject may do follows from which of them
//! it holds, written out per cell below.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use skiff_api::auth::{Authentication, DEFAULT_ISSUER, UserInfo};
use skiff_auth::token::{Claims, Keys, KubernetesClaim, Reference};

use crate::support::{Api, Reply, TOKEN};

const JANE: &str = "jane-token";
const VERA: &str = "vera-token";
const ALICE: &str = "alice-token";
const NODE1: &str = "node1-token";
const NODE2: &str = "node2-token";

/// A fresh P-256 key, as the PKI makes one.
fn signing_key() -> Vec<u8> {
    rcgen::KeyPair::generate().unwrap().serialize_der()
}

struct Cluster {
    api: Api,
    keys: Arc<Keys>,
    key: Vec<u8>,
}

/// A server with users: jane edits and vera views namespace `a`, alice
/// administers it, two nodes; a pod on node n1 names Secret `s1`.
async fn cluster() -> Cluster {
    let key = signing_key();
    let keys = Arc::new(Keys::new(DEFAULT_ISSUER, &key).unwrap());
    let user = |name: &str| UserInfo::new(name, ["system:authenticated"]);
    let authentication = Authentication::new()
        .with_token(TOKEN, UserInfo::admin())
        .with_token(JANE, user("jane"))
        .with_token(VERA, user("vera"))
        .with_token(ALICE, user("alice"))
        .with_token(NODE1, UserInfo::node("n1"))
        .with_token(NODE2, UserInfo::node("n2"))
        .with_service_accounts(keys.clone(), Vec::new());
    let api = Api::start_with(authentication).await;
    for ns in ["a", "b"] {
        api.create_namespace(ns).await;
    }
    for (user, role) in [("jane", "edit"), ("vera", "view"), ("alice", "admin")] {
        let reply = api
            .post(
                "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings",
                json!({
                    "metadata": {"name": format!("{user}-{role}")},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
                }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    for (ns, name) in [("a", "s1"), ("a", "s2"), ("b", "s1")] {
        let reply = api
            .post(
                &format!("/api/v1/namespaces/{ns}/secrets"),
                json!({"metadata": {"name": name}, "stringData": {"k": "v"}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    for node in ["n1", "n2"] {
        let reply = api.post("/api/v1/nodes", json!({"metadata": {"name": node}})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    let reply = api
        .post(
            "/api/v1/namespaces/a/pods",
            json!({
                "metadata": {"name": "on-n1"},
                "spec": {
                    "nodeName": "n1",
                    "containers": [{"name": "c", "image": "x"}],
                    "volumes": [{"name": "v", "secret": {"secretName": "s1"}}],
                },
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    Cluster { api, keys, key }
}

impl Cluster {
    async fn call(&self, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Reply {
        let content_type = match method {
            Method::PATCH => "application/merge-patch+json",
            _ => "application/json",
        };
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.api
            .request_with(token, method, path, &[("content-type", content_type)], body)
            .await
    }

    async fn whoami(&self, token: &str) -> Reply {
        self.call(
            Some(token),
            Method::POST,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
        )
        .await
    }

    /// A token for ServiceAccount `name` in `namespace` (created if
    /// missing), from TokenRequest.
    async fn service_account_token(&self, namespace: &str, name: &str, request: Value) -> String {
        let _ = self
            .api
            .post(
                &format!("/api/v1/namespaces/{namespace}/serviceaccounts"),
                json!({"metadata": {"name": name}}),
            )
            .await;
        let reply = self
            .api
            .post(
                &format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"),
                request,
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        assert_eq!(reply.body["kind"], "TokenRequest");
        reply.body["status"]["token"].as_str().unwrap().to_string()
    }
}

/// What a cell must come out as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Anything but 401 and 403 (the request may still fail, as a 404 or
    /// a 422, once authorized).
    Allowed,
    Forbidden,
    Unauthorized,
}

use Outcome::{Allowed, Forbidden, Unauthorized};

fn outcome(reply: &Reply) -> Outcome {
    match reply.status {
        StatusCode::UNAUTHORIZED => Unauthorized,
        StatusCode::FORBIDDEN => Forbidden,
        _ => Allowed,
    }
}

/// The eight verbs as requests on a collection path and an object name.
fn requests(collection: &str, name: &str) -> Vec<(&'static str, Method, String)> {
    let object = format!("{collection}/{name}");
    vec![
        ("get", Method::GET, object.clone()),
        ("list", Method::GET, collection.to_string()),
        (
            "watch",
            Method::GET,
            format!("{collection}?watch=true&timeoutSeconds=1"),
        ),
        ("create", Method::POST, collection.to_string()),
        ("update", Method::PUT, object.clone()),
        ("patch", Method::PATCH, object.clone()),
        ("delete", Method::DELETE, object),
        (
            "deletecollection",
            Method::DELETE,
            format!("{collection}?labelSelector=matrix%3Dnone"),
        ),
    ]
}

const READS: [&str; 3] = ["get", "list", "watch"];

#[tokio::test]
async fn the_authorization_matrix_matches_kubernetes_rbac() {
    let c = cluster().await;
    let unbound = c.service_account_token("a", "unbound", json!({"spec": {}})).await;
    // The resources, and for each subject which verbs Kubernetes allows.
    // Subjects: admin, jane (edit in a), vera (view in a), alice (admin
    // in a), an unbound ServiceAccount, node n1, anonymous.
    struct Row {
        collection: &'static str,
        name: &'static str,
        jane: &'static [&'static str],
        vera: &'static [&'static str],
        node: &'static [&'static str],
    }
    let all: &[&str] = &[
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ];
    let rows = [
        Row {
            collection: "/api/v1/namespaces/a/pods",
            name: "x",
            jane: all,
            vera: &READS,
            // system:node reads pods anywhere, deletes them, creates
            // (mirror) pods; NodeRestriction narrows writes in admission.
            node: &["get", "list", "watch", "create", "delete"],
        },
        Row {
            collection: "/api/v1/namespaces/b/pods",
            name: "x",
            jane: &[],
            vera: &[],
            node: &["get", "list", "watch", "create", "delete"],
        },
        Row {
            collection: "/api/v1/namespaces/a/secrets",
            name: "s2",
            jane: all,
            vera: &[],
            // Only Secrets its pods name, one at a time.
            node: &[],
        },
        Row {
            collection: "/apis/apps/v1/namespaces/a/deployments",
            name: "x",
            jane: all,
            vera: &READS,
            node: &[],
        },
        Row {
            collection: "/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles",
            name: "x",
            jane: &[],
            vera: &[],
            node: &[],
        },
        Row {
            collection: "/api/v1/nodes",
            name: "n2",
            jane: &[],
            vera: &[],
            node: &["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        Row {
            collection: "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            name: "view",
            jane: &[],
            vera: &[],
            node: &[],
        },
    ];
    let mut mismatches = Vec::new();
    for row in &rows {
        for (verb, method, path) in requests(row.collection, row.name) {
            let body = match method {
                Method::POST | Method::PUT | Method::PATCH => Some(json!({"metadata": {"name": row.name}})),
                _ => None,
            };
            let expect = |list: &[&str]| if list.contains(&verb) { Allowed } else { Forbidden };
            let cells = [
                ("admin", Some(TOKEN), Allowed),
                ("jane", Some(JANE), expect(row.jane)),
                ("vera", Some(VERA), expect(row.vera)),
                ("unbound", Some(unbound.as_str()), Forbidden),
                ("node n1", Some(NODE1), expect(row.node)),
                ("anonymous", None, Unauthorized),
            ];
            for (who, token, expected) in cells {
                // The admin's writes would change what later cells see.
                if who == "admin" && !READS.contains(&verb) {
                    continue;
                }
                let reply = c.call(token, method.clone(), &path, body.clone()).await;
                let got = outcome(&reply);
                // A node write NodeRestriction refuses is a 403 too; the
                // node rows above list only what RBAC grants, so writes
                // to objects that are not the node's own may come out
                // Forbidden from admission: accept that for nodes.
                let node_write_refused =
                    who == "node n1" && expected == Allowed && got == Forbidden && !READS.contains(&verb);
                if got != expected && !node_write_refused {
                    mismatches.push(format!(
                        "{who} {verb} {path}: expected {expected:?}, got {got:?} ({})",
                        reply.status
                    ));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // Reading a namespace is in it: view in `a` reads `a` only.
    assert_eq!(
        outcome(&c.call(Some(VERA), Method::GET, "/api/v1/namespaces/a", None).await),
        Allowed
    );
    assert_eq!(
        outcome(&c.call(Some(VERA), Method::GET, "/api/v1/namespaces/b", None).await),
        Forbidden
    );
    // Subresources: view reads logs and scale, edit writes scale.
    assert_eq!(
        outcome(
            &c.call(Some(VERA), Method::GET, "/api/v1/namespaces/a/pods/on-n1/log", None)
                .await
        ),
        Allowed
    );
    let scale = "/apis/apps/v1/namespaces/a/deployments/x/scale";
    assert_eq!(outcome(&c.call(Some(VERA), Method::GET, scale, None).await), Allowed);
    let body = Some(json!({"spec": {"replicas": 2}}));
    assert_eq!(
        outcome(&c.call(Some(VERA), Method::PATCH, scale, body.clone()).await),
        Forbidden
    );
    assert_eq!(outcome(&c.call(Some(JANE), Method::PATCH, scale, body).await), Allowed);
}

#[tokio::test]
async fn a_node_reads_only_what_its_pods_name_and_writes_only_its_own() {
    let c = cluster().await;
    let get = |token, path: &'static str| c.call(Some(token), Method::GET, path, None);
    assert_eq!(outcome(&get(NODE1, "/api/v1/namespaces/a/secrets/s1").await), Allowed);
    let refused = get(NODE2, "/api/v1/namespaces/a/secrets/s1").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body["message"],
        "secrets \"s1\" is forbidden: User \"system:node:n2\" cannot get resource \"secrets\" in API group \"\" in the namespace \"a\": no relationship found between node 'n2' and this object"
    );
    assert_eq!(outcome(&get(NODE1, "/api/v1/namespaces/a/secrets/s2").await), Forbidden);
    assert_eq!(outcome(&get(NODE1, "/api/v1/namespaces/b/secrets/s1").await), Forbidden);
    assert_eq!(outcome(&get(NODE1, "/api/v1/namespaces/a/secrets").await), Forbidden);
    // Its own Node, and its pods' status; not another node's.
    let status = Some(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
    let patch = |token, path: &'static str, body: Option<Value>| c.call(Some(token), Method::PATCH, path, body);
    assert_eq!(
        patch(NODE1, "/api/v1/nodes/n1/status", status.clone()).await.status,
        StatusCode::OK
    );
    let other = patch(NODE1, "/api/v1/nodes/n2/status", status).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.text);
    let pod_status = Some(json!({"status": {"phase": "Running"}}));
    let own = patch(NODE1, "/api/v1/namespaces/a/pods/on-n1/status", pod_status.clone()).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    let foreign = patch(NODE2, "/api/v1/namespaces/a/pods/on-n1/status", pod_status).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{}", foreign.text);
    assert_eq!(
        outcome(
            &c.call(Some(NODE2), Method::DELETE, "/api/v1/namespaces/a/pods/on-n1", None)
                .await
        ),
        Forbidden
    );
    // A pod bound to n2 now names s2: n2 may read it at once.
    let reply = c
        .api
        .post(
            "/api/v1/namespaces/a/pods",
            json!({"metadata": {"name": "on-n2"}, "spec": {"nodeName": "n2",
                "containers": [{"name": "c", "image": "x", "envFrom": [{"secretRef": {"name": "s2"}}]}]}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(outcome(&get(NODE2, "/api/v1/namespaces/a/secrets/s2").await), Allowed);
}

#[tokio::test]
async fn nobody_grants_what_they_do_not_hold() {
    let c = cluster().await;
    let role = |name: &str, resource: &str| json!({"metadata": {"name": name}, "rules": [{"apiGroups": [""], "resources": [resource], "verbs": ["get"]}]});
    let roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles";
    let bindings = "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings";
    // alice administers `a`: she may grant what she holds there.
    let held = c
        .call(Some(ALICE), Method::POST, roles, Some(role("pods", "pods")))
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    let more = c
        .call(Some(ALICE), Method::POST, roles, Some(role("nodes", "nodes")))
        .await;
    assert_eq!(more.status, StatusCode::FORBIDDEN, "{}", more.text);
    let message = more.body["message"].as_str().unwrap();
    assert!(
        message.contains("is attempting to grant RBAC permissions not currently held")
            && message.contains("Resources:[\"nodes\"]"),
        "{message}"
    );
    let binding = |name: &str, role: &str| {
        json!({"metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]})
    };
    let edit = c
        .call(Some(ALICE), Method::POST, bindings, Some(binding("bob-edit", "edit")))
        .await;
    assert_eq!(edit.status, StatusCode::CREATED, "{}", edit.text);
    let admin = c
        .call(
            Some(ALICE),
            Method::POST,
            bindings,
            Some(binding("bob-admin", "cluster-admin")),
        )
        .await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN, "{}", admin.text);
    // Nothing was written by the refusals.
    assert_eq!(c.api.get(&format!("{roles}/nodes")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        c.api.get(&format!("{bindings}/bob-admin")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn service_account_tokens_live_as_long_as_what_they_are_bound_to() {
    let c = cluster().await;
    let token = c.service_account_token("a", "robot", json!({"spec": {}})).await;
    let pods = "/api/v1/namespaces/a/pods";
    assert_eq!(outcome(&c.call(Some(&token), Method::GET, pods, None).await), Forbidden);
    // Bound to `view`, the token reads; a write made with the admin's
    // rights is visible to the next request.
    let reply = c
        .api
        .post(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings",
            json!({"metadata": {"name": "robot-view"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "a"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(outcome(&c.call(Some(&token), Method::GET, pods, None).await), Allowed);
    // Service accounts read the OpenID documents.
    let config = c
        .call(Some(&token), Method::GET, "/.well-known/openid-configuration", None)
        .await;
    assert_eq!(config.status, StatusCode::OK, "{}", config.text);
    assert_eq!(config.body["issuer"], DEFAULT_ISSUER);
    let jwks = c.call(Some(&token), Method::GET, "/openid/v1/jwks", None).await;
    assert_eq!(jwks.body["keys"][0]["alg"], "ES256");

    // Bound to a pod: good until the pod goes.
    let bound = c
        .service_account_token(
            "a",
            "robot",
            json!({"spec": {"expirationSeconds": 600, "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "on-n1"}}}),
        )
        .await;
    let me = c.whoami(&bound).await;
    assert_eq!(me.status, StatusCode::CREATED, "{}", me.text);
    assert_eq!(
        me.body["status"]["userInfo"]["username"],
        "system:serviceaccount:a:robot"
    );
    assert_eq!(
        me.body["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["on-n1"])
    );
    let deleted = c
        .api
        .request(
            Method::DELETE,
            "/api/v1/namespaces/a/pods/on-n1?gracePeriodSeconds=0",
            &[],
            vec![],
        )
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    // The pod may linger while its node stops it; gone, the token is.
    let _ = c
        .api
        .request(
            Method::DELETE,
            "/api/v1/namespaces/a/pods/on-n1?gracePeriodSeconds=0",
            &[],
            vec![],
        )
        .await;
    // Refused once the server's view of pods has the deletion (as
    // kube-apiserver's informers, a watch event later).
    let refused = skiff_testing::eventually(Duration::from_secs(10), "the bound token refused", || async {
        let reply = c.whoami(&bound).await;
        (reply.status == StatusCode::UNAUTHORIZED).then_some(reply)
    })
    .await
    .unwrap();
    assert_eq!(refused.body["reason"], "Unauthorized");

    // The ServiceAccount gone: its tokens go with it.
    let reply = c
        .api
        .request(
            Method::DELETE,
            "/api/v1/namespaces/a/serviceaccounts/robot",
            &[],
            vec![],
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.text);
    skiff_testing::eventually(Duration::from_secs(10), "the account's token refused", || async {
        (outcome(&c.call(Some(&token), Method::GET, pods, None).await) == Unauthorized).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn bad_credentials_get_401_and_change_nothing() {
    let c = cluster().await;
    let token = c.service_account_token("a", "robot", json!({"spec": {}})).await;
    let now = jiff::Timestamp::now().as_second() as u64;
    let claims = |exp: u64| Claims {
        sub: "system:serviceaccount:a:robot".into(),
        aud: vec![DEFAULT_ISSUER.into()],
        exp,
        iat: exp - 3600,
        nbf: exp - 3600,
        kubernetes: KubernetesClaim {
            namespace: "a".into(),
            serviceaccount: Reference {
                name: "robot".into(),
                uid: String::new(),
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let expired = c.keys.sign(&claims(now - 3600)).unwrap();
    let other_key = Keys::new(DEFAULT_ISSUER, &signing_key()).unwrap();
    let forged = other_key.sign(&claims(now + 3600)).unwrap();
    let still_good = Keys::new(DEFAULT_ISSUER, &c.key)
        .unwrap()
        .sign(&claims(now + 3600))
        .unwrap();
    let mut tampered: Vec<&str> = token.split('.').collect();
    tampered[1] = "eyJzdWIiOiJzeXN0ZW06YWRtaW4ifQ";
    let tampered = tampered.join(".");
    let create = json!({"metadata": {"name": "never"}, "data": {}});
    for bad in [
        expired.as_str(),
        forged.as_str(),
        tampered.as_str(),
        "not-a-token",
        "abcdef.0123456789abcdef",
    ] {
        let reply = c
            .call(
                Some(bad),
                Method::POST,
                "/api/v1/namespaces/a/configmaps",
                Some(create.clone()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}: {}", reply.text);
        assert_eq!(reply.body["kind"], "Status");
        assert_eq!(reply.body["code"], 401);
    }
    assert_eq!(
        c.api.get("/api/v1/namespaces/a/configmaps/never").await.status,
        StatusCode::NOT_FOUND
    );
    // The same key and claims, not expired, do authenticate.
    let reply = c
        .call(Some(&still_good), Method::GET, "/api/v1/namespaces/a/pods", None)
        .await;
    assert_eq!(outcome(&reply), Forbidden, "{}", reply.text);
}

#[tokio::test]
async fn reviews_answer_who_and_what() {
    let c = cluster().await;
    let review = |token: &'static str, kind: &'static str, path: &'static str, spec: Value| {
        let group_version = path
            .split("/apis/")
            .nth(1)
            .unwrap()
            .splitn(3, '/')
            .take(2)
            .collect::<Vec<_>>()
            .join("/");
        let body = json!({"apiVersion": group_version, "kind": kind, "spec": spec});
        c.call(Some(token), Method::POST, path, Some(body))
    };
    const SSAR: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let may = |ns: &str| json!({"resourceAttributes": {"namespace": ns, "verb": "create", "group": "apps", "resource": "deployments"}});
    let yes = review(JANE, "SelfSubjectAccessReview", SSAR, may("a")).await;
    assert_eq!(yes.status, StatusCode::CREATED, "{}", yes.text);
    assert_eq!(yes.body["status"]["allowed"], true);
    let no = review(JANE, "SelfSubjectAccessReview", SSAR, may("b")).await;
    assert_eq!(no.body["status"]["allowed"], false);
    let rules = review(
        VERA,
        "SelfSubjectRulesReview",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        json!({"namespace": "a"}),
    )
    .await;
    let resource_rules = rules.body["status"]["resourceRules"].as_array().unwrap();
    assert!(
        resource_rules
            .iter()
            .any(|r| r["resources"].as_array().unwrap().contains(&json!("pods"))
                && r["verbs"].as_array().unwrap().contains(&json!("list"))),
        "{}",
        rules.text
    );
    // Asking about others takes the right to: the admin may, jane may not.
    const SAR: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let about_vera =
        json!({"user": "vera", "resourceAttributes": {"namespace": "a", "verb": "delete", "resource": "pods"}});
    let answer = review(TOKEN, "SubjectAccessReview", SAR, about_vera.clone()).await;
    assert_eq!(answer.body["status"]["allowed"], false, "{}", answer.text);
    assert_eq!(
        review(JANE, "SubjectAccessReview", SAR, about_vera).await.status,
        StatusCode::FORBIDDEN
    );
    let local = review(
        TOKEN,
        "LocalSubjectAccessReview",
        "/apis/authorization.k8s.io/v1/namespaces/a/localsubjectaccessreviews",
        json!({"user": "jane", "resourceAttributes": {"verb": "get", "resource": "secrets"}}),
    )
    .await;
    assert_eq!(local.body["status"]["allowed"], true, "{}", local.text);
    // TokenReview: who a token is.
    let token = c.service_account_token("a", "robot", json!({"spec": {}})).await;
    let reviewed = c
        .call(
            Some(TOKEN),
            Method::POST,
            "/apis/authentication.k8s.io/v1/tokenreviews",
            Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})),
        )
        .await;
    assert_eq!(reviewed.body["status"]["authenticated"], true, "{}", reviewed.text);
    assert_eq!(
        reviewed.body["status"]["user"]["username"],
        "system:serviceaccount:a:robot"
    );
    let bogus = review(
        TOKEN,
        "TokenReview",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        json!({"token": "nope"}),
    )
    .await;
    assert_eq!(bogus.body["status"]["authenticated"], false);
    // Reviews are created, never read back.
    assert_eq!(c.api.get(SSAR).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn impersonation_takes_the_impersonate_verb() {
    let c = cluster().await;
    let as_jane = [("impersonate-user", "jane")];
    let reply = c
        .api
        .request_with(
            Some(TOKEN),
            Method::GET,
            "/api/v1/namespaces/b/secrets",
            &as_jane,
            vec![],
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "the admin acting as jane has jane's rights"
    );
    assert!(
        reply.body["message"].as_str().unwrap().contains("User \"jane\""),
        "{}",
        reply.text
    );
    let reply = c
        .api
        .request_with(
            Some(TOKEN),
            Method::GET,
            "/api/v1/namespaces/a/secrets",
            &as_jane,
            vec![],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = c
        .api
        .request_with(
            Some(VERA),
            Method::GET,
            "/api/v1/namespaces/a/secrets",
            &as_jane,
            vec![],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.body["message"],
        "users \"jane\" is forbidden: User \"vera\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
}

#[tokio::test]
async fn bootstrap_tokens_authenticate_while_valid() {
    let c = cluster().await;
    let secret = |id: &str, expiration: &str| {
        json!({
            "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
            "type": "bootstrap.kubernetes.io/token",
            "stringData": {
                "token-id": id,
                "token-secret": "0123456789abcdef",
                "usage-bootstrap-authentication": "true",
                "auth-extra-groups": "system:bootstrappers:workers",
                "expiration": expiration,
            },
        })
    };
    for (id, expiration) in [("abcdef", "2999-01-01T00:00:00Z"), ("expird", "2001-01-01T00:00:00Z")] {
        let reply = c
            .api
            .post("/api/v1/namespaces/kube-system/secrets", secret(id, expiration))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    let me = c.whoami("abcdef.0123456789abcdef").await;
    assert_eq!(me.status, StatusCode::CREATED, "{}", me.text);
    assert_eq!(me.body["status"]["userInfo"]["username"], "system:bootstrap:abcdef");
    assert_eq!(
        me.body["status"]["userInfo"]["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:workers",
            "system:authenticated"
        ])
    );
    for bad in [
        "abcdef.0123456789abcdee",
        "expird.0123456789abcdef",
        "zzzzzz.0123456789abcdef",
    ] {
        assert_eq!(c.whoami(bad).await.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
    // A join token reads nothing but discovery.
    let reply = c
        .call(
            Some("abcdef.0123456789abcdef"),
            Method::GET,
            "/api/v1/namespaces/a/pods",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn pods_run_as_an_existing_service_account_with_its_token_mounted() {
    let api = crate::support::Api::start().await;
    api.create_namespace("a").await;
    // A namespace comes with its default account at once, so a pod
    // created right after it finds one.
    let reply = api.get("/api/v1/namespaces/a/serviceaccounts/default").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let pod = |name: &str, spec: Value| json!({"metadata": {"name": name}, "spec": spec});
    let containers = json!([{"name": "c", "image": "x"}]);
    let reply = api
        .post("/api/v1/namespaces/a/pods", pod("p", json!({"containers": containers})))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let spec = &reply.body["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    let volume = spec["volumes"][0]["name"].as_str().unwrap();
    assert!(
        volume.starts_with("kube-api-access-") && volume.len() == "kube-api-access-".len() + 5,
        "{volume}"
    );
    assert_eq!(
        spec["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["path"],
        "token"
    );
    assert_eq!(spec["containers"][0]["volumeMounts"][0]["name"], volume);
    assert_eq!(
        spec["containers"][0]["volumeMounts"][0]["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );

    // An account that does not exist: Forbidden, and nothing is stored.
    let reply = api
        .post(
            "/api/v1/namespaces/a/pods",
            pod("q", json!({"serviceAccountName": "ghost", "containers": containers})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(
        reply.body["message"],
        "pods \"q\" is forbidden: error looking up service account a/ghost: serviceaccount \"ghost\" not found"
    );
    assert_eq!(
        api.get("/api/v1/namespaces/a/pods/q").await.status,
        StatusCode::NOT_FOUND
    );

    // An account that opts out of automounting: the pod runs as it, with
    // no token; the pod's own choice wins over the account's.
    let reply = api
        .post(
            "/api/v1/namespaces/a/serviceaccounts",
            json!({"metadata": {"name": "quiet"}, "automountServiceAccountToken": false}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let reply = api
        .post(
            "/api/v1/namespaces/a/pods",
            pod("r", json!({"serviceAccountName": "quiet", "containers": containers})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["spec"]["serviceAccountName"], "quiet");
    assert!(reply.body["spec"].get("volumes").is_none(), "{}", reply.text);
    let reply = api
        .post(
            "/api/v1/namespaces/a/pods",
            pod(
                "s",
                json!({"serviceAccountName": "quiet", "automountServiceAccountToken": true, "containers": containers}),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["spec"]["volumes"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn the_service_proxy_scales_workloads_from_zero_to_one_only() {
    const PROXY: &str = "proxy-token";
    let authentication = Authentication::new()
        .with_token(TOKEN, UserInfo::admin())
        .with_token(PROXY, UserInfo::new("system:kube-proxy", ["system:authenticated"]));
    let api = Api::start_with(authentication).await;
    // The bootstrap policy binds system:kube-proxy to the proxier roles.
    let deployment = json!({"metadata": {"name": "web"}, "spec": {
        "replicas": 0, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let reply = api
        .post("/apis/apps/v1/namespaces/default/deployments", deployment)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let scale = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    let patch = |replicas: i64| {
        let body = serde_json::to_vec(&json!({"spec": {"replicas": replicas}})).unwrap();
        let api = &api;
        async move {
            api.request_with(
                Some(PROXY),
                Method::PATCH,
                scale,
                &[("content-type", "application/merge-patch+json")],
                body,
            )
            .await
        }
    };
    let reply = patch(5).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert!(
        reply.text.contains("only scale a workload from 0 replicas to 1"),
        "{}",
        reply.text
    );
    let reply = patch(1).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // From one, the proxy changes nothing; the owner still can.
    let reply = patch(0).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let reply = api
        .request(
            Method::PATCH,
            scale,
            &[("content-type", "application/merge-patch+json")],
            serde_json::to_vec(&json!({"spec": {"replicas": 3}})).unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}
