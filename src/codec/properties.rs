//! MQTT 5 properties (§2.2.2): one struct per packet kind, so a property that a packet may not
//! carry cannot be represented in it; one decode loop that enforces which identifiers each
//! packet allows, that none repeats unless the spec allows it, and that values are in range.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{BufMut, Bytes};
use serde::{Deserialize, Serialize};

use super::error::{DecodeError, EncodeError};
use super::topic::TopicName;
use super::types::{MqttString, QoS, UserProperty};
use super::wire::{self, Reader, VAR_INT_MAX};

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

/// Properties of CONNECT (§3.1.2.11).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<NonZeroU16>,
    pub maximum_packet_size: Option<NonZeroU32>,
    pub topic_alias_maximum: Option<u16>,
    pub request_response_information: Option<bool>,
    pub request_problem_information: Option<bool>,
    pub user_properties: Vec<UserProperty>,
    pub authentication_method: Option<MqttString>,
    pub authentication_data: Option<Bytes>,
}

impl PropertySet for ConnectProperties {
    const ALLOWED: u64 = mask(&[
        id::SESSION_EXPIRY_INTERVAL,
        id::RECEIVE_MAXIMUM,
        id::MAXIMUM_PACKET_SIZE,
        id::TOPIC_ALIAS_MAXIMUM,
        id::REQUEST_RESPONSE_INFORMATION,
        id::REQUEST_PROBLEM_INFORMATION,
        id::USER_PROPERTY,
        id::AUTHENTICATION_METHOD,
        id::AUTHENTICATION_DATA,
    ]);

    #[inline(always)]
    fn set(&mut self, property: Property) {
        match property {
            Property::FourByte(id::SESSION_EXPIRY_INTERVAL, v) => {
                self.session_expiry_interval = Some(v)
            }
            Property::TwoByte(id::RECEIVE_MAXIMUM, v) => self.receive_maximum = NonZeroU16::new(v),
            Property::FourByte(id::MAXIMUM_PACKET_SIZE, v) => {
                self.maximum_packet_size = NonZeroU32::new(v)
            }
            Property::TwoByte(id::TOPIC_ALIAS_MAXIMUM, v) => self.topic_alias_maximum = Some(v),
            Property::Byte(id::REQUEST_RESPONSE_INFORMATION, v) => {
                self.request_response_information = Some(v == 1)
            }
            Property::Byte(id::REQUEST_PROBLEM_INFORMATION, v) => {
                self.request_problem_information = Some(v == 1)
            }
            Property::User(k, v) => self.user_properties.push((k, v)),
            Property::String(id::AUTHENTICATION_METHOD, v) => self.authentication_method = Some(v),
            Property::Binary(id::AUTHENTICATION_DATA, v) => self.authentication_data = Some(v),
            other => unexpected(&other),
        }
    }

    fn check(&self) -> Result<(), DecodeError> {
        check_auth(&self.authentication_method, &self.authentication_data)
    }

