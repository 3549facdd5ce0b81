//! What a connected client sends: PUBLISH (aliases, limits, rates, permissions), the
//! publisher's and the subscriber's QoS 2 steps, SUBSCRIBE, UNSUBSCRIBE and DISCONNECT.

use crate::broker::{Broker, Completion, PubRecOutcome, PublishError, Ticket};
use crate::codec::{
    AckProperties, Disconnect, Packet, PubReply, Publish, QoS, QosPid, ReasonCode, SubAck,
    Subscribe, TopicFilter, TopicName, Unsubscribe,
};
use crate::state::{Message, Subscription};

use super::{reply, PendingReply, Session};
use crate::session::alias::AliasError;

impl Session {
    pub(super) fn on_publish(&mut self, publish: Publish, broker: &mut Broker, now_ms: u64) {
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
        let empty = publish.payload.is_empty();
        if self.refuses_publish(&topic, publish.retain, empty, qos_pid, broker) {
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
            QosPid::AtMostOnce => Ticket::UNOWED,
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

    /// Whether a publish is refused for its topic (levels, room for a retained message,
    /// permissions); a QoS 1/2 one is answered with the reason.
    fn refuses_publish(
        &mut self,
        topic: &TopicName,
        retain: bool,
        empty: bool,
        qos_pid: QosPid,
        broker: &mut Broker,
    ) -> bool {
        let refusal = if levels(topic.as_str()) > self.config.topic_levels_max {
            broker.limit_hit(|l| l.topic_levels += 1);
            Some(ReasonCode::TopicNameInvalid)
        } else if retain && !empty && !broker.state().retained_room(topic) {
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
            return true;
        }
        false
    }

    pub(super) fn on_pubrec(&mut self, rec: PubReply, broker: &mut Broker, now_ms: u64) {
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

    pub(super) fn on_subscribe(&mut self, subscribe: Subscribe, broker: &mut Broker, now_ms: u64) {
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

    pub(super) fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe, broker: &mut Broker) {
        let ticket = self.owe(PendingReply::UnsubAck(unsubscribe.packet_id));
        broker.unsubscribe(self.conn, ticket, unsubscribe.filters);
    }

    pub(super) fn on_disconnect(
        &mut self,
        disconnect: Disconnect,
        broker: &mut Broker,
        now_ms: u64,
    ) {
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
}

/// The levels of a topic name or filter.
fn levels(topic: &str) -> usize {
    topic.bytes().filter(|&b| b == b'/').count() + 1
}
