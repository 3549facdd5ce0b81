//! Behaviour of the session state machine, driven packet by packet against a real broker.

use std::collections::BTreeMap;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;

use super::*;
use crate::broker::{Broker, BrokerConfig, ConnId, Effect};
use crate::codec::*;

mod connect;
mod enhanced_auth;
mod flows;
mod limits;

/// A broker with sessions attached, routing effects the way the shell does.
pub(super) struct Hub {
    pub(super) broker: Broker,
    pub(super) sessions: BTreeMap<ConnId, Session>,
    pub(super) config: SessionConfig,
    pub(super) now_ms: u64,
}

impl Hub {
    pub(super) fn new() -> Hub {
        Hub::with_config(SessionConfig::default())
    }

    fn with_config(config: SessionConfig) -> Hub {
        Hub {
            broker: Broker::new(BrokerConfig::default()),
            sessions: BTreeMap::new(),
            config,
            now_ms: 1_000,
        }
    }

    /// Sends a packet from connection `conn` (opened on first use); returns what `conn` got.
    pub(super) fn send(&mut self, conn: ConnId, packet: Packet) -> Vec<Packet> {
        self.send_with(conn, packet, &AllowAll)
    }

    /// [`Hub::send`], the session judged by `auth`.
    fn send_with(&mut self, conn: ConnId, packet: Packet, auth: &dyn Authenticator) -> Vec<Packet> {
        let now = self.now_ms;
        let config = self.config.clone();
        let session = self
            .sessions
            .entry(conn)
            .or_insert_with(|| Session::new(conn, config, now, 10_000, 42));
        session.handle(packet, &mut self.broker, auth, now);
        self.settle();
        self.take(conn)
    }

    /// Carries out broker effects until none are left.
    pub(super) fn settle(&mut self) {
        loop {
            self.broker.commit_pending();
            let effects = self.broker.take_effects();
            if effects.is_empty() {
                break;
            }
            for effect in effects {
                match effect {
                    Effect::Deliver { conn, delivery } => {
                        if let Some(s) = self.sessions.get_mut(&conn) {
                            s.deliver(delivery, &mut self.broker, self.now_ms);
                        }
                    }
                    Effect::Disconnect { conn, reason } => {
                        if let Some(s) = self.sessions.get_mut(&conn) {
                            s.kick(reason);
                        }
                    }
                    Effect::Reply {
                        conn,
                        ticket,
                        completion,
                    } => {
                        if let Some(s) = self.sessions.get_mut(&conn) {
                            s.on_reply(ticket, completion);
                        }
                    }
                    Effect::Forward { .. } => panic!("a cluster of one forwards nothing"),
                }
            }
        }
        self.broker.validate();
    }

    pub(super) fn take(&mut self, conn: ConnId) -> Vec<Packet> {
        self.sessions
            .get_mut(&conn)
            .map(|s| s.output().collect())
            .unwrap_or_default()
    }

    fn closing(&self, conn: ConnId) -> bool {
        self.sessions[&conn].is_closing()
    }

    pub(super) fn connect(&mut self, conn: ConnId, connect: Connect) -> ConnAck {
        match self.send(conn, Packet::Connect(Box::new(connect))).first() {
            Some(Packet::ConnAck(ack)) => ack.clone(),
            other => panic!("expected CONNACK first, got {other:?}"),
        }
    }
}

pub(super) fn connect(protocol: Protocol, client_id: &str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 0,
        properties: ConnectProperties::default(),
        client_id: MqttString::new(client_id).unwrap(),
        will: None,
        username: None,
        password: None,
    }
}

pub(super) fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

pub(super) fn publish(topic: &str, qos_pid: QosPid, payload: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos_pid,
        retain: false,
        topic: TopicName::new(topic).unwrap(),
        properties: PublishProperties::default(),
        payload: Bytes::from_static(payload),
    })
}

pub(super) fn subscribe(filter: &str, qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        properties: SubscribeProperties::default(),
        filters: vec![(
            TopicFilter::new(filter).unwrap(),
            SubscriptionOptions::new(qos),
        )],
    })
}

fn disconnect_reason(packets: &[Packet]) -> Option<ReasonCode> {
    packets.iter().find_map(|p| match p {
        Packet::Disconnect(d) => Some(d.reason_code),
        _ => None,
    })
}
