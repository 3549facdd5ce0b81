//! A raw MQTT connection that survives the broker dying under it: every read has its own
//! deadline and reports a closed or silent connection as a value instead of failing the test,
//! so that a test can kill the broker in the middle of a flow and then count what it got.
//! Packets go through Keel's own codec, like [`super::raw`].

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use keel::codec::{ConnAck, Connect, Decoder, Packet, Protocol, PACKET_SIZE_LIMIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest a TCP connect or a single write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What one read from the broker gave.
// A read's result is matched at once, never stored in bulk: the size of a PUBLISH is fine.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Recv {
    Packet(Packet),
    /// The broker closed or reset the connection (a partial packet left over is dropped:
    /// a killed broker may die half-way through a write).
    Closed,
    /// Nothing arrived within the read's deadline.
    Quiet,
}

/// One connection to the broker.
pub struct Link {
    stream: TcpStream,
    decoder: Decoder,
    read_buf: BytesMut,
    protocol: Protocol,
    /// Set once a read or write found the connection gone; later reads return
    /// [`Recv::Closed`] at once.
    closed: bool,
}

impl Link {
    /// Opens a TCP connection that will speak `protocol` (nothing is sent yet).
    pub async fn open(addr: SocketAddr, protocol: Protocol) -> io::Result<Link> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TCP connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Link {
            stream,
            decoder: Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT),
            read_buf: BytesMut::new(),
            protocol,
            closed: false,
        })
    }

    /// Opens a connection, sends `connect` and returns the CONNACK (whatever its reason
    /// code), or why there was none.
    pub async fn connect(addr: SocketAddr, connect: Connect) -> Result<(Link, ConnAck), String> {
        let mut link = Link::open(addr, connect.protocol)
            .await
            .map_err(|error| format!("TCP connect to {addr}: {error}"))?;
        if !link.send(&Packet::Connect(Box::new(connect))).await {
            return Err("the connection closed before CONNECT was written".into());
        }
        match link.recv(IO_TIMEOUT).await {
            Recv::Packet(Packet::ConnAck(connack)) => Ok((link, connack)),
            other => Err(format!("expected CONNACK, got {other:?}")),
        }
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Encodes and sends one packet; `false` if the connection is gone.
    pub async fn send(&mut self, packet: &Packet) -> bool {
        let mut buf = BytesMut::new();
        packet
            .encode(self.protocol, &mut buf)
            .unwrap_or_else(|e| panic!("cannot encode {packet:?}: {e}"));
        self.send_bytes(&buf).await
    }

    /// Sends bytes as they are; `false` if the connection is gone.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> bool {
        if self.closed {
            return false;
        }
        let written = tokio::time::timeout(IO_TIMEOUT, self.stream.write_all(bytes)).await;
        if !matches!(written, Ok(Ok(()))) {
            self.closed = true;
        }
        !self.closed
    }

    /// The next packet from the broker, waiting at most `quiet` for it.
    ///
    /// Bytes that do not decode fail the test: whatever else happens, a broker must not
    /// write garbage.
    pub async fn recv(&mut self, quiet: Duration) -> Recv {
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            if let Some(packet) = self
                .decoder
                .decode(&mut self.read_buf)
                .unwrap_or_else(|e| panic!("broker sent bytes that do not decode: {e}"))
            {
                return Recv::Packet(packet);
            }
            if self.closed {
                return Recv::Closed;
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.read_buf)).await
            {
                Err(_) => return Recv::Quiet,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.closed = true;
                    self.read_buf.clear();
                    return Recv::Closed;
                }
                Ok(Ok(_)) => {}
            }
        }
    }
}
