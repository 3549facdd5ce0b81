//! Behaviour of the session state machine, driven packet by packet against a real broker.

use std::collections::BTreeMap;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;

use super::*;
use crate::broker::{Broker, BrokerConfig, ConnId, Effect};
use crate::codec::*;

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

#[test]
fn v5_connack_announces_the_limits() {
    let mut hub = Hub::new();
    let ack = hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert!(!ack.session_present);
    assert_eq!(ack.properties.receive_maximum, NonZeroU16::new(256));
    assert_eq!(ack.properties.topic_alias_maximum, Some(64));
    assert_eq!(
        ack.properties.maximum_packet_size,
        NonZeroU32::new(1024 * 1024)
    );
    assert_eq!(ack.properties.maximum_qos, None, "QoS 2 is supported");
}

#[test]
fn empty_client_id_is_assigned_in_v5_and_refused_for_a_v3_persistent_session() {
    let mut hub = Hub::new();
    let ack = hub.connect(ConnId(1), connect(Protocol::V5, ""));
    assert!(ack.properties.assigned_client_identifier.is_some());

    let mut persistent = connect(Protocol::V3_1_1, "");
    persistent.clean_start = false;
    let ack = hub.connect(ConnId(2), persistent);
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(hub.closing(ConnId(2)));

    let ack = hub.connect(ConnId(3), connect(Protocol::V3_1_1, ""));
    assert_eq!(
        ack.reason_code,
        ReasonCode::Success,
        "clean session may have an empty id"
    );
}

#[test]
fn mqtt_3_1_client_id_longer_than_23_is_refused() {
    let mut hub = Hub::new();
    let ack = hub.connect(
        ConnId(1),
        connect(Protocol::V3_1, "abcdefghijklmnopqrstuvwxyz"),
    );
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
}

fn disconnect_reason_string(packets: &[Packet]) -> Option<String> {
    packets.iter().find_map(|p| match p {
        Packet::Disconnect(d) => d.properties.reason_string.as_ref().map(|s| s.to_string()),
        _ => None,
    })
}

#[test]
fn a_second_connect_is_a_protocol_error() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    let out = hub.send(
        ConnId(1),
        Packet::Connect(Box::new(connect(Protocol::V5, "c"))),
    );
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::ProtocolError));
    assert_eq!(
        disconnect_reason_string(&out).as_deref(),
        Some("[MQTT-3.1.0-2] a second CONNECT")
    );
    assert!(hub.closing(ConnId(1)));
}

#[test]
fn server_disconnects_and_refusals_say_why_in_a_reason_string() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    hub.connect(ConnId(2), connect(Protocol::V5, "c"));
    let why = disconnect_reason_string(&hub.take(ConnId(1))).expect("a reason string");
    assert!(why.contains("taken over"), "{why}");

    let mut persistent = connect(Protocol::V3_1_1, "");
    persistent.clean_start = false;
    let refused = hub.connect(ConnId(3), persistent);
    assert_eq!(
        refused.properties.reason_string, None,
        "MQTT 3 has no properties"
    );
    let mut v5 = connect(Protocol::V5, "x".repeat(300).as_str());
    v5.clean_start = false;
    let refused = hub.connect(ConnId(4), v5);
    assert_eq!(refused.reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(refused.properties.reason_string.is_some());
}

#[test]
fn a_node_without_quorum_tells_connected_clients_to_use_another_server() {
    // 0x88 Server unavailable exists only in CONNACK; a DISCONNECT carrying it is malformed.
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    hub.sessions
        .get_mut(&ConnId(1))
        .unwrap()
        .kick(ReasonCode::ServerUnavailable);
    let out = hub.take(ConnId(1));
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::UseAnotherServer));
    for packet in &out {
        let mut bytes = bytes::BytesMut::new();
        packet.encode(Protocol::V5, &mut bytes).unwrap();
        let decoded = Decoder::with_protocol(Protocol::V5, 1 << 20)
            .decode(&mut bytes)
            .expect("a DISCONNECT a strict client accepts");
        assert!(decoded.is_some());
    }
    // A CONNECT refused for the same reason keeps 0x88, which CONNACK allows.
    hub.broker.set_quorum(false);
    let refused = hub.connect(ConnId(2), connect(Protocol::V5, "d"));
    assert_eq!(refused.reason_code, ReasonCode::ServerUnavailable);
}

