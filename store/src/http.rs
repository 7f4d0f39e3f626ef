//! The peer router: what other members of the cluster call on this node.
//!
//! | path                  | body (bincode)                | answer                              |
//! |-----------------------|-------------------------------|-------------------------------------|
//! | `POST /raft/append`   | `AppendEntriesRequest`        | `Result<AppendEntriesResponse, _>`  |
//! | `POST /raft/vote`     | `VoteRequest`                 | `Result<VoteResponse, _>`           |
//! | `POST /raft/snapshot` | `InstallSnapshotRequest`, framed (see `wire`) | `Result<InstallSnapshotResponse, _>`|
//! | `POST /store/forward` | a write, read index, range, join or removal (from a follower or a [`Client`](crate::Client)) | `Result<reply, RemoteError>` |
//! | `GET /cluster/status` | –                             | JSON [`ClusterStatus`](crate::ClusterStatus) |
//! | `GET /cluster/members`| –                             | JSON list of [`Member`](crate::Member)s, as this node knows them |
//!
//! A body that does not decode gets `400` and changes nothing.

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::store::{MEMBERSHIP_TIMEOUT, Store};
use crate::wire::{self, BINCODE, Forwarded, ForwardedReply, RemoteError, paths};

/// The router peers call. Serve it on the peer address the node advertises.
pub fn peer_router(store: Store) -> Router {
    Router::new()
        .route(paths::RAFT_APPEND, post(append))
        .route(paths::RAFT_VOTE, post(vote))
        .route(paths::RAFT_SNAPSHOT, post(snapshot))
        .route(paths::FORWARD, post(forward))
        .route(paths::STATUS, get(status))
        .route(paths::MEMBERS, get(members))
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(store)
}

/// Decodes the body as `Req`, runs `handler`, and encodes its answer; a
/// body that does not decode gets 400 and reaches no handler.
async fn handle<Req, Resp, Fut>(body: Bytes, handler: impl FnOnce(Req) -> Fut) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: Future<Output = Resp>,
{
    let Ok(req) = codec::decode::<Req>("request body", &body) else {
        return (
            StatusCode::BAD_REQUEST,
            "malformed request body: expected a bincode-encoded skiff peer message",
        )
            .into_response();
    };
    answer(handler(req).await)
}

/// Encodes a handler's answer.
fn answer(answer: impl Serialize) -> Response {
    match codec::encode(&answer) {
        Ok(raw) => ([(header::CONTENT_TYPE, BINCODE)], raw).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "failed to encode a peer reply");
            (StatusCode::INTERNAL_SERVER_ERROR, "failed to encode reply").into_response()
        }
    }
}

async fn append(State(store): State<Store>, body: Bytes) -> Response {
    handle(body, |req| async move { store.raft().append_entries(req).await }).await
}

async fn vote(State(store): State<Store>, body: Bytes) -> Response {
    handle(body, |req| async move { store.raft().vote(req).await }).await
}

async fn snapshot(State(store): State<Store>, body: Bytes) -> Response {
    let Ok(req) = wire::decode_snapshot_chunk(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "malformed request body: expected a skiff snapshot chunk",
        )
            .into_response();
    };
    answer(store.raft().install_snapshot(req).await)
}

async fn forward(State(store): State<Store>, body: Bytes) -> Response {
    handle(body, |req| async move { serve_forwarded(&store, req).await }).await
}

async fn serve_forwarded(store: &Store, req: Forwarded) -> Result<ForwardedReply, RemoteError> {
    let deadline = Instant::now() + store.config().request_timeout;
    match req {
        Forwarded::Write(command) => store
            .write_local(command, deadline)
            .await
            .map(ForwardedReply::Write)
            .map_err(RemoteError::from),
        Forwarded::ReadIndex => store
            .read_index_local()
            .await
            .map(ForwardedReply::ReadIndex)
            .map_err(RemoteError::from),
        Forwarded::Range(req, consistency) => store
            .range_stored(req, consistency)
            .await
            .map(ForwardedReply::Range)
            .map_err(RemoteError::from),
        Forwarded::Join { node_id, addr } => {
            match tokio::time::timeout(MEMBERSHIP_TIMEOUT, store.admit(node_id, addr)).await {
                Ok(result) => result.map(|()| ForwardedReply::Joined).map_err(RemoteError::from),
                Err(_) => Err(RemoteError::Unavailable(format!(
                    "join did not finish in {} s",
                    MEMBERSHIP_TIMEOUT.as_secs()
                ))),
            }
        }
        Forwarded::Remove { node_id } => match tokio::time::timeout(MEMBERSHIP_TIMEOUT, store.dismiss(node_id)).await {
            Ok(result) => result.map(|()| ForwardedReply::Removed).map_err(RemoteError::from),
            Err(_) => Err(RemoteError::Unavailable(format!(
                "removal did not finish in {} s",
                MEMBERSHIP_TIMEOUT.as_secs()
            ))),
        },
    }
}

async fn status(State(store): State<Store>) -> Response {
    axum::Json(store.status()).into_response()
}

async fn members(State(store): State<Store>) -> Response {
    axum::Json(store.members()).into_response()
}

/// Serves [`peer_router`] on `listener` until the task is dropped.
pub async fn serve_peers(listener: tokio::net::TcpListener, store: Store) -> std::io::Result<()> {
    axum::serve(listener, peer_router(store)).await
}

/// Serves [`peer_router`] on `listener` until `shutdown` resolves, then
/// closes idle connections, lets requests in flight finish and returns once
/// every connection is gone, so no connection task still holds the store.
pub async fn serve_peers_until(
    listener: tokio::net::TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, peer_router(store))
        .with_graceful_shutdown(shutdown)
        .await
}
