//! Test helpers written once against [`Net`] and run on every implementation: the same
//! code on real sockets and in the simulator, which is the point of the seam.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Listener, Net};

/// Accepts one connection on `listener` and echoes back the first `len` bytes it receives.
pub(super) async fn serve_echo_once<L: Listener>(mut listener: L, len: usize) -> io::Result<()> {
    let (mut stream, _peer) = listener.accept().await?;
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    stream.write_all(&buf).await?;
    stream.flush().await
}

/// Connects to `addr`, sends `message` and returns what comes back.
pub(super) async fn echo<N: Net>(net: &N, addr: &str, message: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = net.connect(addr).await?;
    stream.write_all(message).await?;
    stream.flush().await?;
    let mut echoed = vec![0u8; message.len()];
    stream.read_exact(&mut echoed).await?;
    Ok(echoed)
}
