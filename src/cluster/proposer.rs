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

impl ProposalQueue {
    pub fn push(&self, proposals: Vec<Proposal>) {
        if proposals.is_empty() {
            return;
        }
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(proposals);
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
