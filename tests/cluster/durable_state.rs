//! The durable state of one node, in process: snapshots compact the log and a restart
//! restores from them; a store that fails makes the node stop acknowledging.
//!
//! The kill -9 tests against the real binary and RocksDB are in [`super::durability`].

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use keel::codec::{Packet, Protocol, QoS, ReasonCode};
use keel::server::ServerSettings;
use keel::storage::{KvStore, MemStore};

use common::raw::{self, RawClient};
use common::TestBroker;

fn settings(store: &MemStore, snapshot_every: u64) -> ServerSettings {
    ServerSettings {
        store: Arc::new(store.clone()),
        snapshot_every,
        ..TestBroker::settings()
    }
}

/// Number of Raft log entries in the store.
fn log_entries(store: &MemStore) -> usize {
    store
        .scan(b"log/", b"log0", usize::MAX)
        .expect("scan the log")
        .len()
}

/// A v5 client with a persistent session (expiry 600 s).
fn persistent(client_id: &str, clean_start: bool) -> keel::codec::Connect {
    let mut connect = raw::connect(Protocol::V5, client_id);
    connect.clean_start = clean_start;
    connect.properties.session_expiry_interval = Some(600);
    connect
}

/// Publishes `count` QoS 1 messages numbered from 0 and waits for each PUBACK.
async fn publish_acked(publisher: &mut RawClient, topic: &str, count: u16) {
    for n in 0..count {
        let packet_id = n % 60_000 + 1;
        publisher
            .send(Packet::Publish(raw::publish(
                topic,
                QoS::AtLeastOnce,
                packet_id,
                &n.to_be_bytes(),
            )))
            .await;
        match publisher.expect_packet().await {
            Packet::PubAck(ack) => assert_eq!(ack.packet_id.get(), packet_id),
            other => panic!("expected PUBACK {packet_id}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn snapshots_compact_the_log_and_a_restart_restores_from_them() {
    let store = MemStore::new();
    let broker = TestBroker::start(settings(&store, 20)).await;
    let (mut sub, _) = RawClient::connect(broker.addr, persistent("keeper", true)).await;
    sub.subscribe(1, "c/t", QoS::AtLeastOnce).await;
    sub.send(raw::disconnect(ReasonCode::Success)).await;
    sub.expect_closed().await;
    let mut publisher = RawClient::connected(broker.addr, Protocol::V5, "pub").await;
    publish_acked(&mut publisher, "c/t", 300).await;
    broker.shut_down().await;
    // Whatever was not synced is gone, as after a crash; acknowledged messages were synced.
    store.crash();
    let entries = log_entries(&store);
    assert!(
        entries < 100,
        "the log holds {entries} entries after 300 acknowledged publishes: not compacted"
    );
    assert!(store.get(b"sm/snapshot").unwrap().is_some(), "no snapshot");

    let broker = TestBroker::start(settings(&store, 20)).await;
    let (mut sub, connack) = RawClient::connect(broker.addr, persistent("keeper", false)).await;
    assert!(connack.session_present);
    for n in 0..300u16 {
        let publish = sub.expect_publish().await;
        assert_eq!(&publish.payload[..], n.to_be_bytes(), "message {n}");
        let packet_id = publish.packet_id().expect("QoS 1");
        sub.send(Packet::PubAck(raw::reply(packet_id.get()))).await;
    }
    broker
        .wait_until("the queue to drain", |b| {
            b.session("keeper").is_some_and(|s| s.queue.is_empty())
        })
        .await;
}

#[tokio::test]
async fn a_store_that_fails_stops_acknowledgements_and_refuses_clients() {
    let store = MemStore::new();
    let broker = TestBroker::start(settings(&store, 10_000)).await;
    let (mut sub, _) = RawClient::connect(broker.addr, persistent("durable", true)).await;
    sub.subscribe(1, "f/t", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::connected(broker.addr, Protocol::V5, "pub").await;
    publish_acked(&mut publisher, "f/t", 3).await;
    for _ in 0..3 {
        let publish = sub.expect_publish().await;
        sub.send(Packet::PubAck(raw::reply(
            publish.packet_id().unwrap().get(),
        )))
        .await;
    }

    store.set_fail_writes(true);
    publisher
        .send(Packet::Publish(raw::publish(
            "f/t",
            QoS::AtLeastOnce,
            9,
            b"lost",
        )))
        .await;
    // No PUBACK: the publish could not be made durable. The node says it cannot serve.
    publisher
        .expect_disconnect(ReasonCode::UnspecifiedError)
        .await;
    sub.expect_disconnect(ReasonCode::UnspecifiedError).await;
    let mut late = RawClient::open(broker.addr, Protocol::V5).await;
    late.send(Packet::Connect(Box::new(raw::connect(
        Protocol::V5,
        "late",
    ))))
    .await;
    match late.expect_packet().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::ServerUnavailable),
        other => panic!("expected CONNACK 0x88, got {other:?}"),
    }
    // The node stays up (no crash loop) and still holds what it acknowledged.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(broker.inspect(|b| b.session("durable").is_some()));
}
