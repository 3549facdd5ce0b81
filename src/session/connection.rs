//! [`Session`]: the protocol state machine of one client connection.
//!
//! It turns the packets a client sends into calls on the [`Broker`] and the broker's
//! deliveries into packets, and enforces the per-connection rules: CONNECT first and once,
//! keep-alive, topic aliases, maximum packet size both ways, QoS and retain support, and the
//! MQTT 5 reason codes for every refusal. Pure: time comes in as `now_ms`; packets go out
//! through [`Session::output`].

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::broker::{
    Broker, Completion, ConnId, ConnectRequest, Delivery, PubRecOutcome, PublishError, Ticket,
};
use crate::codec::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, DecodeError,
    Disconnect, MqttString, Packet, Protocol, PubReply, Publish, PublishProperties, QoS, QosPid,
    ReasonCode, ReasonContext, SubAck, Subscribe, TopicFilter, TopicName, UnsubAck, Unsubscribe,
};
use crate::state::{ClientId, Message, Subscription, Will};

use super::alias::{AliasError, InboundAliases, OutboundAliases};
use super::auth::{AuthExchange, AuthStep, Authenticator, Permissions};
use super::config::SessionConfig;

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
            next_ticket: 1,
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
        if self.phase == Phase::Connected && !self.connack_sent {
            return self.out.drain(0..0);
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
        self.next_ticket += 1;
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

    /// Turns a broker delivery into a packet for this client.
    pub fn deliver(&mut self, delivery: Delivery, broker: &mut Broker, now_ms: u64) {
        if self.phase != Phase::Connected {
            return;
        }
        let (message, qos, packet_id, retain, dup, subscription_ids) = match delivery {
            Delivery::Release(packet_id) => {
                self.out.push(Packet::PubRel(PubReply::new(packet_id)));
                return;
            }
            Delivery::Publish {
                message,
                qos,
                packet_id,
                retain,
                dup,
                subscription_ids,
            } => (message, qos, packet_id, retain, dup, subscription_ids),
        };
        let Some(qos_pid) = QosPid::new(qos, packet_id) else {
            debug_assert!(false, "QoS {qos:?} delivery without a packet id");
            return;
        };
        if let Some(permissions) = &self.permissions {
            if !permissions.may_receive(message.topic.as_str()) {
                // Not for this client (an ACL rule denies the topic under a wider
                // subscription): dropped as if it had been delivered.
                if let Some(packet_id) = packet_id {
                    broker.discard(self.conn, packet_id, now_ms);
                }
                return;
            }
        }
        let mut topic = message.topic.clone();
        let mut new_alias = false;
        let properties = if self.protocol.is_v5() {
            let mut properties = message.properties.clone();
            properties.message_expiry_interval = message.expiry_left_secs(now_ms);
            properties.subscription_identifiers = subscription_ids;
            if let Some((alias, first_use)) = self.outbound_aliases.alias_for(&message.topic) {
                properties.topic_alias = std::num::NonZeroU16::new(alias);
                new_alias = first_use;
                if !first_use {
                    topic = TopicName::default();
                }
            }
            properties
        } else {
            PublishProperties::default()
        };
        let packet = Packet::Publish(Publish {
            dup,
            qos_pid,
            retain,
            topic,
            properties,
            payload: message.payload.clone(),
        });
        if let Some(max) = self.client_packet_size_max {
            let fits = packet
                .encoded_len(self.protocol)
                .is_ok_and(|len| len <= max as usize);
            if !fits {
                // [MQTT-3.1.2-25]: drop it as if it had been sent.
                if new_alias {
                    self.outbound_aliases.forget(&message.topic);
                }
                if let Some(packet_id) = packet_id {
                    broker.discard(self.conn, packet_id, now_ms);
                }
                return;
            }
        }
        self.out.push(packet);
    }

    fn on_connect(
        &mut self,
        connect: Connect,
        broker: &mut Broker,
        auth: &dyn Authenticator,
        now_ms: u64,
    ) {
        self.protocol = connect.protocol;
        let v5 = self.protocol.is_v5();
        let mut assigned_client_id = None;
        let client_id = if connect.client_id.is_empty() {
            // MQTT 3 needs a client id for a persistent session ([MQTT-3.1.3-8]); MQTT 3.1
            // needs one always.
            if self.protocol == Protocol::V3_1 || (!v5 && !connect.clean_start) {
                return self.refuse(ReasonCode::ClientIdentifierNotValid);
            }
            let id = format!("keel-{:016x}-{}", self.id_seed, self.conn);
            // The id is ASCII letters, digits and '-', well under 65,535 bytes.
            let id = MqttString::new(&id).expect("assigned client id is valid");
            if v5 {
                assigned_client_id = Some(id.clone());
            }
            id
        } else {
            connect.client_id.clone()
        };
        let too_long = client_id.len() > self.config.client_id_len_max
            || (self.protocol == Protocol::V3_1 && client_id.len() > 23);
        if too_long {
            return self.refuse(ReasonCode::ClientIdentifierNotValid);
        }
        if let Some(will) = &connect.will {
            if will.qos > self.config.maximum_qos {
                return self.refuse(ReasonCode::QoSNotSupported);
            }
            if will.retain && !self.config.retain_available {
                return self.refuse(ReasonCode::RetainNotSupported);
            }
        }
        let pending = PendingConnect {
            connect,
            client_id,
            assigned_client_id,
        };
        let properties = &pending.connect.properties;
        if let Some(method) = properties.authentication_method.clone() {
            let Some(exchange) = auth.start_exchange(method.as_str()) else {
                broker.auth_failed();
                return self.refuse(ReasonCode::BadAuthenticationMethod);
            };
            let data = properties.authentication_data.clone().unwrap_or_default();
            self.exchange = Some(exchange);
            self.auth_method = Some(method);
            self.pending_connect = Some(Box::new(pending));
            self.phase = Phase::Authenticating;
            return self.step_connect_auth(&data, broker, auth, now_ms);
        }
        if let Err(reason) = auth.authenticate(&pending.connect) {
            broker.auth_failed();
            return self.refuse(reason);
        }
        self.open(pending, None, broker, auth, now_ms);
    }

    /// An AUTH while the CONNECT's enhanced authentication runs: it must continue the
    /// exchange by the same method (§4.12).
    fn on_connect_auth(
        &mut self,
        packet: Auth,
        broker: &mut Broker,
        auth: &dyn Authenticator,
        now_ms: u64,
    ) {
        if packet.reason_code != ReasonCode::ContinueAuthentication
            || packet.properties.authentication_method != self.auth_method
        {
            broker.auth_failed();
            return self.refuse_because(
                ReasonCode::ProtocolError,
                "[MQTT-4.12.0-4] AUTH must continue the authentication by the CONNECT's method",
            );
        }
        let data = packet.properties.authentication_data.unwrap_or_default();
        self.step_connect_auth(&data, broker, auth, now_ms);
    }

    /// Runs the CONNECT's enhanced authentication one step on the client's `data`.
    fn step_connect_auth(
        &mut self,
        data: &[u8],
        broker: &mut Broker,
        auth: &dyn Authenticator,
        now_ms: u64,
    ) {
        let Some(exchange) = self.exchange.as_mut() else {
            return self.refuse(ReasonCode::ProtocolError);
        };
        match exchange.step(data) {
            AuthStep::Continue(data) => {
                let packet = self.auth_packet(ReasonCode::ContinueAuthentication, data);
                self.out.push(packet);
            }
            AuthStep::Success { username, data } => {
                self.exchange = None;
                let Some(mut pending) = self.pending_connect.take() else {
                    return self.refuse(ReasonCode::ProtocolError);
                };
                // The proven user, not whatever the CONNECT named, is who the ACL judges.
                pending.connect.username = MqttString::new(&username).ok();
                self.auth_username = Some(username);
                self.open(*pending, data, broker, auth, now_ms);
            }
            AuthStep::Failure(reason) => {
                self.exchange = None;
                self.pending_connect = None;
                broker.auth_failed();
                self.refuse(reason);
            }
        }
    }

    /// An AUTH once connected: a re-authentication (§4.12.1), by the CONNECT's method. While
    /// it runs the client goes on as before; if it fails the connection ends.
    fn on_reauth(
        &mut self,
        packet: Auth,
        broker: &mut Broker,
        auth: &dyn Authenticator,
        now_ms: u64,
    ) {
        let Some(method) = self.auth_method.clone() else {
            return self.fail_because(
                ReasonCode::ProtocolError,
                "[MQTT-4.12.0-7] AUTH from a client that connected without an authentication method",
                broker,
                now_ms,
            );
        };
        if packet.properties.authentication_method.as_ref() != Some(&method) {
            return self.fail_because(
                ReasonCode::ProtocolError,
                "[MQTT-4.12.1-1] re-authentication must use the CONNECT's authentication method",
                broker,
                now_ms,
            );
        }
        match (packet.reason_code, self.exchange.is_some()) {
            (ReasonCode::ReAuthenticate, false) => {
                let Some(exchange) = auth.start_exchange(method.as_str()) else {
                    broker.auth_failed();
                    return self.fail(ReasonCode::NotAuthorized, broker, now_ms);
                };
                self.exchange = Some(exchange);
            }
            (ReasonCode::ContinueAuthentication, true) => {}
            _ => {
                return self.fail_because(
                    ReasonCode::ProtocolError,
                    "AUTH 0x19 starts a re-authentication, AUTH 0x18 continues a running one",
                    broker,
                    now_ms,
                )
            }
        }
        let data = packet.properties.authentication_data.unwrap_or_default();
        let Some(step) = self.exchange.as_mut().map(|exchange| exchange.step(&data)) else {
            return;
        };
        match step {
            AuthStep::Continue(data) => {
                let packet = self.auth_packet(ReasonCode::ContinueAuthentication, data);
                self.out.push(packet);
            }
            AuthStep::Success { username, data } => {
                self.exchange = None;
                if self.auth_username.as_deref() != Some(username.as_str()) {
                    broker.auth_failed();
                    return self.fail_because(
                        ReasonCode::NotAuthorized,
                        "re-authenticated as another user",
                        broker,
                        now_ms,
                    );
                }
                let packet = self.auth_packet(ReasonCode::Success, data.unwrap_or_default());
                self.out.push(packet);
            }
            AuthStep::Failure(reason) => {
                self.exchange = None;
                broker.auth_failed();
                // DISCONNECT has no 0x86: Not authorized, and the reason in words.
                self.fail_because(ReasonCode::NotAuthorized, explain(reason), broker, now_ms);
            }
        }
    }

    /// An AUTH packet of the running method carrying `data` (left out when empty).
    fn auth_packet(&self, reason_code: ReasonCode, data: bytes::Bytes) -> Packet {
        Packet::Auth(Auth {
            reason_code,
            properties: AuthProperties {
                authentication_method: self.auth_method.clone(),
                authentication_data: (!data.is_empty()).then_some(data),
                ..AuthProperties::default()
            },
        })
    }

    /// Opens the session of an authenticated CONNECT: its permissions, limits, will, and the
    /// CONNACK once the broker has the session (`auth_data`: the last Authentication Data of
    /// enhanced authentication, for the CONNACK).
    fn open(
        &mut self,
        pending: PendingConnect,
        auth_data: Option<bytes::Bytes>,
        broker: &mut Broker,
        auth: &dyn Authenticator,
        now_ms: u64,
    ) {
        let PendingConnect {
            connect,
            client_id,
            assigned_client_id,
        } = pending;
        let v5 = self.protocol.is_v5();
        self.permissions = auth.permissions(&connect, client_id.as_str());
        if let (Some(permissions), Some(will)) = (&self.permissions, &connect.will) {
            if !permissions.may_publish(will.topic.as_str()) {
                return self.refuse_because(
                    ReasonCode::NotAuthorized,
                    "not authorized to publish the will's topic",
                );
            }
        }

        let requested_expiry = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            self.config.session_expiry_max_secs
        };
        self.expiry_secs = requested_expiry.min(self.config.session_expiry_max_secs);
        self.connected_with_zero_expiry = requested_expiry == 0;

        let keep_alive_max = self.config.keep_alive_max_secs;
        let mut keep_alive = connect.keep_alive;
        let mut server_keep_alive = None;
        if v5 && keep_alive_max > 0 && (keep_alive == 0 || keep_alive > keep_alive_max) {
            keep_alive = keep_alive_max;
            server_keep_alive = Some(keep_alive_max);
        }
        self.keep_alive_grace_ms = u64::from(keep_alive) * 1500;
        self.deadline_ms = now_ms.saturating_add(self.keep_alive_grace_ms);

        self.inbound_aliases =
            InboundAliases::new(if v5 { self.config.topic_alias_max } else { 0 });
        self.outbound_aliases =
            OutboundAliases::new(connect.properties.topic_alias_maximum.unwrap_or(0));
        self.client_packet_size_max = connect.properties.maximum_packet_size.map(NonZeroU32::get);

        let will = connect.will.map(|will| Will {
            delay_secs: will.properties.will_delay_interval.unwrap_or(0),
            message: Message {
                topic: will.topic,
                payload: will.payload,
                qos: will.qos,
                retain: will.retain,
                properties: PublishProperties {
                    payload_format_indicator: will.properties.payload_format_indicator,
                    message_expiry_interval: will.properties.message_expiry_interval,
                    content_type: will.properties.content_type,
                    response_topic: will.properties.response_topic,
                    correlation_data: will.properties.correlation_data,
                    user_properties: will.properties.user_properties,
                    ..PublishProperties::default()
                },
                publisher: Some(client_id.clone()),
                received_at_ms: now_ms,
            },
        });
        let receive_maximum = connect
            .properties
            .receive_maximum
            .map_or(u16::MAX, |r| r.get());
        let request = ConnectRequest {
            client_id: client_id.clone(),
            clean_start: connect.clean_start,
            expiry_secs: self.expiry_secs,
            will,
            receive_maximum,
        };
        if !broker.is_available() {
            // Refused before the broker sees it: a CONNACK refusal means the CONNECT changed
            // nothing (see `kick` for one the broker has taken).
            return self.refuse(ReasonCode::ServerUnavailable);
        }
        self.client_id = Some(client_id);
        self.phase = Phase::Connected;
        if self.config.publish_rate_max > 0 {
            self.publish_bucket = Some(TokenBucket::new(self.config.publish_rate_max, now_ms));
        }

        let mut properties = ConnAckProperties::default();
        if v5 {
            properties.assigned_client_identifier = assigned_client_id;
            properties.server_keep_alive = server_keep_alive;
            if self.expiry_secs != requested_expiry {
                properties.session_expiry_interval = Some(self.expiry_secs);
            }
            properties.receive_maximum = std::num::NonZeroU16::new(self.config.receive_maximum);
            properties.maximum_packet_size = NonZeroU32::new(self.config.packet_size_max);
            properties.topic_alias_maximum = Some(self.config.topic_alias_max);
            if !self.config.retain_available {
                properties.retain_available = Some(false);
            }
            if self.config.maximum_qos < QoS::ExactlyOnce {
                properties.maximum_qos = Some(self.config.maximum_qos);
            }
            properties.authentication_method = self.auth_method.clone();
            properties.authentication_data = auth_data;
        }
        let ticket = self.owe(PendingReply::ConnAck(ConnAck {
            session_present: false,
            reason_code: ReasonCode::Success,
            properties,
        }));
        broker.connect(self.conn, ticket, request, now_ms);
    }

    fn on_publish(&mut self, publish: Publish, broker: &mut Broker, now_ms: u64) {
        let v5 = self.protocol.is_v5();
        if let Some(bucket) = &mut self.publish_bucket {
            if !bucket.take(now_ms) {
                broker.limit_hit(|l| l.publish_rate += 1);
                return self.fail(ReasonCode::MessageRateTooHigh, broker, now_ms);
            }
        }
        if publish.qos() > self.config.maximum_qos {
            return self.fail(ReasonCode::QoSNotSupported, broker, now_ms);
        }
        if publish.retain && !self.config.retain_available {
            return self.fail(ReasonCode::RetainNotSupported, broker, now_ms);
        }
        // [MQTT-3.3.4-6]: subscription identifiers only go from server to client.
        if !publish.properties.subscription_identifiers.is_empty() {
            return self.fail_because(
                ReasonCode::ProtocolError,
                "[MQTT-3.3.4-6] a client's PUBLISH carries a subscription identifier",
                broker,
                now_ms,
            );
        }
        let alias = publish.properties.topic_alias.map(|a| a.get());
        let topic = match self.inbound_aliases.resolve(publish.topic, alias) {
            Ok(topic) => topic,
            Err(AliasError::OutOfRange) => {
                return self.fail(ReasonCode::TopicAliasInvalid, broker, now_ms)
            }
            Err(AliasError::Unknown) => {
                return self.fail_because(
                    ReasonCode::ProtocolError,
                    "topic alias used before a topic was set for it",
                    broker,
                    now_ms,
                )
            }
        };
        let qos_pid = publish.qos_pid;
        let refusal = if levels(topic.as_str()) > self.config.topic_levels_max {
            broker.limit_hit(|l| l.topic_levels += 1);
            Some(ReasonCode::TopicNameInvalid)
        } else if publish.retain
            && !publish.payload.is_empty()
            && !broker.state().retained_room(&topic)
        {
            broker.limit_hit(|l| l.retained += 1);
            Some(ReasonCode::QuotaExceeded)
        } else if self
            .permissions
            .as_ref()
            .is_some_and(|p| !p.may_publish(topic.as_str()))
        {
            Some(ReasonCode::NotAuthorized)
        } else {
            None
        };
        if let Some(reason) = refusal {
            // MQTT 5 answers a QoS 1/2 publish with the reason; QoS 0 and MQTT 3 have no
            // way to say no, so the message is dropped (and a QoS 1/2 one acknowledged, as
            // Mosquitto does).
            if qos_pid != QosPid::AtMostOnce {
                let pending = PendingReply::Ack {
                    qos_pid,
                    fixed: Some(reason),
                };
                self.reply_now(pending, Completion::default());
            }
            return;
        }
        // MQTT 5 lets the server check a payload declared UTF-8 (§3.3.2.3.2).
        let bad_payload = v5
            && publish.properties.payload_format_indicator == Some(true)
            && std::str::from_utf8(&publish.payload).is_err();
        if bad_payload {
            if qos_pid == QosPid::AtMostOnce {
                return self.fail(ReasonCode::PayloadFormatInvalid, broker, now_ms);
            }
            let pending = PendingReply::Ack {
                qos_pid,
                fixed: Some(ReasonCode::PayloadFormatInvalid),
            };
            return self.reply_now(pending, Completion::default());
        }
        let mut properties = publish.properties;
        properties.topic_alias = None;
        let message = Message {
            topic,
            payload: publish.payload,
            qos: qos_pid.qos(),
            retain: publish.retain,
            properties,
            publisher: self.client_id.clone(),
            received_at_ms: now_ms,
        };
        let qos2_packet_id = match qos_pid {
            QosPid::ExactlyOnce(packet_id) => Some(packet_id),
            _ => None,
        };
        // QoS 0 has no reply; the ticket is then never answered nor owed.
        let ticket = match qos_pid {
            QosPid::AtMostOnce => 0,
            _ => self.owe(PendingReply::Ack {
                qos_pid,
                fixed: None,
            }),
        };
        match broker.publish(self.conn, ticket, message, qos2_packet_id, true) {
            Ok(()) => {}
            Err(PublishError::ReceiveMaximumExceeded) => {
                self.fail(ReasonCode::ReceiveMaximumExceeded, broker, now_ms)
            }
            Err(PublishError::NotConnected) => self.close(),
        }
    }

    fn on_pubrec(&mut self, rec: PubReply, broker: &mut Broker, now_ms: u64) {
        if rec.reason_code.is_error() {
            // The client refused the message: it is done, no PUBREL ([MQTT-4.3.3-4]).
            broker.discard(self.conn, rec.packet_id, now_ms);
            return;
        }
        let known = match broker.pubrec(self.conn, rec.packet_id) {
            PubRecOutcome::Committing => return,
            PubRecOutcome::Release => true,
            PubRecOutcome::Unknown => false,
        };
        self.out.push(Packet::PubRel(reply(
            rec.packet_id,
            known,
            ReasonCode::PacketIdentifierNotFound,
        )));
    }

    fn on_subscribe(&mut self, subscribe: Subscribe, broker: &mut Broker, now_ms: u64) {
        let identifier = subscribe.properties.subscription_identifier;
        let mut reason_codes = Vec::with_capacity(subscribe.filters.len());
        let mut subscriptions: Vec<(TopicFilter, Subscription)> =
            Vec::with_capacity(subscribe.filters.len());
        let existing = self
            .client_id
            .as_ref()
            .and_then(|c| broker.session(c.as_str()))
            .map(|s| s.subscriptions.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        let mut count = existing.len();
        let mut bytes: usize = existing.iter().map(TopicFilter::len).sum();
        let mut node_bytes = broker.subscription_bytes();
        for (filter, mut options) in subscribe.filters {
            if levels(filter.matching_filter()) > self.config.topic_levels_max {
                broker.limit_hit(|l| l.topic_levels += 1);
                reason_codes.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            let new_filter =
                !existing.contains(&filter) && !subscriptions.iter().any(|(f, _)| *f == filter);
            if new_filter && count >= self.config.subscriptions_max {
                broker.limit_hit(|l| l.subscriptions += 1);
                reason_codes.push(ReasonCode::QuotaExceeded);
                continue;
            }
            if new_filter && bytes + filter.len() > self.config.subscription_bytes_max {
                broker.limit_hit(|l| l.subscription_bytes += 1);
                reason_codes.push(ReasonCode::QuotaExceeded);
                continue;
            }
            if new_filter && node_bytes + filter.len() > self.config.node_subscription_bytes_max {
                broker.limit_hit(|l| l.node_subscription_bytes += 1);
                reason_codes.push(ReasonCode::QuotaExceeded);
                continue;
            }
            let allowed = self
                .permissions
                .as_ref()
                .is_none_or(|p| p.may_subscribe(filter.as_str()));
            if !allowed {
                reason_codes.push(ReasonCode::NotAuthorized);
                continue;
            }
            options.qos = options.qos.min(self.config.maximum_qos);
            if new_filter {
                count += 1;
                bytes += filter.len();
                node_bytes += filter.len();
            }
            reason_codes.push(match options.qos {
                QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            subscriptions.push((
                filter,
                Subscription {
                    options,
                    identifier,
                },
            ));
        }
        let suback = PendingReply::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            properties: AckProperties::default(),
            reason_codes,
        });
        if subscriptions.is_empty() {
            // Every filter was refused: nothing for the broker to do.
            return self.reply_now(suback, Completion::default());
        }
        let ticket = self.owe(suback);
        broker.subscribe(self.conn, ticket, subscriptions, now_ms);
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe, broker: &mut Broker) {
        let ticket = self.owe(PendingReply::UnsubAck(unsubscribe.packet_id));
        broker.unsubscribe(self.conn, ticket, unsubscribe.filters);
    }

    fn on_disconnect(&mut self, disconnect: Disconnect, broker: &mut Broker, now_ms: u64) {
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            if self.connected_with_zero_expiry && expiry != 0 {
                return self.fail_because(
                    ReasonCode::ProtocolError,
                    "DISCONNECT sets a session expiry after CONNECT set none (MQTT 5 §3.14.2.2.2)",
                    broker,
                    now_ms,
                );
            }
            self.expiry_secs = expiry.min(self.config.session_expiry_max_secs);
        }
        // Only a normal disconnection (0x00) discards the will ([MQTT-3.14.4-3], §3.1.2.5);
        // 0x04 asks for it, and a client that ends with an error code has not ended normally.
        let publish_will = disconnect.reason_code != ReasonCode::Success;
        broker.disconnect(self.conn, self.expiry_secs, publish_will, now_ms);
        self.ended = true;
        self.close();
    }

    /// Refuses a CONNECT with this reason and closes.
    fn refuse(&mut self, reason: ReasonCode) {
        self.refuse_because(reason, explain(reason));
    }

    /// Refuses a CONNECT with this reason and, in MQTT 5, says why in a reason string (which
    /// CONNACK may carry whatever the client's Request Problem Information, [MQTT-3.1.2-29]).
    fn refuse_because(&mut self, reason: ReasonCode, why: &str) {
        let mut properties = ConnAckProperties::default();
        if self.protocol.is_v5() && !why.is_empty() {
            properties.reason_string = MqttString::new(why).ok();
        }
        self.out.push(Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code: reason,
            properties,
        }));
        self.close();
    }

    /// Ends the connection for a protocol violation: DISCONNECT with the reason (MQTT 5),
    /// then close. The will is published, as for any abnormal end.
    fn fail(&mut self, reason: ReasonCode, broker: &mut Broker, now_ms: u64) {
        self.fail_because(reason, explain(reason), broker, now_ms);
    }

    /// [`Session::fail`] with a reason string that says more than the reason code.
    fn fail_because(&mut self, reason: ReasonCode, why: &str, broker: &mut Broker, now_ms: u64) {
        // No DISCONNECT before a CONNACK ([MQTT-3.14.0-1]): a client that errs while its
        // CONNACK waits for a commit just sees the connection close.
        if self.protocol.is_v5() && self.connack_sent {
            let disconnect = self.disconnect_packet(reason, why);
            self.out.push(Packet::Disconnect(disconnect));
        }
        self.on_closed(broker, now_ms);
    }

    /// A server DISCONNECT with a reason string, left out if the packet would then exceed
    /// the client's Maximum Packet Size ([MQTT-3.14.2-3]). DISCONNECT may carry one whatever
    /// the client's Request Problem Information ([MQTT-3.1.2-29]).
    fn disconnect_packet(&self, reason: ReasonCode, why: &str) -> Disconnect {
        let reason = disconnect_reason(reason);
        let mut disconnect = Disconnect::new(reason);
        if why.is_empty() {
            return disconnect;
        }
        disconnect.properties.reason_string = MqttString::new(why).ok();
        let packet = Packet::Disconnect(disconnect);
        let fits = match self.client_packet_size_max {
            Some(max) => packet
                .encoded_len(self.protocol)
                .is_ok_and(|len| len <= max as usize),
            None => true,
        };
        match packet {
            Packet::Disconnect(disconnect) if fits => disconnect,
            _ => Disconnect::new(reason),
        }
    }

    fn close(&mut self) {
        self.phase = Phase::Closing;
    }
}

/// The levels of a topic name or filter.
fn levels(topic: &str) -> usize {
    topic.bytes().filter(|&b| b == b'/').count() + 1
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

/// The code a server DISCONNECT carries for `reason`. Some reasons the broker ends a
/// connection for exist only in CONNACK: `0x88 Server unavailable` (a node without quorum,
/// G5) is not a DISCONNECT reason code (MQTT 5 §3.14.2.1), so a connected client is told
/// `0x9C Use another server`, which says what it should do; anything else unknown becomes
/// `0x80 Unspecified error`. (Keel's own decoder refuses a DISCONNECT carrying 0x88, as strict
/// clients do: found by `jepsen/`.)
fn disconnect_reason(reason: ReasonCode) -> ReasonCode {
    if reason.is_valid_for(ReasonContext::Disconnect) {
        return reason;
    }
    match reason {
        ReasonCode::ServerUnavailable => ReasonCode::UseAnotherServer,
        _ => ReasonCode::UnspecifiedError,
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
