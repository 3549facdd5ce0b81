//! Committed proposals, applied in log order (and void when the connection that asked no
//! longer holds its session), commands applied to either tier and what they report acted
//! on, and the timers of wills and expiries.

use crate::codec::ReasonCode;
use crate::state::{Applied, BatchId, Command};

use super::core::Broker;
use super::proposal::{Completion, Origin, Proposal};
use super::propose::Caller;
use super::types::Tier;

impl Broker {
    /// Applies a committed batch of proposals, unless a copy of it was applied before (a
    /// proposal retried after a timeout whose first attempt committed too).
    pub fn apply_batch(&mut self, batch: BatchId, proposals: Vec<Proposal>) {
        if !self.durable.accept_batch(batch) {
            return;
        }
        for proposal in proposals {
            self.apply_committed(proposal);
        }
    }

    /// Applies a committed proposal to the replicated state, in log order; replies to the
    /// request it carries when it came from this node's current run.
    pub fn apply_committed(&mut self, proposal: Proposal) {
        let reply_to = proposal.origin.filter(|o| self.is_mine(o));
        if let Some(fence) = &proposal.from {
            if !self.holds(&fence.client_id, fence.place) {
                self.void(&proposal, reply_to);
                return;
            }
        }
        let from_here = proposal
            .from
            .as_ref()
            .is_some_and(|fence| fence.place == self.place);
        let mut completion = Completion::default();
        let mut replied = false;
        for command in proposal.commands {
            let (applied, opened) = self.apply_one_committed(command, from_here, reply_to);
            replied |= opened;
            completion.session_present |= applied.session_present;
            completion.matched += applied.matched;
            completion.dropped_queue_full += applied.dropped_queue_full;
            completion.duplicate |= applied.duplicate;
            completion.existed.extend(applied.existed);
        }
        if let Some(origin) = reply_to {
            self.finish_request(origin, completion, replied);
        }
    }

    /// One command of a committed proposal: what the broker kept while it was on its way is
    /// settled, the command is applied to the replica, and this node's connections follow
    /// (displaced, opened, released). Returns what applying it reported, and whether that
    /// answered the request (a CONNACK).
    fn apply_one_committed(
        &mut self,
        command: Command,
        from_here: bool,
        reply_to: Option<Origin>,
    ) -> (Applied, bool) {
        let opening = match &command {
            Command::OpenSession {
                client_id, now_ms, ..
            } => Some((client_id.clone(), *now_ms, Tier::Durable)),
            Command::OpenLocal { client_id, .. } => Some((client_id.clone(), 0, Tier::Local)),
            _ => None,
        };
        let reason = match &command {
            Command::NodeDown { .. } => ReasonCode::ServerUnavailable,
            _ => ReasonCode::SessionTakenOver,
        };
        let now_ms = command_time(&command);
        self.settle_proposed(&command, from_here);
        let pubrec = match &command {
            Command::PubRecReceived { client_id, seq } => Some((client_id.clone(), *seq)),
            _ => None,
        };
        let applied = self.apply_in(Tier::Durable, command);
        // The simulator checks the replicated state after every command it applies, so a
        // corruption is caught at the command that made it.
        #[cfg(feature = "sim")]
        self.durable.validate();
        let asking = reply_to.map(|o| o.conn);
        for (client_id, place) in &applied.displaced {
            if *place == self.place {
                self.displace(client_id, asking, reason, now_ms);
            }
        }
        let mut replied = false;
        if let Some((client_id, now_ms, tier)) = opening {
            replied = self.session_opened(
                &client_id,
                tier,
                applied.session_present,
                applied.resumed_from,
                reply_to,
                now_ms,
            );
        }
        if let Some((client_id, seq)) = pubrec {
            self.release_committed(&client_id, seq);
        }
        (applied, replied)
    }

    /// What the broker kept about a command while it was on its way to the log, settled now
    /// that it is committed (`from_here`: proposed by a connection of this node and run).
    fn settle_proposed(&mut self, command: &Command, from_here: bool) {
        match command {
            Command::Publish {
                origin: Some(origin),
                ..
            } => {
                let key = (origin.client_id.clone(), origin.packet_id);
                self.proposed_qos2.remove(&key);
            }
            Command::EndSession { client_id, .. } | Command::PublishWill { client_id, .. } => {
                self.proposed_due.remove(client_id);
            }
            Command::SetRetained { topic, message } => {
                // This node's local sessions read retained messages from their own state.
                self.local.apply(Command::SetRetained {
                    topic: topic.clone(),
                    message: message.clone(),
                });
            }
            Command::Subscribe {
                client_id,
                subscriptions,
                ..
            } if from_here => {
                self.pending_subscriptions.settled(client_id, subscriptions);
            }
            _ => {}
        }
    }

