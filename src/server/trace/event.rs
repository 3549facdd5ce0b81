//! One traced event: a packet a traced client sent or was sent, or what happened to its
//! connection, summarised from the packet (type, packet id, topic, QoS, reason codes, sizes;
//! the payload only when asked for) and bounded in size whatever the packet held.

use std::fmt;

use base64::Engine;
use serde::Serialize;

use crate::broker::ConnId;
use crate::codec::{Packet, ReasonCode};

/// Bytes of a topic, filter or detail kept in an event; longer ones are cut (on a character
/// boundary) so that one event stays small however large the packet.
const TEXT_CAPTURE_MAX: usize = 256;
/// Filters of a SUBSCRIBE or UNSUBSCRIBE kept in an event (`filters_total` says how many).
const FILTERS_CAPTURE_MAX: usize = 8;
/// Payload bytes kept when a trace records payloads.
pub const PAYLOAD_CAPTURE_MAX: usize = 256;

/// Which way an event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A packet from the client.
    In,
    /// A packet to the client.
    Out,
    /// Something that happened to the connection rather than a packet.
    Connection,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Connection => "connection",
        }
    }
}

/// What a trace records about one packet or connection event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// When it happened (unix ms).
    pub at_ms: u64,
    /// The connection, to tell a client's successive connections apart.
    pub conn: ConnId,
    pub direction: Direction,
    /// The packet type (`PUBLISH`, `CONNACK`, ...) or the connection event (`closed`,
    /// `malformed`).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters_total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dup: Option<bool>,
    /// The reason code of the packet, or each filter's of a SUBACK / UNSUBACK.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<u8>,
    /// Bytes on the wire, fixed header included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<usize>,
    /// The first [`PAYLOAD_CAPTURE_MAX`] payload bytes as text, when the trace asked for
    /// payloads and they are UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The same, base64, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// Anything else worth knowing: CONNECT's client id and flags, why a packet was
    /// malformed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl TraceEvent {
    /// An event with nothing but its kind.
    pub fn new(at_ms: u64, conn: ConnId, direction: Direction, kind: &'static str) -> TraceEvent {
        TraceEvent {
            at_ms,
            conn,
            direction,
            kind,
            packet_id: None,
            topic: None,
            filters: Vec::new(),
            filters_total: None,
            qos: None,
            retain: None,
            dup: None,
            reasons: Vec::new(),
            size_bytes: None,
            payload_bytes: None,
            payload: None,
            payload_base64: None,
            detail: None,
        }
    }

    /// Something that happened to the connection, with what there is to say about it.
    pub fn connection(at_ms: u64, conn: ConnId, kind: &'static str, detail: String) -> TraceEvent {
        TraceEvent {
            detail: Some(cut(&detail)),
            ..TraceEvent::new(at_ms, conn, Direction::Connection, kind)
        }
    }

    /// The summary of `packet`, `size_bytes` long on the wire. Passwords, will payloads and
    /// properties are never kept; the payload of a PUBLISH only with `with_payload`.
    pub fn packet(
        (at_ms, conn): (u64, ConnId),
        direction: Direction,
        packet: &Packet,
        size_bytes: usize,
        with_payload: bool,
    ) -> TraceEvent {
        let mut event = TraceEvent::new(at_ms, conn, direction, packet.packet_type().name());
        event.size_bytes = Some(size_bytes);
        let reason = |code: ReasonCode| vec![code.as_u8()];
        match packet {
            Packet::Connect(connect) => {
                event.detail = Some(cut(&format!(
                    "client_id={:?} protocol={:?} clean_start={} keep_alive={} username={} will={}",
                    connect.client_id.as_str(),
                    connect.protocol,
                    connect.clean_start,
                    connect.keep_alive,
                    connect.username.is_some(),
                    connect.will.is_some(),
                )));
            }
            Packet::ConnAck(ack) => {
                event.reasons = reason(ack.reason_code);
                event.detail = Some(format!("session_present={}", ack.session_present));
            }
            Packet::Publish(publish) => {
                event.packet_id = publish.packet_id().map(|id| id.get());
                event.topic = Some(cut(publish.topic.as_str()));
                if let Some(alias) = publish.properties.topic_alias {
                    event.detail = Some(format!("topic_alias={alias}"));
                }
                event.qos = Some(publish.qos() as u8);
                event.retain = Some(publish.retain);
                event.dup = Some(publish.dup);
                event.payload_bytes = Some(publish.payload.len());
                if with_payload {
                    let kept = &publish.payload[..publish.payload.len().min(PAYLOAD_CAPTURE_MAX)];
                    match std::str::from_utf8(kept) {
                        Ok(text) => event.payload = Some(text.to_owned()),
                        Err(_) => {
                            event.payload_base64 =
                                Some(base64::engine::general_purpose::STANDARD.encode(kept))
                        }
                    }
                }
            }
            Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
                event.packet_id = Some(r.packet_id.get());
                event.reasons = reason(r.reason_code);
            }
            Packet::Subscribe(subscribe) => {
                event.packet_id = Some(subscribe.packet_id.get());
                event.filters = subscribe
                    .filters
                    .iter()
                    .take(FILTERS_CAPTURE_MAX)
                    .map(|(filter, options)| {
                        cut(&format!("{} qos={}", filter.as_str(), options.qos as u8))
                    })
                    .collect();
                event.filters_total = Some(subscribe.filters.len());
            }
            Packet::SubAck(ack) => {
                event.packet_id = Some(ack.packet_id.get());
                event.reasons = ack.reason_codes.iter().map(|c| c.as_u8()).collect();
            }
            Packet::Unsubscribe(unsubscribe) => {
                event.packet_id = Some(unsubscribe.packet_id.get());
                event.filters = unsubscribe
                    .filters
                    .iter()
                    .take(FILTERS_CAPTURE_MAX)
                    .map(|filter| cut(filter.as_str()))
                    .collect();
                event.filters_total = Some(unsubscribe.filters.len());
            }
            Packet::UnsubAck(ack) => {
                event.packet_id = Some(ack.packet_id.get());
                event.reasons = ack.reason_codes.iter().map(|c| c.as_u8()).collect();
            }
            Packet::Disconnect(disconnect) => event.reasons = reason(disconnect.reason_code),
            Packet::Auth(auth) => event.reasons = reason(auth.reason_code),
            Packet::PingReq | Packet::PingResp => {}
        }
        event
    }
}

