//! Bad input over real sockets: malformed packets, a first packet other than CONNECT, a
//! second CONNECT, oversized packets, invalid topic names and filters, packet-id reuse, a
//! client exceeding Receive Maximum, unknown properties and other protocol violations.
//!
//! Each is answered as the spec says — MQTT 5: DISCONNECT (or CONNACK) with the reason code;
//! MQTT 3: the connection is closed — and never disturbs anyone else: every test keeps a
//! bystander connected and checks afterwards that it is still served and that the broker
//! core's invariants hold (a panic under the core's lock would poison it and fail both).
//! The bad bytes are written by the raw client, since rumqttc only sends valid packets.

use crate::common;

use common::raw::{self, RawClient};
use common::{v3, TestBroker};
use keel::codec::{
    Connect, Packet, Protocol, PublishProperties, QoS, ReasonCode, Subscribe, SubscribeProperties,
    SubscriptionOptions, TopicFilter,
};
use rumqttc::QoS as Q3;

/// A connected MQTT 3.1.1 client (rumqttc) that must keep working whatever others send.
struct Bystander {
    client: v3::Client,
}

impl Bystander {
    async fn join(broker: &TestBroker) -> Bystander {
        let mut client = v3::connect(broker, "bystander").await;
        client.subscribe("bystander/echo", Q3::AtLeastOnce).await;
        Bystander { client }
    }

    /// The bystander's own round trip still works and the broker core is consistent.
    async fn still_served(mut self, broker: &TestBroker) {
        self.client
            .publish_acked("bystander/echo", Q3::AtLeastOnce, false, "still here")
            .await;
        assert_eq!(
            self.client.next_publish().await.payload.as_ref(),
            b"still here"
        );
        broker.inspect(|b| b.validate());
    }
}

/// Starts a node with `settings`, a bystander and a connected raw client speaking `protocol`;
/// sends `bad` and asserts the refusal (MQTT 5: DISCONNECT `reason`; MQTT 3: close); then
/// checks the bystander.
async fn refused_after_connect(
    settings: keel::server::ServerSettings,
    protocol: Protocol,
    bad: &[u8],
    reason: ReasonCode,
) {
    let broker = TestBroker::start(settings).await;
    let bystander = Bystander::join(&broker).await;
    let mut client = RawClient::connected(broker.addr, protocol, "offender").await;
    client.send_bytes(bad).await;
    client.expect_refused(reason).await;
    broker.wait_offline("offender").await;
    bystander.still_served(&broker).await;
}

fn v3_and_v5() -> [Protocol; 2] {
    [Protocol::V3_1_1, Protocol::V5]
}

/// A PUBLISH at QoS 0 with a raw topic field: `topic` bytes as given, no properties (v5:
/// an empty property list), payload "x".
fn publish_with_raw_topic(protocol: Protocol, topic: &[u8]) -> Vec<u8> {
    let mut body = raw::string(topic);
    if protocol.is_v5() {
        body.push(0x00);
    }
    body.push(b'x');
    raw::frame(0x30, &body)
}

/// A SUBSCRIBE (packet id 1) to one raw filter at QoS 1.
fn subscribe_with_raw_filter(protocol: Protocol, filter: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01];
    if protocol.is_v5() {
        body.push(0x00);
    }
    body.extend_from_slice(&raw::string(filter));
    body.push(0x01);
    raw::frame(0x82, &body)
}

fn encode(protocol: Protocol, packet: Packet) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    packet.encode(protocol, &mut buf).expect("encode");
    buf.to_vec()
}

// --- The first packet and CONNECT ----------------------------------------------------------

