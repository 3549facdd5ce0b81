//! The session model: which session each accepted connection of a client served, by the
//! MQTT 5 rules for starting, resuming, taking over and expiring sessions (§3.1.2.4,
//! §3.1.2.11.2, §3.1.4, §3.2.2.2, §3.14.2.2.2, §4.1), and what a client can be certain of.
//!
//! A *life* is one session from its start to its end. A client's connection starts a new life
//! when its CONNACK says Session Present = 0, and continues the current one when it says 1.
//! The model tracks, in history order, whether a session of the client certainly exists,
//! certainly does not, or may (`Tri`), from what the clients did:
//!
//! - A CONNECT with Clean Start 1 discards any session ([MQTT-3.1.2-4]); its CONNACK must say
//!   Session Present 0 ([MQTT-3.2.2-2]).
//! - A CONNECT with Clean Start 0 resumes the session if there is one ([MQTT-3.1.2-5]) and
//!   must say so ([MQTT-3.2.2-3]), whatever Session Expiry Interval it carries: that interval
//!   only says how long the session lives after this connection (§3.1.2.11.2).
//! - When a connection ends (the client closed it, lost it, or took it over with a new
//!   CONNECT), the session ends with it if the expiry in force is 0 (§3.1.2.11.2), lives
//!   on for a lasting expiry, and may or may not be gone later for a brief one (the broker's
//!   clock decides). The expiry in force is the CONNECT's, or the DISCONNECT's when it set one
//!   (§3.14.2.2.2: never from 0 to more); a DISCONNECT may not arrive, so both count.
//!   MQTT 3.1.1: clean session 1 is Clean Start 1 with expiry 0, clean session 0 lasts.
//!
//! Unknown outcomes: a CONNECT that got no successful CONNACK may still take effect, at any
//! time until the broker refused it with a CONNACK (see [`connect_refused`]), and forever when
//! the connection closed without one: its bytes may reach a paused node long after, and a
//! node that took it may commit its session when it has a quorum again. While such a CONNECT is
//! *pending*, the model cannot be sure of what it would change: one that could end the
//! session (Clean Start 1, or an expiry that is not lasting) makes both its existence and the
//! current life uncertain; one with Clean Start 0 and a lasting expiry can only resume or
//! create a session, so only "certainly no session" becomes uncertain. Certainty comes back
//! with the next event that decides alone once nothing is pending (a CONNACK, a connection
//! ended with expiry 0).
//!
//! What the model reports:
//! - `G3 session lost`: a Clean Start 0 CONNECT found no session (Session Present 0) where
//!   one certainly existed.
//! - `G3 session present`: Session Present 1 where no session could exist, or on a Clean
//!   Start 1 CONNECT.
//! - For G1, each accepted connection's life, and whether the life was durable throughout
//!   and certainly never ended: only such a life is owed its messages.

use std::collections::BTreeMap;

use crate::client::connect_refused;
use crate::history::{ConnRef, Entry, Event, Violation};

/// A Session Expiry Interval of at least this many seconds outlasts any run.
pub const LASTING_EXPIRY_SECS: u32 = 3_600;

/// How long a session outlives a connection, as far as a run can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// 0: the session ends with the connection.
    Zero,
    /// Expires within a run, at a time only the broker's clock knows.
    Brief,
    /// Outlasts the run.
    Lasting,
}

impl Expiry {
    pub fn of_secs(secs: u32) -> Expiry {
        match secs {
            0 => Expiry::Zero,
            s if s >= LASTING_EXPIRY_SECS => Expiry::Lasting,
            _ => Expiry::Brief,
        }
    }

    /// The expiry a CONNECT sets. MQTT 3.1.1's clean session 0 keeps a session as long as
    /// the broker allows, which outlasts a run.
    pub fn of_connect(v5: bool, clean_start: bool, expiry_secs: Option<u32>) -> Expiry {
        match (v5, clean_start) {
            (true, _) => Expiry::of_secs(expiry_secs.unwrap_or(0)),
            (false, true) => Expiry::Zero,
            (false, false) => Expiry::Lasting,
        }
    }
}

