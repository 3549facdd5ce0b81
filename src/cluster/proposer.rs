//! Carries the broker's proposals into the log: whatever is queued when the proposer wakes
//! becomes one entry (group commit), and a bounded number of entries are in flight at once.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::Raft;
use tokio::sync::{mpsc, Notify};

use crate::broker::Proposal;
use crate::state::{BatchId, Place};

use super::types::{Batch, TypeConfig};

/// Proposals waiting for the proposer, in the order the broker made them.
#[derive(Debug, Default)]
pub struct ProposalQueue {
    queue: Mutex<VecDeque<Proposal>>,
    wake: Notify,
}

impl ProposalQueue {
    /// Queues proposals, merging those nobody waits for ([`Proposal::merge_into`]).
    pub fn push(&self, proposals: Vec<Proposal>) {
        if proposals.is_empty() {
            return;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        for proposal in proposals {
            if let Some(unmerged) = Proposal::merge_into(queue.back_mut(), proposal) {
                queue.push_back(unmerged);
            }
        }
        drop(queue);
        self.wake.notify_one();
    }

    /// Up to `max` proposals, oldest first.
    pub fn take(&self, max: usize) -> Vec<Proposal> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let n = queue.len().min(max);
        queue.drain(..n).collect()
    }

    /// Waits until proposals may be queued (a wake-up that finds the queue empty is
    /// possible: callers look again).
    async fn wait_for_work(&self) {
        if !self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            return;
        }
        self.wake.notified().await;
    }
}

/// What the proposer tells the node when the log stops taking proposals.
pub trait ProposalFailure: Send + Sync + 'static {
    /// The log failed for good (a storage error): stop acknowledging.
    fn log_failed(&self, why: String);
}

/// Why a batch sent to the leader did not (knowingly) commit. Either way the outcome is
/// unknown: the proposer sends the batch again, and the state skips a second copy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderError {
    #[error("node {0} is not the leader")]
    NotLeader(u64),
    #[error("node {0} is unreachable: {1}")]
    Unreachable(u64, String),
}

/// Carries batches to the leader when it is another node (gRPC in a cluster).
pub trait LeaderLink: Send + Sync + 'static {
    /// Sends `batch` to `leader`, which answers once it is committed. Has its own deadline.
    fn propose(
        &self,
        leader: u64,
        batch: Batch,
    ) -> Pin<Box<dyn Future<Output = Result<(), LeaderError>> + Send>>;

    /// Asks `leader` for its commit index, which it returns once it has confirmed it still
    /// leads (a read index). Has its own deadline.
    fn read_index(
        &self,
        leader: u64,
    ) -> Pin<Box<dyn Future<Output = Result<u64, LeaderError>> + Send>>;
}

/// The link of a node with no peers: there is never another leader.
#[derive(Debug, Default)]
pub struct NoLeaderLink;

impl LeaderLink for NoLeaderLink {
    fn propose(
        &self,
        leader: u64,
        _batch: Batch,
    ) -> Pin<Box<dyn Future<Output = Result<(), LeaderError>> + Send>> {
        Box::pin(async move {
            Err(LeaderError::Unreachable(
                leader,
                "this node has no cluster".into(),
            ))
        })
    }

    fn read_index(
        &self,
        leader: u64,
    ) -> Pin<Box<dyn Future<Output = Result<u64, LeaderError>> + Send>> {
        Box::pin(async move {
            Err(LeaderError::Unreachable(
                leader,
                "this node has no cluster".into(),
            ))
        })
    }
}

/// Limits of the proposer.
#[derive(Debug, Clone, Copy)]
pub struct ProposerLimits {
    /// Most proposals in one log entry.
    pub batch_max: usize,
    /// Most entries proposed and not yet applied, on the leader.
    pub inflight_max: usize,
}

impl Default for ProposerLimits {
    fn default() -> Self {
        ProposerLimits {
            batch_max: 4096,
            inflight_max: 64,
        }
    }
}

/// Pause before trying again when there is no leader or it could not be reached.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How long an outcome in flight is awaited before its batch is sent again.
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of a batch the leader (this node) took: its seq and whether it committed.
type Outcome = (u64, bool);

/// The batches of one run of the node on their way into the log.
struct Pipeline {
    place: Place,
    next_seq: u64,
    /// Handed to Raft here and not yet known committed, by seq, with when.
    inflight: BTreeMap<u64, (Batch, tokio::time::Instant)>,
    /// To send again, in order, before anything new.
    retry: VecDeque<Batch>,
    /// An outcome in flight came back unknown: nothing new is sent until every outcome is in.
    failed: bool,
    /// An outcome came back unknown since the last send: pause before sending again. A
    /// leader whose writes fail at once (it is being replaced, or removed from the
    /// membership) would otherwise resend in a loop that never waits for anything timed: a
    /// busy spin, and in the simulator a run whose time stops.
    back_off: bool,
}

