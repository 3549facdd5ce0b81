//! Every per-client and per-node limit of `[mqtt]` and the per-listener connection caps of
//! `[listeners]`, hit on purpose: the client over the limit gets the limit's reason code (or
//! is throttled, or closed), a bystander is unaffected, and the metric counts it. Plus slow
//! consumers that cannot grow the broker's memory beyond their configured queue bounds, in
//! messages and in bytes (a real process, its RSS read from /proc).

use crate::common;

use std::net::SocketAddr;

use common::process::KeelProcess;
use common::raw::{self, RawClient};
use common::{http, TestBroker};
use keel::codec::{Packet, Protocol, QoS, ReasonCode, Subscribe, SubscribeProperties};
use keel::codec::{SubscriptionOptions, TopicFilter};
use keel::config::Config;
use keel::server::ListenerSpec;
use keel::transport::TransportAcceptor;

/// A node with the admin API on, `change` applied to its configuration.
async fn broker(change: impl FnOnce(&mut Config)) -> TestBroker {
    let mut config = Config::default();
    config.durability.store = keel::config::StoreKind::Memory;
    config.mqtt.sys_interval_secs = 0;
    change(&mut config);
    config.validate().unwrap();
    TestBroker::start(keel::startup::settings(&config).unwrap()).await
}

/// The value of `keel_limit_hits_total{limit="<limit>"}`.
async fn limit_hits(broker: &TestBroker, limit: &str) -> u64 {
    let series = format!("keel_limit_hits_total{{limit=\"{limit}\"}}");
    metric(broker.admin.expect("admin API"), &series).await
}

