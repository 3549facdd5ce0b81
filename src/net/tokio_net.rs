//! [`TokioNet`]: the [`Net`] of production, on `tokio::net` sockets.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

use super::{BoxStream, Listener, Net};

/// Real TCP through `tokio::net`. Sets `TCP_NODELAY` on every accepted and connected stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioNet;

/// A listening `tokio::net::TcpListener`.
#[derive(Debug)]
pub struct TokioListener {
    inner: TcpListener,
}

impl Net for TokioNet {
    type Listener = TokioListener;

    async fn bind(&self, addr: &str) -> io::Result<TokioListener> {
        let inner = TcpListener::bind(addr).await?;
        Ok(TokioListener { inner })
    }

    async fn connect(&self, addr: &str) -> io::Result<BoxStream> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Box::new(stream))
    }
}

impl Listener for TokioListener {
    async fn accept(&mut self) -> io::Result<(BoxStream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        // Failing to set the option means the socket is already broken (the peer reset it
        // between accept and here); its first read or write reports that to the connection
        // task, so it is not worth failing `accept` (which accept loops treat as a reason to
        // back off) for it.
        let _ = stream.set_nodelay(true);
        Ok((Box::new(stream), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::echo_test;

    #[tokio::test]
    async fn bind_connect_and_echo_over_loopback() {
        let net = TokioNet;
        let listener = net.bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert_ne!(addr.port(), 0, "binding port 0 reports the port picked");

        let server = tokio::spawn(echo_test::serve_echo_once(listener, 5));
        let echoed = echo_test::echo(&net, &addr.to_string(), b"hello").await;
        assert_eq!(echoed.unwrap(), b"hello");
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn connect_to_a_closed_port_fails() {
        let net = TokioNet;
        // Bind and drop to find a port nobody listens on.
        let listener = net.bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let result = net.connect(&addr.to_string()).await;
        assert!(result.is_err());
    }

    #[tokio::test]
    async fn bind_rejects_a_malformed_address() {
        let result = TokioNet.bind("not an address").await;
        assert!(result.is_err());
    }
}
