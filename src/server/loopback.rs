//! A client inside the node, for the admin API: `POST /api/v1/publish` and deleting a
//! retained message publish through a session of their own, fed packets directly instead of
//! bytes from a socket. The session state machine and the broker treat it like any client,
//! so an HTTP publish gets exactly the guarantees of an MQTT one: its answer comes once the
//! PUBACK/PUBREC would (after the commit, when durable subscribers match), and it reaches
//! other nodes the usual way. It is not subject to the ACL: the admin API has its own
//! access control.

use std::sync::Arc;
use std::time::Duration;

use crate::codec::{
    Connect, ConnectProperties, Disconnect, MqttString, Packet, Protocol, PubReply, Publish, QoS,
    QosPid, ReasonCode,
};
use crate::session::{AllowAll, Session};

use super::connection::ConnectionContext;
use super::outbox::Outgoing;

/// How a loopback publish ended, when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    #[error("the node refused the admin session: {0:?}")]
    Refused(ReasonCode),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("the node closed the admin session")]
    Closed,
}

/// Publishes `publish` (its packet id, if any, is the loopback session's own) and returns
/// the reason code of its PUBACK/PUBREC (`Success` for QoS 0, which has none).
pub async fn publish(
    ctx: &Arc<ConnectionContext>,
    publish: Publish,
    timeout: Duration,
) -> Result<ReasonCode, LoopbackError> {
    let (conn, outbox) = ctx.hub.register(ctx.qos0_queue_max);
    let mut client = Loopback {
        ctx,
        session: Session::new(
            conn,
            ctx.session_config(),
            ctx.clock.unix_ms(),
            ctx.connect_timeout_ms,
            conn.0,
        ),
        outbox,
        inbox: Vec::new(),
    };
    let outcome = tokio::time::timeout(timeout, client.exchange(publish))
        .await
        .unwrap_or(Err(LoopbackError::TimedOut(timeout)));
    client.feed(Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
    {
        let mut core = ctx.hub.lock();
        let now_ms = ctx.clock.unix_ms();
        client.session.on_closed(&mut core.broker, now_ms);
        core.dispatch(None, now_ms, &ctx.hub.qos0_dropped);
    }
    ctx.hub.unregister(conn);
    outcome
}

struct Loopback<'a> {
    ctx: &'a Arc<ConnectionContext>,
    session: Session,
    outbox: Arc<super::outbox::Outbox>,
    inbox: Vec<Outgoing>,
}

impl Loopback<'_> {
    async fn exchange(&mut self, publish: Publish) -> Result<ReasonCode, LoopbackError> {
        let conn = self.session.conn();
        // The session's client id: unique on this node, and unlike any an MQTT client may
        // take by accident.
        let client_id =
            MqttString::new(&format!("keel-admin-{conn}")).expect("a short ASCII client id");
        self.feed(Packet::Connect(Box::new(Connect {
            protocol: Protocol::V5,
            clean_start: true,
            keep_alive: 0,
            properties: ConnectProperties::default(),
            client_id,
            will: None,
            username: None,
            password: None,
        })));
        let connack = self
            .next(|p| match p {
                Packet::ConnAck(ack) => Some(ack.reason_code),
                _ => None,
            })
            .await?;
        if connack != ReasonCode::Success {
            return Err(LoopbackError::Refused(connack));
        }
        let qos_pid = publish.qos_pid;
        self.feed(Packet::Publish(publish));
        match qos_pid {
            QosPid::AtMostOnce => Ok(ReasonCode::Success),
            QosPid::AtLeastOnce(_) => {
                self.next(|p| match p {
                    Packet::PubAck(ack) => Some(ack.reason_code),
                    _ => None,
                })
                .await
            }
            QosPid::ExactlyOnce(packet_id) => {
                let reason = self
                    .next(|p| match p {
                        Packet::PubRec(rec) => Some(rec.reason_code),
                        _ => None,
                    })
                    .await?;
                if reason.is_error() {
                    return Ok(reason);
                }
                self.feed(Packet::PubRel(PubReply::new(packet_id)));
                self.next(|p| matches!(p, Packet::PubComp(_)).then_some(()))
                    .await?;
                Ok(reason)
            }
        }
    }

    /// Hands the session a packet from its "client".
    fn feed(&mut self, packet: Packet) {
        let mut core = self.ctx.hub.lock();
        let now_ms = self.ctx.clock.unix_ms();
        self.session
            .handle(packet, &mut core.broker, &AllowAll, now_ms);
        core.dispatch(Some(&mut self.session), now_ms, &self.ctx.hub.qos0_dropped);
    }

    /// Waits for the first packet the session sends that `pick` accepts.
    async fn next<T>(&mut self, pick: impl Fn(&Packet) -> Option<T>) -> Result<T, LoopbackError> {
        loop {
            if let Some(found) = self.session.output().find_map(|p| pick(&p)) {
                return Ok(found);
            }
            if self.session.is_closing() {
                return Err(LoopbackError::Closed);
            }
            self.outbox.ready().await;
            self.outbox.drain_into(&mut self.inbox);
            let mut core = self.ctx.hub.lock();
            let now_ms = self.ctx.clock.unix_ms();
            for item in self.inbox.drain(..) {
                item.hand_to(&mut self.session, &mut core.broker, now_ms);
            }
            core.dispatch(Some(&mut self.session), now_ms, &self.ctx.hub.qos0_dropped);
        }
    }
}

/// The packet a loopback publish sends: `qos` with packet id 1 (the session's only one).
pub fn packet(
    topic: crate::codec::TopicName,
    payload: bytes::Bytes,
    qos: QoS,
    retain: bool,
) -> Publish {
    let packet_id =
        (qos != QoS::AtMostOnce).then(|| crate::codec::PacketId::new(1).expect("1 is a packet id"));
    Publish {
        dup: false,
        qos_pid: QosPid::new(qos, packet_id).expect("a packet id for QoS 1/2"),
        retain,
        topic,
        properties: crate::codec::PublishProperties::default(),
        payload,
    }
}
