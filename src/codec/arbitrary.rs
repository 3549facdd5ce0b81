//! Generation of valid packets from unstructured bytes, for property tests and fuzzers.
//!
//! One generator serves both: proptest feeds it random bytes (and shrinks them), the
//! structured fuzz target feeds it libFuzzer's input. Every packet it returns is valid for the
//! protocol it was asked for, so `decode(encode(p)) == p` must hold for all of them.

use std::num::{NonZeroU16, NonZeroU32};

use arbitrary::{Result, Unstructured};
use bytes::Bytes;

use super::packet::{
    Auth, ConnAck, Connect, Disconnect, LastWill, Packet, PacketType, PubReply, Publish,
    RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use super::properties::*;
use super::reason::{ReasonCode, ReasonContext};
use super::topic::{TopicFilter, TopicName};
use super::types::{MqttString, PacketId, Protocol, QoS, QosPid, UserProperty};
use super::wire::VAR_INT_MAX;

/// Characters strings are drawn from most of the time: readable, with the topic separators
/// and a few multi-byte characters so UTF-8 lengths differ from char counts.
const ALPHABET: &[char] = &[
    'a', 'b', 'z', '0', '9', '/', '$', ' ', '-', 'é', 'ß', '中', '😀',
];

/// A valid packet of any type that exists in `protocol`.
pub fn packet(u: &mut Unstructured, protocol: Protocol) -> Result<Packet> {
    let kinds: Vec<PacketType> = PacketType::ALL
        .into_iter()
        .filter(|kind| kind.exists_in(protocol))
        .collect();
    let kind = *u.choose(&kinds)?;
    packet_of(u, protocol, kind)
}

/// A valid packet of the given type for `protocol`.
pub fn packet_of(u: &mut Unstructured, protocol: Protocol, kind: PacketType) -> Result<Packet> {
    let v5 = protocol.is_v5();
    Ok(match kind {
        PacketType::Connect => Packet::Connect(Box::new(connect(u, protocol)?)),
        PacketType::ConnAck => connack(u, protocol)?,
        PacketType::Publish => Packet::Publish(publish(u, protocol)?),
        PacketType::PubAck => Packet::PubAck(pub_reply(u, protocol, ReasonContext::PubAck)?),
        PacketType::PubRec => Packet::PubRec(pub_reply(u, protocol, ReasonContext::PubRec)?),
        PacketType::PubRel => Packet::PubRel(pub_reply(u, protocol, ReasonContext::PubRel)?),
        PacketType::PubComp => Packet::PubComp(pub_reply(u, protocol, ReasonContext::PubComp)?),
        PacketType::Subscribe => Packet::Subscribe(subscribe(u, protocol)?),
        PacketType::SubAck => suback(u, protocol)?,
        PacketType::Unsubscribe => unsubscribe(u, protocol)?,
        PacketType::UnsubAck => unsuback(u, protocol)?,
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect(if v5 {
            Disconnect {
                reason_code: reason(u, ReasonContext::Disconnect)?,
                properties: DisconnectProperties {
                    session_expiry_interval: option(u, |u| u.arbitrary())?,
                    reason_string: option(u, string)?,
                    user_properties: user_properties(u)?,
                    server_reference: option(u, string)?,
                },
            }
        } else {
            Disconnect::default()
        }),
        PacketType::Auth => auth(u)?,
    })
}

/// A CONNACK: MQTT 3 return codes or MQTT 5 reason codes and properties.
fn connack(u: &mut Unstructured, protocol: Protocol) -> Result<Packet> {
    let v5 = protocol.is_v5();
    let reason_code = if v5 {
        reason(u, ReasonContext::ConnAck)?
    } else {
        let code = u.int_in_range(0..=5)?;
        ReasonCode::from_v3_connack(code).unwrap_or_default()
    };
    Ok(Packet::ConnAck(ConnAck {
        session_present: reason_code == ReasonCode::Success && u.arbitrary()?,
        reason_code,
        properties: if v5 {
            connack_properties(u)?
        } else {
            Default::default()
        },
    }))
}

/// A SUBACK of one to four reason codes.
fn suback(u: &mut Unstructured, protocol: Protocol) -> Result<Packet> {
    let v5 = protocol.is_v5();
    let count = u.int_in_range(1..=4)?;
    let mut reason_codes = Vec::with_capacity(count);
    for _ in 0..count {
        reason_codes.push(if v5 {
            reason(u, ReasonContext::SubAck)?
        } else {
            *u.choose(&[
                ReasonCode::Success,
                ReasonCode::GrantedQoS1,
                ReasonCode::GrantedQoS2,
                ReasonCode::UnspecifiedError,
            ])?
        });
    }
    Ok(Packet::SubAck(SubAck {
        packet_id: packet_id(u)?,
        properties: if v5 {
            ack_properties(u)?
        } else {
            Default::default()
        },
        reason_codes,
    }))
}

/// An UNSUBSCRIBE of one to four filters.
fn unsubscribe(u: &mut Unstructured, protocol: Protocol) -> Result<Packet> {
    let v5 = protocol.is_v5();
    let count = u.int_in_range(1..=4)?;
    let mut filters = Vec::with_capacity(count);
    for _ in 0..count {
        filters.push(topic_filter(u)?);
    }
    Ok(Packet::Unsubscribe(Unsubscribe {
        packet_id: packet_id(u)?,
        properties: UnsubscribeProperties {
            user_properties: if v5 { user_properties(u)? } else { Vec::new() },
        },
        filters,
    }))
}

/// An UNSUBACK (reason codes in MQTT 5 only).
fn unsuback(u: &mut Unstructured, protocol: Protocol) -> Result<Packet> {
    let v5 = protocol.is_v5();
    let mut ack = UnsubAck {
        packet_id: packet_id(u)?,
        properties: AckProperties::default(),
        reason_codes: Vec::new(),
    };
    if v5 {
        ack.properties = ack_properties(u)?;
        for _ in 0..u.int_in_range(1..=4)? {
            ack.reason_codes.push(reason(u, ReasonContext::UnsubAck)?);
        }
    }
    Ok(Packet::UnsubAck(ack))
}

/// An AUTH packet (MQTT 5).
fn auth(u: &mut Unstructured) -> Result<Packet> {
    let authentication_method = option(u, string)?;
    let authentication_data = if authentication_method.is_some() {
        option(u, binary)?
    } else {
        None
    };
    Ok(Packet::Auth(Auth {
        reason_code: reason(u, ReasonContext::Auth)?,
        properties: AuthProperties {
            authentication_method,
            authentication_data,
            reason_string: option(u, string)?,
            user_properties: user_properties(u)?,
        },
    }))
}

fn connect(u: &mut Unstructured, protocol: Protocol) -> Result<Connect> {
    let v5 = protocol.is_v5();
    let username = option(u, string)?;
    // MQTT 3 sends a password only with a user name ([MQTT-3.1.2-22]).
    let password = if v5 || username.is_some() {
        option(u, binary)?
    } else {
        None
    };
    let will = if u.arbitrary()? {
        Some(LastWill {
            topic: topic_name(u)?,
            payload: binary(u)?,
            qos: qos(u)?,
            retain: u.arbitrary()?,
            properties: if v5 {
                will_properties(u)?
            } else {
                Default::default()
            },
        })
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start: u.arbitrary()?,
        keep_alive: u.arbitrary()?,
        properties: if v5 {
            connect_properties(u)?
        } else {
            Default::default()
        },
        client_id: string(u)?,
        will,
        username,
        password,
    })
}

