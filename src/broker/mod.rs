//! The broker core: the session table of this node, the connections serving sessions and
//! the outbound QoS 1/2 windows, on top of the replicated [`crate::state::State`] (durable
//! sessions) and a local one (sessions that end with their connection).
//!
//! Pure: every method takes the current time and returns what to do ([`Effect`]s, replies
//! and [`Proposal`]s for the log); the shell (connection tasks, the Raft driver) carries that
//! out and feeds committed proposals back through [`Broker::apply_committed`].

mod core;
mod pending;
mod proposal;

pub use self::core::{
    Broker, BrokerConfig, BrokerStats, ConnectRequest, Delivery, Effect, LimitStats, PubRecOutcome,
    PublishError, Tier,
};
pub use self::proposal::{Completion, ConnId, Origin, Proposal, Ticket};

#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod tests;
