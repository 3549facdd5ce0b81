//! The comparison of two brokers' observations of one scenario: each step's answer, how each
//! connection ended, and, per connection, step and message (topic and payload), the copies
//! delivered: their number, QoS as delivered and RETAIN flag. Order within a step and the DUP flag are
//! not compared: the spec leaves order across topics and publishers open, and DUP only says
//! a copy may have been sent before.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::link::ConnId;
use super::observation::{ConnRecord, Delivery, Message, Observation, Outcome};

/// One place where the brokers disagree.
#[derive(Debug, Clone)]
pub enum Difference {
    Outcome {
        step: usize,
        keel: Outcome,
        mosquitto: Outcome,
    },
    /// How `conn` ended differs (`None`: never opened on that broker).
    Ending {
        conn: ConnId,
        keel: Option<ConnRecord>,
        mosquitto: Option<ConnRecord>,
    },
    /// The copies of one message (topic and payload) that `conn` received during `step`
    /// differ in number, QoS or RETAIN flag.
    Deliveries {
        conn: ConnId,
        step: usize,
        topic: String,
        payload: String,
        keel: Vec<Delivery>,
        mosquitto: Vec<Delivery>,
    },
}

impl Difference {
    /// The step the difference shows in; a connection's ending sorts after every step.
    pub fn step(&self) -> usize {
        match self {
            Difference::Outcome { step, .. } | Difference::Deliveries { step, .. } => *step,
            Difference::Ending { .. } => usize::MAX,
        }
    }
}

/// Every difference between the brokers' observations, in step order.
pub fn differences(keel: &Observation, mosquitto: &Observation) -> Vec<Difference> {
    let mut found = outcome_differences(keel, mosquitto);
    found.extend(delivery_differences(keel, mosquitto));
    found.extend(ending_differences(keel, mosquitto));
    found.sort_by_key(Difference::step);
    found
}

fn outcome_differences(keel: &Observation, mosquitto: &Observation) -> Vec<Difference> {
    keel.outcomes
        .iter()
        .zip(&mosquitto.outcomes)
        .enumerate()
        .filter(|(_, (k, m))| k != m)
        .map(|(step, (k, m))| Difference::Outcome {
            step,
            keel: k.clone(),
            mosquitto: m.clone(),
        })
        .collect()
}

fn ending_differences(keel: &Observation, mosquitto: &Observation) -> Vec<Difference> {
    let conns: BTreeSet<ConnId> = keel
        .connections
        .keys()
        .chain(mosquitto.connections.keys())
        .copied()
        .collect();
    conns
        .into_iter()
        .filter_map(|conn| {
            let k = keel.connections.get(&conn);
            let m = mosquitto.connections.get(&conn);
            (k.map(ConnRecord::ending) != m.map(ConnRecord::ending)).then(|| Difference::Ending {
                conn,
                keel: k.cloned(),
                mosquitto: m.cloned(),
            })
        })
        .collect()
}

/// Where a copy of a message arrived and which message it was: the unit of comparison.
type CopyKey = (ConnId, usize, String, String);

/// The copies each connection received, by step and message.
fn copies(observation: &Observation) -> BTreeMap<CopyKey, Vec<Delivery>> {
    let mut copies: BTreeMap<CopyKey, Vec<Delivery>> = BTreeMap::new();
    for (conn, record) in &observation.connections {
        for delivery in &record.deliveries {
            let key = (
                *conn,
                delivery.step,
                delivery.topic.clone(),
                delivery.payload.clone(),
            );
            copies.entry(key).or_default().push(delivery.clone());
        }
    }
    copies
}

fn delivery_differences(keel: &Observation, mosquitto: &Observation) -> Vec<Difference> {
    let (mut keel_copies, mut mosquitto_copies) = (copies(keel), copies(mosquitto));
    let keys: BTreeSet<CopyKey> = keel_copies
        .keys()
        .chain(mosquitto_copies.keys())
        .cloned()
        .collect();
    let mut found = Vec::new();
    for key in keys {
        let k = keel_copies.remove(&key).unwrap_or_default();
        let m = mosquitto_copies.remove(&key).unwrap_or_default();
        if compared(&k) == compared(&m) {
            continue;
        }
        let (conn, step, topic, payload) = key;
        found.push(Difference::Deliveries {
            conn,
            step,
            topic,
            payload,
            keel: k,
            mosquitto: m,
        });
    }
    found
}

/// What is compared of a message's copies: their number, QoS and RETAIN flag (not DUP).
fn compared(copies: &[Delivery]) -> Vec<Message> {
    let mut messages: Vec<Message> = copies.iter().map(Delivery::message).collect();
    messages.sort();
    messages
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Outcome {
                step,
                keel,
                mosquitto,
            } => write!(
                f,
                "step {step}: Keel answered {keel}, Mosquitto answered {mosquitto}"
            ),
            Difference::Ending {
                conn,
                keel,
                mosquitto,
            } => write!(
                f,
                "connection c{}#{}: on Keel {}; on Mosquitto {}",
                conn.client,
                conn.number,
                ending(keel),
                ending(mosquitto)
            ),
            Difference::Deliveries {
                conn,
                step,
                topic,
                payload,
                keel,
                mosquitto,
            } => write!(
                f,
                "step {step}, connection c{}#{}, message {topic} {payload:?}: Keel delivered {}, \
                 Mosquitto delivered {}",
                conn.client,
                conn.number,
                list(keel),
                list(mosquitto)
            ),
        }
    }
}

fn ending(record: &Option<ConnRecord>) -> String {
    record
        .as_ref()
        .map_or("never opened".into(), ConnRecord::ending)
}

/// Copies as `[q1 retain, q0]`, or `nothing`.
fn list(copies: &[Delivery]) -> String {
    if copies.is_empty() {
        return "nothing".into();
    }
    let items: Vec<String> = copies
        .iter()
        .map(|copy| {
            let retain = if copy.retain { " retain" } else { "" };
            let dup = if copy.dup { " dup" } else { "" };
            format!("q{}{retain}{dup}", copy.qos)
        })
        .collect();
    format!("[{}]", items.join(", "))
}
