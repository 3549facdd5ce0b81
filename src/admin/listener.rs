//! A [`Listener`] of the `Net` seam as axum's listener.

use std::net::SocketAddr;
use std::time::Duration;

use crate::net::{BoxStream, Listener};

/// Adapts a listener of the node's `Net` for `axum::serve`. Accept errors are logged and
/// retried after a pause, as the [`Listener`] contract says they pass.
pub struct AdminListener<L: Listener> {
    inner: L,
}

impl<L: Listener> AdminListener<L> {
    pub fn new(inner: L) -> AdminListener<L> {
        AdminListener { inner }
    }
}

impl<L: Listener> axum::serve::Listener for AdminListener<L> {
    type Io = BoxStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (BoxStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok(accepted) => return accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