impl Pipeline {
    /// The next batch: one to send again, or a new one of `proposals`.
    fn next(&mut self, proposals: impl FnOnce() -> Vec<Proposal>) -> Option<Batch> {
        if let Some(batch) = self.retry.pop_front() {
            return Some(batch);
        }
        let proposals = proposals();
        if proposals.is_empty() {
            return None;
        }
        let id = BatchId {
            place: self.place,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        Some(Batch { id, proposals })
    }

    fn settle(&mut self, (seq, committed): Outcome) {
        if let Some((batch, _)) = self.inflight.remove(&seq) {
            if !committed {
                self.failed = true;
                self.back_off = true;
                self.retry.push_back(batch);
            }
        }
    }

    /// Gives up waiting for the outcomes in flight: their batches are sent again, in order.
    /// Needed because some never come: an entry a follower got from this node's leadership
    /// is covered by a snapshot it installs, and Raft drops its reply then without a word.
    /// An outcome that comes later is ignored; a copy that committed is skipped at apply.
    fn abandon_inflight(&mut self) {
        let abandoned = std::mem::take(&mut self.inflight);
        self.retry
            .extend(abandoned.into_values().map(|(batch, _)| batch));
        self.retry.make_contiguous().sort_by_key(|b| b.id.seq);
        self.failed = false;
    }

    /// Whether the oldest outcome in flight has been awaited longer than `limit`.
    fn overdue(&self, limit: Duration) -> bool {
        self.inflight
            .values()
            .map(|(_, since)| *since)
            .min()
            .is_some_and(|since| since.elapsed() >= limit)
    }

    /// Once every outcome is in after a failure, the batches to send again go in seq order.
    fn recovered(&mut self) -> bool {
        if !self.failed || !self.inflight.is_empty() {
            return !self.failed;
        }
        self.failed = false;
        self.retry.make_contiguous().sort_by_key(|b| b.id.seq);
        true
    }
}

/// Returns once `leader` is no longer the leader this node knows of (another one was
/// elected, or none is known); never while it is.
pub(super) async fn leader_moved(raft: &Raft<TypeConfig>, leader: u64) {
    let mut metrics = raft.metrics();
    loop {
        if metrics.borrow_and_update().current_leader != Some(leader) {
            return;
        }
        if metrics.changed().await.is_err() {
            // Raft has shut down: whatever waits on this ends with the node.
            std::future::pending::<()>().await;
        }
    }
}

/// Holds a leader's writes while it hands its leadership over (`cluster::hand_over`): a
/// successor wins the election only with a log as long as the leader's, so the leader must
/// stop appending (its own batches and those forwarded to it) before it asks one to stand.
#[derive(Debug, Default)]
pub struct WriteHold {
    held: std::sync::atomic::AtomicBool,
}

impl WriteHold {
    /// From now on, this node appends nothing while it leads. Never undone: the node stops.
    pub fn hold(&self) {
        self.held.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_held(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Carries the queue's proposals into the log, in order, until the Raft node shuts down.
///
/// Each batch is numbered (from 1 in each run of the node). On the leader, batches are handed
/// to Raft as they come, several in flight. On a follower they go to the leader one at a
/// time, each once the previous committed, which keeps them in order. A batch whose outcome is
/// unknown (leadership moved, the leader did not answer in time) is sent again, and so are
/// the ones after it, in order, once every outcome in flight is known: a copy that did commit
/// is skipped when applied (`Placement::accept_batch`), and because batches of one node
/// commit in order, skipping every seq at or below the last applied one loses none.
pub async fn run_proposer(
    raft: Raft<TypeConfig>,
    queue: Arc<ProposalQueue>,
    failure: Arc<dyn ProposalFailure>,
    limits: ProposerLimits,
    place: Place,
    link: Arc<dyn LeaderLink>,
    hold: Arc<WriteHold>,
) {
    let (outcome_tx, mut outcomes) = mpsc::channel::<Outcome>(limits.inflight_max.max(1));
    let mut pipe = Pipeline {
        place,
        next_seq: 1,
        inflight: BTreeMap::new(),
        retry: VecDeque::new(),
        failed: false,
        back_off: false,
    };
    loop {
        while let Ok(outcome) = outcomes.try_recv() {
            pipe.settle(outcome);
        }
        let leader = raft.metrics().borrow().current_leader;
        let leading = leader == Some(u64::from(place.node));
        if leading && hold.is_held() {
            // Handing leadership over: append nothing more here; once another node leads,
            // this node's batches go to it.
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        }
        if (!leading && !pipe.inflight.is_empty()) || pipe.overdue(OUTCOME_TIMEOUT) {
            // Leadership moved (or an outcome is long overdue): what is in flight here is
            // sent again, to whoever leads.
            pipe.abandon_inflight();
        }
        // Send nothing while outcomes are in flight after a failure, nor more than the
        // pipeline allows.
        let must_wait = !pipe.recovered() || pipe.inflight.len() >= limits.inflight_max;
        if must_wait {
            tokio::select! {
                outcome = outcomes.recv() => match outcome {
                    Some(outcome) => pipe.settle(outcome),
                    None => return,
                },
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
            }
            continue;
        }
        let Some(leader) = leader else {
            if pipe.retry.is_empty() && pipe.inflight.is_empty() {
                queue.wait_for_work().await;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        if std::mem::take(&mut pipe.back_off) {
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        }
        // Let the connection tasks that are ready run first, so that their proposals join
        // this entry: fewer, larger entries cost less per proposal (group commit without a
        // timer; the wait is one round of the runtime).
        tokio::task::yield_now().await;
        let Some(batch) = pipe.next(|| queue.take(limits.batch_max)) else {
            tokio::select! {
                _ = queue.wait_for_work() => {}
                outcome = outcomes.recv(), if !pipe.inflight.is_empty() => {
                    let Some(outcome) = outcome else { return };
                    pipe.settle(outcome);
                }
            }
            continue;
        };
        if !leading {
            send_to_leader(&raft, &*link, leader, batch, &mut pipe).await;
            continue;
        }
        if let Err(fatal) = append(&raft, batch, &mut pipe, &outcome_tx).await {
            failure.log_failed(fatal.to_string());
            return;
        }
    }
}

/// Another node leads: sends it one batch, and waits for its outcome. A call to a leader that
/// has been replaced meanwhile is given up at once (it would wait out its deadline if the old
/// leader is paused, holding up every client of this node; jepsen saw 2 s), and the batch
/// goes to the new one.
async fn send_to_leader(
    raft: &Raft<TypeConfig>,
    link: &dyn LeaderLink,
    leader: u64,
    batch: Batch,
    pipe: &mut Pipeline,
) {
    let call = link.propose(leader, batch.clone());
    let result = tokio::select! {
        result = call => result,
        _ = leader_moved(raft, leader) => Err(LeaderError::NotLeader(leader)),
    };
    if let Err(error) = result {
        tracing::debug!(%error, seq = batch.id.seq, "batch not committed; sending it again");
        pipe.retry.push_front(batch);
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// This node leads: appends a batch to its log, its outcome awaited apart (reported on
/// `outcome_tx`). `client_write_ff` hands the entry to Raft before returning, so entries keep
/// the queue's order. An error is fatal: the log failed.
async fn append(
    raft: &Raft<TypeConfig>,
    batch: Batch,
    pipe: &mut Pipeline,
    outcome_tx: &mpsc::Sender<Outcome>,
) -> Result<
    (),
    openraft::error::RaftError<u64, openraft::error::ClientWriteError<u64, openraft::BasicNode>>,
> {
    let seq = batch.id.seq;
    let outcome = raft.client_write_ff(batch.clone()).await?;
    pipe.inflight
        .insert(seq, (batch, tokio::time::Instant::now()));
    let outcome_tx = outcome_tx.clone();
    tokio::spawn(async move {
        let committed = matches!(outcome.await, Ok(Ok(_)));
        let _ = outcome_tx.send((seq, committed)).await;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{ConnId, Origin, Ticket, MERGED_COMMANDS_MAX};
    use crate::codec::MqttString;
    use crate::state::{Command, Incarnation, NodeId, Seq};

    fn acked(seq: u64) -> Command {
        Command::Acked {
            client_id: MqttString::new("sub").unwrap(),
            seq: Seq(seq),
        }
    }

    fn proposal(seqs: &[u64], ticket: Option<u64>) -> Proposal {
        Proposal {
            commands: seqs.iter().map(|&s| acked(s)).collect(),
            origin: ticket.map(|ticket| Origin {
                place: Place {
                    node: NodeId(1),
                    incarnation: Incarnation(0),
                },
                conn: ConnId(1),
                ticket: Ticket(ticket),
                local_matched: 0,
            }),
            from: None,
        }
    }

    #[test]
    fn proposals_nobody_waits_for_merge_in_order_and_never_across_one_with_an_origin() {
        let queue = ProposalQueue::default();
        queue.push(vec![proposal(&[1], None), proposal(&[2], None)]);
        queue.push(vec![proposal(&[3], None)]);
        queue.push(vec![proposal(&[4], Some(7)), proposal(&[5], None)]);
        queue.push(vec![proposal(&[6], None), proposal(&[7], Some(8))]);
        assert_eq!(
            queue.take(usize::MAX),
            vec![
                proposal(&[1, 2, 3], None),
                proposal(&[4], Some(7)),
                proposal(&[5, 6], None),
                proposal(&[7], Some(8)),
            ]
        );
    }

    #[test]
    fn a_merged_proposal_stops_growing_at_its_bound() {
        let queue = ProposalQueue::default();
        let seqs: Vec<u64> = (0..MERGED_COMMANDS_MAX as u64 + 1).collect();
        queue.push(seqs.iter().map(|&s| proposal(&[s], None)).collect());
        let taken = queue.take(usize::MAX);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].commands.len(), MERGED_COMMANDS_MAX);
        assert_eq!(taken[1], proposal(&[MERGED_COMMANDS_MAX as u64], None));
    }
}
