//! SUBSCRIBE and UNSUBSCRIBE: at once and registered through the log for a local session,
//! through the log for a durable one; shared messages of a group being left go to another
//! member.

use crate::codec::TopicFilter;
use crate::state::{Command, Seq, Subscription};

use super::core::Broker;
use super::proposal::{Completion, ConnId, Ticket};
use super::propose::Caller;
use super::types::Tier;
use super::window::may_go_elsewhere;

impl Broker {
    /// Adds subscriptions; the SUBACK waits for the reply to `ticket` (whether each
    /// existed). Retained messages are delivered as the subscriptions' Retain Handling says.
    pub fn subscribe(
        &mut self,
        conn: ConnId,
        ticket: Ticket,
        subscriptions: Vec<(TopicFilter, Subscription)>,
        now_ms: u64,
    ) {
        let Some(connection) = self.connections.get(&conn) else {
            return self.reply(conn, ticket, Completion::default());
        };
        let client_id = connection.client_id.clone();
        if connection.tier == Tier::Local {
            // Subscribed here at once; the SUBACK waits for the route to commit, so that a
            // publish on any node after it reaches this session.
            let register = Command::SubscribeLocal {
                client_id: client_id.clone(),
                place: self.place,
                subscriptions: subscriptions.clone(),
            };
            // The retained messages go out once the route commits, from this node's mirror
            // as the log has it then: sent now they could be older than one acknowledged
            // elsewhere before this SUBSCRIBE (G4).
            let (retained, applied) = self
                .local
                .subscribe_deferring_retained(&client_id, subscriptions);
            let applied = self.act_on(Tier::Local, applied, now_ms);
            let completion = Completion {
                existed: applied.existed,
                ..Completion::default()
            };
            self.held.insert((conn, ticket), completion);
            if !retained.is_empty() {
                self.held_retained
                    .insert((conn, ticket), (client_id.clone(), retained, now_ms));
            }
            self.run(
                Tier::Durable,
                vec![register],
                Caller::session(&client_id).replying(conn, ticket),
            );
            return;
        }
        self.pending_subscriptions
            .proposed(&client_id, &subscriptions);
        let command = Command::Subscribe {
            client_id: client_id.clone(),
            subscriptions,
            now_ms,
        };
        self.run(
            Tier::Durable,
            vec![command],
            Caller::session(&client_id).replying(conn, ticket),
        );
    }

    /// Removes subscriptions; the UNSUBACK waits for the reply to `ticket` (whether each
    /// existed).
    pub fn unsubscribe(&mut self, conn: ConnId, ticket: Ticket, filters: Vec<TopicFilter>) {
        let Some(connection) = self.connections.get(&conn) else {
            return self.reply(conn, ticket, Completion::default());
        };
        let client_id = connection.client_id.clone();
        let tier = connection.tier;
        // Messages that came through a shared subscription being removed go to another
        // member, except QoS 2 messages already sent.
        let leaving: Vec<(&str, &str)> = filters.iter().filter_map(|f| f.shared()).collect();
        let release: Vec<Seq> = match self.tier(tier).session(&client_id) {
            Some(session) if !leaving.is_empty() => session
                .queue
                .iter()
                .filter(|q| {
                    q.shared
                        .as_ref()
                        .is_some_and(|key| leaving.contains(&(&*key.group, &*key.filter)))
                })
                .filter(|q| may_go_elsewhere(q, connection.sent_bound()))
                .map(|q| q.seq)
                .collect(),
            _ => Vec::new(),
        };
        if tier == Tier::Local {
            let unregister = Command::UnsubscribeLocal {
                client_id: client_id.clone(),
                place: self.place,
                filters: filters.clone(),
            };
            self.run(Tier::Durable, vec![unregister], Caller::session(&client_id));
        }
        let mut commands = vec![Command::Unsubscribe {
            client_id: client_id.clone(),
            filters,
        }];
        if !release.is_empty() {
            commands.push(Command::ReleaseShared {
                client_id: client_id.clone(),
                seqs: release,
            });
        }
        self.run(
            tier,
            commands,
            Caller::session(&client_id).replying(conn, ticket),
        );
    }
}