#[tokio::test]
async fn first_packet_other_than_connect_is_closed_without_an_answer() {
    let broker = TestBroker::start_quiet().await;
    let bystander = Bystander::join(&broker).await;
    let not_connect = [
        vec![0xc0, 0x00],                                 // PINGREQ
        publish_with_raw_topic(Protocol::V3_1_1, b"a/b"), // PUBLISH
        vec![0xe0, 0x00],                                 // DISCONNECT
    ];
    for bytes in not_connect {
        let mut client = RawClient::open(broker.addr, Protocol::V3_1_1).await;
        client.send_bytes(&bytes).await;
        // [MQTT-3.1.0-1]
        client.expect_closed().await;
    }
    bystander.still_served(&broker).await;
}

#[tokio::test]
async fn bytes_that_are_not_mqtt_are_closed_without_an_answer() {
    let broker = TestBroker::start_quiet().await;
    let bystander = Bystander::join(&broker).await;
    let mut client = RawClient::open(broker.addr, Protocol::V3_1_1).await;
    client
        .send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    client.expect_closed().await;
    let mut client = RawClient::open(broker.addr, Protocol::V3_1_1).await;
    client.send_bytes(&[0x00, 0x00]).await;
    client.expect_closed().await;
    bystander.still_served(&broker).await;
}

#[tokio::test]
async fn v5_malformed_connect_gets_connack_0x81() {
    let broker = TestBroker::start_quiet().await;
    let bystander = Bystander::join(&broker).await;
    // A CONNECT whose reserved flag bit is set ([MQTT-3.1.2-3]).
    let mut body = raw::string(b"MQTT");
    body.extend_from_slice(&[0x05, 0x03, 0x00, 0x3c, 0x00]);
    body.extend_from_slice(&raw::string(b"c"));
    let mut client = RawClient::open(broker.addr, Protocol::V5).await;
    client.send_bytes(&raw::frame(0x10, &body)).await;
    match client.expect_packet().await {
        Packet::ConnAck(connack) => assert_eq!(connack.reason_code, ReasonCode::MalformedPacket),
        other => panic!("expected CONNACK 0x81, got {other:?}"),
    }
    client.expect_closed().await;
    bystander.still_served(&broker).await;
}

#[tokio::test]
async fn v3_malformed_connect_is_closed_without_connack() {
    let broker = TestBroker::start_quiet().await;
    let bystander = Bystander::join(&broker).await;
    let mut body = raw::string(b"MQTT");
    body.extend_from_slice(&[0x04, 0x03, 0x00, 0x3c]);
    body.extend_from_slice(&raw::string(b"c"));
    let mut client = RawClient::open(broker.addr, Protocol::V3_1_1).await;
    client.send_bytes(&raw::frame(0x10, &body)).await;
    client.expect_closed().await;
    bystander.still_served(&broker).await;
}

#[tokio::test]
async fn second_connect_is_a_protocol_error() {
    for protocol in v3_and_v5() {
        let second = encode(
            protocol,
            Packet::Connect(Box::new(raw::connect(protocol, "offender"))),
        );
        refused_after_connect(
            TestBroker::settings(),
            protocol,
            &second,
            ReasonCode::ProtocolError,
        )
        .await;
    }
}

// --- Malformed packets ---------------------------------------------------------------------

#[tokio::test]
async fn packet_with_reserved_header_flags_is_malformed() {
    for protocol in v3_and_v5() {
        // SUBSCRIBE must have flags 0b0010 ([MQTT-3.8.1-1]).
        let mut bad = subscribe_with_raw_filter(protocol, b"a/b");
        bad[0] = 0x80;
        refused_after_connect(
            TestBroker::settings(),
            protocol,
            &bad,
            ReasonCode::MalformedPacket,
        )
        .await;
    }
}

#[tokio::test]
async fn remaining_length_of_five_bytes_is_malformed() {
    for protocol in v3_and_v5() {
        refused_after_connect(
            TestBroker::settings(),
            protocol,
            &[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f],
            ReasonCode::MalformedPacket,
        )
        .await;
    }
}

