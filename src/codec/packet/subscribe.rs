//! SUBSCRIBE (§3.8): topic filters with their subscription options.

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use crate::codec::error::{DecodeError, EncodeError};
use crate::codec::properties::{
    properties_wire_len, put_properties, read_properties, SubscribeProperties,
};
use crate::codec::topic::TopicFilter;
use crate::codec::types::{PacketId, Protocol, QoS};
use crate::codec::wire::{self, Reader};

mod bits {
    pub const QOS: u8 = 0b0000_0011;
    pub const NO_LOCAL: u8 = 0b0000_0100;
    pub const RETAIN_AS_PUBLISHED: u8 = 0b0000_1000;
    pub const RETAIN_HANDLING_SHIFT: u8 = 4;
    pub const RETAIN_HANDLING: u8 = 0b0011_0000;
    /// Reserved in MQTT 5 ([MQTT-3.8.3-5]).
    pub const RESERVED_V5: u8 = 0b1100_0000;
    /// Everything but the QoS is reserved in MQTT 3.
    pub const RESERVED_V3: u8 = !QOS;
}

/// When retained messages are sent for a new subscription (§3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[repr(u8)]
pub enum RetainHandling {
    #[default]
    SendAtSubscribe = 0,
    SendAtNewSubscribe = 1,
    DoNotSend = 2,
}

/// The options byte of one subscription. MQTT 3 carries only the QoS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SubscriptionOptions {
    /// The maximum QoS the subscriber accepts.
    pub qos: QoS,
    /// Do not send the subscriber its own publishes (MQTT 5).
    pub no_local: bool,
    /// Keep the RETAIN flag of forwarded publishes (MQTT 5).
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    pub fn new(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        }
    }

    fn decode(protocol: Protocol, byte: u8) -> Result<SubscriptionOptions, DecodeError> {
        let reserved = if protocol.is_v5() {
            bits::RESERVED_V5
        } else {
            bits::RESERVED_V3
        };
        if byte & reserved != 0 {
            return Err(DecodeError::SubscriptionOptionsReserved { options: byte });
        }
        // MQTT 5 calls QoS 3 here a Protocol Error; MQTT 3 just closes the connection.
        let qos = QoS::from_bits(byte & bits::QOS).ok_or(DecodeError::InvalidSubscriptionQoS)?;
        let retain_handling = match (byte & bits::RETAIN_HANDLING) >> bits::RETAIN_HANDLING_SHIFT {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtNewSubscribe,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::InvalidRetainHandling),
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & bits::NO_LOCAL != 0,
            retain_as_published: byte & bits::RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }

    fn encode(&self, protocol: Protocol) -> u8 {
        let mut byte = self.qos as u8;
        if protocol.is_v5() {
            if self.no_local {
                byte |= bits::NO_LOCAL;
            }
            if self.retain_as_published {
                byte |= bits::RETAIN_AS_PUBLISHED;
            }
            byte |= (self.retain_handling as u8) << bits::RETAIN_HANDLING_SHIFT;
        }
        byte
    }
}

/// A SUBSCRIBE packet: at least one filter ([MQTT-3.8.3-2]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: PacketId,
    pub properties: SubscribeProperties,
    pub filters: Vec<(TopicFilter, SubscriptionOptions)>,
}

impl Subscribe {
    pub(crate) fn decode(protocol: Protocol, r: &mut Reader) -> Result<Subscribe, DecodeError> {
        let packet_id = super::read_packet_id(r)?;
        let properties = if protocol.is_v5() {
            read_properties(r, "SUBSCRIBE")?
        } else {
            SubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = TopicFilter::read(r)?;
            let options = SubscriptionOptions::decode(protocol, r.u8()?)?;
            if options.no_local && filter.shared().is_some() {
                return Err(DecodeError::NoLocalOnSharedSubscription);
            }
            filters.push((filter, options));
        }
        if filters.is_empty() {
            return Err(DecodeError::NoSubscribeFilters);
        }
        Ok(Subscribe {
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
        for (filter, _) in &self.filters {
            len += wire::field_len("topic filter", filter.len())? + 1;
        }
        Ok(len)
    }

    pub(crate) fn write_body(&self, protocol: Protocol, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        if protocol.is_v5() {
            put_properties(buf, &self.properties);
        }
        for (filter, options) in &self.filters {
            wire::put_field(buf, filter.as_str().as_bytes());
            buf.put_u8(options.encode(protocol));
        }
    }
}
