//! [`Client`]: a store client that talks to a node over the network, the
//! way an etcd client talks to etcd. skiff's own components use [`Store`]
//! in-process; the client exists for tools, benchmarks and tests that run
//! in another process.
//!
//! Writes go to the leader: a node that is not the leader answers
//! `NotLeader` with the leader's address and the client follows it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::kv::{RangeRequest, RangeResponse, ReadConsistency, Txn, TxnResponse};
use crate::peer_client::PeerClient;
use crate::types::Command;
use crate::wire::{Forwarded, ForwardedReply};

/// A network client for one cluster.
#[derive(Debug)]
pub struct Client {
    peers: PeerClient,
    endpoints: Vec<String>,
    /// The address writes go to: the last known leader.
    leader: Mutex<String>,
    timeout: Duration,
}

impl Client {
    /// A client for the cluster whose members' peer addresses (`host:port`) are given.
    pub fn new(endpoints: Vec<String>) -> Result<Client> {
        Client::with_tls(endpoints, None)
    }

    /// A client whose calls use `tls` (as [`StoreConfig::peer_tls`](crate::StoreConfig)).
    pub fn with_tls(endpoints: Vec<String>, tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> Result<Client> {
        let first = endpoints
            .first()
            .cloned()
            .ok_or_else(|| Error::invalid("a client needs at least one endpoint"))?;
        Ok(Client {
            peers: PeerClient::new(tls)?,
            endpoints,
            leader: Mutex::new(first),
            timeout: Duration::from_secs(10),
        })
    }

    /// The view of the cluster of the member at `endpoint`.
    pub async fn status(&self, endpoint: &str) -> Result<crate::ClusterStatus> {
        self.peers
            .status(endpoint, self.timeout)
            .await
            .map_err(|e| Error::Unavailable { reason: e.to_string() })
    }

    /// The members as the member at `endpoint` knows them.
    pub async fn members(&self, endpoint: &str) -> Result<Vec<crate::Member>> {
        self.peers
            .members(endpoint, self.timeout)
            .await
            .map_err(|e| Error::Unavailable { reason: e.to_string() })
    }

    /// Removes `node_id` from the cluster (see [`Store::remove_member`](crate::Store::remove_member)).
    pub async fn remove_member(&self, node_id: crate::NodeId) -> Result<()> {
        match self.to_leader(Forwarded::Remove { node_id }).await? {
            ForwardedReply::Removed => Ok(()),
            other => Err(Error::corrupt(format!("removal answered with {other:?}"))),
        }
    }

    fn leader(&self) -> String {
        self.leader.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn set_leader(&self, addr: String) {
        if let Ok(mut l) = self.leader.lock() {
            *l = addr;
        }
    }

    async fn call(&self, addr: &str, req: &Forwarded, deadline: Instant) -> Result<ForwardedReply> {
        self.peers.forward(addr, req, deadline).await
    }

    /// Sends `req` to the leader, following `NotLeader` answers and trying
    /// the other endpoints while no leader is known.
    async fn to_leader(&self, req: Forwarded) -> Result<ForwardedReply> {
        let deadline = Instant::now() + self.timeout;
        let mut next_endpoint = 0;
        loop {
            let addr = self.leader();
            match self.call(&addr, &req, deadline).await {
                Err(Error::NotLeader { leader }) if Instant::now() < deadline => match leader {
                    Some((_, leader)) if leader != addr => self.set_leader(leader),
                    _ => {
                        next_endpoint = (next_endpoint + 1) % self.endpoints.len();
                        self.set_leader(self.endpoints[next_endpoint].clone());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                other => return other,
            }
        }
    }

    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        txn.validate().map_err(Error::invalid)?;
        match self.to_leader(Forwarded::Write(Command::Txn(txn))).await? {
            ForwardedReply::Write(resp) => resp.into_txn(),
            other => Err(Error::corrupt(format!("txn answered with {other:?}"))),
        }
    }

    /// Reads a range. Linearizable reads go to the leader; serializable
    /// reads to the first endpoint.
    pub async fn range(&self, req: RangeRequest, consistency: ReadConsistency) -> Result<RangeResponse> {
        let forwarded = Forwarded::Range(req, consistency);
        let reply = match consistency {
            ReadConsistency::Linearizable => self.to_leader(forwarded).await?,
            ReadConsistency::Serializable => {
                self.call(&self.endpoints[0], &forwarded, Instant::now() + self.timeout)
                    .await?
            }
        };
        match reply {
            ForwardedReply::Range(resp) => Ok(resp),
            other => Err(Error::corrupt(format!("range answered with {other:?}"))),
        }
    }
}
