//! The allow-list: named rules for differences that are not Keel bugs, because the spec
//! allows both behaviours or because Mosquitto 2.0.11 deviates. Each rule says which clause
//! makes the difference acceptable and checks the difference narrowly, so that a rule never
//! hides more than it names. Every other difference is reported.

use std::collections::BTreeSet;
use std::fmt;

use super::compare::Difference;
use super::link::ConnId;
use super::observation::{Delivery, Message, Observation, Outcome};
use super::scenario::{Scenario, Step, Subscription, Version};

/// A kind of difference that is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    OverlappingCopies,
    MergedCopyRetainFlag,
    StaleOptionsOnReplace,
    RedeliveredDuplicate,
    NoMatchingSubscribers,
    TakeoverWithoutDisconnect,
}

impl Rule {
    pub const ALL: &'static [Rule] = &[
        Rule::OverlappingCopies,
        Rule::MergedCopyRetainFlag,
        Rule::StaleOptionsOnReplace,
        Rule::RedeliveredDuplicate,
        Rule::NoMatchingSubscribers,
        Rule::TakeoverWithoutDisconnect,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::OverlappingCopies => "overlapping-copies",
            Rule::MergedCopyRetainFlag => "merged-copy-retain-flag",
            Rule::StaleOptionsOnReplace => "mosquitto-keeps-options-on-resubscribe",
            Rule::RedeliveredDuplicate => "redelivered-duplicate",
            Rule::NoMatchingSubscribers => "no-matching-subscribers-0x10",
            Rule::TakeoverWithoutDisconnect => "mosquitto-takeover-without-0x8E",
        }
    }

    /// The clause that allows the difference, and what the rule accepts.
    pub fn clause(self) -> &'static str {
        match self {
            Rule::OverlappingCopies => {
                "[MQTT-3.3.5-1] (3.1.1), [MQTT-3.3.4-2] (5.0): a message matching several \
                 subscriptions of one client must reach it at the highest of their QoS, and \
                 the server MAY send further copies, one per other matching subscription at \
                 that subscription's QoS. Keel sends one copy, Mosquitto one per subscription: \
                 accepted when each side has a copy, the highest QoS agrees and the client \
                 had that many matching filters"
            }
            Rule::MergedCopyRetainFlag => {
                "§3.8.3.1 Retain As Published is an option of one subscription, and \
                 [MQTT-3.3.4-2] lets one copy stand for several overlapping subscriptions \
                 without saying which RETAIN flag it carries when their options differ. Keel's \
                 single copy keeps the published RETAIN when any matching subscription has \
                 Retain As Published; accepted when the other broker's copies show both that \
                 QoS and that flag"
            }
            Rule::StaleOptionsOnReplace => {
                "[MQTT-3.8.4-3]: a SUBSCRIBE to a filter the session already has MUST replace \
                 that subscription, options included (and [MQTT-3.8.4-5]: two filters in one \
                 SUBSCRIBE count as two SUBSCRIBEs). Mosquitto 2.0.11 updates only the QoS and \
                 keeps the old No Local and Retain As Published. Accepted for messages on \
                 topics matching a filter the client subscribed to with differing options"
            }
            Rule::RedeliveredDuplicate => {
                "[MQTT-4.4.0-1]: a resumed session resends the QoS 1/2 messages not yet \
                 acknowledged, with DUP set; a copy whose acknowledgement was in flight is \
                 then received twice (at least once, §4.3.2). Accepted for extra copies with \
                 DUP of a message the same broker sent the client before"
            }
            Rule::NoMatchingSubscribers => {
                "MQTT 5 §3.4.2.1 / §3.5.2.1: a server that knows there are no matching \
                 subscribers MAY answer PUBACK/PUBREC 0x10 instead of 0x00. Accepted when the \
                 broker that said 0x10 delivered the message to nobody"
            }
            Rule::TakeoverWithoutDisconnect => {
                "[MQTT-3.1.4-3]: on a takeover the server MUST close the old connection; the \
                 DISCONNECT 0x8E (Session taken over) it describes sending to an MQTT 5 client \
                 first is not a MUST of its own. Keel sends it, Mosquitto 2.0.11 closes \
                 without it. Accepted when nothing else about that connection's end differs"
            }
        }
    }

    /// Whether the rule explains `difference`.
    fn explains(self, difference: &Difference, run: &Run) -> bool {
        match self {
            Rule::OverlappingCopies => overlapping_copies(difference, run.scenario),
            Rule::MergedCopyRetainFlag => merged_copy_retain_flag(difference, run.scenario),
            Rule::StaleOptionsOnReplace => stale_options_on_replace(difference, run.scenario),
            Rule::RedeliveredDuplicate => redelivered_duplicate(difference, run),
            Rule::NoMatchingSubscribers => no_matching_subscribers(difference, run),
            Rule::TakeoverWithoutDisconnect => {
                takeover_without_disconnect(difference, run.scenario)
            }
        }
    }
}

