//! [`Session`]: the protocol state machine of one client connection.
//!
//! It turns the packets a client sends into calls on the [`Broker`] and the broker's
//! deliveries into packets, and enforces the per-connection rules: CONNECT first and once,
//! keep-alive, topic aliases, maximum packet size both ways, QoS and retain support, and the
//! MQTT 5 reason codes for every refusal. Pure: time comes in as `now_ms`; packets go out
//! through [`Session::output`].

use std::collections::VecDeque;
use std::sync::Arc;

use crate::broker::{Broker, Completion, ConnId, Ticket};
use crate::codec::{
    AckProperties, ConnAck, Connect, DecodeError, MqttString, Packet, Protocol, PubReply, QosPid,
    ReasonCode, SubAck, UnsubAck,
};
use crate::state::ClientId;

use super::alias::{InboundAliases, OutboundAliases};
use super::auth::{AuthExchange, Authenticator, Permissions};
use super::config::SessionConfig;

mod closing;
mod connect;
mod delivery;
mod inbound;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Only CONNECT may come ([MQTT-3.1.0-1]).
    AwaitingConnect,
    /// An enhanced authentication exchange (MQTT 5 AUTH) runs before the CONNACK: only AUTH
    /// may come.
    Authenticating,
    Connected,
    /// The connection is ending: flush the output, then close.
    Closing,
}

/// The protocol state of one connection.
#[derive(Debug)]
pub struct Session {
    conn: ConnId,
    config: SessionConfig,
    phase: Phase,
    protocol: Protocol,
    client_id: Option<ClientId>,
    /// Close the connection when nothing arrives by then (unix ms).
    deadline_ms: u64,
    /// 1.5 × the keep-alive ([MQTT-3.1.2-22]); 0 when keep-alive is off.
    keep_alive_grace_ms: u64,
    expiry_secs: u32,
    /// CONNECT asked for expiry 0, so DISCONNECT may not set another (MQTT 5 §3.14.2.2.2).
    connected_with_zero_expiry: bool,
    inbound_aliases: InboundAliases,
    outbound_aliases: OutboundAliases,
    /// The client's Maximum Packet Size.
    client_packet_size_max: Option<u32>,
    /// Used to make an assigned client id unique.
    id_seed: u64,
    /// The broker was told the connection ended (or took it over).
    ended: bool,
    /// Replies owed to the client, in the order of its requests, each with its completion
    /// once the broker gave it. They go out in this order: a reply that waits for a commit
    /// holds back later ones ([MQTT-4.6.0-2]).
    replies: VecDeque<(Ticket, PendingReply, Option<Completion>)>,
    next_ticket: Ticket,
    /// Nothing goes out before the CONNACK ([MQTT-3.2.0-1]), which may wait for a commit.
    connack_sent: bool,
    /// What the client may do, from the authenticator; `None`: anything.
    permissions: Option<Arc<dyn Permissions>>,
    /// The client's publish rate (`publish_rate_max`), when limited.
    publish_bucket: Option<TokenBucket>,
    /// The CONNECT whose enhanced authentication is running ([`Phase::Authenticating`]).
    pending_connect: Option<Box<PendingConnect>>,
    /// The enhanced authentication exchange running, at CONNECT or re-authentication.
    exchange: Option<Box<dyn AuthExchange>>,
    /// The enhanced authentication method of the CONNECT, which re-authentication must use
    /// too ([MQTT-4.12.1-1]); `None` if the client connected without one.
    auth_method: Option<MqttString>,
    /// Who enhanced authentication proved the client to be; a re-authentication must prove
    /// the same user.
    auth_username: Option<String>,
    out: Vec<Packet>,
}

/// An authenticated (or authenticating) CONNECT, with the client id it will get.
#[derive(Debug)]
struct PendingConnect {
    connect: Connect,
    client_id: MqttString,
    assigned_client_id: Option<MqttString>,
}

/// A reply the session owes, built once the broker completes the request.
#[derive(Debug)]
enum PendingReply {
    ConnAck(ConnAck),
    /// PUBACK / PUBREC; `fixed` is a reason decided without the broker.
    Ack {
        qos_pid: QosPid,
        fixed: Option<ReasonCode>,
    },
    PubComp(crate::codec::PacketId),
    SubAck(SubAck),
    UnsubAck(crate::codec::PacketId),
}

