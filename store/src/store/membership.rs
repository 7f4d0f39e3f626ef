//! Who is in the cluster: joins, removals and the member list.
//!
//! A server joins by asking the leader to admit it ([`Store::join`]): the
//! leader adds it as a learner, waits until it has caught up (by log or
//! by snapshot), then makes it a voter. [`Store::remove_member`] takes a
//! member out, voter or learner, and keeps nothing of it: once the
//! configuration without it is committed, the leader stops replicating to
//! it and the removed server may be stopped and its data wiped. Both run
//! on the leader; any other member forwards them there.
//!
//! Every change is one raft membership change (openraft's joint
//! consensus), relative to the configuration in force when it is
//! proposed, so a join and a removal that overlap do not undo each other.
//! openraft runs one change at a time: a change proposed while another is
//! in flight is retried until the deadline.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

use super::{Store, leader_of};
use crate::error::{Error, Result};
use crate::types::NodeId;
use crate::wire::{Forwarded, ForwardedReply};

/// How long the leader spends on one join (waiting for the learner to
/// catch up included) or one removal.
pub(crate) const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a joining node keeps asking to be admitted: a learner that is
/// sent a large state catches up over several of the leader's waits.
const JOIN_TIMEOUT: Duration = Duration::from_secs(600);

/// One member of the cluster, as the membership configuration names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    /// `host:port` of its peer router.
    pub addr: String,
    pub role: MemberRole,
}

/// Whether a member votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Voter,
    /// Replicated to but not voting: a server still catching up to join.
    Learner,
}

