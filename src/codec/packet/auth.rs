//! AUTH (§3.15, MQTT 5 only): the steps of enhanced authentication.

use bytes::BufMut;

use crate::codec::error::{DecodeError, EncodeError};
use crate::codec::properties::{
    properties_wire_len, put_properties, read_properties, AuthProperties,
};
use crate::codec::reason::{ReasonCode, ReasonContext};
use crate::codec::wire::Reader;

/// An AUTH packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    pub reason_code: ReasonCode,
    pub properties: AuthProperties,
}

impl Auth {
    pub(crate) fn decode(r: &mut Reader) -> Result<Auth, DecodeError> {
        let mut auth = Auth::default();
        // §3.15.2.1: an empty body means Success with no properties.
        if !r.is_empty() {
            auth.reason_code = ReasonCode::decode(r.u8()?, ReasonContext::Auth)?;
            if !r.is_empty() {
                auth.properties = read_properties(r, "AUTH")?;
            }
        }
        Ok(auth)
    }

    pub(crate) fn body_len(&self) -> Result<usize, EncodeError> {
        if self.reason_code == ReasonCode::Success && self.properties.is_empty() {
            return Ok(0);
        }
        Ok(1 + properties_wire_len(&self.properties)?)
    }

    pub(crate) fn write_body(&self, buf: &mut impl BufMut) {
        if self.reason_code == ReasonCode::Success && self.properties.is_empty() {
            return;
        }
        buf.put_u8(self.reason_code.as_u8());
        put_properties(buf, &self.properties);
    }
}
