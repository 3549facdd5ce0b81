//! QoS flows, topic aliases, packet sizes, keep-alive, session expiry, message expiry, wills and takeover.

use super::*;

#[test]
fn qos_flows_are_acknowledged_per_spec() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "p"));
    let out = hub.send(ConnId(1), publish("t", QosPid::AtLeastOnce(pid(3)), b"x"));
    assert!(
        matches!(&out[..], [Packet::PubAck(a)] if a.packet_id == pid(3)
        && a.reason_code == ReasonCode::NoMatchingSubscribers)
    );
    let out = hub.send(ConnId(1), publish("t", QosPid::ExactlyOnce(pid(4)), b"x"));
    assert!(matches!(&out[..], [Packet::PubRec(r)] if r.packet_id == pid(4)));
    let out = hub.send(ConnId(1), Packet::PubRel(PubReply::new(pid(4))));
    assert!(matches!(&out[..], [Packet::PubComp(c)] if c.reason_code == ReasonCode::Success));
    let out = hub.send(ConnId(1), Packet::PubRel(PubReply::new(pid(4))));
    assert!(matches!(&out[..], [Packet::PubComp(c)]
        if c.reason_code == ReasonCode::PacketIdentifierNotFound));
}

#[test]
fn subscriber_receives_and_acknowledges_qos1_and_qos2() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "sub"));
    let out = hub.send(ConnId(1), subscribe("a/+", QoS::ExactlyOnce));
    assert!(matches!(&out[..], [Packet::SubAck(s)] if s.reason_codes == [ReasonCode::GrantedQoS2]));
    hub.connect(ConnId(2), connect(Protocol::V3_1_1, "pub"));

    hub.send(
        ConnId(2),
        publish("a/b", QosPid::AtLeastOnce(pid(1)), b"one"),
    );
    let got = hub.take(ConnId(1));
    let Some(Packet::Publish(p)) = got.first() else {
        panic!("no delivery: {got:?}")
    };
    assert_eq!(p.qos(), QoS::AtLeastOnce);
    assert_eq!(&p.payload[..], b"one");
    hub.send(
        ConnId(1),
        Packet::PubAck(PubReply::new(p.packet_id().unwrap())),
    );

    hub.send(
        ConnId(2),
        publish("a/c", QosPid::ExactlyOnce(pid(2)), b"two"),
    );
    let Some(Packet::Publish(p)) = hub.take(ConnId(1)).first().cloned() else {
        panic!("no QoS 2 delivery")
    };
    let id = p.packet_id().unwrap();
    let out = hub.send(ConnId(1), Packet::PubRec(PubReply::new(id)));
    assert!(matches!(&out[..], [Packet::PubRel(r)] if r.packet_id == id));
    hub.send(ConnId(1), Packet::PubComp(PubReply::new(id)));
    assert!(hub.broker.session("sub").unwrap().queue.is_empty());
}

