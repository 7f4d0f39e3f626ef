//! A small HTTP/1 client for node-to-node calls (raft RPC, forwarded
//! writes, read indexes, joins and removals). Bodies are bincode.
//!
//! With a TLS configuration ([`StoreConfig::peer_tls`](crate::StoreConfig))
//! every call is HTTPS, authenticated both ways by whatever that
//! configuration trusts and presents (`skiff server` gives it the peer
//! CA and the server's peer certificate); without one, plain HTTP, as the
//! store's own tests and in-process clusters use.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::wire::{BINCODE, Forwarded, ForwardedReply, RemoteError, paths};

/// Why a peer call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// Nothing reached the peer (connection refused, DNS, reset before sending).
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("peer {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    /// The peer answered, but not with what was asked for.
    #[error("peer {addr} answered {status}: {reason}")]
    Protocol { addr: String, status: u16, reason: String },
}

#[derive(Clone, Debug)]
pub(crate) struct PeerClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `https` with TLS, else `http`.
    scheme: &'static str,
}

impl PeerClient {
    /// Sends a forwarded request to `addr`'s `/store/forward` and returns
    /// its answer. A peer that could not be reached reads as "no leader
    /// there" (the request was not sent, so it is safe to retry elsewhere).
    pub(crate) async fn forward(
        &self,
        addr: &str,
        req: &Forwarded,
        deadline: std::time::Instant,
    ) -> crate::Result<ForwardedReply> {
        use crate::Error;
        let timeout = deadline.saturating_duration_since(std::time::Instant::now());
        let answer: Result<ForwardedReply, RemoteError> =
            self.call(addr, paths::FORWARD, req, timeout)
                .await
                .map_err(|e| match e {
                    CallError::Unreachable { .. } => Error::NotLeader { leader: None },
                    other => Error::Unavailable {
                        reason: other.to_string(),
                    },
                })?;
        answer.map_err(Error::from)
    }

    /// A client speaking TLS with `tls`, or plain HTTP without it.
    pub(crate) fn new(tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> crate::Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.enforce_http(false);
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Without TLS the configuration is never used (every URL is http).
        let config = match tls {
            Some(tls) => (*tls).clone(),
            None => rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| crate::Error::invalid(format!("peer TLS: {e}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(PeerClient { http, scheme })
    }

    /// A member's view of the cluster (`GET /cluster/status`, JSON).
    pub(crate) async fn status(&self, addr: &str, timeout: Duration) -> Result<crate::ClusterStatus, CallError> {
        self.get_json(addr, paths::STATUS, timeout).await
    }

    /// The members as a member knows them (`GET /cluster/members`, JSON).
    pub(crate) async fn members(&self, addr: &str, timeout: Duration) -> Result<Vec<crate::Member>, CallError> {
        self.get_json(addr, paths::MEMBERS, timeout).await
    }

    async fn get_json<Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let request = http::Request::get(format!("{}://{addr}{path}", self.scheme)).body(Full::default());
        let body = self.exchange(addr, request, timeout).await?;
        serde_json::from_slice(&body).map_err(|e| protocol(addr, 200, e.to_string()))
    }

    /// POSTs `body` (bincode) to `{scheme}://{addr}{path}` and decodes the answer.
    pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let raw = codec::encode(body).map_err(|e| protocol(addr, 0, e.to_string()))?;
        self.call_raw(addr, path, raw, timeout).await
    }

    /// [`call`](Self::call) with a body encoded already.
    pub(crate) async fn call_raw<Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        raw: Vec<u8>,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let request = http::Request::post(format!("{}://{addr}{path}", self.scheme))
            .header(http::header::CONTENT_TYPE, BINCODE)
            .body(Full::new(Bytes::from(raw)));
        let body = self.exchange(addr, request, timeout).await?;
        codec::decode::<Resp>("peer response", &body).map_err(|e| protocol(addr, 200, e.to_string()))
    }

    /// Sends `request` to `addr` and returns the body of a successful
    /// answer, within `timeout`.
    async fn exchange(
        &self,
        addr: &str,
        request: http::Result<http::Request<Full<Bytes>>>,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let request = request.map_err(|e| protocol(addr, 0, e.to_string()))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                if e.is_connect() {
                    CallError::Unreachable {
                        addr: addr.to_string(),
                        reason: e.to_string(),
                    }
                } else {
                    protocol(addr, 0, e.to_string())
                }
            })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| protocol(addr, status.as_u16(), e.to_string()))?
                .to_bytes();
            if !status.is_success() {
                return Err(protocol(
                    addr,
                    status.as_u16(),
                    String::from_utf8_lossy(&body).into_owned(),
                ));
            }
            Ok(body)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                addr: addr.to_string(),
                timeout,
            }),
        }
    }
}

/// The peer at `addr` answered, but not with what was asked for.
fn protocol(addr: &str, status: u16, reason: String) -> CallError {
    CallError::Protocol {
        addr: addr.to_string(),
        status,
        reason,
    }
}