    fn visit<S: PropertySink>(&self, sink: &mut S) {
        visit_u32(
            sink,
            id::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        visit_auth(sink, &self.authentication_method, &self.authentication_data);
        visit_flag(
            sink,
            id::REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        visit_flag(
            sink,
            id::REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        visit_u16(
            sink,
            id::RECEIVE_MAXIMUM,
            self.receive_maximum.map(NonZeroU16::get),
        );
        visit_u16(sink, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        visit_user_properties(sink, &self.user_properties);
        visit_u32(
            sink,
            id::MAXIMUM_PACKET_SIZE,
            self.maximum_packet_size.map(NonZeroU32::get),
        );
    }
}

/// Properties of the will message in the CONNECT payload (§3.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WillProperties {
    pub will_delay_interval: Option<u32>,
    /// `Some(true)`: the payload is UTF-8 text; `Some(false)`: unspecified bytes.
    pub payload_format_indicator: Option<bool>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<MqttString>,
    pub response_topic: Option<TopicName>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
}

impl PropertySet for WillProperties {
    const ALLOWED: u64 = mask(&[
        id::WILL_DELAY_INTERVAL,
        id::PAYLOAD_FORMAT_INDICATOR,
        id::MESSAGE_EXPIRY_INTERVAL,
        id::CONTENT_TYPE,
        id::RESPONSE_TOPIC,
        id::CORRELATION_DATA,
        id::USER_PROPERTY,
    ]);

    #[inline(always)]
    fn set(&mut self, property: Property) {
        match property {
            Property::FourByte(id::WILL_DELAY_INTERVAL, v) => self.will_delay_interval = Some(v),
            Property::Byte(id::PAYLOAD_FORMAT_INDICATOR, v) => {
                self.payload_format_indicator = Some(v == 1)
            }
            Property::FourByte(id::MESSAGE_EXPIRY_INTERVAL, v) => {
                self.message_expiry_interval = Some(v)
            }
            Property::String(id::CONTENT_TYPE, v) => self.content_type = Some(v),
            Property::Topic(id::RESPONSE_TOPIC, v) => self.response_topic = Some(v),
            Property::Binary(id::CORRELATION_DATA, v) => self.correlation_data = Some(v),
            Property::User(k, v) => self.user_properties.push((k, v)),
            other => unexpected(&other),
        }
    }

    fn visit<S: PropertySink>(&self, sink: &mut S) {
        visit_flag(
            sink,
            id::PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator,
        );
        visit_u32(
            sink,
            id::MESSAGE_EXPIRY_INTERVAL,
            self.message_expiry_interval,
        );
        visit_string(sink, id::CONTENT_TYPE, "content type", &self.content_type);
        if let Some(topic) = &self.response_topic {
            sink.binary(id::RESPONSE_TOPIC, "response topic", topic.as_bytes());
        }
        visit_binary(
            sink,
            id::CORRELATION_DATA,
            "correlation data",
            &self.correlation_data,
        );
        visit_u32(sink, id::WILL_DELAY_INTERVAL, self.will_delay_interval);
        visit_user_properties(sink, &self.user_properties);
    }
}

/// Properties of CONNACK (§3.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<NonZeroU16>,
    /// Absent means QoS 2 is supported; only 0 and 1 may be sent, so `Some(ExactlyOnce)` is
    /// written as absent.
    pub maximum_qos: Option<QoS>,
    pub retain_available: Option<bool>,
    pub maximum_packet_size: Option<NonZeroU32>,
    pub assigned_client_identifier: Option<MqttString>,
    pub topic_alias_maximum: Option<u16>,
    pub reason_string: Option<MqttString>,
    pub user_properties: Vec<UserProperty>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifiers_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
    pub server_keep_alive: Option<u16>,
    pub response_information: Option<MqttString>,
    pub server_reference: Option<MqttString>,
    pub authentication_method: Option<MqttString>,
    pub authentication_data: Option<Bytes>,
}

impl PropertySet for ConnAckProperties {
    const ALLOWED: u64 = mask(&[
        id::SESSION_EXPIRY_INTERVAL,
        id::RECEIVE_MAXIMUM,
        id::MAXIMUM_QOS,
        id::RETAIN_AVAILABLE,
        id::MAXIMUM_PACKET_SIZE,
        id::ASSIGNED_CLIENT_IDENTIFIER,
        id::TOPIC_ALIAS_MAXIMUM,
        id::REASON_STRING,
        id::USER_PROPERTY,
        id::WILDCARD_SUBSCRIPTION_AVAILABLE,
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        id::SHARED_SUBSCRIPTION_AVAILABLE,
        id::SERVER_KEEP_ALIVE,
        id::RESPONSE_INFORMATION,
        id::SERVER_REFERENCE,
        id::AUTHENTICATION_METHOD,
        id::AUTHENTICATION_DATA,
    ]);

    #[inline(always)]
    fn set(&mut self, property: Property) {
        match property {
            Property::FourByte(id::SESSION_EXPIRY_INTERVAL, v) => {
                self.session_expiry_interval = Some(v)
            }
            Property::TwoByte(id::RECEIVE_MAXIMUM, v) => self.receive_maximum = NonZeroU16::new(v),
            Property::Byte(id::MAXIMUM_QOS, v) => self.maximum_qos = QoS::from_bits(v),
            Property::Byte(id::RETAIN_AVAILABLE, v) => self.retain_available = Some(v == 1),
            Property::FourByte(id::MAXIMUM_PACKET_SIZE, v) => {
                self.maximum_packet_size = NonZeroU32::new(v)
            }
            Property::String(id::ASSIGNED_CLIENT_IDENTIFIER, v) => {
                self.assigned_client_identifier = Some(v)
            }
            Property::TwoByte(id::TOPIC_ALIAS_MAXIMUM, v) => self.topic_alias_maximum = Some(v),
            Property::String(id::REASON_STRING, v) => self.reason_string = Some(v),
            Property::User(k, v) => self.user_properties.push((k, v)),
            Property::Byte(id::WILDCARD_SUBSCRIPTION_AVAILABLE, v) => {
                self.wildcard_subscription_available = Some(v == 1)
            }
            Property::Byte(id::SUBSCRIPTION_IDENTIFIER_AVAILABLE, v) => {
                self.subscription_identifiers_available = Some(v == 1)
            }
            Property::Byte(id::SHARED_SUBSCRIPTION_AVAILABLE, v) => {
                self.shared_subscription_available = Some(v == 1)
            }
            Property::TwoByte(id::SERVER_KEEP_ALIVE, v) => self.server_keep_alive = Some(v),
            Property::String(id::RESPONSE_INFORMATION, v) => self.response_information = Some(v),
            Property::String(id::SERVER_REFERENCE, v) => self.server_reference = Some(v),
            Property::String(id::AUTHENTICATION_METHOD, v) => self.authentication_method = Some(v),
            Property::Binary(id::AUTHENTICATION_DATA, v) => self.authentication_data = Some(v),
            other => unexpected(&other),
        }
    }

    fn check(&self) -> Result<(), DecodeError> {
        check_auth(&self.authentication_method, &self.authentication_data)
    }

    fn visit<S: PropertySink>(&self, sink: &mut S) {
        visit_u32(
            sink,
            id::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        visit_string(
            sink,
            id::ASSIGNED_CLIENT_IDENTIFIER,
            "assigned client identifier",
            &self.assigned_client_identifier,
        );
        visit_u16(sink, id::SERVER_KEEP_ALIVE, self.server_keep_alive);
        visit_auth(sink, &self.authentication_method, &self.authentication_data);
        visit_string(
            sink,
            id::RESPONSE_INFORMATION,
            "response information",
            &self.response_information,
        );
        visit_string(
            sink,
            id::SERVER_REFERENCE,
            "server reference",
            &self.server_reference,
        );
        visit_string(
            sink,
            id::REASON_STRING,
            "reason string",
            &self.reason_string,
        );
        visit_u16(
            sink,
            id::RECEIVE_MAXIMUM,
            self.receive_maximum.map(NonZeroU16::get),
        );
        visit_u16(sink, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        // The property may only carry 0 or 1 (§3.2.2.3.4): QoS 2 is said by leaving it out.
        if let Some(qos) = self.maximum_qos.filter(|&qos| qos != QoS::ExactlyOnce) {
            sink.byte(id::MAXIMUM_QOS, qos as u8);
        }
        visit_flag(sink, id::RETAIN_AVAILABLE, self.retain_available);
        visit_user_properties(sink, &self.user_properties);
        visit_u32(
            sink,
            id::MAXIMUM_PACKET_SIZE,
            self.maximum_packet_size.map(NonZeroU32::get),
        );
        visit_flag(
            sink,
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        visit_flag(
            sink,
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        visit_flag(
            sink,
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
    }
}

/// Properties of PUBLISH (§3.3.2.3).
///
/// Serde (for durable state) keeps every field; the strings, topic and non-zero numbers check
/// their rules again when read back.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PublishProperties {
    /// `Some(true)`: the payload is UTF-8 text; `Some(false)`: unspecified bytes.
    pub payload_format_indicator: Option<bool>,
    pub message_expiry_interval: Option<u32>,
    pub topic_alias: Option<NonZeroU16>,
    pub response_topic: Option<TopicName>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
    /// One per matching subscription that had an identifier (server to client only).
    pub subscription_identifiers: Vec<NonZeroU32>,
    pub content_type: Option<MqttString>,
}

impl PublishProperties {
    /// True when no property is present, the common case worth a fast path.
    ///
    /// Field by field rather than by comparing with the default, which compares the string
    /// and binary fields in full: this is on the path of every publish encoded. Destructured
    /// without `..`, so that a property added to the struct cannot be missed here.
    pub fn is_empty(&self) -> bool {
        let PublishProperties {
            payload_format_indicator,
            message_expiry_interval,
            topic_alias,
            response_topic,
            correlation_data,
            user_properties,
            subscription_identifiers,
            content_type,
        } = self;
        payload_format_indicator.is_none()
            && message_expiry_interval.is_none()
            && topic_alias.is_none()
            && response_topic.is_none()
            && correlation_data.is_none()
            && user_properties.is_empty()
            && subscription_identifiers.is_empty()
            && content_type.is_none()
    }
}

impl PropertySet for PublishProperties {
    const ALLOWED: u64 = mask(&[
        id::PAYLOAD_FORMAT_INDICATOR,
        id::MESSAGE_EXPIRY_INTERVAL,
        id::TOPIC_ALIAS,
        id::RESPONSE_TOPIC,
        id::CORRELATION_DATA,
        id::USER_PROPERTY,
        id::SUBSCRIPTION_IDENTIFIER,
        id::CONTENT_TYPE,
    ]);
    const REPEATABLE: u64 = mask(&[id::USER_PROPERTY, id::SUBSCRIPTION_IDENTIFIER]);

    #[inline(always)]
    fn set(&mut self, property: Property) {
        match property {
            Property::Byte(id::PAYLOAD_FORMAT_INDICATOR, v) => {
                self.payload_format_indicator = Some(v == 1)
            }
            Property::FourByte(id::MESSAGE_EXPIRY_INTERVAL, v) => {
                self.message_expiry_interval = Some(v)
            }
            Property::TwoByte(id::TOPIC_ALIAS, v) => self.topic_alias = NonZeroU16::new(v),
            Property::Topic(id::RESPONSE_TOPIC, v) => self.response_topic = Some(v),
            Property::Binary(id::CORRELATION_DATA, v) => self.correlation_data = Some(v),
            Property::User(k, v) => self.user_properties.push((k, v)),
            Property::VarInt(id::SUBSCRIPTION_IDENTIFIER, v) => {
                self.subscription_identifiers.extend(NonZeroU32::new(v))
            }
            Property::String(id::CONTENT_TYPE, v) => self.content_type = Some(v),
            other => unexpected(&other),
        }
    }

    fn visit<S: PropertySink>(&self, sink: &mut S) {
        visit_flag(
            sink,
            id::PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator,
        );
        visit_u32(
            sink,
            id::MESSAGE_EXPIRY_INTERVAL,
            self.message_expiry_interval,
        );
        visit_string(sink, id::CONTENT_TYPE, "content type", &self.content_type);
        if let Some(topic) = &self.response_topic {
            sink.binary(id::RESPONSE_TOPIC, "response topic", topic.as_bytes());
        }
        visit_binary(
            sink,
            id::CORRELATION_DATA,
            "correlation data",
            &self.correlation_data,
        );
        for sub_id in &self.subscription_identifiers {
            sink.var_int(id::SUBSCRIPTION_IDENTIFIER, sub_id.get());
        }
        visit_u16(sink, id::TOPIC_ALIAS, self.topic_alias.map(NonZeroU16::get));
        visit_user_properties(sink, &self.user_properties);
    }
}

/// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK: a reason string and
/// user properties (§3.4.2.2 and its siblings).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    pub reason_string: Option<MqttString>,
    pub user_properties: Vec<UserProperty>,
}

impl AckProperties {
    pub fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }
}

impl PropertySet for AckProperties {
    const ALLOWED: u64 = mask(&[id::REASON_STRING, id::USER_PROPERTY]);

    #[inline(always)]
    fn set(&mut self, property: Property) {
        match property {
            Property::String(id::REASON_STRING, v) => self.reason_string = Some(v),
            Property::User(k, v) => self.user_properties.push((k, v)),
            other => unexpected(&other),
        }
    }

    fn visit<S: PropertySink>(&self, sink: &mut S) {
        visit_string(
            sink,
            id::REASON_STRING,
            "reason string",
            &self.reason_string,
        );
        visit_user_properties(sink, &self.user_properties);
    }
}

/// Properties of SUBSCRIBE (§3.8.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeProperties {
    /// At most one; 1 to 268,435,455.
    pub subscription_identifier: Option<NonZeroU32>,
    pub user_properties: Vec<UserProperty>,
}

impl PropertySet for SubscribeProperties {
    const ALLOWED: u64 = mask(&[id::SUBSCRIPTION_IDENTIFIER, id::USER_PROPERTY]);

    #[inline(always)]
    fn set(&mut self, property: Property) {
        match property {
            Property::VarInt(id::SUBSCRIPTION_IDENTIFIER, v) => {
                self.subscription_identifier = NonZeroU32::new(v)
            }
            Property::User(k, v) => self.user_properties.push((k, v)),
            other => unexpected(&other),
        }
    }

    fn visit<S: PropertySink>(&self, sink: &mut S) {
        if let Some(sub_id) = self.subscription_identifier {
            sink.var_int(id::SUBSCRIPTION_IDENTIFIER, sub_id.get());
        }
        visit_user_properties(sink, &self.user_properties);
    }
}

/// Properties of UNSUBSCRIBE (§3.10.2.1): user properties only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnsubscribeProperties {
    pub user_properties: Vec<UserProperty>,
}

impl PropertySet for UnsubscribeProperties {
    const ALLOWED: u64 = mask(&[id::USER_PROPERTY]);

    #[inline(always)]
    fn set(&mut self, property: Property) {
        match property {
            Property::User(k, v) => self.user_properties.push((k, v)),
            other => unexpected(&other),
        }
    }

    fn visit<S: PropertySink>(&self, sink: &mut S) {
        visit_user_properties(sink, &self.user_properties);
    }
}

/// Properties of DISCONNECT (§3.14.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectProperties {
    pub session_expiry_interval: Option<u32>,
    pub reason_string: Option<MqttString>,
    pub user_properties: Vec<UserProperty>,
    pub server_reference: Option<MqttString>,
}

impl DisconnectProperties {
    pub fn is_empty(&self) -> bool {
        *self == DisconnectProperties::default()
    }
}

impl PropertySet for DisconnectProperties {
    const ALLOWED: u64 = mask(&[
        id::SESSION_EXPIRY_INTERVAL,
        id::REASON_STRING,
        id::USER_PROPERTY,
        id::SERVER_REFERENCE,
    ]);

