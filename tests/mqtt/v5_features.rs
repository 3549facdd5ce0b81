//! MQTT 5 features over real sockets: reason codes, properties forwarded to subscribers (user
//! properties, request/response, payload format, content type), topic aliases both ways,
//! subscription identifiers, No Local, Retain As Published, Retain Handling, message expiry,
//! Receive Maximum and Maximum Packet Size of the client, DISCONNECT from either side and the
//! session expiry a DISCONNECT sets.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::raw::{self, RawClient};
use common::{v3, v5, TestBroker};
use keel::codec::{
    AckProperties, Disconnect, DisconnectProperties, MqttString, Packet, Protocol, PubReply, QoS,
    ReasonCode,
};
use rumqttc::v5::mqttbytes::v5::{
    Filter, Packet as P5, PubAckReason, PublishProperties, RetainForwardRule,
};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::{ConnectionError, StateError};

const BARRIER: &str = "barrier";

/// A subscriber to `filters` (at QoS 1) and to the barrier.
async fn subscriber(broker: &TestBroker, id: &str, filters: Vec<Filter>) -> v5::Client {
    let mut sub = v5::connect(broker, id).await;
    sub.subscribe_filters(filters, None).await;
    sub.subscribe(BARRIER, Q5::AtMostOnce).await;
    sub
}

async fn barrier(publisher: &v5::Client) {
    publisher.publish(BARRIER, Q5::AtMostOnce, false, "").await;
}

// --- Reason codes ----------------------------------------------------------------------------

#[tokio::test]
async fn puback_says_no_matching_subscribers_0x10_when_nobody_subscribed() {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v5::connect(&broker, "pub").await;
    let reasons = async |publisher: &mut v5::Client| {
        publisher
            .publish("lonely", Q5::AtLeastOnce, false, "x")
            .await;
        publisher
            .expect("PUBACK", |p| match p {
                P5::PubAck(ack) => Some(ack.reason),
                _ => None,
            })
            .await
    };
    assert_eq!(
        reasons(&mut publisher).await,
        PubAckReason::NoMatchingSubscribers
    );
    let mut sub = v5::connect(&broker, "sub").await;
    sub.subscribe("lonely", Q5::AtMostOnce).await;
    assert_eq!(reasons(&mut publisher).await, PubAckReason::Success);
}

#[tokio::test]
async fn publish_declared_utf8_with_an_invalid_payload_is_refused_with_0x99() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = subscriber(&broker, "sub", vec![Filter::new("fmt", Q5::AtLeastOnce)]).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    let properties = PublishProperties {
        payload_format_indicator: Some(1),
        ..Default::default()
    };
    publisher
        .publish_with("fmt", Q5::AtLeastOnce, false, vec![0xff, 0xfe], properties)
        .await;
    // rumqttc turns a refusing PUBACK into an error.
    match publisher.closed().await {
        ConnectionError::MqttState(StateError::PubAckFail { reason }) => {
            assert_eq!(reason, PubAckReason::PayloadFormatInvalid)
        }
        other => panic!("expected PUBACK 0x99, got {other}"),
    }
    let other = v5::connect(&broker, "other").await;
    barrier(&other).await;
    assert!(sub.publishes_until(BARRIER).await.is_empty());
}

#[tokio::test]
async fn reason_strings_and_user_properties_from_the_client_are_accepted() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = RawClient::connected(broker.addr, Protocol::V5, "chatty").await;
    sub.subscribe(1, "talk", QoS::AtLeastOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("talk", Q5::AtLeastOnce, false, "x")
        .await;
    let publish = sub.expect_publish().await;
    let properties = AckProperties {
        reason_string: Some(MqttString::new("fine, thanks").unwrap()),
        user_properties: vec![(MqttString::new("k").unwrap(), MqttString::new("v").unwrap())],
    };
    sub.send(Packet::PubAck(PubReply {
        packet_id: publish.packet_id().unwrap(),
        reason_code: ReasonCode::Success,
        properties,
    }))
    .await;
    sub.ping().await;
    assert!(broker.inspect(|b| b.session("chatty").unwrap().queue.is_empty()));
    sub.send(Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::Success,
        properties: DisconnectProperties {
            reason_string: Some(MqttString::new("bye").unwrap()),
            ..Default::default()
        },
    }))
    .await;
    sub.expect_closed().await;
}