impl Store {
    /// Adds a node as a learner and waits (up to [`MEMBERSHIP_TIMEOUT`])
    /// for it to catch up: to hold every entry the leader's log held once
    /// it was added.
    ///
    /// Not openraft's own wait (`add_learner` with `blocking`): that takes
    /// a learner within `replication_lag_threshold` (5,000) entries of the
    /// leader as caught up, counting one that has answered nothing as at
    /// entry 0, so on a log shorter than that a node that could not even
    /// be reached was made a voter at once, and every write then waited
    /// for it (a one-node cluster joined by a second).
    pub async fn add_learner(&self, node_id: NodeId, addr: String) -> Result<()> {
        let added = self
            .raft()
            .add_learner(node_id, BasicNode { addr }, false)
            .await
            .map_err(membership_err)?;
        let target = std::cmp::max(self.raft().metrics().borrow().last_log_index, Some(added.log_id.index));
        let me = self.node_id();
        self.raft()
            .wait(Some(MEMBERSHIP_TIMEOUT))
            .metrics(
                |m| {
                    let matched = m
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&node_id).cloned())
                        .flatten()
                        .map(|l| l.index);
                    // Also done when there is nothing left to wait for here:
                    // leadership moved, or the learner was removed.
                    matched >= target
                        || m.current_leader != Some(me)
                        || m.membership_config.membership().get_node(&node_id).is_none()
                },
                "the learner to catch up",
            )
            .await
            .map(|_| ())
            .map_err(|e| Error::Unavailable {
                reason: format!("node {node_id} did not catch up as a learner: {e}"),
            })
    }

    /// Makes `voters` the voting members (joint consensus). Removed voters
    /// stay as learners when `keep_removed` is set.
    pub async fn change_membership(&self, voters: BTreeSet<NodeId>, keep_removed: bool) -> Result<()> {
        self.change(ChangeMembers::ReplaceAllVoters(voters), keep_removed).await
    }

    async fn change(&self, change: ChangeMembers<NodeId, BasicNode>, keep_removed: bool) -> Result<()> {
        self.raft()
            .change_membership(change, keep_removed)
            .await
            .map(|_| ())
            .map_err(membership_err)
    }

    /// Adds this (fresh) node to the cluster that `peer_addr` belongs to:
    /// it becomes a learner, catches up, then becomes a voter. Gives up
    /// after ten minutes (the node stays a learner then, catching up).
    pub async fn join(&self, peer_addr: &str) -> Result<()> {
        let deadline = Instant::now() + JOIN_TIMEOUT;
        let mut addr = peer_addr.to_string();
        loop {
            let req = Forwarded::Join {
                node_id: self.node_id(),
                addr: self.config().advertise_addr.clone(),
            };
            match self.forward(&addr, req, deadline).await {
                Ok(_) => return Ok(()),
                Err(Error::NotLeader {
                    leader: Some((_, leader)),
                }) if Instant::now() < deadline => addr = leader,
                Err(Error::NotLeader { .. }) | Err(Error::Unavailable { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Handles a join on the leader.
    pub(crate) async fn admit(&self, node_id: NodeId, addr: String) -> Result<()> {
        let voters: BTreeSet<NodeId> = self.leader_membership()?.voter_ids().collect();
        if voters.contains(&node_id) {
            return Ok(());
        }
        self.add_learner(node_id, addr).await?;
        // Relative to the configuration as it is now, not as it was before
        // the wait for the learner: a removal committed meanwhile stands.
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
            .await
    }

    /// Removes `node_id` from the cluster, voter or learner, keeping
    /// nothing of it (it does not stay as a learner). Refuses, changing
    /// nothing, an id that is not a member ([`Error::NotAMember`]) and the
    /// last voter ([`Error::LastVoter`]). Any member may be asked; it
    /// forwards to the leader. Returns once the configuration without the
    /// node is committed: the node may then be stopped.
    ///
    /// Removing the leader is allowed: it steps down once the change is
    /// committed and the others elect a new one.
    pub async fn remove_member(&self, node_id: NodeId) -> Result<()> {
        let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
        // Set once an attempt ended without a definite answer (the node
        // was a member then, and the change may have been committed): a
        // member found missing afterwards was removed by it, or by another
        // removal meanwhile.
        let mut maybe_applied = false;
        loop {
            let attempt = match self.dismiss(node_id).await {
                Err(Error::NotLeader {
                    leader: Some((id, addr)),
                }) if id != self.node_id() => {
                    match self.forward(&addr, Forwarded::Remove { node_id }, deadline).await {
                        Ok(ForwardedReply::Removed) => Ok(()),
                        Ok(other) => Err(Error::corrupt(format!("leader answered a removal with {other:?}"))),
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            match attempt {
                Ok(()) => return Ok(()),
                Err(Error::NotAMember { .. }) if maybe_applied => return Ok(()),
                Err(Error::Unavailable { .. }) if Instant::now() < deadline => {
                    maybe_applied = true;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Nothing was proposed: no leader known, or it moved.
                Err(Error::NotLeader { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(Error::NotLeader { .. }) => {
                    return Err(Error::Unavailable {
                        reason: format!("no leader to remove node {node_id} before the request timed out"),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Handles a removal on the leader.
    pub(crate) async fn dismiss(&self, node_id: NodeId) -> Result<()> {
        let membership = self.leader_membership()?;
        if membership.get_node(&node_id).is_none() {
            return Err(Error::NotAMember { node_id });
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let change = if voters.contains(&node_id) {
            if voters.len() == 1 {
                return Err(Error::LastVoter { node_id });
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
        };
        self.change(change, false).await.map_err(|e| match e {
            // Proposed, then leadership moved: it may yet be committed.
            Error::NotLeader { .. } => Error::Unavailable {
                reason: format!("leadership moved while the removal of node {node_id} was being committed"),
            },
            other => other,
        })?;
        tracing::info!(node = node_id, "removed a member from the cluster");
        Ok(())
    }

    /// The membership configuration, if this node is the leader;
    /// `NotLeader` (naming the leader when known) if it is not.
    fn leader_membership(&self) -> Result<openraft::Membership<NodeId, BasicNode>> {
        let metrics = self.raft().metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        if metrics.current_leader == Some(self.node_id()) {
            return Ok(membership);
        }
        let leader = metrics
            .current_leader
            .and_then(|id| membership.get_node(&id).map(|n| (id, n.addr.clone())));
        Err(Error::NotLeader { leader })
    }

    /// The members as this node knows them, voters first, by id. The
    /// configuration in force here: the newest this node has seen, which
    /// on a lagging member may be behind the leader's.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.raft().metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut members: Vec<Member> = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                addr: node.addr.clone(),
                role: if voters.contains(id) {
                    MemberRole::Voter
                } else {
                    MemberRole::Learner
                },
            })
            .collect();
        members.sort_by_key(|m| (m.role, m.id));
        members
    }
}

/// A failed membership change, as the store reports it.
fn membership_err(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(fwd)) => Error::NotLeader {
            leader: leader_of(&fwd),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(change)) => match change {
            ChangeMembershipError::InProgress(p) => Error::Unavailable {
                reason: format!("another membership change is in progress: {p}"),
            },
            ChangeMembershipError::LearnerNotFound(l) => Error::NotAMember { node_id: l.node_id },
            ChangeMembershipError::EmptyMembership(_) => {
                Error::invalid("the change would leave the cluster without a voter")
            }
        },
        RaftError::Fatal(_) => Error::Shutdown,
    }
}
