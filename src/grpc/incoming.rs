//! The server side's accept loop: a [`Listener`] turned into the stream of connections that
//! tonic's `serve_with_incoming` takes.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{self, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::net::{BoxStream, Listener};

/// How long the accept loop waits after a failed accept before it tries again. A failure is a
/// passing condition (the [`Listener`] contract), often "too many open files", which retrying
/// at once would only repeat in a hot loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One accepted peer connection: a [`BoxStream`] that tells tonic who is on the other end.
///
/// The connection info is tonic's [`TcpConnectInfo`], so a handler's
/// `request.remote_addr()` names the peer whichever [`Net`](crate::net::Net) accepted it.
pub struct PeerStream {
    /// The accepted bytes; reads and writes go straight through.
    stream: BoxStream,
    /// The peer's address, as the listener reported it.
    peer: SocketAddr,
    /// The listener's address, when it could say (it only fails on a broken socket).
    local: Option<SocketAddr>,
}

impl PeerStream {
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

impl Connected for PeerStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.local,
            remote_addr: Some(self.peer),
        }
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The connections `listener` accepts, for `Server::serve_with_incoming`.
///
/// The stream never ends and never yields an error (hence [`Infallible`]): a failed accept is
/// logged and retried after a short backoff, as the [`Listener`] contract asks. It stops when
/// the server drops it, which drops the listener and stops listening.
pub fn incoming<L: Listener>(
    listener: L,
) -> impl Stream<Item = Result<PeerStream, Infallible>> + Send + 'static {
    let local = listener.local_addr().ok();
    stream::unfold(listener, move |mut listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let accepted = PeerStream {
                        stream,
                        peer,
                        local,
                    };
                    return Some((Ok(accepted), listener));
                }
                Err(error) => {
                    tracing::warn!(%error, ?local, "grpc accept failed; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    })
}
