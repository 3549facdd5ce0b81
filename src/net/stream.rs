//! The byte stream every transport hands to a connection task: [`Stream`] and [`BoxStream`].

use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional byte stream: a TCP connection, a TLS session over one, or a WebSocket
/// carrying MQTT in binary frames.
///
/// Connection tasks see only this, so they do not know (or care) which transport or which
/// [`Net`](super::Net) implementation produced the bytes. Implemented for every type with the
/// right bounds.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T> Stream for T where T: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

/// A type-erased [`Stream`]; what [`Net`](super::Net) and the transports return.
///
/// One allocation per connection buys one connection-task type for every transport and for
/// both the real and the simulated network.
pub type BoxStream = Box<dyn Stream>;
