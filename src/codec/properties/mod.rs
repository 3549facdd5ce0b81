//! MQTT 5 properties (§2.2.2): one struct per packet kind, so a property that a packet may not
//! carry cannot be represented in it; one decode loop that enforces which identifiers each
//! packet allows, that none repeats unless the spec allows it, and that values are in range.

use bytes::{BufMut, Bytes};

use super::error::{DecodeError, EncodeError};
use super::topic::TopicName;
use super::types::{MqttString, UserProperty};
use super::wire::{self, Reader, VAR_INT_MAX};

mod sets;

pub use sets::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};

/// Property identifiers (§2.2.2.2).
pub mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// One decoded property value, before it is stored in its packet's struct.
#[derive(Debug, Clone)]
pub enum Property {
    Byte(u8, u8),
    TwoByte(u8, u16),
    FourByte(u8, u32),
    VarInt(u8, u32),
    String(u8, MqttString),
    Binary(u8, Bytes),
    Topic(u8, TopicName),
    User(MqttString, MqttString),
}

/// The wire type of each identifier; `None` for identifiers the spec does not define.
#[derive(Clone, Copy)]
enum ValueType {
    Byte,
    TwoByte,
    FourByte,
    VarInt,
    String,
    Binary,
    Topic,
    Pair,
}

fn value_type(property: u8) -> Option<ValueType> {
    use id::*;
    Some(match property {
        PAYLOAD_FORMAT_INDICATOR
        | REQUEST_PROBLEM_INFORMATION
        | REQUEST_RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => ValueType::Byte,
        SERVER_KEEP_ALIVE | RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | TOPIC_ALIAS => {
            ValueType::TwoByte
        }
        MESSAGE_EXPIRY_INTERVAL
        | SESSION_EXPIRY_INTERVAL
        | WILL_DELAY_INTERVAL
        | MAXIMUM_PACKET_SIZE => ValueType::FourByte,
        SUBSCRIPTION_IDENTIFIER => ValueType::VarInt,
        CONTENT_TYPE
        | ASSIGNED_CLIENT_IDENTIFIER
        | AUTHENTICATION_METHOD
        | RESPONSE_INFORMATION
        | SERVER_REFERENCE
        | REASON_STRING => ValueType::String,
        RESPONSE_TOPIC => ValueType::Topic,
        CORRELATION_DATA | AUTHENTICATION_DATA => ValueType::Binary,
        USER_PROPERTY => ValueType::Pair,
        _ => return None,
    })
}

/// A bit set of property identifiers (all defined identifiers are below 64).
const fn mask(ids: &[u8]) -> u64 {
    let mut bits = 0u64;
    let mut i = 0;
    while i < ids.len() {
        bits |= 1 << ids[i];
        i += 1;
    }
    bits
}

/// The properties of one packet kind.
///
/// `visit` lists the present properties in one place; both sizing and writing are driven by
/// it, so the size computed before writing always equals the bytes written.
pub trait PropertySet: Default {
    /// Identifiers this packet kind may carry.
    const ALLOWED: u64;
    /// Identifiers that may appear more than once.
    const REPEATABLE: u64 = mask(&[id::USER_PROPERTY]);

    /// Stores a decoded property whose identifier is in `ALLOWED`.
    fn set(&mut self, property: Property);

    /// Checks rules that involve more than one property.
    fn check(&self) -> Result<(), DecodeError> {
        Ok(())
    }

    /// Passes every present property to `sink`, in identifier order.
    fn visit<S: PropertySink>(&self, sink: &mut S);
}

