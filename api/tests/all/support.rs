//! A router over a fresh one-node store, and request helpers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use skiff_api::ApiServer;
use skiff_api::auth::{Authentication, UserInfo};
use skiff_store::{Store, StoreConfig};
use tower::ServiceExt;

pub const TOKEN: &str = "test-token";

pub struct Api {
    pub router: Router,
    pub store: Store,
    pub server: Arc<ApiServer>,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Api {
    pub async fn start() -> Api {
        Api::start_with(Authentication::new().with_token(TOKEN, UserInfo::admin())).await
    }

    /// A server that authenticates as `authentication` says (which should
    /// know [`TOKEN`] as an admin, for the helpers below).
    pub async fn start_with(authentication: Authentication) -> Api {
        Api::start_with_settings(authentication, skiff_api::server::Settings::default()).await
    }

    /// The same, set up with `settings`.
    pub async fn start_with_settings(authentication: Authentication, settings: skiff_api::server::Settings) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(1, dir.path().join("store"), "127.0.0.1:1");
        config.heartbeat_interval = Duration::from_millis(50);
        config.election_timeout = (Duration::from_millis(150), Duration::from_millis(300));
        config.compaction.enabled = false;
        let store = Store::open(config).await.unwrap();
        store.initialize_single().await.unwrap();
        store.wait_for_leader(Duration::from_secs(10)).await.unwrap();
        let server = ApiServer::with_settings(store.clone(), authentication, settings);
        let api = Api {
            router: server.router(),
            store,
            server,
            _dir: dir,
        };
        api.server.bootstrap().await.unwrap();
        api
    }

    pub async fn create_namespace(&self, name: &str) {
        let reply = self
            .post("/api/v1/namespaces", serde_json::json!({"metadata": {"name": name}}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }

    pub async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        self.request_with(Some(TOKEN), method, path, headers, body).await
    }

    /// A request with bearer token `token`, or none.
    pub async fn request_with(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let response = self
            .router
            .clone()
            .oneshot(builder.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, &[], vec![]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.request(
            Method::PUT,
            path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: Value) -> Reply {
        self.request(
            Method::PATCH,
            path,
            &[("content-type", content_type)],
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request(Method::DELETE, path, &[], vec![]).await
    }
}

/// A minimal valid Deployment.
pub fn deployment(name: &str, image: &str) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image, "ports": [{"containerPort": 8080}]}]}
            }
        }
    })
}
