//! One TCP connection to a broker under test. A task reads and decodes what the broker sends,
//! acknowledges every QoS 1/2 delivery at once (PUBACK; PUBREC, then PUBCOMP for the PUBREL),
//! and reports each packet and the close on the run's one event channel, so that the driver
//! sees every connection's traffic in arrival order. The driver writes everything else.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use keel::codec::{Decoder, Packet, Protocol, PubReply, QoS, PACKET_SIZE_LIMIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

/// A connection of a scenario: the `number`th CONNECT of client `client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId {
    pub client: usize,
    pub number: usize,
}

/// What a connection's reader saw.
#[derive(Debug)]
pub enum Event {
    /// Boxed: a packet is large next to the other events.
    Packet(Box<Packet>),
    /// The broker closed the connection (or it failed).
    Closed,
    /// The broker sent bytes that are not a valid packet.
    Undecodable(String),
}

/// An event of one connection.
#[derive(Debug)]
pub struct Arrival {
    pub conn: ConnId,
    pub event: Event,
}

/// The write side of a connection, shared by the driver and the reader's acknowledgements.
type Writer = Arc<Mutex<OwnedWriteHalf>>;

/// An open connection.
pub struct Link {
    protocol: Protocol,
    writer: Writer,
    reader: JoinHandle<()>,
}

impl Link {
    /// Connects and starts the reader; nothing is sent yet.
    pub async fn open(
        addr: SocketAddr,
        protocol: Protocol,
        conn: ConnId,
        events: mpsc::UnboundedSender<Arrival>,
    ) -> std::io::Result<Link> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read_half, write_half) = stream.into_split();
        let writer = Arc::new(Mutex::new(write_half));
        let reader = tokio::spawn(read_loop(read_half, writer.clone(), protocol, conn, events));
        Ok(Link {
            protocol,
            writer,
            reader,
        })
    }

    /// Sends one packet. A failed write is not an error here: the broker closed the
    /// connection, and the reader reports that.
    pub async fn send(&self, packet: &Packet) {
        write_packet(&self.writer, self.protocol, packet).await;
    }

    /// Half-closes the connection after a DISCONNECT: the broker sees the end of the stream,
    /// and the reader still gets whatever the broker says before it closes.
    pub async fn finish_writing(&self) {
        // A socket the broker closed already cannot be shut down: nothing left to do.
        let _ = self.writer.lock().await.shutdown().await;
    }

    /// Closes the TCP connection at once, without DISCONNECT, and waits until the socket is
    /// gone so that the broker can see the close before the next step.
    pub async fn drop_now(mut self) {
        self.reader.abort();
        // The task ends as cancelled: that is the expected result. Its copy of the writer
        // is gone with it, and ours goes with `self`.
        let _ = (&mut self.reader).await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn write_packet(writer: &Writer, protocol: Protocol, packet: &Packet) {
    let mut buf = BytesMut::new();
    if let Err(e) = packet.encode(protocol, &mut buf) {
        panic!("the test built a packet it cannot encode: {packet:?}: {e}");
    }
    // The broker may have closed the connection: the reader reports that.
    let _ = writer.lock().await.write_all(&buf).await;
}

/// Reads packets until the broker closes the connection, acknowledging deliveries.
async fn read_loop(
    mut read_half: OwnedReadHalf,
    writer: Writer,
    protocol: Protocol,
    conn: ConnId,
    events: mpsc::UnboundedSender<Arrival>,
) {
    let mut decoder = Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT);
    let mut buf = BytesMut::new();
    loop {
        let event = match decoder.decode(&mut buf) {
            Ok(Some(packet)) => {
                acknowledge(&writer, protocol, &packet).await;
                Event::Packet(Box::new(packet))
            }
            Err(e) => Event::Undecodable(e.to_string()),
            Ok(None) => match read_half.read_buf(&mut buf).await {
                Ok(0) | Err(_) => Event::Closed,
                Ok(_) => continue,
            },
        };
        let last = !matches!(event, Event::Packet(_));
        // The driver is gone once the run ended: nobody to tell.
        if events.send(Arrival { conn, event }).is_err() || last {
            return;
        }
    }
}

/// A client's part of QoS 1 and 2 delivery, sent as soon as the packet is read.
async fn acknowledge(writer: &Writer, protocol: Protocol, packet: &Packet) {
    let reply = match packet {
        Packet::Publish(publish) => match (publish.qos(), publish.packet_id()) {
            (QoS::AtLeastOnce, Some(id)) => Packet::PubAck(PubReply::new(id)),
            (QoS::ExactlyOnce, Some(id)) => Packet::PubRec(PubReply::new(id)),
            _ => return,
        },
        Packet::PubRel(release) => Packet::PubComp(PubReply::new(release.packet_id)),
        _ => return,
    };
    write_packet(writer, protocol, &reply).await;
}
