//! The workload clients: programs that speak MQTT to the nodes and record what their
//! application sees in the [`History`]. The simulator runs them as simulated hosts on its
//! network; `jepsen/` runs the same programs as tasks on real sockets.
//!
//! Each client keeps what a real application would write to its own disk ([`Disk`]: message
//! counter, the publish in flight, QoS 2 packet ids awaiting PUBREL) outside its program, so a
//! client machine crash and restart (in the simulator) continues from it. The receiver side of QoS 2 follows the
//! spec (method B of [MQTT-4.3.3]): a message is handed to the application on the first PUBLISH
//! of a packet id and the id is remembered until PUBREL, so a resend is not delivered again.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;

use super::client::{granted_qos, Conn, ConnectSpec, Lost, RunClock, SESSION_EXPIRY_SECS};
use super::history::{ConnRef, Event, History, MsgId};
use keel::codec::*;
use keel::net::{Net, Rng};

/// How long a publisher waits for an acknowledgement before it gives the connection up.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a retained reader listens after its SUBACK.
const READ_WINDOW: Duration = Duration::from_secs(1);

/// The phase of the run, set by the harness and read by every client.
#[derive(Clone, Default)]
pub struct Phase(Arc<AtomicU8>);

impl Phase {
    const SAFETY: u8 = 0;
    const LIVENESS: u8 = 1;
    const FINISHED: u8 = 2;

    pub fn start_liveness(&self) {
        self.0.store(Self::LIVENESS, Ordering::SeqCst);
    }

    pub fn finish(&self) {
        self.0.store(Self::FINISHED, Ordering::SeqCst);
    }

    /// Faults are on: clients misbehave on purpose too.
    fn is_safety(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::SAFETY
    }

    fn is_finished(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::FINISHED
    }
}

/// What a client application keeps across its own crashes.
#[derive(Debug, Default)]
pub struct Disk {
    /// Connections opened so far (names them in the history).
    conns: u32,
    /// Runs of the client program (seeds each run's choices).
    runs: u64,
    /// Last message number used.
    seq: u64,
    next_packet_id: u16,
    /// The publish awaiting its acknowledgement or completion.
    inflight: Option<InFlight>,
    /// QoS 2 packet ids delivered to the application and awaiting PUBREL.
    qos2_pending: BTreeSet<PacketId>,
    /// The current session's subscription was acknowledged (SUBACK).
    subscribed: bool,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    packet_id: PacketId,
    msg: MsgId,
    /// PUBREC came: the next step is PUBREL, never the PUBLISH again.
    released: bool,
}

pub type SharedDisk = Arc<Mutex<Disk>>;

fn lock(disk: &SharedDisk) -> MutexGuard<'_, Disk> {
    disk.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a client's connections ask for their sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStyle {
    /// Every connection resumes one lasting session (MQTT 3.1.1 clean session 0; MQTT 5
    /// Clean Start 0 with a Session Expiry Interval longer than any run).
    Durable,
    /// Every connection starts a session that ends with it (clean session 1; Clean Start 1
    /// with no expiry).
    Clean,
    /// Each connection draws its own, as real clients do across reconnects (a library that
    /// sets the expiry on its first connect only, an application upgraded from 3.1.1 to 5):
    /// MQTT 3.1.1 or 5, Clean Start 0 or 1, the Session Expiry Interval absent, 0, brief (a
    /// few seconds) or lasting; a DISCONNECT may set another expiry.
    Churn,
}

/// Brief session expiries a churning client asks for: short enough to pass within a run.
const BRIEF_EXPIRY_SECS: std::ops::RangeInclusive<u32> = 1..=3;

/// Wakes publishers that are pausing between messages: a subscriber sends it right after a
/// SUBSCRIBE, so that publishes from others follow subscriptions at once (a responder
/// subscribes, a requester publishes).
#[derive(Clone, Default)]
pub struct Nudge(Arc<tokio::sync::Notify>);

impl Nudge {
    fn send(&self) {
        self.0.notify_waiters();
    }