#[test]
fn a_connect_overtaken_before_its_connack_is_refused_with_a_code_connack_allows() {
    // A persistent session's CONNACK waits for the commit that gives it the client id; a
    // second connection with that id can take it over meanwhile. 0x8E exists only in
    // DISCONNECT: the first connection's CONNACK carries 0x80 and the reason instead.
    let mut hub = Hub::new();
    let mut first = connect(Protocol::V5, "c");
    first.clean_start = false;
    first.properties.session_expiry_interval = Some(60);
    let session = hub
        .sessions
        .entry(ConnId(1))
        .or_insert_with(|| Session::new(ConnId(1), hub.config.clone(), hub.now_ms, 10_000, 42));
    session.handle(
        Packet::Connect(Box::new(first)),
        &mut hub.broker,
        &AllowAll,
        hub.now_ms,
    );
    assert!(
        hub.take(ConnId(1)).is_empty(),
        "the CONNACK waits for the commit"
    );
    hub.sessions
        .get_mut(&ConnId(1))
        .unwrap()
        .kick(ReasonCode::SessionTakenOver);
    let out = hub.take(ConnId(1));
    let [Packet::ConnAck(refused)] = out.as_slice() else {
        panic!("expected one CONNACK, got {out:?}");
    };
    assert_eq!(refused.reason_code, ReasonCode::UnspecifiedError);
    let why = refused
        .properties
        .reason_string
        .as_ref()
        .expect("a reason string");
    assert!(why.as_str().contains("taken over"), "{why:?}");
    let mut bytes = bytes::BytesMut::new();
    out[0].encode(Protocol::V5, &mut bytes).unwrap();
    let decoded = Decoder::with_protocol(Protocol::V5, 1 << 20)
        .decode(&mut bytes)
        .expect("a CONNACK a strict client accepts");
    assert!(decoded.is_some());
    assert!(hub.closing(ConnId(1)));
}

/// A client that errs while its CONNACK waits for a commit (here a second CONNECT on the
/// same connection) sees the connection close: no DISCONNECT may come before a CONNACK
/// ([MQTT-3.14.0-1]).
#[test]
fn a_protocol_error_before_the_connack_sends_no_disconnect_first() {
    let mut hub = Hub::new();
    let mut first = connect(Protocol::V5, "c");
    first.clean_start = false;
    first.properties.session_expiry_interval = Some(60);
    let session = hub
        .sessions
        .entry(ConnId(1))
        .or_insert_with(|| Session::new(ConnId(1), hub.config.clone(), hub.now_ms, 10_000, 42));
    for packet in [first, connect(Protocol::V5, "c")] {
        session.handle(
            Packet::Connect(Box::new(packet)),
            &mut hub.broker,
            &AllowAll,
            hub.now_ms,
        );
    }
    let out = hub.take(ConnId(1));
    assert!(
        !out.iter().any(|p| matches!(p, Packet::Disconnect(_))),
        "{out:?}"
    );
    assert!(hub.closing(ConnId(1)));
}

/// A connection that closes while its CONNACK waits for a commit sends nothing it held back
/// for after the CONNACK ([MQTT-3.2.0-1]), however it closes: a DISCONNECT from the client,
/// a packet only a server sends, or the keep-alive running out. Found by fuzzing.
#[test]
fn a_connection_closing_before_its_connack_sends_nothing_held_for_after_it() {
    let closings: [fn(&mut Hub); 3] = [
        |hub| {
            hub.sessions.get_mut(&ConnId(1)).expect("session").handle(
                Packet::Disconnect(Disconnect::default()),
                &mut hub.broker,
                &AllowAll,
                hub.now_ms,
            )
        },
        |hub| {
            hub.sessions.get_mut(&ConnId(1)).expect("session").handle(
                Packet::PingResp,
                &mut hub.broker,
                &AllowAll,
                hub.now_ms,
            )
        },
        |hub| {
            hub.now_ms += 60_000;
            let now = hub.now_ms;
            hub.sessions
                .get_mut(&ConnId(1))
                .expect("session")
                .on_timer(&mut hub.broker, now);
        },
    ];
    for close in closings {
        let mut hub = Hub::new();
        let mut first = connect(Protocol::V3_1_1, "a");
        first.keep_alive = 10;
        let session = hub
            .sessions
            .entry(ConnId(1))
            .or_insert_with(|| Session::new(ConnId(1), hub.config.clone(), hub.now_ms, 10_000, 42));
        // The CONNECT's registration stays uncommitted: its CONNACK waits.
        for packet in [Packet::Connect(Box::new(first)), Packet::PingReq] {
            session.handle(packet, &mut hub.broker, &AllowAll, hub.now_ms);
        }
        assert!(session.output().next().is_none());
        close(&mut hub);
        assert!(hub.closing(ConnId(1)));
        let out: Vec<Packet> = hub
            .sessions
            .get_mut(&ConnId(1))
            .expect("session")
            .output()
            .collect();
        assert!(
            out.iter().all(|p| matches!(p, Packet::ConnAck(_))),
            "{out:?}"
        );
    }
}

