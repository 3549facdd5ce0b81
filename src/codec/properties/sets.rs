//! The property set of each packet kind: which properties it may carry, how each is visited
//! for encoding and set when decoded.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::super::error::DecodeError;
use super::super::topic::TopicName;
use super::super::types::{MqttString, QoS, UserProperty};
use super::{
    check_auth, id, mask, unexpected, visit_auth, visit_binary, visit_flag, visit_string,
    visit_u16, visit_u32, visit_user_properties, Property, PropertySet, PropertySink,
};

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
