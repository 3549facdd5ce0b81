//! CONNECT and CONNACK: limits announced, client ids, refusals and their reasons, closing before the CONNACK.

use super::*;

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
