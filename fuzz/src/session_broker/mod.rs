//! Connections and their broker, driven step by step: the `session_broker` target.
//!
//! The input builds a [`Broker`] (small limits or the defaults, a node alone or one of a larger
//! cluster) and then chooses up to [`STEPS_MAX`] steps: open a connection (at most
//! [`LIVE_MAX`] at once, each speaking a protocol chosen when it opens), send a well-formed
//! CONNECT with a client id from a small set (so sessions are resumed and taken over), send
//! any valid packet (`keel::codec::arbitrary`, with topics, filters and packet ids mostly from
//! small sets so that publishes match subscriptions and acknowledgements match messages),
//! answer a PUBLISH, PUBREC or PUBREL the connection received, send bytes that do not decode,
//! let time pass (session timers and `Broker::tick`), drop a connection, kick a client as an
//! administrator, hold the log's commits for a few steps and commit a prefix of it, let a
//! connection's task lag behind its outbox, and (in a cluster) complete a read of the commit
//! index or lose and regain the quorum.
//!
//! Everything is wired as `src/server/` wires it: packets are encoded and go through the
//! connection's own `Decoder` (a CONNECT with the first packet, then in its protocol; a packet
//! over `packet_size_max` or a garbled one reaches the session as a decode error); effects go
//! to per-connection outboxes, the acting connection's straight into its session; a session
//! that is closing has its output written and then `on_closed` called; proposals go to a log
//! that applies them in order, both to the broker and to a second replica (node 2).
//!
//! After every step, once effects and commits reach a fixed point, it checks:
//! - `Broker::validate` (the broker's and both states' invariants);
//! - every packet a session sends encodes in its protocol and decodes back to itself;
//! - per connection: the first packet is a CONNACK (or AUTH during enhanced authentication), at
//!   most one CONNACK, nothing after a refusing CONNACK or a DISCONNECT; every PUBLISH fits
//!   the client's Maximum Packet Size and uses topic aliases only up to its Topic Alias
//!   Maximum;
//! - when nothing waits (log caught up, no read pending, no outbox lagging) every live
//!   connection has had every reply it is owed (CONNACK, PUBACK, SUBACK...).
//!
//! At the end every connection is dropped, the log is committed and time runs on past every
//! deadline: no connection may be left, nor any local session, nor a durable session marked
//! connected; and the replica that only applied the log must hold the same state (the same
//! values: see `teardown` for why not the same snapshot bytes).
//!
//! `KEEL_FUZZ_TRACE=1` prints the configuration, every step and every packet sent, to follow a
//! crash input (`cargo fuzz run -s none session_broker crash-...`).

use std::collections::{BTreeMap, VecDeque};

use arbitrary::{Result, Unstructured};
use bytes::BytesMut;
use keel::broker::{Broker, BrokerConfig, Completion, ConnId, Delivery, Effect, Proposal, Ticket};
use keel::codec::{
    Connect, Decoder, Packet, Protocol, PubReply, QoS, QosPid, ReasonCode, PACKET_SIZE_LIMIT,
};
use keel::session::{Session, SessionConfig};
use keel::state::{Incarnation, NodeId, OverflowPolicy, StateConfig};

mod draw;

use draw::{draw_connect, draw_packet, FuzzAuth};

/// Most steps one input runs.
pub const STEPS_MAX: usize = 200;
/// Most connections open at once.
pub const LIVE_MAX: usize = 4;
/// Client ids CONNECTs use: few, so sessions are taken over and resumed; empty, so ids are
/// assigned (MQTT 5) or refused (MQTT 3 persistent sessions).
const CLIENT_IDS: [&str; 4] = ["a", "b", "c", ""];
/// Topics publishes and wills mostly use, and filters subscriptions mostly use: they match.
const TOPICS: [&str; 5] = ["t", "t/a", "t/b", "u", "$SYS/x"];
const FILTERS: [&str; 8] = [
    "t",
    "t/+",
    "#",
    "+/a",
    "u",
    "$share/g/t/#",
    "$share/g/#",
    "$share/h/t/a",
];
/// The enhanced authentication method the authenticator offers.
const METHOD: &str = "x";
/// The unix time the run starts at.
const START_MS: u64 = 1_700_000_000_000;
const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Responses a client keeps owing at most (older ones are forgotten).
const OWED_MAX: usize = 16;

