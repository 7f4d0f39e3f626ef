//! The store's cluster membership, as an operator sees it (`skiff member`):
//!
//! * `GET /skiff/v1/members`: every member of the store's raft cluster
//!   (its id, peer address and whether it votes) and the leader, as the
//!   server asked knows them (`skiff_store::Store::members`).
//! * `DELETE /skiff/v1/members/{id}`: removes member `id`
//!   (`skiff_store::Store::remove_member`), voter or learner, keeping
//!   nothing of it; it answers once the configuration without it is
//!   committed, and the removed server may then be stopped and its data
//!   wiped. An id that is not a number (400), not a member (404) or the
//!   last voter (409) is refused and changes nothing.
//!
//! Both are non-resource URLs: RBAC gives them to `cluster-admin` only,
//! unless a role names them, as for the backup and encryption endpoints.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ApiServer;
use crate::error::{ApiError, Subject};
use crate::status::{Details, Status};

/// The list.
pub const PATH: &str = "/skiff/v1/members";
/// One member, by id.
pub const MEMBER_PATH: &str = "/skiff/v1/members/{id}";

/// What `GET` answers.
#[derive(Debug, Serialize)]
pub struct MemberList {
    pub kind: &'static str,
    /// The leader as the server asked knows it, if it knows one.
    pub leader: Option<u64>,
    /// Voters first, each by id.
    pub members: Vec<skiff_store::Member>,
}

pub(super) async fn list(State(server): State<Arc<ApiServer>>) -> Response {
    let store = server.registry.store();
    let list = MemberList {
        kind: "MemberList",
        leader: store.status().leader,
        members: store.members(),
    };
    (StatusCode::OK, axum::Json(list)).into_response()
}

pub(super) async fn remove(State(server): State<Arc<ApiServer>>, Path(id): Path<String>) -> Response {
    match remove_member(&server, &id).await {
        Ok(node) => {
            tracing::info!(node, "removed a member of the store's cluster");
            let mut status = Status::success(
                200,
                Some(Details {
                    name: id,
                    kind: "members".into(),
                    ..Details::default()
                }),
            );
            status.message = format!("node {node} was removed from the cluster");
            (
                StatusCode::OK,
                [(http::header::CONTENT_TYPE, "application/json")],
                status.body(),
            )
                .into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn remove_member(server: &ApiServer, id: &str) -> crate::Result<u64> {
    let subject = || Subject::new("", "members", id);
    let node: u64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("a member id is a number, not {id:?}")))?;
    match server.registry.store().remove_member(node).await {
        Ok(()) => Ok(node),
        Err(skiff_store::Error::NotAMember { .. }) => Err(ApiError::NotFound(subject())),
        Err(error @ skiff_store::Error::LastVoter { .. }) => Err(ApiError::Conflict {
            subject: subject(),
            message: error.to_string(),
        }),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use http::Method;
    use serde_json::Value;
    use skiff_store::{Store, StoreConfig};
    use tower::ServiceExt;

    use crate::auth::{Authentication, UserInfo};

    const ADMIN: &str = "admin-token";
    const USER: &str = "user-token";

    async fn request(router: &axum::Router, token: Option<&str>, method: Method, path: &str) -> (u16, Value) {
        let mut request = http::Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// On a one-node cluster: the list shows the one voter; removing it,
    /// an unknown id or a non-number is refused with a Status saying why,
    /// and the list is unchanged; only an admin may do either.
    #[tokio::test]
    async fn members_are_listed_and_bad_removals_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(1, dir.path().join("store"), "127.0.0.1:7001");
        config.heartbeat_interval = Duration::from_millis(50);
        config.election_timeout = (Duration::from_millis(150), Duration::from_millis(300));
        config.compaction.enabled = false;
        let store = Store::open(config).await.unwrap();
        store.initialize_single().await.unwrap();
        store.wait_for_leader(Duration::from_secs(10)).await.unwrap();
        let authentication = Authentication::new()
            .with_token(ADMIN, UserInfo::admin())
            .with_token(USER, UserInfo::new("bob", ["system:authenticated"]));
        let server = crate::ApiServer::new(store.clone(), authentication);
        server.bootstrap().await.unwrap();
        let router = server.router();

        let expected = serde_json::json!({
            "kind": "MemberList",
            "leader": 1,
            "members": [{"id": 1, "addr": "127.0.0.1:7001", "role": "voter"}],
        });
        let (code, listed) = request(&router, Some(ADMIN), Method::GET, super::PATH).await;
        assert_eq!((code, &listed), (200, &expected));

        for (path, code, reason, message) in [
            (
                "/skiff/v1/members/abc",
                400,
                "BadRequest",
                "a member id is a number, not \"abc\"",
            ),
            ("/skiff/v1/members/7", 404, "NotFound", "members \"7\" not found"),
            ("/skiff/v1/members/1", 409, "Conflict", "last voter"),
        ] {
            let (got, status) = request(&router, Some(ADMIN), Method::DELETE, path).await;
            assert_eq!(got, code, "{path}: {status}");
            assert_eq!(
                (status["kind"].as_str(), status["reason"].as_str()),
                (Some("Status"), Some(reason))
            );
            assert!(
                status["message"].as_str().unwrap().contains(message),
                "{path}: {status}"
            );
        }
        let (_, listed) = request(&router, Some(ADMIN), Method::GET, super::PATH).await;
        assert_eq!(listed, expected, "nothing changed");

        for (token, code) in [(Some(USER), 403), (None, 401)] {
            assert_eq!(request(&router, token, Method::GET, super::PATH).await.0, code);
            assert_eq!(
                request(&router, token, Method::DELETE, "/skiff/v1/members/1").await.0,
                code
            );
        }
        store.shutdown().await.unwrap();
    }
}
