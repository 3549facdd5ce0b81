//! SUBACK (§3.9): one reason code per filter of the SUBSCRIBE it answers.

use bytes::BufMut;

use crate::codec::error::{DecodeError, EncodeError};
use crate::codec::properties::{
    properties_wire_len, put_properties, read_properties, AckProperties,
};
use crate::codec::reason::{ReasonCode, ReasonContext};
use crate::codec::types::{PacketId, Protocol};
use crate::codec::wire::Reader;

/// A SUBACK packet. In MQTT 3 a failure is written as 0x80 whatever its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: PacketId,
    pub properties: AckProperties,
    pub reason_codes: Vec<ReasonCode>,
}

impl SubAck {
    pub(crate) fn decode(protocol: Protocol, r: &mut Reader) -> Result<SubAck, DecodeError> {
        let packet_id = super::read_packet_id(r)?;
        let properties = if protocol.is_v5() {
            read_properties(r, "SUBACK")?
        } else {
            AckProperties::default()
        };
        let mut reason_codes = Vec::with_capacity(r.remaining());
        while !r.is_empty() {
            let code = r.u8()?;
            reason_codes.push(if protocol.is_v5() {
                ReasonCode::decode(code, ReasonContext::SubAck)?
            } else {
                ReasonCode::from_v3_suback(code)
                    .ok_or(DecodeError::InvalidSubAckReturnCode { code })?
            });
        }
        Ok(SubAck {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        let props = if protocol.is_v5() {
            properties_wire_len(&self.properties)?
        } else {
            0
        };
        Ok(2 + props + self.reason_codes.len())
    }

    pub(crate) fn write_body(&self, protocol: Protocol, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        if protocol.is_v5() {
            put_properties(buf, &self.properties);
            for code in &self.reason_codes {
                buf.put_u8(code.as_u8());
            }
        } else {
            for code in &self.reason_codes {
                buf.put_u8(code.to_v3_suback());
            }
        }
    }
}
