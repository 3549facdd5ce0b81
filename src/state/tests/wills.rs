//! Wills and session expiry: when a will is published, delayed or discarded, when a session ends.

use super::*;

fn will(topic: &str, delay_secs: u32) -> Option<Will> {
    Some(Will {
        message: message(topic, QoS::AtLeastOnce, false, Some("dying")),
        delay_secs,
    })
}

fn watcher(h: &mut Harness) {
    h.open("watcher", true, 0);
    h.subscribe("watcher", "will/#", sub(QoS::AtLeastOnce));
}

#[test]
fn will_without_delay_is_published_when_the_connection_drops() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("dying", false, 60, will("will/now", 0));
    h.close("dying", 60, true, 5);
    assert_eq!(h.queue("watcher").len(), 1);
}

#[test]
fn normal_disconnect_discards_the_will() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("dying", false, 60, will("will/x", 0));
    h.close("dying", 60, false, 5);
    assert!(h.queue("watcher").is_empty());
    // Not even when the session later expires.
    for command in h.state.due(u64::MAX) {
        h.apply(command);
    }
    assert!(h.state.session("dying").is_none());
    assert!(h.queue("watcher").is_empty());
}

#[test]
fn delayed_will_is_published_when_due_unless_the_client_returns() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("dying", false, 600, will("will/late", 10));
    h.close("dying", 600, true, 1_000);
    assert_eq!(h.state.next_deadline_ms(), Some(11_000));
    assert!(h.state.due(10_999).is_empty());
    for command in h.state.due(11_000) {
        h.apply(command);
    }
    assert_eq!(h.queue("watcher").len(), 1);

    // A reconnect within the delay cancels the will ([MQTT-3.1.3-9]).
    h.open_with_will("dying", false, 600, will("will/late", 10));
    h.close("dying", 600, true, 20_000);
    h.open("dying", false, 600);
    assert!(h.state.due(u64::MAX - 1).is_empty());
    assert_eq!(h.queue("watcher").len(), 1);
}

#[test]
fn session_expiry_ends_the_session_and_publishes_a_pending_will_first() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("dying", false, 5, will("will/at-end", 3600));
    h.subscribe("dying", "x", sub(QoS::AtLeastOnce));
    h.close("dying", 5, true, 0);
    // The will is due at the earlier of its delay and the session's end.
    assert_eq!(h.state.next_deadline_ms(), Some(5_000));
    let due = h.state.due(5_000);
    assert_eq!(due.len(), 1);
    let applied = h.apply(due.into_iter().next().unwrap());
    assert_eq!(applied.ended, vec![id("dying")]);
    assert!(h.state.session("dying").is_none());
    assert_eq!(
        h.state.subscription_count(),
        1,
        "only the watcher's subscription is left"
    );
    assert_eq!(h.queue("watcher").len(), 1);
}

#[test]
fn second_close_discarding_the_will_also_cancels_its_timer() {
    let mut h = Harness::new();
    h.open_with_will("c", false, 60, will("will/c", 1));
    h.close("c", 60, true, 1_000);
    assert_eq!(h.state.session("c").unwrap().will_due_ms, Some(2_000));
    // Found by the snapshot property test: `validate()` failed with "will due without a
    // pending will".
    h.close("c", 60, false, 1_500);
    let session = h.state.session("c").unwrap();
    assert_eq!((session.will.is_some(), session.will_due_ms), (false, None));
    assert_eq!(h.state.next_deadline_ms(), Some(61_500));
}

#[test]
fn expiry_zero_ends_the_session_at_close() {
    let mut h = Harness::new();
    h.open("c", true, 0);
    h.subscribe("c", "t", sub(QoS::AtLeastOnce));
    assert_eq!(h.close("c", 0, true, 1).ended, vec![id("c")]);
    assert!(h.state.session("c").is_none());
    assert_eq!(h.state.subscription_count(), 0);
}

