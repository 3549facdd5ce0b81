//! One connection task: reads and decodes packets, runs them through the session state
//! machine under the hub lock, and writes what comes out.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::codec::{Connect, Decoder, Packet, ReasonCode};
use crate::net::{BoxStream, Clock};
use crate::session::{Authenticator, Decided, PeerInfo, Session, SessionConfig};

use super::hub::Hub;
use super::outbox::Outgoing;

/// Read buffer for a connection that has been quiet: small, so idle connections are cheap.
const READ_CHUNK_IDLE: usize = 128;
/// Read buffer once data flows.
const READ_CHUNK_BUSY: usize = 16 * 1024;
/// A write buffer grown past this by a burst is given back afterwards.
const WRITE_BUFFER_KEEP: usize = 64 * 1024;
/// Requests of one client awaiting their commit (PUBLISH to durable sessions, SUBSCRIBE...)
/// beyond which the connection stops reading: bounds what one client can queue for the log.
const PENDING_REPLIES_MAX: usize = 1024;

/// Up to this many items handed to other connections by one read, the reader lets them be
/// written before its own replies (latency first). More means a busy publisher (a read of
/// many publishes) or a wide fan-out, where holding back its acknowledgements stalls its
/// in-flight window: measured, with no bound fan-out 1 → 1000 QoS 1 lost 6–18 % of its
/// throughput, and with 32 pairs at full speed lost 3–10 %; with 4 neither is slower beyond
/// noise.
const LATENCY_FIRST_HANDOFF_MAX: usize = 4;

/// What every connection task of a node shares.
pub struct ConnectionContext {
    pub hub: Arc<Hub>,
    pub clock: Arc<dyn Clock>,
    /// Checks CONNECTs of new connections; a reload replaces it.
    pub auth: RwLock<Arc<dyn Authenticator>>,
    /// The limits of new connections; a reload replaces them.
    pub session_config: RwLock<SessionConfig>,
    pub connect_timeout_ms: u64,
    /// A client that takes longer than this to accept our bytes is dropped.
    pub write_timeout: Duration,
    /// QoS 0 deliveries that may wait for one connection before new ones are dropped.
    pub qos0_queue_max: usize,
    /// A packet started must arrive in full within this (slow loris).
    pub packet_timeout_ms: u64,
    /// Take the name in a verified TLS client certificate as the client's user name (and
    /// identity: no password is then asked).
    pub use_identity_as_username: bool,
    pub shutdown: watch::Receiver<bool>,
}