/// Whether something certainly holds, certainly does not, or may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Maybe,
}

/// One session of a client, from the CONNACK that started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Life<'h> {
    pub client: &'h str,
    /// Index of the CONNACK that started it.
    pub began_at: usize,
    /// Index of the first event after which it may have ended (`None`: alive at the end).
    pub may_end_at: Option<usize>,
    /// Every connection of it had a lasting expiry (its CONNECT's and any DISCONNECT's):
    /// a durable session for as long as it lived.
    pub durable_throughout: bool,
}

impl Life<'_> {
    /// Owed every message acknowledged after its subscription (G1): durable, and certainly
    /// never ended.
    pub fn owed_messages(&self) -> bool {
        self.durable_throughout && self.may_end_at.is_none()
    }
}

/// A connection as the model needs it.
#[derive(Debug, Clone)]
struct Conn {
    clean_start: bool,
    expiry: Expiry,
    /// The expiry a DISCONNECT asked for, which may or may not have arrived.
    disconnect: Option<Expiry>,
    /// Its CONNECT was answered with a successful CONNACK.
    accepted: bool,
    /// Its CONNECT was refused with a CONNACK: it can no longer take effect.
    refused: bool,
    /// Index of its CONNECT: an unanswered one may have taken effect from there on.
    sent_at: usize,
}

impl Conn {
    /// What the session does when this connection ends: `Yes` it ends, `No` it lives on,
    /// `Maybe`.
    fn ends_session(&self) -> Tri {
        let candidates = [Some(self.expiry), self.disconnect];
        let mut candidates = candidates.iter().flatten();
        if candidates.clone().all(|e| *e == Expiry::Zero) {
            Tri::Yes
        } else if candidates.all(|e| *e == Expiry::Lasting) {
            Tri::No
        } else {
            Tri::Maybe
        }
    }

    /// A CONNECT that, taking effect unanswered, could end a session: by a clean start, or
    /// by the expiry it leaves in force when its connection ends.
    fn could_end_a_session(&self) -> bool {
        self.clean_start || self.expiry != Expiry::Lasting
    }
}

/// What the model knows of one client now.
#[derive(Debug)]
struct Client<'h> {
    /// Whether a session exists, as far as the events that decide alone tell.
    exists: Tri,
    life: Option<usize>,
    /// Accepted connections whose end is not yet accounted for.
    open: Vec<&'h ConnRef>,
    /// CONNECTs sent and not answered yet.
    in_flight: Vec<&'h ConnRef>,
    /// Unanswered CONNECTs that may still take effect (see the module's doc).
    pending: Vec<&'h ConnRef>,
}

impl Default for Client<'_> {
    fn default() -> Self {
        Client {
            exists: Tri::No,
            life: None,
            open: Vec::new(),
            in_flight: Vec::new(),
            pending: Vec::new(),
        }
    }
}

/// The sessions of a history.
#[derive(Debug, Default)]
pub struct Sessions<'h> {
    /// The life each accepted connection served (an index into `lives`).
    pub life_of: BTreeMap<&'h ConnRef, usize>,
    pub lives: Vec<Life<'h>>,
    /// What G3 found.
    pub violations: Vec<Violation>,
}

impl<'h> Sessions<'h> {
    pub fn of(history: &'h [Entry]) -> Sessions<'h> {
        let mut model = Model::default();
        for (i, entry) in history.iter().enumerate() {
            model.step(i, &entry.event);
        }
        let clients: Vec<&'h str> = model.clients.keys().copied().collect();
        for client in clients {
            model.settle(client, history.len());
        }
        model.sessions
    }

    /// The life a connection served, if it was accepted.
    pub fn life(&self, at: &ConnRef) -> Option<(usize, &Life<'h>)> {
        let index = *self.life_of.get(at)?;
        Some((index, &self.lives[index]))
    }
}

#[derive(Default)]
struct Model<'h> {
    clients: BTreeMap<&'h str, Client<'h>>,
    conns: BTreeMap<&'h ConnRef, Conn>,
    sessions: Sessions<'h>,
}

