//! Sessions coming and going: opened or resumed, closed with their expiry and will, ended,
//! their wills published, and everything a stopped run of a node served.

use std::sync::Arc;

use crate::state::command::Applied;
use crate::state::message::{ClientId, Message};
use crate::state::placement::{Incarnation, NodeId, Place};
use crate::state::session::{SessionState, Will};

use super::State;

impl State {
    /// Everything a run of `node` before `incarnation` served ends: see [`Command::NodeDown`].
    pub(super) fn node_down(
        &mut self,
        node: NodeId,
        incarnation: Incarnation,
        now_ms: u64,
        applied: &mut Applied,
    ) {
        let stale = |place: Place| place.is_before(node, incarnation);
        let closing: Vec<(ClientId, u32, Place)> = self
            .sessions
            .values()
            .filter(|s| s.connected && stale(s.place))
            .map(|s| (s.client_id.clone(), s.expiry_secs, s.place))
            .collect();
        for (client_id, expiry_secs, place) in closing {
            applied.displaced.push((client_id.clone(), place));
            self.close_session(&client_id, expiry_secs, true, now_ms, applied);
        }
        applied
            .displaced
            .extend(self.placement.clear_node(node, incarnation));
    }

    /// `OpenSession`: its flags `(clean_start, expiry_secs)` and when and where it happens.
    pub(super) fn open_session(
        &mut self,
        client_id: ClientId,
        (clean_start, expiry_secs): (bool, u32),
        will: Option<Box<Will>>,
        (now_ms, place): (u64, Place),
        applied: &mut Applied,
    ) {
        // A local session of the client id is taken over by this durable one.
        if let Some(old) = self.placement.take(&client_id).filter(|old| *old != place) {
            applied.displaced.push((client_id.clone(), old));
        }
        if let Some(existing) = self.sessions.get_mut(&client_id) {
            let taken_over = existing.connected;
            applied.taken_over = taken_over;
            if taken_over && existing.place != place {
                applied.displaced.push((client_id.clone(), existing.place));
            }
            // §3.1.4: a session ends on takeover when the old connection had expiry 0.
            let ends = clean_start || (taken_over && existing.expiry_secs == 0);
            if ends {
                self.end_session(&client_id, now_ms, applied);
            } else {
                // The old connection closes. Its will goes out now if it has no delay;
                // otherwise the new connection cancels it ([MQTT-3.1.3-9]).
                let old_will = existing
                    .will
                    .take()
                    .filter(|w| taken_over && w.delay_secs == 0);
                applied.resumed_from = Some(existing.place);
                existing.place = place;
                existing.connected = true;
                existing.disconnected_at_ms = None;
                existing.will_due_ms = None;
                existing.expiry_secs = expiry_secs;
                existing.will = will;
                applied.session_present = true;
                if let Some(old_will) = old_will {
                    self.publish_will(old_will, now_ms, applied);
                }
                self.reindex(&client_id);
                return;
            }
        }
        let mut session = SessionState::new(client_id.clone(), expiry_secs, place);
        session.will = will;
        self.sessions.insert(client_id.clone(), session);
        self.reindex(&client_id);
    }

    pub(super) fn close_session(
        &mut self,
        client_id: &ClientId,
        expiry_secs: u32,
        publish_will: bool,
        now_ms: u64,
        applied: &mut Applied,
    ) {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        session.connected = false;
        session.disconnected_at_ms = Some(now_ms);
        session.expiry_secs = expiry_secs;
        if !publish_will {
            session.will = None;
        }
        // Armed again below while a will is pending: a second close (of a session already
        // disconnected) that discards the will must not leave its timer behind.
        session.will_due_ms = None;
        if expiry_secs == 0 {
            self.end_session(client_id, now_ms, applied);
            return;
        }
        match &session.will {
            Some(will) if will.delay_secs == 0 => {
                let will = session.will.take();
                if let Some(will) = will {
                    self.publish_will(will, now_ms, applied);
                }
            }
            Some(will) => {
                session.will_due_ms =
                    Some(now_ms.saturating_add(u64::from(will.delay_secs) * 1000));
            }
            None => {}
        }
        self.reindex(client_id);
    }

    /// Removes a session and its subscriptions, publishing a will still pending.
    pub(super) fn end_session(&mut self, client_id: &ClientId, now_ms: u64, applied: &mut Applied) {
        let Some(session) = self.sessions.remove(client_id) else {
            return;
        };
        for filter in session.subscriptions.keys() {
            self.router.remove(filter, client_id);
        }
        self.reindex(client_id);
        applied.ended.push(client_id.clone());
        if let Some(will) = session.will {
            self.publish_will(will, now_ms, applied);
        }
    }

    pub(super) fn publish_will(&mut self, will: Box<Will>, now_ms: u64, applied: &mut Applied) {
        let message = Arc::new(Message {
            received_at_ms: now_ms,
            ..will.message
        });
        if message.retain {
            let retained = (!message.payload.is_empty()).then(|| message.clone());
            let topic = message.topic.clone();
            match retained {
                Some(m) => self.retained.insert(topic, m),
                None => self.retained.remove(&topic),
            };
        }
        self.route(&message, &[], applied);
        applied.wills.push(message);
    }

    /// Ends the session of `client_id` if it is still expired at `now_ms`. Only a session
    /// still expired at the command's time ends: the leader proposes from its replica, which
    /// may be behind the log (the session may have been resumed and closed again since, with
    /// another expiry: the widened simulator found a session of expiry "never" ended by an
    /// expiry proposed for its earlier connection of expiry 1 s).
    pub(super) fn end_if_expired(
        &mut self,
        client_id: &ClientId,
        now_ms: u64,
        applied: &mut Applied,
    ) {
        let expired = self
            .sessions
            .get(client_id)
            .is_some_and(|s| !s.connected && s.expires_at_ms().is_some_and(|at| at <= now_ms));
        if expired {
            self.end_session(client_id, now_ms, applied);
        }
    }

    /// Publishes the will of `client_id` if its delay has passed at `now_ms` (likewise judged
    /// at the command's time).
    pub(super) fn will_if_due(&mut self, client_id: &ClientId, now_ms: u64, applied: &mut Applied) {
        let will = match self.sessions.get_mut(client_id) {
            Some(s) if !s.connected && s.will_due_ms.is_some_and(|at| at <= now_ms) => {
                s.will_due_ms = None;
                s.will.take()
            }
            _ => None,
        };
        if let Some(will) = will {
            self.publish_will(will, now_ms, applied);
        }
        self.reindex(client_id);
    }

    /// A local session of `client_id` registered at `place`: the one registered before it
    /// elsewhere is taken over, and so is a durable session connected elsewhere (its end,
    /// which the connecting node proposes with this, follows in the log).
    pub(super) fn open_local(&mut self, client_id: ClientId, place: Place, applied: &mut Applied) {
        if let Some(old) = self.placement.open(&client_id, place) {
            applied.displaced.push((client_id.clone(), old));
        }
        if let Some(session) = self.sessions.get(&client_id) {
            if session.connected && session.place != place {
                applied.displaced.push((client_id, session.place));
            }
        }
    }
}
