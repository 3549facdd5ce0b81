//! G4 Retained (docs/design.md §1): "The retained message of a topic is the one set by the last
//! acknowledged retained publish in the log's order, and every node serves that same message."
//!
//! A *write* of topic T is a PUBLISH with RETAIN = 1 to T (one writer per topic, sending one
//! message at a time). A *read* is a SUBSCRIBE (not shared: shared subscriptions get no
//! retained messages) sent at entry i on connection C whose filter matches T; its value R is
//! the first delivery with RETAIN = 1 of topic T on C after i, or nothing. The clients cannot
//! see the commit order, only what happened before what in the history, and a write whose
//! acknowledgement never came is unknown: it may never commit, or commit at any later time
//! (even after writes sent after it). So a read is judged against what certainly happened:
//!
//! - `G4 retained never written`: R was sent, but not as a retained write of T. (R never sent
//!   at all is G1's `G1 never sent`.)
//! - `G4 retained stale`: R was acknowledged at entry a, and some write W of T was first sent
//!   after a and acknowledged before i. R committed before its acknowledgement, W after its
//!   first send and before its acknowledgement: W certainly committed after R and before the
//!   read, so R was not the last. An unacknowledged R is never stale: it may have committed
//!   late, after W, and be the right answer.
//! - `G4 retained missing`: the read got no retained copy of T although its connection waited
//!   out the read window (`RetainedReadDone` after i: everything the broker sends after the
//!   SUBACK has arrived), and some write of T was acknowledged before i. Writes never clear a
//!   topic, so a committed write leaves a retained message for every later read.
//!
//! The reads of the liveness phase, every fault healed, are reads like the others; there is no
//! separate final check.

use std::collections::BTreeMap;

use super::{matches, split_shared, Facts};
use crate::history::{ConnRef, Entry, Event, MsgId, Violation};

/// The acknowledged writes of one topic, by acknowledgement, with the latest-sent write among
/// each prefix.
struct Acknowledged {
    /// (acknowledged at, first sent at, message), by acknowledgement.
    writes: Vec<(usize, usize, MsgId)>,
    /// `latest[k]`: the write with the latest first PUBLISH among `writes[..=k]`.
    latest: Vec<(usize, MsgId)>,
}

impl Acknowledged {
    /// Of the writes acknowledged before entry `i`, the one first sent last.
    fn latest_before(&self, i: usize) -> Option<(usize, MsgId)> {
        let n = self.writes.partition_point(|w| w.0 < i);
        n.checked_sub(1).map(|k| self.latest[k])
    }
}

pub fn check(history: &[Entry], facts: &Facts) -> Vec<Violation> {
    let acknowledged = acknowledged_writes(facts);
    let written = written_topics(facts);
    let seen = Seen::of(history, facts);
    let mut violations = Vec::new();
    for (i, entry) in history.iter().enumerate() {
        let Event::SubscribeSent { at, filter, .. } = &entry.event else {
            continue;
        };
        if split_shared(filter).0.is_some() {
            continue;
        }
        let reads = values_read(filter, &written, seen.retained_on(at), i);
        let waited_until = seen.waited_until(at, i);
        for (topic, value) in reads {
            let read = Read {
                at,
                i,
                topic,
                value,
            };
            let last_acked = acknowledged.get(topic).and_then(|a| a.latest_before(i));
            violations.extend(judge(facts, &read, last_acked, waited_until));
        }
    }
    violations
}

/// The acknowledged retained writes of each topic that has any, indexed for
/// [`Acknowledged::latest_before`], which every read asks.
fn acknowledged_writes<'h>(facts: &Facts<'h>) -> BTreeMap<&'h str, Acknowledged> {
    let mut acknowledged = BTreeMap::new();
    for (topic, msgs) in &facts.by_topic {
        let mut writes: Vec<_> = msgs
            .iter()
            .filter_map(|m| {
                let s = &facts.sent[m];
                Some((s.acked?, s.first_sent, *m)).filter(|_| s.retain)
            })
            .collect();
        if writes.is_empty() {
            continue;
        }
        writes.sort_unstable();
        let mut latest = Vec::with_capacity(writes.len());
        let mut best = (0, writes[0].2);
        for &(_, sent, msg) in &writes {
            if sent >= best.0 {
                best = (sent, msg);
            }
            latest.push(best);
        }
        acknowledged.insert(*topic, Acknowledged { writes, latest });
    }
    acknowledged
}

/// The topics with some retained write, acknowledged or not: each read of a matching filter
/// reads them, even if it gets nothing.
fn written_topics<'h>(facts: &Facts<'h>) -> Vec<&'h str> {
    facts
        .by_topic
        .iter()
        .filter(|(_, msgs)| msgs.iter().any(|m| facts.sent[m].retain))
        .map(|(topic, _)| *topic)
        .collect()
}

