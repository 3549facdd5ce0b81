//! A connection's life in the broker: CONNECT (opening or resuming its session, taking over
//! one served elsewhere), the registration that makes it served, its end, and what happens
//! to every connection when the node recovers, loses its quorum or installs a snapshot.

use crate::codec::ReasonCode;
use crate::state::{ClientId, Command, Place, Seq, State};

use super::core::Broker;
use super::proposal::{Completion, ConnId, Origin, Proposal, Ticket};
use super::propose::Caller;
use super::types::{ConnectRequest, Effect, Tier};
use super::window::{may_go_elsewhere, Connection};

impl Broker {
    /// Replaces the replicated state (restore from a snapshot). Connections of durable
    /// sessions are dropped: what they had in flight may no longer be there.
    pub fn install_state(&mut self, state: State) {
        let durable: Vec<ConnId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.tier == Tier::Durable)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in durable {
            if let Some(connection) = self.connections.remove(&conn) {
                self.owners.remove(&connection.client_id);
            }
            self.effects.push(Effect::Disconnect {
                conn,
                reason: ReasonCode::ServerUnavailable,
            });
        }
        self.local.clear_retained();
        for message in state.retained() {
            self.local.apply(Command::SetRetained {
                topic: message.topic.clone(),
                message: Some(message.clone()),
            });
        }
        self.durable = state;
        self.proposed_qos2.clear();
        self.proposed_due.clear();
        // Their connections are gone with the old state.
        self.pending_subscriptions.clear();
        // Local sessions whose registration the installed state does not have here were
        // taken over meanwhile.
        let gone: Vec<ClientId> = self
            .connections
            .values()
            .filter(|c| {
                c.opened && self.durable.placement().local_place(&c.client_id) != Some(self.place)
            })
            .map(|c| c.client_id.clone())
            .collect();
        for client_id in gone {
            self.displace(&client_id, None, ReasonCode::SessionTakenOver, 0);
        }
    }

    /// After a restart, once the log is replayed: durable sessions that the replica shows
    /// connected lost their connection in the crash, so they are closed (publishing their
    /// wills, as any abnormal end does); and every message still queued may have been sent
    /// before the crash, so it is resent with DUP set ([MQTT-3.3.1-1]). Returns the proposals
    /// to commit before any client is served.
    pub fn recover(&mut self, now_ms: u64) -> Vec<Proposal> {
        let mut commands = Vec::new();
        for session in self.durable.sessions() {
            if session.place.node != self.place.node {
                continue;
            }
            if let Some(last) = session.queue.back() {
                self.sent_before.insert(session.client_id.clone(), last.seq);
            }
            if crate::planted::planted().drop_queue_on_restart {
                commands.extend(session.queue.iter().map(|queued| Command::Acked {
                    client_id: session.client_id.clone(),
                    seq: queued.seq,
                }));
            }
        }
        // Every connection of the earlier runs is gone: durable sessions they served close
        // (publishing their wills, as any abnormal end does), local sessions end.
        commands.push(Command::NodeDown {
            node: self.place.node,
            incarnation: self.place.incarnation,
            now_ms,
        });
        vec![Proposal {
            commands,
            origin: None,
            from: None,
        }]
    }

    /// The log failed: every connection is closed with `reason` and new ones are refused,
    /// so nothing more is acknowledged (clients go elsewhere or retry later).
    pub fn set_unavailable(&mut self, reason: ReasonCode) {
        self.unavailable = Some(reason);
        for (conn, connection) in std::mem::take(&mut self.connections) {
            self.owners.remove(&connection.client_id);
            self.effects.push(Effect::Disconnect { conn, reason });
        }
        self.proposals.clear();
        self.pending_subscriptions.clear();
    }

    /// Whether the node reaches a quorum of its cluster. Without one nothing it is asked can
    /// commit: its clients are told to go (MQTT 5 DISCONNECT `0x9C Use another server`; `0x88 Server
    /// unavailable` exists only in CONNACK, where new ones get it) so they
    /// reconnect to the majority, and new ones are refused until the quorum is back (G5).
    ///
    /// The connections end the usual way (their sessions close through the log once it takes
    /// proposals again, publishing wills), unlike after a failure of the log itself.
    pub fn set_quorum(&mut self, reached: bool) {
        match (reached, self.unavailable) {
            (false, None) => {
                let reason = ReasonCode::ServerUnavailable;
                self.unavailable = Some(reason);
                for &conn in self.connections.keys() {
                    self.effects.push(Effect::Disconnect { conn, reason });
                }
            }
            (true, Some(ReasonCode::ServerUnavailable)) => self.unavailable = None,
            _ => {}
        }
    }

    /// Disconnects the connection of `client_id` here, as an administrator asked (MQTT 5
    /// `0x98 Administrative action`); false if it is not connected here.
    pub fn kick(&mut self, client_id: &str) -> bool {
        let Some(&conn) = self.owners.get(client_id) else {
            return false;
        };
        self.effects.push(Effect::Disconnect {
            conn,
            reason: ReasonCode::AdministrativeAction,
        });
        true
    }

    /// Opens or resumes the session of a new connection; the CONNACK waits for the reply
    /// to `ticket` (Session Present).
    ///
    /// A connection already serving the client id is told to disconnect with 0x8E
    /// (Session taken over). Queued messages are sent once the session is open.
    pub fn connect(&mut self, conn: ConnId, ticket: Ticket, request: ConnectRequest, now_ms: u64) {
        if let Some(reason) = self.unavailable {
            self.effects.push(Effect::Disconnect { conn, reason });
            return;
        }
        let client_id = request.client_id.clone();
        if let Some(old) = self.owners.remove(&client_id) {
            if let Some(old_connection) = self.connections.remove(&old) {
                self.remember_sent(&old_connection);
            }
            self.effects.push(Effect::Disconnect {
                conn: old,
                reason: ReasonCode::SessionTakenOver,
            });
        }
        let tier = Tier::of(request.clean_start, request.expiry_secs);
        let window = usize::from(request.receive_maximum.min(self.config.inflight_max).max(1));
        self.connections.insert(
            conn,
            Connection::new(client_id.clone(), tier, window, now_ms),
        );
        self.owners.insert(client_id.clone(), conn);
        let place = self.place;
        let open = Command::OpenSession {
            client_id: client_id.clone(),
            clean_start: request.clean_start,
            expiry_secs: request.expiry_secs,
            will: request.will.map(Box::new),
            now_ms,
            place,
        };
        match tier {
            Tier::Local => {
                // A clean start: a durable session of the same client id ends
                // ([MQTT-3.1.2-4]). Always proposed, whatever the replica shows: a replica
                // that has not applied that session yet (a lagging node, or a CONNECT of the
                // same client id still committing here) would leave it behind for a later
                // CONNECT to resume. In log order the pair ends whatever session there is,
                // and leaves nothing behind when there is none.
                let mut commands = vec![
                    Command::OpenSession {
                        client_id: client_id.clone(),
                        clean_start: true,
                        expiry_secs: 0,
                        will: None,
                        now_ms,
                        place,
                    },
                    Command::CloseSession {
                        client_id: client_id.clone(),
                        expiry_secs: 0,
                        publish_will: false,
                        now_ms,
                        place,
                    },
                ];
                let applied = self.apply_in(Tier::Local, open);
                if let Some(connection) = self.connections.get_mut(&conn) {
                    connection.local_present = applied.session_present;
                }
                // Served once the registration commits: then every node routes to it, and
                // a connection elsewhere with this client id has been told to go.
                commands.push(Command::OpenLocal { client_id, place });
                self.run(
                    Tier::Durable,
                    commands,
                    Caller::NOBODY.replying(conn, ticket),
                );
            }
            Tier::Durable => {
                // A local session of the same client id was just taken over: it ends.
                if self.local.session(&client_id).is_some() {
                    self.end_local(&client_id, true, now_ms);
                }
                self.run(
                    Tier::Durable,
                    vec![open],
                    Caller::NOBODY.replying(conn, ticket),
                );
            }
        }
    }

    /// A connection of a durable session ends here: what it (or a connection before it) may
    /// have sent, for DUP and for shared messages when the session is next served here. Only
    /// ever grows for a session: a connection that ends before it has resent what an earlier
    /// one sent must not make those messages look unsent.
    fn remember_sent(&mut self, connection: &Connection) {
        if connection.tier != Tier::Durable {
            return;
        }
        let sent = connection.window.sent_or_dup_through();
        let before = self
            .sent_before
            .entry(connection.client_id.clone())
            .or_default();
        *before = (*before).max(sent);
    }

    /// Ends the local session of `client_id` here and its registration in the cluster.
    fn end_local(&mut self, client_id: &ClientId, publish_will: bool, now_ms: u64) {
        self.apply_in(
            Tier::Local,
            Command::CloseSession {
                client_id: client_id.clone(),
                expiry_secs: 0,
                publish_will,
                now_ms,
                place: self.place,
            },
        );
        self.run(
            Tier::Durable,
            vec![Command::CloseLocal {
                client_id: client_id.clone(),
                place: self.place,
            }],
            Caller::NOBODY,
        );
    }

    /// The connection ended. `expiry_secs` is the session expiry in force at the end and
    /// `publish_will` is false after a normal DISCONNECT. A connection that was taken over
    /// changes nothing.
    pub fn disconnect(&mut self, conn: ConnId, expiry_secs: u32, publish_will: bool, now_ms: u64) {
        let Some(connection) = self.connections.remove(&conn) else {
            return;
        };
        let client_id = connection.client_id.clone();
        self.owners.remove(&client_id);
        // Shared-subscription messages go to another member, except QoS 2 messages already
        // sent: those must be completed with this client ([MQTT-4.8.2-4]).
        let release: Vec<Seq> = self
            .tier(connection.tier)
            .session(&client_id)
            .map(|s| {
                s.queue
                    .iter()
                    .filter(|q| q.shared.is_some() && may_go_elsewhere(q, connection.sent_bound()))
                    .map(|q| q.seq)
                    .collect()
            })
            .unwrap_or_default();
        let mut commands = Vec::new();
        if !release.is_empty() {
            commands.push(Command::ReleaseShared {
                client_id: client_id.clone(),
                seqs: release,
            });
        }
        self.remember_sent(&connection);
        commands.push(Command::CloseSession {
            client_id: client_id.clone(),
            expiry_secs,
            publish_will,
            now_ms,
            place: self.place,
        });
        self.run(connection.tier, commands, Caller::session(&client_id));
        // Proposed after the registration if that is still on its way, so applied after it.
        if connection.tier == Tier::Local {
            self.run(
                Tier::Durable,
                vec![Command::CloseLocal {
                    client_id,
                    place: self.place,
                }],
                Caller::NOBODY,
            );
        }
    }

    /// A commit moved the session of `client_id` away from this node (or ended this run's
    /// connections): the connection serving it here, unless it is the one that asked, goes
    /// with `reason`. A local session ends with it, publishing its will.
    pub(super) fn displace(
        &mut self,
        client_id: &ClientId,
        asking: Option<ConnId>,
        reason: ReasonCode,
        now_ms: u64,
    ) {
        let Some(&conn) = self.owners.get(client_id) else {
            return;
        };
        let served = self.connections.get(&conn).is_some_and(|c| c.opened);
        if Some(conn) == asking || !served {
            return;
        }
        self.owners.remove(client_id);
        let Some(connection) = self.connections.remove(&conn) else {
            return;
        };
        self.effects.push(Effect::Disconnect { conn, reason });
        self.remember_sent(&connection);
        if connection.tier == Tier::Local {
            self.apply_in(
                Tier::Local,
                Command::CloseSession {
                    client_id: client_id.clone(),
                    expiry_secs: 0,
                    publish_will: true,
                    now_ms,
                    place: self.place,
                },
            );
        }
    }

    /// Whether the session of `client_id` is served at `place` (or was last, for a durable
    /// session now disconnected), as the replicated state has it.
    pub(super) fn holds(&self, client_id: &ClientId, place: Place) -> bool {
        self.durable
            .session(client_id)
            .is_some_and(|s| s.place == place)
            || self.durable.placement().local_place(client_id) == Some(place)
    }

    /// The registration of a session was applied (`OpenSession`, `OpenLocal`): the connection
    /// of this node that asked for it is served from now on (returns true: it got its reply).
    pub(super) fn session_opened(
        &mut self,
        client_id: &ClientId,
        tier: Tier,
        present: bool,
        resumed_from: Option<Place>,
        origin: Option<Origin>,
        now_ms: u64,
    ) -> bool {
        let Some(origin) = origin else {
            return false;
        };
        let Some(&conn) = self.owners.get(client_id) else {
            return false;
        };
        let Some(connection) = self.connections.get(&conn) else {
            return false;
        };
        if origin.conn != conn || connection.tier != tier || connection.opened {
            return false;
        }
        let present = match tier {
            Tier::Local => connection.local_present,
            Tier::Durable => present,
        };
        if tier == Tier::Durable && present && resumed_from != Some(self.place) {
            // Served elsewhere last: whatever is queued may have been sent there.
            if let Some(last) = self.durable.session(client_id).and_then(|s| s.queue.back()) {
                let before = self.sent_before.entry(client_id.clone()).or_default();
                *before = (*before).max(last.seq);
            }
        }
        self.opened(conn, present, origin.ticket, now_ms);
        true
    }

    /// The session of `conn` is open: reply to the CONNECT, then send what is queued.
    pub(super) fn opened(&mut self, conn: ConnId, present: bool, ticket: Ticket, now_ms: u64) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        connection.opened = true;
        let before = self.sent_before.remove(&connection.client_id);
        connection.window.set_dup_through(if present {
            before.unwrap_or(Seq::ZERO)
        } else {
            Seq::ZERO
        });
        self.reply(
            conn,
            ticket,
            Completion {
                session_present: present,
                ..Completion::default()
            },
        );
        self.pump(conn, now_ms);
    }
}
