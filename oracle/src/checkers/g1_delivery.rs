//! G1 Delivery (docs/design.md §1): "When a durable session's subscription has been granted
//! (SUBACK received) and a matching QoS 1 or QoS 2 publish is sent after that and
//! acknowledged, the session gets the message: at least once if it is delivered at QoS 1,
//! exactly once to the application if publish and subscription are both QoS 2. A QoS 0
//! message is delivered at most once."
//!
//! Only non-retained deliveries count here (a retained copy sent on subscribe is G4's), and a
//! client that ever subscribed with a `$share/<group>/<filter>` filter receives for its group
//! (see [`Receiver`]).
//!
//! Sessions are the model's (see [`super::sessions`]): a client's session is a *life* from
//! the CONNACK that started it (Session Present 0) to its end.
//!
//! - `G1 delivery` (lost): take a session of client S that was durable throughout and
//!   certainly never ended (every connection of it had a lasting expiry, and nothing that
//!   could end it happened), and its first SUBACK of filter F in that session, granting
//!   QoS ≥ 1, at entry i. Every message M whose first PUBLISH is at an entry j > i, whose
//!   PUBLISH had QoS ≥ 1 and RETAIN = 0, whose topic F matches, and which was acknowledged
//!   (PUBACK / PUBREC), must have been delivered to S by the end of the history (the history
//!   ends after the liveness phase, so "eventually" has had its bound). For a share filter
//!   the group must have it: once such a member's SUBACK precedes j, at least one delivery
//!   to any client that subscribed with that share filter. An unacknowledged publish is
//!   unknown, possibly never received by the broker: it is never required. A publish sent
//!   before the SUBACK may have been routed before the subscription existed: not required
//!   either. A session that may have ended (a clean start, an expiry of 0 or a brief one, an
//!   unanswered CONNECT that could have ended it) is owed nothing: its queue may be gone.
//! - `G1 exactly-once`: a message published at QoS 2 is delivered at QoS 2 at most once to one
//!   receiver session (a session of a client, or a whole shared group with a durable member,
//!   [MQTT-4.3.3], [MQTT-4.8.2]; a session that ends with its connection is a receiver of its
//!   own, in a group too when the group has no durable member: exactly once holds within a
//!   session, and a new one has none of the old one's state). Two deliveries count as one
//!   session's only when the model is sure they are: the same life. A message its publisher
//!   sent in two sessions (resent after a reconnect that resumed a session, but maybe not the
//!   one it was first sent in) may have been published twice, and is not judged. Whether it
//!   was acknowledged does not matter: an unknown publish may arrive, but only once. (The
//!   workload's client drops a QoS 2 resend whose packet id awaits PUBREL, as the spec's
//!   receiver does, so a duplicate here got past the protocol's own dedup: the broker sent the
//!   message as a new one.) Deliveries at QoS 1 of a QoS 2 publish (a QoS 1 subscription) are
//!   at least once and may repeat.
//! - `G1 QoS 0 duplicate`: a message published at QoS 0 is never sent again by its publisher,
//!   so it reaches one receiver at most once, whatever the subscription's QoS.
//! - `G1 never sent`: every delivery, retained or not, carries a message whose first PUBLISH
//!   came before it.

use std::collections::{BTreeMap, BTreeSet};

use keel::codec::QoS;

use super::{matches, split_shared, Delivery, Facts, Granted, Receiver, Sent};
use crate::history::{ConnRef, Entry, MsgId, Violation};

/// A receiving session: a receiver, and for a client the life of its session (see
/// [`super::sessions`]; 0 for a whole shared group).
type Session<'h> = (Receiver<'h>, usize);

/// The non-retained deliveries of one message to one receiver.
#[derive(Default)]
struct Copies<'h> {
    all: Vec<(usize, &'h ConnRef)>,
}

pub fn check(_history: &[Entry], facts: &Facts) -> Vec<Violation> {
    let mut violations = Vec::new();
    let received = judge_deliveries(facts, &mut violations);
    judge_lost(facts, &received, &mut violations);
    violations
}

