//! What the broker asks the replicated log to commit, and what it owes a connection once a
//! request is done.

use serde::{Deserialize, Serialize};

use crate::state::{named_number, ClientId, Command, Place};

named_number! {
    /// Identifies one network connection of this node. Never reused within one incarnation.
    /// Serialized as the bare number (`transparent`), in the log (inside an [`Origin`]) and in
    /// the connection trace.
    pub struct ConnId;
}

named_number! {
    /// Names a request of one connection whose reply waits for the broker (a PUBACK, SUBACK,
    /// CONNACK...). Chosen by the session, unique per connection. Serialized as the bare number
    /// (`transparent`).
    pub struct Ticket;
}

impl Ticket {
    /// Below every ticket a connection hands out: for a request that has no reply (a QoS 0
    /// publish), whose ticket is never answered nor owed.
    pub const UNOWED: Ticket = Ticket(0);
    /// The ticket a connection hands out first.
    pub const FIRST: Ticket = Ticket(1);

    /// The ticket handed out after this one.
    pub fn next(self) -> Ticket {
        Ticket(self.0 + 1)
    }
}

/// The session a proposal acts for and where the connection that asked was served: what
/// fences a takeover (see [`Proposal::from`]).
///
/// Part of the log format: serde writes a struct as its fields in order, the same bytes as
/// the tuple `(ClientId, Place)` this was before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFence {
    pub client_id: ClientId,
    /// The place of the connection that asked; the proposal is void unless the session is
    /// still served there when it is applied.
    pub place: Place,
}

/// Commands to commit together, in order, as one unit of the log. A proposal with an origin
/// is a client request: once it is applied, the node it came from replies to that
/// connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub commands: Vec<Command>,
    pub origin: Option<Origin>,
    /// The session and the place of the connection that asked, for what only the connection
    /// holding the session may do (publish, subscribe, release shared messages): if the
    /// session has moved elsewhere by the time the proposal is applied (taken over while it
    /// was on its way, or resent late after a timeout), the proposal is void. This is what
    /// fences a takeover: the old connection's last requests cannot land after the new one's.
    pub from: Option<SessionFence>,
}

/// Most commands a proposal gathers from proposals nobody waits for.
pub const MERGED_COMMANDS_MAX: usize = 256;

impl Proposal {
    /// Whether nobody waits for this proposal and no session fences it.
    pub fn is_fire_and_forget(&self) -> bool {
        self.origin.is_none() && self.from.is_none()
    }

    /// Adds `next` to `last`, the proposal queued just before it, when both are
    /// fire-and-forget (a subscriber's PUBACK, most often) and `last` has room: one proposal
    /// per message would cost more than its command, in the log and applying it, and the two
    /// would have been committed together anyway. Returns `next` when it stays on its own.
    /// The one rule of merging, for the broker's proposals and the proposer's queue alike.
    pub fn merge_into(last: Option<&mut Proposal>, next: Proposal) -> Option<Proposal> {
        match last {
            Some(last)
                if next.is_fire_and_forget()
                    && last.is_fire_and_forget()
                    && last.commands.len() < MERGED_COMMANDS_MAX =>
            {
                last.commands.extend(next.commands);
                None
            }
            _ => Some(next),
        }
    }
}

/// Where the reply to a proposal goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
///
/// Part of the log format: `place` is written as its node, then its incarnation, the same
/// bytes as the two `u64` fields `node` and `incarnation` this held before.
pub struct Origin {
    /// The node and its run that asked. The run matters: connection ids start again after a
    /// restart, and a proposal replayed from the log must not answer a new connection that
    /// reuses an id.
    pub place: Place,
    pub conn: ConnId,
    pub ticket: Ticket,
    /// Sessions of the origin node (not in the log) that the message already reached, for
    /// the "no matching subscribers" reason of the reply.
    pub local_matched: u32,
}

/// The result of a request, for the session to turn into its reply packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completion {
    /// CONNECT: the session was resumed.
    pub session_present: bool,
    /// PUBLISH: sessions the message reached.
    pub matched: usize,
    /// PUBLISH: sessions whose queue was full.
    pub dropped_queue_full: usize,
    /// PUBLISH: a QoS 2 resend of a packet id already routed.
    pub duplicate: bool,
    /// SUBSCRIBE / UNSUBSCRIBE / PUBREL: for each item, whether it existed before.
    pub existed: Vec<bool>,
}