/// The value of one series (name and labels, as written) of the node's `/metrics`.
async fn metric(admin: SocketAddr, series: &str) -> u64 {
    let text = http::get(admin, "/metrics").await.body;
    let prefix = format!("{series} ");
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

/// Connects to `addr` and expects the connection closed without a CONNACK: a connection over
/// a cap is closed as it is accepted, before its CONNECT is read.
async fn closed_as_accepted(addr: std::net::SocketAddr, client_id: &str) {
    let mut client = RawClient::open(addr, Protocol::V5).await;
    let connect = raw::connect(Protocol::V5, client_id);
    client.send(Packet::Connect(Box::new(connect))).await;
    client.expect_closed().await;
}

#[tokio::test]
async fn connections_beyond_connections_max_are_closed_and_the_others_stay() {
    let broker = broker(|c| c.mqtt.connections_max = 2).await;
    let mut first = RawClient::connected(broker.addr, Protocol::V5, "one").await;
    let _second = RawClient::connected(broker.addr, Protocol::V5, "two").await;
    closed_as_accepted(broker.addr, "three").await;
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

#[tokio::test]
async fn connections_beyond_a_listeners_cap_are_closed_and_other_listeners_still_accept() {
    let mut config = Config::default();
    config.durability.store = keel::config::StoreKind::Memory;
    config.mqtt.sys_interval_secs = 0;
    config.listeners.ws = None;
    config.listeners.tcp_connections_max = 2;
    config.validate().unwrap();
    let mut settings = keel::startup::settings(&config).unwrap();
    assert_eq!(
        settings.listeners[0].connections_max,
        Some(2),
        "from the config"
    );
    // A second TCP listener without a cap of its own.
    settings.listeners.push(ListenerSpec {
        addr: "127.0.0.1:0".into(),
        acceptor: TransportAcceptor::tcp(),
        connections_max: None,
    });
    let broker = TestBroker::start_listening(settings).await;
    let (capped, other) = (broker.addrs[0], broker.addrs[1]);

    let mut first = RawClient::connected(capped, Protocol::V5, "one").await;
    let mut second = RawClient::connected(capped, Protocol::V3_1_1, "two").await;
    // As beyond connections_max: closed as accepted, its CONNECT never read.
    closed_as_accepted(capped, "three").await;
    let mut elsewhere = RawClient::connected(other, Protocol::V5, "three").await;
    for client in [&mut first, &mut second, &mut elsewhere] {
        client.ping().await;
    }
    let admin = broker.admin.expect("admin API");
    let labels = |addr: SocketAddr| format!("listener=\"tcp\",addr=\"{addr}\"");
    let refused = |addr| {
        format!(
            "keel_limit_hits_total{{limit=\"listener_connections_max\",{}}}",
            labels(addr)
        )
    };
    assert_eq!(metric(admin, &refused(capped)).await, 1);
    assert_eq!(metric(admin, &refused(other)).await, 0);
    assert_eq!(limit_hits(&broker, "connections_max").await, 0);
    let open = |addr| format!("keel_listener_connections{{{}}}", labels(addr));
    assert_eq!(metric(admin, &open(capped)).await, 2);
    assert_eq!(metric(admin, &open(other)).await, 1);

    // A place given back is taken again, once the connection's task has ended.
    drop(second);
    common::within("the capped listener to give a place back", async {
        while metric(admin, &open(capped)).await != 1 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let mut fourth = RawClient::connected(capped, Protocol::V5, "four").await;
    fourth.ping().await;
    first.ping().await;
}

/// Payload bytes of each message the byte-bound tests publish.
const PAYLOAD_BYTES: usize = 1024;

/// Reads `count` QoS 1 publishes and acknowledges each.
async fn read_and_ack(client: &mut RawClient, count: u16) {
    for _ in 0..count {
        let publish = client.expect_publish().await;
        let id = publish.qos_pid.packet_id().expect("QoS 1").get();
        client.send(Packet::PubAck(raw::reply(id))).await;
    }
}

#[tokio::test]
async fn slow_consumers_hold_at_most_queue_bytes_max_and_a_healthy_one_gets_everything() {
    const QUEUE_BYTES_MAX: usize = 64 * 1024;
    const MESSAGES: u16 = 200;
    let broker = broker(|c| {
        c.mqtt.packet_size_max = 16 * 1024;
        c.mqtt.queue_bytes_max = QUEUE_BYTES_MAX;
        c.mqtt.queue_max = 10_000;
    })
    .await;
    // An offline consumer (a persistent session, gone) and one that never acknowledges.
    let mut offline = raw::connect(Protocol::V5, "offline");
    offline.clean_start = false;
    offline.properties.session_expiry_interval = Some(600);
    let (mut client, _) = RawClient::connect(broker.addr, offline).await;
    client.subscribe(1, "flood", QoS::AtLeastOnce).await;
    client.send(raw::disconnect(ReasonCode::Success)).await;
    drop(client);
    broker.wait_offline("offline").await;
    let mut stuck = RawClient::connected(broker.addr, Protocol::V5, "stuck").await;
    stuck.subscribe(1, "flood", QoS::AtLeastOnce).await;
    let mut healthy = RawClient::connected(broker.addr, Protocol::V5, "healthy").await;
    healthy.subscribe(1, "flood", QoS::AtLeastOnce).await;

    // The healthy consumer reads and acknowledges each batch before the next is published,
    // so it never holds more than a batch: everything reaches it.
    const BATCH: u16 = 20;
    let mut publisher = RawClient::connected(broker.addr, Protocol::V5, "publisher").await;
    let payload = vec![b'x'; PAYLOAD_BYTES];
    for batch in 0..MESSAGES / BATCH {
        for n in 1..=BATCH {
            let id = batch * BATCH + n;
            let publish = raw::publish("flood", QoS::AtLeastOnce, id, &payload);
            publisher.send(Packet::Publish(publish)).await;
        }
        acks_read(&mut publisher).await;
        read_and_ack(&mut healthy, BATCH).await;
    }
    healthy.ping().await;

    // 63 messages of 1029 bytes (topic and payload) fit in 64 KiB; a 64th would not.
    let message_bytes = "flood".len() + PAYLOAD_BYTES;
    let kept = QUEUE_BYTES_MAX / message_bytes;
    for client_id in ["offline", "stuck"] {
        let (queued, bytes) = broker.inspect(|b| {
            let session = b.session(client_id).expect("session");
            (session.queue.len(), session.queue_bytes())
        });
        assert_eq!(queued, kept, "{client_id}");
        assert_eq!(bytes, kept * message_bytes, "{client_id}");
    }
    let dropped = 2 * (u64::from(MESSAGES) - kept as u64);
    assert_eq!(limit_hits(&broker, "queue_bytes_max").await, dropped);
    assert_eq!(limit_hits(&broker, "queue_max").await, 0);
    let admin = broker.admin.expect("admin API");
    let queue_full = "keel_messages_dropped_total{reason=\"queue_full\"}";
    assert_eq!(metric(admin, queue_full).await, dropped);
    let session = http::get(admin, "/api/v1/sessions/offline").await.json();
    assert_eq!(session["queued_bytes"], kept * message_bytes);
    bystander_is_served(&broker).await;
    drop(stuck);
}

#[tokio::test]
async fn a_slow_consumer_cannot_grow_the_broker_beyond_its_queue_bytes_bound() {
    // The message count bound is far off (100,000); the byte bound, 4 MiB, is what holds.
    const QUEUE_BYTES_MAX: usize = 4 * 1024 * 1024;
    const MESSAGES: u32 = 8192;
    const PAYLOAD: usize = 16 * 1024;
    let mut node = KeelProcess::with(Vec::new());
    let config = format!(
        "[mqtt]\nsys_interval_secs = 0\nqueue_max = 100000\nqueue_bytes_max = {QUEUE_BYTES_MAX}\n"
    );
    std::fs::write(node.config_file(), config).expect("write the configuration");
    node.spawn();
    node.wait_ready().await;
    let pid = node.pid().expect("running");
    // A subscriber that never reads, so never acknowledges.
    let mut stuck = RawClient::connected(node.addr, Protocol::V3_1_1, "stuck").await;
    stuck.subscribe(1, "flood", QoS::AtLeastOnce).await;
    let before = rss_kib(pid);
    let mut publisher = RawClient::connected(node.addr, Protocol::V3_1_1, "publisher").await;
    let payload = vec![b'x'; PAYLOAD];
    for n in 0..MESSAGES {
        let id = (n % 60_000) as u16 + 1;
        let publish = raw::publish("flood", QoS::AtLeastOnce, id, &payload);
        publisher.send(Packet::Publish(publish)).await;
        if n % 100 == 99 {
            acks_read(&mut publisher).await;
        }
    }
    acks_read(&mut publisher).await;
    let after = rss_kib(pid);
    let sent_mib = u64::from(MESSAGES) * PAYLOAD as u64 / 1024 / 1024;
    // The bound: the queue's 4 MiB, as much again encoded for the socket the subscriber does
    // not read, the read buffers their payloads share, plus allocator slack. Without the
    // byte bound the queue alone would hold all 128 MiB.
    let bound_kib = 3 * (QUEUE_BYTES_MAX as u64 / 1024) + 32 * 1024;
    assert!(
        after.saturating_sub(before) < bound_kib,
        "RSS grew by {} KiB ({before} -> {after}) for {sent_mib} MiB sent to a stuck consumer",
        after.saturating_sub(before)
    );
    let admin = node.http.expect("admin API");
    let hits = "keel_limit_hits_total{limit=\"queue_bytes_max\"}";
    let kept = (QUEUE_BYTES_MAX / ("flood".len() + PAYLOAD)) as u64;
    assert_eq!(metric(admin, hits).await, u64::from(MESSAGES) - kept);
    drop(stuck);
}
