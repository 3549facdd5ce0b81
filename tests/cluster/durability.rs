//! Acceptance test of durable state: what docs/design.md §1 promises (G1 delivery, G2 order, G3
//! session durability, G4 retained) must hold across `kill -9` of the real `keel` binary and a
//! restart on the same `--data-dir`, and a data directory that cannot be read must stop the
//! node with an error naming it instead of a silent start with nothing.
//!
//! Each crash test has a control twin (`control_…`) that runs the very same flow and checks on
//! a node that is never killed. The controls pass on a broker that keeps its state in memory;
//! the crash tests pass only once the state is durable. A crash test that fails while its
//! control passes has found lost durable state, not a bug of the test.
//!
//! Clients are raw packets through Keel's codec ([`common::link`]), so the test sees every
//! packet id, DUP flag and PUBREL, and can stop a QoS 2 flow half-way. Deliveries are counted
//! the way an application sees them: a QoS 2 PUBLISH is delivered when it first arrives for a
//! packet id, not again when resent (DUP) while that id awaits its PUBREL.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::time::Duration;

use common::link::{Link, Recv};
use common::process::{path_str, KeelProcess, StartOutcome};
use common::raw;
use keel::codec::{
    ConnAck, Connect, Disconnect, Packet, Protocol, PubReply, Publish, QoS, ReasonCode, Subscribe,
    SubscribeProperties, SubscriptionOptions, TopicFilter,
};
use tokio::time::Instant;

/// The longest a broker may stay silent while the test still expects something of it.
const QUIET: Duration = Duration::from_secs(3);

/// How long a subscriber keeps listening, once everything expected has come, for duplicates.
const DRAIN: Duration = Duration::from_millis(300);

/// The longest a subscriber collects after a reconnect, however busy the broker keeps it.
const COLLECT_MAX: Duration = Duration::from_secs(12);

/// QoS 1/2 publishes the publisher keeps unacknowledged at once.
const PUBLISH_WINDOW: usize = 32;

/// Session expiry of the MQTT 5 persistent sessions: far longer than any test.
const SESSION_EXPIRY_SECS: u32 = 3600;

/// Lines of the broker's standard error shown with a failure.
const STDERR_TAIL_LINES: usize = 40;

// --- What the tests do to the broker ----------------------------------------------------------

/// What happens to the node in the middle of a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// SIGKILL, then a restart on the same data directory and port.
    KillAndRestart,
    /// Nothing: the control run.
    None,
}

impl Fault {
    /// Applies the fault at the point where the test calls for it.
    async fn apply(self, node: &mut KeelProcess) {
        if self == Fault::KillAndRestart {
            node.kill();
            node.restart().await;
        }
    }
}

/// When the publisher of the delivery scenario is interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interruption {
    /// After every publish was acknowledged (and every QoS 2 flow completed).
    AfterEveryAck,
    /// Once half the publishes were acknowledged, with more in flight: the node is killed
    /// then (or, in the control run, the publisher's connection is dropped).
    InFlight,
}

// --- The delivery scenario: streams of numbered messages to an offline durable session --------

/// One topic the publisher numbers its messages on.
struct Stream {
    topic: &'static str,
    /// The QoS it is published with, which is also the QoS it is delivered with (the matching
    /// subscription grants at least as much).
    qos: QoS,
    count: u32,
}

/// 500 QoS 1 and 500 QoS 2 messages, over two exact filters and one wildcard filter.
const STREAMS: [Stream; 4] = [
    Stream {
        topic: "dur/q1",
        qos: QoS::AtLeastOnce,
        count: 400,
    },
    Stream {
        topic: "dur/q2",
        qos: QoS::ExactlyOnce,
        count: 400,
    },
    Stream {
        topic: "dur/w/a",
        qos: QoS::AtLeastOnce,
        count: 100,
    },
    Stream {
        topic: "dur/w/b",
        qos: QoS::ExactlyOnce,
        count: 100,
    },
];

/// The durable subscriber's filters: each stream matches exactly one of them.
const FILTERS: [(&str, QoS); 3] = [
    ("dur/q1", QoS::AtLeastOnce),
    ("dur/q2", QoS::ExactlyOnce),
    ("dur/w/+", QoS::ExactlyOnce),
];

/// The order of publishes: the streams interleaved, each numbered from 1.
fn publish_plan() -> Vec<(usize, u32)> {
    // Four of q1, four of q2, one of each wildcard topic, over and over.
    const PATTERN: [usize; 10] = [0, 0, 0, 0, 1, 1, 1, 1, 2, 3];
    let total: u32 = STREAMS.iter().map(|s| s.count).sum();
    let mut next_seq = [1u32; STREAMS.len()];
    let mut plan = Vec::with_capacity(total as usize);
    while plan.len() < total as usize {
        for &stream in &PATTERN {
            if next_seq[stream] <= STREAMS[stream].count {
                plan.push((stream, next_seq[stream]));
                next_seq[stream] += 1;
            }
        }
    }
    plan
}

fn payload(stream: usize, seq: u32) -> String {
    format!("{} {seq}", STREAMS[stream].topic)
}

fn marker_payload(stream: usize) -> String {
    format!("{} marker", STREAMS[stream].topic)
}

/// What a payload of the delivery scenario says.
#[derive(Debug, PartialEq, Eq)]
enum Numbered {
    Seq(u32),
    Marker,
}

/// Reads a payload of the delivery scenario, checking it names the topic it came on.
fn parse_payload(topic: &str, payload: &str) -> Option<(usize, Numbered)> {
    let stream = STREAMS.iter().position(|s| s.topic == topic)?;
    let (named, rest) = payload.split_once(' ')?;
    if named != topic {
        return None;
    }
    if rest == "marker" {
        return Some((stream, Numbered::Marker));
    }
    Some((stream, Numbered::Seq(rest.parse().ok()?)))
}

/// What the publisher knows at the end.
struct Published {
    /// Per stream, the sequence numbers whose PUBACK or PUBREC reached the publisher.
    acked: Vec<BTreeSet<u32>>,
    /// Per stream, the highest sequence number sent (all below it were sent too).
    sent_max: Vec<u32>,
    /// Acknowledgements that refused a publish (reason code 0x80 or more).
    refused: Vec<String>,
    /// Publishes acknowledged and publishes outstanding when the publisher was interrupted.
    at_interruption: Option<(usize, usize)>,
}