fn publish(u: &mut Unstructured, protocol: Protocol) -> Result<Publish> {
    let v5 = protocol.is_v5();
    let properties = if v5 {
        publish_properties(u)?
    } else {
        Default::default()
    };
    // An empty topic is valid only in MQTT 5 with a topic alias.
    let topic = if properties.topic_alias.is_some() && u.arbitrary()? {
        TopicName::default()
    } else {
        topic_name(u)?
    };
    let qos_pid = match qos(u)? {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(packet_id(u)?),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(packet_id(u)?),
    };
    Ok(Publish {
        dup: qos_pid != QosPid::AtMostOnce && u.arbitrary()?,
        qos_pid,
        retain: u.arbitrary()?,
        topic,
        properties,
        payload: binary(u)?,
    })
}

fn pub_reply(u: &mut Unstructured, protocol: Protocol, context: ReasonContext) -> Result<PubReply> {
    let mut reply = PubReply::new(packet_id(u)?);
    if protocol.is_v5() {
        reply.reason_code = reason(u, context)?;
        reply.properties = ack_properties(u)?;
    }
    Ok(reply)
}

fn subscribe(u: &mut Unstructured, protocol: Protocol) -> Result<Subscribe> {
    let v5 = protocol.is_v5();
    let count = u.int_in_range(1..=4)?;
    let mut filters = Vec::with_capacity(count);
    for _ in 0..count {
        let filter = topic_filter(u)?;
        let mut options = SubscriptionOptions::new(qos(u)?);
        if v5 {
            // No Local is forbidden on shared subscriptions ([MQTT-3.8.3-4]).
            options.no_local = filter.shared().is_none() && u.arbitrary()?;
            options.retain_as_published = u.arbitrary()?;
            options.retain_handling = *u.choose(&[
                RetainHandling::SendAtSubscribe,
                RetainHandling::SendAtNewSubscribe,
                RetainHandling::DoNotSend,
            ])?;
        }
        filters.push((filter, options));
    }
    Ok(Subscribe {
        packet_id: packet_id(u)?,
        properties: if v5 {
            SubscribeProperties {
                subscription_identifier: option(u, subscription_identifier)?,
                user_properties: user_properties(u)?,
            }
        } else {
            Default::default()
        },
        filters,
    })
}