// --- Properties forwarded to subscribers --------------------------------------------------------

#[tokio::test]
async fn publish_properties_are_forwarded_to_subscribers_unchanged() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = subscriber(&broker, "sub", vec![Filter::new("req", Q5::AtLeastOnce)]).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    let sent = PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("resp/pub".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: vec![
            ("b".into(), "2".into()),
            ("a".into(), "1".into()),
            ("b".into(), "3".into()),
        ],
        ..Default::default()
    };
    publisher
        .publish_with("req", Q5::AtLeastOnce, false, "{}", sent.clone())
        .await;
    publisher.acked(Q5::AtLeastOnce).await;
    let got = v5::properties(&sub.next_publish().await);
    assert_eq!(got.payload_format_indicator, sent.payload_format_indicator);
    assert_eq!(got.content_type, sent.content_type);
    assert_eq!(got.response_topic, sent.response_topic);
    assert_eq!(got.correlation_data, sent.correlation_data);
    // User properties keep their order, duplicates included ([MQTT-3.3.2-17], [MQTT-3.3.2-18]).
    assert_eq!(got.user_properties, sent.user_properties);
    assert_eq!(got.message_expiry_interval, None);
    assert_eq!(got.topic_alias, None);
    assert!(got.subscription_identifiers.is_empty());
}

#[tokio::test]
async fn request_and_response_flow_through_response_topic_and_correlation_data() {
    let broker = TestBroker::start_quiet().await;
    let mut responder = subscriber(
        &broker,
        "responder",
        vec![Filter::new("svc/req", Q5::AtLeastOnce)],
    )
    .await;
    let mut requester = v5::connect(&broker, "requester").await;
    requester
        .subscribe("svc/resp/requester", Q5::AtLeastOnce)
        .await;
    let request = PublishProperties {
        response_topic: Some("svc/resp/requester".into()),
        correlation_data: Some(Bytes::from_static(b"42")),
        ..Default::default()
    };
    requester
        .publish_with("svc/req", Q5::AtLeastOnce, false, "ping", request)
        .await;
    let got = responder.next_publish().await;
    let asked = v5::properties(&got);
    let reply = PublishProperties {
        correlation_data: asked.correlation_data.clone(),
        ..Default::default()
    };
    responder
        .publish_with(
            asked.response_topic.as_deref().expect("response topic"),
            Q5::AtLeastOnce,
            false,
            "pong",
            reply,
        )
        .await;
    let answer = requester.next_publish().await;
    assert_eq!(v5::topic(&answer), "svc/resp/requester");
    assert_eq!(answer.payload.as_ref(), b"pong");
    assert_eq!(
        v5::properties(&answer).correlation_data.as_deref(),
        Some(&b"42"[..])
    );
}

