//! The broker's deliveries to the client: PUBLISH (outbound aliases, the client's maximum
//! packet size, permissions) and PUBREL.

use crate::broker::{Broker, Delivery};
use crate::codec::{Packet, PubReply, Publish, PublishProperties, QosPid, TopicName};

use super::{Phase, Session};

impl Session {
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
}
