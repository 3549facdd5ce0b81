//! A small MQTT client for simulated hosts, speaking through Keel's own codec.
//!
//! It implements the receiver side of QoS 2 as the spec says (deliver on PUBLISH, remember
//! the packet id until PUBREL), so exactly-once is judged at the application boundary.

use std::collections::BTreeSet;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keel::codec::*;
use keel::net::{BoxStream, Net, SimNet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Deadline for every connect and wait: turmoil never fails a connect to a dead host.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Client {
    stream: BoxStream,
    protocol: Protocol,
    decoder: Decoder,
    read_buf: BytesMut,
    next_id: u16,
    /// QoS 2 packet ids received and delivered, awaiting PUBREL.
    qos2_pending: BTreeSet<PacketId>,
}

/// An application message as the client's application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
}

fn other(message: String) -> io::Error {
    io::Error::other(message)
}

impl Client {
    /// Connects and waits for a successful CONNACK.
    pub async fn connect(
        addr: &str,
        protocol: Protocol,
        client_id: &str,
        clean_start: bool,
    ) -> io::Result<Client> {
        let stream = tokio::time::timeout(TIMEOUT, SimNet.connect(addr))
            .await
            .map_err(|_| other(format!("connect to {addr} timed out")))??;
        let mut client = Client {
            stream,
            protocol,
            decoder: Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT),
            read_buf: BytesMut::with_capacity(4096),
            next_id: 0,
            qos2_pending: BTreeSet::new(),
        };
        let mut properties = ConnectProperties::default();
        if !clean_start && protocol.is_v5() {
            properties.session_expiry_interval = Some(600);
        }
        client
            .send(Packet::Connect(Box::new(Connect {
                protocol,
                clean_start,
                keep_alive: 30,
                properties,
                client_id: MqttString::new(client_id).map_err(|e| other(e.to_string()))?,
                will: None,
                username: None,
                password: None,
            })))
            .await?;
        match client.recv().await? {
            Packet::ConnAck(ack) if ack.reason_code == ReasonCode::Success => Ok(client),
            other_packet => Err(other(format!("expected CONNACK, got {other_packet:?}"))),
        }
    }

    pub async fn send(&mut self, packet: Packet) -> io::Result<()> {
        let mut buf = BytesMut::new();
        packet
            .encode(self.protocol, &mut buf)
            .map_err(|e| other(e.to_string()))?;
        self.stream.write_all(&buf).await?;
        self.stream.flush().await
    }

    /// The next packet from the broker, within [`TIMEOUT`].
    pub async fn recv(&mut self) -> io::Result<Packet> {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(packet) = self
                    .decoder
                    .decode(&mut self.read_buf)
                    .map_err(|e| other(e.to_string()))?
                {
                    return Ok(packet);
                }
                if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
        })
        .await
        .map_err(|_| other("timed out waiting for a packet".into()))?
    }

    fn packet_id(&mut self) -> PacketId {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        PacketId::new(self.next_id).unwrap_or(PacketId::MIN)
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> io::Result<()> {
        let packet_id = self.packet_id();
        let filter = TopicFilter::new(filter).map_err(|e| other(e.to_string()))?;
        self.send(Packet::Subscribe(Subscribe {
            packet_id,
            properties: SubscribeProperties::default(),
            filters: vec![(filter, SubscriptionOptions::new(qos))],
        }))
        .await?;
        match self.recv().await? {
            Packet::SubAck(ack) if ack.packet_id == packet_id => Ok(()),
            p => Err(other(format!("expected SUBACK, got {p:?}"))),
        }
    }

    /// Publishes and completes the QoS flow (PUBACK, or PUBREC/PUBREL/PUBCOMP).
    pub async fn publish(&mut self, topic: &str, qos: QoS, payload: Bytes) -> io::Result<()> {
        let packet_id = self.packet_id();
        let qos_pid = QosPid::new(qos, Some(packet_id)).unwrap_or(QosPid::AtMostOnce);
        self.send(Packet::Publish(Publish {
            dup: false,
            qos_pid,
            retain: false,
            topic: TopicName::new(topic).map_err(|e| other(e.to_string()))?,
            properties: PublishProperties::default(),
            payload,
        }))
        .await?;
        match qos {
            QoS::AtMostOnce => Ok(()),
            QoS::AtLeastOnce => match self.recv().await? {
                Packet::PubAck(ack) if ack.packet_id == packet_id => Ok(()),
                p => Err(other(format!("expected PUBACK, got {p:?}"))),
            },
            QoS::ExactlyOnce => {
                match self.recv().await? {
                    Packet::PubRec(rec) if rec.packet_id == packet_id => {}
                    p => return Err(other(format!("expected PUBREC, got {p:?}"))),
                }
                self.send(Packet::PubRel(PubReply::new(packet_id))).await?;
                match self.recv().await? {
                    Packet::PubComp(comp) if comp.packet_id == packet_id => Ok(()),
                    p => Err(other(format!("expected PUBCOMP, got {p:?}"))),
                }
            }
        }
    }

    /// The next application message, acknowledging it as its QoS requires. A QoS 2 resend
    /// of a packet id awaiting PUBREL is acknowledged but not delivered again.
    pub async fn next_message(&mut self) -> io::Result<Received> {
        loop {
            match self.recv().await? {
                Packet::Publish(publish) => {
                    let received = Received {
                        topic: publish.topic.to_string(),
                        payload: publish.payload.clone(),
                        qos: publish.qos(),
                    };
                    match publish.qos_pid {
                        QosPid::AtMostOnce => return Ok(received),
                        QosPid::AtLeastOnce(id) => {
                            self.send(Packet::PubAck(PubReply::new(id))).await?;
                            return Ok(received);
                        }
                        QosPid::ExactlyOnce(id) => {
                            self.send(Packet::PubRec(PubReply::new(id))).await?;
                            if self.qos2_pending.insert(id) {
                                return Ok(received);
                            }
                        }
                    }
                }
                Packet::PubRel(rel) => {
                    self.qos2_pending.remove(&rel.packet_id);
                    self.send(Packet::PubComp(PubReply::new(rel.packet_id)))
                        .await?;
                }
                p => return Err(other(format!("unexpected {p:?}"))),
            }
        }
    }
}