impl Session {
    /// A new connection. `connect_timeout_ms` bounds the wait for CONNECT; `id_seed` (random)
    /// names the client if it sends an empty client id.
    pub fn new(
        conn: ConnId,
        config: SessionConfig,
        now_ms: u64,
        connect_timeout_ms: u64,
        id_seed: u64,
    ) -> Session {
        Session {
            conn,
            config,
            phase: Phase::AwaitingConnect,
            protocol: Protocol::V3_1_1,
            client_id: None,
            deadline_ms: now_ms.saturating_add(connect_timeout_ms),
            keep_alive_grace_ms: 0,
            expiry_secs: 0,
            connected_with_zero_expiry: true,
            inbound_aliases: InboundAliases::default(),
            outbound_aliases: OutboundAliases::default(),
            client_packet_size_max: None,
            id_seed,
            ended: false,
            replies: VecDeque::new(),
            next_ticket: Ticket::FIRST,
            connack_sent: false,
            permissions: None,
            publish_bucket: None,
            pending_connect: None,
            exchange: None,
            auth_method: None,
            auth_username: None,
            out: Vec::new(),
        }
    }

    pub fn conn(&self) -> ConnId {
        self.conn
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn client_id(&self) -> Option<&ClientId> {
        self.client_id.as_ref()
    }

    /// True until a CONNECT has been handled.
    pub fn awaits_connect(&self) -> bool {
        self.phase == Phase::AwaitingConnect
    }

    /// True once the connection should be closed (after writing the output).
    pub fn is_closing(&self) -> bool {
        self.phase == Phase::Closing
    }

    /// When [`Session::on_timer`] must run: the CONNECT or keep-alive deadline (unix ms).
    pub fn deadline_ms(&self) -> Option<u64> {
        match self.phase {
            // The CONNECT deadline covers enhanced authentication too.
            Phase::AwaitingConnect | Phase::Authenticating => Some(self.deadline_ms),
            Phase::Connected if self.keep_alive_grace_ms > 0 => Some(self.deadline_ms),
            _ => None,
        }
    }

    /// The packets to send, in order (none while the CONNACK waits for the broker).
    pub fn output(&mut self) -> std::vec::Drain<'_, Packet> {
        if !self.connack_sent {
            match self.phase {
                Phase::Connected => return self.out.drain(0..0),
                // Nothing goes before a CONNACK ([MQTT-3.2.0-1]): a connection that closes
                // before its CONNACK was sent sends a refusal CONNACK, if it has one, and
                // nothing it had held back for after the CONNACK (a PINGRESP, a PUBREL).
                // Found by the `session_broker` fuzz target.
                Phase::Closing => self.out.retain(|p| matches!(p, Packet::ConnAck(_))),
                Phase::AwaitingConnect | Phase::Authenticating => {}
            }
        }
        self.out.drain(..)
    }

    /// Frees the output and reply queues if they are empty (their capacity stays after a
    /// burst otherwise: a few hundred bytes per packet they once held).
    pub fn release_idle_memory(&mut self) {
        if self.out.is_empty() {
            self.out = Vec::new();
        }
        if self.replies.is_empty() {
            self.replies = VecDeque::new();
        }
    }

    /// Requests whose reply is still owed to the client.
    pub fn pending_replies(&self) -> usize {
        self.replies.len()
    }

    /// The broker completed request `ticket`: send its reply, and every later one already
    /// complete, in request order.
    pub fn on_reply(&mut self, ticket: Ticket, completion: Completion) {
        if let Some(entry) = self.replies.iter_mut().find(|(t, ..)| *t == ticket) {
            entry.2 = Some(completion);
        }
        while self.replies.front().is_some_and(|(_, _, c)| c.is_some()) {
            let Some((_, pending, Some(completion))) = self.replies.pop_front() else {
                break;
            };
            self.emit(pending, completion);
        }
    }

