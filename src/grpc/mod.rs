//! gRPC between the nodes of a cluster: the `Cluster` service of `proto/cluster.proto`, a
//! client [`Channel`](tonic::transport::Channel) that dials through [`Net`](crate::net::Net),
//! and a server that accepts from a [`Listener`](crate::net::Listener).
//!
//! Because both ends go through the network seam, the same code runs on real TCP
//! ([`TokioNet`](crate::net::TokioNet)) and inside the deterministic simulator (`SimNet`,
//! feature `sim`). This module is plumbing only: it moves opaque byte blobs (postcard, encoded
//! by `cluster`) and knows nothing of Raft, sessions or publishes.
//!
//! # Deadlines
//!
//! Every call needs one (docs/design.md §4): on a partitioned link turmoil drops bytes and the
//! connection never recovers, and a connect to a crashed host never completes. Three layers
//! provide them, and callers rely on the last:
//!
//! - [`ChannelConfig::connect_timeout`] bounds each connection attempt, and
//!   [`ChannelConfig::request_timeout`] bounds each call once it is on a connection;
//! - HTTP/2 keep-alive pings ([`ChannelConfig::keep_alive_interval`] and
//!   [`ChannelConfig::keep_alive_timeout`], and the same on the server) close a connection whose
//!   peer stopped answering, so the channel dials a fresh one for the next call, at most once
//!   per [`ChannelConfig::reconnect_backoff`];
//! - the caller wraps each call in [`with_deadline`] (or `tokio::time::timeout`), because a
//!   call that waits for a connection to be dialled is not covered by the request timeout.

mod channel;
mod error;
mod incoming;
pub mod proto;
mod server;
mod tls;

#[cfg(test)]
mod tests;

#[cfg(all(test, feature = "sim"))]
mod sim_tests;

pub use channel::{cluster_client, connect, connect_lazy, ChannelConfig, PeerTarget};
pub use error::{with_deadline, GrpcError};
pub use incoming::{incoming, PeerInfo, PeerStream};
pub use server::{serve, ServerConfig};
pub use tls::{PeerRefusals, PeerTls, PeerTlsError, PeerTlsFiles, Refusal, PEER_HANDSHAKE_TIMEOUT};
