//! Carries the broker's proposals into the log: whatever is queued when the proposer wakes
//! becomes one entry (group commit), and a bounded number of entries are in flight at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use openraft::Raft;
use tokio::sync::{Notify, Semaphore};

use crate::broker::Proposal;

use super::types::{Batch, TypeConfig};

/// Proposals waiting for the proposer, in the order the broker made them.
#[derive(Debug, Default)]
pub struct ProposalQueue {
    queue: Mutex<VecDeque<Proposal>>,
    wake: Notify,
}

/// Most commands a queued proposal gathers from proposals nobody waits for.
const MERGED_COMMANDS_MAX: usize = 256;

impl ProposalQueue {
    /// Queues proposals. One that nobody waits for (no origin: a subscriber's PUBACK, most
    /// often) joins the proposal queued just before it if that one has no origin either:
    /// one proposal per message would cost more than its command, in the log and applying
    /// it, and the two would have been committed together anyway.
    pub fn push(&self, proposals: Vec<Proposal>) {
        if proposals.is_empty() {
            return;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        for proposal in proposals {
            match queue.back_mut() {
                Some(last)
                    if proposal.origin.is_none()
                        && last.origin.is_none()
                        && last.commands.len() < MERGED_COMMANDS_MAX =>
                {
                    last.commands.extend(proposal.commands);
                }
                _ => queue.push_back(proposal),
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

    async fn wait(&self) {
        self.wake.notified().await;
    }
}

/// What the proposer tells the node when the log stops taking proposals.
pub trait ProposalFailure: Send + Sync + 'static {
    /// The log failed (storage error, lost leadership): stop acknowledging.
    fn log_failed(&self, why: String);
}

/// Limits of the proposer.
#[derive(Debug, Clone, Copy)]
pub struct ProposerLimits {
    /// Most proposals in one log entry.
    pub batch_max: usize,
    /// Most entries proposed and not yet applied.
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

/// Runs until the Raft node shuts down.
pub async fn run_proposer(
    raft: Raft<TypeConfig>,
    queue: Arc<ProposalQueue>,
    failure: Arc<dyn ProposalFailure>,
    limits: ProposerLimits,
) {
    let inflight = Arc::new(Semaphore::new(limits.inflight_max));
    loop {
        queue.wait().await;
        loop {
            let Ok(permit) = inflight.clone().acquire_owned().await else {
                return;
            };
            // Let the connection tasks that are ready run first, so that their proposals
            // join this entry: fewer, larger entries cost less per proposal (group commit
            // without a timer; the wait is one round of the runtime).
            tokio::task::yield_now().await;
            let batch = queue.take(limits.batch_max);
            if batch.is_empty() {
                break;
            }
            // `client_write_ff` hands the entry to Raft before returning, so entries keep
            // the queue's order; the outcome is awaited apart.
            match raft.client_write_ff(Batch(batch)).await {
                Ok(outcome) => {
                    let failure = failure.clone();
                    tokio::spawn(async move {
                        let result = outcome.await;
                        drop(permit);
                        match result {
                            Ok(Ok(_)) => {}
                            Ok(Err(error)) => failure.log_failed(error.to_string()),
                            Err(_) => failure.log_failed("Raft stopped".to_string()),
                        }
                    });
                }
                Err(fatal) => {
                    failure.log_failed(fatal.to_string());
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Origin;
    use crate::codec::MqttString;
    use crate::state::Command;

    fn acked(seq: u64) -> Command {
        Command::Acked {
            client_id: MqttString::new("sub").unwrap(),
            seq,
        }
    }

    fn proposal(seqs: &[u64], ticket: Option<u64>) -> Proposal {
        Proposal {
            commands: seqs.iter().map(|&s| acked(s)).collect(),
            origin: ticket.map(|ticket| Origin {
                node: 1,
                incarnation: 0,
                conn: 1,
                ticket,
                local_matched: 0,
            }),
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
