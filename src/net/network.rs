//! The network seam: the [`Net`] and [`Listener`] traits.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use super::BoxStream;

/// Opens listeners and outgoing connections. Implemented by [`TokioNet`](super::TokioNet) for
/// real sockets and by `SimNet` (feature `sim`) for the simulator's network.
///
/// # Contract
///
/// - `addr` is `"host:port"`: an IP address (`"127.0.0.1:1883"`, `"[::1]:1883"`) or, for
///   [`connect`](Net::connect), a host name (`"localhost:1883"`; in the simulator, the name of a
///   simulated host such as `"broker:1883"`). Port 0 in [`bind`](Net::bind) picks a free port;
///   ask the listener's [`local_addr`](Listener::local_addr) for it. The simulator only binds
///   the unspecified address (`"0.0.0.0:PORT"`) or loopback.
/// - [`connect`](Net::connect) has **no deadline of its own**. Callers wrap it in
///   `tokio::time::timeout`: in the simulator a connect to a crashed or partitioned host never
///   completes (there is no RST), and on real networks a SYN to a dead host takes minutes to
///   fail.
/// - Streams are returned ready for low-latency use: implementations disable Nagle's algorithm
///   (`TCP_NODELAY`) where that exists, because MQTT sends many small packets and waits for
///   their acknowledgements.
/// - A `Net` is a cheap handle: clone it into every task that opens connections.
pub trait Net: Clone + Send + Sync + 'static {
    /// What [`bind`](Net::bind) returns.
    type Listener: Listener;

    /// Starts listening on `addr`.
    fn bind(&self, addr: &str) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// Opens a connection to `addr`. Has no deadline: see the trait's contract.
    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<BoxStream>> + Send;
}

/// A bound listening socket.
///
/// # Contract
///
/// An error from [`accept`](Listener::accept) concerns one incoming connection or a passing
/// condition (for example too many open files); the listener stays usable, so accept loops
/// log it, back off briefly and keep accepting rather than stop. Dropping the listener stops
/// listening; connections already accepted are unaffected.
pub trait Listener: Send + 'static {
    /// Waits for the next incoming connection; returns its stream and the peer's address.
    fn accept(&mut self) -> impl Future<Output = io::Result<(BoxStream, SocketAddr)>> + Send;

    /// The address this listener is bound to (with the real port when bound to port 0).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}
