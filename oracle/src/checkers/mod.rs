//! The judges of a run: one module per guarantee of docs/design.md §1, each a pure function of the
//! recorded history, run together by [`check_all`]. They share [`Facts`], what the history
//! says about clients, subscriptions and messages, indexed once.
//!
//! The history's order is the only clock they use: the index of an entry is a total "happened
//! before" among the clients' observations (`at_ms` is for people reading a trace).
//!
//! The rule they all keep: an operation whose acknowledgement never came is *unknown*. A
//! publish without its PUBACK/PUBREC may have taken effect or not, and if it did, it may have
//! taken effect late (its packet may still be on the wire while its publisher moves on). So an
//! unknown publish is never required to arrive, never required to be absent, and is never
//! assumed to have been ordered before anything else.
//!
//! | module | guarantee | violations |
//! |--------|-----------|------------|
//! | [`g1_delivery`] | G1 Delivery | `G1 delivery`, `G1 exactly-once`, `G1 QoS 0 duplicate`, `G1 never sent` |
//! | [`g2_order`] | G2 Order | `G2 order` |
//! | [`g3_sessions`] | G3 Session durability | `G3 session lost` |
//! | [`g4_retained`] | G4 Retained | `G4 retained never written`, `G4 retained stale`, `G4 retained missing` |
//! | [`g5_ownership`] | G5 (one owner per client id) | `G5 two owners` |
//! | [`g6_liveness`] | G6 Liveness | `G6 liveness` |
//! | [`g7_broker_output`] | G7 Bad input, the other way: what the broker sends is valid MQTT | `G7 malformed packet from the broker` |

mod g1_delivery;
mod g2_order;
mod g3_sessions;
mod g4_retained;
mod g5_ownership;
mod g6_liveness;
mod g7_broker_output;
pub mod sessions;

use std::collections::{btree_map, BTreeMap, BTreeSet};

use keel::codec::QoS;

use super::history::{ConnRef, Entry, Event, MsgId, Violation};

/// Every checker's findings on one history, G1 to G6 in order.
pub fn check_all(history: &[Entry]) -> Vec<Violation> {
    let facts = Facts::of(history);
    let mut violations = Vec::new();
    violations.extend(g1_delivery::check(history, &facts));
    violations.extend(g2_order::check(history, &facts));
    violations.extend(g3_sessions::check(history, &facts));
    violations.extend(g4_retained::check(history, &facts));
    violations.extend(g5_ownership::check(history, &facts));
    violations.extend(g6_liveness::check(history, &facts));
    violations.extend(g7_broker_output::check(history));
    violations
}

/// A message as its publisher sent it (from its first `PublishSent`).
#[derive(Debug, Clone)]
pub struct Sent<'h> {
    pub topic: &'h str,
    pub qos: QoS,
    pub retain: bool,
    /// Index of its first PUBLISH.
    pub first_sent: usize,
    /// The connection of its first PUBLISH.
    pub first_sent_on: &'h ConnRef,
    /// Index of its first acknowledgement (PUBACK, or PUBREC for QoS 2), if one came.
    pub acked: Option<usize>,
    /// Its publisher sent it in more than one session (see [`sessions`]): resent after a
    /// reconnect whose session may not be the one it was first sent in. The broker may then
    /// route it as a new message; each copy is a publish of its own ([MQTT-4.3.3]: exactly
    /// once holds within a session).
    pub sent_in_sessions: usize,
}

/// A subscription as its first SUBACK granted it.
#[derive(Debug, Clone)]
pub struct Granted<'h> {
    pub client: &'h str,
    /// As subscribed, `$share/<group>/` included.
    pub filter: &'h str,
    pub qos: QoS,
    /// Index of the SUBACK.
    pub at: usize,
    /// The session (life, see [`sessions`]) it was made in.
    pub life: Option<usize>,
}

/// A message handed to a subscribing application.
#[derive(Debug, Clone)]
pub struct Delivery<'h> {
    pub index: usize,
    pub at: &'h ConnRef,
    pub msg: MsgId,
    pub topic: &'h str,
    /// As received.
    pub qos: QoS,
    pub retain: bool,
}

