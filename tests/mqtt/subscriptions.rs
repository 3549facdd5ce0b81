//! Subscriptions over real sockets: `+` and `#`, the `$`-topic rule, `$SYS`, overlapping
//! subscriptions (one copy at the highest QoS; MQTT 5: with every matching subscription
//! identifier), SUBACK codes and the maximum QoS, unsubscribe, and shared subscriptions
//! `$share/{group}/{filter}` (spread across members; a leaving member's unacknowledged
//! messages go to another member).

use crate::common;

use std::time::Duration;

use common::raw::{self, RawClient};
use common::{v3, v5, TestBroker};
use keel::codec::{
    Packet, Protocol, QoS, ReasonCode, TopicFilter, Unsubscribe, UnsubscribeProperties,
};
use rumqttc::v5::mqttbytes::v5::{Filter, SubscribeReasonCode as Sub5};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::{QoS as Q3, SubscribeReasonCode as Sub3};

const BARRIER: &str = "barrier";

/// Publishes each topic (payload = topic) at QoS 0, then the barrier; returns the topics
/// `sub` received before the barrier.
async fn v3_matches(sub: &mut v3::Client, publisher: &v3::Client, topics: &[&str]) -> Vec<String> {
    for topic in topics {
        publisher
            .publish(topic, Q3::AtMostOnce, false, *topic)
            .await;
    }
    publisher.publish(BARRIER, Q3::AtMostOnce, false, "").await;
    sub.publishes_until(BARRIER)
        .await
        .into_iter()
        .map(|p| p.topic)
        .collect()
}

async fn v5_matches(sub: &mut v5::Client, publisher: &v5::Client, topics: &[&str]) -> Vec<String> {
    for topic in topics {
        publisher
            .publish(topic, Q5::AtMostOnce, false, topic.to_string())
            .await;
    }
    publisher.publish(BARRIER, Q5::AtMostOnce, false, "").await;
    sub.publishes_until(BARRIER)
        .await
        .iter()
        .map(|p| v5::topic(p).to_string())
        .collect()
}

async fn v3_subscriber(broker: &TestBroker, id: &str, filters: &[&str]) -> v3::Client {
    let mut sub = v3::connect(broker, id).await;
    let mut all: Vec<(&str, Q3)> = filters.iter().map(|f| (*f, Q3::AtMostOnce)).collect();
    all.push((BARRIER, Q3::AtMostOnce));
    sub.subscribe_many(&all).await;
    sub
}

async fn v5_subscriber(broker: &TestBroker, id: &str, filters: &[&str]) -> v5::Client {
    let mut sub = v5::connect(broker, id).await;
    let mut all: Vec<Filter> = filters
        .iter()
        .map(|f| Filter::new(*f, Q5::AtMostOnce))
        .collect();
    all.push(Filter::new(BARRIER, Q5::AtMostOnce));
    sub.subscribe_filters(all, None).await;
    sub
}

// --- Wildcards -------------------------------------------------------------------------------

const PLUS_TOPICS: [&str; 6] = ["a/b/c", "a/b/d", "a/c", "a/b/x/c", "a//c", "x/b/c"];

#[tokio::test]
async fn v3_single_level_wildcard_matches_exactly_one_level() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v3_subscriber(&broker, "sub", &["a/+/c"]).await;
    let publisher = v3::connect(&broker, "pub").await;
    assert_eq!(
        v3_matches(&mut sub, &publisher, &PLUS_TOPICS).await,
        ["a/b/c", "a//c"]
    );
}

#[tokio::test]
async fn v5_single_level_wildcard_matches_exactly_one_level() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v5_subscriber(&broker, "sub", &["a/+/c"]).await;
    let publisher = v5::connect(&broker, "pub").await;
    assert_eq!(
        v5_matches(&mut sub, &publisher, &PLUS_TOPICS).await,
        ["a/b/c", "a//c"]
    );
}

const HASH_TOPICS: [&str; 5] = [
    "sport",
    "sport/tennis",
    "sport/tennis/player1",
    "sports",
    "x/sport",
];

