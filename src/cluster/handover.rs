//! Leadership hand-over: a leader that is about to stop (SIGTERM, a rolling restart) asks an
//! up-to-date voter to start an election at once, instead of leaving the cluster without a
//! leader until an election timeout fires (1 to 2 s, then possibly a split vote).
//!
//! openraft 0.9 has no leader transfer of its own, so this is Raft's "TimeoutNow" built from
//! what it has: the leader picks a voter whose log matches its own, and tells it (the
//! `StartElection` RPC) to call `trigger().elect()`. The candidate's term is higher and its
//! log as long as the leader's, so the leader grants its vote and steps down; in a cluster of
//! three that vote and the candidate's own are a majority. (A follower refuses votes while
//! it has heard from its leader within the lease, so in larger clusters the election may need
//! the lease to pass: the hand-over then saves less, but never costs safety: an election is
//! always safe in Raft, only the leader's log can win one.)
//!
//! A peer obeys only its current leader: the request names the leader's id and term and must
//! match what the peer knows; with cluster TLS the caller's certificate must name that
//! leader too (checked in `ClusterService`).

use std::time::Duration;

use openraft::{BasicNode, Raft, RaftMetrics};
use serde::{Deserialize, Serialize};

use super::change::ProbeFuture;
use super::proposer::WriteHold;
use super::types::TypeConfig;

/// The longest a stopping leader spends handing over before it stops anyway.
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt waits for the leadership to move.
const ATTEMPT_WAIT: Duration = Duration::from_millis(1500);
/// Pause between attempts that failed (the leader's own vote lease: a leader elected less
/// than the lease ago still refuses to vote for anyone).
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The leader's request to a voter to start an election now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionRequest {
    /// The asking leader's id.
    pub leader: u64,
    /// The term it leads in.
    pub term: u64,
}

/// What the hand-over asks of the network.
pub trait ElectionStarter: Send + Sync + 'static {
    /// Asks `node` to start an election; `Ok(true)` when it did.
    fn start_election(
        &self,
        node: u64,
        request: ElectionRequest,
    ) -> ProbeFuture<'_, Result<bool, String>>;
}

/// Whether a node should obey `request`: it must come from the leader this node follows, in
/// the term it knows, and this node must be a voter (a learner cannot win).
pub fn obeys(metrics: &RaftMetrics<u64, BasicNode>, request: &ElectionRequest) -> bool {
    let voter = metrics
        .membership_config
        .membership()
        .voter_ids()
        .any(|id| id == metrics.id);
    voter
        && metrics.current_leader == Some(request.leader)
        && metrics.current_term == request.term
        && request.leader != metrics.id
}

/// The voter to hand leadership to: one whose replicated log matches the leader's last entry
/// (the lowest id among them, so the choice is deterministic), or `None` when none has caught
/// up or this node does not lead.
pub fn successor(metrics: &RaftMetrics<u64, BasicNode>) -> Option<u64> {
    if metrics.current_leader != Some(metrics.id) {
        return None;
    }
    let last = metrics.last_log_index?;
    let replication = metrics.replication.as_ref()?;
    metrics
        .membership_config
        .membership()
        .voter_ids()
        .filter(|id| *id != metrics.id)
        .find(|id| {
            replication
                .get(id)
                .and_then(|matched| matched.as_ref())
                .is_some_and(|matched| matched.index >= last)
        })
}

/// How a hand-over ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// This node did not lead, or led alone: nothing to hand over.
    NotLeader,
    /// Node `0` leads now.
    To(u64),
    /// The leadership did not move within the time allowed; the node stops anyway and the
    /// others elect a leader when their timeouts fire.
    Failed,
}