/// A client that ends with a DISCONNECT carrying an error code has not ended normally: only
/// 0x00 discards the will ([MQTT-3.14.4-3], §3.1.2.5).
#[test]
fn a_disconnect_with_an_error_code_publishes_the_will() {
    for (reason, published) in [
        (ReasonCode::Success, false),
        (ReasonCode::DisconnectWithWillMessage, true),
        (ReasonCode::UnspecifiedError, true),
    ] {
        let mut hub = Hub::new();
        hub.connect(ConnId(2), connect(Protocol::V5, "watcher"));
        hub.send(ConnId(2), subscribe("will/t", QoS::AtMostOnce));
        let mut with_will = connect(Protocol::V5, "c");
        with_will.will = Some(LastWill {
            topic: TopicName::new("will/t").unwrap(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        });
        hub.connect(ConnId(1), with_will);
        hub.take(ConnId(2));
        hub.send(ConnId(1), Packet::Disconnect(Disconnect::new(reason)));
        hub.settle();
        let got = hub.take(ConnId(2));
        assert_eq!(
            got.iter().any(|p| matches!(p, Packet::Publish(_))),
            published,
            "DISCONNECT {reason:?}: {got:?}"
        );
    }
}

#[test]
fn a_reason_string_that_would_exceed_the_clients_maximum_packet_size_is_left_out() {
    let mut hub = Hub::new();
    let mut small = connect(Protocol::V5, "c");
    small.properties.maximum_packet_size = NonZeroU32::new(8);
    hub.connect(ConnId(1), small);
    let out = hub.send(
        ConnId(1),
        Packet::Connect(Box::new(connect(Protocol::V5, "c"))),
    );
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::ProtocolError));
    assert_eq!(disconnect_reason_string(&out), None);
}

#[test]
fn qos_flows_are_acknowledged_per_spec() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "p"));
    let out = hub.send(ConnId(1), publish("t", QosPid::AtLeastOnce(pid(3)), b"x"));
    assert!(
        matches!(&out[..], [Packet::PubAck(a)] if a.packet_id == pid(3)
        && a.reason_code == ReasonCode::NoMatchingSubscribers)
    );
    let out = hub.send(ConnId(1), publish("t", QosPid::ExactlyOnce(pid(4)), b"x"));
    assert!(matches!(&out[..], [Packet::PubRec(r)] if r.packet_id == pid(4)));
    let out = hub.send(ConnId(1), Packet::PubRel(PubReply::new(pid(4))));
    assert!(matches!(&out[..], [Packet::PubComp(c)] if c.reason_code == ReasonCode::Success));
    let out = hub.send(ConnId(1), Packet::PubRel(PubReply::new(pid(4))));
    assert!(matches!(&out[..], [Packet::PubComp(c)]
        if c.reason_code == ReasonCode::PacketIdentifierNotFound));
}

#[test]
fn subscriber_receives_and_acknowledges_qos1_and_qos2() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "sub"));
    let out = hub.send(ConnId(1), subscribe("a/+", QoS::ExactlyOnce));
    assert!(matches!(&out[..], [Packet::SubAck(s)] if s.reason_codes == [ReasonCode::GrantedQoS2]));
    hub.connect(ConnId(2), connect(Protocol::V3_1_1, "pub"));

    hub.send(
        ConnId(2),
        publish("a/b", QosPid::AtLeastOnce(pid(1)), b"one"),
    );
    let got = hub.take(ConnId(1));
    let Some(Packet::Publish(p)) = got.first() else {
        panic!("no delivery: {got:?}")
    };
    assert_eq!(p.qos(), QoS::AtLeastOnce);
    assert_eq!(&p.payload[..], b"one");
    hub.send(
        ConnId(1),
        Packet::PubAck(PubReply::new(p.packet_id().unwrap())),
    );

    hub.send(
        ConnId(2),
        publish("a/c", QosPid::ExactlyOnce(pid(2)), b"two"),
    );
    let Some(Packet::Publish(p)) = hub.take(ConnId(1)).first().cloned() else {
        panic!("no QoS 2 delivery")
    };
    let id = p.packet_id().unwrap();
    let out = hub.send(ConnId(1), Packet::PubRec(PubReply::new(id)));
    assert!(matches!(&out[..], [Packet::PubRel(r)] if r.packet_id == id));
    hub.send(ConnId(1), Packet::PubComp(PubReply::new(id)));
    assert!(hub.broker.session("sub").unwrap().queue.is_empty());
}