    /// Owes the client a reply; returns the ticket the broker answers.
    fn owe(&mut self, pending: PendingReply) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket = ticket.next();
        self.replies.push_back((ticket, pending, None));
        ticket
    }

    /// Owes a reply whose completion is already known.
    fn reply_now(&mut self, pending: PendingReply, completion: Completion) {
        let ticket = self.owe(pending);
        self.on_reply(ticket, completion);
    }

    fn emit(&mut self, pending: PendingReply, completion: Completion) {
        if self.phase == Phase::Closing {
            return;
        }
        match pending {
            PendingReply::ConnAck(mut connack) => {
                connack.session_present = completion.session_present;
                // The CONNACK goes out before anything produced while it waited.
                self.out.insert(0, Packet::ConnAck(connack));
                self.connack_sent = true;
            }
            PendingReply::Ack { qos_pid, fixed } => {
                let reason = fixed.unwrap_or(if completion.duplicate || completion.matched > 0 {
                    ReasonCode::Success
                } else if completion.dropped_queue_full > 0 {
                    ReasonCode::QuotaExceeded
                } else {
                    ReasonCode::NoMatchingSubscribers
                });
                // MQTT 3 has no reason codes: a refused QoS 1/2 publish is still
                // acknowledged, as MQTT 3.1.1 brokers do.
                let reason = if self.protocol.is_v5() {
                    reason
                } else {
                    ReasonCode::Success
                };
                match qos_pid {
                    QosPid::AtMostOnce => {}
                    QosPid::AtLeastOnce(packet_id) => self
                        .out
                        .push(Packet::PubAck(with_reason(packet_id, reason))),
                    QosPid::ExactlyOnce(packet_id) => self
                        .out
                        .push(Packet::PubRec(with_reason(packet_id, reason))),
                }
            }
            PendingReply::PubComp(packet_id) => {
                let known = completion.existed.first().copied().unwrap_or(false);
                self.out.push(Packet::PubComp(reply(
                    packet_id,
                    known,
                    ReasonCode::PacketIdentifierNotFound,
                )));
            }
            PendingReply::SubAck(suback) => self.out.push(Packet::SubAck(suback)),
            PendingReply::UnsubAck(packet_id) => {
                let reason_codes = completion
                    .existed
                    .into_iter()
                    .map(|existed| {
                        if existed {
                            ReasonCode::Success
                        } else {
                            ReasonCode::NoSubscriptionExisted
                        }
                    })
                    .collect();
                self.out.push(Packet::UnsubAck(UnsubAck {
                    packet_id,
                    properties: AckProperties::default(),
                    reason_codes,
                }));
            }
        }
    }

    /// Handles one packet from the client.
    pub fn handle(
        &mut self,
        packet: Packet,
        broker: &mut Broker,
        auth: &dyn Authenticator,
        now_ms: u64,
    ) {
        if self.phase == Phase::Closing {
            return;
        }
        if self.phase == Phase::Connected && broker.client_of(self.conn).is_none() {
            // The broker has let this connection go (its session was taken over) and the
            // DISCONNECT saying so is on its way. Whatever the client sent meanwhile gets no
            // answer: the broker would answer for a connection it no longer knows, and a
            // PUBREL 0x92 for a PUBREC (or a PUBCOMP 0x92 for a PUBREL) tells the client to
            // forget a QoS 2 exchange its session still holds. The subscriber that then got
            // the message again under the same packet id took it for a new one (Jepsen seed
            // 1796532029: QoS 2 delivered twice); a publisher would reuse the packet id and
            // its next message would be taken for a resend and dropped. Not even the
            // keep-alive is renewed, so such a connection cannot linger.
            return;
        }
        if self.keep_alive_grace_ms > 0 {
            self.deadline_ms = now_ms.saturating_add(self.keep_alive_grace_ms);
        }
        match (self.phase, packet) {
            (Phase::AwaitingConnect, Packet::Connect(connect)) => {
                self.on_connect(*connect, broker, auth, now_ms)
            }
            // [MQTT-3.1.0-1]; the decoder already refuses anything else first.
            (Phase::AwaitingConnect, _) => self.close(),
            (Phase::Authenticating, Packet::Auth(packet)) => {
                self.on_connect_auth(packet, broker, auth, now_ms)
            }
            (Phase::Authenticating, Packet::Disconnect(_)) => self.close(),
            (Phase::Authenticating, _) => self.refuse_because(
                ReasonCode::ProtocolError,
                "only AUTH may come while enhanced authentication runs",
            ),
            (_, Packet::Connect(_)) => self.fail_because(
                ReasonCode::ProtocolError,
                "[MQTT-3.1.0-2] a second CONNECT",
                broker,
                now_ms,
            ),
            (_, Packet::Publish(publish)) => self.on_publish(publish, broker, now_ms),
            (_, Packet::PubAck(ack)) => {
                broker.puback(self.conn, ack.packet_id, now_ms);
            }
            (_, Packet::PubRec(rec)) => self.on_pubrec(rec, broker, now_ms),
            (_, Packet::PubRel(rel)) => {
                let ticket = self.owe(PendingReply::PubComp(rel.packet_id));
                broker.pubrel(self.conn, ticket, rel.packet_id);
            }
            (_, Packet::PubComp(comp)) => {
                broker.pubcomp(self.conn, comp.packet_id, now_ms);
            }
            (_, Packet::Subscribe(subscribe)) => self.on_subscribe(subscribe, broker, now_ms),
            (_, Packet::Unsubscribe(unsubscribe)) => self.on_unsubscribe(unsubscribe, broker),
            (_, Packet::PingReq) => self.out.push(Packet::PingResp),
            (_, Packet::Disconnect(disconnect)) => self.on_disconnect(disconnect, broker, now_ms),
            (_, Packet::Auth(packet)) => self.on_reauth(packet, broker, auth, now_ms),
            // Packets only a server sends.
            (
                _,
                Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp,
            ) => self.fail_because(
                ReasonCode::ProtocolError,
                "a packet only a server sends",
                broker,
                now_ms,
            ),
        }
    }

    /// The client sent bytes that do not decode. `declared` is the protocol its CONNECT
    /// declared, if it got that far.
    pub fn on_decode_error(
        &mut self,
        error: &DecodeError,
        declared: Option<Protocol>,
        broker: &mut Broker,
        now_ms: u64,
    ) {
        if self.phase == Phase::AwaitingConnect {
            match (error, declared) {
                // [MQTT-3.1.2-2]: an unsupported level gets CONNACK 0x01 (MQTT 3.1.1 layout).
                (DecodeError::UnsupportedProtocolLevel { .. }, _) => {
                    self.protocol = Protocol::V3_1_1;
                    self.refuse(ReasonCode::UnsupportedProtocolVersion);
                }
                (_, Some(Protocol::V5)) => {
                    self.protocol = Protocol::V5;
                    self.refuse_because(error.reason_code(), &error.to_string());
                }
                _ => self.close(),
            }
            return;
        }
        self.fail_because(error.reason_code(), &error.to_string(), broker, now_ms);
    }

    /// The server ends the connection (session taken over, shutting down, administrative
    /// action): tell the client why (MQTT 5) and close. After a takeover the broker has
    /// already moved the session, so the close that follows changes nothing there.
    pub fn kick(&mut self, reason: ReasonCode) {
        if self.phase == Phase::Authenticating {
            return self.refuse(ReasonCode::ServerUnavailable);
        }
        if self.phase == Phase::Connected && !self.connack_sent {
            // The session never opened. A CONNECT that another connection overtook took
            // effect and was superseded: it is refused, with a code CONNACK allows (MQTT 5
            // §3.2.2.2). `0x8E Session taken over` exists only in DISCONNECT (a CONNACK
            // carrying it is malformed: found by `jepsen/`), so it gets `0x80` and says why
            // in the reason string. Any other end (the node lost its quorum) leaves the
            // CONNECT's outcome unknown: its registration may still commit later, so no
            // CONNACK claims it was refused; the connection just closes, as a timeout would.
            self.out.clear();
            self.replies.clear();
            return match reason {
                ReasonCode::SessionTakenOver => {
                    self.refuse_because(ReasonCode::UnspecifiedError, explain(reason))
                }
                _ => self.close(),
            };
        }
        if self.phase == Phase::Connected && self.protocol.is_v5() {
            let disconnect = self.disconnect_packet(reason, explain(reason));
            self.out.push(Packet::Disconnect(disconnect));
        }
        self.close();
    }

    /// The deadline passed: no CONNECT in time, or keep-alive expired (DISCONNECT 0x8D).
    pub fn on_timer(&mut self, broker: &mut Broker, now_ms: u64) {
        match self.deadline_ms() {
            Some(deadline) if now_ms >= deadline => {}
            _ => return,
        }
        match self.phase {
            Phase::Connected => self.fail(ReasonCode::KeepAliveTimeout, broker, now_ms),
            _ => self.close(),
        }
    }

    /// The connection is gone. Unless the client said goodbye with DISCONNECT, this is an
    /// abnormal end: its will is published ([MQTT-3.1.2-8]).
    pub fn on_closed(&mut self, broker: &mut Broker, now_ms: u64) {
        if !self.ended && self.client_id.is_some() {
            broker.disconnect(self.conn, self.expiry_secs, true, now_ms);
        }
        self.ended = true;
        self.phase = Phase::Closing;
    }
}

