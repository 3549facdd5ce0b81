//! One load-generator MQTT connection: a tokio `TcpStream`, Keel's codec, a write buffer that
//! batches many packets per `write` call and a read buffer reused across reads.
//!
//! The hot loops in `publisher` and `subscriber` drive it without blocking: through
//! [`Conn::io`] they wait in one `tokio::select!` for bytes to read or room to write (plus
//! their timers), so that reading and writing on one connection never wait for each other.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use keel::codec::{
    Connect, ConnectProperties, DecodeError, Decoder, Disconnect, EncodeError, MqttString, Packet,
    PacketId, Protocol, QoS, ReasonCode, Subscribe, SubscribeProperties, SubscriptionOptions,
    TopicFilter,
};

/// Largest packet the load generator accepts from a broker.
const PACKET_SIZE_MAX: usize = 1 << 20;

/// Spare room made in the read buffer before each read by a busy connection: one read takes
/// up to this much.
pub const READ_CHUNK_BUSY: usize = 64 * 1024;

/// The same for an idle connection, which only ever reads a PINGRESP: ten thousand of them
/// must not hold 64 KiB each.
pub const READ_CHUNK_IDLE: usize = 64;

/// How long the CONNECT/CONNACK and SUBSCRIBE/SUBACK exchanges may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a connection failed. Any of these ends that client's part in the run.
#[derive(Debug, Error)]
pub enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("broker sent a packet that does not decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("could not encode a packet: {0}")]
    Encode(#[from] EncodeError),
    #[error("broker refused the connection: {0:?}")]
    Refused(ReasonCode),
    #[error("broker granted {granted:?} to a subscription asking for QoS {asked}")]
    SubscriptionRefused { asked: u8, granted: ReasonCode },
    #[error("expected {expected}, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("broker closed the connection")]
    Closed,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A connected, CONNACKed MQTT client connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// Fixed at CONNECT; every packet is encoded and decoded in it.
    protocol: Protocol,
    decoder: Decoder,
    /// Bytes read and not yet decoded. Decoded packets are split off as shared `Bytes`; once
    /// the caller drops them, `reserve` reclaims the same allocation for the next read.
    read_buf: BytesMut,
    /// Encoded packets not yet written. Callers append many packets, then flush once.
    write_buf: BytesMut,
    /// The broker's Receive Maximum (MQTT 5), else 65535: how many QoS 1/2 publishes it
    /// accepts in flight from us.
    server_receive_max: u16,
    /// Spare room made in `read_buf` before each read.
    read_chunk: usize,
}

impl Conn {
    /// Connects, sends CONNECT and waits for a successful CONNACK. With `session_expiry`
    /// the session is persistent (MQTT 3: clean session 0; MQTT 5: that Session Expiry
    /// Interval), otherwise clean.
    pub async fn connect(
        addr: SocketAddr,
        protocol: Protocol,
        client_id: &str,
        keep_alive_secs: u16,
        read_chunk: usize,
        session_expiry: Option<u32>,
    ) -> Result<Conn, ConnError> {
        let stream = with_timeout(TcpStream::connect(addr)).await??;
        // Small packets must not wait for Nagle: the write buffer already batches them.
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            protocol,
            decoder: Decoder::with_protocol(protocol, PACKET_SIZE_MAX),
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            server_receive_max: u16::MAX,
            read_chunk,
        };
        let mut properties = ConnectProperties::default();
        if protocol.is_v5() {
            properties.session_expiry_interval = session_expiry;
        }
        let connect = Connect {
            protocol,
            clean_start: session_expiry.is_none(),
            keep_alive: keep_alive_secs,
            properties,
            client_id: MqttString::new(client_id).map_err(ConnError::Decode)?,
            will: None,
            username: None,
            password: None,
        };
        conn.queue(&Packet::Connect(Box::new(connect)))?;
        with_timeout(conn.flush()).await??;
        match with_timeout(conn.recv()).await?? {
            Packet::ConnAck(ack) if !ack.reason_code.is_error() => {
                if let Some(max) = ack.properties.receive_maximum {
                    conn.server_receive_max = max.get();
                }
                Ok(conn)
            }
            Packet::ConnAck(ack) => Err(ConnError::Refused(ack.reason_code)),
            other => Err(unexpected("CONNACK", &other)),
        }
    }

    /// Subscribes to one filter and waits for a SUBACK granting the QoS asked for: a
    /// downgraded subscription would make the QoS figures meaningless.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), ConnError> {
        let subscribe = Subscribe {
            packet_id: PacketId::MIN,
            properties: SubscribeProperties::default(),
            filters: vec![(
                TopicFilter::new(filter).map_err(ConnError::Decode)?,
                SubscriptionOptions::new(qos),
            )],
        };
        self.queue(&Packet::Subscribe(subscribe))?;
        with_timeout(self.flush()).await??;
        match with_timeout(self.recv()).await?? {
            Packet::SubAck(ack) => match ack.reason_codes.as_slice() {
                [code] if code.as_u8() == qos as u8 => Ok(()),
                [code] => Err(ConnError::SubscriptionRefused {
                    asked: qos as u8,
                    granted: *code,
                }),
                _ => Err(ConnError::Unexpected {
                    expected: "one SUBACK reason code",
                    got: "several",
                }),
            },
            other => Err(unexpected("SUBACK", &other)),
        }
    }

    pub fn server_receive_max(&self) -> u16 {
        self.server_receive_max
    }

    /// The halves of the socket and the read buffer, borrowed apart so that one
    /// `tokio::select!` can wait on [`read_into`] and [`write_ready`] at once.
    pub fn io(&mut self) -> ConnIo<'_> {
        let pending_writes = !self.write_buf.is_empty();
        let (read, write) = self.stream.split();
        ConnIo {
            read,
            write,
            read_buf: &mut self.read_buf,
            read_chunk: self.read_chunk,
            pending_writes,
        }
    }

    /// The write buffer, for callers that write packets themselves (the publish template).
    pub fn write_buf(&mut self) -> &mut BytesMut {
        &mut self.write_buf
    }

    pub fn has_pending_writes(&self) -> bool {
        !self.write_buf.is_empty()
    }

    pub fn pending_write_len(&self) -> usize {
        self.write_buf.len()
    }

    /// Encodes a packet onto the end of the write buffer.
    pub fn queue(&mut self, packet: &Packet) -> Result<(), EncodeError> {
        packet
            .encode(self.protocol, &mut self.write_buf)
            .map(|_| ())
    }

    /// Writes as much of the write buffer as the socket takes now, without waiting.
    pub fn try_flush(&mut self) -> io::Result<()> {
        while !self.write_buf.is_empty() {
            match self.stream.try_write(&self.write_buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    let _ = self.write_buf.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes the whole write buffer, waiting for the socket as needed.
    pub async fn flush(&mut self) -> io::Result<()> {
        loop {
            self.try_flush()?;
            if self.write_buf.is_empty() {
                return Ok(());
            }
            self.stream.writable().await?;
        }
    }

    /// The next whole packet in the read buffer, if one is there.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, DecodeError> {
        self.decoder.decode(&mut self.read_buf)
    }

    /// Waits for the next packet.
    pub async fn recv(&mut self) -> Result<Packet, ConnError> {
        loop {
            if let Some(packet) = self.next_packet()? {
                return Ok(packet);
            }
            let mut io = self.io();
            read_into(&mut io.read, io.read_buf, io.read_chunk).await?;
        }
    }

    /// Sends DISCONNECT (normal) and closes, giving up quietly after a short wait: the run's
    /// figures are already taken.
    pub async fn disconnect(mut self) {
        if self
            .queue(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.flush()).await;
        }
    }
}

