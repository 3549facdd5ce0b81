//! A cluster of three real nodes on simulated hosts: messages cross nodes through the log
//! (durable sessions) and the fast path (QoS 0, clean sessions), and a client resumes its
//! session on another node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keel::codec::{Protocol, QoS};
use keel::net::{Rng, SimClock, SimNet};
use keel::server::{ClusterSettings, ListenerSpec, Server, ServerSettings};
use keel::storage::MemStore;
use keel::transport::TransportAcceptor;

use crate::support::client::Client;
use crate::support::{seed, ReplayHint};

const EPOCH_MS: u64 = 1_750_000_000_000;
const NODES: u64 = 3;

type HostFuture = std::pin::Pin<Box<dyn std::future::Future<Output = turmoil::Result>>>;

fn peers() -> BTreeMap<u64, String> {
    (1..=NODES)
        .map(|id| (id, format!("node{id}:7000")))
        .collect()
}

fn node_host(id: u64, seed: u64) -> impl Fn() -> HostFuture {
    let store = MemStore::new();
    move || {
        let store = store.clone();
        Box::pin(async move {
            let settings = ServerSettings {
                listeners: vec![ListenerSpec {
                    addr: "0.0.0.0:1883".into(),
                    acceptor: TransportAcceptor::tcp(),
                    connections_max: None,
                }],
                node_id: id,
                store: Arc::new(store),
                sys_interval: Duration::ZERO,
                cluster: Some(ClusterSettings {
                    listen: "0.0.0.0:7000".into(),
                    advertise: format!("node{id}:7000"),
                    peers: peers(),
                    join: None,
                    node_down_after: Duration::from_secs(10),
                    tls: None,
                }),
                ..ServerSettings::default()
            };
            let clock = Arc::new(SimClock::new(EPOCH_MS));
            let server = Server::bind(&SimNet, settings, clock).await?;
            server
                .run(Rng::from_seed(seed ^ id), std::future::pending())
                .await?;
            Ok(())
        })
    }
}

/// Connects to `node`, retrying while the cluster elects its first leader.
async fn connect(node: u64, client_id: &str, clean: bool) -> turmoil::Result<Client> {
    let addr = format!("node{node}:1883");
    for _ in 0..50 {
        let attempt = tokio::time::timeout(
            Duration::from_secs(3),
            Client::connect(&addr, Protocol::V5, client_id, clean),
        )
        .await;
        if let Ok(Ok(client)) = attempt {
            return Ok(client);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("{client_id} could not connect to {addr}").into())
}

#[test]
fn messages_cross_the_nodes_of_a_cluster() {
    let seed = seed(3);
    let _hint = ReplayHint {
        seed,
        test: "messages_cross_the_nodes_of_a_cluster",
    };
    keel::cluster::seed_thread_rng(seed);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(120))
        .build();
    for id in 1..=NODES {
        sim.host(format!("node{id}").as_str(), node_host(id, seed));
    }
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(0u32);
    let durable_ready = ready_tx.clone();
    sim.client("durable", async move {
        let mut client = connect(3, "durable", false).await?;
        client.subscribe("t/#", QoS::ExactlyOnce).await?;
        durable_ready.send_modify(|n| *n += 1);
        let first = client.next_message().await?;
        assert_eq!((first.topic.as_str(), first.qos), ("t/1", QoS::AtLeastOnce));
        let second = client.next_message().await?;
        assert_eq!(
            (second.topic.as_str(), second.qos),
            ("t/2", QoS::ExactlyOnce)
        );
        Ok(())
    });
    sim.client("clean", async move {
        let mut client = connect(1, "clean", true).await?;
        client.subscribe("q/#", QoS::AtMostOnce).await?;
        ready_tx.send_modify(|n| *n += 1);
        let got = client.next_message().await?;
        assert_eq!(got.payload, Bytes::from_static(b"zero"));
        Ok(())
    });
    sim.client("publisher", async move {
        let mut ready = ready_rx;
        ready.wait_for(|n| *n == 2).await?;
        let mut client = connect(2, "pub", true).await?;
        client
            .publish("q/0", QoS::AtMostOnce, Bytes::from_static(b"zero"))
            .await?;
        client
            .publish("t/1", QoS::AtLeastOnce, Bytes::from_static(b"one"))
            .await?;
        client
            .publish("t/2", QoS::ExactlyOnce, Bytes::from_static(b"two"))
            .await?;
        Ok(())
    });
    sim.run().expect("simulation");
}
