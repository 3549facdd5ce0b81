//! [`SimNet`]: the [`Net`] of the deterministic simulator, on `turmoil::net` sockets.

use std::io;
use std::net::SocketAddr;

use turmoil::net::{TcpListener, TcpStream};

use super::{BoxStream, Listener, Net};

/// Simulated TCP through turmoil. Use it only inside a turmoil host (a closure given to
/// `turmoil::Sim::host` or `client`): turmoil's sockets find their simulated host through a
/// thread-local and panic outside one.
///
/// Addresses name simulated hosts (`"broker:1883"`); a listener binds `"0.0.0.0:PORT"`.
/// turmoil's TCP has no Nagle's algorithm to turn off, and a connect to a crashed host never
/// completes: callers put a deadline on it, as the [`Net`] contract says.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimNet;

/// A listening `turmoil::net::TcpListener`.
pub struct SimListener {
    inner: TcpListener,
}

impl Net for SimNet {
    type Listener = SimListener;

    async fn bind(&self, addr: &str) -> io::Result<SimListener> {
        let inner = TcpListener::bind(addr).await?;
        Ok(SimListener { inner })
    }

    async fn connect(&self, addr: &str) -> io::Result<BoxStream> {
        let stream = TcpStream::connect(addr).await?;
        Ok(Box::new(stream))
    }
}

impl Listener for SimListener {
    async fn accept(&mut self) -> io::Result<(BoxStream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        Ok((Box::new(stream), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::net::echo_test;

    #[test]
    fn bind_connect_and_echo_between_two_simulated_hosts() {
        let mut sim = turmoil::Builder::new().rng_seed(7).build();
        sim.host("server", || async {
            let listener = SimNet.bind("0.0.0.0:1883").await?;
            assert_eq!(listener.local_addr()?.port(), 1883);
            echo_test::serve_echo_once(listener, 5).await?;
            Ok(())
        });
        sim.client("client", async {
            let echo = echo_test::echo(&SimNet, "server:1883", b"hello");
            let echoed = tokio::time::timeout(Duration::from_secs(5), echo).await??;
            assert_eq!(echoed, b"hello");
            Ok(())
        });
        sim.run().unwrap();
    }

    #[test]
    fn connect_to_a_crashed_host_hangs_until_the_caller_deadline() {
        let mut sim = turmoil::Builder::new().rng_seed(7).build();
        sim.host("server", || async {
            let mut listener = SimNet.bind("0.0.0.0:1883").await?;
            loop {
                listener.accept().await?;
            }
        });
        sim.client("client", async {
            // The server crashes meanwhile (below).
            tokio::time::sleep(Duration::from_millis(10)).await;
            let connect = SimNet.connect("server:1883");
            let result = tokio::time::timeout(Duration::from_secs(1), connect).await;
            assert!(
                result.is_err(),
                "connect to a crashed host must not complete"
            );
            Ok(())
        });
        // One step starts both hosts and binds the listener; then the server crashes.
        sim.step().unwrap();
        sim.crash("server");
        sim.run().unwrap();
    }
}
