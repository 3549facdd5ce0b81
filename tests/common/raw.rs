//! A client that writes packets (or arbitrary bytes) over a plain TCP socket and decodes the
//! broker's answers with Keel's own codec: for what rumqttc cannot be made to send
//! (malformed bytes, a second CONNECT, packet-id reuse, raw topic aliases, unknown
//! properties, DISCONNECT with properties) and for checking bytes on the wire.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use keel::codec::{
    ConnAck, Connect, ConnectProperties, Decoder, Disconnect, MqttString, Packet, PacketId,
    Protocol, PubReply, Publish, PublishProperties, QoS, QosPid, ReasonCode, Subscribe,
    SubscribeProperties, SubscriptionOptions, TopicFilter, TopicName, PACKET_SIZE_LIMIT,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::within;

/// One raw connection.
pub struct RawClient {
    stream: TcpStream,
    decoder: Decoder,
    read_buf: BytesMut,
    protocol: Protocol,
}

impl RawClient {
    /// Opens a TCP connection that will speak `protocol` (nothing is sent yet).
    pub async fn open(addr: SocketAddr, protocol: Protocol) -> RawClient {
        let stream = within("TCP connect", TcpStream::connect(addr))
            .await
            .expect("TCP connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            stream,
            decoder: Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT),
            read_buf: BytesMut::new(),
            protocol,
        }
    }

    /// Opens a connection, sends `connect` and returns the CONNACK.
    pub async fn connect(addr: SocketAddr, connect: Connect) -> (RawClient, ConnAck) {
        let mut client = RawClient::open(addr, connect.protocol).await;
        client.send(Packet::Connect(Box::new(connect))).await;
        match client.recv().await {
            Some(Packet::ConnAck(connack)) => (client, connack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects as `client_id` with clean start and keep-alive off; fails unless accepted.
    pub async fn connected(addr: SocketAddr, protocol: Protocol, client_id: &str) -> RawClient {
        let (client, connack) = RawClient::connect(addr, connect(protocol, client_id)).await;
        assert_eq!(connack.reason_code, ReasonCode::Success, "{connack:?}");
        client
    }

    /// Encodes and sends one packet.
    pub async fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        packet
            .encode(self.protocol, &mut buf)
            .unwrap_or_else(|e| panic!("cannot encode {packet:?}: {e}"));
        self.send_bytes(&buf).await;
    }

    /// Sends bytes as they are. A write the broker already refused (it closed first) is not
    /// an error: the test then checks what the broker answered.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = within("write", self.stream.write_all(bytes)).await;
    }

    /// The next packet from the broker; `None` once it closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        within("a packet or the close", async {
            loop {
                if let Some(packet) = self
                    .decoder
                    .decode(&mut self.read_buf)
                    .unwrap_or_else(|e| panic!("broker sent bytes that do not decode: {e}"))
                {
                    return Some(packet);
                }
                match self.stream.read_buf(&mut self.read_buf).await {
                    Ok(0) | Err(_) => {
                        assert!(
                            self.read_buf.is_empty(),
                            "connection closed inside a packet: {:02x?}",
                            &self.read_buf[..]
                        );
                        return None;
                    }
                    Ok(_) => {}
                }
            }
        })
        .await
    }

    /// The next packet; fails the test if the broker closes instead.
    pub async fn expect_packet(&mut self) -> Packet {
        self.recv()
            .await
            .expect("broker closed the connection instead of answering")
    }

    /// Asserts the broker closes the connection without sending anything more.
    pub async fn expect_closed(&mut self) {
        if let Some(packet) = self.recv().await {
            panic!("expected the broker to close the connection, got {packet:?}");
        }
    }

    /// Asserts the broker sends DISCONNECT with `reason` and then closes the connection.
    pub async fn expect_disconnect(&mut self, reason: ReasonCode) {
        match self.recv().await {
            Some(Packet::Disconnect(disconnect)) => {
                assert_eq!(disconnect.reason_code, reason, "{disconnect:?}");
                // The server never sends a Session Expiry Interval in DISCONNECT
                // ([MQTT-3.14.2-2]).
                assert_eq!(
                    disconnect.properties.session_expiry_interval, None,
                    "{disconnect:?}"
                );
            }
            other => panic!("expected DISCONNECT {reason:?}, got {other:?}"),
        }
        self.expect_closed().await;
    }

    /// How a broker refuses a bad packet after CONNECT: MQTT 5 says why in a DISCONNECT,
    /// MQTT 3 just closes.
    pub async fn expect_refused(&mut self, reason: ReasonCode) {
        if self.protocol.is_v5() {
            self.expect_disconnect(reason).await
        } else {
            self.expect_closed().await
        }
    }

    /// Subscribes and returns the SUBACK's reason codes.
    pub async fn subscribe(&mut self, packet_id: u16, filter: &str, qos: QoS) -> Vec<ReasonCode> {
        self.send(Packet::Subscribe(subscribe(packet_id, filter, qos)))
            .await;
        match self.expect_packet().await {
            Packet::SubAck(suback) => {
                assert_eq!(suback.packet_id, pid(packet_id));
                suback.reason_codes
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Sends PINGREQ and asserts PINGRESP comes back: the connection is alive and served.
    pub async fn ping(&mut self) {
        self.send(Packet::PingReq).await;
        match self.expect_packet().await {
            Packet::PingResp => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// The next PUBLISH; fails on any other packet.
    pub async fn expect_publish(&mut self) -> Publish {
        match self.expect_packet().await {
            Packet::Publish(publish) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

/// A packet id (never 0).
pub fn pid(id: u16) -> PacketId {
    PacketId::new(id).expect("packet id is not 0")
}

/// A CONNECT with clean start, keep-alive off and no properties.
pub fn connect(protocol: Protocol, client_id: &str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 0,
        properties: ConnectProperties::default(),
        client_id: MqttString::new(client_id).expect("client id"),
        will: None,
        username: None,
        password: None,
    }
}

/// A PUBLISH of `payload` to `topic`; `packet_id` is ignored for QoS 0.
pub fn publish(topic: &str, qos: QoS, packet_id: u16, payload: &[u8]) -> Publish {
    let packet_id = (qos != QoS::AtMostOnce).then(|| pid(packet_id));
    Publish {
        dup: false,
        qos_pid: QosPid::new(qos, packet_id).expect("packet id matches QoS"),
        retain: false,
        topic: TopicName::new(topic).expect("topic name"),
        properties: PublishProperties::default(),
        payload: Bytes::copy_from_slice(payload),
    }
}

/// A SUBSCRIBE to one filter with default options.
pub fn subscribe(packet_id: u16, filter: &str, qos: QoS) -> Subscribe {
    Subscribe {
        packet_id: pid(packet_id),
        properties: SubscribeProperties::default(),
        filters: vec![(
            TopicFilter::new(filter).expect("topic filter"),
            SubscriptionOptions::new(qos),
        )],
    }
}

/// A PUBACK/PUBREC/PUBREL/PUBCOMP body with reason Success.
pub fn reply(packet_id: u16) -> PubReply {
    PubReply::new(pid(packet_id))
}

/// A DISCONNECT with `reason` and no properties.
pub fn disconnect(reason: ReasonCode) -> Packet {
    Packet::Disconnect(Disconnect::new(reason))
}

/// A whole packet: first byte, remaining length (variable byte integer), body.
pub fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// An MQTT string: two-byte length, then the bytes.
pub fn string(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}
