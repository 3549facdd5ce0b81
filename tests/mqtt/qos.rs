//! QoS 0, 1 and 2 in both directions over real sockets: the acknowledgement flows, the
//! delivery QoS, packet ids the broker assigns, redelivery with DUP after a reconnect, the
//! PUBREL resent for a QoS 2 message already received, and a QoS 2 publish resent by its
//! publisher that must not be routed twice.

use crate::common;

use common::raw::{self, RawClient};
use common::{v3, v5, TestBroker};
use keel::codec::{Packet, Protocol, QoS, ReasonCode};

use rumqttc::v5::mqttbytes::v5::Packet as P5;
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::{Packet as P3, QoS as Q3};

/// Waits until no message is queued or in flight for `client_id`.
async fn wait_queue_empty(broker: &TestBroker, client_id: &str) {
    broker
        .wait_until(&format!("the queue of {client_id} to drain"), |b| {
            b.session(client_id).is_some_and(|s| s.queue.is_empty())
        })
        .await
}

// --- Publisher side: the acknowledgement flows ----------------------------------------------

#[tokio::test]
async fn v3_publisher_gets_puback_for_qos1_and_pubrec_then_pubcomp_for_qos2() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v3::connect(&broker, "sub").await;
    sub.subscribe("flow/#", Q3::ExactlyOnce).await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish("flow/1", Q3::AtLeastOnce, false, "one")
        .await;
    publisher
        .publish("flow/2", Q3::ExactlyOnce, false, "two")
        .await;
    let mut acks = Vec::new();
    while acks.len() < 3 {
        match publisher.next_incoming().await {
            P3::PubAck(ack) => acks.push(("PUBACK", ack.pkid)),
            P3::PubRec(rec) => acks.push(("PUBREC", rec.pkid)),
            P3::PubComp(comp) => acks.push(("PUBCOMP", comp.pkid)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acks, vec![("PUBACK", 1), ("PUBREC", 2), ("PUBCOMP", 2)]);
    let got = sub.publishes(2).await;
    assert_eq!(
        got.iter().map(v3::summary).collect::<Vec<_>>(),
        vec![
            ("flow/1".into(), b"one".to_vec(), Q3::AtLeastOnce, false),
            ("flow/2".into(), b"two".to_vec(), Q3::ExactlyOnce, false),
        ]
    );
}

#[tokio::test]
async fn v5_publisher_gets_puback_for_qos1_and_pubrec_then_pubcomp_for_qos2() {
    use rumqttc::v5::mqttbytes::v5::{PubAckReason, PubCompReason, PubRecReason};
    let broker = TestBroker::start_quiet().await;
    let mut sub = v5::connect(&broker, "sub").await;
    sub.subscribe("flow/#", Q5::ExactlyOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish("flow/1", Q5::AtLeastOnce, false, "one")
        .await;
    publisher
        .publish("flow/2", Q5::ExactlyOnce, false, "two")
        .await;
    let mut acks = Vec::new();
    while acks.len() < 3 {
        match publisher.next_incoming().await {
            P5::PubAck(ack) => {
                assert_eq!(ack.reason, PubAckReason::Success);
                acks.push(("PUBACK", ack.pkid))
            }
            P5::PubRec(rec) => {
                assert_eq!(rec.reason, PubRecReason::Success);
                acks.push(("PUBREC", rec.pkid))
            }
            P5::PubComp(comp) => {
                assert_eq!(comp.reason, PubCompReason::Success);
                acks.push(("PUBCOMP", comp.pkid))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acks, vec![("PUBACK", 1), ("PUBREC", 2), ("PUBCOMP", 2)]);
    let got = sub.publishes(2).await;
    assert_eq!(
        got.iter().map(v5::summary).collect::<Vec<_>>(),
        vec![
            ("flow/1".into(), b"one".to_vec(), Q5::AtLeastOnce, false),
            ("flow/2".into(), b"two".to_vec(), Q5::ExactlyOnce, false),
        ]
    );
}

// --- Delivery QoS ----------------------------------------------------------------------------

#[tokio::test]
async fn v3_delivery_qos_is_the_lower_of_publish_and_subscription_qos() {
    let broker = TestBroker::start_quiet().await;
    let mut at1 = v3::connect(&broker, "at1").await;
    at1.subscribe("d/#", Q3::AtLeastOnce).await;
    let mut at2 = v3::connect(&broker, "at2").await;
    at2.subscribe("d/#", Q3::ExactlyOnce).await;
    let publisher = v3::connect(&broker, "pub").await;
    for (i, qos) in [Q3::AtMostOnce, Q3::AtLeastOnce, Q3::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publisher.publish(&format!("d/{i}"), qos, false, "x").await;
    }
    let qos_of = |got: Vec<rumqttc::Publish>| got.iter().map(|p| p.qos).collect::<Vec<_>>();
    assert_eq!(
        qos_of(at1.publishes(3).await),
        [Q3::AtMostOnce, Q3::AtLeastOnce, Q3::AtLeastOnce]
    );
    // Never upgraded above the published QoS.
    assert_eq!(
        qos_of(at2.publishes(3).await),
        [Q3::AtMostOnce, Q3::AtLeastOnce, Q3::ExactlyOnce]
    );
}

#[tokio::test]
async fn v5_delivery_qos_is_the_lower_of_publish_and_subscription_qos() {
    let broker = TestBroker::start_quiet().await;
    let mut at0 = v5::connect(&broker, "at0").await;
    at0.subscribe("d/#", Q5::AtMostOnce).await;
    let mut at1 = v5::connect(&broker, "at1").await;
    at1.subscribe("d/#", Q5::AtLeastOnce).await;
    let publisher = v5::connect(&broker, "pub").await;
    for (i, qos) in [Q5::AtMostOnce, Q5::AtLeastOnce, Q5::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publisher.publish(&format!("d/{i}"), qos, false, "x").await;
    }
    let qos_of = |got: Vec<rumqttc::v5::mqttbytes::v5::Publish>| {
        got.iter().map(|p| p.qos).collect::<Vec<_>>()
    };
    assert_eq!(qos_of(at0.publishes(3).await), [Q5::AtMostOnce; 3]);
    assert_eq!(
        qos_of(at1.publishes(3).await),
        [Q5::AtMostOnce, Q5::AtLeastOnce, Q5::AtLeastOnce]
    );
}

// --- Subscriber side: QoS 2 and packet ids ---------------------------------------------------

#[tokio::test]
async fn v3_subscriber_qos2_flow_is_released_by_the_broker_and_completed() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v3::connect(&broker, "sub").await;
    sub.subscribe("q2", Q3::ExactlyOnce).await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish_acked("q2", Q3::ExactlyOnce, false, "x")
        .await;
    let publish = sub.next_publish().await;
    assert_eq!(publish.qos, Q3::ExactlyOnce);
    // rumqttc answered PUBREC; the broker must answer PUBREL with the same id.
    let released = sub
        .expect("PUBREL", |p| match p {
            P3::PubRel(rel) => Some(rel.pkid),
            _ => None,
        })
        .await;
    assert_eq!(released, publish.pkid);
    // rumqttc's PUBCOMP completes the flow.
    wait_queue_empty(&broker, "sub").await;
}

#[tokio::test]
async fn v5_subscriber_qos2_flow_is_released_by_the_broker_and_completed() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v5::connect(&broker, "sub").await;
    sub.subscribe("q2", Q5::ExactlyOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("q2", Q5::ExactlyOnce, false, "x")
        .await;
    let publish = sub.next_publish().await;
    assert_eq!(publish.qos, Q5::ExactlyOnce);
    let released = sub
        .expect("PUBREL", |p| match p {
            P5::PubRel(rel) => Some(rel.pkid),
            _ => None,
        })
        .await;
    assert_eq!(released, publish.pkid);
    wait_queue_empty(&broker, "sub").await;
}

#[tokio::test]
async fn v3_messages_in_flight_to_a_client_have_distinct_packet_ids() {
    let broker = TestBroker::start_quiet().await;
    let mut options = v3::options(&broker, "sub");
    options.set_manual_acks(true);
    let (mut sub, _) = v3::connect_with(options).await;
    sub.subscribe("ids", Q3::AtLeastOnce).await;
    let mut publisher = v3::connect(&broker, "pub").await;
    for i in 0..5u8 {
        publisher
            .publish_acked("ids", Q3::AtLeastOnce, false, vec![i])
            .await;
    }
    let got = sub.publishes(5).await;
    let mut ids: Vec<u16> = got.iter().map(|p| p.pkid).collect();
    assert!(ids.iter().all(|&id| id != 0), "{ids:?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "packet ids reused while in flight: {got:?}");
    for publish in &got {
        sub.ack(publish).await;
    }
    wait_queue_empty(&broker, "sub").await;
}

#[tokio::test]
async fn v5_messages_in_flight_to_a_client_have_distinct_packet_ids() {
    let broker = TestBroker::start_quiet().await;
    let mut options = v5::options(&broker, "sub");
    options.set_manual_acks(true);
    let (mut sub, _) = v5::connect_with(options).await;
    sub.subscribe("ids", Q5::ExactlyOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    for i in 0..5u8 {
        publisher
            .publish_acked("ids", Q5::ExactlyOnce, false, vec![i])
            .await;
    }
    let got = sub.publishes(5).await;
    let mut ids: Vec<u16> = got.iter().map(|p| p.pkid).collect();
    assert!(ids.iter().all(|&id| id != 0), "{ids:?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "packet ids reused while in flight: {got:?}");
    for publish in &got {
        sub.ack(publish).await;
    }
    wait_queue_empty(&broker, "sub").await;
}

// --- Redelivery after a reconnect -----------------------------------------------------------

/// A v3 persistent subscriber to `topic` at `qos` receives one message, does not
/// acknowledge it and loses its connection; on reconnecting the broker must resend it with
/// DUP and the same packet id.
async fn v3_redelivery_with_dup(qos: Q3) {
    let broker = TestBroker::start_quiet().await;
    let mut options = v3::persistent(&broker, "forgetful");
    options.set_manual_acks(true);
    let (mut sub, _) = v3::connect_with(options).await;
    sub.subscribe("redo", qos).await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher.publish_acked("redo", qos, false, "again").await;
    let first = sub.next_publish().await;
    assert!(!first.dup);
    sub.kill().await;
    broker.wait_offline("forgetful").await;

    let (mut sub, connack) = v3::connect_with(v3::persistent(&broker, "forgetful")).await;
    assert!(connack.session_present);
    let again = sub.next_publish().await;
    assert!(again.dup, "redelivery without DUP: {again:?}");
    assert_eq!(again.pkid, first.pkid);
    assert_eq!(v3::summary(&again), v3::summary(&first));
    // Acknowledged now (rumqttc acks automatically): nothing is left to resend.
    wait_queue_empty(&broker, "forgetful").await;
}

#[tokio::test]
async fn v3_unacknowledged_qos1_message_is_redelivered_with_dup_on_reconnect() {
    v3_redelivery_with_dup(Q3::AtLeastOnce).await;
}

#[tokio::test]
async fn v3_qos2_message_without_pubrec_is_redelivered_with_dup_on_reconnect() {
    v3_redelivery_with_dup(Q3::ExactlyOnce).await;
}

async fn v5_redelivery_with_dup(qos: Q5) {
    let broker = TestBroker::start_quiet().await;
    let mut options = v5::persistent(&broker, "forgetful5", 60);
    options.set_manual_acks(true);
    let (mut sub, _) = v5::connect_with(options).await;
    sub.subscribe("redo", qos).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher.publish_acked("redo", qos, false, "again").await;
    let first = sub.next_publish().await;
    assert!(!first.dup);
    sub.kill().await;
    broker.wait_offline("forgetful5").await;

    let (mut sub, connack) = v5::connect_with(v5::persistent(&broker, "forgetful5", 60)).await;
    assert!(connack.session_present);
    let again = sub.next_publish().await;
    assert!(again.dup, "redelivery without DUP: {again:?}");
    assert_eq!(again.pkid, first.pkid);
    assert_eq!(v5::summary(&again), v5::summary(&first));
    wait_queue_empty(&broker, "forgetful5").await;
}

#[tokio::test]
async fn v5_unacknowledged_qos1_message_is_redelivered_with_dup_on_reconnect() {
    v5_redelivery_with_dup(Q5::AtLeastOnce).await;
}

#[tokio::test]
async fn v5_qos2_message_without_pubrec_is_redelivered_with_dup_on_reconnect() {
    v5_redelivery_with_dup(Q5::ExactlyOnce).await;
}

/// A raw persistent subscriber receives a QoS 2 message, sends PUBREC, gets PUBREL and
/// drops the connection before PUBCOMP. On reconnecting the broker must resend PUBREL, not
/// the message ([MQTT-4.3.3], [MQTT-4.4.0-1]).
async fn pubrel_is_resent_after_reconnect(protocol: Protocol) {
    let broker = TestBroker::start_quiet().await;
    let persistent = || {
        let mut connect = raw::connect(protocol, "halfway");
        connect.clean_start = false;
        connect.properties.session_expiry_interval = protocol.is_v5().then_some(60);
        connect
    };
    let (mut sub, _) = RawClient::connect(broker.addr, persistent()).await;
    sub.subscribe(1, "half", QoS::ExactlyOnce).await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish_acked("half", Q3::ExactlyOnce, false, "x")
        .await;
    let publish = sub.expect_publish().await;
    let packet_id = publish.packet_id().expect("QoS 2 has a packet id");
    sub.send(Packet::PubRec(raw::reply(packet_id.get()))).await;
    match sub.expect_packet().await {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, packet_id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    drop(sub);
    broker.wait_offline("halfway").await;

    let (mut sub, connack) = RawClient::connect(broker.addr, persistent()).await;
    assert!(connack.session_present);
    match sub.expect_packet().await {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, packet_id),
        other => panic!("expected the PUBREL again, got {other:?}"),
    }
    sub.send(Packet::PubComp(raw::reply(packet_id.get()))).await;
    // Nothing else was pending: the next answer is the PINGRESP.
    sub.ping().await;
    wait_queue_empty(&broker, "halfway").await;
}

#[tokio::test]
async fn v3_pubrel_is_resent_on_reconnect_for_a_qos2_message_already_received() {
    pubrel_is_resent_after_reconnect(Protocol::V3_1_1).await;
}

#[tokio::test]
async fn v5_pubrel_is_resent_on_reconnect_for_a_qos2_message_already_received() {
    pubrel_is_resent_after_reconnect(Protocol::V5).await;
}

// --- Publisher resends ----------------------------------------------------------------------

/// A raw publisher sends a QoS 2 PUBLISH, then the same PUBLISH again with DUP before
/// releasing it; the subscriber must get one copy. After PUBCOMP the packet id is free and a
/// new message with it is delivered.
async fn qos2_resend_is_delivered_once(protocol: Protocol) {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v3::connect(&broker, "sub").await;
    sub.subscribe("once/#", Q3::ExactlyOnce).await;
    let mut publisher = RawClient::connected(broker.addr, protocol, "resender").await;

    let mut publish = raw::publish("once/t", QoS::ExactlyOnce, 7, b"first");
    for dup in [false, true] {
        publish.dup = dup;
        publisher.send(Packet::Publish(publish.clone())).await;
        match publisher.expect_packet().await {
            Packet::PubRec(rec) => {
                assert_eq!(rec.packet_id, raw::pid(7));
                assert_eq!(rec.reason_code, ReasonCode::Success);
            }
            other => panic!("expected PUBREC, got {other:?}"),
        }
    }
    publisher.send(Packet::PubRel(raw::reply(7))).await;
    match publisher.expect_packet().await {
        Packet::PubComp(comp) => {
            assert_eq!(comp.packet_id, raw::pid(7));
            assert_eq!(comp.reason_code, ReasonCode::Success);
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    // Packet id 7 is free again: a new message with it is a new message.
    publisher
        .send(Packet::Publish(raw::publish(
            "once/t",
            QoS::ExactlyOnce,
            7,
            b"second",
        )))
        .await;
    assert!(matches!(publisher.expect_packet().await, Packet::PubRec(_)));
    publisher.send(Packet::PubRel(raw::reply(7))).await;
    assert!(matches!(
        publisher.expect_packet().await,
        Packet::PubComp(_)
    ));
    publisher
        .send(Packet::Publish(raw::publish(
            "once/barrier",
            QoS::AtMostOnce,
            0,
            b"",
        )))
        .await;

    let got = sub.publishes_until("once/barrier").await;
    assert_eq!(
        v3::topics_payloads(&got),
        vec![
            ("once/t".to_string(), b"first".to_vec()),
            ("once/t".to_string(), b"second".to_vec()),
        ]
    );
}

#[tokio::test]
async fn v3_qos2_publish_resent_with_dup_before_pubrel_is_delivered_once() {
    qos2_resend_is_delivered_once(Protocol::V3_1_1).await;
}

#[tokio::test]
async fn v5_qos2_publish_resent_with_dup_before_pubrel_is_delivered_once() {
    qos2_resend_is_delivered_once(Protocol::V5).await;
}

// --- Order and DUP across reconnects ---------------------------------------------------------

#[tokio::test]
async fn v3_resent_messages_keep_their_order_and_only_they_carry_dup() {
    let broker = TestBroker::start_quiet().await;
    let mut options = v3::persistent(&broker, "orderly");
    options.set_manual_acks(true);
    let (mut sub, _) = v3::connect_with(options).await;
    sub.subscribe("ord", Q3::AtLeastOnce).await;
    let mut publisher = v3::connect(&broker, "pub").await;
    for payload in ["m1", "m2", "m3"] {
        publisher
            .publish_acked("ord", Q3::AtLeastOnce, false, payload)
            .await;
    }
    let sent = sub.publishes(3).await;
    sub.kill().await;
    broker.wait_offline("orderly").await;
    // Published while offline: never sent before, so no DUP when it goes out.
    publisher
        .publish_acked("ord", Q3::AtLeastOnce, false, "m4")
        .await;

    let (mut sub, _) = v3::connect_with(v3::persistent(&broker, "orderly")).await;
    let got = sub.publishes(4).await;
    let seen: Vec<(Vec<u8>, bool)> = got.iter().map(|p| (p.payload.to_vec(), p.dup)).collect();
    assert_eq!(
        seen,
        vec![
            (b"m1".to_vec(), true),
            (b"m2".to_vec(), true),
            (b"m3".to_vec(), true),
            (b"m4".to_vec(), false),
        ]
    );
    let first_ids: Vec<u16> = sent.iter().map(|p| p.pkid).collect();
    let resent_ids: Vec<u16> = got[..3].iter().map(|p| p.pkid).collect();
    assert_eq!(resent_ids, first_ids);
    wait_queue_empty(&broker, "orderly").await;
}

#[tokio::test]
async fn v5_takeover_resends_unacknowledged_messages_with_dup_to_the_new_connection() {
    let broker = TestBroker::start_quiet().await;
    let mut options = v5::persistent(&broker, "moving", 60);
    options.set_manual_acks(true);
    let (mut old, _) = v5::connect_with(options).await;
    old.subscribe("mv", Q5::ExactlyOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("mv", Q5::AtLeastOnce, false, "one")
        .await;
    publisher
        .publish_acked("mv", Q5::ExactlyOnce, false, "two")
        .await;
    let sent = old.publishes(2).await;
    assert!(sent.iter().all(|p| !p.dup));

    // The old connection is still open: this is a takeover, not a reconnect.
    let (mut new, connack) = v5::connect_with(v5::persistent(&broker, "moving", 60)).await;
    assert!(connack.session_present);
    let got = new.publishes(2).await;
    for (again, first) in got.iter().zip(&sent) {
        assert!(again.dup, "{again:?}");
        assert_eq!(again.pkid, first.pkid);
        assert_eq!(v5::summary(again), v5::summary(first));
    }
    wait_queue_empty(&broker, "moving").await;
}

/// A raw publisher with a persistent session sends a QoS 2 PUBLISH, gets PUBREC and loses
/// its connection. The broker keeps the packet id as received ([MQTT-4.3.3-10] holds across
/// connections as part of the session): the PUBLISH resent with DUP after reconnecting is not
/// routed again, and the PUBREL is completed normally.
async fn qos2_receive_state_survives_a_reconnect(protocol: Protocol) {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v3::connect(&broker, "sub").await;
    sub.subscribe_many(&[
        ("kept/t", Q3::ExactlyOnce),
        ("kept/barrier", Q3::AtMostOnce),
    ])
    .await;
    let persistent = || {
        let mut connect = raw::connect(protocol, "steady");
        connect.clean_start = false;
        connect.properties.session_expiry_interval = protocol.is_v5().then_some(60);
        connect
    };
    let mut publish = raw::publish("kept/t", QoS::ExactlyOnce, 5, b"exactly once");
    let (mut publisher, _) = RawClient::connect(broker.addr, persistent()).await;
    publisher.send(Packet::Publish(publish.clone())).await;
    assert!(matches!(publisher.expect_packet().await, Packet::PubRec(_)));
    drop(publisher);
    broker.wait_offline("steady").await;

    let (mut publisher, connack) = RawClient::connect(broker.addr, persistent()).await;
    assert!(connack.session_present);
    publish.dup = true;
    publisher.send(Packet::Publish(publish)).await;
    match publisher.expect_packet().await {
        Packet::PubRec(rec) => assert_eq!(rec.reason_code, ReasonCode::Success),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    publisher.send(Packet::PubRel(raw::reply(5))).await;
    match publisher.expect_packet().await {
        Packet::PubComp(comp) => assert_eq!(comp.reason_code, ReasonCode::Success),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    publisher
        .send(Packet::Publish(raw::publish(
            "kept/barrier",
            QoS::AtMostOnce,
            0,
            b"",
        )))
        .await;
    let got = sub.publishes_until("kept/barrier").await;
    assert_eq!(
        v3::topics_payloads(&got),
        vec![("kept/t".to_string(), b"exactly once".to_vec())]
    );
}

#[tokio::test]
async fn v3_qos2_receive_state_survives_a_reconnect() {
    qos2_receive_state_survives_a_reconnect(Protocol::V3_1_1).await;
}

#[tokio::test]
async fn v5_qos2_receive_state_survives_a_reconnect() {
    qos2_receive_state_survives_a_reconnect(Protocol::V5).await;
}

#[tokio::test]
async fn v5_subscriber_refusing_a_qos2_message_with_a_pubrec_error_ends_the_flow() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = RawClient::connected(broker.addr, Protocol::V5, "picky").await;
    sub.subscribe(1, "picky/t", QoS::ExactlyOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("picky/t", Q5::ExactlyOnce, false, "no thanks")
        .await;
    let publish = sub.expect_publish().await;
    let packet_id = publish.packet_id().expect("QoS 2 has a packet id");
    let mut refusal = raw::reply(packet_id.get());
    refusal.reason_code = ReasonCode::ImplementationSpecificError;
    sub.send(Packet::PubRec(refusal)).await;
    // [MQTT-4.3.3-4]: no PUBREL follows a PUBREC with an error; the next answer is PINGRESP.
    sub.ping().await;
    wait_queue_empty(&broker, "picky").await;
}