/// Who a delivery counts for: a client, or the shared subscription group it belongs to.
///
/// The workload gives every subscriber one subscription, so a client that ever subscribed
/// with a `$share/...` filter gets everything through its group: its deliveries count for
/// the group (the whole group must get a message, and at most once for QoS 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Receiver<'h> {
    Client(&'h str),
    /// The full share filter, `$share/<group>/<filter>`.
    Group(&'h str),
}

impl std::fmt::Display for Receiver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Receiver::Client(client) => write!(f, "{client}"),
            Receiver::Group(filter) => write!(f, "shared group {filter}"),
        }
    }
}

/// What the history says, indexed once for every checker.
#[derive(Debug, Default)]
pub struct Facts<'h> {
    /// Every message sent, by id.
    pub sent: BTreeMap<MsgId, Sent<'h>>,
    /// The messages of each topic, in the order of their first PUBLISH.
    pub by_topic: BTreeMap<&'h str, Vec<MsgId>>,
    /// Clients whose sessions outlive their connections: some `ConnectSent` of theirs had
    /// `durable` set.
    pub durable: BTreeSet<&'h str>,
    /// The first SUBACK of each (client, filter) in each of the client's sessions, in
    /// history order.
    pub subscriptions: Vec<Granted<'h>>,
    /// The share filter of each client that ever subscribed (SUBSCRIBE sent) with one.
    pub share_filter: BTreeMap<&'h str, &'h str>,
    /// Every `Delivered`, in history order.
    pub deliveries: Vec<Delivery<'h>>,
    /// Connections that ended without a `ConnectionLost` because their client's machine
    /// crashed (nothing of a dead host is recorded): the client opened a new connection, not
    /// a takeover, while its current one was still open.
    pub died_unrecorded: BTreeSet<&'h ConnRef>,
    /// Index of `LivenessStarted`.
    pub liveness_started: Option<usize>,
    /// Index of `Finished`.
    pub finished: Option<usize>,
    /// The session each accepted connection served (see [`sessions`]).
    pub sessions: sessions::Sessions<'h>,
}

impl<'h> Facts<'h> {
    /// Indexes `history` in one pass, entry by entry (see [`Indexer`]).
    pub fn of(history: &'h [Entry]) -> Facts<'h> {
        let mut indexer = Indexer {
            facts: Facts {
                sessions: sessions::Sessions::of(history),
                ..Facts::default()
            },
            seen_subscriptions: BTreeSet::new(),
            sent_in: BTreeSet::new(),
            hosts: Hosts::default(),
        };
        for (i, entry) in history.iter().enumerate() {
            indexer.entry(i, &entry.event);
        }
        indexer.facts
    }

    /// Who a delivery to `client` counts for.
    pub fn receiver(&self, client: &'h str) -> Receiver<'h> {
        match self.share_filter.get(client) {
            Some(filter) => Receiver::Group(filter),
            None => Receiver::Client(client),
        }
    }

    /// The message, if it was sent before entry `index`.
    pub fn sent_before(&self, msg: MsgId, index: usize) -> Option<&Sent<'h>> {
        self.sent.get(&msg).filter(|s| s.first_sent < index)
    }
}

/// [`Facts::of`]'s state while it walks the history: the facts so far and what it must
/// remember to derive them. One method per kind of entry that needs more than a line, so that
/// no function has to hold the whole walk.
struct Indexer<'h> {
    facts: Facts<'h>,
    /// The (client, filter, session) of each `Subscribed` already indexed: only the first
    /// SUBACK of each counts.
    seen_subscriptions: BTreeSet<(&'h str, &'h str, Option<usize>)>,
    /// The sessions each message was sent in.
    sent_in: BTreeSet<(MsgId, Option<usize>)>,
    hosts: Hosts<'h>,
}