impl<'h> Model<'h> {
    fn step(&mut self, i: usize, event: &'h Event) {
        match event {
            Event::ConnectSent {
                at,
                clean_start,
                v5,
                expiry_secs,
                ..
            } => {
                self.settle(&at.client, i);
                let conn = Conn {
                    clean_start: *clean_start,
                    expiry: Expiry::of_connect(*v5, *clean_start, *expiry_secs),
                    disconnect: None,
                    accepted: false,
                    refused: false,
                    sent_at: i,
                };
                self.conns.insert(at, conn);
                self.client(&at.client).in_flight.push(at);
            }
            Event::DisconnectSent { at, expiry_secs } => {
                if let (Some(conn), Some(secs)) = (self.conns.get_mut(at), expiry_secs) {
                    // Never from 0 to more (§3.14.2.2.2, a Protocol Error): the broker keeps 0.
                    if conn.expiry != Expiry::Zero {
                        conn.disconnect = Some(Expiry::of_secs(*secs));
                    }
                }
            }
            Event::ConnectionLost { at, why } => {
                if let Some(conn) = self.conns.get_mut(at) {
                    conn.refused = connect_refused(why);
                }
                if self.conns.get(at).is_some_and(|c| c.refused) {
                    self.client(&at.client).pending.retain(|c| *c != at);
                }
            }
            Event::Connected {
                at,
                session_present,
            } => self.accepted(i, at, *session_present),
            _ => {}
        }
    }