impl Published {
    fn acked_total(&self) -> usize {
        self.acked.iter().map(BTreeSet::len).sum()
    }
}

/// Publishes the plan over one connection with a window of [`PUBLISH_WINDOW`], recording
/// which publishes were acknowledged. With `interrupt_at`, once that many are acknowledged,
/// the node is killed (`fault` KillAndRestart; it is not restarted here) or the publisher's
/// connection is dropped (`fault` None); acknowledgements already on their way still count.
async fn publish_all(
    node: &mut KeelProcess,
    protocol: Protocol,
    interrupt_at: Option<usize>,
    fault: Fault,
) -> Published {
    let plan = publish_plan();
    let mut link = connect_clean(node, protocol, "dur-publisher").await;
    let mut published = Published {
        acked: vec![BTreeSet::new(); STREAMS.len()],
        sent_max: vec![0; STREAMS.len()],
        refused: Vec::new(),
        at_interruption: None,
    };
    // Packet id → index in the plan; ids are the plan index + 1, never reused.
    let mut outstanding: BTreeMap<u16, usize> = BTreeMap::new();
    let mut next = 0;
    loop {
        while published.at_interruption.is_none()
            && next < plan.len()
            && outstanding.len() < PUBLISH_WINDOW
        {
            let (stream, seq) = plan[next];
            let packet_id = u16::try_from(next + 1).expect("plan fits in packet ids");
            let publish = raw::publish(
                STREAMS[stream].topic,
                STREAMS[stream].qos,
                packet_id,
                payload(stream, seq).as_bytes(),
            );
            if !link.send(&Packet::Publish(publish)).await {
                fail(node, "the publisher's connection broke uninterrupted");
            }
            outstanding.insert(packet_id, next);
            published.sent_max[stream] = seq;
            next += 1;
        }
        if outstanding.is_empty() && next == plan.len() {
            break;
        }
        match link.recv(QUIET).await {
            Recv::Packet(Packet::PubAck(reply)) => {
                let index = take_outstanding(node, &mut outstanding, &reply, "PUBACK");
                record_ack(&mut published, plan[index], &reply);
            }
            Recv::Packet(Packet::PubRec(reply)) => {
                let index = *outstanding.get(&reply.packet_id.get()).unwrap_or_else(|| {
                    fail(node, &format!("PUBREC for an id not in flight: {reply:?}"))
                });
                record_ack(&mut published, plan[index], &reply);
                if is_refusal(reply.reason_code) {
                    outstanding.remove(&reply.packet_id.get());
                } else {
                    let pubrel = PubReply::new(reply.packet_id);
                    let _ = link.send(&Packet::PubRel(pubrel)).await;
                }
            }
            Recv::Packet(Packet::PubComp(reply)) => {
                take_outstanding(node, &mut outstanding, &reply, "PUBCOMP");
            }
            Recv::Packet(other) => fail(node, &format!("publisher got {other:?}")),
            Recv::Closed if published.at_interruption.is_some() => break,
            Recv::Closed => fail(
                node,
                &format!(
                    "the broker closed the publisher's connection uninterrupted, after {} acks",
                    published.acked_total()
                ),
            ),
            Recv::Quiet if published.at_interruption.is_some() => break,
            Recv::Quiet => fail(
                node,
                &format!(
                    "publisher: no acknowledgement for {QUIET:?} with {} in flight ({} acked)",
                    outstanding.len(),
                    published.acked_total()
                ),
            ),
        }
        if published.at_interruption.is_none()
            && interrupt_at.is_some_and(|at| published.acked_total() >= at)
        {
            published.at_interruption = Some((published.acked_total(), outstanding.len()));
            match fault {
                Fault::KillAndRestart => node.kill(),
                Fault::None => break,
            }
        }
    }
    published
}

/// Removes and returns the plan index of the flow `reply` ends.
fn take_outstanding(
    node: &KeelProcess,
    outstanding: &mut BTreeMap<u16, usize>,
    reply: &PubReply,
    what: &str,
) -> usize {
    outstanding
        .remove(&reply.packet_id.get())
        .unwrap_or_else(|| fail(node, &format!("{what} for an id not in flight: {reply:?}")))
}

fn is_refusal(reason: ReasonCode) -> bool {
    reason as u8 >= 0x80
}

/// Counts a PUBACK or PUBREC: an acknowledgement unless it refuses the publish.
fn record_ack(published: &mut Published, (stream, seq): (usize, u32), reply: &PubReply) {
    if is_refusal(reply.reason_code) {
        published.refused.push(format!(
            "{} {seq}: {:?}",
            STREAMS[stream].topic, reply.reason_code
        ));
    } else {
        published.acked[stream].insert(seq);
    }
}

/// The delivery scenario (G1–G3 under kill -9): a durable subscriber
/// subscribes and goes offline, the publisher sends every stream, the node is interrupted,
/// and the subscriber, back, must get every acknowledged message (QoS 2 exactly once) in
/// order, with its session and subscriptions intact.
async fn delivery_scenario(protocol: Protocol, interruption: Interruption, fault: Fault) {
    let mut node = KeelProcess::start().await;
    let mut subscriber = Subscriber::new(protocol, "dur-subscriber");

    let (mut link, connack) = subscriber.connect(&node).await;
    assert!(
        !connack.session_present,
        "a new client id has no session: {connack:?}"
    );
    let filters: Vec<(&str, QoS)> = FILTERS.to_vec();
    let granted = subscriber.subscribe(&node, &mut link, &filters).await;
    assert_eq!(
        granted,
        vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::GrantedQoS2
        ],
        "SUBACK"
    );
    disconnect(link).await;

    let interrupt_at = match interruption {
        Interruption::AfterEveryAck => None,
        Interruption::InFlight => Some(publish_plan().len() / 2),
    };
    let published = publish_all(&mut node, protocol, interrupt_at, fault).await;
    let plan_len = publish_plan().len();
    match interruption {
        Interruption::AfterEveryAck => {
            assert_eq!(
                published.acked_total(),
                plan_len,
                "every publish is acknowledged before the interruption (refused: {:?})",
                published.refused
            );
            if fault == Fault::KillAndRestart {
                node.kill();
            }
        }
        Interruption::InFlight => {
            let (acked, in_flight) = published
                .at_interruption
                .expect("the publisher was interrupted");
            assert!(
                in_flight > 0 && published.acked_total() < plan_len,
                "the interruption came with publishes in flight: {acked} acked, {in_flight} \
                 in flight, {} acked in all",
                published.acked_total()
            );
        }
    }
    if fault == Fault::KillAndRestart {
        node.restart().await;
    }

    let (mut link, connack) = subscriber.connect(&node).await;
    // A fresh publish on every topic, after the restart, tests that the subscriptions still
    // work and tells the subscriber when the stream has ended.
    let markers_acked = publish_markers(&node, protocol).await;
    let acked = published.acked.clone();
    subscriber
        .collect(&mut link, |s| {
            (0..STREAMS.len()).all(|stream| {
                s.markers.contains(&stream)
                    && acked[stream]
                        .iter()
                        .all(|seq| s.delivered.contains_key(&(stream, *seq)))
            })
        })
        .await;
    disconnect(link).await;

    let mut problems = Vec::new();
    if !connack.session_present {
        problems.push(format!(
            "CONNACK after the {} said session present = false: the session was lost",
            what_happened(fault)
        ));
    }
    if !markers_acked {
        problems.push("a marker publish after the restart was not acknowledged".into());
    }
    problems.extend(
        published
            .refused
            .iter()
            .map(|r| format!("publish refused: {r}")),
    );
    problems.extend(check_streams(&published, &subscriber));
    report(
        &node,
        &format!("{protocol:?} {interruption:?} {fault:?}"),
        &stream_summary(&published, &subscriber),
        problems,
    );
}

