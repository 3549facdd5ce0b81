//! UNSUBSCRIBE (§3.10): the filters to remove.

use bytes::BufMut;

use crate::codec::error::{DecodeError, EncodeError};
use crate::codec::properties::{
    properties_wire_len, put_properties, read_properties, UnsubscribeProperties,
};
use crate::codec::topic::TopicFilter;
use crate::codec::types::{PacketId, Protocol};
use crate::codec::wire::{self, Reader};

/// An UNSUBSCRIBE packet: at least one filter ([MQTT-3.10.3-2]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: PacketId,
    pub properties: UnsubscribeProperties,
    pub filters: Vec<TopicFilter>,
}

impl Unsubscribe {
    pub(crate) fn decode(protocol: Protocol, r: &mut Reader) -> Result<Unsubscribe, DecodeError> {
        let packet_id = super::read_packet_id(r)?;
        let properties = if protocol.is_v5() {
            read_properties(r, "UNSUBSCRIBE")?
        } else {
            UnsubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            filters.push(TopicFilter::read(r)?);
        }
        if filters.is_empty() {
            return Err(DecodeError::NoUnsubscribeFilters);
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters,
        })
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        let mut len = 2;
        if protocol.is_v5() {
            len += properties_wire_len(&self.properties)?;
        }
        for filter in &self.filters {
            len += wire::field_len("topic filter", filter.len())?;
        }
        Ok(len)
    }

    pub(crate) fn write_body(&self, protocol: Protocol, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        if protocol.is_v5() {
            put_properties(buf, &self.properties);
        }
        for filter in &self.filters {
            wire::put_field(buf, filter.as_str().as_bytes());
        }
    }
}