#[test]
fn topic_aliases_work_both_ways() {
    let mut hub = Hub::new();
    let mut sub = connect(Protocol::V5, "sub");
    sub.properties.topic_alias_maximum = Some(1);
    hub.connect(ConnId(1), sub);
    hub.send(ConnId(1), subscribe("#", QoS::AtMostOnce));
    hub.connect(ConnId(2), connect(Protocol::V5, "pub"));

    // The publisher sets alias 1 for "long/topic", then publishes with an empty topic.
    let mut first = Publish {
        dup: false,
        qos_pid: QosPid::AtMostOnce,
        retain: false,
        topic: TopicName::new("long/topic").unwrap(),
        properties: PublishProperties {
            topic_alias: NonZeroU16::new(1),
            ..Default::default()
        },
        payload: Bytes::from_static(b"1"),
    };
    hub.send(ConnId(2), Packet::Publish(first.clone()));
    first.topic = TopicName::default();
    hub.send(ConnId(2), Packet::Publish(first.clone()));

    // The subscriber gets the topic once, then the alias alone.
    let got: Vec<(String, Option<u16>)> = hub
        .take(ConnId(1))
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((
                p.topic.to_string(),
                p.properties.topic_alias.map(|a| a.get()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(got, [("long/topic".into(), Some(1)), ("".into(), Some(1))]);

    // An alias above our maximum ends the connection with 0x94.
    first.properties.topic_alias = NonZeroU16::new(65);
    first.topic = TopicName::new("x").unwrap();
    let out = hub.send(ConnId(2), Packet::Publish(first));
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::TopicAliasInvalid));
}

#[test]
fn oversized_delivery_is_dropped_for_that_client_only() {
    let mut hub = Hub::new();
    let mut small = connect(Protocol::V5, "small");
    small.properties.maximum_packet_size = NonZeroU32::new(32);
    hub.connect(ConnId(1), small);
    hub.send(ConnId(1), subscribe("t", QoS::AtLeastOnce));
    hub.connect(ConnId(2), connect(Protocol::V5, "big"));
    hub.send(ConnId(2), subscribe("t", QoS::AtLeastOnce));
    hub.connect(ConnId(3), connect(Protocol::V5, "pub"));
    hub.send(
        ConnId(3),
        publish("t", QosPid::AtLeastOnce(pid(1)), &[7u8; 100]),
    );
    assert!(hub.take(ConnId(1)).is_empty());
    assert_eq!(hub.take(ConnId(2)).len(), 1);
    assert!(
        hub.broker.session("small").unwrap().queue.is_empty(),
        "discarded, not stuck"
    );
}

#[test]
fn keep_alive_expires_at_one_and_a_half_times() {
    let mut hub = Hub::new();
    let mut c = connect(Protocol::V5, "c");
    c.keep_alive = 10;
    hub.connect(ConnId(1), c);
    let session = hub.sessions.get_mut(&ConnId(1)).unwrap();
    assert_eq!(session.deadline_ms(), Some(1_000 + 15_000));
    session.on_timer(&mut hub.broker, 15_999);
    assert!(!session.is_closing());
    session.on_timer(&mut hub.broker, 16_000);
    assert!(session.is_closing());
    let out: Vec<Packet> = session.output().collect();
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::KeepAliveTimeout));
}

#[test]
fn server_keep_alive_overrides_a_longer_one_in_v5() {
    let mut hub = Hub::with_config(SessionConfig {
        keep_alive_max_secs: 30,
        ..SessionConfig::default()
    });
    let mut c = connect(Protocol::V5, "c");
    c.keep_alive = 0;
    let ack = hub.connect(ConnId(1), c);
    assert_eq!(ack.properties.server_keep_alive, Some(30));
    assert_eq!(hub.sessions[&ConnId(1)].deadline_ms(), Some(1_000 + 45_000));
}

#[test]
fn disconnect_may_not_set_an_expiry_when_connect_had_none() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    let out = hub.send(
        ConnId(1),
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::Success,
            properties: DisconnectProperties {
                session_expiry_interval: Some(60),
                ..Default::default()
            },
        }),
    );
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::ProtocolError));
}

#[test]
fn session_expiry_set_at_disconnect_keeps_the_session() {
    let mut hub = Hub::new();
    let mut c = connect(Protocol::V5, "c");
    c.properties.session_expiry_interval = Some(10);
    c.clean_start = false;
    hub.connect(ConnId(1), c.clone());
    hub.send(
        ConnId(1),
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::Success,
            properties: DisconnectProperties {
                session_expiry_interval: Some(3600),
                ..Default::default()
            },
        }),
    );
    let session = hub.broker.session("c").unwrap();
    assert_eq!(session.expiry_secs, 3600);
    assert!(hub.connect(ConnId(2), c).session_present);
}

#[test]
fn too_many_unreleased_qos2_publishes_exceed_the_receive_maximum() {
    let mut hub = Hub::new();
    hub.broker = Broker::new(BrokerConfig {
        receive_maximum: 1,
        ..BrokerConfig::default()
    });
    hub.connect(ConnId(1), connect(Protocol::V5, "p"));
    hub.send(ConnId(1), publish("t", QosPid::ExactlyOnce(pid(1)), b"x"));
    let out = hub.send(ConnId(1), publish("t", QosPid::ExactlyOnce(pid(2)), b"x"));
    assert_eq!(
        disconnect_reason(&out),
        Some(ReasonCode::ReceiveMaximumExceeded)
    );
}

#[test]
fn payload_declared_utf8_but_invalid_is_refused_with_0x99() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "p"));
    let out = hub.send(
        ConnId(1),
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtLeastOnce(pid(1)),
            retain: false,
            topic: TopicName::new("t").unwrap(),
            properties: PublishProperties {
                payload_format_indicator: Some(true),
                ..Default::default()
            },
            payload: Bytes::from_static(&[0xFF, 0xFE]),
        }),
    );
    assert!(
        matches!(&out[..], [Packet::PubAck(a)] if a.reason_code == ReasonCode::PayloadFormatInvalid)
    );
}

