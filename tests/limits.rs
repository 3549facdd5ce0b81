//! Every per-client and per-node limit of `[mqtt]`, hit on purpose: the client over the limit
//! gets the limit's reason code (or is throttled, or closed), a bystander is unaffected, and
//! the metric counts it. Plus a slow consumer that cannot grow the broker's memory beyond its
//! configured queue bound (a real process, its RSS read from /proc).

mod common;

use common::process::KeelProcess;
use common::raw::{self, RawClient};
use common::{http, TestBroker};
use keel::codec::{Packet, Protocol, QoS, ReasonCode, Subscribe, SubscribeProperties};
use keel::codec::{SubscriptionOptions, TopicFilter};
use keel::config::Config;

/// A node with the admin API on, `change` applied to its configuration.
async fn broker(change: impl FnOnce(&mut Config)) -> TestBroker {
    let mut config = Config::default();
    config.durability.store = keel::config::StoreKind::Memory;
    config.mqtt.sys_interval_secs = 0;
    change(&mut config);
    config.validate().unwrap();
    TestBroker::start(keel::server::settings(&config).unwrap()).await
}

/// The value of `keel_limit_hits_total{limit="<limit>"}`.
async fn limit_hits(broker: &TestBroker, limit: &str) -> u64 {
    let text = http::get(broker.admin.expect("admin API"), "/metrics")
        .await
        .body;
    let prefix = format!("keel_limit_hits_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
}

/// A bystander publishes and receives on its own topic: the node still serves others.
async fn bystander_is_served(broker: &TestBroker) {
    let mut other = RawClient::connected(broker.addr, Protocol::V5, "bystander").await;
    other.subscribe(90, "by/stander", QoS::AtLeastOnce).await;
    other
        .send(Packet::Publish(raw::publish(
            "by/stander",
            QoS::AtLeastOnce,
            91,
            b"ok",
        )))
        .await;
    loop {
        match other.expect_packet().await {
            Packet::Publish(p) => {
                assert_eq!(&p.payload[..], b"ok");
                return;
            }
            Packet::PubAck(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn subscriptions_beyond_subscriptions_max_get_quota_exceeded() {
    let broker = broker(|c| c.mqtt.subscriptions_max = 2).await;
    let mut client = RawClient::connected(broker.addr, Protocol::V5, "many").await;
    let filters = ["a", "b", "c"]
        .iter()
        .map(|f| {
            (
                TopicFilter::new(f).unwrap(),
                SubscriptionOptions::new(QoS::AtMostOnce),
            )
        })
        .collect();
    client
        .send(Packet::Subscribe(Subscribe {
            packet_id: raw::pid(1),
            properties: SubscribeProperties::default(),
            filters,
        }))
        .await;
    match client.expect_packet().await {
        Packet::SubAck(ack) => assert_eq!(
            ack.reason_codes,
            [
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::QuotaExceeded
            ]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    // MQTT 3.1.1: the refused filter gets 0x80.
    let mut v3 = RawClient::connected(broker.addr, Protocol::V3_1_1, "many3").await;
    v3.subscribe(1, "x", QoS::AtMostOnce).await;
    v3.subscribe(2, "y", QoS::AtMostOnce).await;
    let codes = v3.subscribe(3, "z", QoS::AtMostOnce).await;
    assert!(codes[0].is_error(), "{codes:?}");
    assert_eq!(limit_hits(&broker, "subscriptions_max").await, 2);
    bystander_is_served(&broker).await;
}

#[tokio::test]
async fn topics_beyond_topic_levels_max_are_refused() {
    let broker = broker(|c| c.mqtt.topic_levels_max = 4).await;
    let mut client = RawClient::connected(broker.addr, Protocol::V5, "deep").await;
    let codes = client.subscribe(1, "a/b/c/d/e", QoS::AtLeastOnce).await;
    assert_eq!(codes, [ReasonCode::TopicFilterInvalid]);
    client
        .send(Packet::Publish(raw::publish(
            "a/b/c/d/e",
            QoS::AtLeastOnce,
            2,
            b"x",
        )))
        .await;
    match client.expect_packet().await {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::TopicNameInvalid),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    assert_eq!(limit_hits(&broker, "topic_levels_max").await, 2);
    bystander_is_served(&broker).await;
}

#[tokio::test]
async fn a_client_over_publish_rate_max_is_disconnected_with_0x96() {
    let broker = broker(|c| c.mqtt.publish_rate_max = 20).await;
    let mut flooder = RawClient::connected(broker.addr, Protocol::V5, "flood").await;
    for n in 0..200u16 {
        let publish = raw::publish("flood", QoS::AtMostOnce, n, b"x");
        flooder.send(Packet::Publish(publish)).await;
    }
    flooder
        .expect_disconnect(ReasonCode::MessageRateTooHigh)
        .await;
    assert_eq!(limit_hits(&broker, "publish_rate_max").await, 1);
    bystander_is_served(&broker).await;
}

#[tokio::test]
async fn retained_messages_beyond_retained_max_are_refused() {
    let broker = broker(|c| c.mqtt.retained_max = 2).await;
    let mut client = RawClient::connected(broker.addr, Protocol::V5, "keeper").await;
    let mut reasons = Vec::new();
    for (n, topic) in ["r/1", "r/2", "r/3", "r/1"].iter().enumerate() {
        let mut publish = raw::publish(topic, QoS::AtLeastOnce, n as u16 + 1, b"kept");
        publish.retain = true;
        client.send(Packet::Publish(publish)).await;
        match client.expect_packet().await {
            Packet::PubAck(ack) => reasons.push(ack.reason_code),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    let quota = ReasonCode::QuotaExceeded;
    let stored = ReasonCode::NoMatchingSubscribers;
    assert_eq!(
        reasons,
        [stored, stored, quota, stored],
        "a topic kept may be replaced"
    );
    assert_eq!(limit_hits(&broker, "retained_max").await, 1);
    bystander_is_served(&broker).await;
}

#[tokio::test]
async fn connections_beyond_connections_max_are_closed_and_the_others_stay() {
    let broker = broker(|c| c.mqtt.connections_max = 2).await;
    let mut first = RawClient::connected(broker.addr, Protocol::V5, "one").await;
    let _second = RawClient::connected(broker.addr, Protocol::V5, "two").await;
    let mut third = RawClient::open(broker.addr, Protocol::V5).await;
    third
        .send(Packet::Connect(Box::new(raw::connect(
            Protocol::V5,
            "three",
        ))))
        .await;
    third.expect_closed().await;
    first.ping().await;
    assert_eq!(limit_hits(&broker, "connections_max").await, 1);
}

#[tokio::test]
async fn accepts_beyond_connection_rate_max_wait_and_then_succeed() {
    let broker = broker(|c| c.mqtt.connection_rate_max = 5).await;
    let mut clients = Vec::new();
    for i in 0..12 {
        clients.push(RawClient::connected(broker.addr, Protocol::V5, &format!("c{i}")).await);
    }
    assert!(
        limit_hits(&broker, "connection_rate_max").await >= 1,
        "12 connections in a burst of 5 per second were not paced"
    );
    for client in &mut clients {
        client.ping().await;
    }
}

#[tokio::test]
async fn a_packet_trickling_in_slower_than_packet_timeout_closes_its_connection() {
    let broker = broker(|c| c.mqtt.packet_timeout_secs = 1).await;
    let mut loris = RawClient::connected(broker.addr, Protocol::V5, "loris").await;
    // Half a PUBLISH: the fixed header promises 20 bytes, 3 come.
    loris.send_bytes(&[0x30, 20, 0x00, 0x01, b't']).await;
    loris.expect_closed().await;
    assert_eq!(limit_hits(&broker, "packet_timeout_secs").await, 1);
    bystander_is_served(&broker).await;
}

/// Reads the publisher's acknowledgements up to the answer of a PINGREQ sent now: the node
/// has handled every publish sent before it.
async fn acks_read(publisher: &mut RawClient) {
    publisher.send(Packet::PingReq).await;
    loop {
        match publisher.expect_packet().await {
            Packet::PingResp => return,
            Packet::PubAck(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn a_slow_consumer_cannot_grow_the_broker_beyond_its_queue_bound() {
    // The node's configuration (tests/common/process.rs) bounds a session's queue at 10,000
    // messages; QoS 0 deliveries waiting for one connection are bounded at 1,000.
    const MESSAGES: u32 = 60_000;
    const PAYLOAD: usize = 1024;
    let node = KeelProcess::start().await;
    let pid = node.pid().expect("running");
    // Two subscribers that never read: one at QoS 1, one at QoS 0.
    let mut stuck = Vec::new();
    for (id, qos) in [("stuck1", QoS::AtLeastOnce), ("stuck0", QoS::AtMostOnce)] {
        let mut client = RawClient::connected(node.addr, Protocol::V3_1_1, id).await;
        client.subscribe(1, "flood", qos).await;
        stuck.push(client);
    }
    let before = rss_kib(pid);
    let mut publisher = RawClient::connected(node.addr, Protocol::V3_1_1, "publisher").await;
    let payload = vec![b'x'; PAYLOAD];
    for n in 0..MESSAGES {
        let id = (n % 60_000) as u16 + 1;
        publisher
            .send(Packet::Publish(raw::publish(
                "flood",
                QoS::AtLeastOnce,
                id,
                &payload,
            )))
            .await;
        if n % 100 == 99 {
            acks_read(&mut publisher).await;
        }
    }
    acks_read(&mut publisher).await;
    let after = rss_kib(pid);
    let sent_mib = u64::from(MESSAGES) * PAYLOAD as u64 / 1024 / 1024;
    // The bound: 10,000 + 1,000 queued messages of ~1 KiB, plus allocator slack.
    let bound_kib = 11_000 * 2 + 32 * 1024;
    assert!(
        after.saturating_sub(before) < bound_kib,
        "RSS grew by {} KiB ({before} -> {after}) for {sent_mib} MiB sent to stuck consumers",
        after.saturating_sub(before)
    );
    drop(stuck);
}
