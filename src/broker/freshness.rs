//! The freshness gate: a publish that skipped the log because this node's replica showed no
//! durable subscription matching is acknowledged only once that replica is known fresh, that
//! is once it has applied the commit index read after the publish arrived (docs/design.md
//! §2). Publishes wait in read rounds, so one read serves all that arrived before it started.

use std::sync::Arc;

use crate::state::{ClientId, Command, Message, SharedKey};

use super::core::Broker;
use super::proposal::{Completion, ConnId, Ticket};
use super::propose::Caller;
use super::types::Tier;

/// A publish whose acknowledgement waits for a read of the commit index.
#[derive(Debug)]
pub(super) struct FreshWait {
    /// The publisher.
    pub(super) client_id: ClientId,
    pub(super) conn: ConnId,
    pub(super) ticket: Ticket,
    pub(super) message: Arc<Message>,
    /// Sessions of this node's local tier the message reached.
    pub(super) matched: usize,
    pub(super) dropped_queue_full: usize,
    /// Shared groups already served off the log.
    pub(super) skip_shared: Vec<SharedKey>,
}

/// Publishes waiting for a read of the commit index, by read round.
///
/// Invariants ([`FreshnessGate::validate`]): the rounds of the waiting publishes never
/// decrease along the list, and none is beyond the round being gathered.
#[derive(Debug)]
pub(super) struct FreshnessGate {
    /// The waiting publishes with the round each joined.
    waiting: Vec<(u64, FreshWait)>,
    /// The round new waits join; a round is read once it is started.
    round: u64,
}

impl Default for FreshnessGate {
    fn default() -> Self {
        FreshnessGate {
            waiting: Vec::new(),
            round: 1,
        }
    }
}

impl FreshnessGate {
    /// A publish joins the round being gathered.
    pub(super) fn wait(&mut self, wait: FreshWait) {
        self.waiting.push((self.round, wait));
    }

    /// Whether publishes of the round being gathered wait for a read.
    fn wants_read(&self) -> bool {
        self.waiting
            .last()
            .is_some_and(|(round, _)| *round == self.round)
    }

    /// Closes the round being gathered and returns it.
    fn start_read(&mut self) -> u64 {
        let round = self.round;
        self.round += 1;
        round
    }

    /// The publishes of `round` and earlier, oldest first.
    fn take_through(&mut self, round: u64) -> Vec<FreshWait> {
        let split = self.waiting.partition_point(|(r, _)| *r <= round);
        self.waiting.drain(..split).map(|(_, wait)| wait).collect()
    }

    /// Checks the invariants; panics with the broken one.
    pub(super) fn validate(&self) {
        assert!(
            self.waiting.windows(2).all(|pair| pair[0].0 <= pair[1].0),
            "fresh waits out of round order"
        );
        assert!(
            self.waiting.iter().all(|(round, _)| *round <= self.round),
            "a fresh wait joined a round not yet gathered"
        );
    }
}

impl Broker {
    /// Whether publishes wait for a read of the commit index (see [`Broker::start_read`]).
    pub fn wants_read(&self) -> bool {
        self.fresh.wants_read()
    }

    /// Starts a read round: the publishes waiting so far are answered by
    /// [`Broker::read_done`] with the round returned, once the replica has applied the
    /// commit index read after it started. Later ones wait for the next round.
    pub fn start_read(&mut self) -> u64 {
        self.fresh.start_read()
    }

    /// The replica has applied everything committed when `round` started: the publishes of
    /// that round and earlier are judged against it.
    pub fn read_done(&mut self, round: u64) {
        for wait in self.fresh.take_through(round) {
            self.judge_fresh(wait);
        }
    }

    /// A publish that skipped the log, judged against a fresh replica: a durable subscription
    /// that appeared meanwhile gets it through the log after all.
    pub(super) fn judge_fresh(&mut self, wait: FreshWait) {
        let FreshWait {
            client_id,
            conn,
            ticket,
            message,
            matched,
            dropped_queue_full,
            skip_shared,
        } = wait;
        if self.durable.matches_any(&message.topic) {
            let local_matched = u32::try_from(matched).unwrap_or(u32::MAX);
            let command = Command::Publish {
                message,
                origin: None,
                skip_shared,
            };
            let caller = Caller::session(&client_id).replying_after(conn, ticket, local_matched);
            self.run(Tier::Durable, vec![command], caller);
            return;
        }
        self.reply(
            conn,
            ticket,
            Completion {
                matched,
                dropped_queue_full,
                ..Completion::default()
            },
        );
    }
}