/// A difference and the rule that allows it, if any.
pub struct Verdict {
    pub difference: Difference,
    pub rule: Option<Rule>,
}

/// A scenario and what each broker did in it: what the rules look at.
pub struct Run<'a> {
    pub scenario: &'a Scenario,
    pub keel: &'a Observation,
    pub mosquitto: &'a Observation,
}

/// Judges each difference of `run`.
pub fn judge(run: &Run, found: Vec<Difference>) -> Vec<Verdict> {
    found
        .into_iter()
        .map(|difference| {
            let rule = Rule::ALL
                .iter()
                .copied()
                .find(|rule| rule.explains(&difference, run));
            Verdict { difference, rule }
        })
        .collect()
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            Some(rule) => write!(f, "allowed by {}: {}", rule.name(), self.difference),
            None => write!(f, "NOT ALLOWED: {}", self.difference),
        }
    }
}

// --- subscriptions ---------------------------------------------------------------------------

/// The copies of an overlapping delivery, split into the broker that sent fewer and the one
/// that sent more, when the shape is one the spec allows: both delivered, at the same highest
/// QoS, in no more copies than the client had matching filters (at least two).
fn overlapping<'a>(
    difference: &'a Difference,
    scenario: &Scenario,
) -> Option<(&'a [Delivery], &'a [Delivery], Vec<Subscription>)> {
    let Difference::Deliveries {
        conn,
        step,
        topic,
        keel,
        mosquitto,
        ..
    } = difference
    else {
        return None;
    };
    let highest = |copies: &[Delivery]| copies.iter().map(|d| d.qos).max();
    let matching = subscriptions_matching(scenario, *conn, *step, topic);
    let mut filters: Vec<&str> = matching.iter().map(|s| s.filter).collect();
    filters.sort();
    filters.dedup();
    let (fewer, more) = if keel.len() <= mosquitto.len() {
        (keel, mosquitto)
    } else {
        (mosquitto, keel)
    };
    let allowed = !fewer.is_empty()
        && highest(keel) == highest(mosquitto)
        && filters.len() >= 2
        && more.len() <= filters.len();
    allowed.then_some((fewer.as_slice(), more.as_slice(), matching))
}

/// An allowed overlap where every kind of copy (QoS, RETAIN) of the broker that sent fewer
/// is among those of the other.
fn overlapping_copies(difference: &Difference, scenario: &Scenario) -> bool {
    let kinds = |copies: &[Delivery]| -> BTreeSet<(u8, bool)> {
        copies.iter().map(|d| (d.qos, d.retain)).collect()
    };
    overlapping(difference, scenario)
        .is_some_and(|(fewer, more, _)| kinds(fewer).is_subset(&kinds(more)))
}

/// An allowed overlap where the broker that sent fewer copies gave one of them the RETAIN
/// flag that another matching subscription (with Retain As Published) would have: each of its
/// copies has a QoS and a RETAIN flag that the other broker's copies have.
fn merged_copy_retain_flag(difference: &Difference, scenario: &Scenario) -> bool {
    overlapping(difference, scenario).is_some_and(|(fewer, more, matching)| {
        matching.iter().any(|s| s.retain_as_published)
            && fewer.iter().all(|copy| {
                more.iter().any(|c| c.qos == copy.qos)
                    && more.iter().any(|c| c.retain == copy.retain)
            })
    })
}

/// The client subscribed to one of the filters matching the message more than once, with
/// different No Local or Retain As Published options: the difference may be Mosquitto's old
/// options still at work.
fn stale_options_on_replace(difference: &Difference, scenario: &Scenario) -> bool {
    let Difference::Deliveries {
        conn, step, topic, ..
    } = difference
    else {
        return false;
    };
    let matching = subscriptions_matching(scenario, *conn, *step, topic);
    matching.iter().any(|a| {
        matching.iter().any(|b| {
            a.filter == b.filter
                && (a.no_local != b.no_local || a.retain_as_published != b.retain_as_published)
        })
    })
}

/// The subscriptions to filters matching `topic` that `conn`'s client asked for up to `step`
/// (in any session: an over-estimate that only widens what the rules consider).
fn subscriptions_matching(
    scenario: &Scenario,
    conn: ConnId,
    step: usize,
    topic: &str,
) -> Vec<Subscription> {
    scenario.steps[..=step]
        .iter()
        .filter_map(|s| match s {
            Step::Subscribe {
                client,
                subscriptions,
            } if *client == conn.client => Some(subscriptions),
            _ => None,
        })
        .flatten()
        .filter(|s| topic_matches(s.filter, topic))
        .copied()
        .collect()
}