/// Hands this node's leadership to an up-to-date voter, trying for up to `timeout`, and stops
/// this node from standing for election again (it is about to stop).
///
/// First `hold` stops the leader appending (see [`WriteHold`]): a successor's vote request
/// carries its last log entry, and the leader grants its vote only if that is as recent as
/// its own; a leader still appending under load would refuse, and the cluster would wait out
/// the election timeouts (the first rolling restarts under load did, 4 s once in three).
pub async fn hand_over(
    raft: &Raft<TypeConfig>,
    hold: &WriteHold,
    peers: &dyn ElectionStarter,
    timeout: Duration,
) -> Handover {
    let me = raft.metrics().borrow().id;
    raft.runtime_config().elect(false);
    let first = raft.metrics().borrow().clone();
    let alone = first
        .membership_config
        .membership()
        .voter_ids()
        .all(|id| id == me);
    if first.current_leader != Some(me) || alone {
        return Handover::NotLeader;
    }
    hold.hold();
    let moved = |m: &RaftMetrics<u64, BasicNode>| m.current_leader.filter(|leader| *leader != me);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Until a voter has caught up with the last entry (the held writes still in flight
        // are replicated) or another node leads: metrics change as followers acknowledge.
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ready = raft
            .wait(Some(remaining))
            .metrics(
                |m| moved(m).is_some() || successor(m).is_some(),
                "a successor has caught up",
            )
            .await;
        let Ok(metrics) = ready else {
            return Handover::Failed;
        };
        if let Some(leader) = moved(&metrics) {
            return Handover::To(leader);
        }
        let Some(target) = successor(&metrics) else {
            continue;
        };
        let request = ElectionRequest {
            leader: me,
            term: metrics.current_term,
        };
        match peers.start_election(target, request).await {
            Ok(true) => {
                let handed = raft
                    .wait(Some(ATTEMPT_WAIT))
                    .metrics(|m| moved(m).is_some(), "leadership handed over")
                    .await;
                if let Some(leader) = handed.ok().as_ref().and_then(moved) {
                    return Handover::To(leader);
                }
            }
            Ok(false) => tracing::debug!(target, "the successor declined to stand"),
            Err(error) => tracing::debug!(target, %error, "cannot reach the successor"),
        }
        // A leader elected less than a lease ago still refuses to vote, and a successor may
        // have been busy: try again shortly.
        if tokio::time::Instant::now() + RETRY_PAUSE >= deadline {
            return Handover::Failed;
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::{LogId, Membership, StoredMembership};

    use super::*;

    fn metrics(me: u64, leader: Option<u64>, voters: &[u64]) -> RaftMetrics<u64, BasicNode> {
        let mut metrics = RaftMetrics::new_initial(me);
        let nodes: BTreeMap<u64, BasicNode> = voters
            .iter()
            .map(|id| (*id, BasicNode::new(format!("n{id}:7000"))))
            .collect();
        let voter_set = voters.iter().copied().collect();
        let membership = Membership::new(vec![voter_set], nodes);
        metrics.membership_config = std::sync::Arc::new(StoredMembership::new(None, membership));
        metrics.current_leader = leader;
        metrics.current_term = 4;
        metrics.last_log_index = Some(10);
        metrics
    }

    fn log_id(index: u64) -> Option<LogId<u64>> {
        Some(LogId::new(openraft::CommittedLeaderId::new(4, 1), index))
    }

    #[test]
    fn the_successor_is_a_voter_whose_log_matches_the_leaders() {
        let mut leader = metrics(1, Some(1), &[1, 2, 3]);
        leader.replication = Some([(2, log_id(9)), (3, log_id(10))].into_iter().collect());
        assert_eq!(successor(&leader), Some(3));
        leader.replication = Some([(2, log_id(10)), (3, log_id(10))].into_iter().collect());
        assert_eq!(
            successor(&leader),
            Some(2),
            "the lowest id of those caught up"
        );
        leader.replication = Some([(2, log_id(9)), (3, None)].into_iter().collect());
        assert_eq!(successor(&leader), None, "nobody has caught up");
        let follower = metrics(2, Some(1), &[1, 2, 3]);
        assert_eq!(successor(&follower), None, "only a leader hands over");
    }

    #[test]
    fn a_node_obeys_only_its_leader_in_its_term() {
        let follower = metrics(2, Some(1), &[1, 2, 3]);
        let request = ElectionRequest { leader: 1, term: 4 };
        assert!(obeys(&follower, &request));
        assert!(
            !obeys(&follower, &ElectionRequest { leader: 3, term: 4 }),
            "not its leader"
        );
        assert!(
            !obeys(&follower, &ElectionRequest { leader: 1, term: 3 }),
            "an old term"
        );
        let learner = metrics(4, Some(1), &[1, 2, 3]);
        assert!(
            !obeys(&learner, &request),
            "a learner cannot win an election"
        );
        let leader = metrics(1, Some(1), &[1, 2, 3]);
        assert!(!obeys(&leader, &request), "a leader does not elect itself");
    }
}
