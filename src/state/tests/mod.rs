//! Behaviour of the state machine, driven command by command with `validate()` after each.

pub(crate) mod persist;

use std::num::NonZeroU32;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::codec::{
    MqttString, PacketId, PublishProperties, QoS, RetainHandling, SubscriptionOptions, TopicFilter,
    TopicName,
};

mod queues;
mod routing;
mod wills;

struct Harness {
    state: State,
}

fn id(s: &str) -> ClientId {
    MqttString::new(s).unwrap()
}

fn message(topic: &str, qos: QoS, retain: bool, publisher: Option<&str>) -> Message {
    Message {
        topic: TopicName::new(topic).unwrap(),
        payload: Bytes::from(format!("to {topic}")),
        qos,
        retain,
        properties: PublishProperties::default(),
        publisher: publisher.map(id),
        received_at_ms: 0,
    }
}

fn sub(qos: QoS) -> Subscription {
    Subscription {
        options: SubscriptionOptions::new(qos),
        identifier: None,
    }
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(StateConfig::default())
    }

    fn with_config(config: StateConfig) -> Harness {
        Harness {
            state: State::new(config),
        }
    }

    fn apply(&mut self, command: Command) -> Applied {
        let applied = self.state.apply(command);
        self.state.validate();
        applied
    }

    fn open(&mut self, client: &str, clean_start: bool, expiry_secs: u32) -> Applied {
        self.open_with_will(client, clean_start, expiry_secs, None)
    }

    fn open_with_will(
        &mut self,
        client: &str,
        clean_start: bool,
        expiry_secs: u32,
        will: Option<Will>,
    ) -> Applied {
        self.apply(Command::OpenSession {
            client_id: id(client),
            clean_start,
            expiry_secs,
            will: will.map(Box::new),
            now_ms: 0,
            place: Place::default(),
        })
    }

    fn close(
        &mut self,
        client: &str,
        expiry_secs: u32,
        publish_will: bool,
        now_ms: u64,
    ) -> Applied {
        self.apply(Command::CloseSession {
            client_id: id(client),
            expiry_secs,
            publish_will,
            now_ms,
            place: Place::default(),
        })
    }

    fn subscribe(&mut self, client: &str, filter: &str, subscription: Subscription) -> Applied {
        self.apply(Command::Subscribe {
            client_id: id(client),
            subscriptions: vec![(TopicFilter::new(filter).unwrap(), subscription)],
            now_ms: 0,
        })
    }

    fn publish(&mut self, message: Message) -> Applied {
        self.apply(Command::Publish {
            message: Arc::new(message),
            origin: None,
            skip_shared: Vec::new(),
        })
    }

    fn queue(&self, client: &str) -> Vec<(String, QoS, bool)> {
        self.state
            .session(client)
            .map(|s| {
                s.queue
                    .iter()
                    .map(|q| (q.message.topic.to_string(), q.qos, q.retain))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The leader proposes an expiry from its replica, which may be behind the log: by the time
/// the command applies, the session may have been resumed and closed again with another
/// expiry. It ends only if it is expired at the command's time (found by the simulator: a
/// session of expiry "never" ended by an expiry due under its earlier expiry of 1 s).
#[test]
fn a_stale_expiry_does_not_end_a_session_resumed_since() {
    let mut h = Harness::new();
    h.open("c", false, 1);
    h.close("c", 1, true, 1_000);
    let stale = Command::EndSession {
        client_id: id("c"),
        now_ms: 2_500,
    };
    h.open("c", false, 3_600);
    h.close("c", 3_600, true, 2_000);
    h.apply(stale);
    assert!(
        h.state.session("c").is_some(),
        "kept: it expires at 3_602_000"
    );
    h.apply(Command::EndSession {
        client_id: id("c"),
        now_ms: 3_602_000,
    });
    assert!(h.state.session("c").is_none());
}

/// Likewise a will: published only once its delay has passed at the command's time.
#[test]
fn a_stale_will_is_not_published_early() {
    let mut h = Harness::new();
    let will = |delay_secs| Will {
        delay_secs,
        message: message("will/t", QoS::AtLeastOnce, false, Some("c")),
    };
    h.open("w", false, 3_600);
    h.subscribe("w", "will/t", sub(QoS::AtLeastOnce));
    h.open_with_will("c", false, 3_600, Some(will(1)));
    h.close("c", 3_600, true, 1_000);
    let stale = Command::PublishWill {
        client_id: id("c"),
        now_ms: 2_000,
    };
    h.open_with_will("c", false, 3_600, Some(will(60)));
    h.close("c", 3_600, true, 1_500);
    h.apply(stale);
    assert!(h.queue("w").is_empty(), "its delay now runs to 61_500");
    h.apply(Command::PublishWill {
        client_id: id("c"),
        now_ms: 61_500,
    });
    assert_eq!(h.queue("w").len(), 1);
}

#[test]
fn resumed_session_is_present_and_clean_start_is_not() {
    let mut h = Harness::new();
    assert!(!h.open("c", false, 60).session_present);
    h.close("c", 60, false, 1_000);
    assert!(h.open("c", false, 60).session_present);
    h.close("c", 60, false, 2_000);
    assert!(!h.open("c", true, 60).session_present);
}