#[tokio::test]
async fn v3_multi_level_wildcard_matches_the_parent_and_every_descendant() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v3_subscriber(&broker, "sub", &["sport/#"]).await;
    let publisher = v3::connect(&broker, "pub").await;
    assert_eq!(
        v3_matches(&mut sub, &publisher, &HASH_TOPICS).await,
        ["sport", "sport/tennis", "sport/tennis/player1"]
    );
}

#[tokio::test]
async fn v5_multi_level_wildcard_matches_the_parent_and_every_descendant() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v5_subscriber(&broker, "sub", &["sport/#"]).await;
    let publisher = v5::connect(&broker, "pub").await;
    assert_eq!(
        v5_matches(&mut sub, &publisher, &HASH_TOPICS).await,
        ["sport", "sport/tennis", "sport/tennis/player1"]
    );
}

#[tokio::test]
async fn v3_wildcards_at_the_first_level_do_not_match_dollar_topics() {
    let broker = TestBroker::start_quiet().await;
    let mut wild = v3_subscriber(&broker, "wild", &["#", "+/info"]).await;
    let mut dollar = v3_subscriber(&broker, "dollar", &["$app/#"]).await;
    let publisher = v3::connect(&broker, "pub").await;
    let topics = ["$app/info", "app/info"];
    // [MQTT-4.7.2-1]; "app/info" matches both filters and still arrives once.
    assert_eq!(
        v3_matches(&mut wild, &publisher, &topics).await,
        ["app/info"]
    );
    assert_eq!(dollar.publishes_until(BARRIER).await.len(), 1);
}

#[tokio::test]
async fn v5_wildcards_at_the_first_level_do_not_match_dollar_topics() {
    let broker = TestBroker::start_quiet().await;
    let mut wild = v5_subscriber(&broker, "wild", &["#", "+/info"]).await;
    let mut dollar = v5_subscriber(&broker, "dollar", &["$app/+"]).await;
    let publisher = v5::connect(&broker, "pub").await;
    let topics = ["$app/info", "app/info"];
    assert_eq!(
        v5_matches(&mut wild, &publisher, &topics).await,
        ["app/info"]
    );
    let got = dollar.publishes_until(BARRIER).await;
    assert_eq!(v5::topics_payloads(&got)[0].0, "$app/info");
}

#[tokio::test]
async fn v3_broker_publishes_its_version_under_sys() {
    let mut settings = TestBroker::settings();
    settings.sys_interval = Duration::from_millis(100);
    let broker = TestBroker::start(settings).await;
    let mut sub = v3::connect(&broker, "sys").await;
    sub.subscribe("$SYS/broker/version", Q3::AtMostOnce).await;
    let version = sub.next_publish().await;
    assert!(
        version.payload.starts_with(b"keel "),
        "{:?}",
        version.payload
    );
}

#[tokio::test]
async fn v5_wildcard_subscription_gets_no_retained_sys_topics() {
    let mut settings = TestBroker::settings();
    settings.sys_interval = Duration::from_millis(100);
    let broker = TestBroker::start(settings).await;
    broker
        .wait_until("retained $SYS topics", |b| {
            b.local_state()
                .retained()
                .any(|m| m.topic.starts_with("$SYS/"))
        })
        .await;
    let mut sub = v5_subscriber(&broker, "wild", &["#"]).await;
    let publisher = v5::connect(&broker, "pub").await;
    // Only the barrier itself arrives: "#" matches it, and no `$SYS` topic.
    assert!(v5_matches(&mut sub, &publisher, &[]).await.is_empty());
}

// --- Overlapping subscriptions ----------------------------------------------------------------

#[tokio::test]
async fn v3_overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v3::connect(&broker, "sub").await;
    sub.subscribe_many(&[
        ("o/+", Q3::AtMostOnce),
        ("o/#", Q3::ExactlyOnce),
        ("o/t", Q3::AtLeastOnce),
        (BARRIER, Q3::AtMostOnce),
    ])
    .await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish_acked("o/t", Q3::ExactlyOnce, false, "x")
        .await;
    publisher.publish(BARRIER, Q3::AtMostOnce, false, "").await;
    let got = sub.publishes_until(BARRIER).await;
    assert_eq!(
        got.iter().map(v3::summary).collect::<Vec<_>>(),
        vec![("o/t".into(), b"x".to_vec(), Q3::ExactlyOnce, false)]
    );
}

