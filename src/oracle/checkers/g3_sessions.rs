//! G3 Session durability (DESIGN.md §1): "A durable session keeps its subscriptions, queued
//! messages, in-flight QoS 1/2 state and QoS 2 receive state (packet ids awaiting PUBREL)
//! across client reconnects to any node, kill -9 and restart of any node".
//!
//! `G3 session lost`: once a durable connection of a client (its CONNECT had `durable`) got
//! its CONNACK, the session exists, and it is the broker's to keep: every later durable CONNECT
//! of that client with clean_start=0 that is accepted must find it (CONNACK Session Present =
//! 1). A connection refused, or without a CONNACK, proves nothing either way. A clean CONNECT
//! (clean_start=1) in between discards the session legitimately, and so does a clean session's
//! end, so only the durable connections' CONNACKs count. No unknown outcome is involved: a
//! CONNECT whose CONNACK never came may or may not have created the session, so the first
//! durable CONNACK, not the first CONNECT, is where the session certainly exists.
//!
//! The session's contents are judged by their effects: subscriptions and queued messages by
//! G1's lost messages, QoS 2 receive state by G1's exactly-once, in-flight order by G2.

use std::collections::{BTreeMap, BTreeSet};

use super::Facts;
use crate::oracle::history::{ConnRef, Entry, Event, Violation};

pub fn check(history: &[Entry], _facts: &Facts) -> Vec<Violation> {
    let mut violations = Vec::new();
    // Whether each connection's CONNECT was durable.
    let mut durable: BTreeMap<&ConnRef, bool> = BTreeMap::new();
    // Clients whose durable session certainly exists, and the CONNACK that showed it.
    let mut has_session: BTreeMap<&str, usize> = BTreeMap::new();
    // Connections that resume a session which certainly exists.
    let mut resuming: BTreeSet<&ConnRef> = BTreeSet::new();
    for (i, entry) in history.iter().enumerate() {
        match &entry.event {
            Event::ConnectSent {
                at,
                clean_start,
                durable: d,
                ..
            } => {
                durable.insert(at, *d);
                if *clean_start {
                    has_session.remove(at.client.as_str());
                } else if *d && has_session.contains_key(at.client.as_str()) {
                    resuming.insert(at);
                }
            }
            Event::Connected {
                at,
                session_present,
            } => {
                let since = has_session.get(at.client.as_str());
                if let (true, false, Some(since)) = (resuming.remove(at), session_present, since) {
                    violations.push(Violation {
                        guarantee: "G3 session lost",
                        detail: format!(
                            "{at} resumed its durable session (which connected at entry \
                             {since}) and got Session Present = 0 (entry {i})"
                        ),
                    });
                }
                if durable.get(at).copied().unwrap_or(false) {
                    has_session.entry(&at.client).or_insert(i);
                } else {
                    // Not durable: whatever session there was ends with this connection.
                    has_session.remove(at.client.as_str());
                }
            }
            _ => {}
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::super::build::*;

    #[test]
    fn a_resumed_durable_session_is_present() {
        let h = |present| {
            H::new()
                .connect_durable("s/1")
                .connected("s/1", false)
                .lost("s/1")
                .connect_durable("s/2")
                .connected("s/2", present)
                .build()
        };
        assert_eq!(judge(&h(true)), OK);
        assert_eq!(judge(&h(false)), ["G3 session lost"]);
        let detail = &violations(&h(false))[0].detail;
        assert!(
            detail.contains("s/2") && detail.contains("entry 1"),
            "{detail}"
        );
        // A takeover (the old connection still open) resumes too.
        let h = H::new()
            .connect_durable("s/1")
            .connected("s/1", false)
            .takeover("s/1", "s/2")
            .connect_durable("s/2")
            .connected("s/2", false)
            .lost("s/1");
        assert_eq!(judge(&h.build()), ["G3 session lost"]);
    }

    #[test]
    fn a_session_never_acknowledged_may_be_absent() {
        // The first CONNECT's CONNACK never came: the session may not exist.
        let h = H::new()
            .connect_durable("s/1")
            .lost("s/1")
            .connect_durable("s/2")
            .connected("s/2", false);
        assert_eq!(judge(&h.build()), OK);
    }

    #[test]
    fn a_clean_start_discards_the_session() {
        let h = H::new()
            .connect_durable("s/1")
            .connected("s/1", false)
            .lost("s/1")
            .connect_clean("s/2")
            .connected("s/2", false)
            .lost("s/2")
            .connect_durable("s/3")
            .connected("s/3", false);
        assert_eq!(judge(&h.build()), OK);
    }
}
