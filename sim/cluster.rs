//! A cluster of three real nodes on simulated hosts: messages cross nodes through the log
//! (durable sessions) and the fast path (QoS 0, clean sessions), and a client resumes its
//! session on another node; a leader told to stop hands its leadership over.

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

/// The Raft handle of each node that has started, by id.
type Rafts = Arc<std::sync::Mutex<BTreeMap<u64, openraft::Raft<keel::cluster::TypeConfig>>>>;

fn node_host(id: u64, seed: u64) -> impl Fn() -> HostFuture {
    stoppable_node_host(
        id,
        seed,
        tokio::sync::watch::channel(false).1,
        Rafts::default(),
    )
}

/// A node that stops (as on SIGTERM) when `stop` turns true, and puts its Raft handle in
/// `rafts`.
fn stoppable_node_host(
    id: u64,
    seed: u64,
    stop: tokio::sync::watch::Receiver<bool>,
    rafts: Rafts,
) -> impl Fn() -> HostFuture {
    let store = MemStore::new();
    move || {
        let store = store.clone();
        let mut stop = stop.clone();
        let rafts = rafts.clone();
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
            rafts.lock().unwrap().insert(id, server.raft());
            let stopped = async move {
                // A node nobody can stop (its sender dropped) runs on.
                if stop.wait_for(|stop| *stop).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            server.run(Rng::from_seed(seed ^ id), stopped).await?;
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

/// Publishes QoS 1 messages to `load/1` for a durable subscriber (so each one is a log
/// entry), moving to the next node when a connection fails, until `done`.
async fn publish_load(done: Arc<std::sync::atomic::AtomicBool>) -> turmoil::Result {
    use std::sync::atomic::Ordering;
    let mut subscriber = connect(1, "load-sub", false).await?;
    subscriber.subscribe("load/#", QoS::AtLeastOnce).await?;
    let mut node = 0;
    while !done.load(Ordering::SeqCst) {
        node = node % NODES + 1;
        let Ok(mut publisher) = connect(node, "load-pub", true).await else {
            continue;
        };
        while !done.load(Ordering::SeqCst) {
            let payload = Bytes::from_static(b"x");
            if publisher
                .publish("load/1", QoS::AtLeastOnce, payload)
                .await
                .is_err()
            {
                break;
            }
        }
    }
    Ok(())
}

/// A leader that stops hands its leadership to an up-to-date follower, which is elected at
/// once: well within the election timeout, after which the followers would only start to
/// stand on their own (simulated time: the bound is exact, not a guess about a machine). A
/// publisher keeps the leader appending meanwhile, which the hand-over must stop first.
#[test]
fn a_stopping_leader_hands_leadership_over_at_once() {
    let seed = seed(5);
    let _hint = ReplayHint {
        seed,
        test: "a_stopping_leader_hands_leadership_over_at_once",
    };
    keel::cluster::seed_thread_rng(seed);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(60))
        .build();
    let rafts = Rafts::default();
    let mut stops = BTreeMap::new();
    for id in 1..=NODES {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        stops.insert(id, stop_tx);
        sim.host(
            format!("node{id}").as_str(),
            stoppable_node_host(id, seed, stop_rx, rafts.clone()),
        );
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    sim.client("load", publish_load(done.clone()));
    sim.client("operator", async move {
        let leader_of = |rafts: &Rafts| {
            let rafts = rafts.lock().unwrap();
            rafts.values().find_map(|raft| {
                let metrics = raft.metrics().borrow().clone();
                (metrics.current_leader == Some(metrics.id))
                    .then_some((metrics.id, metrics.current_term))
            })
        };
        // A leader, with every node following it and its log applied everywhere.
        let (old, term) = loop {
            let all_follow = {
                let rafts = rafts.lock().unwrap();
                let leaders: Vec<_> = rafts
                    .values()
                    .map(|raft| raft.metrics().borrow().current_leader)
                    .collect();
                leaders.len() == NODES as usize
                    && leaders.iter().all(|l| l.is_some() && *l == leaders[0])
            };
            match leader_of(&rafts) {
                Some(found) if all_follow => break found,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        let stopped_at = tokio::time::Instant::now();
        stops[&old].send_replace(true);
        let (new, new_term) = loop {
            let other = {
                let rafts = rafts.lock().unwrap();
                rafts
                    .iter()
                    .filter(|(id, _)| **id != old)
                    .find_map(|(_, raft)| {
                        let metrics = raft.metrics().borrow().clone();
                        (metrics.current_leader == Some(metrics.id))
                            .then_some((metrics.id, metrics.current_term))
                    })
            };
            if let Some(found) = other {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let took = stopped_at.elapsed();
        eprintln!("node {new} leads {took:?} after node {old} was told to stop");
        assert_ne!(new, old);
        assert_eq!(new_term, term + 1, "one election, at the leader's request");
        assert!(
            took < Duration::from_millis(keel::cluster::ELECTION_TIMEOUT_MIN_MS / 2),
            "node {new} led {took:?} after node {old} was told to stop"
        );
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    });
    sim.run().expect("simulation");
}