#[tokio::test]
async fn v5_overlapping_subscriptions_deliver_one_copy_with_every_subscription_identifier() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v5::connect(&broker, "sub").await;
    sub.subscribe_filters(vec![Filter::new("o/+", Q5::AtMostOnce)], Some(1))
        .await;
    sub.subscribe_filters(vec![Filter::new("o/#", Q5::AtLeastOnce)], Some(2))
        .await;
    sub.subscribe_filters(
        vec![
            Filter::new("o/t", Q5::AtMostOnce),
            Filter::new(BARRIER, Q5::AtMostOnce),
        ],
        None,
    )
    .await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("o/t", Q5::ExactlyOnce, false, "x")
        .await;
    publisher.publish(BARRIER, Q5::AtMostOnce, false, "").await;
    let got = sub.publishes_until(BARRIER).await;
    assert_eq!(
        got.iter().map(v5::summary).collect::<Vec<_>>(),
        vec![("o/t".into(), b"x".to_vec(), Q5::AtLeastOnce, false)]
    );
    let mut ids = v5::properties(&got[0]).subscription_identifiers;
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2]);
}

// --- SUBACK, maximum QoS and UNSUBSCRIBE --------------------------------------------------------

#[tokio::test]
async fn v3_suback_has_one_code_per_filter_capped_at_the_maximum_qos() {
    let mut settings = TestBroker::settings();
    settings.session.maximum_qos = QoS::AtLeastOnce;
    let broker = TestBroker::start(settings).await;
    let mut sub = v3::connect(&broker, "sub").await;
    let codes = sub
        .subscribe_many(&[
            ("a", Q3::AtMostOnce),
            ("b", Q3::AtLeastOnce),
            ("c", Q3::ExactlyOnce),
        ])
        .await;
    assert_eq!(
        codes,
        vec![
            Sub3::Success(Q3::AtMostOnce),
            Sub3::Success(Q3::AtLeastOnce),
            Sub3::Success(Q3::AtLeastOnce)
        ]
    );
}

#[tokio::test]
async fn v5_suback_has_one_code_per_filter_capped_at_the_maximum_qos() {
    let mut settings = TestBroker::settings();
    settings.session.maximum_qos = QoS::AtMostOnce;
    let broker = TestBroker::start(settings).await;
    let mut sub = v5::connect(&broker, "sub").await;
    let codes = sub
        .subscribe_filters(
            vec![
                Filter::new("a", Q5::AtLeastOnce),
                Filter::new("b", Q5::ExactlyOnce),
            ],
            None,
        )
        .await;
    assert_eq!(codes, vec![Sub5::Success(Q5::AtMostOnce); 2]);
}

#[tokio::test]
async fn v3_subscribing_again_to_a_filter_replaces_its_qos() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v3::connect(&broker, "sub").await;
    sub.subscribe("re/t", Q3::AtMostOnce).await;
    // [MQTT-3.8.4-3]: the new subscription replaces the old one.
    assert_eq!(
        sub.subscribe("re/t", Q3::ExactlyOnce).await,
        Sub3::Success(Q3::ExactlyOnce)
    );
    sub.subscribe(BARRIER, Q3::AtMostOnce).await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish_acked("re/t", Q3::ExactlyOnce, false, "x")
        .await;
    publisher.publish(BARRIER, Q3::AtMostOnce, false, "").await;
    let got = sub.publishes_until(BARRIER).await;
    assert_eq!(
        got.iter().map(v3::summary).collect::<Vec<_>>(),
        vec![("re/t".into(), b"x".to_vec(), Q3::ExactlyOnce, false)]
    );
    assert_eq!(broker.inspect(|b| b.subscription_count()), 2);
}

