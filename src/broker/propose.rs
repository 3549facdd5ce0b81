//! The one way the broker runs commands: at once on the local tier, through the log on the
//! durable one, with a [`Caller`] saying who asked and who waits for the outcome.

use crate::state::{ClientId, Command};

use super::core::Broker;
use super::proposal::{Completion, ConnId, Origin, Proposal, SessionFence, Ticket};
use super::types::{Effect, Tier};

/// Who asked for commands and who waits for them to take effect.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Caller<'a> {
    /// The session whose connection asked, for what only the connection holding that
    /// session may do: the commands are void if it has moved by the time they are applied
    /// (see [`Proposal::from`]).
    pub(super) session: Option<&'a ClientId>,
    /// The request answered once the commands are applied.
    pub(super) reply_to: Option<ReplyTo>,
}

/// A connection's request waiting for commands to be applied.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReplyTo {
    pub(super) conn: ConnId,
    pub(super) ticket: Ticket,
    /// Sessions of this node, off the log, that a publish already reached (see
    /// [`Origin::local_matched`]).
    pub(super) local_matched: u32,
}

impl<'a> Caller<'a> {
    /// Nobody waits and no session fences the commands (a subscriber's acknowledgement, a
    /// due expiry...): such proposals merge with their neighbours.
    pub(super) const NOBODY: Caller<'static> = Caller {
        session: None,
        reply_to: None,
    };

    /// The connection holding `client_id`'s session asks.
    pub(super) fn session(client_id: &'a ClientId) -> Caller<'a> {
        Caller {
            session: Some(client_id),
            reply_to: None,
        }
    }

    /// The request `ticket` of `conn` is answered once the commands are applied.
    pub(super) fn replying(self, conn: ConnId, ticket: Ticket) -> Caller<'a> {
        self.replying_after(conn, ticket, 0)
    }

    /// [`Caller::replying`] for a publish that already reached `local_matched` sessions
    /// of this node off the log.
    pub(super) fn replying_after(
        self,
        conn: ConnId,
        ticket: Ticket,
        local_matched: u32,
    ) -> Caller<'a> {
        Caller {
            reply_to: Some(ReplyTo {
                conn,
                ticket,
                local_matched,
            }),
            ..self
        }
    }
}

impl Broker {
    /// Runs commands on a tier: at once for local sessions (replying at once), through the
    /// log for durable ones (replying when they are applied, see
    /// [`Broker::apply_committed`]).
    pub(super) fn run(&mut self, tier: Tier, commands: Vec<Command>, caller: Caller<'_>) {
        match tier {
            Tier::Durable => self.propose(commands, caller),
            Tier::Local => {
                let mut completion = Completion::default();
                for command in commands {
                    let applied = self.apply_in(Tier::Local, command);
                    completion.matched += applied.matched;
                    completion.existed.extend(applied.existed);
                }
                if let Some(reply_to) = caller.reply_to {
                    self.reply(reply_to.conn, reply_to.ticket, completion);
                }
            }
        }
    }

    /// Queues commands for the log. Ones nobody waits for join the previous such proposal:
    /// one proposal per message would cost more than the command.
    fn propose(&mut self, commands: Vec<Command>, caller: Caller<'_>) {
        let origin = caller.reply_to.map(|reply_to| Origin {
            place: self.place,
            conn: reply_to.conn,
            ticket: reply_to.ticket,
            local_matched: reply_to.local_matched,
        });
        let proposal = Proposal {
            commands,
            origin,
            from: caller.session.map(|client_id| SessionFence {
                client_id: client_id.clone(),
                place: self.place,
            }),
        };
        if let Some(unmerged) = Proposal::merge_into(self.proposals.last_mut(), proposal) {
            self.proposals.push(unmerged);
        }
    }

    pub(super) fn reply(&mut self, conn: ConnId, ticket: Ticket, completion: Completion) {
        self.effects.push(Effect::Reply {
            conn,
            ticket,
            completion,
        });
    }
}
