//! [`PendingSubscriptions`]: the subscriptions of durable sessions that this node has proposed
//! and the log has not applied yet.
//!
//! A durable session's SUBSCRIBE takes effect when its `Subscribe` command is applied, but the
//! node has read it before then, and a client expects a PUBLISH that the same node reads later
//! to see it (a responder subscribes, a requester publishes at once). The replica cannot tell:
//! it has not applied the subscription. So the broker keeps what it proposed here, and a
//! publish that matches one of these subscriptions takes the log (QoS 1/2: applied after the
//! `Subscribe`, it is matched in log order) or, at QoS 0, goes straight to the subscriber,
//! which MQTT allows before the SUBACK ([MQTT-3.8.4-4] lets the server send matching PUBLISH
//! packets before it).

use std::num::NonZeroU32;

use crate::codec::{TopicFilter, TopicName};
use crate::router::filter_matches;
use crate::state::{ClientId, Message, Subscription};

/// One proposed subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    client_id: ClientId,
    filter: TopicFilter,
    subscription: Subscription,
}

/// A QoS 0 delivery to a subscriber whose subscription is still on its way to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingDelivery {
    pub client_id: ClientId,
    pub retain: bool,
    pub subscription_ids: Vec<NonZeroU32>,
}

/// Subscriptions this node proposed for durable sessions, in proposal order, each until its
/// `Subscribe` command is applied (or voided). A multiset: the same filter subscribed twice
/// is pending twice. Bounded by the proposals in flight.
#[derive(Debug, Default)]
pub(super) struct PendingSubscriptions {
    entries: Vec<Pending>,
}

impl PendingSubscriptions {
    /// The session of `client_id` asked for `subscriptions`; its `Subscribe` is proposed.
    pub fn proposed(
        &mut self,
        client_id: &ClientId,
        subscriptions: &[(TopicFilter, Subscription)],
    ) {
        self.entries
            .extend(subscriptions.iter().map(|(filter, subscription)| Pending {
                client_id: client_id.clone(),
                filter: filter.clone(),
                subscription: *subscription,
            }));
    }

    /// The `Subscribe` of `client_id` proposed here was applied or voided: its subscriptions
    /// are the replica's business now (or nobody's).
    pub fn settled(&mut self, client_id: &ClientId, subscriptions: &[(TopicFilter, Subscription)]) {
        for (filter, _) in subscriptions {
            let found = self
                .entries
                .iter()
                .position(|p| &p.client_id == client_id && &p.filter == filter);
            if let Some(i) = found {
                self.entries.remove(i);
            }
        }
    }

    /// Forgets everything (the replicated state was replaced, or the node stopped serving).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a pending subscription, shared or not, matches `topic`.
    pub fn matches(&self, topic: &TopicName) -> bool {
        self.entries
            .iter()
            .any(|p| filter_matches(p.filter.matching_filter(), topic.as_str()))
    }

    /// The QoS 0 deliveries a message gets from pending subscriptions: one per subscribing
    /// session (overlapping subscriptions merged, as the replica merges them), by the same
    /// rules as a live delivery (No Local, Retain As Published, Subscription Identifiers).
    /// Shared subscriptions are left out: their group picks one member, in the replica.
    pub fn qos0_deliveries(&self, message: &Message) -> Vec<PendingDelivery> {
        let mut out: Vec<PendingDelivery> = Vec::new();
        for p in &self.entries {
            if p.filter.shared().is_some()
                || !filter_matches(p.filter.as_str(), message.topic.as_str())
            {
                continue;
            }
            let options = p.subscription.options;
            if options.no_local && message.publisher.as_ref() == Some(&p.client_id) {
                continue;
            }
            let retain = options.retain_as_published && message.retain;
            match out.iter_mut().find(|d| d.client_id == p.client_id) {
                Some(delivery) => {
                    delivery.retain |= retain;
                    delivery.subscription_ids.extend(p.subscription.identifier);
                }
                None => out.push(PendingDelivery {
                    client_id: p.client_id.clone(),
                    retain,
                    subscription_ids: p.subscription.identifier.into_iter().collect(),
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{QoS, SubscriptionOptions};

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    fn sub(qos: QoS) -> Subscription {
        Subscription {
            options: SubscriptionOptions::new(qos),
            identifier: None,
        }
    }

    fn id(s: &str) -> ClientId {
        ClientId::new(s).unwrap()
    }

    fn message(topic: &str, retain: bool, publisher: &str) -> Message {
        Message {
            topic: TopicName::new(topic).unwrap(),
            payload: bytes::Bytes::new(),
            qos: QoS::AtMostOnce,
            retain,
            properties: Default::default(),
            publisher: Some(id(publisher)),
            received_at_ms: 0,
        }
    }

    #[test]
    fn a_subscription_is_pending_until_settled_once_per_proposal() {
        let mut pending = PendingSubscriptions::default();
        let topic = TopicName::new("rr/t").unwrap();
        assert!(!pending.matches(&topic));
        let subs = [(filter("rr/+"), sub(QoS::AtLeastOnce))];
        pending.proposed(&id("b"), &subs);
        pending.proposed(&id("b"), &subs);
        assert!(pending.matches(&topic));
        assert!(!pending.matches(&TopicName::new("other").unwrap()));
        pending.settled(&id("b"), &subs);
        assert!(
            pending.matches(&topic),
            "the second proposal is still pending"
        );
        pending.settled(&id("b"), &subs);
        assert!(!pending.matches(&topic));
        assert!(pending.is_empty());
        // Settling what is not pending changes nothing.
        pending.settled(&id("b"), &subs);
        assert!(pending.is_empty());
    }

    #[test]
    fn qos0_deliveries_follow_the_subscription_options() {
        let mut pending = PendingSubscriptions::default();
        let mut no_local = sub(QoS::AtMostOnce);
        no_local.options.no_local = true;
        let mut with_id = sub(QoS::AtLeastOnce);
        with_id.identifier = NonZeroU32::new(7);
        with_id.options.retain_as_published = true;
        pending.proposed(&id("self"), &[(filter("t/#"), no_local)]);
        pending.proposed(
            &id("b"),
            &[
                (filter("t/+"), with_id),
                (filter("t/x"), sub(QoS::AtMostOnce)),
            ],
        );
        pending.proposed(&id("g"), &[(filter("$share/g/t/x"), sub(QoS::AtMostOnce))]);
        let message = message("t/x", true, "self");
        let deliveries = pending.qos0_deliveries(&message);
        assert_eq!(
            deliveries,
            [PendingDelivery {
                client_id: id("b"),
                retain: true,
                subscription_ids: vec![NonZeroU32::new(7).unwrap()],
            }]
        );
        assert!(pending.matches(&TopicName::new("t/x").unwrap()));
    }
}
