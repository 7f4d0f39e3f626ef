//! Bounded in-flight requests, as kube-apiserver's
//! `--max-requests-inflight` and `--max-mutating-requests-inflight` bound
//! them: read-only requests (GET, HEAD, OPTIONS) and mutating ones each
//! have a number of slots; a request that finds its kind's slots taken
//! gets `429 Too Many Requests` with `Retry-After: 1` at once, and nothing
//! queues, so memory stays bounded whatever the load.
//!
//! Not counted, as in Kubernetes: long-running requests (watches, and the
//! `exec`, `attach`, `portforward`, `proxy` and `log` subresources), whose
//! number says nothing of the server's load; members of `system:masters`;
//! and the health endpoints, so that probes do not fail a busy server.
//! A limit of 0 means no limit. The slots in use (counted with no limit
//! too) are what `apiserver_current_inflight_requests` reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;
use tokio::sync::Semaphore;

use crate::auth::UserInfo;
use crate::error::ApiError;

/// How many requests of each kind may be in flight (0: any number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub read_only: usize,
    pub mutating: usize,
}

impl Default for Limits {
    /// kube-apiserver's defaults.
    fn default() -> Self {
        Limits {
            read_only: 400,
            mutating: 200,
        }
    }
}

/// The slots of both kinds.
#[derive(Clone, Debug)]
pub struct InFlight {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    /// Requests of each kind being served now.
    read_only_used: Arc<AtomicUsize>,
    mutating_used: Arc<AtomicUsize>,
}

impl InFlight {
    pub fn new(limits: Limits) -> InFlight {
        let slots = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        InFlight {
            read_only: slots(limits.read_only),
            mutating: slots(limits.mutating),
            read_only_used: Arc::default(),
            mutating_used: Arc::default(),
        }
    }

    /// Read-only and mutating requests being served now (those the limit
    /// counts).
    pub fn in_use(&self) -> (usize, usize) {
        (
            self.read_only_used.load(Ordering::Relaxed),
            self.mutating_used.load(Ordering::Relaxed),
        )
    }
}

/// A request counted as in use until dropped.
struct Used(Arc<AtomicUsize>);

impl Used {
    fn new(count: &Arc<AtomicUsize>) -> Used {
        count.fetch_add(1, Ordering::Relaxed);
        Used(count.clone())
    }
}