/// Runs one input: builds the broker, runs its steps, checks after each, then tears down.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(mut world) = World::new(&mut u) else {
        return;
    };
    for _ in 0..STEPS_MAX {
        if u.is_empty() {
            break;
        }
        // A step is drawn whole before it runs: input that runs out mid-draw runs nothing.
        let Ok(step) = world.draw(&mut u) else {
            break;
        };
        world.trace(|| format!("step {step:?}"));
        world.apply(step);
        world.settle();
        world.check();
    }
    world.teardown();
}

/// What one step does. Connections are named by their id, drawn from the live ones.
#[derive(Debug)]
enum Step {
    Open(Protocol),
    Send(ConnId, Box<Packet>),
    /// The response the client owes for a PUBLISH, PUBREC or PUBREL it received (by index).
    Respond(ConnId, usize),
    /// Bytes that do not make a valid packet (the session sees the decode error).
    Garbage(ConnId, Vec<u8>),
    Advance {
        ms: u64,
        tick_broker: bool,
    },
    /// The network connection drops.
    Close(ConnId),
    /// An administrator disconnects a client id.
    Kick(&'static str),
    /// The log commits nothing for this many steps.
    Hold(u8),
    /// The log commits its first `n` held proposals now.
    Commit(usize),
    /// The connection's task is not scheduled: its outbox fills until it wakes.
    Stall(ConnId),
    Wake(ConnId),
    /// Cluster: a read of the commit index completes (the freshness gate).
    Read,
    /// Cluster: the node loses (false) or regains (true) its quorum.
    Quorum(bool),
}

/// What the broker sends a connection's task (`src/server/outbox.rs`).
#[derive(Debug)]
enum Outgoing {
    Deliver(Delivery),
    Disconnect(ReasonCode),
    Reply(Ticket, Completion),
}

/// One connection: the session, the shell's decoder and outbox, and what the client saw.
struct Conn {
    session: Session,
    /// The protocol the client speaks (its CONNECTs and everything after).
    protocol: Protocol,
    decoder: Decoder,
    read_buf: BytesMut,
    outbox: Vec<Outgoing>,
    /// The task is not scheduled (see [`Step::Stall`]).
    stalled: bool,
    /// The CONNECT the session took (the first one it saw while awaiting one).
    connect: Option<Connect>,
    /// Whether the session sent a CONNACK, and one that ended the connection (a refusal) or a
    /// DISCONNECT.
    connack_seen: bool,
    ended_by_server: bool,
    /// Responses the client owes for packets it received, oldest first.
    owed: VecDeque<Packet>,
}

struct World {
    broker: Broker,
    /// A second node that applies the same log and serves nobody: its state must match.
    replica: Broker,
    session_config: SessionConfig,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    now_ms: u64,
    /// Proposed, not yet committed, in log order.
    log: Vec<Proposal>,
    /// Steps left during which the log commits nothing.
    hold_steps: u8,
    /// A node of a larger cluster (publishes off the log wait for reads), not alone.
    cluster: bool,
    quorum: bool,
    trace: bool,
}

impl World {
    fn new(u: &mut Unstructured) -> Result<World> {
        let small: bool = u.arbitrary()?;
        let packet_size_max = *u.choose(&[96, 512, PACKET_SIZE_LIMIT as u32])?;
        let session_config = if small {
            SessionConfig {
                packet_size_max,
                topic_alias_max: *u.choose(&[0, 2])?,
                receive_maximum: *u.choose(&[1, 2])?,
                keep_alive_max_secs: *u.choose(&[0, 5])?,
                session_expiry_max_secs: *u.choose(&[10, 3600, u32::MAX])?,
                maximum_qos: *u.choose(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])?,
                retain_available: u.arbitrary()?,
                subscriptions_max: *u.choose(&[1, 3])?,
                topic_levels_max: *u.choose(&[1, 2])?,
                publish_rate_max: *u.choose(&[0, 3])?,
                ..SessionConfig::default()
            }
        } else {
            SessionConfig {
                packet_size_max,
                ..SessionConfig::default()
            }
        };
        let broker_config = BrokerConfig {
            inflight_max: if small { *u.choose(&[1, 2])? } else { 256 },
            receive_maximum: session_config.receive_maximum,
            state: StateConfig {
                queue_max: if small { *u.choose(&[1, 3])? } else { 1000 },
                // At least packet_size_max, as the configuration requires.
                queue_bytes_max: packet_size_max as usize * *u.choose(&[1, 4, 1024])?,
                overflow: *u.choose(&[OverflowPolicy::DropNew, OverflowPolicy::DropOldest])?,
                retained_max: if small {
                    *u.choose(&[1, 2])?
                } else {
                    1_000_000
                },
            },
        };
        let cluster: bool = u.arbitrary()?;
        let mut broker = Broker::with_identity(broker_config, NodeId(1), Incarnation(1));
        broker.set_cluster_role(!cluster, true);
        let mut replica = Broker::with_identity(broker_config, NodeId(2), Incarnation(1));
        replica.set_cluster_role(false, false);
        let world = World {
            broker,
            replica,
            session_config,
            conns: BTreeMap::new(),
            next_conn: ConnId(1),
            now_ms: START_MS,
            log: Vec::new(),
            hold_steps: 0,
            cluster,
            quorum: true,
            trace: std::env::var_os("KEEL_FUZZ_TRACE").is_some(),
        };
        world.trace(|| {
            format!(
                "cluster {cluster}, {broker_config:?}, {:?}",
                world.session_config
            )
        });
        Ok(world)
    }

