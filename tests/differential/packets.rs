//! The packets a scenario step sends, built with Keel's codec types from the step's plain
//! description (the same bytes go to both brokers).

use bytes::Bytes;
use keel::codec::{
    Connect, ConnectProperties, Disconnect, DisconnectProperties, MqttString, PacketId, Protocol,
    Publish, PublishProperties, QoS, QosPid, ReasonCode, RetainHandling, Subscribe,
    SubscribeProperties, SubscriptionOptions, TopicFilter, TopicName, Unsubscribe,
    UnsubscribeProperties,
};

use super::scenario::{ConnectSpec, Expiry, Subscription, Version};

pub fn protocol(version: Version) -> Protocol {
    match version {
        Version::V3 => Protocol::V3_1_1,
        Version::V5 => Protocol::V5,
    }
}

/// A QoS from the scenario's 0..=2.
pub fn qos(level: u8) -> QoS {
    QoS::from_bits(level).unwrap_or_else(|| panic!("the generator drew QoS {level}"))
}

/// A packet id for the `n`th packet of a connection that needs one (ids start at 1 and wrap
/// past 0, which is not an id).
pub fn packet_id(n: u16) -> PacketId {
    PacketId::new(n.max(1)).unwrap_or_else(|| unreachable!("max(1) is not 0"))
}

/// A client id, topic or filter the test built itself: always valid.
fn string(s: &str) -> MqttString {
    MqttString::new(s).unwrap_or_else(|e| panic!("the test built an invalid string {s:?}: {e}"))
}

pub fn connect(spec: &ConnectSpec, client_id: &str) -> Connect {
    let protocol = protocol(spec.version);
    let properties = ConnectProperties {
        session_expiry_interval: if protocol.is_v5() {
            spec.expiry.property()
        } else {
            None
        },
        ..ConnectProperties::default()
    };
    Connect {
        protocol,
        clean_start: spec.clean_start,
        keep_alive: spec.keep_alive,
        properties,
        client_id: string(client_id),
        will: None,
        username: None,
        password: None,
    }
}

/// `filters` are on the wire already (below the scenario's root).
pub fn subscribe(id: PacketId, filters: &[(String, Subscription)]) -> Subscribe {
    let filters = filters
        .iter()
        .map(|(wire, subscription)| {
            let options = SubscriptionOptions {
                qos: qos(subscription.qos),
                no_local: subscription.no_local,
                retain_as_published: subscription.retain_as_published,
                retain_handling: retain_handling(subscription.retain_handling),
            };
            (filter(wire), options)
        })
        .collect();
    Subscribe {
        packet_id: id,
        properties: SubscribeProperties::default(),
        filters,
    }
}

pub fn unsubscribe(id: PacketId, filters: &[String]) -> Unsubscribe {
    Unsubscribe {
        packet_id: id,
        properties: UnsubscribeProperties::default(),
        filters: filters.iter().map(|wire| filter(wire)).collect(),
    }
}

/// `id` is ignored for QoS 0.
pub fn publish(topic: &str, level: u8, retain: bool, payload: &str, id: PacketId) -> Publish {
    let level = qos(level);
    let id = (level != QoS::AtMostOnce).then_some(id);
    Publish {
        dup: false,
        qos_pid: QosPid::new(level, id)
            .unwrap_or_else(|| unreachable!("a packet id exactly when QoS > 0")),
        retain,
        topic: TopicName::new(topic)
            .unwrap_or_else(|e| panic!("the test built an invalid topic {topic:?}: {e}")),
        properties: PublishProperties::default(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    }
}

/// Normal disconnection; MQTT 3.1.1's DISCONNECT has no body, so the expiry goes nowhere.
pub fn disconnect(expiry: Expiry) -> Disconnect {
    Disconnect {
        reason_code: ReasonCode::Success,
        properties: DisconnectProperties {
            session_expiry_interval: expiry.property(),
            ..DisconnectProperties::default()
        },
    }
}

fn filter(wire: &str) -> TopicFilter {
    TopicFilter::new(wire)
        .unwrap_or_else(|e| panic!("the test built an invalid filter {wire:?}: {e}"))
}

fn retain_handling(value: u8) -> RetainHandling {
    match value {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendAtNewSubscribe,
        _ => RetainHandling::DoNotSend,
    }
}
