//! The client side: a tonic [`Channel`] that dials its peer through [`Net`], so it runs on
//! real TCP and in the simulator alike.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::proto::cluster_client::ClusterClient;
use super::tls::PeerTls;
use super::GrpcError;
use crate::net::{BoxStream, Net};

/// How a channel to a peer dials, times out and notices a dead link.
///
/// The defaults suit a cluster on one network: a few seconds to connect, and a dead peer
/// noticed within `keep_alive_interval + keep_alive_timeout` (3 s) even when the link is idle.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// The longest one connection attempt may take. In the simulator a connect to a crashed
    /// or partitioned host never completes; on real networks a SYN to a dead host takes
    /// minutes to fail.
    pub connect_timeout: Duration,
    /// The longest one call may take once it is on a connection (tonic's `grpc-timeout`).
    /// Callers still wrap calls in [`with_deadline`](super::with_deadline): this one does not
    /// cover the wait for a connection to be dialled.
    pub request_timeout: Duration,
    /// How often an HTTP/2 PING is sent to check that the peer still answers, with or without
    /// calls in flight. A partitioned link drops bytes without closing the connection, so
    /// without pings the channel would keep sending into a dead connection.
    pub keep_alive_interval: Duration,
    /// How long to wait for a PING's acknowledgement before closing the connection; the
    /// channel dials a new one for the next call.
    pub keep_alive_timeout: Duration,
    /// How long a failed dial is held before it is reported. tonic's channel dials again as
    /// soon as a call finds it disconnected and has no backoff of its own, and a refused
    /// connection fails at once (on real TCP when the peer is up but not listening, in the
    /// simulator across a partition), so without this pause a caller that retries would
    /// spin. With it, a channel dials its peer at most once per `reconnect_backoff` plus the
    /// dial's own time, whatever its callers do.
    pub reconnect_backoff: Duration,
    /// The largest message this client accepts or sends (a Raft snapshot chunk is the
    /// largest). The server has its own limit in [`ServerConfig`](super::ServerConfig).
    pub message_size_max: usize,
    /// How many calls may wait in the channel's queue for its connection at once; further
    /// calls wait for room (their deadline still applies) rather than queue without bound.
    pub pending_calls_max: usize,
    /// Mutual TLS with the peer; `None` dials plaintext (`[cluster] insecure`).
    pub tls: Option<PeerTarget>,
}

/// The TLS of one channel: the node's cluster TLS, and the node the peer must be.
#[derive(Debug, Clone)]
pub struct PeerTarget {
    pub tls: Arc<PeerTls>,
    /// The node id the peer's certificate must name; `None`: any node of the cluster CA
    /// (a joining node dialling the member it was told of).
    pub node: Option<u64>,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(1),
            keep_alive_timeout: Duration::from_secs(2),
            reconnect_backoff: Duration::from_millis(200),
            message_size_max: 16 * 1024 * 1024,
            pending_calls_max: 1024,
            tls: None,
        }
    }
}

/// Opens a channel to `addr` (`"host:port"`) and waits for its first connection.
///
/// Fails with [`GrpcError::Connect`] when that connection cannot be made within
/// `config.connect_timeout` (reported after the reconnect backoff). Once connected, the channel reconnects by itself: a call after
/// the connection broke dials a new one (the call that finds the connection broken may fail).
pub async fn connect<N: Net>(
    net: N,
    addr: String,
    config: &ChannelConfig,
) -> Result<Channel, GrpcError> {
    let endpoint = endpoint(&addr, config)?;
    let connector = connector(net, addr.clone(), config);
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|source| GrpcError::Connect { addr, source })
}

/// Makes a channel to `addr` that dials on its first call, and again after each broken
/// connection. Fails only when `addr` makes no URI. What Raft and forwarding use: a peer
/// that is down when the node starts must not stop it from starting.
///
/// Must be called inside a tokio runtime (in the simulator, inside a host): the channel
/// spawns the task that owns its connection.
pub fn connect_lazy<N: Net>(
    net: N,
    addr: String,
    config: &ChannelConfig,
) -> Result<Channel, GrpcError> {
    let endpoint = endpoint(&addr, config)?;
    let connector = connector(net, addr, config);
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// A `Cluster` client on `channel` with `config`'s message size limit. Cheap: clone the
/// channel into as many clients as there are tasks that call the peer.
pub fn cluster_client(channel: Channel, config: &ChannelConfig) -> ClusterClient<Channel> {
    ClusterClient::new(channel)
        .max_decoding_message_size(config.message_size_max)
        .max_encoding_message_size(config.message_size_max)
}

/// The endpoint for `addr` with every setting of `config`. The URI is only a name for HTTP/2's
/// `:authority`: the connector dials `addr` through [`Net`] and ignores it.
fn endpoint(addr: &str, config: &ChannelConfig) -> Result<Endpoint, GrpcError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|source| {
        GrpcError::InvalidAddress {
            addr: addr.to_owned(),
            source,
        }
    })?;
    // The connector enforces `connect_timeout` itself and then holds a failure for
    // `reconnect_backoff`; tonic's own connect timeout is the outer net over both, so it must
    // not cut the backoff short.
    Ok(endpoint
        .connect_timeout(config.connect_timeout + config.reconnect_backoff)
        .timeout(config.request_timeout)
        .http2_keep_alive_interval(config.keep_alive_interval)
        .keep_alive_timeout(config.keep_alive_timeout)
        .keep_alive_while_idle(true)
        .buffer_size(config.pending_calls_max))
}

/// The tower service tonic calls to open each connection: `net.connect(addr)` under the
/// connect timeout, the stream wrapped for hyper, a failure held for the reconnect backoff.
///
/// tonic applies the endpoint's connect timeout too (see [`endpoint`]); this one is kept so
/// that the connector keeps the [`Net`] contract (every connect has a deadline) by itself.
fn connector<N: Net>(
    net: N,
    addr: String,
    config: &ChannelConfig,
) -> impl tower::Service<Uri, Response = TokioIo<BoxStream>, Error = io::Error, Future: Send>
       + Send
       + 'static {
    let connect_timeout = config.connect_timeout;
    let reconnect_backoff = config.reconnect_backoff;
    let tls = config.tls.clone();
    tower::service_fn(move |_uri: Uri| {
        let net = net.clone();
        let addr = addr.clone();
        let tls = tls.clone();
        async move {
            let dial = async {
                let stream = net.connect(&addr).await?;
                match &tls {
                    Some(peer) => peer.tls.connect(stream, &addr, peer.node).await,
                    None => Ok(stream),
                }
            };
            let error = match tokio::time::timeout(connect_timeout, dial).await {
                Ok(Ok(stream)) => return Ok(TokioIo::new(stream)),
                Ok(Err(error)) => error,
                Err(_elapsed) => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {addr} timed out after {connect_timeout:?}"),
                ),
            };
            tracing::debug!(%addr, %error, "grpc dial failed");
            tokio::time::sleep(reconnect_backoff).await;
            Err(error)
        }
    })
}