/// The non-retained deliveries of messages sent before them, indexed for [`judge_lost`].
#[derive(Default)]
struct Received<'h> {
    /// By receiver (a client, or a shared group) and message.
    to_receiver: BTreeMap<(Receiver<'h>, MsgId), Copies<'h>>,
    /// The (client, message) pairs delivered.
    to_client: BTreeSet<(&'h str, MsgId)>,
}

/// Judges every delivery in history order (`G1 never sent`, `G1 exactly-once`, `G1 QoS 0
/// duplicate`, each reported at the delivery that breaks it), and gathers what was received.
fn judge_deliveries<'h>(facts: &Facts<'h>, violations: &mut Vec<Violation>) -> Received<'h> {
    let mut received = Received::default();
    let mut to_session: BTreeMap<(Session, MsgId), Vec<(usize, &ConnRef)>> = BTreeMap::new();
    let durable_groups: BTreeSet<&str> = facts
        .share_filter
        .iter()
        .filter(|(client, _)| facts.durable.contains(*client))
        .map(|(_, filter)| *filter)
        .collect();
    for d in &facts.deliveries {
        let Some(sent) = facts.sent_before(d.msg, d.index) else {
            violations.push(never_sent(facts, d));
            continue;
        };
        if d.retain {
            continue;
        }
        received.to_client.insert((&d.at.client, d.msg));
        let receiver = facts.receiver(&d.at.client);
        let copies = received.to_receiver.entry((receiver, d.msg)).or_default();
        copies.all.push((d.index, d.at));
        if sent.qos == QoS::ExactlyOnce && d.qos == QoS::ExactlyOnce && sent.sent_in_sessions <= 1 {
            let session = receiving_session(facts, &durable_groups, receiver, d);
            let qos2 = to_session.entry((session, d.msg)).or_default();
            qos2.push((d.index, d.at));
            if qos2.len() == 2 {
                violations.push(Violation {
                    guarantee: "G1 exactly-once",
                    detail: format!(
                        "{} got QoS 2 {} on {} twice at QoS 2: {}",
                        session.0,
                        d.msg,
                        sent.topic,
                        copies_text(qos2)
                    ),
                });
            }
        }
        if sent.qos == QoS::AtMostOnce && copies.all.len() == 2 {
            violations.push(Violation {
                guarantee: "G1 QoS 0 duplicate",
                detail: format!(
                    "{receiver} got QoS 0 {} on {} twice: {}",
                    d.msg,
                    sent.topic,
                    copies_text(&copies.all)
                ),
            });
        }
    }
    received
}

/// `G1 never sent`: delivery `d` carries a message with no PUBLISH before it.
fn never_sent(facts: &Facts, d: &Delivery) -> Violation {
    let later = match facts.sent.get(&d.msg) {
        Some(s) => format!(" (its first PUBLISH is at entry {}, later)", s.first_sent),
        None => String::new(),
    };
    Violation {
        guarantee: "G1 never sent",
        detail: format!(
            "{} got {} on {} at entry {}, a message nobody had sent{later}",
            d.at, d.msg, d.topic, d.index
        ),
    }
}

/// The session that received QoS 2 delivery `d`, counting for `receiver`, for exactly once.
///
/// A client whose sessions end with their connections has a new session, and a receiver of
/// its own, on each connection; but a shared group with a durable member (in
/// `durable_groups`) is one receiver, whichever member it gave the message to.
fn receiving_session<'h>(
    facts: &Facts<'h>,
    durable_groups: &BTreeSet<&str>,
    receiver: Receiver<'h>,
    d: &Delivery<'h>,
) -> Session<'h> {
    let whole_group = match receiver {
        Receiver::Group(filter) => durable_groups.contains(filter),
        Receiver::Client(_) => false,
    };
    if whole_group {
        (receiver, 0)
    } else {
        // Every delivery is on an accepted connection, which served one life.
        let life = facts
            .sessions
            .life(d.at)
            .map_or(usize::MAX, |(life, _)| life);
        (Receiver::Client(&d.at.client), life)
    }
}

