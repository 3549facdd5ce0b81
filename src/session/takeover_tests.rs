//! A connection whose session was taken over answers nothing while the DISCONNECT that tells
//! it so is on its way. The broker lets go of the old connection at once; its task hears of
//! it only when it next reads its outbox, and the client may have sent something meanwhile.

use super::tests::{connect, pid, publish, subscribe, Hub};
use super::{AllowAll, Session};
use crate::broker::ConnId;
use crate::codec::*;

/// A CONNECT that resumes a lasting MQTT 5 session.
fn durable(client_id: &str) -> Connect {
    let mut connect = connect(Protocol::V5, client_id);
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(3_600);
    connect
}

/// Connection `conn` handles `packet` while the broker's effects wait, as they do between the
/// broker taking a session over and the old connection's task reading its outbox; returns
/// what `conn` answered.
fn handle_before_effects(hub: &mut Hub, conn: ConnId, packet: Packet) -> Vec<Packet> {
    let (config, now) = (hub.config.clone(), hub.now_ms);
    let session = hub
        .sessions
        .entry(conn)
        .or_insert_with(|| Session::new(conn, config, now, 10_000, 42));
    session.handle(packet, &mut hub.broker, &AllowAll, now);
    hub.take(conn)
}

fn only_publish(packets: &[Packet]) -> &Publish {
    match packets {
        [Packet::Publish(p)] => p,
        other => panic!("expected one PUBLISH, got {other:?}"),
    }
}

#[test]
fn a_pubrec_on_a_taken_over_connection_gets_no_pubrel() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), durable("sub"));
    hub.send(ConnId(1), subscribe("t", QoS::ExactlyOnce));
    hub.connect(ConnId(2), connect(Protocol::V5, "pub"));
    hub.send(
        ConnId(2),
        publish("t", QosPid::ExactlyOnce(pid(9)), b"once"),
    );
    let first = only_publish(&hub.take(ConnId(1))).clone();
    let id = first.packet_id().unwrap();

    // The client reconnects; its PUBREC on the old connection crosses the takeover.
    handle_before_effects(
        &mut hub,
        ConnId(3),
        Packet::Connect(Box::new(durable("sub"))),
    );
    let mut old = handle_before_effects(&mut hub, ConnId(1), Packet::PubRec(PubReply::new(id)));
    hub.settle();
    old.extend(hub.take(ConnId(1)));
    assert!(
        matches!(&old[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::SessionTakenOver),
        "the old connection got {old:?}, not just its DISCONNECT: a PUBREL would make the \
         client forget packet id {id:?} while the session still holds the message"
    );
    // The new connection gets the message again under the same packet id, marked DUP, so
    // the client (still holding the id) knows it for the one it has.
    let new = hub.take(ConnId(3));
    assert!(matches!(&new[0], Packet::ConnAck(ack) if ack.session_present));
    let again = only_publish(&new[1..]);
    assert_eq!((again.packet_id(), again.dup), (Some(id), true));
    assert_eq!(again.payload, first.payload);
    let out = hub.send(ConnId(3), Packet::PubRec(PubReply::new(id)));
    assert!(
        matches!(&out[..], [Packet::PubRel(r)] if r.packet_id == id && r.reason_code == ReasonCode::Success)
    );
    hub.send(ConnId(3), Packet::PubComp(PubReply::new(id)));
    assert!(hub.broker.session("sub").unwrap().queue.is_empty());
}

/// Holds without the guard in `Session::handle` too, because the broker answers a PUBREL
/// through its effects, which reach the old connection after its DISCONNECT; kept so that a
/// change of that order cannot bring the same loss back.
#[test]
fn a_pubrel_on_a_taken_over_connection_gets_no_pubcomp() {
    let mut hub = Hub::new();
    hub.connect(ConnId(1), connect(Protocol::V5, "sub"));
    hub.send(ConnId(1), subscribe("t", QoS::AtLeastOnce));
    hub.connect(ConnId(2), durable("pub"));
    let out = hub.send(
        ConnId(2),
        publish("t", QosPid::ExactlyOnce(pid(5)), b"first"),
    );
    assert!(matches!(&out[..], [Packet::PubRec(r)] if r.packet_id == pid(5)));
    assert_eq!(only_publish(&hub.take(ConnId(1))).payload, &b"first"[..]);

    // The publisher reconnects; its PUBREL on the old connection crosses the takeover.
    handle_before_effects(
        &mut hub,
        ConnId(3),
        Packet::Connect(Box::new(durable("pub"))),
    );
    let mut old = handle_before_effects(&mut hub, ConnId(2), Packet::PubRel(PubReply::new(pid(5))));
    hub.settle();
    old.extend(hub.take(ConnId(2)));
    assert!(
        matches!(&old[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::SessionTakenOver),
        "the old connection got {old:?}, not just its DISCONNECT: a PUBCOMP would free packet \
         id 5 at the client while the session still holds it, and the next message under \
         that id would be taken for a resend and dropped"
    );
    let new = hub.take(ConnId(3));
    assert!(matches!(&new[..], [Packet::ConnAck(ack)] if ack.session_present));
    // With no PUBCOMP, the client sends its PUBREL again on the new connection.
    let out = hub.send(ConnId(3), Packet::PubRel(PubReply::new(pid(5))));
    assert!(
        matches!(&out[..], [Packet::PubComp(c)] if c.packet_id == pid(5) && c.reason_code == ReasonCode::Success)
    );
    // Packet id 5 is free again: a new message under it is routed, not taken for a resend.
    hub.send(
        ConnId(3),
        publish("t", QosPid::ExactlyOnce(pid(5)), b"second"),
    );
    assert_eq!(only_publish(&hub.take(ConnId(1))).payload, &b"second"[..]);
}
