//! The server side's accept loop: a [`Listener`] turned into the stream of connections that
//! tonic's `serve_with_incoming` takes, each after its TLS handshake when the cluster runs
//! mutual TLS.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use futures_util::stream::{self, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, Semaphore};
use tonic::transport::server::Connected;

use super::tls::PeerTls;
use crate::net::{BoxStream, Listener};

/// How long the accept loop waits after a failed accept before it tries again. A failure is a
/// passing condition (the [`Listener`] contract), often "too many open files", which retrying
/// at once would only repeat in a hot loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Most TLS handshakes of peers run at once; further accepted connections wait for one to
/// finish, so a flood of connections that never handshake costs a bounded number of tasks.
const HANDSHAKES_MAX: usize = 64;

/// Who is on the other end of a peer connection: what a handler finds in its request's
/// extensions (`request.extensions().get::<PeerInfo>()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's address, as the listener reported it.
    pub remote_addr: SocketAddr,
    /// The listener's address, when it could say (it only fails on a broken socket).
    pub local_addr: Option<SocketAddr>,
    /// The node id the peer's verified certificate names; `None` without cluster TLS.
    pub node: Option<u64>,
}

/// One accepted peer connection: a [`BoxStream`] that tells tonic who is on the other end.
pub struct PeerStream {
    /// The accepted bytes (after TLS, when on); reads and writes go straight through.
    stream: BoxStream,
    info: PeerInfo,
}

impl PeerStream {
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.info.remote_addr
    }
}

impl Connected for PeerStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info
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

/// The connections `listener` accepts, for `Server::serve_with_incoming`: with `tls`, only
/// those whose handshake succeeded (handshakes run in tasks of their own, at most
/// [`HANDSHAKES_MAX`] at once, so one slow peer holds up no other).
///
/// The stream never ends and never yields an error (hence [`Infallible`]): a failed accept is
/// logged and retried after a short backoff, as the [`Listener`] contract asks. It stops when
/// the server drops it, which drops the listener and stops listening.
pub fn incoming<L: Listener>(
    listener: L,
    tls: Option<Arc<PeerTls>>,
) -> impl Stream<Item = Result<PeerStream, Infallible>> + Send + 'static {
    match tls {
        None => plain(listener).boxed(),
        Some(tls) => {
            let (tx, rx) = mpsc::channel(HANDSHAKES_MAX);
            tokio::spawn(handshakes(listener, tls, tx));
            stream::unfold(rx, |mut rx| async move {
                let accepted = rx.recv().await?;
                Some((Ok(accepted), rx))
            })
            .boxed()
        }
    }
}

/// Accepts from `listener` until `accepted`'s receiver is gone, handing each connection whose
/// handshake succeeds to it.
async fn handshakes<L: Listener>(
    mut listener: L,
    tls: Arc<PeerTls>,
    accepted: mpsc::Sender<PeerStream>,
) {
    let local = listener.local_addr().ok();
    let running = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    loop {
        let (stream, peer) = tokio::select! {
            next = listener.accept() => match next {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(%error, ?local, "grpc accept failed; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = accepted.closed() => return,
        };
        let Ok(permit) = running.clone().acquire_owned().await else {
            return;
        };
        let (tls, accepted) = (tls.clone(), accepted.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Ok((stream, node)) = tls.accept(stream, peer).await {
                let info = PeerInfo {
                    remote_addr: peer,
                    local_addr: local,
                    node: Some(node),
                };
                let _ = accepted.send(PeerStream { stream, info }).await;
            }
        });
    }
}

/// The connections `listener` accepts, as they are.
fn plain<L: Listener>(
    listener: L,
) -> impl Stream<Item = Result<PeerStream, Infallible>> + Send + 'static {
    let local = listener.local_addr().ok();
    stream::unfold(listener, move |mut listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let info = PeerInfo {
                        remote_addr: peer,
                        local_addr: local,
                        node: None,
                    };
                    return Some((Ok(PeerStream { stream, info }), listener));
                }
                Err(error) => {
                    tracing::warn!(%error, ?local, "grpc accept failed; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    })
}
