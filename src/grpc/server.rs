//! The server side: the `Cluster` service served on a [`Listener`] with the settings that
//! keep dead links from piling up.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Server;

use super::incoming::incoming;
use super::proto::cluster_server::{Cluster, ClusterServer};
use super::tls::PeerTls;
use super::GrpcError;
use crate::net::Listener;

/// How the cluster server times out calls and notices dead peers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The longest a handler may run; a call past it is answered `Cancelled`.
    pub request_timeout: Duration,
    /// How often an HTTP/2 PING checks that a connected peer still answers. A partition
    /// leaves the server's side of the connection open but dead; the ping closes it so its
    /// streams and buffers are freed.
    pub keep_alive_interval: Duration,
    /// How long to wait for a PING's acknowledgement before closing the connection.
    pub keep_alive_timeout: Duration,
    /// The largest message the server accepts or sends (match the clients'
    /// [`ChannelConfig::message_size_max`](super::ChannelConfig::message_size_max)).
    pub message_size_max: usize,
    /// How many calls one connection may have in flight at once.
    pub streams_per_connection_max: u32,
    /// Mutual TLS with the cluster's CA; `None` serves plaintext (`[cluster] insecure`).
    pub tls: Option<Arc<PeerTls>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            request_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(1),
            keep_alive_timeout: Duration::from_secs(2),
            message_size_max: 16 * 1024 * 1024,
            streams_per_connection_max: 1024,
            tls: None,
        }
    }
}

/// Serves `service` on the connections `listener` accepts until `shutdown` completes, then
/// stops accepting and waits for the open connections to finish.
///
/// A connection that fails affects only itself; this returns an error only when the server
/// as a whole fails.
pub async fn serve<L, S, F>(
    listener: L,
    service: S,
    config: &ServerConfig,
    shutdown: F,
) -> Result<(), GrpcError>
where
    L: Listener,
    S: Cluster,
    F: Future<Output = ()>,
{
    let service = ClusterServer::new(service)
        .max_decoding_message_size(config.message_size_max)
        .max_encoding_message_size(config.message_size_max);
    Server::builder()
        .timeout(config.request_timeout)
        .http2_keepalive_interval(Some(config.keep_alive_interval))
        .http2_keepalive_timeout(Some(config.keep_alive_timeout))
        .max_concurrent_streams(Some(config.streams_per_connection_max))
        .serve_with_incoming_shutdown(service, incoming(listener, config.tls.clone()), shutdown)
        .await
        .map_err(GrpcError::Serve)
}