impl ConnectionContext {
    /// The authenticator in force now.
    pub fn authenticator(&self) -> Arc<dyn Authenticator> {
        self.auth.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The session limits in force now.
    pub fn session_config(&self) -> SessionConfig {
        self.session_config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts a reloaded authenticator and session limits in force for new connections.
    pub fn replace(&self, auth: Arc<dyn Authenticator>, session_config: SessionConfig) {
        *self.auth.write().unwrap_or_else(|e| e.into_inner()) = auth;
        *self
            .session_config
            .write()
            .unwrap_or_else(|e| e.into_inner()) = session_config;
    }
}

/// Serves one client until it disconnects, fails, or the node shuts down. `peer` says where
/// it comes from and, when the listener takes certificates as identities, who its
/// certificate says it is.
pub async fn serve_connection(
    ctx: Arc<ConnectionContext>,
    mut stream: BoxStream,
    id_seed: u64,
    peer: PeerInfo,
) {
    let (conn, outbox) = ctx.hub.register(ctx.qos0_queue_max);
    // What is in force when the connection starts serves it to the end (the ACL is the
    // exception: a reload reaches connected clients through it).
    let auth = ctx.authenticator();
    let session_config = ctx.session_config();
    let mut decoder = Decoder::new(session_config.packet_size_max as usize);
    let mut session = Session::new(
        conn,
        session_config,
        ctx.clock.unix_ms(),
        ctx.connect_timeout_ms,
        id_seed,
    );
    let mut shutdown = ctx.shutdown.clone();
    let mut read_buf = BytesMut::new();
    let mut write_buf = BytesMut::new();
    let mut inbox = Vec::new();
    let mut read_chunk = READ_CHUNK_IDLE;
    // One timer for the connection's deadline (see `arm_timer`).
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed_ms: Option<u64> = None;
    // When the bytes of an unfinished packet must be complete (unix ms), while some wait.
    let mut partial_deadline_ms: Option<u64> = None;

    loop {
        if !write_and_go_on(&ctx, &mut session, &mut stream, &mut write_buf).await {
            break;
        }
        if read_buf.is_empty() {
            // Between bursts: give back the buffers the last one grew (a CONNACK alone grows
            // them by 2 KB), so an idle connection holds little. The next burst allocates
            // them again: one allocation per burst, beside its system calls.
            session.release_idle_memory();
            inbox = Vec::new();
        }
        if read_buf.capacity() - read_buf.len() < READ_CHUNK_IDLE {
            read_buf.reserve(read_chunk);
        }
        let deadline_ms = [session.deadline_ms(), partial_deadline_ms]
            .into_iter()
            .flatten()
            .min();
        armed_ms = arm_timer(&ctx, timer.as_mut(), deadline_ms, armed_ms);
        tokio::select! {
            read = stream.read_buf(&mut read_buf), if session.pending_replies() < PENDING_REPLIES_MAX => {
                let Ok(n) = read else { break };
                if n == 0 {
                    break;
                }
                count_received(&ctx, n);
                read_chunk = if read_buf.len() >= read_chunk / 2 { READ_CHUNK_BUSY } else { read_chunk };
                let mut input = handle_input(&ctx, &*auth, &mut session, &mut decoder, &mut read_buf);
                if let Some(mut c) = input.connect.take() {
                    let verdict = authenticate(&*auth, &mut c, &peer).await;
                    let decided = Decided { verdict, by: &*auth };
                    hand_connect(&ctx, &mut session, c, &decided, &peer);
                    let more = handle_input(&ctx, &*auth, &mut session, &mut decoder, &mut read_buf);
                    input.packets += 1 + more.packets;
                    input.handed_off += more.handed_off;
                }
                partial_deadline_ms = partial_deadline(&ctx, &read_buf, input.packets, partial_deadline_ms);
                if (1..=LATENCY_FIRST_HANDOFF_MAX).contains(&input.handed_off) {
                    // A few messages for other connections: let their tasks write them
                    // before this task writes its own acknowledgements (as Mosquitto does in
                    // its one thread), so a delivery does not wait for the publisher's
                    // PUBACK system call. The PUBACK is late by those few writes.
                    tokio::task::yield_now().await;
                }
                if read_buf.is_empty() {
                    // Nothing pending: drop the buffer so a quiet connection holds no memory
                    // (decoded packets keep their own slices of it alive as long as needed).
                    read_buf = BytesMut::new();
                    read_chunk = READ_CHUNK_IDLE;
                }
            }
            _ = outbox.ready() => {
                outbox.drain_into(&mut inbox);
                take_inbox(&ctx, &mut session, &mut inbox);
            }
            _ = &mut timer, if armed_ms.is_some() => {
                armed_ms = None;
                if !on_deadline(&ctx, &mut session, partial_deadline_ms) {
                    break;
                }
            }
            _ = shutdown.changed() => session.kick(ReasonCode::ServerShuttingDown),
        }
    }
    closed(&ctx, &mut session);
}

/// When the bytes of the unfinished packet at the front of `read_buf` must be complete. Its
/// clock starts when its first bytes are the first unfinished ones: a stream of packets that
/// keeps completing is fine.
fn partial_deadline(
    ctx: &ConnectionContext,
    read_buf: &BytesMut,
    packets: usize,
    started: Option<u64>,
) -> Option<u64> {
    match (read_buf.is_empty(), packets, started) {
        (true, _, _) => None,
        (false, 0, Some(started)) => Some(started),
        (false, _, _) => Some(ctx.clock.unix_ms().saturating_add(ctx.packet_timeout_ms)),
    }
}

/// Arms the connection's timer for `deadline_ms` unless it is armed for that or earlier
/// already; returns what it is armed for. Re-armed only when the deadline comes earlier than
/// the armed one: keep-alive moves the deadline on every packet, and resetting a timer per
/// packet costs more than a spurious wake-up now and then (which `on_timer` ignores, after
/// which the timer is armed again for the deadline then in force).
fn arm_timer(
    ctx: &ConnectionContext,
    timer: std::pin::Pin<&mut tokio::time::Sleep>,
    deadline_ms: Option<u64>,
    armed_ms: Option<u64>,
) -> Option<u64> {
    match (deadline_ms, armed_ms) {
        (Some(deadline), Some(armed)) if armed <= deadline => Some(armed),
        (Some(deadline), _) => {
            let now_ms = ctx.clock.unix_ms();
            let wait = Duration::from_millis(deadline.saturating_sub(now_ms));
            timer.reset(tokio::time::Instant::now() + wait);
            Some(deadline)
        }
        (None, _) => None,
    }
}

/// The verdict on a CONNECT. Authentication may wait (a password hash, an HTTP call): it runs
/// outside the broker's lock, then the session gets the verdict with the CONNECT. Enhanced
/// authentication (an authentication method) runs in the session. Only the boxed CONNECT and
/// the boxed authentication are held across the wait: every byte held there is in every idle
/// connection's task.
async fn authenticate(
    auth: &dyn Authenticator,
    connect: &mut Connect,
    peer: &PeerInfo,
) -> Result<(), ReasonCode> {
    if connect.properties.authentication_method.is_some() {
        return Ok(());
    }
    if let Some(identity) = &peer.cert_identity {
        connect.username = Some(identity.clone());
    }
    auth.authenticate_async(connect, peer).await
}

/// Hands an authenticated (or refused) CONNECT to the session, under the broker's lock.
fn hand_connect(
    ctx: &ConnectionContext,
    session: &mut Session,
    connect: Box<Connect>,
    decided: &Decided<'_>,
    peer: &PeerInfo,
) {
    tracing::debug!(
        client_id = connect.client_id.as_str(),
        peer = ?peer.addr,
        verdict = ?decided.verdict,
        "CONNECT"
    );
    let packet = Packet::Connect(connect);
    let mut core = ctx.hub.lock();
    let now_ms = ctx.clock.unix_ms();
    session.handle(packet, &mut core.broker, decided, now_ms);
    core.dispatch(Some(session), now_ms, &ctx.hub.qos0_dropped);
    let tap = ctx.hub.tracer.tap(session, || now_ms);
    if let (Some(tap), Some(addr)) = (tap, peer.addr) {
        tap.peer(addr);
    }
}

/// What other connections and the broker sent this one: deliveries, a disconnect, replies.
fn take_inbox(ctx: &ConnectionContext, session: &mut Session, inbox: &mut Vec<Outgoing>) {
    let mut core = ctx.hub.lock();
    let now_ms = ctx.clock.unix_ms();
    for item in inbox.drain(..) {
        item.hand_to(session, &mut core.broker, now_ms);
    }
    core.dispatch(Some(session), now_ms, &ctx.hub.qos0_dropped);
}

/// The timer fired: returns false when the connection must close because a packet did not
/// complete in time, else lets the session act on its deadline (keep-alive, CONNECT).
fn on_deadline(
    ctx: &ConnectionContext,
    session: &mut Session,
    partial_deadline_ms: Option<u64>,
) -> bool {
    let now_ms = ctx.clock.unix_ms();
    if partial_deadline_ms.is_some_and(|due| now_ms >= due) {
        // A packet trickling in slower than the timeout: a slow loris, or a client that died
        // mid-packet. Nothing in MQTT names this; close.
        tracing::debug!(
            conn = session.conn().0,
            "packet not complete in time: closing"
        );
        ctx.hub
            .shell_stats
            .closed_slow_packets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return false;
    }
    let mut core = ctx.hub.lock();
    session.on_timer(&mut core.broker, now_ms);
    core.dispatch(Some(session), now_ms, &ctx.hub.qos0_dropped);
    true
}

/// The connection is over: the broker is told, the trace notes it, the hub forgets it.
fn closed(ctx: &ConnectionContext, session: &mut Session) {
    {
        let mut core = ctx.hub.lock();
        let now_ms = ctx.clock.unix_ms();
        session.on_closed(&mut core.broker, now_ms);
        core.dispatch(None, now_ms, &ctx.hub.qos0_dropped);
    }
    if let Some(tap) = ctx.hub.tracer.tap(session, || ctx.clock.unix_ms()) {
        tap.closed();
    }
    ctx.hub.unregister(session.conn());
}

/// What one pass over the read buffer did.
struct Input {
    /// Packets handled.
    packets: usize,
    /// Items queued for other connections (deliveries, mostly).
    handed_off: usize,
    /// A CONNECT, not handled: its authentication may have to wait, which the lock must not.
    connect: Option<Box<crate::codec::Connect>>,
}

/// Decodes every whole packet in `read_buf` and runs it through the session, under one lock;
/// stops at a CONNECT, which it returns (with the packets before it counted).
fn handle_input(
    ctx: &ConnectionContext,
    auth: &dyn Authenticator,
    session: &mut Session,
    decoder: &mut Decoder,
    read_buf: &mut BytesMut,
) -> Input {
    let mut core = ctx.hub.lock();
    let mut packets = 0;
    let mut handed_off = 0;
    let now_ms = ctx.clock.unix_ms();
    let tap = ctx.hub.tracer.tap(session, || now_ms);
    while !session.is_closing() {
        let buffered = read_buf.len();
        let decoded = decoder.decode(read_buf);
        if let (Some(tap), Ok(Some(packet))) = (&tap, &decoded) {
            tap.received(packet, buffered - read_buf.len());
        }
        match decoded {
            Ok(Some(Packet::Connect(connect))) if session.awaits_connect() => {
                return Input {
                    packets,
                    handed_off,
                    connect: Some(connect),
                };
            }
            Ok(Some(packet)) => {
                packets += 1;
                session.handle(packet, &mut core.broker, auth, now_ms);
                handed_off += core.dispatch(Some(session), now_ms, &ctx.hub.qos0_dropped);
            }
            Ok(None) => break,
            Err(error) => {
                tracing::debug!(conn = session.conn().0, %error, "bad packet");
                if let Some(tap) = &tap {
                    tap.malformed(&error);
                }
                session.on_decode_error(&error, decoder.protocol(), &mut core.broker, now_ms);
                handed_off += core.dispatch(Some(session), now_ms, &ctx.hub.qos0_dropped);
                break;
            }
        }
    }
    Input {
        packets,
        handed_off,
        connect: None,
    }
}

/// Writes what the session produced; false when the connection is over: broken, or closing
/// (then shut down, within the write timeout).
async fn write_and_go_on(
    ctx: &ConnectionContext,
    session: &mut Session,
    stream: &mut BoxStream,
    write_buf: &mut BytesMut,
) -> bool {
    if !write_output(ctx, session, stream, write_buf).await {
        return false;
    }
    if session.is_closing() {
        let _ = tokio::time::timeout(ctx.write_timeout, stream.shutdown()).await;
        return false;
    }
    true
}

fn count_received(ctx: &ConnectionContext, bytes: usize) {
    ctx.hub
        .shell_stats
        .bytes_received
        .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
}

/// Encodes and writes what the session produced; false when the connection is broken.
async fn write_output(
    ctx: &ConnectionContext,
    session: &mut Session,
    stream: &mut BoxStream,
    write_buf: &mut BytesMut,
) -> bool {
    let protocol = session.protocol();
    let tap = ctx.hub.tracer.tap(session, || ctx.clock.unix_ms());
    for packet in session.output() {
        match packet.encode(protocol, write_buf) {
            Ok(size) => {
                if let Some(tap) = &tap {
                    tap.sent(&packet, size);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot encode {:?}", packet.packet_type()),
        }
    }
    if write_buf.is_empty() {
        return true;
    }
    let written = tokio::time::timeout(ctx.write_timeout, async {
        stream.write_all(write_buf).await?;
        stream.flush().await
    })
    .await;
    ctx.hub
        .shell_stats
        .bytes_sent
        .fetch_add(write_buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
    write_buf.clear();
    if write_buf.capacity() > WRITE_BUFFER_KEEP {
        *write_buf = BytesMut::new();
    }
    matches!(written, Ok(Ok(())))
}