    /// The request a committed proposal carried is done: what waited for the commit goes out
    /// (retained messages of a local session's new subscriptions, a QoS 2 message to the
    /// sessions off the log), then the reply, unless opening the session gave it already.
    fn finish_request(&mut self, origin: Origin, mut completion: Completion, replied: bool) {
        let key = (origin.conn, origin.ticket);
        if let Some((client_id, retained, at_ms)) = self.held_retained.remove(&key) {
            let mut applied = Applied::default();
            self.local
                .send_retained(&client_id, &retained, at_ms, &mut applied);
            self.act_on(Tier::Local, applied, at_ms);
        }
        if let Some(message) = self.deferred.remove(&key) {
            if !completion.duplicate {
                completion.matched += self.route_fast(&message, None).matched;
            }
        }
        if replied {
            return;
        }
        if let Some(held) = self.held.remove(&key) {
            completion.existed = held.existed;
        }
        completion.matched += origin.local_matched as usize;
        self.reply(origin.conn, origin.ticket, completion);
    }

    /// Forgets a proposal that came from a connection which no longer holds its session: it
    /// takes no effect, and what this node kept for its reply goes.
    pub(super) fn void(&mut self, proposal: &Proposal, reply_to: Option<Origin>) {
        let mine = proposal
            .from
            .as_ref()
            .is_some_and(|fence| fence.place == self.place);
        for command in &proposal.commands {
            match command {
                Command::Publish {
                    origin: Some(origin),
                    ..
                } => {
                    let key = (origin.client_id.clone(), origin.packet_id);
                    self.proposed_qos2.remove(&key);
                }
                Command::Subscribe {
                    client_id,
                    subscriptions,
                    ..
                } if mine => self.pending_subscriptions.settled(client_id, subscriptions),
                _ => {}
            }
        }
        if let Some(origin) = reply_to {
            let key = (origin.conn, origin.ticket);
            self.held.remove(&key);
            self.held_retained.remove(&key);
            self.deferred.remove(&key);
        }
    }

    /// Applies a command to one tier and acts on what it reports.
    pub(super) fn apply_in(&mut self, tier: Tier, command: Command) -> Applied {
        let now_ms = command_time(&command);
        let applied = match tier {
            Tier::Durable => self.durable.apply(command),
            Tier::Local => self.local.apply(command),
        };
        self.act_on(tier, applied, now_ms)
    }

    /// Carries out what applying a command to a tier reported.
    pub(super) fn act_on(&mut self, tier: Tier, applied: Applied, now_ms: u64) -> Applied {
        self.stats.dropped_queue_full += applied.dropped_queue_full as u64;
        let for_bytes = applied.dropped_queue_bytes as u64;
        self.stats.limits.queue += applied.dropped_queue_full as u64 - for_bytes;
        self.stats.limits.queue_bytes += for_bytes;
        for direct in applied.direct.iter().cloned() {
            self.deliver_direct(tier, direct, None);
        }
        for client_id in &applied.queued_for {
            if let Some(&conn) = self.owners.get(client_id) {
                if self.connections.get(&conn).is_some_and(|c| c.tier == tier) {
                    self.pump(conn, now_ms);
                }
            }
        }
        if tier == Tier::Durable {
            for client_id in &applied.ended {
                self.sent_before.remove(client_id);
            }
        }
        for will in &applied.wills {
            self.route_will(tier, will.clone());
        }
        if tier == Tier::Local {
            // A local member left its shared group with messages no other local member can
            // take: they go to the group's durable members, through the log, rather than
            // end with the local session.
            let handed_over: Vec<Command> = applied
                .unplaced_shared
                .iter()
                .filter(|unplaced| self.durable.has_shared_group(&unplaced.key))
                .map(|unplaced| Command::PublishShared {
                    key: unplaced.key.clone(),
                    message: unplaced.message.clone(),
                    retain: unplaced.retain,
                })
                .collect();
            if !handed_over.is_empty() {
                self.run(Tier::Durable, handed_over, Caller::NOBODY);
            }
        }
        applied
    }

    /// Applies wills and session expiries that are due: those of local sessions at once,
    /// those of durable sessions through the log.
    pub fn tick(&mut self, now_ms: u64) {
        for command in self.local.due(now_ms) {
            self.apply_in(Tier::Local, command);
        }
        if !self.timer_duty {
            return;
        }
        for command in self.durable.due(now_ms) {
            let client_id = match &command {
                Command::EndSession { client_id, .. } | Command::PublishWill { client_id, .. } => {
                    client_id.clone()
                }
                _ => continue,
            };
            if self.proposed_due.insert(client_id) {
                self.run(Tier::Durable, vec![command], Caller::NOBODY);
            }
        }
    }

    /// When [`Broker::tick`] next has work to do (unix ms).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        match (
            self.local.next_deadline_ms(),
            self.durable.next_deadline_ms(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The time a command happens at, as far as it carries one.
fn command_time(command: &Command) -> u64 {
    match command {
        Command::OpenSession { now_ms, .. }
        | Command::CloseSession { now_ms, .. }
        | Command::EndSession { now_ms, .. }
        | Command::PublishWill { now_ms, .. }
        | Command::NodeDown { now_ms, .. }
        | Command::Subscribe { now_ms, .. } => *now_ms,
        Command::Publish { message, .. } => message.received_at_ms,
        _ => 0,
    }
}