#[test]
fn topic_aliases_work_both_ways() {
    let mut hub = Hub::new();
    let mut sub = connect(Protocol::V5, "sub");
    sub.properties.topic_alias_maximum = Some(1);
    hub.connect(ConnId(1), sub);
    hub.send(ConnId(1), subscribe("#", QoS::AtMostOnce));
    hub.connect(ConnId(2), connect(Protocol::V5, "pub"));

    // The publisher sets alias 1 for "long/topic", then publishes with an empty topic.
    let mut first = Publish {
        dup: false,
        qos_pid: QosPid::AtMostOnce,
        retain: false,
        topic: TopicName::new("long/topic").unwrap(),
        properties: PublishProperties {
            topic_alias: NonZeroU16::new(1),
            ..Default::default()
        },
        payload: Bytes::from_static(b"1"),
    };
    hub.send(ConnId(2), Packet::Publish(first.clone()));
    first.topic = TopicName::default();
    hub.send(ConnId(2), Packet::Publish(first.clone()));

    // The subscriber gets the topic once, then the alias alone.
    let got: Vec<(String, Option<u16>)> = hub
        .take(ConnId(1))
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((
                p.topic.to_string(),
                p.properties.topic_alias.map(|a| a.get()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(got, [("long/topic".into(), Some(1)), ("".into(), Some(1))]);

    // An alias above our maximum ends the connection with 0x94.
    first.properties.topic_alias = NonZeroU16::new(65);
    first.topic = TopicName::new("x").unwrap();
    let out = hub.send(ConnId(2), Packet::Publish(first));
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::TopicAliasInvalid));
}

#[test]
fn oversized_delivery_is_dropped_for_that_client_only() {
    let mut hub = Hub::new();
    let mut small = connect(Protocol::V5, "small");
    small.properties.maximum_packet_size = NonZeroU32::new(32);
    hub.connect(ConnId(1), small);
    hub.send(ConnId(1), subscribe("t", QoS::AtLeastOnce));
    hub.connect(ConnId(2), connect(Protocol::V5, "big"));
    hub.send(ConnId(2), subscribe("t", QoS::AtLeastOnce));
    hub.connect(ConnId(3), connect(Protocol::V5, "pub"));
    hub.send(
        ConnId(3),
        publish("t", QosPid::AtLeastOnce(pid(1)), &[7u8; 100]),
    );
    assert!(hub.take(ConnId(1)).is_empty());
    assert_eq!(hub.take(ConnId(2)).len(), 1);
    assert!(
        hub.broker.session("small").unwrap().queue.is_empty(),
        "discarded, not stuck"
    );
}

#[test]
fn keep_alive_expires_at_one_and_a_half_times() {
    let mut hub = Hub::new();
    let mut c = connect(Protocol::V5, "c");
    c.keep_alive = 10;
    hub.connect(ConnId(1), c);
    let session = hub.sessions.get_mut(&ConnId(1)).unwrap();
    assert_eq!(session.deadline_ms(), Some(1_000 + 15_000));
    session.on_timer(&mut hub.broker, 15_999);
    assert!(!session.is_closing());
    session.on_timer(&mut hub.broker, 16_000);
    assert!(session.is_closing());
    let out: Vec<Packet> = session.output().collect();
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::KeepAliveTimeout));
}

#[test]
fn server_keep_alive_overrides_a_longer_one_in_v5() {
    let mut hub = Hub::with_config(SessionConfig {
        keep_alive_max_secs: 30,
        ..SessionConfig::default()
    });
    let mut c = connect(Protocol::V5, "c");
    c.keep_alive = 0;
    let ack = hub.connect(ConnId(1), c);
    assert_eq!(ack.properties.server_keep_alive, Some(30));
    assert_eq!(hub.sessions[&ConnId(1)].deadline_ms(), Some(1_000 + 45_000));
}

#[test]
fn disconnect_may_not_set_an_expiry_when_connect_had_none() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    let out = hub.send(
        ConnId(1),
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::Success,
            properties: DisconnectProperties {
                session_expiry_interval: Some(60),
                ..Default::default()
            },
        }),
    );
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::ProtocolError));
}

#[test]
fn session_expiry_set_at_disconnect_keeps_the_session() {
    let mut hub = Hub::new();
    let mut c = connect(Protocol::V5, "c");
    c.properties.session_expiry_interval = Some(10);
    c.clean_start = false;
    hub.connect(ConnId(1), c.clone());
    hub.send(
        ConnId(1),
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::Success,
            properties: DisconnectProperties {
                session_expiry_interval: Some(3600),
                ..Default::default()
            },
        }),
    );
    let session = hub.broker.session("c").unwrap();
    assert_eq!(session.expiry_secs, 3600);
    assert!(hub.connect(ConnId(2), c).session_present);
}