/// What each connection saw: its retained deliveries and the ends of its read windows,
/// gathered once so that each read looks up only its own connection's.
struct Seen<'h> {
    /// Per connection: its retained deliveries (entry, topic, message), in history order.
    retained: BTreeMap<&'h ConnRef, Vec<(usize, &'h str, MsgId)>>,
    /// Per connection: the entries of its `RetainedReadDone`, in history order.
    done: BTreeMap<&'h ConnRef, Vec<usize>>,
}

impl<'h> Seen<'h> {
    fn of(history: &'h [Entry], facts: &Facts<'h>) -> Seen<'h> {
        let mut retained: BTreeMap<&ConnRef, Vec<(usize, &str, MsgId)>> = BTreeMap::new();
        let mut done: BTreeMap<&ConnRef, Vec<usize>> = BTreeMap::new();
        for d in facts.deliveries.iter().filter(|d| d.retain) {
            retained
                .entry(d.at)
                .or_default()
                .push((d.index, d.topic, d.msg));
        }
        for (i, entry) in history.iter().enumerate() {
            if let Event::RetainedReadDone { at } = &entry.event {
                done.entry(at).or_default().push(i);
            }
        }
        Seen { retained, done }
    }

    /// The retained deliveries on `at`.
    fn retained_on(&self, at: &ConnRef) -> &[(usize, &'h str, MsgId)] {
        self.retained.get(at).map_or(&[][..], Vec::as_slice)
    }

    /// The entry at which `at`'s last read window ended, if that is after entry `i`: then a
    /// read at `i` on `at` has waited out its window.
    fn waited_until(&self, at: &ConnRef, i: usize) -> Option<usize> {
        self.done
            .get(at)
            .and_then(|d| d.last().copied())
            .filter(|&k| k > i)
    }
}

/// The value a SUBSCRIBE at entry `i` with `filter` read of each written topic it matches: the
/// first retained copy of the topic on its connection after the SUBSCRIBE, or nothing. A copy
/// of a topic never written is a read too (of a message G1 or G4 will judge).
fn values_read<'h>(
    filter: &str,
    written: &[&'h str],
    copies: &[(usize, &'h str, MsgId)],
    i: usize,
) -> BTreeMap<&'h str, Option<(usize, MsgId)>> {
    let mut reads: BTreeMap<&str, Option<(usize, MsgId)>> = written
        .iter()
        .filter(|t| matches(filter, t))
        .map(|t| (*t, None))
        .collect();
    for &(j, topic, msg) in &copies[copies.partition_point(|c| c.0 < i)..] {
        if matches(filter, topic) {
            reads.entry(topic).or_default().get_or_insert((j, msg));
        }
    }
    reads
}

/// One read of one topic: a SUBSCRIBE at entry `i` on `at`, and what it got of `topic`.
struct Read<'a> {
    at: &'a ConnRef,
    i: usize,
    topic: &'a str,
    /// The retained copy read (entry, message), if any.
    value: Option<(usize, MsgId)>,
}

/// The violation of one read, if any. `last_acked` is the write of the topic first sent last
/// among those acknowledged before the read (first sent at, message); `waited_until` is where
/// the read's window ended, if it ended after the read.
fn judge(
    facts: &Facts,
    read: &Read,
    last_acked: Option<(usize, MsgId)>,
    waited_until: Option<usize>,
) -> Option<Violation> {
    let &Read {
        at,
        i,
        topic,
        value,
    } = read;
    let Some((j, r)) = value else {
        let (done, (_, w)) = waited_until.zip(last_acked)?;
        let w_acked = facts.sent[&w].acked.unwrap_or_default();
        return Some(Violation {
            guarantee: "G4 retained missing",
            detail: format!(
                "{at} read no retained message of {topic} (SUBSCRIBE at entry {i}, read window \
                 over by entry {done}), though {w} was written there and acknowledged at entry \
                 {w_acked}"
            ),
        });
    };
    // Never sent before the read: G1 reports it.
    let sent = facts.sent_before(r, j)?;
    if !sent.retain || sent.topic != topic {
        return Some(Violation {
            guarantee: "G4 retained never written",
            detail: format!(
                "{at} read {r} as the retained message of {topic} (entry {j}), but {r} was a {} \
                 publish to {}",
                if sent.retain {
                    "retained"
                } else {
                    "non-retained"
                },
                sent.topic
            ),
        });
    }
    // Unacknowledged, it is unknown: it may have committed after anything.
    let r_acked = sent.acked?;
    let (w_sent, w) = last_acked.filter(|&(w_sent, _)| w_sent > r_acked)?;
    Some(Violation {
        guarantee: "G4 retained stale",
        detail: format!(
            "{at} read {r} as the retained message of {topic} (SUBSCRIBE at entry {i}, read at \
             {j}), but {r} was acknowledged at entry {r_acked} and {w}, first sent after it \
             (entry {w_sent}), was acknowledged at entry {} before the read",
            facts.sent[&w].acked.unwrap_or_default()
        ),
    })
}