/// Per client: its connections still open, its current (newest) one, and the connection a
/// takeover announced; enough to tell a crashed machine from a takeover.
#[derive(Default)]
struct Hosts<'h> {
    open: BTreeMap<&'h str, BTreeSet<&'h ConnRef>>,
    current: BTreeMap<&'h str, &'h ConnRef>,
    takeover_to: BTreeMap<&'h str, &'h ConnRef>,
}

impl<'h> Indexer<'h> {
    /// Indexes entry `i`, whose event is `event`.
    fn entry(&mut self, i: usize, event: &'h Event) {
        let facts = &mut self.facts;
        match event {
            Event::ConnectSent { at, durable, .. } => self.connect_sent(at, *durable),
            Event::ConnectionLost { at, .. } => {
                if let Some(open) = self.hosts.open.get_mut(at.client.as_str()) {
                    open.remove(at);
                }
            }
            Event::TakeoverStarted { new, .. } => {
                self.hosts.takeover_to.insert(new.client.as_str(), new);
            }
            Event::SubscribeSent { at, filter, .. } => {
                if split_shared(filter).0.is_some() {
                    facts.share_filter.entry(&at.client).or_insert(filter);
                }
            }
            Event::Subscribed {
                at,
                filter,
                granted,
            } => self.subscribed(i, at, filter, *granted),
            Event::PublishSent {
                at,
                msg,
                topic,
                qos,
                retain,
                ..
            } => self.publish_sent(i, at, *msg, topic, (*qos, *retain)),
            Event::PublishAcked { msg, .. } => {
                if let Some(sent) = facts.sent.get_mut(msg) {
                    sent.acked.get_or_insert(i);
                }
            }
            Event::Delivered {
                at,
                msg,
                topic,
                qos,
                retain,
                ..
            } => facts.deliveries.push(Delivery {
                index: i,
                at,
                msg: *msg,
                topic,
                qos: *qos,
                retain: *retain,
            }),
            Event::LivenessStarted => {
                facts.liveness_started.get_or_insert(i);
            }
            Event::Finished => {
                facts.finished.get_or_insert(i);
            }
            Event::Connected { .. }
            | Event::DisconnectSent { .. }
            | Event::PublishCompleted { .. }
            | Event::ReleaseReceived { .. }
            | Event::RetainedReadDone { .. }
            | Event::MalformedFromBroker { .. }
            | Event::Fault { .. } => {}
        }
    }

    /// A CONNECT on `at`: notes a durable client, and a machine that died unrecorded (a new
    /// connection, not announced by a takeover, while the current one is still open).
    fn connect_sent(&mut self, at: &'h ConnRef, durable: bool) {
        let client = at.client.as_str();
        if durable {
            self.facts.durable.insert(client);
        }
        let hosts = &mut self.hosts;
        let announced = hosts.takeover_to.remove(client) == Some(at);
        let open = hosts.open.entry(client).or_default();
        let current_open = hosts.current.get(client).is_some_and(|c| open.contains(c));
        if !announced && current_open {
            // Its machine died: none of its open connections will be recorded as ended.
            self.facts.died_unrecorded.extend(open.iter().copied());
            open.clear();
        }
        open.insert(at);
        hosts.current.insert(client, at);
    }

    /// A SUBACK at entry `i`: the first of its (client, filter, session) is a subscription.
    fn subscribed(&mut self, i: usize, at: &'h ConnRef, filter: &'h str, granted: QoS) {
        let facts = &mut self.facts;
        let life = facts.sessions.life(at).map(|(life, _)| life);
        if self
            .seen_subscriptions
            .insert((at.client.as_str(), filter, life))
        {
            facts.subscriptions.push(Granted {
                client: &at.client,
                filter,
                qos: granted,
                at: i,
                life,
            });
        }
        if split_shared(filter).0.is_some() {
            facts.share_filter.entry(&at.client).or_insert(filter);
        }
    }

