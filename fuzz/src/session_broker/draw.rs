//! What the `session_broker` harness draws: CONNECTs and the packets clients send, mostly on
//! small sets of ids, topics and filters so that they meet; and the authenticator it runs.

use std::num::{NonZeroU16, NonZeroU32};

use arbitrary::{Result, Unstructured};
use bytes::Bytes;
use keel::codec::{
    Auth, Connect, MqttString, Packet, PacketId, PacketType, Protocol, QosPid, ReasonCode,
    TopicFilter, TopicName,
};
use keel::session::{AuthExchange, AuthStep, Authenticator};

use super::{CLIENT_IDS, FILTERS, METHOD, TOPICS};

/// A CONNECT of `protocol` with a client id from [`CLIENT_IDS`], expiry and keep-alive mostly
/// short, and sometimes enhanced authentication by [`METHOD`].
pub(super) fn draw_connect(u: &mut Unstructured, protocol: Protocol) -> Result<Connect> {
    let Packet::Connect(connect) =
        keel::codec::arbitrary::packet_of(u, protocol, PacketType::Connect)?
    else {
        unreachable!("packet_of(Connect) makes a CONNECT");
    };
    let mut connect = *connect;
    connect.client_id = MqttString::new(u.choose(&CLIENT_IDS)?).expect("valid id");
    connect.keep_alive = *u.choose(&[0, 0, 1, 10, connect.keep_alive])?;
    if let Some(will) = &mut connect.will {
        if u.ratio(3, 4)? {
            will.topic = topic(u)?;
        }
        if u.ratio(3, 4)? {
            will.properties.will_delay_interval = *u.choose(&[None, Some(0), Some(5)])?;
        }
    }
    if protocol.is_v5() {
        let properties = &mut connect.properties;
        properties.session_expiry_interval = *u.choose(&[
            None,
            Some(0),
            Some(5),
            Some(3600),
            Some(u32::MAX),
            properties.session_expiry_interval,
        ])?;
        properties.receive_maximum = *u.choose(&[
            None,
            NonZeroU16::new(1),
            NonZeroU16::new(2),
            properties.receive_maximum,
        ])?;
        properties.maximum_packet_size = *u.choose(&[
            None,
            None,
            NonZeroU32::new(24),
            NonZeroU32::new(64),
            properties.maximum_packet_size,
        ])?;
        properties.topic_alias_maximum =
            *u.choose(&[None, Some(1), Some(3), properties.topic_alias_maximum])?;
        if u.ratio(1, 6)? {
            properties.authentication_method = Some(MqttString::new(METHOD).expect("valid"));
        } else if u.ratio(7, 8)? {
            properties.authentication_method = None;
        }
        if properties.authentication_method.is_none() {
            properties.authentication_data = None;
        }
    }
    Ok(connect)
}

/// Packets a client sends, publishes most; a DISCONNECT ends the connection, so it is rarer.
const CLIENT_KINDS: [PacketType; 12] = [
    PacketType::Publish,
    PacketType::Publish,
    PacketType::Publish,
    PacketType::Subscribe,
    PacketType::Subscribe,
    PacketType::Unsubscribe,
    PacketType::PubAck,
    PacketType::PubRec,
    PacketType::PubRel,
    PacketType::PubComp,
    PacketType::PingReq,
    PacketType::Auth,
];

/// A valid packet of `protocol`, mostly one a client sends (sometimes any, a server's
/// included), with topics, filters and packet ids mostly from small sets.
pub(super) fn draw_packet(u: &mut Unstructured, protocol: Protocol) -> Result<Packet> {
    let kind = *u.choose(&CLIENT_KINDS)?;
    let mut packet = if kind.exists_in(protocol) && u.ratio(7, 8)? {
        keel::codec::arbitrary::packet_of(u, protocol, kind)?
    } else {
        keel::codec::arbitrary::packet(u, protocol)?
    };
    let small_ids: bool = u.ratio(3, 4)?;
    match &mut packet {
        Packet::Publish(publish) => {
            if u.ratio(3, 4)? && !publish.topic.is_empty() {
                publish.topic = topic(u)?;
            }
            if small_ids {
                publish.qos_pid = match publish.qos_pid {
                    QosPid::AtMostOnce => QosPid::AtMostOnce,
                    QosPid::AtLeastOnce(id) => QosPid::AtLeastOnce(small(id)),
                    QosPid::ExactlyOnce(id) => QosPid::ExactlyOnce(small(id)),
                };
            }
            if u.ratio(3, 4)? {
                publish.properties.subscription_identifiers.clear();
            }
            if u.ratio(1, 2)? {
                publish.properties.topic_alias =
                    *u.choose(&[None, NonZeroU16::new(1), NonZeroU16::new(2)])?;
            }
        }
        Packet::Subscribe(subscribe) => {
            for (filter, options) in &mut subscribe.filters {
                if u.ratio(3, 4)? {
                    *filter = TopicFilter::new(u.choose(&FILTERS)?).expect("valid filter");
                    // No Local is not allowed on a shared subscription ([MQTT-3.8.3-4]).
                    if filter.shared().is_some() {
                        options.no_local = false;
                    }
                }
            }
            if small_ids {
                subscribe.packet_id = small(subscribe.packet_id);
            }
        }
        Packet::Unsubscribe(unsubscribe) => {
            for filter in &mut unsubscribe.filters {
                if u.ratio(3, 4)? {
                    *filter = TopicFilter::new(u.choose(&FILTERS)?).expect("valid filter");
                }
            }
        }
        Packet::PubAck(reply)
        | Packet::PubRec(reply)
        | Packet::PubRel(reply)
        | Packet::PubComp(reply)
            if small_ids =>
        {
            reply.packet_id = small(reply.packet_id);
        }
        Packet::Auth(Auth { properties, .. }) if u.ratio(3, 4)? => {
            properties.authentication_method = Some(MqttString::new(METHOD).expect("valid"));
        }
        _ => {}
    }
    Ok(packet)
}

fn topic(u: &mut Unstructured) -> Result<TopicName> {
    Ok(TopicName::new(u.choose(&TOPICS)?).expect("valid topic"))
}

/// A packet id from 1 to 4, so that packets of the client and the server collide.
fn small(id: PacketId) -> PacketId {
    PacketId::new(1 + id.get() % 4).expect("not zero")
}

/// Accepts every client; offers enhanced authentication by [`METHOD`], whose outcome the
/// client's data decides (see [`FuzzExchange`]).
pub(super) struct FuzzAuth;

impl Authenticator for FuzzAuth {
    fn authenticate(&self, _: &Connect) -> std::result::Result<(), ReasonCode> {
        Ok(())
    }

    fn start_exchange(&self, method: &str) -> Option<Box<dyn AuthExchange>> {
        (method == METHOD).then(|| Box::new(FuzzExchange) as Box<dyn AuthExchange>)
    }
}

/// Empty data: continue; first byte 0: refuse; 1: user "v"; anything else: user "u".
#[derive(Debug)]
struct FuzzExchange;

impl AuthExchange for FuzzExchange {
    fn step(&mut self, data: &[u8]) -> AuthStep {
        match data.first() {
            None => AuthStep::Continue(Bytes::from_static(b"more")),
            Some(0) => AuthStep::Failure(ReasonCode::NotAuthorized),
            Some(1) => AuthStep::Success {
                username: "v".to_owned(),
                data: None,
            },
            Some(_) => AuthStep::Success {
                username: "u".to_owned(),
                data: Some(Bytes::from_static(b"ok")),
            },
        }
    }
}
