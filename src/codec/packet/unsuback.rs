//! UNSUBACK (§3.11): in MQTT 5, one reason code per filter; in MQTT 3, just the packet id.

use bytes::BufMut;

use crate::codec::error::{DecodeError, EncodeError};
use crate::codec::properties::{
    properties_wire_len, put_properties, read_properties, AckProperties,
};
use crate::codec::reason::{ReasonCode, ReasonContext};
use crate::codec::types::{PacketId, Protocol};
use crate::codec::wire::Reader;

/// An UNSUBACK packet. MQTT 3 sends neither properties nor reason codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: PacketId,
    pub properties: AckProperties,
    pub reason_codes: Vec<ReasonCode>,
}

impl UnsubAck {
    pub(crate) fn decode(protocol: Protocol, r: &mut Reader) -> Result<UnsubAck, DecodeError> {
        let packet_id = super::read_packet_id(r)?;
        let mut ack = UnsubAck {
            packet_id,
            properties: AckProperties::default(),
            reason_codes: Vec::new(),
        };
        if protocol.is_v5() {
            ack.properties = read_properties(r, "UNSUBACK")?;
            ack.reason_codes.reserve(r.remaining());
            while !r.is_empty() {
                ack.reason_codes
                    .push(ReasonCode::decode(r.u8()?, ReasonContext::UnsubAck)?);
            }
        }
        Ok(ack)
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        if protocol.is_v5() {
            Ok(2 + properties_wire_len(&self.properties)? + self.reason_codes.len())
        } else {
            Ok(2)
        }
    }

    pub(crate) fn write_body(&self, protocol: Protocol, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        if protocol.is_v5() {
            put_properties(buf, &self.properties);
            for code in &self.reason_codes {
                buf.put_u8(code.as_u8());
            }
        }
    }
}
