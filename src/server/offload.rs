//! [`BlockingOffload`]: where CONNECT password verifications run. An argon2id verification at
//! OWASP's parameters takes 15 ms or more of one core; on tokio's worker threads a burst of
//! them would hold up every connection those threads serve. They run on the blocking pool
//! instead, at most [`VERIFIES_AT_ONCE`] at a time, so a burst costs one core and the I/O
//! threads go on serving everyone else.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::auth::{Decision, DecisionFuture, Offload};
use crate::codec::ReasonCode;

/// Password verifications running at once: one core of a small machine.
pub const VERIFIES_AT_ONCE: usize = 1;

#[derive(Debug)]
pub struct BlockingOffload {
    running: Arc<Semaphore>,
}

impl Default for BlockingOffload {
    fn default() -> BlockingOffload {
        BlockingOffload {
            running: Arc::new(Semaphore::new(VERIFIES_AT_ONCE)),
        }
    }
}

impl Offload for BlockingOffload {
    fn run(&self, job: Box<dyn FnOnce() -> Decision + Send>) -> DecisionFuture<'_> {
        Box::pin(async move {
            let Ok(_permit) = self.running.acquire().await else {
                return Decision::Deny(ReasonCode::ServerUnavailable);
            };
            // A verification that panicked or was cancelled (the runtime shutting down)
            // admits nobody.
            tokio::task::spawn_blocking(job)
                .await
                .unwrap_or(Decision::Deny(ReasonCode::ServerUnavailable))
        })
    }
}
