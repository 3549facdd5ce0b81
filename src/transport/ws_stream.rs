//! [`WsStream`]: a WebSocket connection seen as a plain byte stream, as MQTT needs it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::net::BoxStream;

/// An upgraded WebSocket connection as an `AsyncRead + AsyncWrite` byte stream.
///
/// MQTT over WebSocket carries the packet bytes in binary messages with no alignment: a packet
/// may span several messages and a message may carry several packets (MQTT §6). So reading
/// yields the concatenated payloads of the binary messages, and the codec above finds the
/// packet boundaries as it does on TCP.
///
/// - A text message is a protocol error [MQTT-6.0.0-1]: the connection is closed with
///   close code 1003 and the read fails with `InvalidData`.
/// - Ping and pong are answered by tungstenite; a close from the client reads as end of
///   stream (after the close reply is sent), and so does a TCP close without one.
/// - Each write becomes one binary message of at most `message_size_max` bytes; flush and
///   shutdown (which sends a close frame) reach the socket.
///
/// Memory is bounded: the read side holds at most one message payload (at most the
/// configured `message_size_max`), the write side tungstenite's bounded write buffer.
pub struct WsStream {
    /// The WebSocket; its `Stream` gives received messages, its `Sink` takes messages to send.
    inner: WebSocketStream<BoxStream>,
    /// The unread rest of the last binary payload. Only ever one message's payload: the next
    /// message is read when this is empty.
    pending: Bytes,
    /// The largest payload one write sends, so outgoing messages respect the limit we impose
    /// on incoming ones.
    message_size_max: usize,
    /// What the read side has seen that ends reading.
    read_state: ReadState,
}

/// The read side's progress towards its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadState {
    /// Reading binary messages.
    Open,
    /// The client broke the protocol: send a close frame, then fail the read.
    Rejecting { close_queued: bool },
    /// The protocol error has been reported; later reads fail too.
    Rejected,
    /// The client closed (or the connection ended): reads return end of stream.
    Eof,
}

impl WsStream {
    pub(super) fn new(inner: WebSocketStream<BoxStream>, message_size_max: usize) -> WsStream {
        assert!(message_size_max > 0, "a websocket message must hold a byte");
        WsStream {
            inner,
            pending: Bytes::new(),
            message_size_max,
            read_state: ReadState::Open,
        }
    }

    /// Sends a close frame with code 1003 (unsupported data) and flushes it. Errors are not
    /// reported: this runs only on the way to failing the connection anyway.
    fn poll_send_close(&mut self, cx: &mut Context<'_>, close_queued: bool) -> Poll<()> {
        if !close_queued {
            if ready!(Pin::new(&mut self.inner).poll_ready(cx)).is_ok() {
                let frame = CloseFrame {
                    code: CloseCode::Unsupported,
                    reason: "MQTT needs binary frames".into(),
                };
                let _ = Pin::new(&mut self.inner).start_send(Message::Close(Some(frame)));
            }
            self.read_state = ReadState::Rejecting { close_queued: true };
        }
        let _ = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        Poll::Ready(())
    }
}

fn protocol_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "[MQTT-6.0.0-1] websocket text message: MQTT must be sent in binary messages",
    )
}

/// An I/O error for a WebSocket error.
fn to_io(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::SendAfterClosing) => {
            io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed")
        }
        other => io::Error::new(io::ErrorKind::InvalidData, format!("websocket: {other}")),
    }
}

impl AsyncRead for WsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.read_state {
                ReadState::Open => {}
                ReadState::Rejecting { close_queued } => {
                    ready!(this.poll_send_close(cx, close_queued));
                    this.read_state = ReadState::Rejected;
                    return Poll::Ready(Err(protocol_error()));
                }
                ReadState::Rejected => return Poll::Ready(Err(protocol_error())),
                ReadState::Eof => return Poll::Ready(Ok(())),
            }
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            // `poll_next` keeps being polled after a close arrives, until it ends: that is
            // what sends tungstenite's close reply before reads report end of stream.
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(Message::Binary(payload))) => this.pending = payload,
                Some(Ok(Message::Text(_))) => {
                    this.read_state = ReadState::Rejecting {
                        close_queued: false,
                    }
                }
                // Answered by tungstenite, or (a close) followed by the end of the stream.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_))) => {}
                // Never produced by reading.
                Some(Ok(Message::Frame(_))) => {}
                None => this.read_state = ReadState::Eof,
                // A TCP close without a close frame ends the stream, as a TCP EOF would.
                Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                    this.read_state = ReadState::Eof
                }
                Some(Err(error)) => return Poll::Ready(Err(to_io(error))),
            }
        }
    }
}

impl AsyncWrite for WsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Waiting for readiness drains tungstenite's write buffer first when it is full,
        // which is what keeps that buffer bounded.
        ready!(Pin::new(&mut this.inner).poll_ready(cx)).map_err(to_io)?;
        let n = buf.len().min(this.message_size_max);
        let message = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
        Pin::new(&mut this.inner)
            .start_send(message)
            .map_err(to_io)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes the buffered frames to the socket and flushes it (a TLS stream under a WSS
        // connection writes its records then).
        Pin::new(&mut self.get_mut().inner)
            .poll_flush(cx)
            .map_err(to_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Sends a close frame (once) and flushes everything before it.
        ready!(Pin::new(&mut this.inner).poll_close(cx)).map_err(to_io)?;
        // Then closes the write side of the socket (or TLS session) beneath.
        Pin::new(this.inner.get_mut()).poll_shutdown(cx)
    }
}
