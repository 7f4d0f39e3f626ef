//! The peer endpoint of `skiff server`: what the cluster's other servers
//! call (raft, forwarded writes and reads, joins, status; see
//! `skiff_store::http`) and the one call a joining server makes for the
//! cluster's credentials (`crate::bootstrap`).
//!
//! It speaks mutual TLS with the cluster's peer CA
//! (`skiff_api::pki::peer`): a caller showing a certificate of any other
//! CA fails the handshake, and a caller showing none reaches only
//! `/bootstrap`, which asks for the join token instead; every other path
//! answers it `401`.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use skiff_api::auth::ClientCertificate;

/// The peer router: the store's routes, open to peers only, and the
/// bootstrap offer.
pub fn router(store: skiff_store::Store, offer: &crate::bootstrap::Offer) -> Router {
    skiff_store::http::peer_router(store)
        .route_layer(middleware::from_fn(peers_only))
        .merge(offer.router())
}

/// Serves `router` on `listener` until the server stops: with `tls`, or,
/// without, in plain HTTP (see `--peer-plain-http`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
) -> std::io::Result<()> {
    match tls {
        Some(tls) => skiff_api::serve_tls(listener, tls, router, std::future::pending()).await,
        None => axum::serve(listener, plain(router)).await,
    }
}

/// Without TLS there is no certificate: every caller is taken for a peer.
fn plain(router: Router) -> Router {
    router.layer(middleware::from_fn(|mut request: Request, next: Next| async move {
        request.extensions_mut().insert(PlainPeer);
        next.run(request).await
    }))
}

/// Marks a request on a plain-HTTP peer port.
#[derive(Clone, Copy)]
struct PlainPeer;

async fn peers_only(request: Request, next: Next) -> Response {
    let extensions = request.extensions();
    if extensions.get::<ClientCertificate>().is_none() && extensions.get::<PlainPeer>().is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            "the peer port serves the cluster's servers only: present a certificate of the cluster's peer CA\n",
        )
            .into_response();
    }
    next.run(request).await
}