    fn client(&mut self, client: &'h str) -> &mut Client<'h> {
        self.clients.entry(client).or_default()
    }

    /// Marks the life of `client` as possibly ended at `i`.
    fn may_end(&mut self, client: &'h str, i: usize) {
        if let Some(life) = self.client(client).life {
            let life = &mut self.sessions.lives[life];
            life.may_end_at.get_or_insert(i);
        }
    }

    /// Whether a pending CONNECT of `client` could end its session (`true`), or could only
    /// create one (`false`); `None` when none is pending.
    fn pending_could_end(&self, client: &str) -> Option<bool> {
        let state = self.clients.get(client)?;
        let mut pending = state
            .pending
            .iter()
            .map(|at| self.conns[at].could_end_a_session());
        let first = pending.next()?;
        Some(first || pending.any(|could| could))
    }

    /// Sets what the events that decide alone say exists, tempered by what is pending.
    fn set_exists(&mut self, client: &'h str, decided: Tri) {
        let exists = match (decided, self.pending_could_end(client)) {
            (_, Some(true)) => Tri::Maybe,
            (Tri::No, Some(false)) => Tri::Maybe,
            (decided, _) => decided,
        };
        self.client(client).exists = exists;
    }

    /// A new CONNECT of `client` is about to be sent (or the history ended): every connection
    /// before it has ended by the time the broker takes it (closed, lost, or taken over by
    /// it), and every earlier CONNECT left unanswered may have taken effect, or may yet.
    fn settle(&mut self, client: &'h str, i: usize) {
        let state = self.client(client);
        let open = std::mem::take(&mut state.open);
        let unanswered = std::mem::take(&mut state.in_flight);
        for at in open {
            let conn = &self.conns[at];
            let (ends, durable) = (
                conn.ends_session(),
                conn.disconnect.is_none_or(|e| e == Expiry::Lasting),
            );
            if !durable {
                if let Some((life, _)) = self.sessions.life(at) {
                    self.sessions.lives[life].durable_throughout = false;
                }
            }
            match ends {
                Tri::No => {}
                Tri::Yes => {
                    self.may_end(client, i);
                    self.set_exists(client, Tri::No);
                }
                Tri::Maybe => {
                    self.may_end(client, i);
                    self.client(client).exists = Tri::Maybe;
                }
            }
        }
        for at in unanswered {
            let conn = &self.conns[at];
            let (could_end, sent_at, ended) =
                (conn.could_end_a_session(), conn.sent_at, conn.refused);
            if !ended {
                self.client(client).pending.push(at);
            }
            if could_end {
                // It may have taken effect since it was sent.
                self.may_end(client, sent_at);
                self.client(client).exists = Tri::Maybe;
            } else if self.client(client).exists == Tri::No {
                // It may have created a session, never ended one.
                self.client(client).exists = Tri::Maybe;
            }
        }
        let exists = self.client(client).exists;
        self.set_exists(client, exists);
    }

    /// A successful CONNACK: judge Session Present, then record the life it serves.
    fn accepted(&mut self, i: usize, at: &'h ConnRef, present: bool) {
        let client = at.client.as_str();
        let Some(conn) = self.conns.get_mut(at) else {
            return;
        };
        conn.accepted = true;
        let conn = conn.clone();
        self.client(client).in_flight.retain(|c| *c != at);
        let (exists, life) = {
            let state = self.client(client);
            (state.exists, state.life)
        };
        if let Some(detail) = judge(&conn, exists, present) {
            self.sessions.violations.push(Violation {
                guarantee: if present {
                    "G3 session present"
                } else {
                    "G3 session lost"
                },
                detail: format!("{at} (CONNACK at entry {i}): {detail}"),
            });
        }
        let continues = present && exists == Tri::Yes;
        let life = match life {
            Some(life) if continues => life,
            _ => {
                self.may_end(client, i);
                self.sessions.lives.push(Life {
                    client,
                    began_at: i,
                    may_end_at: None,
                    durable_throughout: true,
                });
                self.sessions.lives.len() - 1
            }
        };
        if conn.expiry != Expiry::Lasting {
            self.sessions.lives[life].durable_throughout = false;
        }
        if self.pending_could_end(client) == Some(true) {
            self.sessions.lives[life].may_end_at.get_or_insert(i);
        }
        self.sessions.life_of.insert(at, life);
        self.client(client).life = Some(life);
        self.set_exists(client, Tri::Yes);
        self.client(client).open.push(at);
    }
}

/// What is wrong with a CONNACK's Session Present, if anything.
fn judge(conn: &Conn, exists: Tri, present: bool) -> Option<&'static str> {
    if conn.clean_start {
        return present.then_some("Session Present 1 on a Clean Start 1 CONNECT ([MQTT-3.2.2-2])");
    }
    match (exists, present) {
        (Tri::Yes, false) => Some(
            "Clean Start 0 found no session, but one certainly existed: it was never ended \
             (no clean start, no connection ended with expiry 0, none of a brief expiry) \
             ([MQTT-3.1.2-5], [MQTT-3.2.2-3])",
        ),
        (Tri::No, true) => Some(
            "Session Present 1, but no session could exist: the last one ended (a clean \
             start, or a connection ended with expiry 0) and none began since ([MQTT-3.2.2-3])",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::build::*;
    use crate::history::Event;

    #[test]
    fn clean_start_0_resumes_whatever_expiry_it_carries() {
        let h = |present| {
            H::new()
                .connect_v5("c/1", false, Some(99_999))
                .connected("c/1", false)
                .disconnect("c/1", None)
                .lost("c/1")
                .connect_v5("c/2", false, None)
                .connected("c/2", present)
                .build()
        };
        assert_eq!(judge(&h(true)), OK);
        assert_eq!(judge(&h(false)), ["G3 session lost"]);
    }

    #[test]
    fn a_connection_with_expiry_0_ends_its_session() {
        // Resumed with expiry 0 (the session now ends with this connection).
        let h = |present| {
            H::new()
                .connect_v5("c/1", false, Some(99_999))
                .connected("c/1", false)
                .lost("c/1")
                .connect_v5("c/2", false, None)
                .connected("c/2", true)
                .lost("c/2")
                .connect_v5("c/3", false, Some(99_999))
                .connected("c/3", present)
                .build()
        };
        assert_eq!(judge(&h(false)), OK);
        assert_eq!(judge(&h(true)), ["G3 session present"]);
        // DISCONNECT with expiry 0 ends a lasting session too; with a lasting one, it stays.
        let h = |expiry, present| {
            H::new()
                .connect_v5("c/1", false, Some(99_999))
                .connected("c/1", false)
                .disconnect("c/1", Some(expiry))
                .lost("c/1")
                .connect_v5("c/2", false, Some(99_999))
                .connected("c/2", present)
                .build()
        };
        // The DISCONNECT may not have arrived: either answer is right.
        assert_eq!(judge(&h(0, true)), OK);
        assert_eq!(judge(&h(0, false)), OK);
        assert_eq!(judge(&h(7_200, false)), ["G3 session lost"]);
    }

    #[test]
    fn a_clean_start_never_finds_a_session() {
        let h = H::new()
            .connect_v5("c/1", false, Some(99_999))
            .connected("c/1", false)
            .lost("c/1")
            .connect_v5("c/2", true, Some(99_999))
            .connected("c/2", true)
            .build();
        assert_eq!(judge(&h), ["G3 session present"]);
        // Nor does the next Clean Start 0 CONNECT find the discarded one, if the clean
        // session ended with its connection.
        let h = |present| {
            H::new()
                .connect_v5("c/1", false, Some(99_999))
                .connected("c/1", false)
                .lost("c/1")
                .connect_clean("c/2")
                .connected("c/2", false)
                .lost("c/2")
                .connect_v5("c/3", false, Some(99_999))
                .connected("c/3", present)
                .build()
        };
        assert_eq!(judge(&h(false)), OK);
        assert_eq!(judge(&h(true)), ["G3 session present"]);
    }

    #[test]
    fn a_brief_expiry_may_or_may_not_have_passed() {
        for present in [false, true] {
            let h = H::new()
                .connect_v5("c/1", false, Some(2))
                .connected("c/1", false)
                .lost("c/1")
                .connect_v5("c/2", false, Some(2))
                .connected("c/2", present)
                .build();
            assert_eq!(judge(&h), OK);
        }
    }

    #[test]
    fn an_unanswered_connect_that_could_end_the_session_clouds_the_client() {
        // c/2 never got its CONNACK: it may take effect late, discarding the session.
        let h = H::new()
            .connect_v5("c/1", false, Some(99_999))
            .connected("c/1", false)
            .connect_clean("c/2")
            .lost("c/2")
            .connect_v5("c/3", false, Some(99_999))
            .connected("c/3", false)
            .build();
        assert_eq!(judge(&h), OK);
        // One that resumes with a lasting expiry cannot end it.
        let h = H::new()
            .connect_v5("c/1", false, Some(99_999))
            .connected("c/1", false)
            .connect_v5("c/2", false, Some(99_999))
            .lost("c/2")
            .connect_v5("c/3", false, Some(99_999))
            .connected("c/3", false)
            .build();
        assert_eq!(judge(&h), ["G3 session lost"]);
    }

    #[test]
    fn mqtt_3_clean_session_0_lasts_and_1_starts_clean() {
        let h = H::new()
            .connect_durable("c/1")
            .connected("c/1", false)
            .lost("c/1")
            .connect_durable("c/2")
            .connected("c/2", false)
            .build();
        assert_eq!(judge(&h), ["G3 session lost"]);
    }

    #[test]
    fn an_abandoned_connect_may_take_effect_until_it_is_refused() {
        // c/1 (Clean Start 0, lasting) is given up before its CONNACK; the broker takes c/2
        // (a clean session) first and c/1 after, which creates a session: c/3 finds it.
        let h = |c1_closed_by_broker_before_c3: bool| {
            let h = H::new()
                .connect_durable("c/1")
                .connect_clean("c/2")
                .connected("c/2", false)
                .lost("c/2");
            let h = if c1_closed_by_broker_before_c3 {
                h.event(Event::ConnectionLost {
                    at: conn("c/1"),
                    why: "refused: ConnAck(..)".into(),
                })
                .connect_clean("c/3")
                .connected("c/3", false)
                .lost("c/3")
            } else {
                h
            };
            h.connect_v5("c/4", false, Some(7_200))
                .connected("c/4", true)
                .build()
        };
        assert_eq!(judge(&h(false)), OK);
        // Once c/1 was refused and a clean session came and went, none can exist.
        assert_eq!(judge(&h(true)), ["G3 session present"]);
    }
}