    fn trace(&self, line: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("{}", line());
        }
    }

    fn draw(&self, u: &mut Unstructured) -> Result<Step> {
        let live: Vec<ConnId> = self.conns.keys().copied().collect();
        if live.is_empty() || (live.len() < LIVE_MAX && u.ratio(1, 8)?) {
            return Ok(Step::Open(*u.choose(&Protocol::ALL)?));
        }
        let conn = *u.choose(&live)?;
        let protocol = self.conns[&conn].protocol;
        // Most connections get a CONNECT first, and a few a second one.
        if self.conns[&conn].session.awaits_connect() && u.ratio(7, 8)? {
            let connect = draw_connect(u, protocol)?;
            return Ok(Step::Send(
                conn,
                Box::new(Packet::Connect(Box::new(connect))),
            ));
        }
        Ok(match u.int_in_range(0..=15)? {
            0 if u.ratio(1, 4)? => {
                let connect = draw_connect(u, protocol)?;
                Step::Send(conn, Box::new(Packet::Connect(Box::new(connect))))
            }
            0..=6 => Step::Send(conn, Box::new(draw_packet(u, protocol)?)),
            7..=8 => Step::Respond(conn, u.int_in_range(0..=OWED_MAX - 1)?),
            9 => match u.int_in_range(0..=9)? {
                0 => Step::Garbage(
                    conn,
                    u.arbitrary::<Vec<u8>>()?.into_iter().take(8).collect(),
                ),
                1 => Step::Close(conn),
                2 => Step::Kick(u.choose(&CLIENT_IDS)?),
                3 => Step::Stall(conn),
                4 => Step::Wake(conn),
                5 if self.cluster => Step::Quorum(!self.quorum),
                _ => Step::Open(*u.choose(&Protocol::ALL)?),
            },
            10..=11 => Step::Advance {
                ms: *u.choose(&[1, 500, 1_000, 5_000, 11_000, 60_000, 3_600_000])?,
                tick_broker: u.ratio(7, 8)?,
            },
            12 => Step::Hold(u.int_in_range(1..=6)?),
            13 => Step::Commit(u.int_in_range(0..=self.log.len())?),
            14 if self.cluster => Step::Read,
            _ => Step::Send(conn, Box::new(draw_packet(u, protocol)?)),
        })
    }

    fn apply(&mut self, step: Step) {
        self.hold_steps = self.hold_steps.saturating_sub(1);
        match step {
            Step::Open(protocol) => {
                if self.conns.len() >= LIVE_MAX {
                    return;
                }
                let conn = self.next_conn;
                self.next_conn = ConnId(conn.0 + 1);
                let session = Session::new(
                    conn,
                    self.session_config.clone(),
                    self.now_ms,
                    CONNECT_TIMEOUT_MS,
                    7,
                );
                let decoder = Decoder::new(self.session_config.packet_size_max as usize);
                self.conns
                    .insert(conn, Conn::new(session, protocol, decoder));
            }
            Step::Send(conn, packet) => {
                let protocol = self.conns[&conn].protocol;
                let mut bytes = BytesMut::new();
                // A valid packet of the client's protocol (a CONNECT in its own).
                packet
                    .encode(protocol, &mut bytes)
                    .unwrap_or_else(|e| panic!("harness: cannot encode {packet:?}: {e}"));
                self.receive(conn, &bytes);
            }
            Step::Respond(conn, which) => {
                let c = self.conns.get_mut(&conn).expect("drawn from the live ones");
                if c.owed.is_empty() {
                    return;
                }
                let packet = c.owed.remove(which % c.owed.len()).expect("in range");
                let mut bytes = BytesMut::new();
                packet
                    .encode(c.protocol, &mut bytes)
                    .expect("a response encodes");
                self.receive(conn, &bytes);
            }
            Step::Garbage(conn, bytes) => self.receive(conn, &bytes),
            Step::Advance { ms, tick_broker } => {
                self.now_ms += ms;
                let now_ms = self.now_ms;
                let conns: Vec<ConnId> = self.conns.keys().copied().collect();
                for conn in conns {
                    let c = self.conns.get_mut(&conn).expect("live");
                    c.session.on_timer(&mut self.broker, now_ms);
                    self.dispatch(Some(conn));
                }
                if tick_broker {
                    self.broker.tick(now_ms);
                }
            }
            Step::Close(conn) => self.close(conn),
            Step::Kick(client_id) => {
                self.broker.kick(client_id);
            }
            Step::Hold(steps) => self.hold_steps = steps,
            Step::Commit(n) => {
                if self.quorum {
                    let n = n.min(self.log.len());
                    let committed: Vec<Proposal> = self.log.drain(..n).collect();
                    self.commit(committed);
                }
            }
            Step::Stall(conn) => self.conns.get_mut(&conn).expect("live").stalled = true,
            Step::Wake(conn) => self.conns.get_mut(&conn).expect("live").stalled = false,
            Step::Read => {
                // Every commit is applied at once here, so the read is done when it starts;
                // without a quorum no read completes.
                if self.quorum && self.broker.wants_read() {
                    let round = self.broker.start_read();
                    self.broker.read_done(round);
                }
            }
            Step::Quorum(reached) => {
                self.quorum = reached;
                self.broker.set_quorum(reached);
            }
        }
        self.dispatch(None);
    }

    /// Bytes from the client, handled as `handle_input` in `src/server/connection.rs` does.
    fn receive(&mut self, conn: ConnId, bytes: &[u8]) {
        let c = self.conns.get_mut(&conn).expect("live");
        c.read_buf.extend_from_slice(bytes);
        let now_ms = self.now_ms;
        loop {
            let c = self.conns.get_mut(&conn).expect("live");
            if c.session.is_closing() {
                return;
            }
            let decoded = c.decoder.decode(&mut c.read_buf);
            let declared = c.decoder.protocol();
            if let Ok(Some(Packet::Connect(connect))) = &decoded {
                if c.session.awaits_connect() {
                    c.connect = Some((**connect).clone());
                }
            }
            match decoded {
                Ok(Some(packet)) => {
                    self.trace(|| format!("  conn {conn} <- {packet:?}"));
                    let c = self.conns.get_mut(&conn).expect("live");
                    c.session
                        .handle(packet, &mut self.broker, &FuzzAuth, now_ms);
                    self.dispatch(Some(conn));
                }
                Ok(None) => return,
                Err(error) => {
                    self.trace(|| format!("  conn {conn} <- bad bytes: {error}"));
                    let c = self.conns.get_mut(&conn).expect("live");
                    c.session
                        .on_decode_error(&error, declared, &mut self.broker, now_ms);
                    self.dispatch(Some(conn));
                    return;
                }
            }
        }
    }

    /// The connection is gone: the session hears it and its outbox goes.
    fn close(&mut self, conn: ConnId) {
        if let Some(mut c) = self.conns.remove(&conn) {
            c.session.on_closed(&mut self.broker, self.now_ms);
            self.trace(|| format!("  conn {conn} closed"));
        }
    }

    /// Routes the broker's effects (`Core::dispatch` in `src/server/hub.rs`): to the acting
    /// connection's session at once, behind what its outbox holds; to the others' outboxes.
    fn dispatch(&mut self, own: Option<ConnId>) {
        loop {
            let proposals = self.broker.take_proposals();
            self.log.extend(proposals);
            let effects = self.broker.take_effects();
            if effects.is_empty() {
                return;
            }
            for effect in effects {
                let (conn, outgoing) = match effect {
                    // A node alone has nowhere to forward to, and the replica serves nobody.
                    Effect::Forward { .. } => continue,
                    Effect::Deliver { conn, delivery } => (conn, Outgoing::Deliver(delivery)),
                    Effect::Disconnect { conn, reason } => (conn, Outgoing::Disconnect(reason)),
                    Effect::Reply {
                        conn,
                        ticket,
                        completion,
                    } => (conn, Outgoing::Reply(ticket, completion)),
                };
                let Some(c) = self.conns.get_mut(&conn) else {
                    continue;
                };
                c.outbox.push(outgoing);
                if own == Some(conn) {
                    self.drain_outbox(conn);
                }
            }
        }
    }

    /// The connection's task takes what its outbox holds.
    fn drain_outbox(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        for item in std::mem::take(&mut c.outbox) {
            match item {
                Outgoing::Deliver(delivery) => {
                    c.session.deliver(delivery, &mut self.broker, self.now_ms)
                }
                Outgoing::Disconnect(reason) => c.session.kick(reason),
                Outgoing::Reply(ticket, completion) => c.session.on_reply(ticket, completion),
            }
        }
    }

    /// Applies committed proposals on both nodes.
    fn commit(&mut self, proposals: Vec<Proposal>) {
        for proposal in proposals {
            self.replica.apply_committed(proposal.clone());
            self.broker.apply_committed(proposal);
        }
        // The replica serves no connection: what it would tell them goes nowhere.
        self.replica.take_effects();
        self.replica.take_proposals();
    }

    fn committing(&self) -> bool {
        self.quorum && self.hold_steps == 0
    }

    /// Runs everything that follows from the step until nothing changes: commits, outboxes
    /// of tasks that are scheduled, output written, closing connections closed.
    fn settle(&mut self) {
        loop {
            self.dispatch(None);
            let mut busy = false;
            if self.committing() && !self.log.is_empty() {
                let log = std::mem::take(&mut self.log);
                self.commit(log);
                busy = true;
            }
            let awake: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, c)| !c.stalled && !c.outbox.is_empty())
                .map(|(conn, _)| *conn)
                .collect();
            for conn in awake {
                self.drain_outbox(conn);
                self.dispatch(Some(conn));
                busy = true;
            }
            let conns: Vec<ConnId> = self.conns.keys().copied().collect();
            for conn in conns {
                self.write_output(conn);
                if self.conns[&conn].session.is_closing() {
                    self.close(conn);
                    busy = true;
                }
            }
            if !busy {
                self.dispatch(None);
                if self.log.is_empty() || !self.committing() {
                    return;
                }
            }
        }
    }

    /// Takes the session's output and checks each packet as the client would see it.
    fn write_output(&mut self, conn: ConnId) {
        let c = self.conns.get_mut(&conn).expect("live");
        let packets: Vec<Packet> = c.session.output().collect();
        let protocol = c.session.protocol();
        for packet in packets {
            if self.trace {
                eprintln!("  conn {conn} -> {packet:?}");
            }
            c.check_sent(conn, &packet, protocol);
        }
    }

    /// The invariants that hold after every step.
    fn check(&mut self) {
        self.broker.validate();
        self.replica.validate();
        let waiting = !self.log.is_empty()
            || !self.quorum
            || self.broker.wants_read()
            || self.conns.values().any(|c| !c.outbox.is_empty());
        if waiting {
            return;
        }
        for (conn, c) in &self.conns {
            assert_eq!(
                c.session.pending_replies(),
                0,
                "conn {conn}: replies still owed with nothing left to wait for"
            );
        }
    }

    /// Every connection drops, everything commits and time runs past every deadline.
    fn teardown(&mut self) {
        self.trace(|| "teardown".to_owned());
        self.hold_steps = 0;
        if !self.quorum {
            self.quorum = true;
            self.broker.set_quorum(true);
        }
        for c in self.conns.values_mut() {
            c.stalled = false;
        }
        self.settle();
        while self.broker.wants_read() {
            let round = self.broker.start_read();
            self.broker.read_done(round);
            self.settle();
        }
        self.check();
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.close(conn);
            self.settle();
        }
        // Wills and expiries due within a day (longer ones stay: u32::MAX never expires).
        for _ in 0..2 {
            self.now_ms += 24 * 3600 * 1000;
            self.broker.tick(self.now_ms);
            self.settle();
        }
        self.check();
        assert_eq!(self.broker.connection_count(), 0, "connections left");
        assert_eq!(
            self.broker.local_state().sessions().count(),
            0,
            "local sessions left without connections"
        );
        if let Some(s) = self.broker.state().sessions().find(|s| s.connected) {
            panic!("{} marked connected with no connection", s.client_id);
        }
        // Compared as values, not as snapshots: a snapshot writes a message once per `Arc`,
        // and which entries share one differs between the node that proposed a message (a
        // shared message handed over from a local session is the `Arc` its local tier holds,
        // perhaps also retained) and a node that only applied it.
        let (state, replica) = (self.broker.state(), self.replica.state());
        let (state, replica) = (format!("{state:#?}"), format!("{replica:#?}"));
        assert!(
            state == replica,
            "the replica that applied the same log differs:\n{state}\n{replica}"
        );
    }
}

