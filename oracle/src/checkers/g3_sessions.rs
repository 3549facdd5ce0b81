//! G3 Session durability (docs/design.md §1): "A durable session keeps its subscriptions, its
//! queued messages, its in-flight QoS 1/2 messages and its QoS 2 receive state when the client
//! reconnects, to the same node or any other, and when any node is killed with `kill -9` and
//! restarted."
//!
//! Judged through the session model ([`super::sessions`]), which follows the MQTT 5 rules for
//! starting, resuming, taking over and expiring sessions over everything the clients sent:
//!
//! - `G3 session lost`: a Clean Start 0 CONNECT was answered Session Present = 0 where a
//!   session certainly existed (started by an accepted CONNECT and never ended since: no
//!   clean start, no connection ended with expiry 0 or a brief expiry, no CONNECT without an
//!   answer that could have ended it).
//! - `G3 session present`: Session Present = 1 on a Clean Start 1 CONNECT, or where no session
//!   could exist (the last one certainly ended and nothing could have started another).
//!
//! A CONNECT whose CONNACK never came may or may not have taken effect, at any time: the
//! model counts both ways, and where that leaves it unsure it judges nothing.
//!
//! The session's contents are judged by their effects: subscriptions and queued messages by
//! G1's lost messages (for sessions durable throughout and never ended), QoS 2 receive state
//! by G1's exactly-once, in-flight order by G2.

use super::Facts;
use crate::history::{Entry, Violation};

pub fn check(_history: &[Entry], facts: &Facts) -> Vec<Violation> {
    facts.sessions.violations.clone()
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
            detail.contains("s/2") && detail.contains("entry 4"),
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
