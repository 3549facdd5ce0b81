//! The per-connection protocol state machine: CONNECT, QoS flows at the edge, keep-alive,
//! topic aliases, packet size limits and reason codes (MQTT 3.1, 3.1.1 and 5.0).
//!
//! Pure: packets and `now_ms` in, packets out, with calls on the [`crate::broker::Broker`]
//! in between. No sockets, clocks or tasks.

mod alias;
mod auth;
mod config;
mod connection;

pub use auth::{
    AllowAll, AuthExchange, AuthFuture, AuthStep, Authenticator, Decided, PeerInfo, Permissions,
};
pub use config::SessionConfig;
pub use connection::Session;

#[cfg(test)]
mod takeover_tests;
#[cfg(test)]
mod tests;