/// Publishes one QoS 1 marker on every stream's topic; whether all were acknowledged.
async fn publish_markers(node: &KeelProcess, protocol: Protocol) -> bool {
    let mut link = connect_clean(node, protocol, "dur-marker").await;
    let mut all_acked = true;
    for (stream, s) in STREAMS.iter().enumerate() {
        let packet_id = u16::try_from(stream + 1).expect("few streams");
        let publish = raw::publish(
            s.topic,
            QoS::AtLeastOnce,
            packet_id,
            marker_payload(stream).as_bytes(),
        );
        all_acked &= publish_one(&mut link, publish).await.is_ok();
    }
    disconnect(link).await;
    all_acked
}

/// Everything the delivery scenario checks of what the subscriber got.
fn check_streams(published: &Published, subscriber: &Subscriber) -> Vec<String> {
    let mut problems: Vec<String> = subscriber.unexpected.clone();
    let mut per_stream: Vec<Vec<(u32, QoS)>> = vec![Vec::new(); STREAMS.len()];
    for delivery in &subscriber.deliveries {
        match parse_payload(&delivery.topic, &delivery.payload) {
            Some((stream, Numbered::Seq(seq))) => per_stream[stream].push((seq, delivery.qos)),
            Some((_, Numbered::Marker)) => {}
            None => problems.push(format!(
                "delivered something never published: {} {:?}",
                delivery.topic, delivery.payload
            )),
        }
    }
    for (stream, s) in STREAMS.iter().enumerate() {
        let topic = s.topic;
        let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
        let mut max_seen = 0;
        let mut backwards = Vec::new();
        let mut wrong_qos = BTreeSet::new();
        for &(seq, qos) in &per_stream[stream] {
            let earlier = counts.get(&seq).copied().unwrap_or(0);
            // A repeat is QoS 1 redelivery (or, for QoS 2, a duplicate reported below); a
            // new number below one already delivered is out of order (G2).
            if seq < max_seen && earlier == 0 {
                backwards.push(format!("{seq} after {max_seen}"));
            }
            max_seen = max_seen.max(seq);
            *counts.entry(seq).or_default() += 1;
            if qos != s.qos {
                wrong_qos.insert(format!("{qos:?}"));
            }
        }
        let lost: Vec<u32> = published.acked[stream]
            .iter()
            .copied()
            .filter(|seq| !counts.contains_key(seq))
            .collect();
        if !lost.is_empty() {
            problems.push(format!(
                "{topic}: {} acknowledged messages LOST (G1): {}",
                lost.len(),
                ranges(&lost)
            ));
        }
        let phantom: Vec<u32> = counts
            .keys()
            .copied()
            .filter(|&seq| seq == 0 || seq > published.sent_max[stream])
            .collect();
        if !phantom.is_empty() {
            problems.push(format!(
                "{topic}: delivered numbers never sent: {}",
                ranges(&phantom)
            ));
        }
        if s.qos == QoS::ExactlyOnce {
            let twice: Vec<String> = counts
                .iter()
                .filter(|(_, &n)| n > 1)
                .map(|(seq, n)| format!("{seq}×{n}"))
                .collect();
            if !twice.is_empty() {
                problems.push(format!(
                    "{topic}: QoS 2 messages DUPLICATED at the application (G1): {}",
                    twice.join(", ")
                ));
            }
        }
        if !backwards.is_empty() {
            problems.push(format!(
                "{topic}: out of publisher order (G2): {}",
                backwards.join(", ")
            ));
        }
        if !wrong_qos.is_empty() {
            problems.push(format!(
                "{topic}: delivered with {wrong_qos:?}, expected {:?}",
                s.qos
            ));
        }
        if !subscriber.markers.contains(&stream) {
            problems.push(format!(
                "{topic}: the publish made after the restart did not arrive: the subscription \
                 is gone (G3)"
            ));
        }
    }
    problems
}

/// One line per stream: acknowledged, unknown, delivered.
fn stream_summary(published: &Published, subscriber: &Subscriber) -> String {
    let mut out = String::new();
    if let Some((acked, in_flight)) = published.at_interruption {
        let _ = writeln!(
            out,
            "interrupted with {acked} acknowledged and {in_flight} in flight"
        );
    }
    for (stream, s) in STREAMS.iter().enumerate() {
        let acked = published.acked[stream].len();
        let sent = published.sent_max[stream] as usize;
        let deliveries = subscriber
            .deliveries
            .iter()
            .filter(|d| d.topic == s.topic && !d.payload.ends_with(" marker"))
            .count();
        let distinct = subscriber
            .delivered
            .keys()
            .filter(|(st, _)| *st == stream)
            .count();
        let _ = writeln!(
            out,
            "{} (QoS {}): sent {sent}, acknowledged {acked}, unknown {}; delivered {distinct} \
             distinct in {deliveries} deliveries; marker {}",
            s.topic,
            s.qos as u8,
            sent - acked,
            if subscriber.markers.contains(&stream) {
                "arrived"
            } else {
                "missing"
            }
        );
    }
    out
}

