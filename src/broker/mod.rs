//! The broker core: the session table of this node, the connections serving sessions and
//! the outbound QoS 1/2 windows, on top of the replicated [`crate::state::State`] (durable
//! sessions) and a local one (sessions that end with their connection).
//!
//! Pure: every method takes the current time and returns what to do ([`Effect`]s, replies
//! and [`Proposal`]s for the log); the shell (connection tasks, the Raft driver) carries that
//! out and feeds committed proposals back through [`Broker::apply_committed`].

mod apply;
mod core;
mod freshness;
mod lifecycle;
mod outbound;
mod pending;
mod proposal;
mod propose;
mod publish;
mod subscribe;
mod types;
mod window;

pub use self::core::Broker;
pub use self::proposal::{
    Completion, ConnId, Origin, Proposal, SessionFence, Ticket, MERGED_COMMANDS_MAX,
};
pub use self::types::{
    BrokerConfig, BrokerStats, ConnectRequest, Delivery, Effect, LimitStats, PubRecOutcome,
    PublishError, Tier,
};

#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod tests;
