//! The broker core on two nodes of one cluster, sharing a log that the test orders by hand: a
//! node's proposals can be held back (the node is paused or cut off) and committed later,
//! and a replica can lag behind the log.

use bytes::Bytes;

use super::*;
use crate::codec::{MqttString, PacketId, PublishProperties, QoS, SubscriptionOptions};
use crate::codec::{TopicFilter, TopicName};
use crate::state::{Command, Incarnation, Message, NodeId, Subscription};

/// A node: its broker, how much of the log it has applied, and what it delivered.
struct Node {
    b: Broker,
    applied: usize,
    effects: Vec<Effect>,
    ticket: Ticket,
}

/// Nodes sharing one log.
struct Cluster {
    nodes: Vec<Node>,
    log: Vec<Proposal>,
}

impl Cluster {
    /// Nodes 1..=n, none of them the only voter (so none counts its replica fresh).
    fn new(n: u64) -> Cluster {
        let nodes = (1..=n)
            .map(|id| {
                let mut b =
                    Broker::with_identity(BrokerConfig::default(), NodeId(id), Incarnation(1));
                b.set_cluster_role(false, id == 1);
                Node {
                    b,
                    applied: 0,
                    effects: Vec::new(),
                    ticket: Ticket(0),
                }
            })
            .collect();
        Cluster {
            nodes,
            log: Vec::new(),
        }
    }

    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    /// Appends what `id` proposed to the log, then lets every node in `caught_up` apply the
    /// log so far.
    fn commit(&mut self, id: u64, caught_up: &[u64]) {
        let proposals = self.node(id).b.take_proposals();
        self.log.extend(proposals);
        for &n in caught_up {
            self.catch_up(n);
        }
    }

    /// Node `id` applies the log up to its end.
    fn catch_up(&mut self, id: u64) {
        let log = self.log.clone();
        let node = self.node(id);
        for proposal in &log[node.applied..] {
            node.b.apply_committed(proposal.clone());
        }
        node.applied = log.len();
        node.effects.extend(node.b.take_effects());
    }

    fn connect(&mut self, id: u64, conn: ConnId, client: &str) {
        let node = self.node(id);
        node.ticket = node.ticket.next();
        let request = ConnectRequest {
            client_id: MqttString::new(client).unwrap(),
            clean_start: false,
            expiry_secs: 600,
            will: None,
            receive_maximum: 10,
        };
        node.b.connect(conn, node.ticket, request, 0);
    }

    fn subscribe(&mut self, id: u64, conn: ConnId, filter: &str) {
        let node = self.node(id);
        node.ticket = node.ticket.next();
        let subscription = Subscription {
            options: SubscriptionOptions::new(QoS::ExactlyOnce),
            identifier: None,
        };
        let filter = TopicFilter::new(filter).unwrap();
        node.b
            .subscribe(conn, node.ticket, vec![(filter, subscription)], 0);
    }

    fn publish(&mut self, id: u64, conn: ConnId, payload: &'static [u8], packet_id: u16) {
        let node = self.node(id);
        node.ticket = node.ticket.next();
        let message = Message {
            topic: TopicName::new("t").unwrap(),
            payload: Bytes::from_static(payload),
            qos: QoS::ExactlyOnce,
            retain: false,
            properties: PublishProperties::default(),
            publisher: Some(MqttString::new("pub").unwrap()),
            received_at_ms: 0,
        };
        let packet_id = PacketId::new(packet_id);
        node.b
            .publish(conn, node.ticket, message, packet_id, false)
            .unwrap();
    }

