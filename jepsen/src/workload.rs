//! The clients of a run: the simulator's workload programs (`keel_oracle::workload`), here
//! on real sockets. Three workloads, as in the issue:
//!
//! - **queue**: QoS 1 and QoS 2 publishers (durable and clean, MQTT 3.1.1 and 5) and durable
//!   subscribers, one of them a shared group, each connection to a node chosen at random and
//!   the next one to another after a failure; one publisher and one subscriber churn their
//!   sessions (each connection draws MQTT 3.1.1 or 5, Clean Start and Session Expiry
//!   Interval, as real clients do across reconnects);
//! - **retained register**: a retained writer and readers that read the topic again and again
//!   on new sessions;
//! - **session takeover**: every client now and then opens a second connection with its own
//!   client id, to a random node, while the first is open (and drops or closes connections).

use keel::codec::{Protocol, QoS};
use keel_oracle::workload::{PublisherSpec, ReaderSpec, SessionStyle, SubscriberSpec};

/// Chance per operation that a client drops, closes or takes over its own connection.
const CLIENT_FAULTS: f64 = 0.01;

/// Every client of a run.
pub struct Workload {
    pub publishers: Vec<PublisherSpec>,
    pub subscribers: Vec<SubscriberSpec>,
    pub readers: Vec<ReaderSpec>,
}

impl Workload {
    pub fn new() -> Workload {
        let publisher =
            |id: u32, qos: QoS, session: SessionStyle, protocol: Protocol| PublisherSpec {
                name: format!("pub{id}"),
                id,
                protocol,
                qos,
                session,
                topic: format!("jq/{id}"),
                retain: false,
                pause_ms: (10, 60),
                client_faults: CLIENT_FAULTS,
            };
        let subscriber = |name: &str, filter: &str, qos: QoS, protocol: Protocol| SubscriberSpec {
            name: name.to_string(),
            protocol,
            session: SessionStyle::Durable,
            filter: filter.to_string(),
            qos,
            client_faults: CLIENT_FAULTS,
        };
        Workload {
            publishers: vec![
                publisher(1, QoS::AtLeastOnce, SessionStyle::Durable, Protocol::V3_1_1),
                publisher(2, QoS::ExactlyOnce, SessionStyle::Durable, Protocol::V5),
                publisher(3, QoS::AtLeastOnce, SessionStyle::Clean, Protocol::V5),
                publisher(4, QoS::ExactlyOnce, SessionStyle::Clean, Protocol::V3_1_1),
                publisher(5, QoS::ExactlyOnce, SessionStyle::Churn, Protocol::V5),
                PublisherSpec {
                    name: "retained-writer".into(),
                    id: 100,
                    protocol: Protocol::V5,
                    qos: QoS::AtLeastOnce,
                    session: SessionStyle::Durable,
                    topic: "jr/1".into(),
                    retain: true,
                    pause_ms: (100, 400),
                    client_faults: CLIENT_FAULTS,
                },
            ],
            subscribers: vec![
                subscriber("sub-all-v3", "jq/#", QoS::ExactlyOnce, Protocol::V3_1_1),
                subscriber("sub-all-v5", "jq/+", QoS::ExactlyOnce, Protocol::V5),
                subscriber("sub-q1", "jq/1", QoS::AtLeastOnce, Protocol::V5),
                SubscriberSpec {
                    session: SessionStyle::Churn,
                    ..subscriber("sub-churn", "jq/+", QoS::ExactlyOnce, Protocol::V5)
                },
                subscriber("shared-a", "$share/g/jq/#", QoS::ExactlyOnce, Protocol::V5),
                subscriber(
                    "shared-b",
                    "$share/g/jq/#",
                    QoS::ExactlyOnce,
                    Protocol::V3_1_1,
                ),
            ],
            readers: vec![
                ReaderSpec {
                    name: "reader-v5".into(),
                    protocol: Protocol::V5,
                    filter: "jr/#".into(),
                },
                ReaderSpec {
                    name: "reader-v3".into(),
                    protocol: Protocol::V3_1_1,
                    filter: "jr/1".into(),
                },
            ],
        }
    }
}