#[tokio::test]
async fn publish_with_qos_3_is_malformed() {
    for protocol in v3_and_v5() {
        let mut bad = publish_with_raw_topic(protocol, b"a/b");
        bad[0] = 0x36;
        refused_after_connect(
            TestBroker::settings(),
            protocol,
            &bad,
            ReasonCode::MalformedPacket,
        )
        .await;
    }
}

#[tokio::test]
async fn packet_cut_short_by_its_remaining_length_is_malformed() {
    for protocol in v3_and_v5() {
        // PUBACK with a remaining length of 1: the packet id does not fit.
        refused_after_connect(
            TestBroker::settings(),
            protocol,
            &[0x40, 0x01, 0x00],
            ReasonCode::MalformedPacket,
        )
        .await;
    }
}

#[tokio::test]
async fn v5_unknown_property_is_malformed() {
    // A PUBLISH whose property list holds identifier 0x7f, which MQTT 5 does not define.
    let mut body = raw::string(b"a/b");
    body.extend_from_slice(&[0x02, 0x7f, 0x00]);
    body.push(b'x');
    refused_after_connect(
        TestBroker::settings(),
        Protocol::V5,
        &raw::frame(0x30, &body),
        ReasonCode::MalformedPacket,
    )
    .await;
}

#[tokio::test]
async fn v5_property_not_allowed_in_the_packet_is_malformed() {
    // Session Expiry Interval (0x11) belongs to CONNECT, CONNACK and DISCONNECT, not PUBLISH.
    let mut body = raw::string(b"a/b");
    body.extend_from_slice(&[0x05, 0x11, 0x00, 0x00, 0x00, 0x0a]);
    body.push(b'x');
    refused_after_connect(
        TestBroker::settings(),
        Protocol::V5,
        &raw::frame(0x30, &body),
        ReasonCode::MalformedPacket,
    )
    .await;
}

// --- Oversized packets ------------------------------------------------------------------------

#[tokio::test]
async fn packet_over_the_maximum_packet_size_is_refused_with_0x95() {
    for protocol in v3_and_v5() {
        let mut settings = TestBroker::settings();
        settings.session.packet_size_max = 256;
        let big = raw::publish("big", QoS::AtMostOnce, 0, &[b'x'; 1000]);
        refused_after_connect(
            settings,
            protocol,
            &encode(protocol, Packet::Publish(big)),
            ReasonCode::PacketTooLarge,
        )
        .await;
    }
}

#[tokio::test]
async fn packet_of_exactly_the_maximum_packet_size_is_accepted() {
    for protocol in v3_and_v5() {
        let mut settings = TestBroker::settings();
        settings.session.packet_size_max = 128;
        let broker = TestBroker::start(settings).await;
        let mut client = RawClient::connected(broker.addr, protocol, "edge").await;
        // QoS 1 PUBLISH to "e": 2 bytes of fixed header, 3 of topic, 2 of packet id, 1 of
        // properties (MQTT 5), then the payload.
        let overhead = if protocol.is_v5() { 8 } else { 7 };
        let publish = raw::publish("e", QoS::AtLeastOnce, 1, &vec![b'x'; 128 - overhead]);
        let packet = Packet::Publish(publish);
        assert_eq!(packet.encoded_len(protocol).unwrap(), 128);
        client.send(packet).await;
        assert!(matches!(client.expect_packet().await, Packet::PubAck(_)));
        // One byte more is refused.
        let publish = raw::publish("e", QoS::AtLeastOnce, 2, &vec![b'x'; 129 - overhead]);
        client.send(Packet::Publish(publish)).await;
        client.expect_refused(ReasonCode::PacketTooLarge).await;
    }
}

#[tokio::test]
async fn packet_over_the_maximum_size_is_refused_from_its_header_alone() {
    // Only the fixed header of a 100 MB packet is sent: the broker must not wait for the rest.
    for protocol in v3_and_v5() {
        refused_after_connect(
            TestBroker::settings(),
            protocol,
            &[0x30, 0x80, 0x80, 0x80, 0x30],
            ReasonCode::PacketTooLarge,
        )
        .await;
    }
}