#[tokio::test]
async fn v3_unsubscribe_stops_delivery_for_that_filter_only() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v3_subscriber(&broker, "sub", &["u/gone", "u/kept"]).await;
    sub.unsubscribe("u/gone").await;
    let publisher = v3::connect(&broker, "pub").await;
    assert_eq!(
        v3_matches(&mut sub, &publisher, &["u/gone", "u/kept"]).await,
        ["u/kept"]
    );
}

#[tokio::test]
async fn v5_unsubscribe_stops_delivery_for_that_filter_only() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v5_subscriber(&broker, "sub", &["u/gone", "u/kept"]).await;
    sub.unsubscribe("u/gone").await;
    let publisher = v5::connect(&broker, "pub").await;
    assert_eq!(
        v5_matches(&mut sub, &publisher, &["u/gone", "u/kept"]).await,
        ["u/kept"]
    );
}

#[tokio::test]
async fn v5_unsuback_reports_0x11_for_a_filter_without_subscription() {
    // rumqttc treats any UNSUBACK code but Success as a failed connection, so this is raw.
    let broker = TestBroker::start_quiet().await;
    let mut client = RawClient::connected(broker.addr, Protocol::V5, "unsub").await;
    client.subscribe(1, "u/here", QoS::AtMostOnce).await;
    client
        .send(Packet::Unsubscribe(Unsubscribe {
            packet_id: raw::pid(2),
            properties: UnsubscribeProperties::default(),
            filters: vec![
                TopicFilter::new("u/here").unwrap(),
                TopicFilter::new("u/never").unwrap(),
            ],
        }))
        .await;
    match client.expect_packet().await {
        Packet::UnsubAck(unsuback) => {
            assert_eq!(unsuback.packet_id, raw::pid(2));
            assert_eq!(
                unsuback.reason_codes,
                vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
            );
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
}

// --- Shared subscriptions ---------------------------------------------------------------------

#[tokio::test]
async fn v3_shared_subscription_spreads_messages_across_its_members() {
    let broker = TestBroker::start_quiet().await;
    let mut members = Vec::new();
    for id in ["m1", "m2"] {
        let mut member = v3::connect(&broker, id).await;
        member
            .subscribe_many(&[("$share/g/s/t", Q3::AtLeastOnce), (BARRIER, Q3::AtMostOnce)])
            .await;
        members.push(member);
    }
    let mut plain = v3_subscriber(&broker, "plain", &["s/t"]).await;
    let mut publisher = v3::connect(&broker, "pub").await;
    for i in 0..6u8 {
        publisher
            .publish_acked("s/t", Q3::AtLeastOnce, false, vec![i])
            .await;
    }
    publisher.publish(BARRIER, Q3::AtMostOnce, false, "").await;

    let mut all = Vec::new();
    for member in &mut members {
        let got: Vec<u8> = member
            .publishes_until(BARRIER)
            .await
            .iter()
            .map(|p| p.payload[0])
            .collect();
        // Round robin: each member gets every other message.
        assert_eq!(got.len(), 3, "{got:?}");
        all.extend(got);
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (0..6).collect::<Vec<u8>>(),
        "each message to exactly one member"
    );
    // A plain subscription to the same filter gets every message.
    assert_eq!(plain.publishes_until(BARRIER).await.len(), 6);
}

#[tokio::test]
async fn v5_shared_subscription_spreads_messages_across_its_members() {
    let broker = TestBroker::start_quiet().await;
    let mut members = Vec::new();
    for id in ["m1", "m2", "m3"] {
        let mut member = v5::connect(&broker, id).await;
        member
            .subscribe_filters(
                vec![
                    Filter::new("$share/g/s/+", Q5::AtLeastOnce),
                    Filter::new(BARRIER, Q5::AtMostOnce),
                ],
                None,
            )
            .await;
        members.push(member);
    }
    let mut publisher = v5::connect(&broker, "pub").await;
    for i in 0..9u8 {
        publisher
            .publish_acked("s/t", Q5::AtLeastOnce, false, vec![i])
            .await;
    }
    publisher.publish(BARRIER, Q5::AtMostOnce, false, "").await;

    let mut all = Vec::new();
    for member in &mut members {
        let got: Vec<u8> = member
            .publishes_until(BARRIER)
            .await
            .iter()
            .map(|p| p.payload[0])
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        all.extend(got);
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (0..9).collect::<Vec<u8>>(),
        "each message to exactly one member"
    );
}

#[tokio::test]
async fn v5_shared_subscription_prefers_connected_members() {
    let broker = TestBroker::start_quiet().await;
    let (mut away, _) = v5::connect_with(v5::persistent(&broker, "away", 60)).await;
    away.subscribe("$share/g/s/t", Q5::AtLeastOnce).await;
    away.disconnect().await;
    let (mut here, _) = v5::connect_with(v5::persistent(&broker, "here", 60)).await;
    here.subscribe("$share/g/s/t", Q5::AtLeastOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    for i in 0..4u8 {
        publisher
            .publish_acked("s/t", Q5::AtLeastOnce, false, vec![i])
            .await;
    }
    let got: Vec<u8> = here
        .publishes(4)
        .await
        .iter()
        .map(|p| p.payload[0])
        .collect();
    assert_eq!(got, [0, 1, 2, 3]);
    assert!(broker.inspect(|b| b.session("away").unwrap().queue.is_empty()));
}

/// A QoS 1 message of a group with a durable member stays in the log for its durable
/// members: a clean-session member's copy would die with the node.
#[tokio::test]
async fn v5_shared_subscription_keeps_qos1_for_its_durable_members() {
    let broker = TestBroker::start_quiet().await;
    let (mut away, _) = v5::connect_with(v5::persistent(&broker, "away", 60)).await;
    away.subscribe("$share/g/s/t", Q5::AtLeastOnce).await;
    away.disconnect().await;
    let mut clean = v5::connect(&broker, "clean").await;
    clean.subscribe("$share/g/s/t", Q5::AtLeastOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("s/t", Q5::AtLeastOnce, false, vec![7])
        .await;
    assert!(broker.inspect(|b| b.session("away").unwrap().queue.len() == 1));
    let (mut away, _) = v5::connect_with(v5::persistent(&broker, "away", 60)).await;
    assert_eq!(away.publishes(1).await[0].payload[0], 7);
    // QoS 0 goes to whichever member is connected first.
    publisher
        .publish("s/t", Q5::AtMostOnce, false, vec![8])
        .await;
    let _ = clean;
}

#[tokio::test]
async fn v3_unacknowledged_message_of_a_member_that_leaves_goes_to_another_member() {
    let broker = TestBroker::start_quiet().await;
    let mut options = v3::options(&broker, "leaver");
    options.set_manual_acks(true);
    let (mut leaver, _) = v3::connect_with(options).await;
    leaver.subscribe("$share/g/job", Q3::AtLeastOnce).await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish_acked("job", Q3::AtLeastOnce, false, "task")
        .await;
    assert_eq!(leaver.next_publish().await.payload.as_ref(), b"task");

    let mut stayer = v3::connect(&broker, "stayer").await;
    stayer.subscribe("$share/g/job", Q3::AtLeastOnce).await;
    leaver.kill().await;
    assert_eq!(
        v3::summary(&stayer.next_publish().await),
        ("job".into(), b"task".to_vec(), Q3::AtLeastOnce, false)
    );
}

#[tokio::test]
async fn v5_unacknowledged_message_of_a_member_that_leaves_goes_to_another_member() {
    let broker = TestBroker::start_quiet().await;
    let mut options = v5::options(&broker, "leaver");
    options.set_manual_acks(true);
    let (mut leaver, _) = v5::connect_with(options).await;
    leaver.subscribe("$share/g/job", Q5::AtLeastOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("job", Q5::AtLeastOnce, false, "task")
        .await;
    assert_eq!(leaver.next_publish().await.payload.as_ref(), b"task");

    let mut stayer = v5::connect(&broker, "stayer").await;
    stayer.subscribe("$share/g/job", Q5::AtLeastOnce).await;
    leaver.kill().await;
    assert_eq!(
        v5::summary(&stayer.next_publish().await),
        ("job".into(), b"task".to_vec(), Q5::AtLeastOnce, false)
    );
}

#[tokio::test]
async fn v5_unacknowledged_message_of_a_member_that_unsubscribes_goes_to_another_member() {
    let broker = TestBroker::start_quiet().await;
    let mut options = v5::options(&broker, "leaver");
    options.set_manual_acks(true);
    let (mut leaver, _) = v5::connect_with(options).await;
    leaver.subscribe("$share/g/job", Q5::AtLeastOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("job", Q5::AtLeastOnce, false, "task")
        .await;
    assert_eq!(leaver.next_publish().await.payload.as_ref(), b"task");

    let mut stayer = v5::connect(&broker, "stayer").await;
    stayer.subscribe("$share/g/job", Q5::AtLeastOnce).await;
    leaver.unsubscribe("$share/g/job").await;
    assert_eq!(stayer.next_publish().await.payload.as_ref(), b"task");
}

#[tokio::test]
async fn v5_shared_subscription_gets_no_retained_messages() {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("s/t", Q5::AtLeastOnce, true, "kept")
        .await;
    let mut member = v5_subscriber(&broker, "member", &["$share/g/s/t"]).await;
    publisher.publish(BARRIER, Q5::AtMostOnce, false, "").await;
    assert!(member.publishes_until(BARRIER).await.is_empty());
}

// --- A publish read after a SUBSCRIBE --------------------------------------------------------

/// A durable session subscribes; once the node has read the SUBSCRIBE (its PINGRESP, sent
/// after it on the same connection, came back) and before the SUBACK, another client
/// publishes. The node read the PUBLISH after the SUBSCRIBE, so the subscriber gets it, at
/// QoS 1 and at QoS 0 (request/response over MQTT: a responder subscribes, a requester
/// publishes at once). Keel once matched such a publish against the replica alone, which
/// had not applied the subscription yet, and the subscriber missed it about half the time.
///
/// On RocksDB, as a node runs by default: its commit takes an fsync, the time a client has
/// to publish in between (with the in-memory store the subscription commits first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_read_after_a_durable_subscribe_reaches_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = keel::storage::RocksStore::open(dir.path()).expect("open RocksDB");
    let broker = TestBroker::start(keel::server::ServerSettings {
        store: std::sync::Arc::new(store),
        ..TestBroker::settings()
    })
    .await;
    let mut requester = RawClient::connected(broker.addr, Protocol::V5, "requester").await;
    for round in 1..=20u16 {
        for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
            let id = format!("responder-{round}-{}", qos as u8);
            let mut connect = raw::connect(Protocol::V5, &id);
            connect.properties.session_expiry_interval = Some(60);
            let (mut responder, _) = RawClient::connect(broker.addr, connect).await;
            let topic = format!("rr/{id}");
            responder
                .send(Packet::Subscribe(raw::subscribe(
                    1,
                    &topic,
                    QoS::AtLeastOnce,
                )))
                .await;
            responder.send(Packet::PingReq).await;
            let mut packets = Vec::new();
            loop {
                let packet = responder.expect_packet().await;
                let read = matches!(packet, Packet::PingResp);
                packets.push(packet);
                if read {
                    break;
                }
            }
            requester
                .send(Packet::Publish(raw::publish(
                    &topic, qos, round, b"request",
                )))
                .await;
            if qos == QoS::AtLeastOnce {
                match requester.expect_packet().await {
                    Packet::PubAck(ack) => assert_eq!(ack.packet_id, raw::pid(round)),
                    other => panic!("expected PUBACK, got {other:?}"),
                }
            }
            while !packets.iter().any(|p| matches!(p, Packet::Publish(_))) {
                packets.push(responder.expect_packet().await);
            }
            let publish = packets.iter().find_map(|p| match p {
                Packet::Publish(publish) => Some(publish),
                _ => None,
            });
            assert_eq!(
                publish.map(|p| (p.topic.as_str(), p.qos(), p.payload.as_ref())),
                Some((topic.as_str(), qos, &b"request"[..])),
                "round {round}: {packets:?}"
            );
        }
    }
}