    #[inline(always)]
    fn set(&mut self, property: Property) {
        match property {
            Property::FourByte(id::SESSION_EXPIRY_INTERVAL, v) => {
                self.session_expiry_interval = Some(v)
            }
            Property::String(id::REASON_STRING, v) => self.reason_string = Some(v),
            Property::User(k, v) => self.user_properties.push((k, v)),
            Property::String(id::SERVER_REFERENCE, v) => self.server_reference = Some(v),
            other => unexpected(&other),
        }
    }

    fn visit<S: PropertySink>(&self, sink: &mut S) {
        visit_u32(
            sink,
            id::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        visit_string(
            sink,
            id::SERVER_REFERENCE,
            "server reference",
            &self.server_reference,
        );
        visit_string(
            sink,
            id::REASON_STRING,
            "reason string",
            &self.reason_string,
        );
        visit_user_properties(sink, &self.user_properties);
    }
}

/// Properties of AUTH (§3.15.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthProperties {
    pub authentication_method: Option<MqttString>,
    pub authentication_data: Option<Bytes>,
    pub reason_string: Option<MqttString>,
    pub user_properties: Vec<UserProperty>,
}

impl AuthProperties {
    pub fn is_empty(&self) -> bool {
        *self == AuthProperties::default()
    }
}

impl PropertySet for AuthProperties {
    const ALLOWED: u64 = mask(&[
        id::AUTHENTICATION_METHOD,
        id::AUTHENTICATION_DATA,
        id::REASON_STRING,
        id::USER_PROPERTY,
    ]);

    #[inline(always)]
    fn set(&mut self, property: Property) {
        match property {
            Property::String(id::AUTHENTICATION_METHOD, v) => self.authentication_method = Some(v),
            Property::Binary(id::AUTHENTICATION_DATA, v) => self.authentication_data = Some(v),
            Property::String(id::REASON_STRING, v) => self.reason_string = Some(v),
            Property::User(k, v) => self.user_properties.push((k, v)),
            other => unexpected(&other),
        }
    }

    fn check(&self) -> Result<(), DecodeError> {
        check_auth(&self.authentication_method, &self.authentication_data)
    }

    fn visit<S: PropertySink>(&self, sink: &mut S) {
        visit_auth(sink, &self.authentication_method, &self.authentication_data);
        visit_string(
            sink,
            id::REASON_STRING,
            "reason string",
            &self.reason_string,
        );
        visit_user_properties(sink, &self.user_properties);
    }
}
