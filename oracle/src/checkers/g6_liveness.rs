//! G6 Liveness (docs/design.md §1): "Once faults stop and a quorum is connected, every client
//! can connect and every queued message is delivered, within a bound the test sets".
//!
//! The harness heals every fault at `LivenessStarted` and ends the run at `Finished`, the
//! bound. `G6 liveness`: every client that sent a CONNECT between the two must have had one
//! accepted (CONNACK) between the two. Clients retry until the end, so a broker that is back
//! gets every client connected; one attempt failing (its connection lost to a node that
//! restarts late in the safety phase) is fine as long as a later one succeeds. A client that
//! stays connected across `LivenessStarted` sends no CONNECT and is not judged here. Without
//! both markers (a run cut short), nothing is judged.
//!
//! No unknown outcome is involved: a CONNECT without a CONNACK is a failure to connect, which
//! is what liveness forbids once the bound has passed.
//!
//! "Every queued message is delivered" is G1's check: G1 judges the history at its end, after
//! the liveness phase, so an acknowledged message still queued for a durable session at
//! `Finished` is a lost one.

use std::collections::BTreeMap;

use super::Facts;
use crate::history::{Entry, Event, Violation};

pub fn check(history: &[Entry], facts: &Facts) -> Vec<Violation> {
    let (Some(start), Some(end)) = (facts.liveness_started, facts.finished) else {
        return Vec::new();
    };
    if end < start {
        return Vec::new();
    }
    // Per client that tried: (first CONNECT, attempts, whether one was accepted).
    let mut tried: BTreeMap<&str, (usize, usize, bool)> = BTreeMap::new();
    for (i, entry) in history.iter().enumerate().take(end).skip(start + 1) {
        match &entry.event {
            Event::ConnectSent { at, .. } => {
                tried.entry(&at.client).or_insert((i, 0, false)).1 += 1;
            }
            Event::Connected { at, .. } => {
                if let Some(t) = tried.get_mut(at.client.as_str()) {
                    t.2 = true;
                }
            }
            _ => {}
        }
    }
    tried
        .into_iter()
        .filter(|(_, (_, _, accepted))| !accepted)
        .map(|(client, (first, attempts, _))| Violation {
            guarantee: "G6 liveness",
            detail: format!(
                "{client} could not connect after the faults stopped (entry {start}): {attempts} \
                 CONNECTs from entry {first} to the end (entry {end}), none accepted"
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::build::*;

    #[test]
    fn every_client_connects_after_the_faults() {
        let h = H::new()
            .connect_clean("c/1")
            .connected("c/1", false)
            .liveness()
            .connect_clean("d/1")
            .lost("d/1")
            .connect_clean("d/2")
            .connected("d/2", false)
            .finished();
        assert_eq!(judge(&h.build()), OK);
    }

    #[test]
    fn a_client_that_never_connects_is_a_violation() {
        let h = H::new()
            .connect_clean("c/1")
            .connected("c/1", false)
            .lost("c/1")
            .liveness()
            .connect_clean("c/2")
            .lost("c/2")
            .connect_clean("c/3")
            .finished();
        assert_eq!(judge(&h.build()), ["G6 liveness"]);
        let detail = &violations(&h.build())[0].detail;
        assert!(detail.contains("c could not connect") && detail.contains("2 CONNECTs"));
        // A CONNACK before the faults stopped does not count.
        let h = H::new()
            .connect_clean("c/1")
            .liveness()
            .connect_clean("c/2")
            .connected("c/1", false)
            .finished();
        assert_eq!(judge(&h.build()), OK, "c/1's CONNACK came after the start");
        let h = H::new()
            .connect_clean("c/1")
            .connected("c/1", false)
            .liveness()
            .connect_clean("c/2")
            .finished();
        assert_eq!(judge(&h.build()), ["G6 liveness"]);
    }

    #[test]
    fn a_run_without_its_end_is_not_judged() {
        let h = H::new().liveness().connect_clean("c/1");
        assert_eq!(judge(&h.build()), OK);
    }
}