/// `text`, cut to at most [`TEXT_CAPTURE_MAX`] bytes on a character boundary.
fn cut(text: &str) -> String {
    if text.len() <= TEXT_CAPTURE_MAX {
        return text.to_owned();
    }
    let mut end = TEXT_CAPTURE_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// One line for the log: direction, kind, and what the event has.
impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.direction.name(), self.kind)?;
        if let Some(id) = self.packet_id {
            write!(f, " id={id}")?;
        }
        if let Some(topic) = &self.topic {
            write!(f, " topic={topic:?}")?;
        }
        if !self.filters.is_empty() {
            write!(f, " filters={:?}", self.filters)?;
        }
        if let Some(qos) = self.qos {
            write!(f, " qos={qos}")?;
        }
        if self.retain == Some(true) {
            f.write_str(" retain")?;
        }
        if self.dup == Some(true) {
            f.write_str(" dup")?;
        }
        match self.reasons.as_slice() {
            [] => {}
            [one] => write!(f, " reason=0x{one:02x}")?,
            many => write!(f, " reasons={many:02x?}")?,
        }
        if let Some(size) = self.size_bytes {
            write!(f, " bytes={size}")?;
        }
        if let Some(payload) = self.payload_bytes {
            write!(f, " payload_bytes={payload}")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, " {detail}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::{PacketId, Publish, PublishProperties, QosPid, SubAck, TopicName};

    fn publish(payload: &'static [u8]) -> Packet {
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtLeastOnce(PacketId::new(7).unwrap()),
            retain: true,
            topic: TopicName::new("a/b").unwrap(),
            properties: PublishProperties::default(),
            payload: Bytes::from_static(payload),
        })
    }

    #[test]
    fn a_publish_is_summarised_without_its_payload_unless_asked() {
        let event = TraceEvent::packet(
            (5, ConnId(1)),
            Direction::In,
            &publish(b"secret"),
            15,
            false,
        );
        assert_eq!(
            (event.kind, event.packet_id, event.qos, event.retain),
            ("PUBLISH", Some(7), Some(1), Some(true))
        );
        assert_eq!(event.topic.as_deref(), Some("a/b"));
        assert_eq!((event.size_bytes, event.payload_bytes), (Some(15), Some(6)));
        assert_eq!(event.payload, None);
        assert!(!serde_json::to_string(&event).unwrap().contains("secret"));
        let with = TraceEvent::packet((5, ConnId(1)), Direction::In, &publish(b"secret"), 15, true);
        assert_eq!(with.payload.as_deref(), Some("secret"));
        let binary = TraceEvent::packet(
            (5, ConnId(1)),
            Direction::In,
            &publish(b"\xff\x00"),
            11,
            true,
        );
        assert_eq!(binary.payload_base64.as_deref(), Some("/wA="));
        assert_eq!(
            event.to_string(),
            "in PUBLISH id=7 topic=\"a/b\" qos=1 retain bytes=15 payload_bytes=6"
        );
    }

    #[test]
    fn acknowledgements_keep_their_reason_codes() {
        let ack = Packet::SubAck(SubAck {
            packet_id: PacketId::new(3).unwrap(),
            properties: Default::default(),
            reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized],
        });
        let event = TraceEvent::packet((0, ConnId(1)), Direction::Out, &ack, 7, false);
        assert_eq!(event.reasons, [1, 0x87]);
        assert_eq!(
            event.to_string(),
            "out SUBACK id=3 reasons=[01, 87] bytes=7"
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(TEXT_CAPTURE_MAX);
        let kept = cut(&long);
        assert!(kept.len() <= TEXT_CAPTURE_MAX + 3);
        assert!(kept.ends_with("é..."));
    }
}