/// A connection taken apart for one wait: see [`Conn::io`].
pub struct ConnIo<'a> {
    pub read: ReadHalf<'a>,
    pub write: WriteHalf<'a>,
    pub read_buf: &'a mut BytesMut,
    pub read_chunk: usize,
    /// Whether the write buffer holds bytes, i.e. whether waiting for room is useful.
    pub pending_writes: bool,
}

/// Reads what the socket has into `read_buf`, waiting until something is there. Cancel safe:
/// when another `select!` branch wins, nothing was read. A closed connection is an error.
///
/// Goes through `AsyncRead`, which counts against tokio's cooperative budget (so a
/// connection that always has data still lets other tasks run) and, after a short read,
/// forgets the readiness instead of trying a read that would fail.
pub async fn read_into(
    read: &mut ReadHalf<'_>,
    read_buf: &mut BytesMut,
    read_chunk: usize,
) -> Result<usize, ConnError> {
    read_buf.reserve(read_chunk);
    match read.read_buf(read_buf).await? {
        0 => Err(ConnError::Closed),
        n => Ok(n),
    }
}

/// Waits until the socket takes more bytes; cancel safe.
pub async fn write_ready(write: &WriteHalf<'_>) -> io::Result<()> {
    std::future::poll_fn(|cx| write.as_ref().poll_write_ready(cx)).await
}

/// A `ConnError` for a packet of the wrong type.
pub fn unexpected(expected: &'static str, got: &Packet) -> ConnError {
    ConnError::Unexpected {
        expected,
        got: got.packet_type().name(),
    }
}

async fn with_timeout<T>(future: impl std::future::Future<Output = T>) -> Result<T, ConnError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, future)
        .await
        .map_err(|_| ConnError::Timeout(HANDSHAKE_TIMEOUT))
}
