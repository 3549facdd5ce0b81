//! Towards subscribers: their acknowledgements (PUBACK, PUBREC, PUBCOMP, refusals), PUBREL
//! once a PUBREC is committed, and the pump that sends queued messages while the
//! connection's [`OutboundWindow`](super::window::OutboundWindow) has room.

use crate::codec::{PacketId, QoS};
use crate::state::{packet_id_for, ClientId, Command, Seq};

use super::core::Broker;
use super::proposal::ConnId;
use super::propose::Caller;
use super::types::{Delivery, Effect, PubRecOutcome, Tier};

impl Broker {
    /// PUBACK from a subscriber. Returns false for an unknown packet id.
    pub fn puback(&mut self, conn: ConnId, packet_id: PacketId, now_ms: u64) -> bool {
        self.complete(conn, packet_id, QoS::AtLeastOnce, now_ms)
    }

    /// PUBCOMP from a subscriber. Returns false for an unknown packet id.
    pub fn pubcomp(&mut self, conn: ConnId, packet_id: PacketId, now_ms: u64) -> bool {
        self.complete(conn, packet_id, QoS::ExactlyOnce, now_ms)
    }

    /// The message sent with this packet id will not be sent: it is too large for the
    /// client, or the client refused it (a PUBACK/PUBREC reason of 0x80 or more).
    pub fn discard(&mut self, conn: ConnId, packet_id: PacketId, now_ms: u64) -> bool {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return false;
        };
        let Some(seq) = connection.window.remove(packet_id) else {
            return false;
        };
        let (client_id, tier) = (connection.client_id.clone(), connection.tier);
        self.stats.discarded += 1;
        self.acked(tier, client_id, seq);
        self.pump(conn, now_ms);
        true
    }

    /// The message `seq` of `client_id`'s queue is done with: it leaves the queue.
    fn acked(&mut self, tier: Tier, client_id: ClientId, seq: Seq) {
        self.run(
            tier,
            vec![Command::Acked { client_id, seq }],
            Caller::NOBODY,
        );
    }

    /// PUBREC from a subscriber: the QoS 2 message was delivered; PUBREL follows, at once
    /// for a local session and once the PUBREC is committed for a durable one.
    pub fn pubrec(&mut self, conn: ConnId, packet_id: PacketId) -> PubRecOutcome {
        let Some(connection) = self.connections.get(&conn) else {
            return PubRecOutcome::Unknown;
        };
        let Some(seq) = connection.window.seq_of(packet_id) else {
            return PubRecOutcome::Unknown;
        };
        let (client_id, tier) = (connection.client_id.clone(), connection.tier);
        let is_qos2 = self
            .tier(tier)
            .session(&client_id)
            .and_then(|s| s.queued(seq))
            .is_some_and(|q| q.qos == QoS::ExactlyOnce);
        if !is_qos2 {
            return PubRecOutcome::Unknown;
        }
        match tier {
            Tier::Local => {
                self.apply_in(Tier::Local, Command::PubRecReceived { client_id, seq });
                PubRecOutcome::Release
            }
            Tier::Durable => {
                self.run(
                    Tier::Durable,
                    vec![Command::PubRecReceived { client_id, seq }],
                    Caller::NOBODY,
                );
                PubRecOutcome::Committing
            }
        }
    }

    fn complete(&mut self, conn: ConnId, packet_id: PacketId, qos: QoS, now_ms: u64) -> bool {
        let Some(connection) = self.connections.get(&conn) else {
            return false;
        };
        let Some(seq) = connection.window.seq_of(packet_id) else {
            return false;
        };
        let (client_id, tier) = (connection.client_id.clone(), connection.tier);
        let queued = self
            .tier(tier)
            .session(&client_id)
            .and_then(|s| s.queued(seq));
        let acked = match queued {
            // The wrong acknowledgement for the flow (PUBACK for QoS 2, PUBCOMP before
            // PUBREC): ignore it.
            Some(q) if q.qos != qos || (qos == QoS::ExactlyOnce && !q.pubrec_received) => {
                return false
            }
            Some(_) => true,
            // The message left the queue meanwhile (dropped for a full queue): free the id.
            None => false,
        };
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.window.remove(packet_id);
        }
        if acked {
            self.acked(tier, client_id, seq);
        }
        self.pump(conn, now_ms);
        true
    }

    /// A committed PUBREC: the connection that has the message in flight sends PUBREL.
    pub(super) fn release_committed(&mut self, client_id: &ClientId, seq: Seq) {
        let Some(&conn) = self.owners.get(client_id) else {
            return;
        };
        let packet_id = packet_id_for(seq);
        let in_flight = self
            .connections
            .get(&conn)
            .is_some_and(|c| c.tier == Tier::Durable && c.window.seq_of(packet_id) == Some(seq));
        if in_flight {
            self.effects.push(Effect::Deliver {
                conn,
                delivery: Delivery::Release(packet_id),
            });
        }
    }

    /// Sends queued messages to a connection while its window has room.
    pub(super) fn pump(&mut self, conn: ConnId, now_ms: u64) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if !connection.opened {
            return;
        }
        let state = match connection.tier {
            Tier::Durable => &self.durable,
            Tier::Local => &self.local,
        };
        let Some(session) = state.session(&connection.client_id) else {
            return;
        };
        let mut expired = Vec::new();
        let sent_through = connection.window.sent_through();
        let unsent = session.queue.partition_point(|q| q.seq <= sent_through);
        for queued in session.queue.range(unsent..) {
            if !connection.window.has_room() {
                break;
            }
            let packet_id = packet_id_for(queued.seq);
            if connection.window.holds(packet_id) {
                // The id is still held by a message 65,535 places earlier: wait for it.
                break;
            }
            connection.window.pass(queued.seq);
            if queued.message.is_expired(now_ms) && !queued.pubrec_received {
                expired.push(queued.seq);
                self.stats.dropped_expired += 1;
                continue;
            }
            connection.window.send(packet_id, queued.seq);
            let delivery = if queued.pubrec_received
                && !crate::planted::planted().resend_publish_after_pubrec
            {
                Delivery::Release(packet_id)
            } else {
                self.stats.sent_by_qos[queued.qos as usize] += 1;
                Delivery::Publish {
                    message: queued.message.clone(),
                    qos: queued.qos,
                    packet_id: Some(packet_id),
                    retain: queued.retain,
                    dup: connection.window.is_resend(queued.seq),
                    subscription_ids: queued.subscription_ids.clone(),
                }
            };
            self.stats.deliveries += 1;
            self.effects.push(Effect::Deliver { conn, delivery });
        }
        if expired.is_empty() {
            return;
        }
        let (client_id, tier) = (connection.client_id.clone(), connection.tier);
        let commands = expired
            .into_iter()
            .map(|seq| Command::Acked {
                client_id: client_id.clone(),
                seq,
            })
            .collect();
        match tier {
            Tier::Durable => self.run(Tier::Durable, commands, Caller::NOBODY),
            Tier::Local => {
                for command in commands {
                    self.local.apply(command);
                }
            }
        }
    }
}
