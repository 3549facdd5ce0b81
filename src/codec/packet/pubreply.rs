//! PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4 to §3.7): the four QoS flow replies share one
//! layout, a packet id and (MQTT 5) a reason code and properties that may be left out.

use bytes::BufMut;

use crate::codec::error::{DecodeError, EncodeError};
use crate::codec::properties::{
    properties_wire_len, put_properties, read_properties, AckProperties,
};
use crate::codec::reason::{ReasonCode, ReasonContext};
use crate::codec::types::{PacketId, Protocol};
use crate::codec::wire::Reader;

/// The body of PUBACK, PUBREC, PUBREL or PUBCOMP; `Packet` says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubReply {
    pub packet_id: PacketId,
    /// Always `Success` in MQTT 3, which has no reason code here.
    pub reason_code: ReasonCode,
    pub properties: AckProperties,
}

impl PubReply {
    /// A successful reply with no properties.
    pub fn new(packet_id: PacketId) -> PubReply {
        PubReply {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }

    pub(crate) fn decode(
        protocol: Protocol,
        context: ReasonContext,
        r: &mut Reader,
    ) -> Result<PubReply, DecodeError> {
        let packet_id = super::read_packet_id(r)?;
        let mut reply = PubReply::new(packet_id);
        // §3.4.2.1: with a remaining length of 2 the reason is Success; with 3 there are no
        // properties.
        if protocol.is_v5() && !r.is_empty() {
            let code = r.u8()?;
            reply.reason_code = ReasonCode::decode(code, context)?;
            if !r.is_empty() {
                reply.properties = read_properties(r, context.packet_name())?;
            }
        }
        Ok(reply)
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        if !protocol.is_v5() {
            return Ok(2);
        }
        if !self.properties.is_empty() {
            return Ok(3 + properties_wire_len(&self.properties)?);
        }
        Ok(if self.reason_code == ReasonCode::Success {
            2
        } else {
            3
        })
    }

    pub(crate) fn write_body(&self, protocol: Protocol, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        if !protocol.is_v5() {
            return;
        }
        if !self.properties.is_empty() {
            buf.put_u8(self.reason_code.as_u8());
            put_properties(buf, &self.properties);
        } else if self.reason_code != ReasonCode::Success {
            buf.put_u8(self.reason_code.as_u8());
        }
    }
}