#[test]
fn takeover_keeps_the_session_and_publishes_an_undelayed_will() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("c", false, 60, will("will/takeover", 0));
    h.subscribe("c", "t", sub(QoS::AtLeastOnce));
    let applied = h.open("c", false, 60);
    assert!(applied.taken_over);
    assert!(applied.session_present);
    assert_eq!(h.queue("watcher").len(), 1);
    assert_eq!(h.state.session("c").unwrap().subscriptions.len(), 1);

    // With Clean Start the old session ends on takeover.
    let applied = h.open("c", true, 60);
    assert!(applied.taken_over && !applied.session_present);
    assert!(h.state.session("c").unwrap().subscriptions.is_empty());
}

/// [MQTT-3.1.3-9] at takeover: a delayed will is cancelled when the session goes on with
/// the new connection; it goes out at once when the takeover ends the session (a clean
/// start, or an old connection with expiry 0).
#[test]
fn a_takeover_cancels_a_delayed_will_unless_it_ends_the_session() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("c", false, 60, will("will/delayed", 10));
    let applied = h.open("c", false, 60);
    assert!(applied.taken_over && applied.session_present);
    assert!(h.state.session("c").unwrap().will.is_none());
    assert!(h.state.due(u64::MAX - 1).is_empty());
    assert!(h.queue("watcher").is_empty());

    for (clean_start, old_expiry_secs) in [(true, 60), (false, 0)] {
        let mut h = Harness::new();
        watcher(&mut h);
        h.open_with_will("c", false, old_expiry_secs, will("will/delayed", 10));
        h.open("c", clean_start, 60);
        assert_eq!(h.queue("watcher").len(), 1, "clean start {clean_start}");
    }
}

/// [MQTT-3.1.2-10]: a will is published once, then gone: not again when its session expires.
#[test]
fn a_will_is_published_only_once() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("dying", false, 5, will("will/once", 0));
    h.close("dying", 5, true, 0);
    assert_eq!(h.queue("watcher").len(), 1);
    for command in h.state.due(u64::MAX) {
        h.apply(command);
    }
    assert!(h.state.session("dying").is_none());
    assert_eq!(h.queue("watcher").len(), 1);
}

/// A Session Expiry Interval of 0xFFFFFFFF never runs out (§3.1.2.11.2).
#[test]
fn a_session_of_expiry_0xffffffff_never_expires() {
    let mut h = Harness::new();
    h.open("c", false, u32::MAX);
    h.close("c", u32::MAX, false, 0);
    assert_eq!(h.state.next_deadline_ms(), None);
    assert!(h.state.due(u64::MAX).is_empty());
    h.apply(Command::EndSession {
        client_id: id("c"),
        now_ms: u64::MAX,
    });
    assert!(h.state.session("c").is_some());
}

/// [MQTT-4.1.0-1]: a session connected again is not discarded by an expiry proposed while
/// it was disconnected.
#[test]
fn an_expiry_never_ends_a_connected_session() {
    let mut h = Harness::new();
    h.open("c", false, 1);
    h.close("c", 1, true, 0);
    h.open("c", false, 1);
    h.apply(Command::EndSession {
        client_id: id("c"),
        now_ms: 10_000,
    });
    let session = h.state.session("c").expect("kept");
    assert!(session.connected);
}

#[test]
fn queued_messages_survive_a_disconnect_of_a_persistent_session() {
    let mut h = Harness::new();
    h.open("p", false, 3600);
    h.subscribe("p", "t", sub(QoS::AtLeastOnce));
    h.close("p", 3600, false, 0);
    assert_eq!(
        h.publish(message("t", QoS::AtLeastOnce, false, None))
            .matched,
        1
    );
    assert_eq!(
        h.publish(message("t", QoS::AtMostOnce, false, None))
            .matched,
        0,
        "QoS 0 is not queued offline"
    );
    assert!(h.open("p", false, 3600).session_present);
    assert_eq!(h.queue("p").len(), 1);
}