    /// Sleeps `pause`, or less if a subscriber nudges meanwhile.
    async fn pause(&self, pause: Duration) {
        tokio::select! {
            biased;
            _ = self.0.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// What every client program gets.
#[derive(Clone)]
pub struct ClientCtx<N> {
    /// How it reaches the nodes.
    pub net: N,
    pub clock: RunClock,
    pub history: History,
    pub phase: Phase,
    /// The nodes' host names or addresses (connected to on the MQTT port).
    pub nodes: Vec<String>,
    /// Seed of this client; each run of its program mixes in the run number.
    pub seed: u64,
    /// Shared by every client of a run (see [`Nudge`]).
    pub nudge: Nudge,
}

impl<N: Net> ClientCtx<N> {
    fn record(&self, event: Event) {
        self.history.record(self.clock.now_ms(), event);
    }
}

/// Who a client is, as its connections present it.
#[derive(Clone, Copy)]
struct Identity<'a> {
    name: &'a str,
    protocol: Protocol,
    session: SessionStyle,
}

/// Chance, per connection a client opens while faults are on, that it first sends a CONNECT
/// on another connection and gives that one up before its CONNACK (see [`open`]).
const RACING_CONNECT_CHANCE: f64 = 0.05;

/// Opens the next connection of a client, to a node chosen at random.
///
/// Now and then (during the safety phase) the client is impatient, as a client library with
/// a short connect timeout is: it sends a CONNECT, does not wait for the CONNACK and connects
/// again with the same client id. Whichever CONNECT the broker takes last owns the session,
/// so the first may be taken over before its CONNACK; it must then be refused with a code
/// CONNACK allows (`jepsen/` found a CONNACK carrying `0x8E`, a DISCONNECT-only code, after a
/// paused node took two CONNECTs of one client in the reverse order). The abandoned
/// connection is read until the broker closes it, so G7 judges what it gets.
async fn open<N: Net>(
    ctx: &ClientCtx<N>,
    disk: &SharedDisk,
    rng: &mut Rng,
    me: Identity<'_>,
) -> Result<(Conn, bool), Lost> {
    if ctx.phase.is_safety() && rng.chance(RACING_CONNECT_CHANCE) {
        let spec = racing_connect_spec(ctx, rng, me);
        let at = next_conn(disk, me);
        if let Ok(abandoned) = Conn::start(&ctx.net, &spec, at, &ctx.history, &ctx.clock).await {
            watch_abandoned(abandoned);
        }
    }
    let spec = connect_spec(ctx, rng, me);
    let at = next_conn(disk, me);
    Conn::open(&ctx.net, &spec, at, &ctx.history, &ctx.clock).await
}

/// Names the client's next connection.
fn next_conn(disk: &SharedDisk, me: Identity<'_>) -> ConnRef {
    let mut d = lock(disk);
    d.conns += 1;
    ConnRef {
        client: me.name.to_string(),
        conn: d.conns,
    }
}

/// A CONNECT of this client to a node chosen at random.
fn connect_spec<N: Net>(ctx: &ClientCtx<N>, rng: &mut Rng, me: Identity<'_>) -> ConnectSpec {
    let host = ctx.nodes[rng.range(0..ctx.nodes.len())].clone();
    let (protocol, clean_start, expiry_secs) = match me.session {
        // A durable client always resumes; its first connection finds no session.
        SessionStyle::Durable => (me.protocol, false, Some(SESSION_EXPIRY_SECS)),
        SessionStyle::Clean => (me.protocol, true, None),
        SessionStyle::Churn => {
            let protocol = if rng.chance(0.5) {
                Protocol::V5
            } else {
                Protocol::V3_1_1
            };
            let expiry_secs = match rng.range(0..4u32) {
                0 => None,
                1 => Some(0),
                2 => Some(rng.range(BRIEF_EXPIRY_SECS)),
                _ => Some(SESSION_EXPIRY_SECS),
            };
            (protocol, rng.chance(0.3), expiry_secs)
        }
    };
    ConnectSpec {
        host,
        client_id: me.name.to_string(),
        protocol,
        clean_start,
        expiry_secs,
    }
}

/// The CONNECT an impatient client gives up on: for a churning client, one that can resume
/// or create its session but never end it (Clean Start 0, a lasting expiry), since a CONNECT
/// without an answer may take effect at any later time, and one that could end the session
/// would leave nothing certain about it (see `checkers::sessions`).
fn racing_connect_spec<N: Net>(ctx: &ClientCtx<N>, rng: &mut Rng, me: Identity<'_>) -> ConnectSpec {
    let spec = connect_spec(ctx, rng, me);
    match me.session {
        SessionStyle::Churn => ConnectSpec {
            clean_start: false,
            expiry_secs: Some(SESSION_EXPIRY_SECS),
            ..spec
        },
        _ => spec,
    }
}

/// The Session Expiry Interval a DISCONNECT carries: for a churning client's MQTT 5
/// connection with a non-zero expiry, sometimes another (0, brief or lasting); never on one
/// whose CONNECT asked for 0, which the spec makes a Protocol Error (§3.14.2.2.2).
fn disconnect_expiry(rng: &mut Rng, me: Identity<'_>, conn: &Conn) -> Option<u32> {
    if me.session != SessionStyle::Churn || conn.expiry_secs().unwrap_or(0) == 0 {
        return None;
    }
    match rng.range(0..4u32) {
        0 => Some(0),
        1 => Some(rng.range(BRIEF_EXPIRY_SECS)),
        2 => Some(SESSION_EXPIRY_SECS),
        _ => None,
    }
}

/// Waits out a reconnect backoff, or forever once the run is over.
async fn backoff<N: Net>(ctx: &ClientCtx<N>, rng: &mut Rng) {
    if ctx.phase.is_finished() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(Duration::from_millis(rng.range(100..1_000u64))).await;
}

/// Keeps reading a connection the client replaced by a takeover, until the broker closes it
/// (G5: the old connection must be closed). What arrives on it is not acknowledged: the
/// client has abandoned it, so the broker must redeliver on the new one.
fn watch_abandoned(mut old: Conn) {
    tokio::spawn(async move {
        loop {
            match old.recv(None).await {
                Ok(_) => continue,
                Err(why) => {
                    old.lost(why);
                    return;
                }
            }
        }
    });
}

/// A misbehaviour the client may pick during the safety phase.
enum ClientFault {
    /// Stops using the connection without a DISCONNECT (as if its process died).
    Drop,
    /// A DISCONNECT, then a reconnect.
    Disconnect,
    /// Opens a second connection with the same client id while the first is open.
    Takeover,
}

fn client_fault<N: Net>(ctx: &ClientCtx<N>, rng: &mut Rng, rate: f64) -> Option<ClientFault> {
    if !ctx.phase.is_safety() || !rng.chance(rate) {
        return None;
    }
    Some(match rng.range(0..3u32) {
        0 => ClientFault::Drop,
        1 => ClientFault::Disconnect,
        _ => ClientFault::Takeover,
    })
}

/// Applies a client fault; returns the connection to go on with, if any.
async fn misbehave<N: Net>(
    fault: ClientFault,
    conn: Conn,
    ctx: &ClientCtx<N>,
    disk: &SharedDisk,
    rng: &mut Rng,
    me: Identity<'_>,
) -> Result<Option<(Conn, bool)>, Lost> {
    match fault {
        ClientFault::Drop => Err(conn.lost("client dropped the connection".into())),
        ClientFault::Disconnect => {
            let expiry_secs = disconnect_expiry(rng, me, &conn);
            conn.disconnect(expiry_secs).await;
            Ok(None)
        }
        ClientFault::Takeover => {
            let old = conn.at.clone();
            let pending_new = ConnRef {
                client: me.name.to_string(),
                conn: lock(disk).conns + 1,
            };
            ctx.record(Event::TakeoverStarted {
                old,
                new: pending_new,
            });
            watch_abandoned(conn);
            open(ctx, disk, rng, me).await.map(Some)
        }
    }
}

/// The random choices of this run of a client program: the client's seed mixed with its run
/// number, so a client restarted after a crash does not repeat its previous run.
fn run_rng<N: Net>(ctx: &ClientCtx<N>, disk: &SharedDisk) -> Rng {
    let mut d = lock(disk);
    d.runs += 1;
    Rng::from_seed(ctx.seed ^ d.runs.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn next_packet_id(disk: &mut Disk) -> PacketId {
    disk.next_packet_id = disk.next_packet_id.wrapping_add(1).max(1);
    PacketId::new(disk.next_packet_id).unwrap_or(PacketId::MIN)
}

/// A publisher: numbered messages, one at a time, each waited for.
pub async fn publisher<N: Net>(spec: PublisherSpec, ctx: ClientCtx<N>, disk: SharedDisk) {
    let mut rng = run_rng(&ctx, &disk);
    loop {
        match open(&ctx, &disk, &mut rng, spec.identity()).await {
            Ok((conn, present)) => {
                if !present {
                    // The broker has no state of that exchange: its outcome stays unknown.
                    lock(&disk).inflight = None;
                }
                if let Err(why) = publish_on(conn, &spec, &ctx, &disk, &mut rng).await {
                    tracing::debug!(client = %spec.name, %why, "publisher connection ended");
                }
            }
            Err(why) => tracing::debug!(client = %spec.name, %why, "connect failed"),
        }
        backoff(&ctx, &mut rng).await;
    }
}

async fn publish_on<N: Net>(
    mut conn: Conn,
    spec: &PublisherSpec,
    ctx: &ClientCtx<N>,
    disk: &SharedDisk,
    rng: &mut Rng,
) -> Result<(), Lost> {
    loop {
        // Finish the exchange in flight (after a reconnect: resend with DUP, or PUBREL).
        let inflight = lock(disk).inflight;
        if let Some(flight) = inflight {
            if let Err(why) = complete(&mut conn, spec, ctx, disk, flight, true).await {
                return Err(conn.lost(why));
            }
            continue;
        }
        if !ctx.phase.is_safety() {
            // No new messages after the safety phase: stay connected until the end.
            match conn.recv(None).await {
                Ok(_) => continue,
                Err(why) => return Err(conn.lost(why)),
            }
        }
        if let Some(fault) = client_fault(ctx, rng, spec.client_faults) {
            match misbehave(fault, conn, ctx, disk, rng, spec.identity()).await? {
                Some((next, present)) => {
                    if !present {
                        lock(disk).inflight = None;
                    }
                    conn = next;
                    continue;
                }
                None => return Ok(()),
            }
        }
        let flight = {
            let mut d = lock(disk);
            d.seq += 1;
            let flight = InFlight {
                packet_id: next_packet_id(&mut d),
                msg: MsgId {
                    publisher: spec.id,
                    seq: d.seq,
                },
                released: false,
            };
            if spec.qos != QoS::AtMostOnce {
                d.inflight = Some(flight);
            }
            flight
        };
        if let Err(why) = complete(&mut conn, spec, ctx, disk, flight, false).await {
            return Err(conn.lost(why));
        }
        let pause = rng.range(spec.pause_ms.0..=spec.pause_ms.1);
        ctx.nudge.pause(Duration::from_millis(pause)).await;
    }
}

/// Sends `flight` (or its PUBREL) and waits for the exchange to complete.
async fn complete<N: Net>(
    conn: &mut Conn,
    spec: &PublisherSpec,
    ctx: &ClientCtx<N>,
    disk: &SharedDisk,
    flight: InFlight,
    resend: bool,
) -> Result<(), Lost> {
    let id = flight.packet_id;
    if !flight.released {
        ctx.record(Event::PublishSent {
            at: conn.at.clone(),
            msg: flight.msg,
            topic: spec.topic.clone(),
            qos: spec.qos,
            retain: spec.retain,
            dup: resend,
        });
        conn.send(Packet::Publish(Publish {
            dup: resend,
            qos_pid: QosPid::new(spec.qos, Some(id)).unwrap_or(QosPid::AtMostOnce),
            retain: spec.retain,
            topic: TopicName::new(&spec.topic).map_err(|e| e.to_string())?,
            properties: PublishProperties::default(),
            payload: Bytes::from(flight.msg.payload()),
        }))
        .await?;
        match spec.qos {
            QoS::AtMostOnce => return Ok(()),
            QoS::AtLeastOnce => {
                match conn.expect(ACK_TIMEOUT, "PUBACK").await? {
                    Packet::PubAck(ack) if ack.packet_id == id && !ack.reason_code.is_error() => {}
                    other => return Err(format!("expected PUBACK for {id:?}, got {other:?}")),
                }
                ctx.record(Event::PublishAcked {
                    at: conn.at.clone(),
                    msg: flight.msg,
                });
                lock(disk).inflight = None;
                return Ok(());
            }
            QoS::ExactlyOnce => {
                match conn.expect(ACK_TIMEOUT, "PUBREC").await? {
                    Packet::PubRec(rec) if rec.packet_id == id && !rec.reason_code.is_error() => {}
                    other => return Err(format!("expected PUBREC for {id:?}, got {other:?}")),
                }
                ctx.record(Event::PublishAcked {
                    at: conn.at.clone(),
                    msg: flight.msg,
                });
                if let Some(f) = lock(disk).inflight.as_mut() {
                    f.released = true;
                }
            }
        }
    }
    conn.send(Packet::PubRel(PubReply::new(id))).await?;
    match conn.expect(ACK_TIMEOUT, "PUBCOMP").await? {
        Packet::PubComp(comp) if comp.packet_id == id => {}
        other => return Err(format!("expected PUBCOMP for {id:?}, got {other:?}")),
    }
    ctx.record(Event::PublishCompleted {
        at: conn.at.clone(),
        msg: flight.msg,
    });
    lock(disk).inflight = None;
    Ok(())
}

/// A subscriber with one subscription, receiving until the run ends.
pub async fn subscriber<N: Net>(spec: SubscriberSpec, ctx: ClientCtx<N>, disk: SharedDisk) {
    let mut rng = run_rng(&ctx, &disk);
    loop {
        match open(&ctx, &disk, &mut rng, spec.identity()).await {
            Ok((conn, present)) => {
                if let Err(why) = receive_on(conn, present, &spec, &ctx, &disk, &mut rng).await {
                    tracing::debug!(client = %spec.name, %why, "subscriber connection ended");
                }
            }
            Err(why) => tracing::debug!(client = %spec.name, %why, "connect failed"),
        }
        backoff(&ctx, &mut rng).await;
    }
}

/// Subscribes on a connection whose session does not have the subscription.
async fn subscribe<N: Net>(
    conn: &mut Conn,
    ctx: &ClientCtx<N>,
    disk: &SharedDisk,
    filter: &str,
    qos: QoS,
) -> Result<(), Lost> {
    let packet_id = next_packet_id(&mut lock(disk));
    ctx.record(Event::SubscribeSent {
        at: conn.at.clone(),
        filter: filter.to_string(),
        qos,
    });
    conn.send(Packet::Subscribe(Subscribe {
        packet_id,
        properties: SubscribeProperties::default(),
        filters: vec![(
            TopicFilter::new(filter).map_err(|e| e.to_string())?,
            SubscriptionOptions::new(qos),
        )],
    }))
    .await?;
    ctx.nudge.send();
    // Messages may come before the SUBACK (retained ones, or a durable session's queue).
    loop {
        match conn.expect(ACK_TIMEOUT, "SUBACK").await? {
            Packet::SubAck(ack) if ack.packet_id == packet_id => {
                let Some(granted) = ack.reason_codes.first().copied().and_then(granted_qos) else {
                    return Err(format!("subscription refused: {:?}", ack.reason_codes));
                };
                ctx.record(Event::Subscribed {
                    at: conn.at.clone(),
                    filter: filter.to_string(),
                    granted,
                });
                lock(disk).subscribed = true;
                return Ok(());
            }
            other => handle_incoming(conn, ctx, disk, other).await?,
        }
    }
}

async fn receive_on<N: Net>(
    mut conn: Conn,
    mut present: bool,
    spec: &SubscriberSpec,
    ctx: &ClientCtx<N>,
    disk: &SharedDisk,
    rng: &mut Rng,
) -> Result<(), Lost> {
    loop {
        if !present {
            // A new session: nothing of the old one is owed, and it has no subscription.
            let mut d = lock(disk);
            d.qos2_pending.clear();
            d.subscribed = false;
        }
        let subscribed = lock(disk).subscribed;
        if !(present && subscribed) {
            if let Err(why) = subscribe(&mut conn, ctx, disk, &spec.filter, spec.qos).await {
                return Err(conn.lost(why));
            }
        }
        loop {
            if let Some(fault) = client_fault(ctx, rng, spec.client_faults) {
                match misbehave(fault, conn, ctx, disk, rng, spec.identity()).await? {
                    Some((next, next_present)) => {
                        conn = next;
                        present = next_present;
                        break;
                    }
                    None => return Ok(()),
                }
            }
            let packet = match conn.recv(Some(Duration::from_millis(500))).await {
                Ok(Some(packet)) => packet,
                Ok(None) => continue,
                Err(why) => return Err(conn.lost(why)),
            };
            if let Err(why) = handle_incoming(&mut conn, ctx, disk, packet).await {
                return Err(conn.lost(why));
            }
        }
    }
}

/// A PUBLISH or PUBREL for a subscriber: the application gets the message, then the broker
/// its acknowledgement.
async fn handle_incoming<N: Net>(
    conn: &mut Conn,
    ctx: &ClientCtx<N>,
    disk: &SharedDisk,
    packet: Packet,
) -> Result<(), Lost> {
    match packet {
        Packet::Publish(publish) => {
            let msg = MsgId::parse(&publish.payload)
                .ok_or_else(|| format!("payload not from the workload: {:?}", publish.payload))?;
            let deliver = match publish.qos_pid {
                QosPid::ExactlyOnce(id) => lock(disk).qos2_pending.insert(id),
                _ => true,
            };
            if deliver {
                ctx.record(Event::Delivered {
                    at: conn.at.clone(),
                    msg,
                    topic: publish.topic.to_string(),
                    qos: publish.qos(),
                    dup: publish.dup,
                    retain: publish.retain,
                    packet_id: publish.packet_id().map(|id| id.get()),
                });
            }
            match publish.qos_pid {
                QosPid::AtMostOnce => Ok(()),
                QosPid::AtLeastOnce(id) => conn.send(Packet::PubAck(PubReply::new(id))).await,
                QosPid::ExactlyOnce(id) => conn.send(Packet::PubRec(PubReply::new(id))).await,
            }
        }
        Packet::PubRel(rel) => {
            ctx.record(Event::ReleaseReceived {
                at: conn.at.clone(),
                packet_id: rel.packet_id.get(),
            });
            lock(disk).qos2_pending.remove(&rel.packet_id);
            conn.send(Packet::PubComp(PubReply::new(rel.packet_id)))
                .await
        }
        other => Err(format!("unexpected packet {other:?}")),
    }
}

/// Reads the retained messages again and again, each time on a new clean session.
pub async fn reader<N: Net>(spec: ReaderSpec, ctx: ClientCtx<N>, disk: SharedDisk) {
    let mut rng = run_rng(&ctx, &disk);
    let as_subscriber = SubscriberSpec {
        name: spec.name.clone(),
        protocol: spec.protocol,
        session: SessionStyle::Clean,
        filter: spec.filter.clone(),
        qos: QoS::AtLeastOnce,
        client_faults: 0.0,
    };
    loop {
        if let Ok((mut conn, _)) = open(&ctx, &disk, &mut rng, as_subscriber.identity()).await {
            lock(&disk).qos2_pending.clear();
            match read_retained(&mut conn, &as_subscriber, &ctx, &disk).await {
                Ok(()) => {
                    ctx.record(Event::RetainedReadDone {
                        at: conn.at.clone(),
                    });
                    conn.disconnect(None).await;
                }
                Err(why) => {
                    conn.lost(why);
                }
            }
        }
        backoff(&ctx, &mut rng).await;
    }
}

async fn read_retained<N: Net>(
    conn: &mut Conn,
    spec: &SubscriberSpec,
    ctx: &ClientCtx<N>,
    disk: &SharedDisk,
) -> Result<(), Lost> {
    subscribe(conn, ctx, disk, &spec.filter, QoS::AtLeastOnce).await?;
    let until = ctx.clock.now_ms() + READ_WINDOW.as_millis() as u64;
    loop {
        let left = until.saturating_sub(ctx.clock.now_ms());
        if left == 0 {
            return Ok(());
        }
        if let Some(packet) = conn.recv(Some(Duration::from_millis(left))).await? {
            handle_incoming(conn, ctx, disk, packet).await?;
        }
    }
}

/// A publishing client: sequential publishes of numbered messages to one topic.
#[derive(Debug, Clone)]
pub struct PublisherSpec {
    pub name: String,
    /// The number in its messages' payloads (`MsgId::publisher`).
    pub id: u32,
    pub protocol: Protocol,
    pub qos: QoS,
    pub session: SessionStyle,
    pub topic: String,
    /// Retained writes (the G4 workload) rather than data messages.
    pub retain: bool,
    /// Pause between publishes, in ms (a range).
    pub pause_ms: (u64, u64),
    /// Chance per operation that the client drops, closes or takes over its own connection.
    pub client_faults: f64,
}

/// A subscribing client with one subscription.
#[derive(Debug, Clone)]
pub struct SubscriberSpec {
    pub name: String,
    pub protocol: Protocol,
    pub session: SessionStyle,
    pub filter: String,
    pub qos: QoS,
    pub client_faults: f64,
}

/// A client that repeatedly connects, reads the retained messages and leaves.
#[derive(Debug, Clone)]
pub struct ReaderSpec {
    pub name: String,
    pub protocol: Protocol,
    pub filter: String,
}

impl PublisherSpec {
    fn identity(&self) -> Identity<'_> {
        Identity {
            name: &self.name,
            protocol: self.protocol,
            session: self.session,
        }
    }
}

impl SubscriberSpec {
    fn identity(&self) -> Identity<'_> {
        Identity {
            name: &self.name,
            protocol: self.protocol,
            session: self.session,
        }
    }
}