    /// The payloads node `id` sent to `conn` since the last look.
    fn sent_to(&mut self, id: u64, conn: ConnId) -> Vec<Bytes> {
        self.publishes_to(id, conn)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    /// The payloads and packet ids node `id` sent to `conn` since the last look.
    fn publishes_to(&mut self, id: u64, conn: ConnId) -> Vec<(Bytes, Option<PacketId>)> {
        let node = self.node(id);
        node.effects.extend(node.b.take_effects());
        let mut sent = Vec::new();
        node.effects.retain(|effect| match effect {
            Effect::Deliver {
                conn: c,
                delivery:
                    Delivery::Publish {
                        message, packet_id, ..
                    },
            } if *c == conn => {
                sent.push((message.payload.clone(), *packet_id));
                false
            }
            _ => true,
        });
        sent
    }
}

/// Jepsen's shared-group duplicate (seeds 1796514293, 1796515831): a member's CONNECT
/// reaches a node whose replica is behind (paused, or cut off from its peers), times out
/// before its CONNACK, and the node releases the QoS 2 messages its stale replica shows
/// queued for the member, as if never sent. But a connection of that member on another node
/// had sent one, and the member's application had it: once the held proposals commit,
/// another member got it too ([MQTT-4.8.2-5]: a QoS 2 message sent to a member is never
/// given to another).
#[test]
fn a_connection_that_never_opened_releases_no_qos2_message_to_another_member() {
    let mut c = Cluster::new(3);
    let all = [1, 2, 3];
    for (conn, client) in [(ConnId(1), "a"), (ConnId(2), "b"), (ConnId(3), "pub")] {
        c.connect(1, conn, client);
        c.commit(1, &all);
    }
    for conn in [ConnId(1), ConnId(2)] {
        c.subscribe(1, conn, "$share/g/t");
        c.commit(1, &all);
    }
    // `a` leaves: the group's messages go to `b`.
    c.node(1).b.disconnect(ConnId(1), 600, false, 0);
    c.commit(1, &all);
    c.publish(1, ConnId(3), b"m", 1);
    c.commit(1, &all);
    assert_eq!(
        c.sent_to(1, ConnId(2)),
        [Bytes::from_static(b"m")],
        "b has it"
    );

    // Node 3 is cut off from now on: what it proposes is held, and it applies nothing.
    // `b` connects there and gives up before its CONNACK.
    c.connect(3, ConnId(30), "b");
    c.node(3).b.disconnect(ConnId(30), 600, true, 0);
    let held = c.node(3).b.take_proposals();
    // Meanwhile `b`'s connection on node 1 drops before its PUBREC.
    c.node(1).b.disconnect(ConnId(2), 600, true, 0);
    c.commit(1, &[1, 2]);

    // Node 3 is back: its held proposals commit, then `a` returns.
    c.log.extend(held);
    for n in all {
        c.catch_up(n);
    }
    c.connect(1, ConnId(10), "a");
    c.commit(1, &all);
    assert_eq!(
        c.sent_to(1, ConnId(10)),
        Vec::<Bytes>::new(),
        "a never gets m"
    );
    // `b` returns and completes m: it is still its message.
    c.connect(2, ConnId(20), "b");
    c.commit(2, &all);
    assert_eq!(c.sent_to(2, ConnId(20)), [Bytes::from_static(b"m")]);
}

/// The log itself keeps the rule too: a QoS 2 message whose PUBREC is committed stays with
/// its member whatever a release proposed from an older view of the queue asks.
#[test]
fn a_release_never_moves_a_qos2_message_whose_pubrec_is_committed() {
    let mut c = Cluster::new(2);
    let all = [1, 2];
    for (conn, client) in [(ConnId(1), "a"), (ConnId(2), "b"), (ConnId(3), "pub")] {
        c.connect(1, conn, client);
        c.commit(1, &all);
    }
    for conn in [ConnId(1), ConnId(2)] {
        c.subscribe(1, conn, "$share/g/t");
        c.commit(1, &all);
    }
    c.node(1).b.disconnect(ConnId(1), 600, false, 0);
    c.commit(1, &all);
    c.publish(1, ConnId(3), b"m", 1);
    c.commit(1, &all);
    let sent = c.publishes_to(1, ConnId(2));
    assert_eq!(sent.len(), 1);
    let packet_id = sent[0].1.expect("QoS 2 has a packet id");
    let seq = c.node(1).b.state().session("b").unwrap().queue[0].seq;
    // Node 2 proposes a release of the message from a view that lacks the PUBREC.
    let release = Proposal {
        commands: vec![Command::ReleaseShared {
            client_id: MqttString::new("b").unwrap(),
            seqs: vec![seq],
        }],
        origin: None,
        from: None,
    };
    assert_eq!(
        c.node(1).b.pubrec(ConnId(2), packet_id),
        PubRecOutcome::Committing
    );
    c.commit(1, &all);
    c.log.push(release);
    c.catch_up(1);
    c.catch_up(2);
    c.connect(1, ConnId(10), "a");
    c.commit(1, &all);
    assert_eq!(
        c.sent_to(1, ConnId(10)),
        Vec::<Bytes>::new(),
        "a never gets m"
    );
    assert_eq!(c.node(1).b.state().session("b").unwrap().queue.len(), 1);
}
