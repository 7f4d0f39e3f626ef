//! Discovery, version, OpenAPI and health, as clients fetch them.

use http::{Method, StatusCode};

use crate::support::Api;

#[tokio::test]
async fn aggregated_discovery_needs_its_content_type() {
    let api = Api::start().await;
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let reply = api.request(Method::GET, "/apis", &[("accept", accept)], vec![]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let groups: Vec<&str> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["metadata"]["name"].as_str().unwrap())
        .collect();
    for group in [
        "apps",
        "batch",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "skiff.dev",
    ] {
        assert!(groups.contains(&group), "{group} missing from {groups:?}");
    }
    let core = api.request(Method::GET, "/api", &[("accept", accept)], vec![]).await;
    assert_eq!(core.body["items"][0]["metadata"]["name"], "");
}

#[tokio::test]
async fn legacy_discovery_lists_resources_and_subresources() {
    let api = Api::start().await;
    let versions = api.get("/api").await;
    assert_eq!(versions.body["versions"][0], "v1");
    let groups = api.get("/apis").await;
    assert_eq!(groups.body["kind"], "APIGroupList");
    let core = api.get("/api/v1").await;
    let names: Vec<&str> = core.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for name in [
        "pods",
        "pods/log",
        "pods/binding",
        "pods/eviction",
        "pods/status",
        "namespaces/finalize",
        "events",
    ] {
        assert!(names.contains(&name), "{name} missing");
    }
    let apps = api.get("/apis/apps/v1").await;
    assert_eq!(apps.body["groupVersion"], "apps/v1");
    assert_eq!(api.get("/apis/apps/v9").await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/apis/nothing.example").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn version_openapi_and_health() {
    let api = Api::start().await;
    let version = api.get("/version").await;
    assert_eq!(version.body["major"], "1");
    assert_eq!(version.body["minor"], "33");
    let index = api.get("/openapi/v3").await;
    let url = index.body["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let core = api.get(&url).await;
    assert_eq!(core.status, StatusCode::OK);
    assert!(core.body["components"]["schemas"]["io.k8s.api.core.v1.Pod"].is_object());
    let v2 = api.get("/openapi/v2").await;
    assert_eq!(v2.body["swagger"], "2.0");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert_eq!(
            api.get(&format!("/api/v1/namespaces/{ns}")).await.status,
            StatusCode::OK,
            "{ns}"
        );
    }
    for class in ["wasmtime", "runc"] {
        let reply = api.get(&format!("/apis/node.k8s.io/v1/runtimeclasses/{class}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{class}");
        assert_eq!(reply.body["handler"], class);
    }
    for path in ["/healthz", "/livez", "/readyz"] {
        let reply = api.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn non_resource_paths_answer_with_a_trailing_slash_too() {
    let api = Api::start().await;
    for (path, field) in [("/version", "gitVersion"), ("/api", "versions"), ("/apis", "groups")] {
        let plain = api.get(path).await;
        let slashed = api.get(&format!("{path}/")).await;
        assert_eq!(slashed.status, StatusCode::OK, "{path}/");
        assert_eq!(slashed.body[field], plain.body[field], "{path}/");
    }
    // As in kube-apiserver, which registers these without the slash only.
    for path in ["/healthz/", "/openapi/v2/"] {
        assert_eq!(api.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn credentials_are_required() {
    let api = Api::start().await;
    let request = |path: &str, auth: Option<&str>| {
        let mut builder = http::Request::builder().uri(path);
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    };
    use tower::ServiceExt;
    for (path, auth, expected) in [
        ("/api/v1/namespaces", None, StatusCode::UNAUTHORIZED),
        ("/api/v1/namespaces", Some("Bearer wrong"), StatusCode::UNAUTHORIZED),
        ("/api/v1/namespaces/default/pods/p", None, StatusCode::UNAUTHORIZED),
        // Discovery is public, by the binding `skiff:anonymous-discovery`.
        ("/apis", None, StatusCode::OK),
        ("/api/v1", None, StatusCode::OK),
        ("/openapi/v2", None, StatusCode::OK),
        ("/version", None, StatusCode::OK),
        // A bad credential is refused even where anonymous users may read.
        ("/healthz", Some("Bearer wrong"), StatusCode::UNAUTHORIZED),
        ("/version/", None, StatusCode::OK),
        ("/healthz", None, StatusCode::OK),
    ] {
        let response = api.router.clone().oneshot(request(path, auth)).await.unwrap();
        assert_eq!(response.status(), expected, "{path} with {auth:?}");
        if expected == StatusCode::UNAUTHORIZED {
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            let status: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(status["reason"], "Unauthorized");
            assert_eq!(status["code"], 401);
        }
    }
}
