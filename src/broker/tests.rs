//! Behaviour of the broker core: windows, acknowledgements, takeover, resume, shared release.

use bytes::Bytes;

use super::*;
use crate::codec::{
    MqttString, PacketId, PublishProperties, QoS, ReasonCode, SubscriptionOptions, TopicFilter,
    TopicName,
};
use crate::state::{Message, Subscription};

fn request(
    client: &str,
    clean_start: bool,
    expiry_secs: u32,
    receive_maximum: u16,
) -> ConnectRequest {
    ConnectRequest {
        client_id: MqttString::new(client).unwrap(),
        clean_start,
        expiry_secs,
        will: None,
        receive_maximum,
    }
}

fn message(topic: &str, qos: QoS, publisher: &str) -> Message {
    Message {
        topic: TopicName::new(topic).unwrap(),
        payload: Bytes::from_static(b"x"),
        qos,
        retain: false,
        properties: PublishProperties::default(),
        publisher: Some(MqttString::new(publisher).unwrap()),
        received_at_ms: 0,
    }
}

fn subscribe(broker: &mut Broker, conn: ConnId, filter: &str, qos: QoS) {
    broker.subscribe(
        conn,
        vec![(
            TopicFilter::new(filter).unwrap(),
            Subscription {
                options: SubscriptionOptions::new(qos),
                identifier: None,
            },
        )],
        0,
    );
    broker.validate();
}

/// (conn, packet id or 0, dup) of each PUBLISH effect; "rel:N" deliveries as packet id + 100000.
fn deliveries(broker: &mut Broker) -> Vec<(ConnId, u32, bool)> {
    broker
        .take_effects()
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Deliver {
                conn,
                delivery: Delivery::Publish { packet_id, dup, .. },
            } => Some((conn, packet_id.map_or(0, |p| u32::from(p.get())), dup)),
            Effect::Deliver {
                conn,
                delivery: Delivery::Release(packet_id),
            } => Some((conn, 100_000 + u32::from(packet_id.get()), false)),
            Effect::Disconnect { .. } => None,
        })
        .collect()
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

#[test]
fn window_limits_messages_in_flight_until_acknowledged() {
    let mut b = Broker::new(BrokerConfig::default());
    b.connect(1, request("pub", true, 0, 10), 0);
    b.connect(2, request("sub", true, 0, 2), 0);
    subscribe(&mut b, 2, "t", QoS::AtLeastOnce);
    for _ in 0..3 {
        let outcome = b
            .publish(1, message("t", QoS::AtLeastOnce, "pub"), None, false)
            .unwrap();
        assert_eq!(outcome.matched, 1);
    }
    b.validate();
    let sent = deliveries(&mut b);
    assert_eq!(sent.len(), 2, "window of 2: {sent:?}");
    let first = PacketId::new(sent[0].1 as u16).unwrap();
    assert!(b.puback(2, first, 0));
    assert!(
        !b.puback(2, first, 0),
        "a second PUBACK for the same id is unknown"
    );
    assert_eq!(deliveries(&mut b).len(), 1, "the ack opened the window");
    b.validate();
}

#[test]
fn qos0_is_delivered_without_a_packet_id() {
    let mut b = Broker::new(BrokerConfig::default());
    b.connect(1, request("pub", true, 0, 10), 0);
    b.connect(2, request("sub", true, 0, 10), 0);
    subscribe(&mut b, 2, "t", QoS::ExactlyOnce);
    b.publish(1, message("t", QoS::AtMostOnce, "pub"), None, false)
        .unwrap();
    assert_eq!(deliveries(&mut b), [(2, 0, false)]);
}

#[test]
fn takeover_disconnects_the_old_connection_and_resumes_with_dup() {
    let mut b = Broker::new(BrokerConfig::default());
    b.connect(1, request("pub", true, 0, 10), 0);
    b.connect(2, request("sub", false, 600, 10), 0);
    subscribe(&mut b, 2, "t", QoS::AtLeastOnce);
    b.publish(1, message("t", QoS::AtLeastOnce, "pub"), None, false)
        .unwrap();
    let first = deliveries(&mut b);
    assert_eq!(first.len(), 1);
    assert!(!first[0].2);

    assert!(
        b.connect(3, request("sub", false, 600, 10), 0),
        "session present"
    );
    let effects = b.take_effects();
    assert!(effects.contains(&Effect::Disconnect {
        conn: 2,
        reason: ReasonCode::SessionTakenOver
    }));
    let resent: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver {
                conn,
                delivery: Delivery::Publish { packet_id, dup, .. },
            } => Some((*conn, packet_id.unwrap().get(), *dup)),
            _ => None,
        })
        .collect();
    assert_eq!(
        resent,
        [(3, first[0].1 as u16, true)],
        "same packet id, DUP set"
    );
    // The old connection's late end changes nothing.
    b.disconnect(2, 0, true, 5);
    b.validate();
    assert!(b.state().session("sub").unwrap().connected);
}