/// Receives properties for sizing or writing.
pub trait PropertySink {
    fn byte(&mut self, id: u8, value: u8);
    fn two_byte(&mut self, id: u8, value: u16);
    fn four_byte(&mut self, id: u8, value: u32);
    fn var_int(&mut self, id: u8, value: u32);
    fn binary(&mut self, id: u8, field: &'static str, value: &[u8]);
    fn pair(&mut self, name: &[u8], value: &[u8]);
}

/// Sums the encoded length of the properties, remembering the first field that is too long.
struct LenSink {
    len: usize,
    error: Option<EncodeError>,
}

impl LenSink {
    fn field(&mut self, field: &'static str, len: usize) {
        match wire::field_len(field, len) {
            Ok(n) => self.len += n,
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }
}

impl PropertySink for LenSink {
    fn byte(&mut self, _: u8, _: u8) {
        self.len += 2;
    }
    fn two_byte(&mut self, _: u8, _: u16) {
        self.len += 3;
    }
    fn four_byte(&mut self, _: u8, _: u32) {
        self.len += 5;
    }
    fn var_int(&mut self, _: u8, value: u32) {
        if value > VAR_INT_MAX {
            self.error.get_or_insert(EncodeError::ValueTooLarge {
                field: "subscription identifier",
                value,
            });
            return;
        }
        self.len += 1 + wire::var_int_len(value);
    }
    fn binary(&mut self, _: u8, field: &'static str, value: &[u8]) {
        self.len += 1;
        self.field(field, value.len());
    }
    fn pair(&mut self, name: &[u8], value: &[u8]) {
        self.len += 1;
        self.field("user property name", name.len());
        self.field("user property value", value.len());
    }
}

struct WriteSink<'a, B: BufMut>(&'a mut B);

impl<B: BufMut> PropertySink for WriteSink<'_, B> {
    fn byte(&mut self, id: u8, value: u8) {
        self.0.put_u8(id);
        self.0.put_u8(value);
    }
    fn two_byte(&mut self, id: u8, value: u16) {
        self.0.put_u8(id);
        self.0.put_u16(value);
    }
    fn four_byte(&mut self, id: u8, value: u32) {
        self.0.put_u8(id);
        self.0.put_u32(value);
    }
    fn var_int(&mut self, id: u8, value: u32) {
        self.0.put_u8(id);
        wire::put_var_int(self.0, value);
    }
    fn binary(&mut self, id: u8, _: &'static str, value: &[u8]) {
        self.0.put_u8(id);
        wire::put_field(self.0, value);
    }
    fn pair(&mut self, name: &[u8], value: &[u8]) {
        self.0.put_u8(id::USER_PROPERTY);
        wire::put_field(self.0, name);
        wire::put_field(self.0, value);
    }
}

/// Length of the property bytes, without the variable byte integer that prefixes them.
pub fn properties_len<P: PropertySet>(properties: &P) -> Result<usize, EncodeError> {
    let mut sink = LenSink {
        len: 0,
        error: None,
    };
    properties.visit(&mut sink);
    match sink.error {
        Some(e) => Err(e),
        None if sink.len > VAR_INT_MAX as usize => Err(EncodeError::PacketTooLarge {
            size: sink.len,
            max: VAR_INT_MAX as usize,
        }),
        None => Ok(sink.len),
    }
}

/// Writes the length prefix and the properties. The caller sized the packet with
/// [`properties_len`] first, which is where over-long fields are reported.
pub fn put_properties<P: PropertySet>(buf: &mut impl BufMut, properties: &P) {
    let mut sink = LenSink {
        len: 0,
        error: None,
    };
    properties.visit(&mut sink);
    debug_assert!(
        sink.error.is_none(),
        "properties written without sizing them first"
    );
    wire::put_var_int(buf, sink.len as u32);
    properties.visit(&mut WriteSink(buf));
}

/// Bytes the properties take on the wire with their length prefix.
pub fn properties_wire_len<P: PropertySet>(properties: &P) -> Result<usize, EncodeError> {
    let len = properties_len(properties)?;
    Ok(wire::var_int_len(len as u32) + len)
}

/// Reads a property length and the properties after it (§2.2.2.1).
pub fn read_properties<P: PropertySet>(
    r: &mut Reader,
    packet: &'static str,
) -> Result<P, DecodeError> {
    let len = r.var_int()? as usize;
    if len == 0 {
        // Most packets carry no property: skip the loop and its bookkeeping.
        return Ok(P::default());
    }
    r.within(len, |props| {
        let mut result = P::default();
        let mut seen = 0u64;
        while !props.is_empty() {
            let raw_id = props.var_int()?;
            let id = u8::try_from(raw_id)
                .ok()
                .filter(|&id| id < 64)
                .ok_or(DecodeError::UnknownProperty { id: raw_id })?;
            let kind = value_type(id).ok_or(DecodeError::UnknownProperty { id: raw_id })?;
            let bit = 1u64 << id;
            if P::ALLOWED & bit == 0 {
                return Err(DecodeError::PropertyNotAllowed { id, packet });
            }
            if seen & bit != 0 && P::REPEATABLE & bit == 0 {
                return Err(DecodeError::DuplicateProperty { id });
            }
            seen |= bit;
            read_value(props, id, kind, &mut result)?;
        }
        result.check()?;
        Ok(result)
    })
}

