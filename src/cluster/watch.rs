//! The tasks that tell the broker about its cluster: whether the node leads, whether it has a
//! quorum (G5: without one it sends its clients away), and when the publishes that skipped the
//! log may be acknowledged (a read of the commit index, docs/design.md §2).

use std::sync::Arc;
use std::time::Duration;

use openraft::{Raft, ServerState};
use tokio::sync::{watch, Notify};

use super::node::ELECTION_TIMEOUT_MAX_MS;
use super::proposer::{leader_moved, LeaderLink};
use super::types::TypeConfig;

/// What the cluster tasks tell the node (the broker behind its lock).
pub trait ClusterView: Send + Sync + 'static {
    /// The node's role: the only voter of its cluster, its leader, and whether it has had a
    /// quorum within the election timeout.
    fn set_role(&self, single_voter: bool, leader: bool, quorum: bool);
    /// Starts a read round if publishes wait for one; returns its number.
    fn start_read(&self) -> Option<u64>;
    /// The replica has applied the commit index read for `round`.
    fn read_done(&self, round: u64);
}

/// How often the role is looked at besides on a change of Raft's metrics.
const ROLE_PERIOD: Duration = Duration::from_millis(100);

/// The role the metrics show, and whether the node reaches a quorum now.
fn role_of(raft: &Raft<TypeConfig>) -> (bool, bool, bool) {
    let metrics = raft.metrics().borrow().clone();
    let me = metrics.id;
    let membership = metrics.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let single_voter = voters == [me];
    let leader = metrics.state == ServerState::Leader;
    let quorum = if single_voter {
        leader
    } else if leader {
        metrics
            .millis_since_quorum_ack
            .is_some_and(|ms| ms <= ELECTION_TIMEOUT_MAX_MS)
    } else {
        metrics.current_leader.is_some()
    };
    (single_voter, leader, quorum)
}

/// Keeps the broker's view of the node's role current until `stop`. A node counts as without
/// quorum only once it has had none for a whole election timeout: a leader change inside a
/// healthy cluster must not send every client away.
pub async fn watch_role(
    raft: Raft<TypeConfig>,
    view: Arc<dyn ClusterView>,
    mut stop: watch::Receiver<bool>,
) {
    let mut metrics = raft.metrics();
    let grace = Duration::from_millis(ELECTION_TIMEOUT_MAX_MS);
    let mut lost_since: Option<tokio::time::Instant> = None;
    loop {
        let (single_voter, leader, quorum) = role_of(&raft);
        let now = tokio::time::Instant::now();
        let reached = if quorum {
            lost_since = None;
            true
        } else {
            let since = *lost_since.get_or_insert(now);
            now.duration_since(since) < grace
        };
        view.set_role(single_voter, leader, reached);
        tokio::select! {
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(ROLE_PERIOD) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Deadline of one read of the commit index.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a read that failed (no leader, leader unreachable) before the next try.
const READ_RETRY: Duration = Duration::from_millis(50);

/// Serves read rounds until `stop`: woken by `wake` when publishes wait, it starts a round,
/// learns the commit index (from Raft on the leader, which confirms its leadership with a
/// quorum first; from the leader otherwise), waits until this replica applied it, and ends
/// the round. Rounds batch: every publish that arrived before a round started is answered by
/// it, so a burst costs one read.
pub async fn run_reads(
    raft: Raft<TypeConfig>,
    view: Arc<dyn ClusterView>,
    link: Arc<dyn LeaderLink>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let Some(round) = view.start_read() else {
            tokio::select! {
                _ = wake.notified() => continue,
                _ = stop.changed() => return,
            }
        };
        loop {
            if *stop.borrow() {
                return;
            }
            match tokio::time::timeout(READ_TIMEOUT, read_index(&raft, &*link)).await {
                Ok(Ok(())) => break,
                Ok(Err(error)) => tracing::debug!(%error, "read of the commit index failed"),
                Err(_) => tracing::debug!("read of the commit index timed out"),
            }
            tokio::time::sleep(READ_RETRY).await;
        }
        view.read_done(round);
    }
}

/// Waits until this replica has applied everything committed before the call.
async fn read_index(raft: &Raft<TypeConfig>, link: &dyn LeaderLink) -> Result<(), String> {
    let leader = raft.metrics().borrow().current_leader;
    let me = raft.metrics().borrow().id;
    let index = match leader {
        None => return Err("no leader".into()),
        Some(leader) if leader == me => {
            let read = raft
                .ensure_linearizable()
                .await
                .map_err(|e| e.to_string())?;
            // `ensure_linearizable` returns once applied: nothing left to wait for.
            let _ = read;
            return Ok(());
        }
        Some(leader) => {
            // A leader replaced meanwhile would only answer at the deadline, if at all.
            tokio::select! {
                read = link.read_index(leader) => read.map_err(|e| e.to_string())?,
                _ = leader_moved(raft, leader) => {
                    return Err(format!("node {leader} no longer leads"));
                }
            }
        }
    };
    raft.wait(Some(READ_TIMEOUT))
        .applied_index_at_least(Some(index), "read index")
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