// --- Invalid topic names and filters ----------------------------------------------------------

#[tokio::test]
async fn topic_name_with_a_wildcard_is_malformed() {
    for protocol in v3_and_v5() {
        for topic in [&b"a/+"[..], b"a/#", b"+"] {
            refused_after_connect(
                TestBroker::settings(),
                protocol,
                &publish_with_raw_topic(protocol, topic),
                ReasonCode::MalformedPacket,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn topic_name_that_is_not_utf8_or_holds_nul_is_malformed() {
    for protocol in v3_and_v5() {
        for topic in [&b"a/\xff\xfe"[..], b"a/\0b", b"\xed\xa0\x80"] {
            refused_after_connect(
                TestBroker::settings(),
                protocol,
                &publish_with_raw_topic(protocol, topic),
                ReasonCode::MalformedPacket,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn v3_empty_topic_name_is_malformed() {
    refused_after_connect(
        TestBroker::settings(),
        Protocol::V3_1_1,
        &publish_with_raw_topic(Protocol::V3_1_1, b""),
        ReasonCode::MalformedPacket,
    )
    .await;
}

#[tokio::test]
async fn v5_empty_topic_name_without_a_topic_alias_is_a_protocol_error() {
    refused_after_connect(
        TestBroker::settings(),
        Protocol::V5,
        &publish_with_raw_topic(Protocol::V5, b""),
        ReasonCode::ProtocolError,
    )
    .await;
}

#[tokio::test]
async fn invalid_topic_filter_is_malformed() {
    for protocol in v3_and_v5() {
        for filter in [
            &b"a/#/b"[..],
            b"a/b#",
            b"a+/b",
            b"",
            b"$share//t",
            b"$share/g",
        ] {
            refused_after_connect(
                TestBroker::settings(),
                protocol,
                &subscribe_with_raw_filter(protocol, filter),
                ReasonCode::MalformedPacket,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn v5_no_local_on_a_shared_subscription_is_a_protocol_error() {
    let mut options = SubscriptionOptions::new(QoS::AtLeastOnce);
    options.no_local = true;
    let subscribe = Subscribe {
        packet_id: raw::pid(1),
        properties: SubscribeProperties::default(),
        filters: vec![(TopicFilter::new("$share/g/t").unwrap(), options)],
    };
    refused_after_connect(
        TestBroker::settings(),
        Protocol::V5,
        &encode(Protocol::V5, Packet::Subscribe(subscribe)),
        ReasonCode::ProtocolError,
    )
    .await;
}

// --- Packet identifiers --------------------------------------------------------------------

/// A QoS 2 packet id reused (without DUP) before its PUBREL: the broker still has the first
/// message for that id, so it acknowledges the second but must not deliver it
/// ([MQTT-4.3.3-10]); once released the id is fresh again.
async fn qos2_packet_id_reuse_before_pubrel(protocol: Protocol) {
    let broker = TestBroker::start_quiet().await;
    let bystander = Bystander::join(&broker).await;
    let mut sub = v3::connect(&broker, "sub").await;
    sub.subscribe_many(&[
        ("reuse/t", Q3::ExactlyOnce),
        ("reuse/barrier", Q3::AtMostOnce),
    ])
    .await;
    let mut client = RawClient::connected(broker.addr, protocol, "reuser").await;
    for payload in [&b"first"[..], b"second"] {
        client
            .send(Packet::Publish(raw::publish(
                "reuse/t",
                QoS::ExactlyOnce,
                9,
                payload,
            )))
            .await;
        match client.expect_packet().await {
            Packet::PubRec(rec) => assert_eq!(rec.packet_id, raw::pid(9)),
            other => panic!("expected PUBREC, got {other:?}"),
        }
    }
    client.send(Packet::PubRel(raw::reply(9))).await;
    assert!(matches!(client.expect_packet().await, Packet::PubComp(_)));
    client
        .send(Packet::Publish(raw::publish(
            "reuse/t",
            QoS::ExactlyOnce,
            9,
            b"third",
        )))
        .await;
    assert!(matches!(client.expect_packet().await, Packet::PubRec(_)));
    client.send(Packet::PubRel(raw::reply(9))).await;
    assert!(matches!(client.expect_packet().await, Packet::PubComp(_)));
    client
        .send(Packet::Publish(raw::publish(
            "reuse/barrier",
            QoS::AtMostOnce,
            0,
            b"",
        )))
        .await;
    let got = sub.publishes_until("reuse/barrier").await;
    assert_eq!(
        v3::topics_payloads(&got),
        vec![
            ("reuse/t".to_string(), b"first".to_vec()),
            ("reuse/t".to_string(), b"third".to_vec()),
        ]
    );
    bystander.still_served(&broker).await;
}

#[tokio::test]
async fn v3_qos2_packet_id_reused_before_pubrel_is_not_delivered_twice() {
    qos2_packet_id_reuse_before_pubrel(Protocol::V3_1_1).await;
}

#[tokio::test]
async fn v5_qos2_packet_id_reused_before_pubrel_is_not_delivered_twice() {
    qos2_packet_id_reuse_before_pubrel(Protocol::V5).await;
}

#[tokio::test]
async fn acknowledgements_for_unknown_packet_ids_do_not_break_the_connection() {
    for protocol in v3_and_v5() {
        let broker = TestBroker::start_quiet().await;
        let bystander = Bystander::join(&broker).await;
        let mut client = RawClient::connected(broker.addr, protocol, "confused").await;
        // PUBACK and PUBCOMP for nothing are ignored.
        client.send(Packet::PubAck(raw::reply(11))).await;
        client.send(Packet::PubComp(raw::reply(12))).await;
        // PUBREL for nothing is completed; MQTT 5 says the id was not found.
        client.send(Packet::PubRel(raw::reply(13))).await;
        match client.expect_packet().await {
            Packet::PubComp(comp) => {
                assert_eq!(comp.packet_id, raw::pid(13));
                let expected = if protocol.is_v5() {
                    ReasonCode::PacketIdentifierNotFound
                } else {
                    ReasonCode::Success
                };
                assert_eq!(comp.reason_code, expected);
            }
            other => panic!("expected PUBCOMP, got {other:?}"),
        }
        // PUBREC for nothing gets PUBREL, likewise.
        client.send(Packet::PubRec(raw::reply(14))).await;
        match client.expect_packet().await {
            Packet::PubRel(rel) => assert_eq!(rel.packet_id, raw::pid(14)),
            other => panic!("expected PUBREL, got {other:?}"),
        }
        client.ping().await;
        bystander.still_served(&broker).await;
    }
}

// --- Limits the broker announced -------------------------------------------------------------

#[tokio::test]
async fn client_exceeding_the_brokers_receive_maximum_is_disconnected_with_0x93() {
    for protocol in v3_and_v5() {
        let mut settings = TestBroker::settings();
        settings.session.receive_maximum = 2;
        settings.broker.receive_maximum = 2;
        let broker = TestBroker::start(settings).await;
        let bystander = Bystander::join(&broker).await;
        let mut client = RawClient::connected(broker.addr, protocol, "greedy").await;
        // Two unreleased QoS 2 publishes are allowed; the third is one too many.
        for id in 1..=2 {
            client
                .send(Packet::Publish(raw::publish(
                    "rm",
                    QoS::ExactlyOnce,
                    id,
                    b"x",
                )))
                .await;
            assert!(matches!(client.expect_packet().await, Packet::PubRec(_)));
        }
        client
            .send(Packet::Publish(raw::publish(
                "rm",
                QoS::ExactlyOnce,
                3,
                b"x",
            )))
            .await;
        client
            .expect_refused(ReasonCode::ReceiveMaximumExceeded)
            .await;
        bystander.still_served(&broker).await;
    }
}

#[tokio::test]
async fn publish_above_the_maximum_qos_is_refused_with_0x9b() {
    for protocol in v3_and_v5() {
        let mut settings = TestBroker::settings();
        settings.session.maximum_qos = QoS::AtLeastOnce;
        let publish = raw::publish("q", QoS::ExactlyOnce, 1, b"x");
        refused_after_connect(
            settings,
            protocol,
            &encode(protocol, Packet::Publish(publish)),
            ReasonCode::QoSNotSupported,
        )
        .await;
    }
}

#[tokio::test]
async fn retained_publish_without_retain_support_is_refused_with_0x9a() {
    for protocol in v3_and_v5() {
        let mut settings = TestBroker::settings();
        settings.session.retain_available = false;
        let mut publish = raw::publish("r", QoS::AtMostOnce, 0, b"x");
        publish.retain = true;
        refused_after_connect(
            settings,
            protocol,
            &encode(protocol, Packet::Publish(publish)),
            ReasonCode::RetainNotSupported,
        )
        .await;
    }
}

#[tokio::test]
async fn v5_topic_alias_above_the_brokers_maximum_is_refused_with_0x94() {
    let mut settings = TestBroker::settings();
    settings.session.topic_alias_max = 4;
    let mut publish = raw::publish("ta", QoS::AtMostOnce, 0, b"x");
    publish.properties.topic_alias = std::num::NonZeroU16::new(5);
    refused_after_connect(
        settings,
        Protocol::V5,
        &encode(Protocol::V5, Packet::Publish(publish)),
        ReasonCode::TopicAliasInvalid,
    )
    .await;
}

#[tokio::test]
async fn v5_topic_alias_zero_is_a_protocol_error() {
    // [MQTT-3.3.2-8]: alias 0 is an invalid property value (0x94 is for aliases above the
    // maximum). The codec's types cannot express it: PUBLISH "a", property 0x23 = 0.
    let mut body = raw::string(b"a");
    body.extend_from_slice(&[0x03, 0x23, 0x00, 0x00]);
    body.push(b'x');
    refused_after_connect(
        TestBroker::settings(),
        Protocol::V5,
        &raw::frame(0x30, &body),
        ReasonCode::ProtocolError,
    )
    .await;
}

#[tokio::test]
async fn v5_topic_alias_never_set_up_is_a_protocol_error() {
    let mut publish = raw::publish("ta", QoS::AtMostOnce, 0, b"x");
    publish.topic = keel::codec::TopicName::default();
    publish.properties.topic_alias = std::num::NonZeroU16::new(1);
    refused_after_connect(
        TestBroker::settings(),
        Protocol::V5,
        &encode(Protocol::V5, Packet::Publish(publish)),
        ReasonCode::ProtocolError,
    )
    .await;
}

#[tokio::test]
async fn v5_subscription_identifier_sent_by_a_client_is_a_protocol_error() {
    let mut publish = raw::publish("sid", QoS::AtMostOnce, 0, b"x");
    publish.properties = PublishProperties {
        subscription_identifiers: vec![std::num::NonZeroU32::new(3).unwrap()],
        ..Default::default()
    };
    refused_after_connect(
        TestBroker::settings(),
        Protocol::V5,
        &encode(Protocol::V5, Packet::Publish(publish)),
        ReasonCode::ProtocolError,
    )
    .await;
}

#[tokio::test]
async fn v5_auth_packet_without_an_authentication_method_is_a_protocol_error() {
    refused_after_connect(
        TestBroker::settings(),
        Protocol::V5,
        &[0xf0, 0x00],
        ReasonCode::ProtocolError,
    )
    .await;
}

#[tokio::test]
async fn v5_qos0_publish_declared_utf8_with_an_invalid_payload_is_refused_with_0x99() {
    let mut publish = raw::publish("fmt", QoS::AtMostOnce, 0, &[0xc3, 0x28]);
    publish.properties.payload_format_indicator = Some(true);
    refused_after_connect(
        TestBroker::settings(),
        Protocol::V5,
        &encode(Protocol::V5, Packet::Publish(publish)),
        ReasonCode::PayloadFormatInvalid,
    )
    .await;
}

// --- Consequences ------------------------------------------------------------------------------

#[tokio::test]
async fn will_is_published_when_the_broker_closes_a_connection_for_bad_input() {
    for protocol in v3_and_v5() {
        let broker = TestBroker::start_quiet().await;
        let mut observer = v3::connect(&broker, "observer").await;
        observer.subscribe("bad/will", Q3::AtLeastOnce).await;
        let mut connect: Connect = raw::connect(protocol, "offender");
        connect.will = Some(keel::codec::LastWill {
            topic: keel::codec::TopicName::new("bad/will").unwrap(),
            payload: bytes::Bytes::from_static(b"offender was dropped"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
        });
        let (mut client, _) = RawClient::connect(broker.addr, connect).await;
        client
            .send_bytes(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f])
            .await;
        client.expect_refused(ReasonCode::MalformedPacket).await;
        assert_eq!(
            observer.next_publish().await.payload.as_ref(),
            b"offender was dropped"
        );
    }
}

#[tokio::test]
async fn packets_arriving_one_byte_at_a_time_are_decoded() {
    for protocol in v3_and_v5() {
        let broker = TestBroker::start_quiet().await;
        let mut sub = v3::connect(&broker, "sub").await;
        sub.subscribe("slow/t", Q3::AtLeastOnce).await;
        let mut client = RawClient::open(broker.addr, protocol).await;
        let mut bytes = encode(
            protocol,
            Packet::Connect(Box::new(raw::connect(protocol, "dribble"))),
        );
        bytes.extend(encode(
            protocol,
            Packet::Publish(raw::publish("slow/t", QoS::AtLeastOnce, 1, b"drip")),
        ));
        for byte in bytes {
            client.send_bytes(&[byte]).await;
        }
        assert!(matches!(client.expect_packet().await, Packet::ConnAck(_)));
        assert!(matches!(client.expect_packet().await, Packet::PubAck(_)));
        assert_eq!(sub.next_publish().await.payload.as_ref(), b"drip");
    }
}

/// Issue 16, finding 7: a CONNECT and a malformed packet in one TCP segment. The CONNACK comes
/// first or not at all ([MQTT-3.2.0-1]: the first packet from the server is a CONNACK), for a
/// session that ends with its connection and for one that the log must open.
#[tokio::test]
async fn a_malformed_packet_right_after_connect_gets_no_disconnect_before_the_connack() {
    let broker = TestBroker::start(TestBroker::settings()).await;
    // A PUBLISH whose topic length (5) runs past its remaining length (2).
    let malformed = [0x30u8, 0x02, 0x00, 0x05];
    for (client_id, durable) in [("eager-clean", false), ("eager-durable", true)] {
        let mut connect = raw::connect(Protocol::V5, client_id);
        if durable {
            connect.clean_start = false;
            connect.properties.session_expiry_interval = Some(60);
        }
        let mut bytes = bytes::BytesMut::new();
        Packet::Connect(Box::new(connect))
            .encode(Protocol::V5, &mut bytes)
            .unwrap();
        bytes.extend_from_slice(&malformed);
        let mut client = RawClient::open(broker.addr, Protocol::V5).await;
        client.send_bytes(&bytes).await;
        let mut seen = Vec::new();
        while let Some(packet) = client.recv().await {
            seen.push(packet);
        }
        if let Some(first) = seen.first() {
            assert!(matches!(first, Packet::ConnAck(_)), "{client_id}: {seen:?}");
        }
        broker.inspect(|b| b.validate());
    }
}