/// Reads one property value and stores it in `result`.
///
/// Always inlined, and the `set` methods are inlined into it, so that each arm's `Property`
/// goes straight into its field: the match in `set` on a variant known at the call folds
/// away. Returning the `Property` and matching it in the caller instead built the enum in
/// memory and copied it back with wide loads that stalled on store forwarding: a PUBLISH
/// with six properties took a fifth longer to decode.
#[inline(always)]
fn read_value<P: PropertySet>(
    r: &mut Reader,
    id: u8,
    kind: ValueType,
    result: &mut P,
) -> Result<(), DecodeError> {
    let invalid = |value: u32| DecodeError::InvalidPropertyValue { id, value };
    let property = match kind {
        ValueType::Byte => {
            let value = r.u8()?;
            // Every byte property defined is a 0/1 flag (Maximum QoS too: 2 is sent by
            // leaving the property out, §3.2.2.3.4).
            if value > 1 {
                return Err(invalid(value.into()));
            }
            Property::Byte(id, value)
        }
        ValueType::TwoByte => {
            let value = r.u16()?;
            let zero_forbidden = matches!(id, id::RECEIVE_MAXIMUM | id::TOPIC_ALIAS);
            if zero_forbidden && value == 0 {
                return Err(invalid(0));
            }
            Property::TwoByte(id, value)
        }
        ValueType::FourByte => {
            let value = r.u32()?;
            if id == id::MAXIMUM_PACKET_SIZE && value == 0 {
                return Err(invalid(0));
            }
            Property::FourByte(id, value)
        }
        ValueType::VarInt => {
            let value = r.var_int()?;
            // The only variable byte integer property is the Subscription Identifier,
            // which must not be 0 (§3.8.2.1.2).
            if value == 0 {
                return Err(invalid(0));
            }
            Property::VarInt(id, value)
        }
        ValueType::String => Property::String(id, r.string()?),
        ValueType::Binary => Property::Binary(id, r.binary()?),
        ValueType::Topic => {
            let topic = TopicName::read(r)?;
            if topic.is_empty() {
                return Err(DecodeError::EmptyTopicName);
            }
            Property::Topic(id, topic)
        }
        ValueType::Pair => Property::User(r.string()?, r.string()?),
    };
    result.set(property);
    Ok(())
}

fn visit_user_properties<S: PropertySink>(sink: &mut S, user: &[UserProperty]) {
    for (name, value) in user {
        sink.pair(name.as_bytes(), value.as_bytes());
    }
}

fn visit_string<S: PropertySink>(
    sink: &mut S,
    id: u8,
    field: &'static str,
    s: &Option<MqttString>,
) {
    if let Some(s) = s {
        sink.binary(id, field, s.as_bytes());
    }
}

fn visit_binary<S: PropertySink>(sink: &mut S, id: u8, field: &'static str, b: &Option<Bytes>) {
    if let Some(b) = b {
        sink.binary(id, field, b);
    }
}

fn visit_flag<S: PropertySink>(sink: &mut S, id: u8, flag: Option<bool>) {
    if let Some(flag) = flag {
        sink.byte(id, u8::from(flag));
    }
}

fn visit_u16<S: PropertySink>(sink: &mut S, id: u8, value: Option<u16>) {
    if let Some(value) = value {
        sink.two_byte(id, value);
    }
}

fn visit_u32<S: PropertySink>(sink: &mut S, id: u8, value: Option<u32>) {
    if let Some(value) = value {
        sink.four_byte(id, value);
    }
}

/// The Authentication Method and Data that CONNECT, CONNACK and AUTH carry alike.
fn visit_auth<S: PropertySink>(sink: &mut S, method: &Option<MqttString>, data: &Option<Bytes>) {
    visit_string(
        sink,
        id::AUTHENTICATION_METHOD,
        "authentication method",
        method,
    );
    visit_binary(sink, id::AUTHENTICATION_DATA, "authentication data", data);
}

fn check_auth(method: &Option<MqttString>, data: &Option<Bytes>) -> Result<(), DecodeError> {
    if data.is_some() && method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    Ok(())
}

/// Values come only from `read_value`, which builds the variant that the identifier's type
/// calls for, so the `set` methods may take the variant they expect for an identifier.
fn unexpected(property: &Property) -> ! {
    unreachable!("property {property:?} does not match its identifier's type")
}
