//! Membership changes that cannot cost the cluster its quorum.
//!
//! openraft does what it is told: `add_learner` then `change_membership` makes any id at any
//! address a voter, and its "blocking" `add_learner` gives up waiting for the learner after a
//! short while and answers success anyway. A node added at an address where nothing answers
//! then counts towards the quorum without ever voting: a cluster of one that adds such a node
//! can commit nothing again, not even after a restart. So every change goes through
//! [`MembershipChanger`], which adds a node only when
//!
//! 1. its address is well formed and the node listening there says it is that node
//!    ([`PeerProbe::identify`]);
//! 2. it has caught up as a learner within [`ChangeLimits::catch_up_timeout`] (otherwise it is
//!    taken out again);
//! 3. the voters after the change still have a reachable majority ([`quorum_refusal`]);
//!
//! and removes a node only under rule 3. One change runs at a time on a node; another asked
//! for meanwhile is refused rather than queued.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft, RaftMetrics};

use super::membership::{change_refused, final_voters, quorum_refusal};
use super::types::TypeConfig;
use crate::net::HostPort;

/// A boxed future, as the [`PeerProbe`] trait returns.
pub type ProbeFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the changer asks of the network.
pub trait PeerProbe: Send + Sync + 'static {
    /// The id of the node that answers at `addr` (a fresh connection, within a deadline), or
    /// why none did. `node` is the id it should have: with cluster TLS, a peer whose
    /// certificate names another does not get as far as answering.
    fn identify<'a>(&'a self, addr: &'a str, node: u64) -> ProbeFuture<'a, Result<u64, String>>;

    /// How long `node` has not answered this node's calls; `None` before any call to it.
    fn silent_for(&self, node: u64) -> Option<Duration>;
}

/// How long a change may wait for each of its steps.
#[derive(Debug, Clone, Copy)]
pub struct ChangeLimits {
    /// The longest a new learner may take to catch up with the leader's log before the
    /// addition is given up (a large state travels as a snapshot: allow for its transfer).
    pub catch_up_timeout: Duration,
    /// A voter that answered the leader within this long counts as reachable.
    pub reachable_within: Duration,
}

impl Default for ChangeLimits {
    fn default() -> ChangeLimits {
        ChangeLimits {
            catch_up_timeout: Duration::from_secs(20),
            reachable_within: Duration::from_secs(3),
        }
    }
}

/// Why a change was not made, by whose fault (the admin API turns these into status codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The request itself is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// The node to remove is not a member (404).
    #[error("{0}")]
    NotFound(String),
    /// Only the leader changes the membership (409).
    #[error("not the leader")]
    NotLeader {
        leader_id: Option<u64>,
        leader_addr: Option<String>,
    },
    /// The change would be unsafe now, or another is running (409, with why).
    #[error("{0}")]
    Refused(String),
    /// Raft itself failed (503).
    #[error("{0}")]
    Failed(String),
}

/// What an addition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The node is a voter now.
    Voter,
    /// The node already was a voter at that address: nothing changed.
    AlreadyVoter,
}

/// Makes the membership changes of one node (its admin API and its peers' join requests).
pub struct MembershipChanger {
    raft: Raft<TypeConfig>,
    /// `None` for a node without a cluster listener: it can reach no other node, so it adds
    /// none.
    probe: Option<Arc<dyn PeerProbe>>,
    limits: ChangeLimits,
    running: tokio::sync::Mutex<()>,
}

type Metrics = RaftMetrics<u64, BasicNode>;

