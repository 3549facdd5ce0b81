//! DISCONNECT (§3.14): the last packet of a connection, from either side in MQTT 5.

use bytes::BufMut;

use crate::codec::error::{DecodeError, EncodeError};
use crate::codec::properties::{
    properties_wire_len, put_properties, read_properties, DisconnectProperties,
};
use crate::codec::reason::{ReasonCode, ReasonContext};
use crate::codec::types::Protocol;
use crate::codec::wire::Reader;

/// A DISCONNECT packet. MQTT 3 has no body: reason and properties are not sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason_code: ReasonCode,
    pub properties: DisconnectProperties,
}

impl Disconnect {
    pub fn new(reason_code: ReasonCode) -> Disconnect {
        Disconnect {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }

    pub(crate) fn decode(protocol: Protocol, r: &mut Reader) -> Result<Disconnect, DecodeError> {
        let mut disconnect = Disconnect::default();
        // §3.14.2.1: no reason code means Normal disconnection; §3.14.2.2.1: fewer than 2
        // bytes means no properties.
        if protocol.is_v5() && !r.is_empty() {
            disconnect.reason_code = ReasonCode::decode(r.u8()?, ReasonContext::Disconnect)?;
            if !r.is_empty() {
                disconnect.properties = read_properties(r, "DISCONNECT")?;
            }
        }
        Ok(disconnect)
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        if !protocol.is_v5() {
            return Ok(0);
        }
        if !self.properties.is_empty() {
            return Ok(1 + properties_wire_len(&self.properties)?);
        }
        Ok(usize::from(self.reason_code != ReasonCode::Success))
    }

    pub(crate) fn write_body(&self, protocol: Protocol, buf: &mut impl BufMut) {
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
