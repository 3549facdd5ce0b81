//! The seam proved: the real node (listeners, connection tasks, session, broker) runs on a
//! simulated host, and two MQTT clients on other hosts exchange QoS 0, 1 and 2 messages.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keel::codec::{Protocol, QoS};
use keel::net::{Rng, SimClock, SimNet};
use keel::server::{ListenerSpec, Server, ServerSettings};
use keel::transport::TransportAcceptor;

use crate::support::client::Client;
use crate::support::{seed, ReplayHint};

/// A fixed wall-clock start, so every run of a seed reads the same times.
const EPOCH_MS: u64 = 1_750_000_000_000;

fn broker_host(
    seed: u64,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = turmoil::Result> + 'static>> {
    move || {
        Box::pin(async move {
            let settings = ServerSettings {
                listeners: vec![ListenerSpec {
                    addr: "0.0.0.0:1883".into(),
                    acceptor: TransportAcceptor::tcp(),
                    connections_max: None,
                }],
                ..ServerSettings::default()
            };
            let clock = Arc::new(SimClock::new(EPOCH_MS));
            let server = Server::bind(&SimNet, settings, clock).await?;
            server
                .run(Rng::from_seed(seed), std::future::pending())
                .await?;
            Ok(())
        })
    }
}

fn run_exchange(protocol: Protocol, test: &'static str) {
    let seed = seed(1);
    let _hint = ReplayHint { seed, test };
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(60))
        .build();
    sim.host("broker", broker_host(seed));
    let (subscribed_tx, subscribed_rx) = tokio::sync::watch::channel(false);
    sim.client("subscriber", async move {
        let mut client = Client::connect("broker:1883", protocol, "sub", true).await?;
        client.subscribe("t/#", QoS::ExactlyOnce).await?;
        subscribed_tx.send(true)?;
        let mut got = Vec::new();
        for _ in 0..3 {
            let message = client.next_message().await?;
            got.push((message.topic, message.payload, message.qos));
        }
        assert_eq!(
            got,
            vec![
                (
                    "t/0".to_string(),
                    Bytes::from_static(b"zero"),
                    QoS::AtMostOnce
                ),
                (
                    "t/1".to_string(),
                    Bytes::from_static(b"one"),
                    QoS::AtLeastOnce
                ),
                (
                    "t/2".to_string(),
                    Bytes::from_static(b"two"),
                    QoS::ExactlyOnce
                ),
            ]
        );
        Ok(())
    });
    sim.client("publisher", async move {
        let mut subscribed = subscribed_rx;
        subscribed.wait_for(|s| *s).await?;
        let mut client = Client::connect("broker:1883", protocol, "pub", true).await?;
        client
            .publish("t/0", QoS::AtMostOnce, Bytes::from_static(b"zero"))
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

#[test]
fn v311_clients_exchange_qos_0_1_2_through_a_simulated_node() {
    run_exchange(
        Protocol::V3_1_1,
        "v311_clients_exchange_qos_0_1_2_through_a_simulated_node",
    );
}

#[test]
fn v5_clients_exchange_qos_0_1_2_through_a_simulated_node() {
    run_exchange(
        Protocol::V5,
        "v5_clients_exchange_qos_0_1_2_through_a_simulated_node",
    );
}