impl MembershipChanger {
    pub fn new(
        raft: Raft<TypeConfig>,
        probe: Option<Arc<dyn PeerProbe>>,
        limits: ChangeLimits,
    ) -> MembershipChanger {
        MembershipChanger {
            raft,
            probe,
            limits,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Adds `node_id` listening for peers at `addr`: checked, caught up as a learner, then a
    /// voter.
    pub async fn add(&self, node_id: u64, addr: &str) -> Result<Added, ChangeError> {
        if node_id == 0 {
            return Err(ChangeError::BadRequest("node ids start at 1".into()));
        }
        let addr: HostPort = addr.parse().map_err(ChangeError::BadRequest)?;
        let addr = addr.to_string();
        let _one_at_a_time = self.running.try_lock().map_err(|_| in_progress())?;
        let metrics = self.leader_metrics()?;
        if let Some(done) = already_member(&metrics, node_id, &addr)? {
            return Ok(done);
        }
        if crate::planted::planted().unchecked_joins {
            return self.add_unchecked(node_id, addr).await;
        }
        let Some(probe) = &self.probe else {
            return Err(ChangeError::Refused(
                "this node has no cluster listener (--cluster-listen), so no other node can \
                 reach it: it cannot add nodes"
                    .into(),
            ));
        };
        match probe.identify(&addr, node_id).await {
            Ok(id) if id == node_id => {}
            Ok(id) => {
                return Err(ChangeError::Refused(format!(
                    "{addr} answers as node {id}, not node {node_id}"
                )))
            }
            Err(why) => {
                return Err(ChangeError::Refused(format!(
                    "node {node_id} is not reachable at {addr}: {why}"
                )))
            }
        }
        let node = BasicNode { addr: addr.clone() };
        let added = self.raft.add_learner(node_id, node, false).await;
        let membership_index = added.map_err(write_error)?.log_id.index;
        if !self.caught_up(node_id, membership_index).await {
            self.take_out_learner(node_id).await;
            return Err(ChangeError::Refused(format!(
                "node {node_id} at {addr} did not catch up within {:?}; it was taken out again",
                self.limits.catch_up_timeout
            )));
        }
        let metrics = self.leader_metrics()?;
        let mut voters = final_voters(&metrics);
        voters.insert(node_id);
        if let Some(why) = quorum_refusal(&voters, |n| {
            n == metrics.id || n == node_id || self.reachable(&**probe, n)
        }) {
            self.take_out_learner(node_id).await;
            return Err(ChangeError::Refused(why));
        }
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
        self.raft
            .change_membership(change, false)
            .await
            .map_err(write_error)?;
        tracing::info!(node_id, %addr, "node added as a voter");
        Ok(Added::Voter)
    }

    /// Takes `node_id` out of the voters and the membership.
    pub async fn remove(&self, node_id: u64) -> Result<(), ChangeError> {
        let _one_at_a_time = self.running.try_lock().map_err(|_| in_progress())?;
        let metrics = self.leader_metrics()?;
        let membership = metrics.membership_config.membership();
        if membership.get_node(&node_id).is_none() {
            return Err(ChangeError::NotFound(format!(
                "node {node_id} is not a member"
            )));
        }
        if let Some(why) = change_refused(&metrics, Some(node_id)) {
            return Err(ChangeError::Refused(why));
        }
        let ids = BTreeSet::from([node_id]);
        if membership.voter_ids().any(|v| v == node_id) {
            let mut voters = final_voters(&metrics);
            voters.remove(&node_id);
            let reachable = |n: u64| {
                n == metrics.id
                    || self
                        .probe
                        .as_deref()
                        .is_some_and(|probe| self.reachable(probe, n))
            };
            if let Some(why) = quorum_refusal(&voters, reachable) {
                return Err(ChangeError::Refused(why));
            }
            self.raft
                .change_membership(ChangeMembers::RemoveVoters(ids.clone()), false)
                .await
                .map_err(write_error)?;
        }
        self.raft
            .change_membership(ChangeMembers::RemoveNodes(ids), false)
            .await
            .map_err(write_error)?;
        tracing::info!(node_id, "node removed");
        Ok(())
    }

    /// The planted bug `unchecked_joins`: the change as it was made before the checks.
    async fn add_unchecked(&self, node_id: u64, addr: String) -> Result<Added, ChangeError> {
        let node = BasicNode { addr };
        let added = self.raft.add_learner(node_id, node, true).await;
        added.map_err(write_error)?;
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
        let promoted = self.raft.change_membership(change, false).await;
        promoted.map_err(write_error)?;
        Ok(Added::Voter)
    }

    /// This node's metrics, if it leads and may change the membership.
    fn leader_metrics(&self) -> Result<Metrics, ChangeError> {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(metrics.id) {
            let leader_addr = metrics.current_leader.and_then(|id| {
                let membership = metrics.membership_config.membership();
                membership.get_node(&id).map(|n| n.addr.clone())
            });
            return Err(ChangeError::NotLeader {
                leader_id: metrics.current_leader,
                leader_addr,
            });
        }
        if let Some(why) = change_refused(&metrics, None) {
            return Err(ChangeError::Refused(why));
        }
        Ok(metrics)
    }

    fn reachable(&self, probe: &dyn PeerProbe, node: u64) -> bool {
        probe
            .silent_for(node)
            .is_some_and(|silent| silent < self.limits.reachable_within)
    }

    /// Waits until the leader has replicated to `node` up to `index` (the entry that made it
    /// a learner); false when the catch-up timeout passed first.
    async fn caught_up(&self, node: u64, index: u64) -> bool {
        let wait = self.raft.wait(Some(self.limits.catch_up_timeout));
        let reached = wait
            .metrics(
                |m| matched_index(m, node).is_some_and(|matched| matched >= index),
                "learner catches up",
            )
            .await;
        reached.is_ok()
    }

    /// Undoes a learner addition that is not going on (best effort: a failure is logged, and
    /// an idle learner costs the quorum nothing).
    async fn take_out_learner(&self, node: u64) {
        let change = ChangeMembers::RemoveNodes(BTreeSet::from([node]));
        if let Err(error) = self.raft.change_membership(change, false).await {
            tracing::warn!(node, %error, "could not take out a learner that did not catch up");
        }
    }
}

/// How far the leader knows `node`'s log to match its own.
fn matched_index(metrics: &Metrics, node: u64) -> Option<u64> {
    let replication = metrics.replication.as_ref()?;
    replication.get(&node)?.as_ref().map(|log_id| log_id.index)
}

/// `Some(done)` when `node_id` already is a voter at `addr`; an error when the id or the
/// address belongs to another member.
fn already_member(
    metrics: &Metrics,
    node_id: u64,
    addr: &str,
) -> Result<Option<Added>, ChangeError> {
    let membership = metrics.membership_config.membership();
    for (id, node) in membership.nodes() {
        if *id == node_id && node.addr != addr {
            return Err(ChangeError::Refused(format!(
                "node {node_id} is already a member at {}; remove it first to move it",
                node.addr
            )));
        }
        if *id != node_id && node.addr == addr {
            return Err(ChangeError::Refused(format!(
                "{addr} is the address of node {id}"
            )));
        }
    }
    if final_voters(metrics).contains(&node_id) {
        return Ok(Some(Added::AlreadyVoter));
    }
    Ok(None)
}

fn in_progress() -> ChangeError {
    ChangeError::Refused("another membership change is in progress on this node".into())
}

/// openraft's refusal of a write as a [`ChangeError`].
fn write_error(error: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> ChangeError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => ChangeError::NotLeader {
            leader_id: forward.leader_id,
            leader_addr: forward.leader_node.map(|n| n.addr),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => {
            ChangeError::Refused(error.to_string())
        }
        RaftError::Fatal(fatal) => ChangeError::Failed(fatal.to_string()),
    }
}