// --- The subscriber: receiver flows and application-level deliveries ---------------------------

/// One message as the application got it.
#[derive(Debug)]
struct Delivery {
    topic: String,
    payload: String,
    qos: QoS,
    retain: bool,
}

/// A durable MQTT subscriber: its client-side session state (QoS 2 ids awaiting PUBREL)
/// outlives its connections, as a real client's does.
struct Subscriber {
    protocol: Protocol,
    client_id: &'static str,
    /// QoS 2 packet ids received and delivered, whose PUBREL has not come yet: a PUBLISH
    /// for one of these is a resend and is not delivered again.
    awaiting_pubrel: BTreeSet<u16>,
    deliveries: Vec<Delivery>,
    /// Distinct (stream, sequence number) delivered, with how often.
    delivered: BTreeMap<(usize, u32), u32>,
    /// Streams whose marker arrived.
    markers: BTreeSet<usize>,
    /// Packets a subscriber should never get, and how collecting ended if not as hoped.
    unexpected: Vec<String>,
    /// Every packet [`Subscriber::handle`] was given, in order.
    received: Vec<Packet>,
}

impl Subscriber {
    fn new(protocol: Protocol, client_id: &'static str) -> Subscriber {
        Subscriber {
            protocol,
            client_id,
            awaiting_pubrel: BTreeSet::new(),
            deliveries: Vec::new(),
            delivered: BTreeMap::new(),
            markers: BTreeSet::new(),
            unexpected: Vec::new(),
            received: Vec::new(),
        }
    }

    /// Connects with clean start off (v3 clean_session=0; v5 clean_start=false and a session
    /// expiry); fails the test unless accepted.
    async fn connect(&self, node: &KeelProcess) -> (Link, ConnAck) {
        let connect = persistent_connect(self.protocol, self.client_id);
        let (link, connack) = Link::connect(node.addr, connect)
            .await
            .unwrap_or_else(|e| fail(node, &format!("{} connect: {e}", self.client_id)));
        if connack.reason_code != ReasonCode::Success {
            fail(node, &format!("{} refused: {connack:?}", self.client_id));
        }
        (link, connack)
    }

    /// Subscribes to `filters` in one SUBSCRIBE and returns the SUBACK's reason codes.
    /// Publishes that come first (retained messages may) are handled as usual.
    async fn subscribe(
        &mut self,
        node: &KeelProcess,
        link: &mut Link,
        filters: &[(&str, QoS)],
    ) -> Vec<ReasonCode> {
        let packet_id = pid(1);
        let subscribe = Subscribe {
            packet_id,
            properties: SubscribeProperties::default(),
            filters: filters
                .iter()
                .map(|(filter, qos)| {
                    (
                        TopicFilter::new(filter).expect("topic filter"),
                        SubscriptionOptions::new(*qos),
                    )
                })
                .collect(),
        };
        link.send(&Packet::Subscribe(subscribe)).await;
        loop {
            match link.recv(QUIET).await {
                Recv::Packet(Packet::SubAck(suback)) if suback.packet_id == packet_id => {
                    return suback.reason_codes
                }
                Recv::Packet(packet @ (Packet::Publish(_) | Packet::PubRel(_))) => {
                    self.handle(link, packet).await
                }
                other => fail(node, &format!("expected SUBACK, got {other:?}")),
            }
        }
    }

    /// Runs the receiver side of one packet: delivers what the application should see and
    /// answers as a well-behaved client.
    async fn handle(&mut self, link: &mut Link, packet: Packet) {
        self.received.push(packet.clone());
        match packet {
            Packet::Publish(publish) => {
                match publish.qos() {
                    QoS::AtMostOnce => self.deliver(&publish),
                    QoS::AtLeastOnce => {
                        self.deliver(&publish);
                        let id = publish.packet_id().expect("QoS 1 has a packet id");
                        let _ = link.send(&Packet::PubAck(PubReply::new(id))).await;
                    }
                    QoS::ExactlyOnce => {
                        let id = publish.packet_id().expect("QoS 2 has a packet id");
                        // Until its PUBREL, a PUBLISH with the same id (DUP or not) is
                        // acknowledged again but not delivered again (MQTT 4.3.3).
                        if self.awaiting_pubrel.insert(id.get()) {
                            self.deliver(&publish);
                        }
                        let _ = link.send(&Packet::PubRec(PubReply::new(id))).await;
                    }
                }
            }
            Packet::PubRel(reply) => {
                self.awaiting_pubrel.remove(&reply.packet_id.get());
                let _ = link
                    .send(&Packet::PubComp(PubReply::new(reply.packet_id)))
                    .await;
            }
            other => self.unexpected.push(format!("subscriber got {other:?}")),
        }
    }

    fn deliver(&mut self, publish: &Publish) {
        let topic = publish.topic.as_str().to_owned();
        let payload = String::from_utf8_lossy(&publish.payload).into_owned();
        match parse_payload(&topic, &payload) {
            Some((stream, Numbered::Seq(seq))) => {
                *self.delivered.entry((stream, seq)).or_default() += 1
            }
            Some((stream, Numbered::Marker)) => {
                self.markers.insert(stream);
            }
            None => {}
        }
        self.deliveries.push(Delivery {
            topic,
            payload,
            qos: publish.qos(),
            retain: publish.retain,
        });
    }

    /// Handles packets until `done` holds (then listens [`DRAIN`] longer for duplicates),
    /// the broker is silent for [`QUIET`], closes, or [`COLLECT_MAX`] has passed.
    async fn collect(&mut self, link: &mut Link, done: impl Fn(&Subscriber) -> bool) {
        let deadline = Instant::now() + COLLECT_MAX;
        let mut drain_until: Option<Instant> = None;
        while Instant::now() < deadline {
            let wait = match drain_until {
                Some(until) => until.saturating_duration_since(Instant::now()),
                None => QUIET,
            };
            match link.recv(wait).await {
                Recv::Packet(packet) => self.handle(link, packet).await,
                Recv::Closed => {
                    self.unexpected
                        .push("the broker closed the subscriber's connection".into());
                    return;
                }
                Recv::Quiet => return,
            }
            if drain_until.is_none() && done(self) {
                drain_until = Some(Instant::now() + DRAIN);
            }
        }
        if drain_until.is_none() {
            self.unexpected.push(format!(
                "still receiving after {COLLECT_MAX:?}: what is missing may only be late"
            ));
        }
    }
}