#[test]
fn too_many_unreleased_qos2_publishes_exceed_the_receive_maximum() {
    let mut hub = Hub::new();
    hub.broker = Broker::new(BrokerConfig {
        receive_maximum: 1,
        ..BrokerConfig::default()
    });
    hub.connect(ConnId(1), connect(Protocol::V5, "p"));
    hub.send(ConnId(1), publish("t", QosPid::ExactlyOnce(pid(1)), b"x"));
    let out = hub.send(ConnId(1), publish("t", QosPid::ExactlyOnce(pid(2)), b"x"));
    assert_eq!(
        disconnect_reason(&out),
        Some(ReasonCode::ReceiveMaximumExceeded)
    );
}

#[test]
fn payload_declared_utf8_but_invalid_is_refused_with_0x99() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "p"));
    let out = hub.send(
        ConnId(1),
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtLeastOnce(pid(1)),
            retain: false,
            topic: TopicName::new("t").unwrap(),
            properties: PublishProperties {
                payload_format_indicator: Some(true),
                ..Default::default()
            },
            payload: Bytes::from_static(&[0xFF, 0xFE]),
        }),
    );
    assert!(
        matches!(&out[..], [Packet::PubAck(a)] if a.reason_code == ReasonCode::PayloadFormatInvalid)
    );
}

#[test]
fn qos_above_the_maximum_is_refused() {
    let mut hub = Hub::with_config(SessionConfig {
        maximum_qos: QoS::AtLeastOnce,
        ..SessionConfig::default()
    });
    let ack = hub.connect(ConnId(1), connect(Protocol::V5, "p"));
    assert_eq!(ack.properties.maximum_qos, Some(QoS::AtLeastOnce));
    let out = hub.send(ConnId(1), publish("t", QosPid::ExactlyOnce(pid(1)), b"x"));
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::QoSNotSupported));
    // A subscription is granted at most the maximum.
    hub.connect(ConnId(2), connect(Protocol::V5, "s"));
    let out = hub.send(ConnId(2), subscribe("t", QoS::ExactlyOnce));
    assert!(matches!(&out[..], [Packet::SubAck(s)] if s.reason_codes == [ReasonCode::GrantedQoS1]));
}

#[test]
fn client_publish_with_a_subscription_identifier_is_a_protocol_error() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "p"));
    let out = hub.send(
        ConnId(1),
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: TopicName::new("t").unwrap(),
            properties: PublishProperties {
                subscription_identifiers: vec![NonZeroU32::new(1).unwrap()],
                ..Default::default()
            },
            payload: Bytes::new(),
        }),
    );
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::ProtocolError));
}

#[test]
fn message_expiry_is_decremented_on_delivery() {
    let mut hub = Hub::new();
    let mut sub = connect(Protocol::V5, "sub");
    sub.clean_start = false;
    sub.properties.session_expiry_interval = Some(600);
    hub.connect(ConnId(1), sub.clone());
    hub.send(ConnId(1), subscribe("t", QoS::AtLeastOnce));
    hub.send(ConnId(1), Packet::Disconnect(Disconnect::default()));
    hub.connect(ConnId(2), connect(Protocol::V5, "pub"));
    hub.send(
        ConnId(2),
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtLeastOnce(pid(1)),
            retain: false,
            topic: TopicName::new("t").unwrap(),
            properties: PublishProperties {
                message_expiry_interval: Some(60),
                ..Default::default()
            },
            payload: Bytes::new(),
        }),
    );
    hub.now_ms += 20_000;
    let mut out = hub.send(ConnId(3), Packet::Connect(Box::new(sub)));
    out.remove(0);
    let Some(Packet::Publish(p)) = out.first() else {
        panic!("queued message not delivered: {out:?}")
    };
    assert_eq!(p.properties.message_expiry_interval, Some(40));
}

