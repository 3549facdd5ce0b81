//! G7 (docs/design.md §1) holds the broker to the protocol in what it receives; this checker holds
//! it to the protocol in what it sends: every packet a client gets must decode as valid MQTT
//! of the connection's protocol, since a strict client treats anything else as a malformed
//! packet and drops the connection ([MQTT-4.13.1-1]).
//!
//! `G7 malformed packet from the broker`: a `MalformedFromBroker` in the history, which the
//! workload's client records when Keel's own decoder refuses the broker's bytes. (`jepsen/`
//! found the first one: a node without quorum sent DISCONNECT 0x88, a reason code only
//! CONNACK may carry.)

use crate::history::{Entry, Event, Violation};

pub fn check(history: &[Entry]) -> Vec<Violation> {
    history
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| match &entry.event {
            Event::MalformedFromBroker { at, error } => Some(Violation {
                guarantee: "G7 malformed packet from the broker",
                detail: format!("{at} at entry {i}: {error}"),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::build::*;
    use crate::history::Event;

    #[test]
    fn a_malformed_packet_from_the_broker_is_a_violation() {
        let history = H::new()
            .event(Event::MalformedFromBroker {
                at: conn("s/1"),
                error: "§2.4 reason code 0x88 is not allowed in DISCONNECT".into(),
            })
            .build();
        assert_eq!(judge(&history), ["G7 malformed packet from the broker"]);
    }

    #[test]
    fn a_history_of_valid_packets_has_none() {
        let history = H::new()
            .event(Event::ConnectionLost {
                at: conn("s/1"),
                why: "DISCONNECT 0x9c".into(),
            })
            .build();
        assert_eq!(judge(&history), OK);
    }
}