impl Conn {
    fn new(session: Session, protocol: Protocol, decoder: Decoder) -> Conn {
        Conn {
            session,
            protocol,
            decoder,
            read_buf: BytesMut::new(),
            outbox: Vec::new(),
            stalled: false,
            connect: None,
            connack_seen: false,
            ended_by_server: false,
            owed: VecDeque::new(),
        }
    }

    /// Checks one packet the session sent, and notes the response the client owes for it.
    fn check_sent(&mut self, conn: ConnId, packet: &Packet, protocol: Protocol) {
        let mut bytes = BytesMut::new();
        packet.encode(protocol, &mut bytes).unwrap_or_else(|e| {
            panic!("conn {conn}: sent a packet that does not encode: {e}: {packet:?}")
        });
        // What the client reads: the packet as the protocol has it (an MQTT 3 PUBCOMP has no
        // reason code, so compare the bytes, not the structs).
        let wire = bytes.clone();
        let mut decoder = Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT);
        let read = match decoder.decode(&mut bytes) {
            Ok(Some(read)) if bytes.is_empty() => read,
            other => panic!("conn {conn}: sent {packet:?}, which reads back as {other:?}"),
        };
        let mut again = BytesMut::new();
        read.encode(protocol, &mut again)
            .expect("a decoded packet encodes");
        assert_eq!(
            again, wire,
            "conn {conn}: {packet:?} reads back as {read:?}"
        );
        assert!(
            !self.ended_by_server,
            "conn {conn}: sent {packet:?} after ending the connection"
        );
        match packet {
            Packet::ConnAck(ack) => {
                assert!(!self.connack_seen, "conn {conn}: a second CONNACK");
                self.connack_seen = true;
                self.ended_by_server = ack.reason_code.is_error();
            }
            Packet::Auth(_) => {}
            _ if self.connack_seen => {}
            _ => panic!("conn {conn}: sent {packet:?} before any CONNACK [MQTT-3.2.0-1]"),
        }
        let client_max = self.connect.as_ref().map(|c| &c.properties);
        match packet {
            Packet::Disconnect(_) => self.ended_by_server = true,
            Packet::Publish(publish) => {
                if let Some(max) = client_max.and_then(|p| p.maximum_packet_size) {
                    let len = packet.encoded_len(protocol).expect("encodes");
                    assert!(
                        len <= max.get() as usize,
                        "conn {conn}: a {len}-byte PUBLISH over the client's maximum {max}"
                    );
                }
                if let Some(alias) = publish.properties.topic_alias {
                    let alias_max = client_max.and_then(|p| p.topic_alias_maximum).unwrap_or(0);
                    assert!(
                        alias.get() <= alias_max,
                        "conn {conn}: topic alias {alias} over the client's maximum {alias_max}"
                    );
                }
                match publish.qos_pid {
                    QosPid::AtMostOnce => {}
                    QosPid::AtLeastOnce(id) => self.owe(Packet::PubAck(PubReply::new(id))),
                    QosPid::ExactlyOnce(id) => self.owe(Packet::PubRec(PubReply::new(id))),
                }
            }
            Packet::PubRec(rec) if !rec.reason_code.is_error() => {
                self.owe(Packet::PubRel(PubReply::new(rec.packet_id)))
            }
            Packet::PubRel(rel) => self.owe(Packet::PubComp(PubReply::new(rel.packet_id))),
            _ => {}
        }
    }

    fn owe(&mut self, packet: Packet) {
        if self.owed.len() == OWED_MAX {
            self.owed.pop_front();
        }
        self.owed.push_back(packet);
    }
}