fn connect_properties(u: &mut Unstructured) -> Result<ConnectProperties> {
    let authentication_method = option(u, string)?;
    Ok(ConnectProperties {
        session_expiry_interval: option(u, |u| u.arbitrary())?,
        receive_maximum: option(u, |u| u.arbitrary::<NonZeroU16>())?,
        maximum_packet_size: option(u, |u| u.arbitrary::<NonZeroU32>())?,
        topic_alias_maximum: option(u, |u| u.arbitrary())?,
        request_response_information: option(u, |u| u.arbitrary())?,
        request_problem_information: option(u, |u| u.arbitrary())?,
        user_properties: user_properties(u)?,
        authentication_data: match authentication_method {
            Some(_) => option(u, binary)?,
            None => None,
        },
        authentication_method,
    })
}

fn will_properties(u: &mut Unstructured) -> Result<WillProperties> {
    Ok(WillProperties {
        will_delay_interval: option(u, |u| u.arbitrary())?,
        payload_format_indicator: option(u, |u| u.arbitrary())?,
        message_expiry_interval: option(u, |u| u.arbitrary())?,
        content_type: option(u, string)?,
        response_topic: option(u, topic_name)?,
        correlation_data: option(u, binary)?,
        user_properties: user_properties(u)?,
    })
}

fn connack_properties(u: &mut Unstructured) -> Result<ConnAckProperties> {
    let authentication_method = option(u, string)?;
    Ok(ConnAckProperties {
        session_expiry_interval: option(u, |u| u.arbitrary())?,
        receive_maximum: option(u, |u| u.arbitrary::<NonZeroU16>())?,
        maximum_qos: option(u, |u| Ok(*u.choose(&[QoS::AtMostOnce, QoS::AtLeastOnce])?))?,
        retain_available: option(u, |u| u.arbitrary())?,
        maximum_packet_size: option(u, |u| u.arbitrary::<NonZeroU32>())?,
        assigned_client_identifier: option(u, string)?,
        topic_alias_maximum: option(u, |u| u.arbitrary())?,
        reason_string: option(u, string)?,
        user_properties: user_properties(u)?,
        wildcard_subscription_available: option(u, |u| u.arbitrary())?,
        subscription_identifiers_available: option(u, |u| u.arbitrary())?,
        shared_subscription_available: option(u, |u| u.arbitrary())?,
        server_keep_alive: option(u, |u| u.arbitrary())?,
        response_information: option(u, string)?,
        server_reference: option(u, string)?,
        authentication_data: match authentication_method {
            Some(_) => option(u, binary)?,
            None => None,
        },
        authentication_method,
    })
}

fn publish_properties(u: &mut Unstructured) -> Result<PublishProperties> {
    let mut subscription_identifiers = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        subscription_identifiers.push(subscription_identifier(u)?);
    }
    Ok(PublishProperties {
        payload_format_indicator: option(u, |u| u.arbitrary())?,
        message_expiry_interval: option(u, |u| u.arbitrary())?,
        topic_alias: option(u, |u| u.arbitrary::<NonZeroU16>())?,
        response_topic: option(u, topic_name)?,
        correlation_data: option(u, binary)?,
        user_properties: user_properties(u)?,
        subscription_identifiers,
        content_type: option(u, string)?,
    })
}