// --- The retained scenario --------------------------------------------------------------------

/// Retained messages set before the fault (one replaced, one cleared) are exactly what a
/// new subscriber gets after it (G4).
async fn retained_scenario(fault: Fault) {
    let mut node = KeelProcess::start().await;
    let mut publisher = connect_clean(&node, Protocol::V3_1_1, "ret-publisher").await;
    let retained: [(&str, &str, QoS); 6] = [
        ("ret/a", "a1", QoS::AtLeastOnce),
        ("ret/b", "b", QoS::AtLeastOnce),
        ("ret/c", "c", QoS::ExactlyOnce),
        ("ret/a", "a2", QoS::ExactlyOnce),
        ("ret/d/deep", "d", QoS::AtLeastOnce),
        // An empty retained payload clears the topic's retained message.
        ("ret/c", "", QoS::AtLeastOnce),
    ];
    for (i, (topic, payload, qos)) in retained.iter().enumerate() {
        let mut publish = raw::publish(topic, *qos, (i + 1) as u16, payload.as_bytes());
        publish.retain = true;
        if let Err(e) = publish_one(&mut publisher, publish).await {
            fail(&node, &format!("retained publish {topic} {payload:?}: {e}"));
        }
    }
    disconnect(publisher).await;

    fault.apply(&mut node).await;

    let mut reader = Subscriber::new(Protocol::V3_1_1, "ret-reader");
    let (mut link, _) = reader.connect(&node).await;
    let granted = reader
        .subscribe(&node, &mut link, &[("ret/#", QoS::ExactlyOnce)])
        .await;
    assert_eq!(granted, vec![ReasonCode::GrantedQoS2], "SUBACK");
    // Retained messages go out when the subscription is made; a publish after the SUBACK
    // comes after them.
    let mut barrier_publisher = connect_clean(&node, Protocol::V3_1_1, "ret-barrier").await;
    let barrier = raw::publish("ret/zz-barrier", QoS::AtLeastOnce, 1, b"barrier");
    let barrier_acked = publish_one(&mut barrier_publisher, barrier).await;
    disconnect(barrier_publisher).await;
    reader
        .collect(&mut link, |r| {
            r.deliveries.iter().any(|d| d.topic == "ret/zz-barrier")
        })
        .await;
    disconnect(link).await;

    let expected: BTreeMap<String, String> = [("ret/a", "a2"), ("ret/b", "b"), ("ret/d/deep", "d")]
        .iter()
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect();
    let mut got: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = reader.unexpected.clone();
    if let Err(e) = barrier_acked {
        problems.push(format!("the barrier publish after the restart: {e}"));
    }
    if !reader
        .deliveries
        .iter()
        .any(|d| d.topic == "ret/zz-barrier")
    {
        problems.push("the barrier publish did not arrive".into());
    }
    for d in reader
        .deliveries
        .iter()
        .filter(|d| d.topic != "ret/zz-barrier")
    {
        if !d.retain {
            problems.push(format!("{} {:?} came without RETAIN", d.topic, d.payload));
        }
        if let Some(before) = got.insert(d.topic.clone(), d.payload.clone()) {
            problems.push(format!(
                "{}: two retained messages, {before:?} and {:?}",
                d.topic, d.payload
            ));
        }
    }
    if got != expected {
        problems.push(format!(
            "retained set after the {} is {got:?}, expected {expected:?} (G4)",
            what_happened(fault)
        ));
    }
    report(&node, &format!("retained {fault:?}"), "", problems);
}

// --- The QoS 2 receive-side scenario ------------------------------------------------------------

/// QoS 2 messages to the subscriber in this scenario: the first half get PUBREC (and so a
/// PUBREL, never answered), the second half are not even PUBREC'd.
const REL_COUNT: u32 = 20;
const REL_RECEIVED: u32 = REL_COUNT / 2;

/// The subscriber stops its QoS 2 flows half-way; after the fault the broker must resend
/// PUBREL (not PUBLISH) for the PUBREC'd ids, PUBLISH with DUP and the same id for the
/// others, and the application sees every message exactly once (G3, G1).
async fn pubrel_scenario(protocol: Protocol, fault: Fault) {
    let mut node = KeelProcess::start().await;
    let mut subscriber = Subscriber::new(protocol, "rel-subscriber");
    let (mut link, _) = subscriber.connect(&node).await;
    let granted = subscriber
        .subscribe(&node, &mut link, &[("rel/t", QoS::ExactlyOnce)])
        .await;
    assert_eq!(granted, vec![ReasonCode::GrantedQoS2], "SUBACK");

    let mut publisher = connect_clean(&node, protocol, "rel-publisher").await;
    for seq in 1..=REL_COUNT {
        let publish = raw::publish("rel/t", QoS::ExactlyOnce, seq as u16, &seq_bytes(seq));
        if let Err(e) = publish_one(&mut publisher, publish).await {
            fail(&node, &format!("publish {seq}: {e}"));
        }
    }
    let half_done = receive_half_way(&node, &mut subscriber, &mut link).await;
    drop(link);

    fault.apply(&mut node).await;
    let (mut link, connack) = subscriber.connect(&node).await;
    subscriber.received.clear();
    // After the resends, one fresh message: the subscription must still work.
    let fresh_seq = REL_COUNT + 1;
    let publish = raw::publish(
        "rel/t",
        QoS::ExactlyOnce,
        fresh_seq as u16,
        &seq_bytes(fresh_seq),
    );
    let mut publisher = connect_clean(&node, protocol, "rel-publisher-2").await;
    let fresh_acked = publish_one(&mut publisher, publish).await;
    disconnect(publisher).await;
    subscriber
        .collect(&mut link, |s| {
            s.awaiting_pubrel.is_empty() && (1..=fresh_seq).all(|seq| seq_count(s, seq) > 0)
        })
        .await;
    disconnect(link).await;

    let resent = Resent::from_packets(&subscriber.received, fresh_seq);
    let mut problems = subscriber.unexpected.clone();
    if !connack.session_present {
        problems.push(format!(
            "CONNACK after the {} said session present = false: the session was lost",
            what_happened(fault)
        ));
    }
    if let Err(e) = fresh_acked {
        problems.push(format!("the publish after the restart: {e}"));
    }
    problems.extend(check_resends(&half_done, &resent));
    for seq in 1..=fresh_seq {
        match seq_count(&subscriber, seq) {
            1 => {}
            0 if seq == fresh_seq => problems.push(format!(
                "the publish after the {} (seq {seq}) did not arrive: the subscription is gone",
                what_happened(fault)
            )),
            n => problems.push(format!(
                "seq {seq} delivered {n} times to the application (exactly once expected)"
            )),
        }
    }
    let summary = format!(
        "before: PUBCOMP withheld for ids {:?}, PUBREC withheld for ids {:?}\n\
         after: PUBREL resent for ids {:?}, PUBLISH resent (id, dup, seq) {:?}\n",
        half_done.pubrel_ids,
        half_done.unreceived.keys().collect::<Vec<_>>(),
        resent.pubrel_ids,
        resent.publishes,
    );
    report(
        &node,
        &format!("pubrel {protocol:?} {fault:?}"),
        &summary,
        problems,
    );
}

