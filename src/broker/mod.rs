//! The broker core: the session table of this node, the connections serving sessions and
//! the outbound QoS 1/2 windows, on top of the durable [`crate::state::State`].
//!
//! Pure: every method takes the current time and returns what to do ([`Effect`]s and
//! results); the shell (connection tasks) carries that out. Durable changes go through
//! [`crate::state::Command`]s, so a replicated log can be put under them.

mod core;

pub use self::core::{
    Broker, BrokerConfig, BrokerStats, ConnId, ConnectRequest, Delivery, Effect, PublishError,
    PublishOutcome,
};

#[cfg(test)]
mod tests;
