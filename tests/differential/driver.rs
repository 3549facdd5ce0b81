//! Runs one scenario against one broker, one step at a time: each step waits for its own
//! acknowledgement, then every open connection is pinged and read until the broker has been
//! quiet for [`SETTLE_QUIET`], so that each delivery is put down to the step that caused it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use keel::codec::{Packet, PubReply, ReasonCode};
use tokio::sync::mpsc;
use tokio::time::{timeout, timeout_at, Instant};

use super::link::{Arrival, ConnId, Event, Link};
use super::observation::{ClientEnd, ConnRecord, Delivery, Observation, Outcome};
use super::packets;
use super::scenario::{ConnectSpec, Expiry, Scenario, Step, Subscription};
use crate::common::EVENT_TIMEOUT;

/// How long the broker must send nothing, on any connection of the scenario, before a step
/// counts as finished. Loopback deliveries take well under a millisecond; the margin is for
/// a loaded 2-core machine running many scenarios at once.
pub const SETTLE_QUIET: Duration = Duration::from_millis(30);

/// The longest a step's settling may take (a broker that never goes quiet).
const SETTLE_MAX: Duration = Duration::from_secs(5);

/// Runs `scenario` against the broker at `addr`.
pub async fn run(addr: SocketAddr, scenario: &Scenario) -> Observation {
    let mut driver = Driver::new(addr, scenario);
    for (n, step) in scenario.steps.iter().enumerate() {
        driver.step = n;
        let outcome = driver.execute(step).await;
        driver.observation.outcomes.push(outcome);
        driver.settle().await;
    }
    driver.observation
}

/// A client id of the scenario.
#[derive(Default)]
struct Client {
    /// The connection its steps use, once the broker accepted it.
    current: Option<ConnId>,
    /// CONNECTs so far: the number of the next connection.
    connects: usize,
    /// The last packet id used on the current connection.
    last_packet_id: u16,
}

struct Driver<'a> {
    addr: SocketAddr,
    scenario: &'a Scenario,
    events_tx: mpsc::UnboundedSender<Arrival>,
    events_rx: mpsc::UnboundedReceiver<Arrival>,
    /// Connections the broker has not closed yet, old ones after a takeover included.
    links: BTreeMap<ConnId, Link>,
    clients: Vec<Client>,
    observation: Observation,
    /// The step being run: what arrives now belongs to it.
    step: usize,
}

impl<'a> Driver<'a> {
    fn new(addr: SocketAddr, scenario: &'a Scenario) -> Driver<'a> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Driver {
            addr,
            scenario,
            events_tx,
            events_rx,
            links: BTreeMap::new(),
            clients: scenario
                .client_ids
                .iter()
                .map(|_| Client::default())
                .collect(),
            observation: Observation::default(),
            step: 0,
        }
    }

    async fn execute(&mut self, step: &Step) -> Outcome {
        if let Step::Connect { client, spec } = step {
            return self.connect(*client, spec).await;
        }
        let Some(conn) = self.clients[step.client()].current else {
            return Outcome::NotConnected;
        };
        match step {
            Step::Subscribe { subscriptions, .. } => self.subscribe(conn, subscriptions).await,
            Step::Unsubscribe { filters, .. } => self.unsubscribe(conn, filters).await,
            Step::Publish {
                topic,
                qos,
                retain,
                payload,
                ..
            } => self.publish(conn, topic, *qos, *retain, payload).await,
            Step::Disconnect { expiry, .. } => self.disconnect(conn, *expiry).await,
            Step::Drop { .. } => self.drop_connection(conn).await,
            Step::Connect { .. } => unreachable!("handled above"),
        }
    }

    async fn connect(&mut self, client: usize, spec: &ConnectSpec) -> Outcome {
        let state = &mut self.clients[client];
        let conn = ConnId {
            client,
            number: state.connects,
        };
        state.connects += 1;
        self.observation
            .connections
            .insert(conn, ConnRecord::new(spec.version));
        let protocol = packets::protocol(spec.version);
        let link = match Link::open(self.addr, protocol, conn, self.events_tx.clone()).await {
            Ok(link) => link,
            Err(_) => return Outcome::NoConnAck,
        };
        let connect = packets::connect(spec, &self.scenario.client_ids[client]);
        link.send(&Packet::Connect(Box::new(connect))).await;
        self.links.insert(conn, link);
        let answer = self
            .answer(conn, |packet| match packet {
                Packet::ConnAck(connack) => Some((connack.session_present, connack.reason_code)),
                _ => None,
            })
            .await;
        match answer {
            Ok((session_present, code)) => {
                if code == ReasonCode::Success {
                    let state = &mut self.clients[client];
                    state.current = Some(conn);
                    state.last_packet_id = 0;
                }
                Outcome::ConnAck {
                    session_present,
                    code: code.as_u8(),
                }
            }
            Err(Outcome::ClosedInstead) => Outcome::NoConnAck,
            Err(other) => other,
        }
    }