/// The QoS 2 flows the subscriber left unfinished when its connection died.
struct HalfDone {
    /// Ids it PUBREC'd and got PUBREL for, without answering PUBCOMP.
    pubrel_ids: BTreeSet<u16>,
    /// Id → sequence number of the PUBLISHes it got and did not PUBREC.
    unreceived: BTreeMap<u16, u32>,
}

/// Receives all [`REL_COUNT`] messages (each delivered to the application), answers PUBREC
/// to the first [`REL_RECEIVED`] and waits for their PUBREL, which it never answers.
async fn receive_half_way(
    node: &KeelProcess,
    subscriber: &mut Subscriber,
    link: &mut Link,
) -> HalfDone {
    let mut half_done = HalfDone {
        pubrel_ids: BTreeSet::new(),
        unreceived: BTreeMap::new(),
    };
    let mut publishes = 0;
    while publishes < REL_COUNT || half_done.pubrel_ids.len() < REL_RECEIVED as usize {
        match link.recv(QUIET).await {
            Recv::Packet(Packet::Publish(publish)) => {
                let id = publish.packet_id().expect("QoS 2 has a packet id").get();
                let seq = parse_seq(&publish.payload);
                assert!(
                    subscriber.awaiting_pubrel.insert(id),
                    "packet id {id} reused while awaiting PUBREL"
                );
                subscriber.deliver(&publish);
                publishes += 1;
                if seq <= REL_RECEIVED {
                    let _ = link.send(&Packet::PubRec(PubReply::new(pid(id)))).await;
                } else {
                    half_done.unreceived.insert(id, seq);
                }
            }
            // The application has the message and the id is released; the PUBCOMP is never
            // sent: the connection dies first.
            Recv::Packet(Packet::PubRel(reply)) => {
                let id = reply.packet_id.get();
                assert!(
                    subscriber.awaiting_pubrel.remove(&id),
                    "PUBREL for id {id}, which was not PUBREC'd"
                );
                half_done.pubrel_ids.insert(id);
            }
            other => fail(
                node,
                &format!(
                    "before the fault the subscriber got {other:?} after {publishes} PUBLISH \
                     and {} PUBREL",
                    half_done.pubrel_ids.len()
                ),
            ),
        }
    }
    half_done
}

/// What the broker sent again on the subscriber's new connection.
struct Resent {
    /// PUBRELs that answer no PUBREC sent on the new connection.
    pubrel_ids: Vec<u16>,
    /// (packet id, DUP, sequence number) of every PUBLISH but the fresh one.
    publishes: Vec<(u16, bool, u32)>,
}

impl Resent {
    fn from_packets(received: &[Packet], fresh_seq: u32) -> Resent {
        let mut resent = Resent {
            pubrel_ids: Vec::new(),
            publishes: Vec::new(),
        };
        // Ids of QoS 2 publishes received (and so PUBREC'd) on the new connection: a PUBREL
        // for one of them is a new flow.
        let mut pubrec_sent: BTreeSet<u16> = BTreeSet::new();
        for packet in received {
            match packet {
                Packet::PubRel(reply) if !pubrec_sent.contains(&reply.packet_id.get()) => {
                    resent.pubrel_ids.push(reply.packet_id.get())
                }
                Packet::Publish(publish) => {
                    let id = publish.packet_id().map_or(0, |id| id.get());
                    pubrec_sent.insert(id);
                    let seq = parse_seq(&publish.payload);
                    if seq != fresh_seq {
                        resent.publishes.push((id, publish.dup, seq));
                    }
                }
                _ => {}
            }
        }
        resent
    }
}

/// Every unfinished flow resumed where it stopped: PUBREL for the ids awaiting PUBCOMP,
/// PUBLISH with DUP and the original id for those awaiting PUBREC, nothing else.
fn check_resends(half_done: &HalfDone, resent: &Resent) -> Vec<String> {
    let mut problems = Vec::new();
    let pubrels: BTreeSet<u16> = resent.pubrel_ids.iter().copied().collect();
    let missing: Vec<u16> = half_done.pubrel_ids.difference(&pubrels).copied().collect();
    if !missing.is_empty() {
        problems.push(format!(
            "no PUBREL resent for ids awaiting PUBCOMP (G3): {missing:?}"
        ));
    }
    let extra: Vec<u16> = pubrels.difference(&half_done.pubrel_ids).copied().collect();
    if !extra.is_empty() {
        problems.push(format!(
            "PUBREL for ids that were not awaiting PUBCOMP: {extra:?}"
        ));
    }
    for &(id, dup, seq) in &resent.publishes {
        if seq <= REL_RECEIVED || half_done.pubrel_ids.contains(&id) {
            problems.push(format!(
                "PUBLISH resent (id {id}, seq {seq}) for a message the broker had already \
                 sent PUBREL for: it must resend PUBREL"
            ));
        } else if half_done.unreceived.get(&id) != Some(&seq) {
            problems.push(format!(
                "seq {seq} resent with id {id}, not its original id"
            ));
        } else if !dup {
            // The receiver copes (it knows the id), but the broker has lost that it sent
            // the message, or forgets to say so: a possible resend must carry DUP.
            problems.push(format!(
                "seq {seq} resent with DUP=0 [MQTT-3.3.1-1]: the broker lost that it had sent it"
            ));
        }
    }
    let resent_seqs: BTreeSet<u32> = resent.publishes.iter().map(|&(_, _, seq)| seq).collect();
    let not_resent: Vec<u32> = half_done
        .unreceived
        .values()
        .copied()
        .filter(|seq| !resent_seqs.contains(seq))
        .collect();
    if !not_resent.is_empty() {
        problems.push(format!(
            "QoS 2 PUBLISH awaiting PUBREC not resent (G3): seq {}",
            ranges(&not_resent)
        ));
    }
    problems
}

