//! A PUBLISH packet encoded once by Keel's codec and then stamped per message: only the packet
//! id and the payload header change between messages, so the publisher's hot path is a copy
//! and two small writes instead of building and sizing a packet each time.

use bytes::{Bytes, BytesMut};

use super::payload::{PayloadHeader, HEADER_LEN};
use keel::codec::{
    EncodeError, FixedHeader, Packet, PacketId, Protocol, Publish, PublishProperties, QoS, QosPid,
    TopicName,
};

/// The wire bytes of one publisher's PUBLISH, with the places to patch.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    /// The whole packet as Keel's codec wrote it, with packet id 1 and a zero payload.
    bytes: Vec<u8>,
    /// Where the two-byte packet id sits; `None` at QoS 0, which has none.
    packet_id_at: Option<usize>,
    /// Where the payload (and so its header) starts.
    payload_at: usize,
}

impl PublishTemplate {
    /// Encodes a PUBLISH of `payload_len` bytes to `topic`. `payload_len` must hold the
    /// payload header.
    pub fn new(
        protocol: Protocol,
        topic: TopicName,
        qos: QoS,
        payload_len: usize,
    ) -> Result<PublishTemplate, EncodeError> {
        assert!(
            payload_len >= HEADER_LEN,
            "payload of {payload_len} bytes cannot hold the {HEADER_LEN}-byte header"
        );
        let topic_len = topic.len();
        // Packet id 1 is a placeholder overwritten by `write`; QosPid::new only fails for
        // QoS > 0 without an id, and an id is given.
        let qos_pid = QosPid::new(qos, Some(PacketId::MIN)).unwrap();
        let publish = Publish {
            dup: false,
            qos_pid,
            retain: false,
            topic,
            properties: PublishProperties::default(),
            payload: Bytes::from(vec![0; payload_len]),
        };
        let mut buf = BytesMut::new();
        Packet::Publish(publish).encode(protocol, &mut buf)?;
        // The codec just wrote a complete packet, so its own fixed header parses.
        let header = FixedHeader::parse(&buf, Some(protocol)).unwrap().unwrap();
        // Variable header: topic (2-byte length + bytes), then the packet id at QoS > 0.
        let packet_id_at = (qos != QoS::AtMostOnce).then_some(header.header_len + 2 + topic_len);
        let payload_at = buf.len() - payload_len;
        Ok(PublishTemplate {
            bytes: buf.to_vec(),
            packet_id_at,
            payload_at,
        })
    }

    /// Bytes one message takes on the wire.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends one message to `out`. `packet_id` must be given exactly when the template's
    /// QoS is above 0.
    pub fn write(&self, out: &mut BytesMut, packet_id: Option<PacketId>, header: &PayloadHeader) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let packet = &mut out[start..];
        match (self.packet_id_at, packet_id) {
            (Some(at), Some(id)) => packet[at..at + 2].copy_from_slice(&id.get().to_be_bytes()),
            (None, None) => {}
            (at, id) => panic!("packet id {id:?} does not fit the template's slot {at:?}"),
        }
        header.write(&mut packet[self.payload_at..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel::codec::Decoder;

    fn decode_one(protocol: Protocol, bytes: &mut BytesMut) -> Publish {
        let mut decoder = Decoder::with_protocol(protocol, 1 << 20);
        match decoder.decode(bytes) {
            Ok(Some(Packet::Publish(publish))) => publish,
            other => panic!("expected a PUBLISH, got {other:?}"),
        }
    }

    #[test]
    fn stamped_messages_decode_with_their_id_and_header() {
        for protocol in [Protocol::V3_1_1, Protocol::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                for payload_len in [HEADER_LEN, 64, 1000] {
                    let topic = TopicName::new("bench/77/pairs/12").unwrap();
                    let template =
                        PublishTemplate::new(protocol, topic.clone(), qos, payload_len).unwrap();
                    let mut out = BytesMut::new();
                    let mut expected = Vec::new();
                    for seq in 0..3u64 {
                        let id = (qos != QoS::AtMostOnce)
                            .then(|| PacketId::new(500 + seq as u16).unwrap());
                        let header = PayloadHeader {
                            run_id: 77,
                            publisher: 12,
                            seq,
                            sent_ns: 1_000 + seq,
                        };
                        template.write(&mut out, id, &header);
                        expected.push((id, header));
                    }
                    assert_eq!(out.len(), 3 * template.len());
                    for (id, header) in expected {
                        let publish = decode_one(protocol, &mut out);
                        assert_eq!(publish.topic, topic);
                        assert_eq!(publish.qos(), qos);
                        assert_eq!(publish.packet_id(), id);
                        assert!(!publish.dup && !publish.retain);
                        assert_eq!(publish.payload.len(), payload_len);
                        assert_eq!(PayloadHeader::read(&publish.payload), Ok(header));
                    }
                    assert!(out.is_empty(), "every byte belongs to a message");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn an_id_on_a_qos0_template_is_a_bug() {
        let topic = TopicName::new("t").unwrap();
        let template = PublishTemplate::new(Protocol::V5, topic, QoS::AtMostOnce, 64).unwrap();
        let header = PayloadHeader {
            run_id: 0,
            publisher: 0,
            seq: 0,
            sent_ns: 0,
        };
        template.write(&mut BytesMut::new(), Some(PacketId::MIN), &header);
    }
}