    async fn subscribe(&mut self, conn: ConnId, subscriptions: &[Subscription]) -> Outcome {
        let id = self.next_packet_id(conn);
        let filters: Vec<(String, Subscription)> = subscriptions
            .iter()
            .map(|s| (self.scenario.wire(s.filter), *s))
            .collect();
        self.send(conn, Packet::Subscribe(packets::subscribe(id, &filters)))
            .await;
        let answer = self
            .answer(conn, |packet| match packet {
                Packet::SubAck(ack) if ack.packet_id == id => Some(codes(&ack.reason_codes)),
                _ => None,
            })
            .await;
        answer.map_or_else(|failed| failed, Outcome::SubAck)
    }

    async fn unsubscribe(&mut self, conn: ConnId, filters: &[&str]) -> Outcome {
        let id = self.next_packet_id(conn);
        let wire: Vec<String> = filters.iter().map(|f| self.scenario.wire(f)).collect();
        self.send(conn, Packet::Unsubscribe(packets::unsubscribe(id, &wire)))
            .await;
        let answer = self
            .answer(conn, |packet| match packet {
                Packet::UnsubAck(ack) if ack.packet_id == id => Some(codes(&ack.reason_codes)),
                _ => None,
            })
            .await;
        answer.map_or_else(|failed| failed, Outcome::UnsubAck)
    }

    /// QoS 0: sent; QoS 1: PUBACK; QoS 2: PUBREC, PUBREL, PUBCOMP.
    async fn publish(
        &mut self,
        conn: ConnId,
        topic: &str,
        qos: u8,
        retain: bool,
        payload: &str,
    ) -> Outcome {
        let id = self.next_packet_id(conn);
        let wire = self.scenario.wire(topic);
        let publish = packets::publish(&wire, qos, retain, payload, id);
        self.send(conn, Packet::Publish(publish)).await;
        let puback = |packet: &Packet| match packet {
            Packet::PubAck(r) if r.packet_id == id => Some(r.reason_code.as_u8()),
            _ => None,
        };
        match qos {
            0 => Outcome::Done,
            1 => match self.answer(conn, puback).await {
                Ok(code) => Outcome::Published(vec![code]),
                Err(failed) => failed,
            },
            _ => self.publish_exactly_once(conn, id).await,
        }
    }

    async fn publish_exactly_once(&mut self, conn: ConnId, id: keel::codec::PacketId) -> Outcome {
        let pubrec = self
            .answer(conn, |packet| match packet {
                Packet::PubRec(r) if r.packet_id == id => Some(r.reason_code.as_u8()),
                _ => None,
            })
            .await;
        let rec_code = match pubrec {
            Ok(code) => code,
            Err(failed) => return failed,
        };
        // MQTT 5 §4.3.3: a PUBREC with a code of 0x80 or more ends the exchange, no PUBREL.
        if rec_code >= 0x80 {
            return Outcome::Published(vec![rec_code]);
        }
        self.send(conn, Packet::PubRel(PubReply::new(id))).await;
        let pubcomp = self
            .answer(conn, |packet| match packet {
                Packet::PubComp(r) if r.packet_id == id => Some(r.reason_code.as_u8()),
                _ => None,
            })
            .await;
        match pubcomp {
            Ok(comp_code) => Outcome::Published(vec![rec_code, comp_code]),
            Err(failed) => failed,
        }
    }

    /// Sends DISCONNECT, half-closes, and waits until the broker has closed too, recording
    /// what it says first (a Protocol Error for a forbidden expiry).
    async fn disconnect(&mut self, conn: ConnId, expiry: Expiry) -> Outcome {
        self.send(conn, Packet::Disconnect(packets::disconnect(expiry)))
            .await;
        if let Some(link) = self.links.get(&conn) {
            link.finish_writing().await;
        }
        self.end_by_client(conn, ClientEnd::Disconnect);
        if self.is_closed(conn) {
            return Outcome::Done;
        }
        match self.answer(conn, |_| None::<()>).await {
            Err(Outcome::ClosedInstead) => Outcome::Done,
            Err(failed) => failed,
            Ok(()) => unreachable!("no packet is accepted"),
        }
    }

    async fn drop_connection(&mut self, conn: ConnId) -> Outcome {
        if let Some(link) = self.links.remove(&conn) {
            link.drop_now().await;
        }
        self.end_by_client(conn, ClientEnd::Drop);
        Outcome::Done
    }

    fn end_by_client(&mut self, conn: ConnId, how: ClientEnd) {
        if let Some(record) = self.observation.connections.get_mut(&conn) {
            record.client_end = Some((self.step, how));
        }
        self.forget_if_current(conn);
    }

    fn forget_if_current(&mut self, conn: ConnId) {
        let client = &mut self.clients[conn.client];
        if client.current == Some(conn) {
            client.current = None;
        }
    }