fn seq_bytes(seq: u32) -> Vec<u8> {
    seq.to_string().into_bytes()
}

fn parse_seq(payload: &[u8]) -> u32 {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn seq_count(subscriber: &Subscriber, seq: u32) -> usize {
    let text = seq.to_string();
    subscriber
        .deliveries
        .iter()
        .filter(|d| d.payload == text)
        .count()
}

// --- Shared client steps ------------------------------------------------------------------------

fn pid(id: u16) -> keel::codec::PacketId {
    raw::pid(id)
}

/// A CONNECT that resumes or creates a durable session.
fn persistent_connect(protocol: Protocol, client_id: &str) -> Connect {
    let mut connect = raw::connect(protocol, client_id);
    connect.clean_start = false;
    if protocol.is_v5() {
        connect.properties.session_expiry_interval = Some(SESSION_EXPIRY_SECS);
    }
    connect
}

/// A clean-session connection; fails the test unless accepted.
async fn connect_clean(node: &KeelProcess, protocol: Protocol, client_id: &str) -> Link {
    let (link, connack) = Link::connect(node.addr, raw::connect(protocol, client_id))
        .await
        .unwrap_or_else(|e| fail(node, &format!("{client_id} connect: {e}")));
    if connack.reason_code != ReasonCode::Success {
        fail(node, &format!("{client_id} refused: {connack:?}"));
    }
    link
}

/// Sends one publish and completes its flow (PUBACK, or PUBREC/PUBREL/PUBCOMP).
async fn publish_one(link: &mut Link, publish: Publish) -> Result<(), String> {
    let qos = publish.qos();
    let id = publish.packet_id();
    if !link.send(&Packet::Publish(publish)).await {
        return Err("connection closed".into());
    }
    let Some(id) = id else {
        return Ok(());
    };
    let expect = |packet: Recv, what: &str| -> Result<(), String> {
        match packet {
            Recv::Packet(Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubComp(r))
                if r.packet_id == id && !is_refusal(r.reason_code) =>
            {
                Ok(())
            }
            other => Err(format!(
                "expected {what} for id {}, got {other:?}",
                id.get()
            )),
        }
    };
    if qos == QoS::AtLeastOnce {
        return expect(link.recv(QUIET).await, "PUBACK");
    }
    expect(link.recv(QUIET).await, "PUBREC")?;
    link.send(&Packet::PubRel(PubReply::new(id))).await;
    expect(link.recv(QUIET).await, "PUBCOMP")
}

/// A normal DISCONNECT, then the connection is dropped.
async fn disconnect(mut link: Link) {
    let _ = link
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await;
}

fn what_happened(fault: Fault) -> &'static str {
    match fault {
        Fault::KillAndRestart => "kill -9 and restart",
        Fault::None => "reconnect (no restart)",
    }
}

// --- Reporting ----------------------------------------------------------------------------------

/// Fails the test now, with the broker's standard error.
fn fail(node: &KeelProcess, what: &str) -> ! {
    panic!("{what}\n{}", node.stderr_tail(STDERR_TAIL_LINES))
}

/// Fails the test if there are problems, listing them with the summary and the broker's
/// standard error.
fn report(node: &KeelProcess, run: &str, summary: &str, problems: Vec<String>) {
    if problems.is_empty() {
        return;
    }
    panic!(
        "{run}: {} problem(s)\n{}\n{summary}{}",
        problems.len(),
        problems
            .iter()
            .map(|p| format!("  - {p}"))
            .collect::<Vec<_>>()
            .join("\n"),
        node.stderr_tail(STDERR_TAIL_LINES)
    );
}

/// Sorted numbers as ranges: `1-3, 7, 9-10`.
fn ranges(sorted: &[u32]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        out.push(if sorted[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", sorted[i])
        });
        i += 1;
    }
    out.join(", ")
}

// --- Start-up on a data directory that cannot be used --------------------------------------------

/// Starts the node's next run and asserts it exits non-zero with an error line naming
/// `path`.
async fn assert_start_fails_naming(node: &mut KeelProcess, path: &str, why: &str) {
    node.spawn();
    let outcome = node.watch_start().await;
    let stderr = node.stderr();
    let last_run = stderr.rsplit("--- run ").next().unwrap_or("");
    // Skip the header line, which names the path itself.
    let output = last_run.split_once('\n').map_or("", |(_, rest)| rest);
    match outcome {
        StartOutcome::Exited(status) if !status.success() => {
            let named = output
                .lines()
                .any(|line| line.to_lowercase().contains("error") && line.contains(path));
            assert!(
                named,
                "keel exited ({status}) on {why}, but no error line names {path}:\n{output}"
            );
        }
        other => panic!(
            "keel on {why} must exit non-zero naming {path}; it did not: {other:?}\n{}",
            node.stderr_tail(STDERR_TAIL_LINES)
        ),
    }
}

// --- The tests ----------------------------------------------------------------------------------

#[tokio::test]
async fn v3_durable_session_gets_every_acknowledged_message_after_kill_when_all_were_acked() {
    delivery_scenario(
        Protocol::V3_1_1,
        Interruption::AfterEveryAck,
        Fault::KillAndRestart,
    )
    .await;
}

#[tokio::test]
async fn v5_durable_session_gets_every_acknowledged_message_after_kill_when_all_were_acked() {
    delivery_scenario(
        Protocol::V5,
        Interruption::AfterEveryAck,
        Fault::KillAndRestart,
    )
    .await;
}

#[tokio::test]
async fn v3_durable_session_gets_every_acknowledged_message_after_kill_during_publishing() {
    delivery_scenario(
        Protocol::V3_1_1,
        Interruption::InFlight,
        Fault::KillAndRestart,
    )
    .await;
}

#[tokio::test]
async fn v5_durable_session_gets_every_acknowledged_message_after_kill_during_publishing() {
    delivery_scenario(Protocol::V5, Interruption::InFlight, Fault::KillAndRestart).await;
}

#[tokio::test]
async fn retained_messages_survive_kill_including_a_cleared_one() {
    retained_scenario(Fault::KillAndRestart).await;
}