/// `G1 delivery`: the messages each durable subscription was owed and its receiver never got,
/// subscription by subscription in history order, then each share filter once, from its
/// earliest durable member.
fn judge_lost(facts: &Facts, received: &Received, violations: &mut Vec<Violation>) {
    let mut groups: BTreeMap<&str, &Granted> = BTreeMap::new();
    for sub in &facts.subscriptions {
        let durable = sub
            .life
            .is_some_and(|life| facts.sessions.lives[life].owed_messages());
        if !durable || sub.qos == QoS::AtMostOnce {
            continue;
        }
        if split_shared(sub.filter).0.is_some() {
            groups.entry(sub.filter).or_insert(sub);
            continue;
        }
        for (msg, sent) in owed(facts, sub) {
            if !received.to_client.contains(&(sub.client, msg)) {
                violations.push(lost(msg, sent, sub, sub.client));
            }
        }
    }
    for (filter, first) in groups {
        let group = Receiver::Group(filter);
        for (msg, sent) in owed(facts, first) {
            if !received.to_receiver.contains_key(&(group, msg)) {
                violations.push(lost(msg, sent, first, &group.to_string()));
            }
        }
    }
}

/// The messages `sub` must get: acknowledged, QoS ≥ 1, not retained, matching, and first sent
/// after its SUBACK.
fn owed<'f, 'h>(
    facts: &'f Facts<'h>,
    sub: &'f Granted<'h>,
) -> impl Iterator<Item = (MsgId, &'f Sent<'h>)> + 'f {
    facts
        .by_topic
        .iter()
        .filter(|(topic, _)| matches(sub.filter, topic))
        .flat_map(move |(_, msgs)| {
            // In first-send order: skip those sent before the SUBACK.
            let from = msgs.partition_point(|m| facts.sent[m].first_sent < sub.at);
            msgs[from..].iter().map(move |m| (*m, &facts.sent[m]))
        })
        .filter(|(_, sent)| sent.acked.is_some() && sent.qos != QoS::AtMostOnce && !sent.retain)
}

fn lost(msg: MsgId, sent: &Sent, sub: &Granted, receiver: &str) -> Violation {
    Violation {
        guarantee: "G1 delivery",
        detail: format!(
            "acknowledged QoS {} {msg} on {} (sent at entry {}, acknowledged at {}) never reached \
             {receiver}, whose durable session {} subscribed to {} at entry {}",
            sent.qos as u8,
            sent.topic,
            sent.first_sent,
            sent.acked.unwrap_or_default(),
            sub.client,
            sub.filter,
            sub.at
        ),
    }
}