fn ack_properties(u: &mut Unstructured) -> Result<AckProperties> {
    Ok(AckProperties {
        reason_string: option(u, string)?,
        user_properties: user_properties(u)?,
    })
}

fn user_properties(u: &mut Unstructured) -> Result<Vec<UserProperty>> {
    let count = u.int_in_range(0..=3)?;
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        pairs.push((string(u)?, string(u)?));
    }
    Ok(pairs)
}

fn option<T>(
    u: &mut Unstructured,
    value: impl FnOnce(&mut Unstructured) -> Result<T>,
) -> Result<Option<T>> {
    if u.arbitrary()? {
        Ok(Some(value(u)?))
    } else {
        Ok(None)
    }
}

fn reason(u: &mut Unstructured, context: ReasonContext) -> Result<ReasonCode> {
    let valid: Vec<ReasonCode> = ReasonCode::ALL
        .iter()
        .copied()
        .filter(|code| code.is_valid_for(context))
        .collect();
    Ok(*u.choose(&valid)?)
}

fn packet_id(u: &mut Unstructured) -> Result<PacketId> {
    Ok(PacketId::new(u.arbitrary::<NonZeroU16>()?.get()).unwrap_or(PacketId::MIN))
}

fn qos(u: &mut Unstructured) -> Result<QoS> {
    Ok(*u.choose(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])?)
}

fn subscription_identifier(u: &mut Unstructured) -> Result<NonZeroU32> {
    let value = u.int_in_range(1..=VAR_INT_MAX)?;
    Ok(NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN))
}

/// Any character but U+0000, mostly from a small alphabet.
fn char_without_null(u: &mut Unstructured) -> Result<char> {
    if u.ratio(3, 4)? {
        return Ok(*u.choose(ALPHABET)?);
    }
    let c: char = u.arbitrary()?;
    Ok(if c == '\0' { 'x' } else { c })
}

fn string(u: &mut Unstructured) -> Result<MqttString> {
    let len = u.int_in_range(0..=12)?;
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        s.push(char_without_null(u)?);
    }
    // The text is at most 12 characters of at most 4 bytes and has no U+0000.
    Ok(MqttString::new(&s).expect("generated string is valid"))
}

fn binary(u: &mut Unstructured) -> Result<Bytes> {
    let len = u.int_in_range(0..=64)?;
    Ok(Bytes::copy_from_slice(u.bytes(len)?))
}

/// One level of a topic: no wildcards, no separator.
fn level(u: &mut Unstructured) -> Result<String> {
    let len = u.int_in_range(0..=6)?;
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        let c = char_without_null(u)?;
        s.push(if matches!(c, '+' | '#' | '/') { '_' } else { c });
    }
    Ok(s)
}

fn topic_name(u: &mut Unstructured) -> Result<TopicName> {
    let levels = u.int_in_range(1..=4)?;
    let mut topic = String::new();
    for i in 0..levels {
        if i > 0 {
            topic.push('/');
        }
        topic.push_str(&level(u)?);
    }
    if topic.is_empty() {
        topic.push('t');
    }
    // Levels have no wildcards and no U+0000, and the name is not empty.
    Ok(TopicName::new(&topic).expect("generated topic name is valid"))
}

fn topic_filter(u: &mut Unstructured) -> Result<TopicFilter> {
    let levels = u.int_in_range(1..=4)?;
    let mut filter = String::new();
    if u.ratio(1, 5)? {
        filter.push_str("$share/");
        let group = level(u)?;
        filter.push_str(if group.is_empty() { "g" } else { &group });
        filter.push('/');
    }
    let prefix_len = filter.len();
    for i in 0..levels {
        if i > 0 {
            filter.push('/');
        }
        match u.int_in_range(0..=5)? {
            0 => filter.push('+'),
            1 if i == levels - 1 => filter.push('#'),
            _ => filter.push_str(&level(u)?),
        }
    }
    if filter.len() == prefix_len {
        filter.push('f');
    }
    // Wildcards stand only as whole levels and '#' only last, the group has no wildcard or
    // separator, and the filter is not empty.
    Ok(TopicFilter::new(&filter).expect("generated topic filter is valid"))
}