#[tokio::test]
async fn v3_qos2_ids_awaiting_pubcomp_get_pubrel_not_publish_after_kill() {
    pubrel_scenario(Protocol::V3_1_1, Fault::KillAndRestart).await;
}

#[tokio::test]
async fn v5_qos2_ids_awaiting_pubcomp_get_pubrel_not_publish_after_kill() {
    pubrel_scenario(Protocol::V5, Fault::KillAndRestart).await;
}

#[tokio::test]
async fn start_fails_naming_the_data_dir_when_it_is_a_file() {
    let mut node = KeelProcess::new();
    let junk = b"not a keel data directory\n\x00\xff\xfe junk";
    fs::write(&node.data_dir, junk).expect("write the junk file");
    let path = path_str(&node.data_dir).to_owned();
    assert_start_fails_naming(&mut node, &path, "a regular file as --data-dir").await;
    assert_eq!(
        fs::read(&node.data_dir).expect("the file is still there"),
        junk,
        "keel changed the file it was given as --data-dir"
    );
}

#[tokio::test]
async fn start_fails_naming_the_data_dir_when_its_files_are_corrupt() {
    let mut node = KeelProcess::start().await;
    // Some durable state: a durable session with a subscription, and a retained message.
    let mut subscriber = Subscriber::new(Protocol::V3_1_1, "corrupt-subscriber");
    let (mut link, _) = subscriber.connect(&node).await;
    subscriber
        .subscribe(&node, &mut link, &[("corrupt/#", QoS::AtLeastOnce)])
        .await;
    disconnect(link).await;
    let mut publisher = connect_clean(&node, Protocol::V3_1_1, "corrupt-publisher").await;
    let mut publish = raw::publish("corrupt/t", QoS::AtLeastOnce, 1, b"kept");
    publish.retain = true;
    if let Err(e) = publish_one(&mut publisher, publish).await {
        fail(&node, &format!("publish: {e}"));
    }
    node.kill();

    let files = node.corrupt_data_files();
    assert!(
        files > 0,
        "the node left no files under {} after a durable session and a retained message were \
         acknowledged: nothing is persisted",
        node.data_dir.display()
    );
    let path = path_str(&node.data_dir).to_owned();
    assert_start_fails_naming(&mut node, &path, "a data directory of corrupt files").await;
}

// --- Controls: the same flows and checks without the kill; they pass on an in-memory broker ----

#[tokio::test]
async fn control_v3_durable_session_gets_every_message_without_restart_when_all_were_acked() {
    delivery_scenario(Protocol::V3_1_1, Interruption::AfterEveryAck, Fault::None).await;
}

#[tokio::test]
async fn control_v5_durable_session_gets_every_message_without_restart_when_all_were_acked() {
    delivery_scenario(Protocol::V5, Interruption::AfterEveryAck, Fault::None).await;
}

#[tokio::test]
async fn control_v3_durable_session_gets_every_acked_message_when_the_publisher_drops() {
    delivery_scenario(Protocol::V3_1_1, Interruption::InFlight, Fault::None).await;
}

#[tokio::test]
async fn control_v5_durable_session_gets_every_acked_message_when_the_publisher_drops() {
    delivery_scenario(Protocol::V5, Interruption::InFlight, Fault::None).await;
}

#[tokio::test]
async fn control_retained_messages_without_restart() {
    retained_scenario(Fault::None).await;
}

#[tokio::test]
async fn control_v3_qos2_ids_awaiting_pubcomp_get_pubrel_on_reconnect() {
    pubrel_scenario(Protocol::V3_1_1, Fault::None).await;
}

#[tokio::test]
async fn control_v5_qos2_ids_awaiting_pubcomp_get_pubrel_on_reconnect() {
    pubrel_scenario(Protocol::V5, Fault::None).await;
}

// --- The checks themselves: they find what they are meant to find --------------------------------

/// The delivery checks on made-up deliveries: a lost, a duplicated, a reordered and a
/// never-sent message are each reported, a QoS 1 redelivery and unknown messages are not.
#[test]
fn delivery_checks_report_loss_duplication_and_reordering() {
    let published = Published {
        acked: vec![
            (1..=3).collect(),
            (1..=3).collect(),
            (1..=3).collect(),
            (1..=2).collect(),
        ],
        sent_max: vec![3, 3, 4, 3],
        refused: Vec::new(),
        at_interruption: None,
    };
    let mut subscriber = Subscriber::new(Protocol::V5, "checked");
    let deliveries: [(usize, u32, QoS); 12] = [
        (0, 1, QoS::AtLeastOnce),
        (0, 3, QoS::AtLeastOnce),
        (0, 2, QoS::AtLeastOnce), // new number after a higher one: out of order
        (1, 1, QoS::ExactlyOnce),
        (1, 1, QoS::ExactlyOnce), // QoS 2 twice: duplicated; 2 never comes: lost
        (1, 3, QoS::ExactlyOnce),
        (2, 1, QoS::AtLeastOnce),
        (2, 2, QoS::AtLeastOnce),
        (2, 1, QoS::AtLeastOnce), // QoS 1 redelivery: allowed
        (2, 3, QoS::AtLeastOnce),
        (2, 4, QoS::AtLeastOnce), // sent, never acknowledged: unknown, allowed
        (3, 9, QoS::ExactlyOnce), // never sent; 1 and 2 lost
    ];
    for (stream, seq, qos) in deliveries {
        let publish = raw::publish(
            STREAMS[stream].topic,
            qos,
            1,
            payload(stream, seq).as_bytes(),
        );
        subscriber.deliver(&publish);
    }
    // Every marker but the last stream's.
    for (stream, s) in STREAMS.iter().enumerate().take(STREAMS.len() - 1) {
        let marker = raw::publish(
            s.topic,
            QoS::AtLeastOnce,
            1,
            marker_payload(stream).as_bytes(),
        );
        subscriber.deliver(&marker);
    }
    let problems = check_streams(&published, &subscriber);
    let expected = [
        "dur/q1: out of publisher order (G2): 2 after 3",
        "dur/q2: 1 acknowledged messages LOST (G1): 2",
        "dur/q2: QoS 2 messages DUPLICATED at the application (G1): 1×2",
        "dur/w/b: 2 acknowledged messages LOST (G1): 1-2",
        "dur/w/b: delivered numbers never sent: 9",
        "dur/w/b: the publish made after the restart did not arrive: the subscription is gone (G3)",
    ];
    let mut sorted = problems.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{problems:#?}");
}