#[test]
fn will_is_published_on_abnormal_close_but_not_after_disconnect() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V3_1_1, "watcher"));
    hub.send(ConnId(1), subscribe("will", QoS::AtMostOnce));
    let mut dying = connect(Protocol::V3_1_1, "dying");
    dying.will = Some(LastWill {
        topic: TopicName::new("will").unwrap(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    hub.connect(ConnId(2), dying.clone());
    hub.send(ConnId(2), Packet::Disconnect(Disconnect::default()));
    assert!(hub.take(ConnId(1)).is_empty());

    hub.connect(ConnId(3), dying);
    let now = hub.now_ms;
    hub.sessions
        .get_mut(&ConnId(3))
        .unwrap()
        .on_closed(&mut hub.broker, now);
    hub.settle();
    assert!(matches!(&hub.take(ConnId(1))[..], [Packet::Publish(p)] if &p.payload[..] == b"gone"));
}

#[test]
fn takeover_sends_0x8e_to_the_old_connection() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    hub.connect(ConnId(2), connect(Protocol::V5, "c"));
    let old = hub.take(ConnId(1));
    assert_eq!(disconnect_reason(&old), Some(ReasonCode::SessionTakenOver));
    assert!(hub.closing(ConnId(1)));
    assert!(!hub.closing(ConnId(2)));
}

#[test]
fn unsupported_protocol_level_gets_connack_0x01_in_the_3_1_1_layout() {
    let mut hub = Hub::new();
    let mut session = Session::new(ConnId(9), SessionConfig::default(), 0, 10_000, 1);
    session.on_decode_error(
        &DecodeError::UnsupportedProtocolLevel { level: 6 },
        None,
        &mut hub.broker,
        0,
    );
    let out: Vec<Packet> = session.output().collect();
    assert!(matches!(&out[..], [Packet::ConnAck(a)] if a.reason_code.to_v3_connack() == 1));
    assert_eq!(session.protocol(), Protocol::V3_1_1);
    assert!(session.is_closing());
}

#[test]
fn puback_reports_quota_exceeded_when_every_matching_queue_is_full() {
    let mut hub = Hub::new();
    hub.broker = Broker::new(BrokerConfig {
        state: crate::state::StateConfig {
            queue_max: 1,
            ..Default::default()
        },
        ..BrokerConfig::default()
    });
    let mut sub = connect(Protocol::V5, "sub");
    sub.clean_start = false;
    sub.properties.session_expiry_interval = Some(600);
    hub.connect(ConnId(1), sub);
    hub.send(ConnId(1), subscribe("t", QoS::AtLeastOnce));
    hub.send(ConnId(1), Packet::Disconnect(Disconnect::default()));
    hub.connect(ConnId(2), connect(Protocol::V5, "pub"));
    let reasons: Vec<ReasonCode> = (1..=2)
        .flat_map(|n| hub.send(ConnId(2), publish("t", QosPid::AtLeastOnce(pid(n)), b"x")))
        .filter_map(|p| match p {
            Packet::PubAck(a) => Some(a.reason_code),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [ReasonCode::Success, ReasonCode::QuotaExceeded]);
    // QoS 2 with no subscriber says so too, and its resend is plain success.
    let out = hub.send(
        ConnId(2),
        publish("none", QosPid::ExactlyOnce(pid(9)), b"x"),
    );
    assert!(
        matches!(&out[..], [Packet::PubRec(r)] if r.reason_code == ReasonCode::NoMatchingSubscribers)
    );
    let out = hub.send(
        ConnId(2),
        publish("none", QosPid::ExactlyOnce(pid(9)), b"x"),
    );
    assert!(matches!(&out[..], [Packet::PubRec(r)] if r.reason_code == ReasonCode::Success));
}

fn suback_codes(packets: &[Packet]) -> Vec<ReasonCode> {
    packets
        .iter()
        .find_map(|p| match p {
            Packet::SubAck(s) => Some(s.reason_codes.clone()),
            _ => None,
        })
        .expect("a SUBACK")
}

fn ack_reason(packets: &[Packet]) -> Option<ReasonCode> {
    packets.iter().find_map(|p| match p {
        Packet::PubAck(a) | Packet::PubRec(a) => Some(a.reason_code),
        _ => None,
    })
}

#[test]
fn subscriptions_beyond_the_maximum_get_quota_exceeded_and_replacing_one_does_not_count() {
    let mut hub = Hub::with_config(SessionConfig {
        subscriptions_max: 2,
        ..SessionConfig::default()
    });
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    assert_eq!(
        suback_codes(&hub.send(ConnId(1), subscribe("a", QoS::AtLeastOnce))),
        [ReasonCode::GrantedQoS1]
    );
    let two = Packet::Subscribe(Subscribe {
        packet_id: pid(2),
        properties: SubscribeProperties::default(),
        filters: ["b", "c", "a"]
            .iter()
            .map(|f| {
                (
                    TopicFilter::new(f).unwrap(),
                    SubscriptionOptions::new(QoS::AtMostOnce),
                )
            })
            .collect(),
    });
    assert_eq!(
        suback_codes(&hub.send(ConnId(1), two)),
        [
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::QuotaExceeded,
            ReasonCode::GRANTED_QOS_0
        ]
    );
    assert_eq!(hub.broker.session("c").unwrap().subscriptions.len(), 2);
    assert_eq!(hub.broker.stats().limits.subscriptions, 1);
}

#[test]
fn topics_with_too_many_levels_are_refused() {
    let mut hub = Hub::with_config(SessionConfig {
        topic_levels_max: 3,
        ..SessionConfig::default()
    });
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    assert_eq!(
        suback_codes(&hub.send(ConnId(1), subscribe("a/b/c/#", QoS::AtLeastOnce))),
        [ReasonCode::TopicFilterInvalid]
    );
    assert_eq!(
        suback_codes(&hub.send(ConnId(1), subscribe("$share/g/a/b/c", QoS::AtLeastOnce))),
        [ReasonCode::GrantedQoS1],
        "the share prefix does not count"
    );
    let out = hub.send(
        ConnId(1),
        publish("a/b/c/d", QosPid::AtLeastOnce(pid(5)), b"x"),
    );
    assert_eq!(ack_reason(&out), Some(ReasonCode::TopicNameInvalid));
    let out = hub.send(
        ConnId(1),
        publish("a/b/c", QosPid::AtLeastOnce(pid(6)), b"x"),
    );
    assert_eq!(ack_reason(&out), Some(ReasonCode::Success));
}

#[test]
fn a_client_publishing_faster_than_the_rate_is_disconnected_with_0x96() {
    let mut hub = Hub::with_config(SessionConfig {
        publish_rate_max: 10,
        ..SessionConfig::default()
    });
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    // A burst of one second's worth passes, the eleventh in the same instant does not.
    for n in 1..=10 {
        let out = hub.send(ConnId(1), publish("t", QosPid::AtMostOnce, b"x"));
        assert!(disconnect_reason(&out).is_none(), "publish {n}");
    }
    // A tenth of a second later one more token is there.
    hub.now_ms += 100;
    assert!(
        disconnect_reason(&hub.send(ConnId(1), publish("t", QosPid::AtMostOnce, b"x"))).is_none()
    );
    let out = hub.send(ConnId(1), publish("t", QosPid::AtMostOnce, b"x"));
    assert_eq!(
        disconnect_reason(&out),
        Some(ReasonCode::MessageRateTooHigh)
    );
    assert!(hub.closing(ConnId(1)));
    assert_eq!(hub.broker.stats().limits.publish_rate, 1);
}

#[test]
fn retained_messages_beyond_the_maximum_are_refused_but_replacing_one_is_not() {
    let mut hub = Hub::new();
    hub.broker = Broker::new(BrokerConfig {
        state: crate::state::StateConfig {
            retained_max: 1,
            ..Default::default()
        },
        ..BrokerConfig::default()
    });
    hub.connect(ConnId(1), connect(Protocol::V5, "c"));
    let retained = |topic: &str, n: u16| {
        let Packet::Publish(mut p) = publish(topic, QosPid::AtLeastOnce(pid(n)), b"x") else {
            unreachable!()
        };
        p.retain = true;
        Packet::Publish(p)
    };
    assert_eq!(
        ack_reason(&hub.send(ConnId(1), retained("a", 1))),
        Some(ReasonCode::NoMatchingSubscribers)
    );
    assert_eq!(
        ack_reason(&hub.send(ConnId(1), retained("b", 2))),
        Some(ReasonCode::QuotaExceeded)
    );
    assert_eq!(
        ack_reason(&hub.send(ConnId(1), retained("a", 3))),
        Some(ReasonCode::NoMatchingSubscribers)
    );
    assert_eq!(hub.broker.state().retained().count(), 1);
}

/// An enhanced authentication method for the tests: the client must say "one", then "three";
/// the server answers "two", then "four" as user "knocker".
#[derive(Debug)]
struct Knock {
    said_one: bool,
}

impl AuthExchange for Knock {
    fn step(&mut self, data: &[u8]) -> AuthStep {
        match (self.said_one, data) {
            (false, b"one") => {
                self.said_one = true;
                AuthStep::Continue(Bytes::from_static(b"two"))
            }
            (true, b"three") => AuthStep::Success {
                username: "knocker".into(),
                data: Some(Bytes::from_static(b"four")),
            },
            _ => AuthStep::Failure(ReasonCode::NotAuthorized),
        }
    }
}

struct KnockAuth;

impl Authenticator for KnockAuth {
    fn authenticate(&self, _: &Connect) -> Result<(), ReasonCode> {
        Err(ReasonCode::NotAuthorized)
    }

    fn start_exchange(&self, method: &str) -> Option<Box<dyn AuthExchange>> {
        (method == "KNOCK").then(|| Box::new(Knock { said_one: false }) as Box<dyn AuthExchange>)
    }
}

fn knock(reason_code: ReasonCode, data: &'static [u8]) -> Packet {
    Packet::Auth(Auth {
        reason_code,
        properties: AuthProperties {
            authentication_method: Some(MqttString::new("KNOCK").unwrap()),
            authentication_data: Some(Bytes::from_static(data)),
            ..AuthProperties::default()
        },
    })
}

/// (reason code, authentication data) of an AUTH.
fn auth_of(packets: &[Packet]) -> Vec<(ReasonCode, Option<Bytes>)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Auth(a) => Some((a.reason_code, a.properties.authentication_data.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn enhanced_authentication_runs_before_the_connack_and_again_on_re_authentication() {
    let mut hub = Hub::new();
    let mut connect = connect(Protocol::V5, "k");
    connect.properties.authentication_method = Some(MqttString::new("KNOCK").unwrap());
    connect.properties.authentication_data = Some(Bytes::from_static(b"one"));
    let out = hub.send_with(
        ConnId(1),
        Packet::Connect(Box::new(connect.clone())),
        &KnockAuth,
    );
    let two = Some(Bytes::from_static(b"two"));
    assert_eq!(
        auth_of(&out),
        [(ReasonCode::ContinueAuthentication, two.clone())]
    );
    assert_eq!(out.len(), 1, "no CONNACK before the exchange ends: {out:?}");
    assert!(
        hub.broker.state().sessions().next().is_none(),
        "no session yet"
    );

    let out = hub.send_with(
        ConnId(1),
        knock(ReasonCode::ContinueAuthentication, b"three"),
        &KnockAuth,
    );
    let Some(Packet::ConnAck(connack)) = out.first() else {
        panic!("expected CONNACK, got {out:?}");
    };
    assert_eq!(connack.reason_code, ReasonCode::Success);
    assert_eq!(
        connack
            .properties
            .authentication_method
            .as_ref()
            .unwrap()
            .as_str(),
        "KNOCK"
    );
    assert_eq!(
        connack.properties.authentication_data,
        Some(Bytes::from_static(b"four"))
    );

    // Re-authentication: the client keeps working while it runs.
    let out = hub.send_with(
        ConnId(1),
        knock(ReasonCode::ReAuthenticate, b"one"),
        &KnockAuth,
    );
    assert_eq!(auth_of(&out), [(ReasonCode::ContinueAuthentication, two)]);
    let out = hub.send_with(ConnId(1), Packet::PingReq, &KnockAuth);
    assert_eq!(out, [Packet::PingResp]);
    let out = hub.send_with(
        ConnId(1),
        knock(ReasonCode::ContinueAuthentication, b"three"),
        &KnockAuth,
    );
    let four = Some(Bytes::from_static(b"four"));
    assert_eq!(auth_of(&out), [(ReasonCode::Success, four)]);
    // Continuing an exchange that is not running is a protocol error.
    let out = hub.send_with(
        ConnId(1),
        knock(ReasonCode::ContinueAuthentication, b"x"),
        &KnockAuth,
    );
    assert_eq!(disconnect_reason(&out), Some(ReasonCode::ProtocolError));
    assert!(hub.closing(ConnId(1)));

    // A failed exchange refuses the CONNECT; so does an unknown method.
    let out = hub.send_with(
        ConnId(2),
        Packet::Connect(Box::new(connect.clone())),
        &KnockAuth,
    );
    assert_eq!(out.len(), 1);
    let out = hub.send_with(
        ConnId(2),
        knock(ReasonCode::ContinueAuthentication, b"wrong"),
        &KnockAuth,
    );
    assert!(matches!(&out[..], [Packet::ConnAck(c)] if c.reason_code == ReasonCode::NotAuthorized));
    let mut other = connect.clone();
    other.properties.authentication_method = Some(MqttString::new("OTHER").unwrap());
    let out = hub.send_with(ConnId(3), Packet::Connect(Box::new(other)), &KnockAuth);
    assert!(
        matches!(&out[..], [Packet::ConnAck(c)] if c.reason_code == ReasonCode::BadAuthenticationMethod)
    );
    assert_eq!(hub.broker.stats().auth_failures, 2);

    // The CONNECT deadline covers the exchange.
    hub.send_with(ConnId(4), Packet::Connect(Box::new(connect)), &KnockAuth);
    let session = hub.sessions.get_mut(&ConnId(4)).unwrap();
    assert_eq!(session.deadline_ms(), Some(1_000 + 10_000));
    session.on_timer(&mut hub.broker, 11_000);
    assert!(session.is_closing());
}