#[tokio::test]
async fn messages_cross_between_mqtt_3_and_mqtt_5_clients() {
    let broker = TestBroker::start_quiet().await;
    let mut five = v5::connect(&broker, "five").await;
    five.subscribe("mix/from3", Q5::AtLeastOnce).await;
    let mut three = v3::connect(&broker, "three").await;
    three
        .subscribe("mix/from5", rumqttc::QoS::AtLeastOnce)
        .await;

    let properties = PublishProperties {
        user_properties: vec![("k".into(), "v".into())],
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    five.publish_with("mix/from5", Q5::AtLeastOnce, false, "hello 3", properties)
        .await;
    five.acked(Q5::AtLeastOnce).await;
    // MQTT 3 has no properties: the v3 subscriber gets topic and payload.
    let got = three.next_publish().await;
    assert_eq!(
        v3::summary(&got),
        (
            "mix/from5".into(),
            b"hello 3".to_vec(),
            rumqttc::QoS::AtLeastOnce,
            false
        )
    );
    three
        .publish_acked("mix/from3", rumqttc::QoS::AtLeastOnce, false, "hello 5")
        .await;
    let got = five.next_publish().await;
    assert_eq!(
        v5::summary(&got),
        (
            "mix/from3".into(),
            b"hello 5".to_vec(),
            Q5::AtLeastOnce,
            false
        )
    );
    assert_eq!(v5::properties(&got), PublishProperties::default());
}

// --- Topic aliases ---------------------------------------------------------------------------

#[tokio::test]
async fn topic_alias_set_by_the_publisher_is_resolved_for_subscribers() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = subscriber(
        &broker,
        "sub",
        vec![Filter::new("alias/+", Q5::AtLeastOnce)],
    )
    .await;
    let mut publisher = v5::connect(&broker, "pub").await;
    let alias = |n| PublishProperties {
        topic_alias: Some(n),
        ..Default::default()
    };
    // Set alias 1, use it, point it elsewhere, use it again.
    for (topic, payload) in [("alias/t", "1"), ("", "2"), ("alias/u", "3"), ("", "4")] {
        publisher
            .publish_with(topic, Q5::AtLeastOnce, false, payload, alias(1))
            .await;
        publisher.acked(Q5::AtLeastOnce).await;
    }
    let got = sub.publishes(4).await;
    assert_eq!(
        v5::topics_payloads(&got),
        [
            ("alias/t", "1"),
            ("alias/t", "2"),
            ("alias/u", "3"),
            ("alias/u", "4")
        ]
        .map(|(t, p)| (t.to_string(), p.as_bytes().to_vec()))
        .to_vec()
    );
    // The publisher's alias is its own: subscribers get none (this one allows none).
    assert!(got.iter().all(|p| v5::properties(p).topic_alias.is_none()));
}

#[tokio::test]
async fn broker_assigns_topic_aliases_up_to_the_clients_maximum() {
    let broker = TestBroker::start_quiet().await;
    let mut options = v5::options(&broker, "aliased");
    options.set_topic_alias_max(Some(2));
    let (mut sub, _) = v5::connect_with(options).await;
    sub.subscribe("ta/+", Q5::AtLeastOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    for topic in ["ta/a", "ta/b", "ta/a", "ta/c", "ta/b"] {
        publisher
            .publish_acked(topic, Q5::AtLeastOnce, false, topic)
            .await;
    }
    let got = sub.publishes(5).await;
    // rumqttc resolves aliases back into topics.
    let seen: Vec<(String, Option<u16>)> = got
        .iter()
        .map(|p| (v5::topic(p).to_string(), v5::properties(p).topic_alias))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ta/a".to_string(), Some(1)),
            ("ta/b".to_string(), Some(2)),
            ("ta/a".to_string(), Some(1)),
            // Both aliases are taken: this topic goes out in full, without one.
            ("ta/c".to_string(), None),
            ("ta/b".to_string(), Some(2)),
        ]
    );
}