    fn is_closed(&self, conn: ConnId) -> bool {
        self.observation
            .connections
            .get(&conn)
            .is_some_and(|record| record.closed_at.is_some())
    }

    fn next_packet_id(&mut self, conn: ConnId) -> keel::codec::PacketId {
        let client = &mut self.clients[conn.client];
        client.last_packet_id = client.last_packet_id.wrapping_add(1);
        packets::packet_id(client.last_packet_id)
    }

    async fn send(&self, conn: ConnId, packet: Packet) {
        if let Some(link) = self.links.get(&conn) {
            link.send(&packet).await;
        }
    }

    /// Reads events until `conn` sends a packet that `accept` takes, recording everything
    /// else. Fails with [`Outcome::ClosedInstead`] when `conn` closes first, and with
    /// [`Outcome::NoAnswer`] after [`EVENT_TIMEOUT`].
    async fn answer<T>(
        &mut self,
        conn: ConnId,
        accept: impl Fn(&Packet) -> Option<T>,
    ) -> Result<T, Outcome> {
        if self.is_closed(conn) {
            return Err(Outcome::ClosedInstead);
        }
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let arrival = match timeout_at(deadline, self.events_rx.recv()).await {
                Ok(Some(arrival)) => arrival,
                Ok(None) | Err(_) => return Err(Outcome::NoAnswer),
            };
            if arrival.conn == conn {
                if let Event::Packet(packet) = &arrival.event {
                    if let Some(answer) = accept(packet.as_ref()) {
                        return Ok(answer);
                    }
                }
            }
            self.record(arrival);
            if self.is_closed(conn) {
                return Err(Outcome::ClosedInstead);
            }
        }
    }

    /// Pings every open connection and waits for the answers, then records what arrives
    /// until nothing has for [`SETTLE_QUIET`].
    async fn settle(&mut self) {
        self.ping_all().await;
        let deadline = Instant::now() + SETTLE_MAX;
        while Instant::now() < deadline {
            match timeout(SETTLE_QUIET, self.events_rx.recv()).await {
                Ok(Some(arrival)) => self.record(arrival),
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// PINGREQ on every open connection, then waits for every PINGRESP (or close). Besides
    /// being a barrier, it gives a broker that writes queued messages only when the client
    /// sends something (Mosquitto 2.0.11 after a SUBSCRIBE with retained messages) the
    /// occasion to write them within the step.
    async fn ping_all(&mut self) {
        let mut waiting: BTreeSet<ConnId> = self.links.keys().copied().collect();
        for conn in &waiting {
            self.send(*conn, Packet::PingReq).await;
        }
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while !waiting.is_empty() {
            // A connection that never answers shows in the comparison as what it missed.
            let Ok(Some(arrival)) = timeout_at(deadline, self.events_rx.recv()).await else {
                return;
            };
            if matches!(&arrival.event, Event::Packet(packet) if **packet == Packet::PingResp) {
                waiting.remove(&arrival.conn);
                continue;
            }
            let conn = arrival.conn;
            self.record(arrival);
            if self.is_closed(conn) {
                waiting.remove(&conn);
            }
        }
    }

    /// Puts an event down to its connection and the current step.
    fn record(&mut self, arrival: Arrival) {
        let step = self.step;
        let prefix = format!("{}/", self.scenario.root);
        let Some(record) = self.observation.connections.get_mut(&arrival.conn) else {
            return;
        };
        let closed = match arrival.event {
            Event::Packet(packet) => {
                record_packet(record, step, &prefix, *packet);
                false
            }
            Event::Closed => true,
            Event::Undecodable(error) => {
                record.garbage = Some(error);
                true
            }
        };
        if closed {
            record.closed_at.get_or_insert(step);
            self.links.remove(&arrival.conn);
            self.forget_if_current(arrival.conn);
        }
    }
}

/// Records an application message or the broker's DISCONNECT; `prefix` is the scenario's
/// root, taken off topics.
fn record_packet(record: &mut ConnRecord, step: usize, prefix: &str, packet: Packet) {
    match packet {
        Packet::Publish(publish) => {
            let topic = publish.topic.as_str();
            record.deliveries.push(Delivery {
                step,
                // A topic of another scenario would be a routing bug: keep it whole.
                topic: topic.strip_prefix(prefix).unwrap_or(topic).to_string(),
                payload: String::from_utf8_lossy(&publish.payload).into_owned(),
                qos: publish.qos() as u8,
                retain: publish.retain,
                dup: publish.dup,
            });
        }
        Packet::Disconnect(disconnect) => {
            let code = disconnect.reason_code.as_u8();
            record.server_disconnect.get_or_insert((step, code));
        }
        // Late answers to steps that gave up waiting, PINGRESP, PUBREL (answered by the
        // link): nothing the comparison looks at.
        _ => {}
    }
}

fn codes(reason_codes: &[ReasonCode]) -> Vec<u8> {
    reason_codes.iter().map(|code| code.as_u8()).collect()
}
