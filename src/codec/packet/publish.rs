//! PUBLISH (§3.3): an application message, in either direction.

use bytes::{BufMut, Bytes};

use crate::codec::error::{DecodeError, EncodeError};
use crate::codec::properties::{
    properties_wire_len, put_properties, read_properties, PublishProperties,
};
use crate::codec::topic::TopicName;
use crate::codec::types::{PacketId, Protocol, QoS, QosPid};
use crate::codec::wire::{self, Reader};

mod flag {
    pub const DUP: u8 = 0b1000;
    pub const QOS_SHIFT: u8 = 1;
    pub const QOS: u8 = 0b0110;
    pub const RETAIN: u8 = 0b0001;
}

/// A PUBLISH packet. The topic and payload share the buffer the packet was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Set on a redelivery; never on QoS 0 ([MQTT-3.3.1-2]).
    pub dup: bool,
    pub qos_pid: QosPid,
    pub retain: bool,
    /// Empty only in MQTT 5 when `properties.topic_alias` names the topic.
    pub topic: TopicName,
    pub properties: PublishProperties,
    pub payload: Bytes,
}

impl Publish {
    pub fn qos(&self) -> QoS {
        self.qos_pid.qos()
    }

    pub fn packet_id(&self) -> Option<PacketId> {
        self.qos_pid.packet_id()
    }

    pub(crate) fn header_flags(&self) -> u8 {
        let mut flags = (self.qos() as u8) << flag::QOS_SHIFT;
        // DUP is meaningless on QoS 0 and must not be sent there.
        if self.dup && self.qos() != QoS::AtMostOnce {
            flags |= flag::DUP;
        }
        if self.retain {
            flags |= flag::RETAIN;
        }
        flags
    }

    #[inline]
    pub(crate) fn decode(
        protocol: Protocol,
        flags: u8,
        r: &mut Reader,
    ) -> Result<Publish, DecodeError> {
        let dup = flags & flag::DUP != 0;
        let qos = QoS::from_bits((flags & flag::QOS) >> flag::QOS_SHIFT)
            .ok_or(DecodeError::InvalidQoS)?;
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupWithQoS0);
        }
        let topic = TopicName::read(r)?;
        let qos_pid = match qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            QoS::AtLeastOnce => QosPid::AtLeastOnce(super::read_packet_id(r)?),
            QoS::ExactlyOnce => QosPid::ExactlyOnce(super::read_packet_id(r)?),
        };
        let properties = if protocol.is_v5() {
            read_properties::<PublishProperties>(r, "PUBLISH")?
        } else {
            PublishProperties::default()
        };
        if topic.is_empty() {
            if !protocol.is_v5() {
                return Err(DecodeError::EmptyTopicName);
            }
            if properties.topic_alias.is_none() {
                return Err(DecodeError::EmptyTopicWithoutAlias);
            }
        }
        Ok(Publish {
            dup,
            qos_pid,
            retain: flags & flag::RETAIN != 0,
            topic,
            properties,
            payload: r.rest(),
        })
    }

    #[inline]
    pub(crate) fn body_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        let mut len = wire::field_len("topic name", self.topic.len())? + self.payload.len();
        if self.qos_pid.packet_id().is_some() {
            len += 2;
        }
        if protocol.is_v5() {
            // Most publishes carry no property; their block is the one byte of its length.
            len += if self.properties.is_empty() {
                1
            } else {
                properties_wire_len(&self.properties)?
            };
        }
        Ok(len)
    }

    /// Writes the body up to the payload, which the caller appends: see
    /// [`Packet::encode`](super::Packet::encode).
    #[inline]
    pub(crate) fn write_head(&self, protocol: Protocol, buf: &mut impl BufMut) {
        wire::put_field(buf, self.topic.as_bytes());
        if let Some(id) = self.qos_pid.packet_id() {
            buf.put_u16(id.get());
        }
        if protocol.is_v5() {
            if self.properties.is_empty() {
                buf.put_u8(0);
            } else {
                put_properties(buf, &self.properties);
            }
        }
    }
}