impl Drop for Used {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The subresources whose requests run as long as the client stays.
pub(crate) const LONG_RUNNING: [&str; 5] = ["exec", "attach", "portforward", "proxy", "log"];

/// Whether a request runs as long as its client wants (not counted).
pub(crate) fn long_running(method: &Method, path: &str, query: Option<&str>) -> bool {
    let watching = query.is_some_and(|q| {
        q.split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1" | "watch=True"))
    });
    // The old watch paths: `/api/v1/watch/…`, `/apis/<group>/<version>/watch/…`.
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let watch_path = matches!(
        segments.as_slice(),
        ["api", _, "watch", ..] | ["apis", _, _, "watch", ..]
    );
    let subresource = crate::request::parse(method, path, false)
        .and_then(|r| r.subresource)
        .is_some_and(|s| LONG_RUNNING.contains(&s.as_str()));
    watching || watch_path || subresource
}

/// The middleware: runs after authentication, which puts the user in the
/// request's extensions.
pub async fn limit(State(inflight): State<InFlight>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let exempt = matches!(path, "/healthz" | "/livez" | "/readyz")
        || long_running(request.method(), path, request.uri().query())
        || request
            .extensions()
            .get::<UserInfo>()
            .is_some_and(|u| u.groups.iter().any(|g| g == skiff_auth::user::names::MASTERS));
    if exempt {
        return next.run(request).await;
    }
    let read_only = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let (slots, used) = if read_only {
        (&inflight.read_only, &inflight.read_only_used)
    } else {
        (&inflight.mutating, &inflight.mutating_used)
    };
    let Some(slots) = slots else {
        let _used = Used::new(used);
        return next.run(request).await;
    };
    match slots.clone().try_acquire_owned() {
        Ok(_permit) => {
            let _used = Used::new(used);
            next.run(request).await
        }
        Err(_) => ApiError::TooManyRequests { retry_after: 1 }.into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// A router whose handler holds its slot while a request says `hold`,
    /// until `release` is notified; requests come as `user`'s.
    fn router(limits: Limits, entered: Arc<tokio::sync::Notify>, release: Arc<tokio::sync::Notify>) -> Router {
        let handler = move |request: Request| {
            let (entered, release) = (entered.clone(), release.clone());
            async move {
                if request.headers().contains_key("hold") {
                    entered.notify_one();
                    release.notified().await;
                }
                "ok"
            }
        };
        Router::new()
            .route("/api/v1/namespaces/d/configmaps", get(handler.clone()).post(handler))
            .layer(axum::middleware::from_fn_with_state(InFlight::new(limits), limit))
    }

    fn request(method: Method, uri: &str, groups: &[&str], hold: bool) -> Request {
        let mut request = http::Request::builder().method(method).uri(uri);
        if hold {
            request = request.header("hold", "yes");
        }
        let mut request = request.body(Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(UserInfo::new("alice", groups.iter().copied()));
        request
    }

    #[tokio::test]
    async fn a_full_kind_answers_429_and_nothing_else_is_held_up() {
        let (entered, release) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let app = router(
            Limits {
                read_only: 1,
                mutating: 1,
            },
            entered.clone(),
            release.clone(),
        );
        let path = "/api/v1/namespaces/d/configmaps";
        let held = tokio::spawn(app.clone().oneshot(request(Method::GET, path, &[], true)));
        entered.notified().await;

        let refused = app
            .clone()
            .oneshot(request(Method::GET, path, &[], false))
            .await
            .unwrap();
        assert_eq!(refused.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()[http::header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(refused.into_body(), 4096).await.unwrap();
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["message"], "Too many requests, please try again later.");
        assert_eq!(status["details"]["retryAfterSeconds"], 1);

        // Not held up: a watch, a mutating request, the cluster's admins.
        let watch = format!("{path}?watch=true");
        for (method, uri, groups) in [
            (Method::GET, watch.as_str(), &[][..]),
            (Method::POST, path, &[]),
            (Method::GET, path, &["system:masters"]),
        ] {
            let response = app
                .clone()
                .oneshot(request(method.clone(), uri, groups, false))
                .await
                .unwrap();
            assert_eq!(response.status(), http::StatusCode::OK, "{method} {uri} {groups:?}");
        }

        release.notify_one();
        assert_eq!(held.await.unwrap().unwrap().status(), http::StatusCode::OK);
        let again = app.oneshot(request(Method::GET, path, &[], false)).await.unwrap();
        assert_eq!(again.status(), http::StatusCode::OK, "the slot is free again");
    }

    #[test]
    fn watches_and_streams_run_long() {
        let get = Method::GET;
        assert!(long_running(&get, "/api/v1/pods", Some("watch=true")));
        assert!(long_running(&get, "/api/v1/watch/pods", None));
        assert!(long_running(
            &get,
            "/api/v1/namespaces/d/pods/p/log",
            Some("follow=true")
        ));
        assert!(long_running(&Method::POST, "/api/v1/namespaces/d/pods/p/exec", None));
        assert!(!long_running(&get, "/api/v1/pods", Some("watch=false")));
        assert!(!long_running(&get, "/api/v1/namespaces/watch/pods", None));
        assert!(long_running(&get, "/apis/apps/v1/watch/deployments", None));
        assert!(!long_running(&get, "/apis/apps/v1/deployments", None));
        assert!(!long_running(&Method::POST, "/api/v1/namespaces/d/pods", None));
    }
}
