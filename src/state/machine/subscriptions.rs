//! Subscriptions: added (with their retained messages, as Retain Handling says) and removed.

use std::sync::Arc;

use crate::codec::{RetainHandling, TopicFilter};
use crate::router::filter_matches;

use crate::state::command::{delivery_qos, Applied};
use crate::state::message::{ClientId, Message};
use crate::state::session::Subscription;

use super::routing::Target;
use super::State;

impl State {
    pub(super) fn subscribe(
        &mut self,
        client_id: &ClientId,
        subscriptions: Vec<(crate::codec::TopicFilter, Subscription)>,
        now_ms: u64,
        applied: &mut Applied,
    ) {
        let retained = self.add_subscriptions(client_id, subscriptions, applied);
        self.send_retained(client_id, &retained, now_ms, applied);
    }

    /// Subscribes as `Command::Subscribe` does, but leaves the retained messages the
    /// subscriptions call for to [`State::send_retained`]: a node's local tier sends them
    /// once the subscription is committed, so they are the ones the cluster has then.
    /// Returns those subscriptions, with what applying did.
    pub fn subscribe_deferring_retained(
        &mut self,
        client_id: &ClientId,
        subscriptions: Vec<(crate::codec::TopicFilter, Subscription)>,
    ) -> (Vec<(crate::codec::TopicFilter, Subscription)>, Applied) {
        let mut applied = Applied::default();
        let retained = self.add_subscriptions(client_id, subscriptions, &mut applied);
        (retained, applied)
    }

    /// Adds subscriptions; returns those whose Retain Handling asks for retained messages.
    fn add_subscriptions(
        &mut self,
        client_id: &ClientId,
        subscriptions: Vec<(crate::codec::TopicFilter, Subscription)>,
        applied: &mut Applied,
    ) -> Vec<(crate::codec::TopicFilter, Subscription)> {
        let mut retained = Vec::new();
        if !self.sessions.contains_key(client_id) {
            return retained;
        }
        for (filter, subscription) in subscriptions {
            let existed = self
                .router
                .insert(&filter, client_id.clone(), subscription)
                .is_some();
            applied.existed.push(existed);
            let send_retained = filter.shared().is_none()
                && match subscription.options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendAtNewSubscribe => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if let Some(s) = self.sessions.get_mut(client_id) {
                s.subscriptions.insert(filter.clone(), subscription);
            }
            if send_retained {
                retained.push((filter, subscription));
            }
        }
        retained
    }

    /// Sends `client_id` the retained messages matching `subscriptions` (with RETAIN set,
    /// [MQTT-3.3.1-9]), if it still has a session.
    pub fn send_retained(
        &mut self,
        client_id: &ClientId,
        subscriptions: &[(crate::codec::TopicFilter, Subscription)],
        now_ms: u64,
        applied: &mut Applied,
    ) {
        if !self.sessions.contains_key(client_id) {
            return;
        }
        for (filter, subscription) in subscriptions {
            let matching: Vec<Arc<Message>> = self
                .retained
                .iter()
                .filter(|(topic, m)| {
                    filter_matches(filter.matching_filter(), topic.as_str())
                        && !m.is_expired(now_ms)
                })
                .map(|(_, m)| m.clone())
                .collect();
            for message in matching {
                let target = Target {
                    client_id: client_id.clone(),
                    qos: delivery_qos(message.qos, subscription.options.qos),
                    retain: true,
                    subscription_ids: subscription.identifier.into_iter().collect(),
                    shared: None,
                };
                self.deliver(target, &message, applied);
            }
        }
    }

    /// Removes subscriptions of `client_id`; reports for each whether it existed.
    pub(super) fn unsubscribe(
        &mut self,
        client_id: &ClientId,
        filters: Vec<TopicFilter>,
        applied: &mut Applied,
    ) {
        for filter in filters {
            let removed = self.router.remove(&filter, client_id).is_some();
            if let Some(s) = self.sessions.get_mut(client_id) {
                s.subscriptions.remove(&filter);
            }
            applied.existed.push(removed);
        }
    }
}