    /// A PUBLISH at entry `i`: the first of its message makes it sent; each new session it is
    /// sent in is counted.
    fn publish_sent(
        &mut self,
        i: usize,
        at: &'h ConnRef,
        msg: MsgId,
        topic: &'h str,
        (qos, retain): (QoS, bool),
    ) {
        let facts = &mut self.facts;
        let life = facts.sessions.life(at).map(|(life, _)| life);
        if let btree_map::Entry::Vacant(first) = facts.sent.entry(msg) {
            first.insert(Sent {
                topic,
                qos,
                retain,
                first_sent: i,
                first_sent_on: at,
                acked: None,
                sent_in_sessions: 0,
            });
            facts.by_topic.entry(topic).or_default().push(msg);
        }
        if self.sent_in.insert((msg, life)) {
            if let Some(sent) = facts.sent.get_mut(&msg) {
                sent.sent_in_sessions += 1;
            }
        }
    }
}

/// Splits a share filter `$share/<group>/<filter>` into its group and the filter it matches
/// topics with; any other filter has no group and matches as it is. (`keel::router::
/// filter_matches` knows nothing of `$share`: given the whole share filter it would try to
/// match `$share` as a topic level.)
pub fn split_shared(filter: &str) -> (Option<&str>, &str) {
    match filter
        .strip_prefix("$share/")
        .and_then(|r| r.split_once('/'))
    {
        Some((group, filter)) => (Some(group), filter),
        None => (None, filter),
    }
}

/// Whether `filter` (a share filter included) matches `topic`.
pub fn matches(filter: &str, topic: &str) -> bool {
    keel::router::filter_matches(split_shared(filter).1, topic)
}

/// Short hand for the checkers' tests: a history written as a chain of events, connections
/// named `"client/conn"`.
#[cfg(test)]
pub mod build {
    use keel::codec::QoS;

    use super::{check_all, Violation};
    use crate::history::{ConnRef, Entry, Event, MsgId};

    /// `"s/2"` is connection 2 of client `s`.
    pub fn conn(name: &str) -> ConnRef {
        let (client, n) = name.rsplit_once('/').expect("client/conn");
        ConnRef {
            client: client.into(),
            conn: n.parse().expect("connection number"),
        }
    }

    /// Message `seq` of publisher `publisher`.
    pub fn m(publisher: u32, seq: u64) -> MsgId {
        MsgId { publisher, seq }
    }

    /// No violation, for `assert_eq!(judge(..), OK)`.
    pub const OK: [&str; 0] = [];