/// MQTT topic matching for the scenario's relative filters and topics (no `$` topics).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        if level == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(t) if level == "+" || level == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

// --- redelivery ------------------------------------------------------------------------------

/// One broker sent extra copies with DUP set, of a message it had already sent the client on
/// an earlier connection or step: without them both sent the same copies.
fn redelivered_duplicate(difference: &Difference, run: &Run) -> bool {
    let Difference::Deliveries {
        conn,
        step,
        topic,
        payload,
        keel,
        mosquitto,
    } = difference
    else {
        return false;
    };
    let (fewer, more, observation) = if keel.len() < mosquitto.len() {
        (keel, mosquitto, run.mosquitto)
    } else {
        (mosquitto, keel, run.keel)
    };
    let mut expected: Vec<Message> = fewer.iter().map(Delivery::message).collect();
    expected.sort();
    let extra = more.len() - fewer.len();
    let duplicates = more.iter().filter(|d| d.dup).count();
    let sent_before = observation
        .connections
        .iter()
        .filter(|(other, _)| other.client == conn.client)
        .flat_map(|(_, record)| &record.deliveries)
        .any(|d| d.step < *step && d.topic == *topic && d.payload == *payload);
    extra > 0 && duplicates >= extra && sent_before && without_dups(more, extra) == expected
}

/// The messages of `copies` less `count` of those with DUP set, sorted.
fn without_dups(copies: &[Delivery], count: usize) -> Vec<Message> {
    let mut left = count;
    let mut kept: Vec<Message> = copies
        .iter()
        .filter(|copy| {
            let drop = copy.dup && left > 0;
            left -= usize::from(drop);
            !drop
        })
        .map(Delivery::message)
        .collect();
    kept.sort();
    kept
}

// --- PUBACK / PUBREC 0x10 --------------------------------------------------------------------

/// One broker said 0x10 where the other said 0x00, nothing else differs in the answer, and
/// the broker that said 0x10 delivered the message to nobody (a retained copy sent on a later
/// SUBSCRIBE does not count: it had no subscriber when published).
fn no_matching_subscribers(difference: &Difference, run: &Run) -> bool {
    let Difference::Outcome {
        step,
        keel: Outcome::Published(k),
        mosquitto: Outcome::Published(m),
    } = difference
    else {
        return false;
    };
    let Some(Step::Publish { topic, payload, .. }) = run.scenario.steps.get(*step) else {
        return false;
    };
    let only_0x10_vs_0x00 = k.len() == m.len()
        && k.iter()
            .zip(m)
            .all(|(a, b)| a == b || matches!((a, b), (0x00, 0x10) | (0x10, 0x00)));
    let said_0x10 = |codes: &[u8]| codes.contains(&0x10);
    // Payloads are unique but for the empty ones: a later empty publish to the same topic is
    // another message.
    let republished = run.scenario.steps[step + 1..]
        .iter()
        .position(|s| matches!(s, Step::Publish { topic: t, payload: p, .. } if t == topic && p == payload))
        .map_or(usize::MAX, |offset| step + 1 + offset);
    let delivered = |observation: &Observation| {
        observation.connections.values().any(|record| {
            record.deliveries.iter().any(|d| {
                d.topic == *topic
                    && d.payload == *payload
                    && (*step..republished).contains(&d.step)
                    && !matches!(run.scenario.steps[d.step], Step::Subscribe { .. })
            })
        })
    };
    only_0x10_vs_0x00
        && !(said_0x10(k) && delivered(run.keel))
        && !(said_0x10(m) && delivered(run.mosquitto))
}

// --- takeover --------------------------------------------------------------------------------

/// Keel sent DISCONNECT 0x8E to an MQTT 5 connection in the step its client id connected
/// again, Mosquitto closed it in that step without a DISCONNECT, and nothing else differs.
fn takeover_without_disconnect(difference: &Difference, scenario: &Scenario) -> bool {
    let Difference::Ending {
        conn,
        keel: Some(keel),
        mosquitto: Some(mosquitto),
    } = difference
    else {
        return false;
    };
    let Some((step, 0x8E)) = keel.server_disconnect else {
        return false;
    };
    let reconnect = matches!(
        scenario.steps.get(step),
        Some(Step::Connect { client, .. }) if *client == conn.client
    );
    reconnect
        && keel.version == Version::V5
        && mosquitto.server_disconnect.is_none()
        && keel.closed_at == Some(step)
        && mosquitto.closed_at == Some(step)
        && keel.client_end == mosquitto.client_end
}
