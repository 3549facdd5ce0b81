//! G2 Order (docs/design.md §1, MQTT 4.6): "QoS 1 and 2 messages from one publisher on one
//! topic reach a subscriber in the order they were published, and a redelivery after
//! reconnect does not change that order."
//!
//! `G2 order`: for each subscriber S that is not in a shared group (a group spreads one
//! publisher's messages over its members, so no member sees the whole order), each publisher P
//! and each topic T, take S's non-retained deliveries from P on T, delivered at QoS ≥ 1 of a
//! QoS ≥ 1 publish, in history order, and keep the first delivery of each message (a
//! redelivery of one S already has is allowed: QoS 1 is at least once). Those first deliveries
//! must come in increasing sequence order. Gaps are fine (an unknown message may be missing,
//! and a clean session may lose messages).
//!
//! The order promised is the order of publishing, and an unknown publish has no known place in
//! it: a message M whose PUBLISH was never acknowledged may have reached the broker late (its
//! publisher gave its connection up and published M+1 on a new one while M was still on the
//! wire), so it may legitimately come after M+1. A message first delivered after a higher
//! one is therefore a violation only when it was acknowledged before that higher one was
//! first sent. (A publisher's sequence numbers follow its first sends, so the highest message
//! delivered so far is the one sent last.)
//!
//! A session that ends with its connection (not durable) is reached off the log, each node
//! forwarding what its own clients publish: order holds per publisher connection. When a
//! publisher moves to another node, what it published on the old one may still be on its
//! way (a link that died quietly takes seconds to be found dead) while the new node's
//! messages arrive, so for such a subscriber the order is judged per publisher connection.
//! A durable session gets QoS 1/2 messages in log order, where a publisher's connections
//! follow one another: judged across them.

use std::collections::{BTreeMap, BTreeSet};

use keel::codec::QoS;

use super::Facts;
use crate::history::{ConnRef, Entry, MsgId, Violation};

