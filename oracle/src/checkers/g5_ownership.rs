//! G5 (docs/design.md §1), as clients see it: "At most one connection serves a client id at
//! any time, across the cluster: moving a client id to another connection is decided by a
//! committed command".
//!
//! `G5 two owners`: when a client opens a new connection with its client id while an old one
//! is still open (`TakeoverStarted { old, new }`) and the new one is accepted (CONNACK), the
//! broker must close the old one ([MQTT-3.1.4-3]; v5 DISCONNECT 0x8E Session taken over), so
//! one connection owns the session. The client keeps reading the old connection until it ends,
//! so the old connection must be recorded ended (`ConnectionLost`) by the end of the history.
//! The liveness phase bounds "eventually": a takeover during the safety phase may find the old
//! connection unreachable (partitioned), but the history ends long after every fault healed.
//! An unaccepted takeover (no CONNACK: refused, timed out) is unknown and proves nothing.
//!
//! One gap, not a violation: a client whose machine crashes records nothing more on any of
//! its connections, so an old connection that died with its client ([`Facts::died_unrecorded`])
//! is not judged.
//!
//! The node side (one live connection per client id in a broker) is `Broker::validate`'s,
//! after every step. The rest of G5, no acknowledgement without a quorum and no split brain
//! (election safety, log matching, leader completeness), comes with the cluster: those
//! checkers need the nodes' Raft logs and terms in the history.

use std::collections::BTreeSet;

use super::Facts;
use crate::history::{ConnRef, Entry, Event, Violation};

pub fn check(history: &[Entry], facts: &Facts) -> Vec<Violation> {
    let mut connected: BTreeSet<&ConnRef> = BTreeSet::new();
    let mut ended: BTreeSet<&ConnRef> = BTreeSet::new();
    for entry in history {
        match &entry.event {
            Event::Connected { at, .. } => {
                connected.insert(at);
            }
            Event::ConnectionLost { at, .. } => {
                ended.insert(at);
            }
            _ => {}
        }
    }
    history
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| match &entry.event {
            Event::TakeoverStarted { old, new }
                if connected.contains(new)
                    && !ended.contains(old)
                    && !facts.died_unrecorded.contains(old) =>
            {
                Some(Violation {
                    guarantee: "G5 two owners",
                    detail: format!(
                        "{new} took over from {old} (entry {i}) and was accepted, but {old} was \
                         never closed"
                    ),
                })
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::build::*;

    fn takeover() -> H {
        H::new()
            .connect_clean("c/1")
            .connected("c/1", false)
            .takeover("c/1", "c/2")
            .connect_clean("c/2")
    }

    #[test]
    fn the_old_connection_is_closed() {
        let h = takeover().connected("c/2", false).lost("c/1");
        assert_eq!(judge(&h.build()), OK);
        // Closed before the new one's CONNACK came is fine too.
        let h = takeover().lost("c/1").connected("c/2", false);
        assert_eq!(judge(&h.build()), OK);
    }

    #[test]
    fn an_old_connection_left_open_is_a_second_owner() {
        let h = takeover().connected("c/2", false).lost("c/2");
        assert_eq!(judge(&h.build()), ["G5 two owners"]);
        let detail = &violations(&h.build())[0].detail;
        assert!(detail.contains("c/2 took over from c/1"), "{detail}");
        // Still open after the new connection ended and the client moved on.
        let h = h.connect_clean("c/3").connected("c/3", false);
        assert_eq!(judge(&h.build()), ["G5 two owners"]);
    }

    #[test]
    fn an_unaccepted_takeover_or_a_dead_client_proves_nothing() {
        // No CONNACK for the new connection.
        let h = takeover().lost("c/2");
        assert_eq!(judge(&h.build()), OK);
        // The client's machine crashed (c/3 opened over the open c/2): c/1 died with it.
        let h = takeover().connected("c/2", false).connect_clean("c/3");
        assert_eq!(judge(&h.build()), OK);
    }
}