    /// The guarantees `check_all` finds broken, in order.
    pub fn judge(history: &[Entry]) -> Vec<&'static str> {
        check_all(history).iter().map(|v| v.guarantee).collect()
    }

    /// The violations themselves, for a look at their details.
    pub fn violations(history: &[Entry]) -> Vec<Violation> {
        check_all(history)
    }

    #[derive(Default, Clone)]
    pub struct H(Vec<Entry>);

    impl H {
        pub fn new() -> H {
            H::default()
        }

        pub fn build(&self) -> Vec<Entry> {
            self.0.clone()
        }

        pub fn event(mut self, event: Event) -> H {
            let at_ms = self.0.len() as u64 * 10;
            self.0.push(Entry { at_ms, event });
            self
        }

        /// MQTT 3.1.1 CONNECT of a durable client: always resuming (clean_start=0).
        pub fn connect_durable(self, at: &str) -> H {
            self.event(Event::ConnectSent {
                at: conn(at),
                clean_start: false,
                durable: true,
                node: "node1".into(),
                v5: false,
                expiry_secs: None,
            })
        }

        /// MQTT 3.1.1 CONNECT of a clean session.
        pub fn connect_clean(self, at: &str) -> H {
            self.event(Event::ConnectSent {
                at: conn(at),
                clean_start: true,
                durable: false,
                node: "node1".into(),
                v5: false,
                expiry_secs: None,
            })
        }

        /// MQTT 5 CONNECT with its Clean Start and Session Expiry Interval (`None`: absent).
        pub fn connect_v5(self, at: &str, clean_start: bool, expiry_secs: Option<u32>) -> H {
            self.event(Event::ConnectSent {
                at: conn(at),
                clean_start,
                durable: expiry_secs.unwrap_or(0) > 0,
                node: "node1".into(),
                v5: true,
                expiry_secs,
            })
        }

        /// A DISCONNECT from the client, with the Session Expiry Interval it carried.
        pub fn disconnect(self, at: &str, expiry_secs: Option<u32>) -> H {
            self.event(Event::DisconnectSent {
                at: conn(at),
                expiry_secs,
            })
        }

        pub fn connected(self, at: &str, session_present: bool) -> H {
            self.event(Event::Connected {
                at: conn(at),
                session_present,
            })
        }

        pub fn lost(self, at: &str) -> H {
            self.event(Event::ConnectionLost {
                at: conn(at),
                why: "test".into(),
            })
        }

        pub fn takeover(self, old: &str, new: &str) -> H {
            self.event(Event::TakeoverStarted {
                old: conn(old),
                new: conn(new),
            })
        }

        pub fn subscribe(self, at: &str, filter: &str, qos: QoS) -> H {
            self.event(Event::SubscribeSent {
                at: conn(at),
                filter: filter.into(),
                qos,
            })
        }

        pub fn subscribed(self, at: &str, filter: &str, granted: QoS) -> H {
            self.event(Event::Subscribed {
                at: conn(at),
                filter: filter.into(),
                granted,
            })
        }

        /// SUBSCRIBE and its SUBACK granting what was asked.
        pub fn sub(self, at: &str, filter: &str, qos: QoS) -> H {
            self.subscribe(at, filter, qos).subscribed(at, filter, qos)
        }

        pub fn publish(self, at: &str, msg: MsgId, topic: &str, qos: QoS) -> H {
            self.event(Event::PublishSent {
                at: conn(at),
                msg,
                topic: topic.into(),
                qos,
                retain: false,
                dup: false,
            })
        }

        pub fn publish_retained(self, at: &str, msg: MsgId, topic: &str) -> H {
            self.event(Event::PublishSent {
                at: conn(at),
                msg,
                topic: topic.into(),
                qos: QoS::AtLeastOnce,
                retain: true,
                dup: false,
            })
        }

        pub fn acked(self, at: &str, msg: MsgId) -> H {
            self.event(Event::PublishAcked { at: conn(at), msg })
        }

        /// A publish and its acknowledgement.
        pub fn publish_acked(self, at: &str, msg: MsgId, topic: &str, qos: QoS) -> H {
            self.publish(at, msg, topic, qos).acked(at, msg)
        }

        pub fn deliver(self, at: &str, msg: MsgId, topic: &str, qos: QoS) -> H {
            self.event(Event::Delivered {
                at: conn(at),
                msg,
                topic: topic.into(),
                qos,
                dup: false,
                retain: false,
                packet_id: None,
            })
        }

        pub fn deliver_retained(self, at: &str, msg: MsgId, topic: &str) -> H {
            self.event(Event::Delivered {
                at: conn(at),
                msg,
                topic: topic.into(),
                qos: QoS::AtLeastOnce,
                dup: false,
                retain: true,
                packet_id: None,
            })
        }

        pub fn read_done(self, at: &str) -> H {
            self.event(Event::RetainedReadDone { at: conn(at) })
        }

        pub fn liveness(self) -> H {
            self.event(Event::LivenessStarted)
        }

        pub fn finished(self) -> H {
            self.event(Event::Finished)
        }
    }
}

#[cfg(test)]
mod tests {
    use keel::codec::QoS::*;

    use super::build::*;
    use super::{matches, split_shared, Facts, Receiver};

    #[test]
    fn share_filters_split_into_group_and_filter() {
        assert_eq!(split_shared("$share/g/t/+"), (Some("g"), "t/+"));
        assert_eq!(split_shared("t/+"), (None, "t/+"));
        assert_eq!(split_shared("$share/g"), (None, "$share/g"));
        assert!(matches("$share/g/t/+", "t/1"));
        assert!(matches("t/#", "t/1"));
        assert!(!matches("$share/g/t/+", "r/1"));
    }

