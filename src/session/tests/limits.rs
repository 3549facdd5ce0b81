//! Per-client and per-node limits: queues, subscriptions, topic levels, publish rate, retained messages.

use super::*;

#[test]
fn puback_reports_quota_exceeded_when_every_matching_queue_is_full() {
    let mut hub = Hub::new();
    hub.broker = Broker::new(BrokerConfig {
        state: crate::state::StateConfig {
            queue_max: 1,
            ..Default::default()
        },
        ..BrokerConfig::default()
    });
    let mut sub = connect(Protocol::V5, "sub");
    sub.clean_start = false;
    sub.properties.session_expiry_interval = Some(600);
    hub.connect(ConnId(1), sub);
    hub.send(ConnId(1), subscribe("t", QoS::AtLeastOnce));
    hub.send(ConnId(1), Packet::Disconnect(Disconnect::default()));
    hub.connect(ConnId(2), connect(Protocol::V5, "pub"));
    let reasons: Vec<ReasonCode> = (1..=2)
        .flat_map(|n| hub.send(ConnId(2), publish("t", QosPid::AtLeastOnce(pid(n)), b"x")))
        .filter_map(|p| match p {
            Packet::PubAck(a) => Some(a.reason_code),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [ReasonCode::Success, ReasonCode::QuotaExceeded]);
    // QoS 2 with no subscriber says so too, and its resend is plain success.
    let out = hub.send(
        ConnId(2),
        publish("none", QosPid::ExactlyOnce(pid(9)), b"x"),
    );
    assert!(
        matches!(&out[..], [Packet::PubRec(r)] if r.reason_code == ReasonCode::NoMatchingSubscribers)
    );
    let out = hub.send(
        ConnId(2),
        publish("none", QosPid::ExactlyOnce(pid(9)), b"x"),
    );
    assert!(matches!(&out[..], [Packet::PubRec(r)] if r.reason_code == ReasonCode::Success));
}

fn suback_codes(packets: &[Packet]) -> Vec<ReasonCode> {
    packets
        .iter()
        .find_map(|p| match p {
            Packet::SubAck(s) => Some(s.reason_codes.clone()),
            _ => None,
        })
        .expect("a SUBACK")
}

fn ack_reason(packets: &[Packet]) -> Option<ReasonCode> {
    packets.iter().find_map(|p| match p {
        Packet::PubAck(a) | Packet::PubRec(a) => Some(a.reason_code),
        _ => None,
    })
}

#[test]
fn subscriptions_beyond_the_maximum_get_quota_exceeded_and_replacing_one_does_not_count() {
    let mut hub = Hub::with_config(SessionConfig {
        subscriptions_max: 2,
        ..SessionConfig::default()
    });
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    assert_eq!(
        suback_codes(&hub.send(ConnId(1), subscribe("a", QoS::AtLeastOnce))),
        [ReasonCode::GrantedQoS1]
    );
    let two = Packet::Subscribe(Subscribe {
        packet_id: pid(2),
        properties: SubscribeProperties::default(),
        filters: ["b", "c", "a"]
            .iter()
            .map(|f| {
                (
                    TopicFilter::new(f).unwrap(),
                    SubscriptionOptions::new(QoS::AtMostOnce),
                )
            })
            .collect(),
    });
    assert_eq!(
        suback_codes(&hub.send(ConnId(1), two)),
        [
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::QuotaExceeded,
            ReasonCode::GRANTED_QOS_0
        ]
    );
    assert_eq!(hub.broker.session("c").unwrap().subscriptions.len(), 2);
    assert_eq!(hub.broker.stats().limits.subscriptions, 1);
}

#[test]
fn topics_with_too_many_levels_are_refused() {
    let mut hub = Hub::with_config(SessionConfig {
        topic_levels_max: 3,
        ..SessionConfig::default()
    });
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    assert_eq!(
        suback_codes(&hub.send(ConnId(1), subscribe("a/b/c/#", QoS::AtLeastOnce))),
        [ReasonCode::TopicFilterInvalid]
    );
    assert_eq!(
        suback_codes(&hub.send(ConnId(1), subscribe("$share/g/a/b/c", QoS::AtLeastOnce))),
        [ReasonCode::GrantedQoS1],
        "the share prefix does not count"
    );
    let out = hub.send(
        ConnId(1),
        publish("a/b/c/d", QosPid::AtLeastOnce(pid(5)), b"x"),
    );
    assert_eq!(ack_reason(&out), Some(ReasonCode::TopicNameInvalid));
    let out = hub.send(
        ConnId(1),
        publish("a/b/c", QosPid::AtLeastOnce(pid(6)), b"x"),
    );
    assert_eq!(ack_reason(&out), Some(ReasonCode::Success));
}

#[test]
fn a_client_publishing_faster_than_the_rate_is_disconnected_with_0x96() {
    let mut hub = Hub::with_config(SessionConfig {
        publish_rate_max: 10,
        ..SessionConfig::default()
    });
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    // A burst of one second's worth passes, the eleventh in the same instant does not.
    for n in 1..=10 {
        let out = hub.send(ConnId(1), publish("t", QosPid::AtMostOnce, b"x"));
        assert!(disconnect_reason(&out).is_none(), "publish {n}");
    }
    // A tenth of a second later one more token is there.
    hub.now_ms += 100;
    assert!(
        disconnect_reason(&hub.send(ConnId(1), publish("t", QosPid::AtMostOnce, b"x"))).is_none()
    );
    let out = hub.send(ConnId(1), publish("t", QosPid::AtMostOnce, b"x"));
    assert_eq!(
        disconnect_reason(&out),
        Some(ReasonCode::MessageRateTooHigh)
    );
    assert!(hub.closing(ConnId(1)));
    assert_eq!(hub.broker.stats().limits.publish_rate, 1);
}

#[test]
fn retained_messages_beyond_the_maximum_are_refused_but_replacing_one_is_not() {
    let mut hub = Hub::new();
    hub.broker = Broker::new(BrokerConfig {
        state: crate::state::StateConfig {
            retained_max: 1,
            ..Default::default()
        },
        ..BrokerConfig::default()
    });
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    let retained = |topic: &str, n: u16| {
        let Packet::Publish(mut p) = publish(topic, QosPid::AtLeastOnce(pid(n)), b"x") else {
            unreachable!()
        };
        p.retain = true;
        Packet::Publish(p)
    };
    assert_eq!(
        ack_reason(&hub.send(ConnId(1), retained("a", 1))),
        Some(ReasonCode::NoMatchingSubscribers)
    );
    assert_eq!(
        ack_reason(&hub.send(ConnId(1), retained("b", 2))),
        Some(ReasonCode::QuotaExceeded)
    );
    assert_eq!(
        ack_reason(&hub.send(ConnId(1), retained("a", 3))),
        Some(ReasonCode::NoMatchingSubscribers)
    );
    assert_eq!(hub.broker.state().retained().count(), 1);
}