/// A token bucket holding one second's worth of `rate_per_sec` tokens, refilled
/// continuously; in milli-tokens so that low rates refill smoothly.
#[derive(Debug, Clone)]
struct TokenBucket {
    rate_per_sec: u64,
    milli_tokens: u64,
    last_ms: u64,
}

impl TokenBucket {
    fn new(rate_per_sec: u32, now_ms: u64) -> TokenBucket {
        let rate_per_sec = u64::from(rate_per_sec);
        TokenBucket {
            rate_per_sec,
            milli_tokens: rate_per_sec * 1000,
            last_ms: now_ms,
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self, now_ms: u64) -> bool {
        let elapsed_ms = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        // `rate` tokens per 1000 ms is `rate` milli-tokens per ms.
        let full = self.rate_per_sec * 1000;
        self.milli_tokens = (self.milli_tokens + elapsed_ms * self.rate_per_sec).min(full);
        if self.milli_tokens < 1000 {
            return false;
        }
        self.milli_tokens -= 1000;
        true
    }
}

/// The reason string for a refusal or a server DISCONNECT with this reason code.
fn explain(reason: ReasonCode) -> &'static str {
    match reason {
        ReasonCode::UnsupportedProtocolVersion => "unsupported protocol version",
        ReasonCode::ClientIdentifierNotValid => {
            "client identifier not valid: empty for a persistent session, or too long"
        }
        ReasonCode::BadUserNameOrPassword => "bad user name or password",
        ReasonCode::NotAuthorized => "not authorized",
        ReasonCode::BadAuthenticationMethod => "authentication method not supported",
        ReasonCode::ServerUnavailable | ReasonCode::UseAnotherServer => {
            "server unavailable: this node has no quorum or cannot store state; try another node"
        }
        ReasonCode::ServerShuttingDown => "server shutting down",
        ReasonCode::SessionTakenOver => {
            "session taken over: another connection uses this client identifier"
        }
        ReasonCode::KeepAliveTimeout => "nothing received within 1.5 times the keep-alive",
        ReasonCode::TopicAliasInvalid => "topic alias 0 or above the server's maximum",
        ReasonCode::ReceiveMaximumExceeded => {
            "more unacknowledged QoS 1/2 publishes than the server's receive maximum"
        }
        ReasonCode::QoSNotSupported => "QoS above the server's maximum",
        ReasonCode::RetainNotSupported => "retain not supported",
        ReasonCode::PayloadFormatInvalid => "payload declared UTF-8 is not",
        ReasonCode::UnspecifiedError => "the server cannot store state now",
        ReasonCode::AdministrativeAction => "disconnected by an administrator",
        ReasonCode::PacketTooLarge => "packet larger than the server's maximum packet size",
        ReasonCode::ProtocolError => "protocol error",
        ReasonCode::MalformedPacket => "malformed packet",
        _ => "",
    }
}

/// A reply carrying `missing` when the packet id was not known (MQTT 5 only shows it).
fn reply(packet_id: crate::codec::PacketId, known: bool, missing: ReasonCode) -> PubReply {
    with_reason(packet_id, if known { ReasonCode::Success } else { missing })
}

fn with_reason(packet_id: crate::codec::PacketId, reason_code: ReasonCode) -> PubReply {
    PubReply {
        packet_id,
        reason_code,
        properties: AckProperties::default(),
    }
}