#[test]
fn qos2_after_pubrec_resumes_with_pubrel_not_publish() {
    let mut b = Broker::new(BrokerConfig::default());
    b.connect(1, request("pub", true, 0, 10), 0);
    b.connect(2, request("sub", false, 600, 10), 0);
    subscribe(&mut b, 2, "t", QoS::ExactlyOnce);
    b.publish(
        1,
        message("t", QoS::ExactlyOnce, "pub"),
        Some(pid(9)),
        false,
    )
    .unwrap();
    let sent = deliveries(&mut b);
    let id = pid(sent[0].1 as u16);
    assert!(!b.pubcomp(2, id, 0), "PUBCOMP before PUBREC is ignored");
    assert!(b.pubrec(2, id));
    b.disconnect(2, 600, false, 1);
    b.connect(3, request("sub", false, 600, 10), 2);
    assert_eq!(
        deliveries(&mut b),
        [(3, 100_000 + u32::from(id.get()), false)]
    );
    assert!(b.pubcomp(3, id, 3));
    assert!(b.state().session("sub").unwrap().queue.is_empty());
    b.validate();
}

#[test]
fn qos2_publisher_is_held_to_the_receive_maximum() {
    let mut b = Broker::new(BrokerConfig {
        receive_maximum: 2,
        ..BrokerConfig::default()
    });
    b.connect(1, request("pub", true, 0, 10), 0);
    for n in 1..=2 {
        b.publish(
            1,
            message("t", QoS::ExactlyOnce, "pub"),
            Some(pid(n)),
            false,
        )
        .unwrap();
    }
    // A resend of a known id is fine; a third id is not.
    assert!(b
        .publish(
            1,
            message("t", QoS::ExactlyOnce, "pub"),
            Some(pid(1)),
            false
        )
        .is_ok());
    assert_eq!(
        b.publish(
            1,
            message("t", QoS::ExactlyOnce, "pub"),
            Some(pid(3)),
            false
        ),
        Err(PublishError::ReceiveMaximumExceeded)
    );
    assert!(b.pubrel(1, pid(1)));
    assert!(!b.pubrel(1, pid(1)));
    assert!(b
        .publish(
            1,
            message("t", QoS::ExactlyOnce, "pub"),
            Some(pid(3)),
            false
        )
        .is_ok());
}

#[test]
fn unacknowledged_shared_message_goes_to_another_member_when_its_member_leaves() {
    let mut b = Broker::new(BrokerConfig::default());
    b.connect(1, request("pub", true, 0, 10), 0);
    b.connect(2, request("m1", false, 600, 10), 0);
    b.connect(3, request("m2", false, 600, 10), 0);
    subscribe(&mut b, 2, "$share/g/t", QoS::AtLeastOnce);
    subscribe(&mut b, 3, "$share/g/t", QoS::AtLeastOnce);
    b.publish(1, message("t", QoS::AtLeastOnce, "pub"), None, false)
        .unwrap();
    let sent = deliveries(&mut b);
    assert_eq!(sent.len(), 1);
    let (first_member, other) = if sent[0].0 == 2 { (2, 3) } else { (3, 2) };
    b.disconnect(first_member, 600, false, 1);
    let resent = deliveries(&mut b);
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].0, other);
    b.validate();
}

#[test]
fn expired_messages_are_dropped_not_sent() {
    let mut b = Broker::new(BrokerConfig::default());
    b.connect(1, request("pub", true, 0, 10), 0);
    b.connect(2, request("sub", false, 600, 10), 0);
    subscribe(&mut b, 2, "t", QoS::AtLeastOnce);
    b.disconnect(2, 600, false, 0);
    let mut m = message("t", QoS::AtLeastOnce, "pub");
    m.properties.message_expiry_interval = Some(1);
    b.publish(1, m, None, false).unwrap();
    b.connect(3, request("sub", false, 600, 10), 5_000);
    assert!(deliveries(&mut b).is_empty());
    assert!(b.state().session("sub").unwrap().queue.is_empty());
    b.validate();
}

#[test]
fn messages_dropped_for_a_full_queue_are_counted() {
    let mut config = BrokerConfig::default();
    config.state.queue_max = 2;
    let mut b = Broker::new(config);
    b.connect(1, request("pub", true, 0, 10), 0);
    b.connect(2, request("sub", false, 60, 10), 0);
    subscribe(&mut b, 2, "t", QoS::AtLeastOnce);
    b.disconnect(2, 60, false, 0);
    for _ in 0..5 {
        b.publish(1, message("t", QoS::AtLeastOnce, "pub"), None, false)
            .unwrap();
    }
    b.validate();
    assert_eq!(b.state().session("sub").unwrap().queue.len(), 2);
    assert_eq!(b.stats().dropped_queue_full, 3);
}