#[test]
fn qos_above_the_maximum_is_refused() {
    let mut hub = Hub::with_config(SessionConfig {
        maximum_qos: QoS::AtLeastOnce,
        ..SessionConfig::default()
    });
    let ack = hub.connect(ConnId(1), connect(Protocol::V5, "p"));
    assert_eq!(ack.properties.maximum_qos, Some(QoS::AtLeastOnce));
    let out = hub.send(ConnId(1), publish("t", QosPid::ExactlyOnce(pid(1)), b"x"));
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::QoSNotSupported));
    // A subscription is granted at most the maximum.
    hub.connect(ConnId(2), connect(Protocol::V5, "s"));
    let out = hub.send(ConnId(2), subscribe("t", QoS::ExactlyOnce));
    assert!(matches!(&out[..], [Packet::SubAck(s)] if s.reason_codes == [ReasonCode::GrantedQoS1]));
}

#[test]
fn client_publish_with_a_subscription_identifier_is_a_protocol_error() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "p"));
    let out = hub.send(
        ConnId(1),
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: TopicName::new("t").unwrap(),
            properties: PublishProperties {
                subscription_identifiers: vec![NonZeroU32::new(1).unwrap()],
                ..Default::default()
            },
            payload: Bytes::new(),
        }),
    );
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::ProtocolError));
}

#[test]
fn message_expiry_is_decremented_on_delivery() {
    let mut hub = Hub::new();
    let mut sub = connect(Protocol::V5, "sub");
    sub.clean_start = false;
    sub.properties.session_expiry_interval = Some(600);
    hub.connect(ConnId(1), sub.clone());
    hub.send(ConnId(1), subscribe("t", QoS::AtLeastOnce));
    hub.send(ConnId(1), Packet::Disconnect(Disconnect::default()));
    hub.connect(ConnId(2), connect(Protocol::V5, "pub"));
    hub.send(
        ConnId(2),
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtLeastOnce(pid(1)),
            retain: false,
            topic: TopicName::new("t").unwrap(),
            properties: PublishProperties {
                message_expiry_interval: Some(60),
                ..Default::default()
            },
            payload: Bytes::new(),
        }),
    );
    hub.now_ms += 20_000;
    let mut out = hub.send(ConnId(3), Packet::Connect(Box::new(sub)));
    out.remove(0);
    let Some(Packet::Publish(p)) = out.first() else {
        panic!("queued message not delivered: {out:?}")
    };
    assert_eq!(p.properties.message_expiry_interval, Some(40));
}

#[test]
fn will_is_published_on_abnormal_close_but_not_after_disconnect() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V3_1_1, "watcher"));
    hub.send(ConnId(1), subscribe("will", QoS::AtMostOnce));
    let mut dying = connect(Protocol::V3_1_1, "dying");
    dying.will = Some(LastWill {
        topic: TopicName::new("will").unwrap(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    hub.connect(ConnId(2), dying.clone());
    hub.send(ConnId(2), Packet::Disconnect(Disconnect::default()));
    assert!(hub.take(ConnId(1)).is_empty());

    hub.connect(ConnId(3), dying);
    let now = hub.now_ms;
    hub.sessions
        .get_mut(&ConnId(3))
        .unwrap()
        .on_closed(&mut hub.broker, now);
    hub.settle();
    assert!(matches!(&hub.take(ConnId(1))[..], [Packet::Publish(p)] if &p.payload[..] == b"gone"));
}

#[test]
fn takeover_sends_0x8e_to_the_old_connection() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    hub.connect(ConnId(2), connect(Protocol::V5, "c"));
    let old = hub.take(ConnId(1));
    assert_eq!(disconnect_reason(&old), Some(ReasonCode::SessionTakenOver));
    assert!(hub.closing(ConnId(1)));
    assert!(!hub.closing(ConnId(2)));
}

#[test]
fn unsupported_protocol_level_gets_connack_0x01_in_the_3_1_1_layout() {
    let mut hub = Hub::new();
    let mut session = Session::new(ConnId(9), SessionConfig::default(), 0, 10_000, 1);
    session.on_decode_error(
        &DecodeError::UnsupportedProtocolLevel { level: 6 },
        None,
        &mut hub.broker,
        0,
    );
    let out: Vec<Packet> = session.output().collect();
    assert!(matches!(&out[..], [Packet::ConnAck(a)] if a.reason_code.to_v3_connack() == 1));
    assert_eq!(session.protocol(), Protocol::V3_1_1);
    assert!(session.is_closing());
}