fn copies_text(copies: &[(usize, &ConnRef)]) -> String {
    copies
        .iter()
        .map(|(i, at)| format!("entry {i} on {at}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use keel::codec::QoS::*;

    use super::super::build::*;

    /// A durable subscriber to `t/+` and a publisher, connected.
    fn setup(sub_qos: keel::codec::QoS) -> H {
        H::new()
            .connect_durable("s/1")
            .connected("s/1", false)
            .sub("s/1", "t/+", sub_qos)
            .connect_clean("p/1")
            .connected("p/1", false)
    }

    #[test]
    fn an_acknowledged_message_reaches_a_durable_subscriber() {
        let h = setup(AtLeastOnce).publish_acked("p/1", m(0, 1), "t/a", AtLeastOnce);
        assert_eq!(judge(&h.build()), ["G1 delivery"]);
        let detail = &violations(&h.build())[0].detail;
        assert!(
            detail.contains("p0#1") && detail.contains("s subscribed to t/+"),
            "{detail}"
        );
        // Delivered, even on a later connection: fine.
        let h = h
            .lost("s/1")
            .connect_durable("s/2")
            .connected("s/2", true)
            .deliver("s/2", m(0, 1), "t/a", AtLeastOnce);
        assert_eq!(judge(&h.build()), OK);
    }

    #[test]
    fn a_qos2_message_reaches_a_durable_subscriber() {
        let h = setup(ExactlyOnce).publish_acked("p/1", m(0, 1), "t/a", ExactlyOnce);
        assert_eq!(judge(&h.build()), ["G1 delivery"]);
        let h = h.deliver("s/1", m(0, 1), "t/a", ExactlyOnce);
        assert_eq!(judge(&h.build()), OK);
    }

    #[test]
    fn an_unacknowledged_message_may_be_missing() {
        let h = setup(AtLeastOnce).publish("p/1", m(0, 1), "t/a", AtLeastOnce);
        assert_eq!(judge(&h.build()), OK);
        // ... or arrive.
        let h = h.deliver("s/1", m(0, 1), "t/a", AtLeastOnce);
        assert_eq!(judge(&h.build()), OK);
    }

    #[test]
    fn what_is_not_owed_may_be_missing() {
        // Sent before the SUBACK (acknowledged after it).
        let h = H::new()
            .connect_durable("s/1")
            .subscribe("s/1", "t/+", AtLeastOnce)
            .publish("p/1", m(0, 1), "t/a", AtLeastOnce)
            .subscribed("s/1", "t/+", AtLeastOnce)
            .acked("p/1", m(0, 1));
        assert_eq!(judge(&h.build()), OK);
        let after = |h: H| h.publish_acked("p/1", m(0, 1), "t/a", AtLeastOnce).build();
        // A clean session.
        let clean = H::new().connect_clean("s/1").sub("s/1", "t/+", AtLeastOnce);
        assert_eq!(judge(&after(clean)), OK);
        // A QoS 0 subscription, a QoS 0 publish, a retained publish, another topic.
        assert_eq!(judge(&after(setup(AtMostOnce))), OK);
        let qos0 = setup(AtLeastOnce).publish("p/1", m(0, 1), "t/a", AtMostOnce);
        assert_eq!(judge(&qos0.build()), OK);
        let retained = setup(AtLeastOnce)
            .publish_retained("p/1", m(0, 1), "t/a")
            .acked("p/1", m(0, 1));
        assert_eq!(judge(&retained.build()), OK);
        let other = setup(AtLeastOnce).publish_acked("p/1", m(0, 1), "u/a", AtLeastOnce);
        assert_eq!(judge(&other.build()), OK);
        // A retained copy does not stand in for the live one (and a live message served as
        // retained is G4's).
        let h = setup(AtLeastOnce)
            .publish_acked("p/1", m(0, 1), "t/a", AtLeastOnce)
            .deliver_retained("s/1", m(0, 1), "t/a");
        assert_eq!(
            judge(&h.build()),
            ["G1 delivery", "G4 retained never written"]
        );
    }

    #[test]
    fn a_qos2_message_is_delivered_at_most_once() {
        let twice = setup(ExactlyOnce)
            .publish("p/1", m(0, 1), "t/a", ExactlyOnce)
            .deliver("s/1", m(0, 1), "t/a", ExactlyOnce)
            .lost("s/1")
            .connect_durable("s/2")
            .connected("s/2", true)
            .deliver("s/2", m(0, 1), "t/a", ExactlyOnce);
        // Unacknowledged, yet twice is too many.
        assert_eq!(judge(&twice.build()), ["G1 exactly-once"]);
        let detail = &violations(&twice.build())[0].detail;
        assert!(
            detail.contains("on s/1") && detail.contains("on s/2"),
            "{detail}"
        );
        // A clean subscriber too.
        let clean = H::new()
            .connect_clean("s/1")
            .sub("s/1", "t/a", ExactlyOnce)
            .publish_acked("p/1", m(0, 1), "t/a", ExactlyOnce)
            .deliver("s/1", m(0, 1), "t/a", ExactlyOnce)
            .deliver("s/1", m(0, 1), "t/a", ExactlyOnce);
        assert_eq!(judge(&clean.build()), ["G1 exactly-once"]);
        // A clean subscriber's next connection is a new session, which has none of the old
        // one's QoS 2 state: the same message on it is not a second copy to that session.
        let new_session = H::new()
            .connect_clean("s/1")
            .connected("s/1", false)
            .sub("s/1", "t/a", ExactlyOnce)
            .publish("p/1", m(0, 1), "t/a", ExactlyOnce)
            .deliver("s/1", m(0, 1), "t/a", ExactlyOnce)
            .lost("s/1")
            .connect_clean("s/2")
            .connected("s/2", false)
            .sub("s/2", "t/a", ExactlyOnce)
            .deliver("s/2", m(0, 1), "t/a", ExactlyOnce);
        assert_eq!(judge(&new_session.build()), OK);
        // At QoS 1 (a QoS 1 subscription) a QoS 2 message may come again.
        let qos1 = setup(AtLeastOnce)
            .publish_acked("p/1", m(0, 1), "t/a", ExactlyOnce)
            .deliver("s/1", m(0, 1), "t/a", AtLeastOnce)
            .deliver("s/1", m(0, 1), "t/a", AtLeastOnce);
        assert_eq!(judge(&qos1.build()), OK);
    }

    #[test]
    fn a_qos0_message_is_never_duplicated() {
        let h = setup(AtLeastOnce)
            .publish("p/1", m(0, 1), "t/a", AtMostOnce)
            .deliver("s/1", m(0, 1), "t/a", AtMostOnce);
        assert_eq!(judge(&h.build()), OK);
        let h = h.deliver("s/1", m(0, 1), "t/a", AtMostOnce);
        assert_eq!(judge(&h.build()), ["G1 QoS 0 duplicate"]);
        // A QoS 1 message delivered at QoS 0 may repeat (its publisher may resend it).
        let h = setup(AtMostOnce)
            .publish_acked("p/1", m(0, 1), "t/a", AtLeastOnce)
            .deliver("s/1", m(0, 1), "t/a", AtMostOnce)
            .deliver("s/1", m(0, 1), "t/a", AtMostOnce);
        assert_eq!(judge(&h.build()), OK);
    }

    #[test]
    fn a_shared_group_gets_each_message_once() {
        let group = H::new()
            .connect_durable("a/1")
            .connected("a/1", false)
            .connect_clean("b/1")
            .connected("b/1", false)
            .sub("a/1", "$share/g/t/+", ExactlyOnce)
            .sub("b/1", "$share/g/t/+", ExactlyOnce)
            .publish_acked("p/1", m(0, 1), "t/x", ExactlyOnce);
        // Owed once to the group, not to each member.
        assert_eq!(judge(&group.build()), ["G1 delivery"]);
        let detail = &violations(&group.build())[0].detail;
        assert!(detail.contains("shared group $share/g/t/+"), "{detail}");
        // The clean member's copy counts for the group.
        let one = group.deliver("b/1", m(0, 1), "t/x", ExactlyOnce);
        assert_eq!(judge(&one.build()), OK);
        let two = one.deliver("a/1", m(0, 1), "t/x", ExactlyOnce);
        assert_eq!(judge(&two.build()), ["G1 exactly-once"]);
        // No durable member subscribed before the publish: nothing owed.
        let h = H::new()
            .connect_clean("b/1")
            .sub("b/1", "$share/g/t/+", AtLeastOnce)
            .publish_acked("p/1", m(0, 1), "t/x", AtLeastOnce)
            .connect_durable("a/1")
            .connected("a/1", false)
            .sub("a/1", "$share/g/t/+", AtLeastOnce);
        assert_eq!(judge(&h.build()), OK);
        // A QoS 1 copy may go to a second member (its first one left).
        let h = H::new()
            .connect_durable("a/1")
            .connect_durable("b/1")
            .sub("a/1", "$share/g/t/+", AtLeastOnce)
            .sub("b/1", "$share/g/t/+", AtLeastOnce)
            .publish_acked("p/1", m(0, 1), "t/x", AtLeastOnce)
            .deliver("a/1", m(0, 1), "t/x", AtLeastOnce)
            .deliver("b/1", m(0, 1), "t/x", AtLeastOnce);
        assert_eq!(judge(&h.build()), OK);
    }

    #[test]
    fn a_message_nobody_sent_is_never_delivered() {
        let h = setup(AtLeastOnce).deliver("s/1", m(9, 9), "t/a", AtLeastOnce);
        assert_eq!(judge(&h.build()), ["G1 never sent"]);
        // Delivered before its first PUBLISH.
        let h = setup(AtLeastOnce)
            .deliver("s/1", m(0, 1), "t/a", AtLeastOnce)
            .publish("p/1", m(0, 1), "t/a", AtLeastOnce);
        assert_eq!(judge(&h.build()), ["G1 never sent"]);
        let h = setup(AtLeastOnce).deliver_retained("s/1", m(0, 1), "t/a");
        assert_eq!(judge(&h.build()), ["G1 never sent"]);
    }

    #[test]
    fn a_churning_session_is_owed_only_while_it_certainly_lives() {
        // Resumed with a lasting expiry throughout: owed.
        let lasting = H::new()
            .connect_v5("s/1", false, Some(7_200))
            .connected("s/1", false)
            .sub("s/1", "t/+", AtLeastOnce)
            .lost("s/1")
            .connect_v5("s/2", false, Some(7_200))
            .connected("s/2", true)
            .publish_acked("p/1", m(0, 1), "t/a", AtLeastOnce);
        assert_eq!(judge(&lasting.build()), ["G1 delivery"]);
        // A connection of the session with expiry 0 (resumed): it is not durable then.
        let brief = H::new()
            .connect_v5("s/1", false, Some(7_200))
            .connected("s/1", false)
            .sub("s/1", "t/+", AtLeastOnce)
            .lost("s/1")
            .connect_v5("s/2", false, None)
            .connected("s/2", true)
            .publish_acked("p/1", m(0, 1), "t/a", AtLeastOnce);
        assert_eq!(judge(&brief.build()), OK);
        // Ended by a clean start: its queue is gone, and the new session never subscribed.
        let ended = H::new()
            .connect_v5("s/1", false, Some(7_200))
            .connected("s/1", false)
            .sub("s/1", "t/+", AtLeastOnce)
            .publish_acked("p/1", m(0, 1), "t/a", AtLeastOnce)
            .lost("s/1")
            .connect_v5("s/2", true, Some(7_200))
            .connected("s/2", false);
        assert_eq!(judge(&ended.build()), OK);
    }

    #[test]
    fn exactly_once_holds_within_one_session_of_a_churning_client() {
        let resumed = |present: bool| {
            H::new()
                .connect_v5("s/1", false, Some(7_200))
                .connected("s/1", false)
                .sub("s/1", "t/a", ExactlyOnce)
                .publish("p/1", m(0, 1), "t/a", ExactlyOnce)
                .deliver("s/1", m(0, 1), "t/a", ExactlyOnce)
                .lost("s/1")
                .connect_v5("s/2", !present, Some(7_200))
                .connected("s/2", present)
                .sub("s/2", "t/a", ExactlyOnce)
                .deliver("s/2", m(0, 1), "t/a", ExactlyOnce)
                .build()
        };
        // The same session: twice. A new one (clean start): a receiver of its own.
        assert_eq!(judge(&resumed(true)), ["G1 exactly-once"]);
        assert_eq!(judge(&resumed(false)), OK);
    }

    #[test]
    fn a_qos2_message_resent_in_another_session_of_its_publisher_is_a_new_publish() {
        // The publisher's session with m in flight ended (expiry 0); an unanswered CONNECT
        // may have created another, which the next one resumes: the resend of m there is a
        // publish of its own, which the subscriber may get again.
        let h = |unanswered_between: bool| {
            let h = H::new()
                .connect_durable("s/1")
                .connected("s/1", false)
                .sub("s/1", "t/a", ExactlyOnce)
                .connect_v5("p/1", false, Some(0))
                .connected("p/1", false)
                .publish("p/1", m(0, 1), "t/a", ExactlyOnce)
                .deliver("s/1", m(0, 1), "t/a", ExactlyOnce)
                .lost("p/1");
            let h = if unanswered_between {
                h.connect_durable("p/2").lost("p/2")
            } else {
                h
            };
            h.connect_durable("p/3")
                .connected("p/3", unanswered_between)
                .publish("p/3", m(0, 1), "t/a", ExactlyOnce)
                .deliver("s/1", m(0, 1), "t/a", ExactlyOnce)
                .build()
        };
        assert_eq!(judge(&h(true)), OK);
        // Sent in two sessions too (the first one ended), so not judged either.
        assert_eq!(judge(&h(false)), OK);
        // Resent in the same session, it must not arrive twice.
        let same = H::new()
            .connect_durable("s/1")
            .connected("s/1", false)
            .sub("s/1", "t/a", ExactlyOnce)
            .connect_durable("p/1")
            .connected("p/1", false)
            .publish("p/1", m(0, 1), "t/a", ExactlyOnce)
            .deliver("s/1", m(0, 1), "t/a", ExactlyOnce)
            .lost("p/1")
            .connect_durable("p/2")
            .connected("p/2", true)
            .publish("p/2", m(0, 1), "t/a", ExactlyOnce)
            .deliver("s/1", m(0, 1), "t/a", ExactlyOnce)
            .build();
        assert_eq!(judge(&same), ["G1 exactly-once"]);
    }
}