#[cfg(test)]
mod tests {
    use keel::codec::QoS::*;

    use super::super::build::*;

    /// Writes 1 and 2 of `r/0` by writer 5, acknowledged unless in `unknown`.
    fn writes(unknown: &[u64]) -> H {
        let mut h = H::new().connect_clean("w/1").connected("w/1", false);
        for seq in 1..=2 {
            h = h.publish_retained("w/1", m(5, seq), "r/0");
            if !unknown.contains(&seq) {
                h = h.acked("w/1", m(5, seq));
            }
        }
        h
    }

    /// A read on a new connection `r/<n>`: the value read, and whether its window ran out.
    fn read(h: H, n: u32, value: Option<u64>, waited: bool) -> H {
        let at = format!("r/{n}");
        let mut h = h
            .connect_clean(&at)
            .connected(&at, false)
            .subscribe(&at, "r/+", AtLeastOnce);
        if let Some(seq) = value {
            h = h.deliver_retained(&at, m(5, seq), "r/0");
        }
        h = h.subscribed(&at, "r/+", AtLeastOnce);
        if waited {
            h = h.read_done(&at);
        }
        h.lost(&at)
    }

    #[test]
    fn the_last_acknowledged_write_is_read() {
        assert_eq!(judge(&read(writes(&[]), 1, Some(2), true).build()), OK);
        // Before any write, nothing to read.
        assert_eq!(judge(&read(H::new(), 1, None, true).build()), OK);
    }

    #[test]
    fn a_stale_read_is_a_violation() {
        let h = read(writes(&[]), 1, Some(1), true).build();
        assert_eq!(judge(&h), ["G4 retained stale"]);
        let detail = &violations(&h)[0].detail;
        assert!(
            detail.contains("read p5#1") && detail.contains("p5#2"),
            "{detail}"
        );
    }

    #[test]
    fn a_write_acknowledged_after_the_read_began_may_be_missed() {
        // Write 2 sent before the SUBSCRIBE, acknowledged after it: concurrent with the read.
        let h = writes(&[2])
            .connect_clean("r/1")
            .subscribe("r/1", "r/+", AtLeastOnce)
            .acked("w/1", m(5, 2))
            .deliver_retained("r/1", m(5, 1), "r/0")
            .read_done("r/1");
        assert_eq!(judge(&h.build()), OK);
    }

    #[test]
    fn an_unacknowledged_write_may_win_late() {
        // Write 1 unknown: it may have committed after write 2.
        assert_eq!(judge(&read(writes(&[1]), 1, Some(1), true).build()), OK);
        // Write 2 unknown: write 1 is still a fine answer, and so is write 2.
        assert_eq!(judge(&read(writes(&[2]), 1, Some(1), true).build()), OK);
        assert_eq!(judge(&read(writes(&[2]), 1, Some(2), true).build()), OK);
    }

    #[test]
    fn a_missing_read_is_a_violation_once_the_window_ran_out() {
        let h = read(writes(&[]), 1, None, true).build();
        assert_eq!(judge(&h), ["G4 retained missing"]);
        // A read cut short proves nothing.
        assert_eq!(judge(&read(writes(&[]), 1, None, false).build()), OK);
        // Nothing acknowledged: nothing owed.
        assert_eq!(judge(&read(writes(&[1, 2]), 1, None, true).build()), OK);
    }

    #[test]
    fn the_value_must_have_been_written_there() {
        // Message 0:1 is a live publish to r/0, not a retained write.
        let h = H::new()
            .publish_acked("p/1", m(0, 1), "r/0", AtLeastOnce)
            .connect_clean("r/1")
            .subscribe("r/1", "r/+", AtLeastOnce)
            .deliver_retained("r/1", m(0, 1), "r/0")
            .read_done("r/1");
        assert_eq!(judge(&h.build()), ["G4 retained never written"]);
        // A retained write of another topic, served as this one.
        let h = writes(&[])
            .connect_clean("r/1")
            .subscribe("r/1", "r/+", AtLeastOnce)
            .deliver_retained("r/1", m(5, 2), "r/9");
        assert_eq!(judge(&h.build()), ["G4 retained never written"]);
    }

    #[test]
    fn every_read_is_judged_alone() {
        // A good read, then a stale one on a later connection.
        let h = read(read(writes(&[]), 1, Some(2), true), 2, Some(1), true);
        assert_eq!(judge(&h.build()), ["G4 retained stale"]);
        // A shared subscription reads nothing.
        let h = writes(&[])
            .connect_clean("s/1")
            .subscribe("s/1", "$share/g/r/+", AtLeastOnce)
            .read_done("s/1");
        assert_eq!(judge(&h.build()), OK);
    }
}