pub fn check(_history: &[Entry], facts: &Facts) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut seen: BTreeSet<(&str, MsgId)> = BTreeSet::new();
    // The highest message first delivered so far per (subscriber, publisher, topic, and the
    // publisher's connection for a subscriber off the log), and where.
    type Key<'h> = (&'h str, u32, &'h str, Option<&'h ConnRef>);
    let mut highest: BTreeMap<Key, (MsgId, usize)> = BTreeMap::new();
    for d in &facts.deliveries {
        let client = d.at.client.as_str();
        if d.retain || d.qos == QoS::AtMostOnce || facts.share_filter.contains_key(client) {
            continue;
        }
        let Some(sent) = facts.sent_before(d.msg, d.index) else {
            continue; // G1 reports it.
        };
        if sent.qos == QoS::AtMostOnce || !seen.insert((client, d.msg)) {
            continue;
        }
        let durable = facts
            .sessions
            .life(d.at)
            .is_some_and(|(_, life)| life.durable_throughout);
        let scope = (!durable).then_some(sent.first_sent_on);
        let key = (client, d.msg.publisher, d.topic, scope);
        match highest.get(&key) {
            Some(&(later, j)) if later.seq > d.msg.seq => {
                let later_sent = facts.sent[&later].first_sent;
                if let Some(acked) = sent.acked.filter(|&a| a < later_sent) {
                    violations.push(Violation {
                        guarantee: "G2 order",
                        detail: format!(
                            "{} got {} on {} (entry {}) after {later} (entry {j}), though {} was \
                             acknowledged (entry {acked}) before {later} was sent (entry \
                             {later_sent})",
                            d.at, d.msg, d.topic, d.index, d.msg
                        ),
                    });
                }
            }
            _ => {
                highest.insert(key, (d.msg, d.index));
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use keel::codec::QoS::{self, *};

    use super::super::build::*;

    /// Messages 1..=3 of publisher 0 on `t/a` (acknowledged unless in `unknown`), then the
    /// deliveries to `s` in `order`.
    fn run(filter: &str, qos: QoS, unknown: &[u64], order: &[u64]) -> Vec<&'static str> {
        let mut h = H::new()
            .connect_clean("s/1")
            .connected("s/1", false)
            .sub("s/1", filter, qos);
        for seq in 1..=3 {
            h = h.publish("p/1", m(0, seq), "t/a", qos);
            if !unknown.contains(&seq) {
                h = h.acked("p/1", m(0, seq));
            }
        }
        for &seq in order {
            h = h.deliver("s/1", m(0, seq), "t/a", qos);
        }
        judge(&h.build())
    }

    #[test]
    fn first_deliveries_follow_the_publish_order() {
        assert_eq!(run("t/a", AtLeastOnce, &[], &[1, 2, 3]), OK);
        assert_eq!(run("t/a", AtLeastOnce, &[], &[1, 3]), OK, "a gap");
        assert_eq!(
            run("t/a", AtLeastOnce, &[], &[1, 2, 1, 2, 3]),
            OK,
            "redelivery"
        );
        assert_eq!(run("t/a", ExactlyOnce, &[], &[2, 1, 3]), ["G2 order"]);
        assert_eq!(run("t/a", AtLeastOnce, &[], &[3, 1, 2]), ["G2 order"; 2]);
        let h = H::new()
            .connect_clean("s/1")
            .sub("s/1", "t/a", AtLeastOnce)
            .publish_acked("p/1", m(0, 1), "t/a", AtLeastOnce)
            .publish_acked("p/1", m(0, 2), "t/a", AtLeastOnce)
            .deliver("s/1", m(0, 2), "t/a", AtLeastOnce)
            .deliver("s/1", m(0, 1), "t/a", AtLeastOnce)
            .build();
        let detail = &violations(&h)[0].detail;
        assert!(
            detail.contains("s/1 got p0#1") && detail.contains("after p0#2"),
            "{detail}"
        );
    }

    #[test]
    fn an_unknown_publish_has_no_place_in_the_order() {
        // Message 1 unacknowledged: it may have reached the broker after message 2.
        assert_eq!(run("t/a", AtLeastOnce, &[1], &[2, 1, 3]), OK);
        // Message 2 unacknowledged does not excuse 1 after 3.
        assert_eq!(run("t/a", AtLeastOnce, &[2], &[3, 1]), ["G2 order"]);
    }

    #[test]
    fn qos0_and_shared_groups_promise_no_order() {
        assert_eq!(run("t/a", AtMostOnce, &[1, 2, 3], &[2, 1, 3]), OK);
        assert_eq!(run("$share/g/t/a", AtLeastOnce, &[], &[2, 1, 3]), OK);
    }

    #[test]
    fn order_is_per_publisher_and_topic() {
        let h = H::new()
            .connect_clean("s/1")
            .sub("s/1", "t/+", AtLeastOnce)
            .publish_acked("p/1", m(0, 1), "t/a", AtLeastOnce)
            .publish_acked("q/1", m(1, 1), "t/b", AtLeastOnce)
            .publish_acked("p/1", m(0, 2), "t/a", AtLeastOnce)
            .publish_acked("q/1", m(1, 2), "t/b", AtLeastOnce)
            .deliver("s/1", m(1, 2), "t/b", AtLeastOnce)
            .deliver("s/1", m(0, 1), "t/a", AtLeastOnce)
            .deliver("s/1", m(0, 2), "t/a", AtLeastOnce);
        assert_eq!(judge(&h.build()), OK);
        let h = h.deliver("s/1", m(1, 1), "t/b", AtLeastOnce);
        assert_eq!(judge(&h.build()), ["G2 order"]);
    }

    #[test]
    fn off_the_log_order_holds_per_publisher_connection() {
        // The publisher moved from p/1 to p/2 (on another node); a clean subscriber got p/2's
        // message before p/1's, which was still being forwarded.
        let h = |durable: bool| {
            let h = if durable {
                H::new().connect_durable("s/1")
            } else {
                H::new().connect_clean("s/1")
            };
            h.connected("s/1", false)
                .sub("s/1", "t/a", AtLeastOnce)
                .connect_clean("p/1")
                .connected("p/1", false)
                .publish_acked("p/1", m(0, 1), "t/a", AtLeastOnce)
                .connect_clean("p/2")
                .connected("p/2", false)
                .publish_acked("p/2", m(0, 2), "t/a", AtLeastOnce)
                .deliver("s/1", m(0, 2), "t/a", AtLeastOnce)
                .deliver("s/1", m(0, 1), "t/a", AtLeastOnce)
                .build()
        };
        assert_eq!(judge(&h(false)), OK);
        assert_eq!(judge(&h(true)), ["G2 order"]);
    }
}