#[tokio::test]
async fn aliased_topic_is_sent_once_and_then_left_empty_on_the_wire() {
    let broker = TestBroker::start_quiet().await;
    let mut connect = raw::connect(Protocol::V5, "wire");
    connect.properties.topic_alias_maximum = Some(1);
    let (mut sub, _) = RawClient::connect(broker.addr, connect).await;
    sub.subscribe(1, "wire/t", QoS::AtMostOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("wire/t", Q5::AtLeastOnce, false, "1")
        .await;
    publisher
        .publish_acked("wire/t", Q5::AtLeastOnce, false, "2")
        .await;
    let first = sub.expect_publish().await;
    let second = sub.expect_publish().await;
    assert_eq!(first.topic.as_str(), "wire/t");
    assert_eq!(first.properties.topic_alias.map(|a| a.get()), Some(1));
    assert_eq!(second.topic.as_str(), "");
    assert_eq!(second.properties.topic_alias.map(|a| a.get()), Some(1));
    assert_eq!(second.payload.as_ref(), b"2");
}

#[tokio::test]
async fn no_topic_aliases_are_sent_to_a_client_that_allows_none() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v5::connect(&broker, "plain").await;
    sub.subscribe("na/t", Q5::AtLeastOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    for _ in 0..2 {
        publisher
            .publish_acked("na/t", Q5::AtLeastOnce, false, "x")
            .await;
    }
    for publish in sub.publishes(2).await {
        assert_eq!(v5::topic(&publish), "na/t");
        assert_eq!(v5::properties(&publish).topic_alias, None);
    }
}

// --- Subscription identifiers and options -------------------------------------------------------

#[tokio::test]
async fn subscription_identifier_is_carried_by_matching_messages_and_replaced_on_resubscribe() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v5::connect(&broker, "sub").await;
    sub.subscribe_filters(vec![Filter::new("sid/+", Q5::AtLeastOnce)], Some(77))
        .await;
    sub.subscribe("plain/t", Q5::AtLeastOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("sid/a", Q5::AtLeastOnce, false, "")
        .await;
    publisher
        .publish_acked("plain/t", Q5::AtLeastOnce, false, "")
        .await;
    let got = sub.publishes(2).await;
    assert_eq!(v5::properties(&got[0]).subscription_identifiers, vec![77]);
    assert!(v5::properties(&got[1]).subscription_identifiers.is_empty());

    sub.subscribe_filters(
        vec![Filter::new("sid/+", Q5::AtLeastOnce)],
        Some(268_435_455),
    )
    .await;
    publisher
        .publish_acked("sid/b", Q5::AtLeastOnce, false, "")
        .await;
    assert_eq!(
        v5::properties(&sub.next_publish().await).subscription_identifiers,
        vec![268_435_455]
    );
}

#[tokio::test]
async fn no_local_subscription_does_not_receive_the_clients_own_messages() {
    let broker = TestBroker::start_quiet().await;
    let mut me = v5::connect(&broker, "me").await;
    let mut no_local = Filter::new("nl/t", Q5::AtLeastOnce);
    no_local.nolocal = true;
    me.subscribe_filters(vec![no_local, Filter::new(BARRIER, Q5::AtMostOnce)], None)
        .await;
    let mut neighbour = subscriber(
        &broker,
        "neighbour",
        vec![Filter::new("nl/t", Q5::AtLeastOnce)],
    )
    .await;
    let mut other = v5::connect(&broker, "other").await;

    me.publish_acked("nl/t", Q5::AtLeastOnce, false, "mine")
        .await;
    other
        .publish_acked("nl/t", Q5::AtLeastOnce, false, "theirs")
        .await;
    barrier(&other).await;
    assert_eq!(
        v5::topics_payloads(&me.publishes_until(BARRIER).await),
        vec![("nl/t".to_string(), b"theirs".to_vec())]
    );
    // No Local is about the subscriber's own messages only.
    assert_eq!(neighbour.publishes_until(BARRIER).await.len(), 2);
}

#[tokio::test]
async fn retain_as_published_keeps_the_retain_flag_on_live_delivery() {
    let broker = TestBroker::start_quiet().await;
    let mut as_published = Filter::new("rap/t", Q5::AtLeastOnce);
    as_published.preserve_retain = true;
    let mut keeps = subscriber(&broker, "keeps", vec![as_published]).await;
    let mut clears = subscriber(
        &broker,
        "clears",
        vec![Filter::new("rap/t", Q5::AtLeastOnce)],
    )
    .await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("rap/t", Q5::AtLeastOnce, true, "r")
        .await;
    publisher
        .publish_acked("rap/t", Q5::AtLeastOnce, false, "n")
        .await;
    let flags = |got: Vec<rumqttc::v5::mqttbytes::v5::Publish>| {
        got.iter().map(|p| p.retain).collect::<Vec<_>>()
    };
    assert_eq!(flags(keeps.publishes(2).await), [true, false]);
    assert_eq!(flags(clears.publishes(2).await), [false, false]);
}

/// Subscribes twice to `rh/t` with `rule`, and returns how many retained messages each
/// SUBSCRIBE brought.
async fn retained_per_subscribe(rule: RetainForwardRule) -> (usize, usize) {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("rh/t", Q5::AtLeastOnce, true, "kept")
        .await;
    let mut sub = v5::connect(&broker, "sub").await;
    sub.subscribe(BARRIER, Q5::AtMostOnce).await;
    let mut counts = Vec::new();
    for _ in 0..2 {
        let mut filter = Filter::new("rh/t", Q5::AtLeastOnce);
        filter.retain_forward_rule = rule.clone();
        sub.subscribe_filters(vec![filter], None).await;
        barrier(&publisher).await;
        let got = sub.publishes_until(BARRIER).await;
        assert!(got
            .iter()
            .all(|p| p.retain && p.payload.as_ref() == b"kept"));
        counts.push(got.len());
    }
    (counts[0], counts[1])
}

#[tokio::test]
async fn retain_handling_0_sends_retained_messages_at_every_subscribe() {
    assert_eq!(
        retained_per_subscribe(RetainForwardRule::OnEverySubscribe).await,
        (1, 1)
    );
}

#[tokio::test]
async fn retain_handling_1_sends_retained_messages_only_for_a_new_subscription() {
    assert_eq!(
        retained_per_subscribe(RetainForwardRule::OnNewSubscribe).await,
        (1, 0)
    );
}

#[tokio::test]
async fn retain_handling_2_never_sends_retained_messages() {
    assert_eq!(
        retained_per_subscribe(RetainForwardRule::Never).await,
        (0, 0)
    );
}

// --- Message expiry ---------------------------------------------------------------------------

fn expiring(secs: u32) -> PublishProperties {
    PublishProperties {
        message_expiry_interval: Some(secs),
        ..Default::default()
    }
}

/// Enough for a 1 s expiry to pass and for the 60 s one to show a decrement.
const EXPIRY_WAIT: Duration = Duration::from_millis(1100);

#[tokio::test]
async fn retained_message_expires_and_its_expiry_counts_down() {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_with("exp/short", Q5::AtLeastOnce, true, "short", expiring(1))
        .await;
    publisher.acked(Q5::AtLeastOnce).await;
    publisher
        .publish_with("exp/long", Q5::AtLeastOnce, true, "long", expiring(60))
        .await;
    publisher.acked(Q5::AtLeastOnce).await;
    // Time has to pass for a message to expire.
    tokio::time::sleep(EXPIRY_WAIT).await;
    let mut sub = subscriber(&broker, "late", vec![Filter::new("exp/+", Q5::AtLeastOnce)]).await;
    barrier(&publisher).await;
    let got = sub.publishes_until(BARRIER).await;
    assert_eq!(
        v5::topics_payloads(&got),
        vec![("exp/long".to_string(), b"long".to_vec())]
    );
    // [MQTT-3.3.2-6]: the interval sent is what is left of it.
    let left = v5::properties(&got[0]).message_expiry_interval;
    assert!(matches!(left, Some(55..=59)), "expiry left {left:?}");
}

#[tokio::test]
async fn queued_message_expires_while_its_session_is_offline() {
    let broker = TestBroker::start_quiet().await;
    let (mut sub, _) = v5::connect_with(v5::persistent(&broker, "away", 60)).await;
    sub.subscribe("exp/+", Q5::AtLeastOnce).await;
    sub.subscribe(BARRIER, Q5::AtMostOnce).await;
    sub.disconnect().await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_with("exp/short", Q5::AtLeastOnce, false, "short", expiring(1))
        .await;
    publisher.acked(Q5::AtLeastOnce).await;
    publisher
        .publish_with("exp/long", Q5::AtLeastOnce, false, "long", expiring(60))
        .await;
    publisher.acked(Q5::AtLeastOnce).await;
    tokio::time::sleep(EXPIRY_WAIT).await;
    let (mut sub, connack) = v5::connect_with(v5::persistent(&broker, "away", 60)).await;
    assert!(connack.session_present);
    barrier(&publisher).await;
    let got = sub.publishes_until(BARRIER).await;
    assert_eq!(
        v5::topics_payloads(&got),
        vec![("exp/long".to_string(), b"long".to_vec())]
    );
    let left = v5::properties(&got[0]).message_expiry_interval;
    assert!(matches!(left, Some(55..=59)), "expiry left {left:?}");
}

// --- The client's limits: Receive Maximum and Maximum Packet Size ---------------------------------

#[tokio::test]
async fn broker_sends_no_more_unacknowledged_messages_than_the_clients_receive_maximum() {
    let broker = TestBroker::start_quiet().await;
    let mut options = v5::options(&broker, "narrow");
    options.set_receive_maximum(Some(2));
    options.set_manual_acks(true);
    let (mut sub, _) = v5::connect_with(options).await;
    sub.subscribe("rm/t", Q5::AtLeastOnce).await;
    sub.subscribe(BARRIER, Q5::AtMostOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    for i in 0..5u8 {
        publisher
            .publish_acked("rm/t", Q5::AtLeastOnce, false, vec![i])
            .await;
    }
    // A QoS 0 barrier is not held back by the window, so it shows what was sent before it.
    barrier(&publisher).await;
    let window = sub.publishes_until(BARRIER).await;
    let payloads = |got: &[rumqttc::v5::mqttbytes::v5::Publish]| {
        got.iter().map(|p| p.payload[0]).collect::<Vec<_>>()
    };
    assert_eq!(payloads(&window), [0, 1]);

    // Each acknowledgement opens room for exactly one more.
    let mut received = window;
    while received.len() < 5 {
        let oldest = received[received.len() - 2].clone();
        sub.ack(&oldest).await;
        received.push(sub.next_publish().await);
    }
    assert_eq!(payloads(&received), [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn message_larger_than_the_clients_maximum_packet_size_is_dropped_for_that_client() {
    let broker = TestBroker::start_quiet().await;
    let mut options = v5::options(&broker, "small");
    // rumqttc also refuses anything larger coming in, so a message sent anyway fails the test.
    options.set_max_packet_size(Some(128));
    let (mut small, _) = v5::connect_with(options).await;
    small.subscribe("mps/t", Q5::AtLeastOnce).await;
    small.subscribe(BARRIER, Q5::AtMostOnce).await;
    let mut large = subscriber(
        &broker,
        "large",
        vec![Filter::new("mps/t", Q5::AtLeastOnce)],
    )
    .await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("mps/t", Q5::AtLeastOnce, false, vec![b'x'; 500])
        .await;
    publisher
        .publish_acked("mps/t", Q5::AtLeastOnce, false, "tiny")
        .await;
    barrier(&publisher).await;
    let got = small.publishes_until(BARRIER).await;
    assert_eq!(
        v5::topics_payloads(&got),
        vec![("mps/t".to_string(), b"tiny".to_vec())]
    );
    assert_eq!(large.publishes_until(BARRIER).await.len(), 2);
    // The dropped QoS 1 message does not linger in the session ([MQTT-3.1.2-25]).
    assert!(broker.inspect(|b| b.session("small").unwrap().queue.is_empty()));
}

#[tokio::test]
async fn message_of_exactly_the_clients_maximum_packet_size_is_delivered() {
    let broker = TestBroker::start_quiet().await;
    let mut connect = raw::connect(Protocol::V5, "edge");
    connect.properties.maximum_packet_size = std::num::NonZeroU32::new(100);
    let (mut sub, _) = RawClient::connect(broker.addr, connect).await;
    sub.subscribe(1, "e", QoS::AtMostOnce).await;
    sub.subscribe(2, BARRIER, QoS::AtMostOnce).await;
    let publisher = v5::connect(&broker, "pub").await;
    // A QoS 0 PUBLISH to "e" without properties takes 2 + 3 + 1 bytes before its payload.
    publisher
        .publish("e", Q5::AtMostOnce, false, vec![b'a'; 94])
        .await;
    publisher
        .publish("e", Q5::AtMostOnce, false, vec![b'b'; 95])
        .await;
    barrier(&publisher).await;
    let fits = sub.expect_publish().await;
    assert_eq!(fits.payload.len(), 94);
    assert_eq!(
        Packet::Publish(fits).encoded_len(Protocol::V5).unwrap(),
        100
    );
    // The 101-byte one was not sent: the barrier comes next.
    assert_eq!(sub.expect_publish().await.topic.as_str(), BARRIER);
}

#[tokio::test]
async fn client_within_the_brokers_receive_maximum_is_served() {
    let mut settings = TestBroker::settings();
    settings.session.receive_maximum = 2;
    settings.broker.receive_maximum = 2;
    let broker = TestBroker::start(settings).await;
    let mut sub = v5::connect(&broker, "sub").await;
    sub.subscribe("many", Q5::ExactlyOnce).await;
    // rumqttc keeps at most 2 QoS 2 publishes in flight, as the CONNACK told it.
    let mut publisher = v5::connect(&broker, "pub").await;
    for i in 0..10u8 {
        publisher
            .publish("many", Q5::ExactlyOnce, false, vec![i])
            .await;
    }
    for _ in 0..10 {
        publisher.acked(Q5::ExactlyOnce).await;
    }
    let got: Vec<u8> = sub
        .publishes(10)
        .await
        .iter()
        .map(|p| p.payload[0])
        .collect();
    assert_eq!(got, (0..10).collect::<Vec<u8>>());
}

// --- DISCONNECT --------------------------------------------------------------------------------

#[tokio::test]
async fn server_shutdown_sends_disconnect_0x8b() {
    let mut broker = TestBroker::start_quiet().await;
    let mut v5_client = RawClient::connected(broker.addr, Protocol::V5, "five").await;
    let mut v3_client = RawClient::connected(broker.addr, Protocol::V3_1_1, "three").await;
    broker.stop();
    v5_client
        .expect_disconnect(ReasonCode::ServerShuttingDown)
        .await;
    v3_client.expect_closed().await;
}

/// Connects raw as `client_id` with session expiry `expiry_secs` (clean start 0).
async fn raw_with_expiry(broker: &TestBroker, client_id: &str, expiry_secs: u32) -> RawClient {
    let mut connect = raw::connect(Protocol::V5, client_id);
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(expiry_secs);
    let (client, connack) = RawClient::connect(broker.addr, connect).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    client
}

fn disconnect_with_expiry(expiry_secs: u32) -> Packet {
    Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::Success,
        properties: DisconnectProperties {
            session_expiry_interval: Some(expiry_secs),
            ..Default::default()
        },
    })
}

#[tokio::test]
async fn disconnect_with_session_expiry_zero_ends_a_persistent_session() {
    let broker = TestBroker::start_quiet().await;
    let mut client = raw_with_expiry(&broker, "quitter", 600).await;
    client.send(disconnect_with_expiry(0)).await;
    client.expect_closed().await;
    broker.wait_session_gone("quitter").await;
}

#[tokio::test]
async fn disconnect_can_lengthen_the_session_expiry() {
    let broker = TestBroker::start_quiet().await;
    let mut client = raw_with_expiry(&broker, "stayer", 1).await;
    client.send(disconnect_with_expiry(3600)).await;
    client.expect_closed().await;
    broker.wait_offline("stayer").await;
    assert_eq!(
        broker.inspect(|b| b.session("stayer").map(|s| s.expiry_secs)),
        Some(3600)
    );
}

#[tokio::test]
async fn disconnect_setting_an_expiry_after_connect_with_zero_is_a_protocol_error_0x82() {
    let broker = TestBroker::start_quiet().await;
    let mut client = raw_with_expiry(&broker, "sneaky", 0).await;
    // MQTT 5 §3.14.2.2.2 (a Protocol Error)
    client.send(disconnect_with_expiry(60)).await;
    client.expect_disconnect(ReasonCode::ProtocolError).await;
    broker.wait_session_gone("sneaky").await;
}