    #[test]
    fn facts_index_the_history() {
        let h = H::new()
            .connect_durable("s/1")
            .connected("s/1", false)
            .sub("s/1", "$share/g/t/+", AtLeastOnce)
            .connect_clean("p/1")
            .publish("p/1", m(0, 1), "t/0", AtLeastOnce)
            .publish("p/1", m(0, 1), "t/0", AtLeastOnce)
            .acked("p/1", m(0, 1))
            .deliver("s/1", m(0, 1), "t/0", AtLeastOnce)
            .build();
        let facts = Facts::of(&h);
        assert!(facts.durable.contains("s"));
        assert!(!facts.durable.contains("p"));
        let sent = &facts.sent[&m(0, 1)];
        assert_eq!((sent.first_sent, sent.acked), (5, Some(7)));
        assert_eq!(facts.subscriptions.len(), 1);
        assert_eq!(facts.receiver("s"), Receiver::Group("$share/g/t/+"));
        assert_eq!(facts.receiver("p"), Receiver::Client("p"));
        assert_eq!(facts.deliveries.len(), 1);
    }

    /// A run's worth of history (~90k entries) that keeps every guarantee, judged in well
    /// under a second even unoptimised: the checkers are near-linear.
    #[test]
    fn a_large_history_is_judged_quickly() {
        let mut h = H::new()
            .connect_durable("s0/1")
            .connected("s0/1", false)
            .sub("s0/1", "t/#", ExactlyOnce)
            .connect_durable("s1/1")
            .connected("s1/1", false)
            .sub("s1/1", "t/1", AtLeastOnce)
            .connect_durable("g0/1")
            .connected("g0/1", false)
            .sub("g0/1", "$share/g/t/+", AtLeastOnce)
            .connect_clean("g1/1")
            .connected("g1/1", false)
            .sub("g1/1", "$share/g/t/+", AtLeastOnce);
        for seq in 1..=9_000 {
            for p in 0..2u32 {
                let topic = format!("t/{p}");
                let at = format!("p{p}/1");
                let msg = m(p, seq);
                let qos = if p == 0 { ExactlyOnce } else { AtLeastOnce };
                h = h
                    .publish_acked(&at, msg, &topic, qos)
                    .deliver("s0/1", msg, &topic, qos);
                if p == 1 {
                    h = h.deliver("s1/1", msg, &topic, AtLeastOnce);
                }
                let member = if seq % 2 == 0 { "g0/1" } else { "g1/1" };
                h = h.deliver(member, msg, &topic, AtLeastOnce);
            }
            if seq % 10 == 0 {
                let w = m(9, seq / 10);
                let at = format!("r/{seq}");
                h = h
                    .publish_retained("w/1", w, "r/0")
                    .acked("w/1", w)
                    .connect_clean(&at)
                    .subscribe(&at, "r/+", AtLeastOnce)
                    .deliver_retained(&at, w, "r/0")
                    .read_done(&at)
                    .lost(&at);
            }
        }
        let h = h.liveness().finished().build();
        assert!(h.len() > 80_000, "{}", h.len());
        // (Wall-clock reads are disallowed in the crate: the test's own run time shows it.)
        assert_eq!(judge(&h), OK);
    }

    #[test]
    fn a_client_crash_is_inferred_from_a_reconnect_over_an_open_connection() {
        let h = H::new()
            .connect_clean("c/1")
            .connected("c/1", false)
            .takeover("c/1", "c/2")
            .connect_clean("c/2")
            .connected("c/2", false)
            // c/2 ends properly, then c/3 is a plain reconnect: c/1 is still watched.
            .lost("c/2")
            .connect_clean("c/3")
            .connected("c/3", false)
            .build();
        assert!(Facts::of(&h).died_unrecorded.is_empty());
        // c/3 still open when c/4 starts: the machine died, with c/1 and c/3.
        let h = H::new()
            .connect_clean("c/1")
            .connected("c/1", false)
            .takeover("c/1", "c/2")
            .connect_clean("c/2")
            .connected("c/2", false)
            .connect_clean("c/3")
            .build();
        let facts = Facts::of(&h);
        let died: Vec<String> = facts
            .died_unrecorded
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(died, ["c/1", "c/2"]);
    }
}
