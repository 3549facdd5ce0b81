//! CONNECT: checks, enhanced authentication (MQTT 5 AUTH) at CONNECT and re-authentication,
//! and opening the session in the broker; the CONNACK follows once the broker says whether a
//! session was present.

use std::num::NonZeroU32;

use crate::broker::{Broker, ConnectRequest};
use crate::codec::{
    Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, MqttString, Packet, Protocol,
    PublishProperties, QoS, ReasonCode,
};
use crate::state::{Message, Will};

use super::{explain, PendingConnect, PendingReply, Phase, Session, TokenBucket};
use crate::session::alias::{InboundAliases, OutboundAliases};
use crate::session::auth::{AuthStep, Authenticator};

impl Session {
    pub(super) fn on_connect(
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
    pub(super) fn on_connect_auth(
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
    pub(super) fn step_connect_auth(
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
    pub(super) fn on_reauth(
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
    pub(super) fn auth_packet(&self, reason_code: ReasonCode, data: bytes::Bytes) -> Packet {
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
    pub(super) fn open(
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

        let will = connect.will.map(|will| will_of(will, &client_id, now_ms));
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

        let properties = if v5 {
            self.connack_properties(
                assigned_client_id,
                server_keep_alive,
                requested_expiry,
                auth_data,
            )
        } else {
            ConnAckProperties::default()
        };
        let ticket = self.owe(PendingReply::ConnAck(ConnAck {
            session_present: false,
            reason_code: ReasonCode::Success,
            properties,
        }));
        broker.connect(self.conn, ticket, request, now_ms);
    }

    /// The CONNACK properties of an MQTT 5 connection: what the server assigned or changed
    /// and the limits the client must keep.
    fn connack_properties(
        &self,
        assigned_client_id: Option<MqttString>,
        server_keep_alive: Option<u16>,
        requested_expiry: u32,
        auth_data: Option<bytes::Bytes>,
    ) -> ConnAckProperties {
        let config = &self.config;
        ConnAckProperties {
            assigned_client_identifier: assigned_client_id,
            server_keep_alive,
            session_expiry_interval: (self.expiry_secs != requested_expiry)
                .then_some(self.expiry_secs),
            receive_maximum: std::num::NonZeroU16::new(config.receive_maximum),
            maximum_packet_size: NonZeroU32::new(config.packet_size_max),
            topic_alias_maximum: Some(config.topic_alias_max),
            retain_available: (!config.retain_available).then_some(false),
            maximum_qos: (config.maximum_qos < QoS::ExactlyOnce).then_some(config.maximum_qos),
            authentication_method: self.auth_method.clone(),
            authentication_data: auth_data,
            ..ConnAckProperties::default()
        }
    }
}

/// The will of a CONNECT as the broker keeps it as the broker keeps it, published by `client_id`.
fn will_of(will: crate::codec::LastWill, client_id: &MqttString, now_ms: u64) -> Will {
    Will {
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
    }
}
