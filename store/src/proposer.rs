//! Proposal batching on the leader.
//!
//! openraft 0.9 fsyncs each log append before it starts the next, so one
//! raft entry per transaction caps writes at one fsync each. The proposer
//! queues transactions and, whenever a proposal slot is free, puts every
//! queued transaction into one raft entry ([`Command::Batch`]). Each
//! transaction still gets its own revision and response; under load one
//! fsync and one replication round carry many of them.

use std::sync::Arc;
use std::time::Instant;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::{Error, Result};
use crate::kv::Txn;
use crate::metrics::Instruments;
use crate::types::{Command, CommandResponse, Raft};

/// Transactions in one raft entry, at most.
const MAX_BATCH: usize = 512;
/// Raft proposals in flight at once.
const IN_FLIGHT: usize = 2;

type Reply = oneshot::Sender<Result<CommandResponse>>;

#[derive(Clone, Debug)]
pub(crate) struct Proposer {
    tx: mpsc::Sender<(Txn, Reply)>,
    instruments: Arc<Instruments>,
}

impl Proposer {
    pub(crate) fn spawn(raft: Raft, instruments: Arc<Instruments>) -> (Proposer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16 * MAX_BATCH);
        let task = tokio::spawn(run(raft, rx, instruments.clone()));
        (Proposer { tx, instruments }, task)
    }

    /// Proposes `txn` and waits for its outcome until `deadline`; counted
    /// as pending meanwhile. Its span (`store.propose`) is the child of
    /// the caller's, an API request's.
    #[tracing::instrument(name = "store.propose", level = "info", skip_all)]
    pub(crate) async fn propose(&self, txn: Txn, deadline: Instant) -> Result<CommandResponse> {
        let _pending = self.instruments.pending();
        let (reply, answer) = oneshot::channel();
        self.tx.send((txn, reply)).await.map_err(|_| Error::Shutdown)?;
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Shutdown),
            Err(_) => Err(Error::Unavailable {
                reason: "write not committed before the request timed out (it may still be applied)".into(),
            }),
        }
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<(Txn, Reply)>, instruments: Arc<Instruments>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        // Take everything that queued up while waiting for the slot.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        let instruments = instruments.clone();
        tokio::spawn(async move {
            let (txns, replies): (Vec<Txn>, Vec<Reply>) = batch.into_iter().unzip();
            let command = if txns.len() == 1 {
                Command::Txn(txns.into_iter().next().unwrap_or_default())
            } else {
                Command::Batch(txns)
            };
            let proposed = Instant::now();
            let outcome = raft.client_write(command).await;
            drop(slot);
            match &outcome {
                Ok(_) => instruments.proposal_duration.observe(proposed.elapsed().as_secs_f64()),
                Err(_) => {
                    instruments.failed.inc();
                }
            }
            match outcome {
                Ok(resp) => match resp.data {
                    CommandResponse::Batch(each) if each.len() == replies.len() => {
                        for (reply, resp) in replies.into_iter().zip(each) {
                            let _ = reply.send(Ok(resp));
                        }
                    }
                    single if replies.len() == 1 => {
                        for reply in replies {
                            let _ = reply.send(Ok(single.clone()));
                        }
                    }
                    other => {
                        for reply in replies {
                            let _ = reply.send(Err(Error::corrupt(format!("batch answered with {other:?}"))));
                        }
                    }
                },
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(write_error(&e)));
                    }
                }
            }
        });
    }
}

/// The caller's error for a failed proposal (one per waiting transaction).
pub(crate) fn write_error(e: &RaftError<u64, ClientWriteError<u64, openraft::BasicNode>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(fwd)) => Error::NotLeader {
            leader: match (fwd.leader_id, &fwd.leader_node) {
                (Some(id), Some(node)) => Some((id, node.addr.clone())),
                _ => None,
            },
        },
        RaftError::Fatal(openraft::error::Fatal::Stopped) => Error::Shutdown,
        other => Error::Unavailable {
            reason: other.to_string(),
        },
    }
}
