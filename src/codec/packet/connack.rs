//! CONNACK (§3.2): the server's answer to CONNECT.

use bytes::BufMut;

use crate::codec::error::{DecodeError, EncodeError};
use crate::codec::properties::{
    properties_wire_len, put_properties, read_properties, ConnAckProperties,
};
use crate::codec::reason::{ReasonCode, ReasonContext};
use crate::codec::types::Protocol;
use crate::codec::wire::Reader;

/// A CONNACK packet. For MQTT 3 the reason code is written as the nearest 3.x return code
/// and the properties are not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub reason_code: ReasonCode,
    pub properties: ConnAckProperties,
}

impl ConnAck {
    pub(crate) fn decode(protocol: Protocol, r: &mut Reader) -> Result<ConnAck, DecodeError> {
        let flags = r.u8()?;
        if flags & !1 != 0 {
            return Err(DecodeError::InvalidConnAckFlags { flags });
        }
        let code = r.u8()?;
        let reason_code = if protocol.is_v5() {
            ReasonCode::decode(code, ReasonContext::ConnAck)?
        } else {
            ReasonCode::from_v3_connack(code)
                .ok_or(DecodeError::InvalidConnectReturnCode { code })?
        };
        let session_present = flags & 1 != 0;
        // [MQTT-3.2.2-6]: a refused connection never has a session.
        if session_present && reason_code != ReasonCode::Success {
            return Err(DecodeError::SessionPresentOnRefusal);
        }
        let properties = if protocol.is_v5() {
            read_properties(r, "CONNACK")?
        } else {
            ConnAckProperties::default()
        };
        Ok(ConnAck {
            session_present,
            reason_code,
            properties,
        })
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        if protocol.is_v5() {
            Ok(2 + properties_wire_len(&self.properties)?)
        } else {
            Ok(2)
        }
    }

    pub(crate) fn write_body(&self, protocol: Protocol, buf: &mut impl BufMut) {
        buf.put_u8(u8::from(self.session_present));
        if protocol.is_v5() {
            buf.put_u8(self.reason_code.as_u8());
            put_properties(buf, &self.properties);
        } else {
            buf.put_u8(self.reason_code.to_v3_connack());
        }
    }
}
