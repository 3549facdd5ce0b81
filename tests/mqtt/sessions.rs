//! Sessions over real sockets: clean session / clean start, resuming a session with its
//! subscriptions and the QoS 1/2 messages queued while it was offline, session expiry,
//! takeover of a connected client id, and the bounded offline queue with its overflow
//! policies and drop count.

use crate::common;

use std::time::Duration;

use common::raw::{self, RawClient};
use common::{v3, v5, Moment, TestBroker, ONE_SECOND_MIN};
use keel::codec::{Protocol, QoS, ReasonCode};
use keel::state::OverflowPolicy;

use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::QoS as Q3;

// --- MQTT 3.1.1 clean session ----------------------------------------------------------------

#[tokio::test]
async fn v3_persistent_session_keeps_subscriptions_and_offline_qos1_and_qos2_messages() {
    let broker = TestBroker::start_quiet().await;
    let (mut sub, connack) = v3::connect_with(v3::persistent(&broker, "keeper")).await;
    assert!(!connack.session_present);
    sub.subscribe("keep/#", Q3::ExactlyOnce).await;
    sub.disconnect().await;

    let mut publisher = v3::connect(&broker, "publisher").await;
    publisher
        .publish("keep/zero", Q3::AtMostOnce, false, "0")
        .await;
    publisher
        .publish_acked("keep/one", Q3::AtLeastOnce, false, "1")
        .await;
    publisher
        .publish_acked("keep/two", Q3::ExactlyOnce, false, "2")
        .await;

    let (mut sub, connack) = v3::connect_with(v3::persistent(&broker, "keeper")).await;
    assert!(connack.session_present);
    publisher
        .publish("keep/barrier", Q3::AtMostOnce, false, "")
        .await;
    let got = sub.publishes_until("keep/barrier").await;
    // QoS 0 is not kept for an offline session; QoS 1 and 2 are, in order.
    assert_eq!(
        got.iter().map(v3::summary).collect::<Vec<_>>(),
        vec![
            ("keep/one".into(), b"1".to_vec(), Q3::AtLeastOnce, false),
            ("keep/two".into(), b"2".to_vec(), Q3::ExactlyOnce, false),
        ]
    );
}

#[tokio::test]
async fn v3_clean_session_discards_the_stored_session_and_its_subscriptions() {
    let broker = TestBroker::start_quiet().await;
    let (mut sub, _) = v3::connect_with(v3::persistent(&broker, "forgetful")).await;
    sub.subscribe("old/t", Q3::AtLeastOnce).await;
    sub.disconnect().await;
    assert!(broker.has_session("forgetful"));

    let (mut sub, connack) = v3::connect_with(v3::options(&broker, "forgetful")).await;
    assert!(!connack.session_present);
    sub.subscribe("old/barrier", Q3::AtMostOnce).await;
    let mut publisher = v3::connect(&broker, "publisher").await;
    publisher
        .publish_acked("old/t", Q3::AtLeastOnce, false, "stale")
        .await;
    publisher
        .publish("old/barrier", Q3::AtMostOnce, false, "")
        .await;
    assert!(sub.publishes_until("old/barrier").await.is_empty());

    // A clean session ends with its connection.
    sub.disconnect().await;
    broker.wait_session_gone("forgetful").await;
}

// --- MQTT 5 clean start and session expiry ----------------------------------------------------

#[tokio::test]
async fn v5_session_is_resumed_within_its_expiry_with_queued_messages() {
    let broker = TestBroker::start_quiet().await;
    let (mut sub, connack) = v5::connect_with(v5::persistent(&broker, "keeper5", 60)).await;
    assert!(!connack.session_present);
    sub.subscribe("keep/#", Q5::ExactlyOnce).await;
    sub.disconnect().await;

    let mut publisher = v5::connect(&broker, "publisher").await;
    publisher
        .publish("keep/zero", Q5::AtMostOnce, false, "0")
        .await;
    publisher
        .publish_acked("keep/one", Q5::AtLeastOnce, false, "1")
        .await;
    publisher
        .publish_acked("keep/two", Q5::ExactlyOnce, false, "2")
        .await;

    let (mut sub, connack) = v5::connect_with(v5::persistent(&broker, "keeper5", 60)).await;
    assert!(connack.session_present);
    publisher
        .publish("keep/barrier", Q5::AtMostOnce, false, "")
        .await;
    let got = sub.publishes_until("keep/barrier").await;
    assert_eq!(
        got.iter().map(v5::summary).collect::<Vec<_>>(),
        vec![
            ("keep/one".into(), b"1".to_vec(), Q5::AtLeastOnce, false),
            ("keep/two".into(), b"2".to_vec(), Q5::ExactlyOnce, false),
        ]
    );
}

/// [MQTT-3.1.2-5]: Clean Start 0 resumes an existing session whatever Session Expiry
/// Interval the new CONNECT carries; that interval only says how long the session lives after
/// this connection closes. (Keel once gave such a CONNECT a new session of its own and lost
/// the stored one with its acknowledged messages.)
#[tokio::test]
async fn v5_clean_start_0_without_expiry_resumes_the_stored_session() {
    let broker = TestBroker::start_quiet().await;
    let mut first = v5::persistent(&broker, "c1", 99_999);
    first.set_clean_start(true);
    let (mut sub, connack) = v5::connect_with(first).await;
    assert!(!connack.session_present);
    sub.subscribe("+/+", Q5::ExactlyOnce).await;
    sub.disconnect().await;

    let mut publisher = v5::connect(&broker, "publisher").await;
    publisher
        .publish_acked("TopicA/C", Q5::AtLeastOnce, false, "one")
        .await;
    publisher
        .publish_acked("TopicA/D", Q5::ExactlyOnce, false, "two")
        .await;

    // No Session Expiry Interval property: 0.
    let mut resume = v5::options(&broker, "c1");
    resume.set_clean_start(false);
    let (mut sub, connack) = v5::connect_with(resume.clone()).await;
    assert!(connack.session_present, "the stored session is resumed");
    publisher
        .publish("TopicA/barrier", Q5::AtMostOnce, false, "")
        .await;
    let got = sub.publishes_until("TopicA/barrier").await;
    assert_eq!(
        got.iter().map(v5::summary).collect::<Vec<_>>(),
        vec![
            ("TopicA/C".into(), b"one".to_vec(), Q5::AtLeastOnce, false),
            ("TopicA/D".into(), b"two".to_vec(), Q5::ExactlyOnce, false),
        ]
    );

    // Its expiry is now 0: the session ends with this connection.
    sub.disconnect().await;
    broker.wait_session_gone("c1").await;
    let (_sub, connack) = v5::connect_with(resume).await;
    assert!(!connack.session_present);
}

#[tokio::test]
async fn v5_session_expiry_zero_ends_the_session_with_the_connection() {
    let broker = TestBroker::start_quiet().await;
    let mut options = v5::options(&broker, "brief");
    options.set_clean_start(false);
    let (mut sub, _) = v5::connect_with(options.clone()).await;
    sub.subscribe("brief/t", Q5::AtLeastOnce).await;
    sub.disconnect().await;
    broker.wait_session_gone("brief").await;

    let (_sub, connack) = v5::connect_with(options).await;
    assert!(!connack.session_present);
    assert_eq!(broker.inspect(|b| b.subscription_count()), 0);
}

#[tokio::test]
async fn v5_clean_start_discards_a_stored_session() {
    let broker = TestBroker::start_quiet().await;
    let (mut sub, _) = v5::connect_with(v5::persistent(&broker, "fresh", 60)).await;
    sub.subscribe("fresh/t", Q5::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = v5::connect(&broker, "publisher").await;
    publisher
        .publish_acked("fresh/t", Q5::AtLeastOnce, false, "queued")
        .await;

    let mut options = v5::persistent(&broker, "fresh", 60);
    options.set_clean_start(true);
    let (mut sub, connack) = v5::connect_with(options).await;
    assert!(!connack.session_present);
    sub.subscribe("fresh/barrier", Q5::AtMostOnce).await;
    publisher
        .publish("fresh/barrier", Q5::AtMostOnce, false, "")
        .await;
    // Neither the queued message nor the old subscription survived.
    assert!(sub.publishes_until("fresh/barrier").await.is_empty());
    publisher
        .publish_acked("fresh/t", Q5::AtLeastOnce, false, "live")
        .await;
    publisher
        .publish("fresh/barrier", Q5::AtMostOnce, false, "")
        .await;
    assert!(sub.publishes_until("fresh/barrier").await.is_empty());
}

#[tokio::test]
async fn v5_session_ends_when_its_expiry_interval_has_passed() {
    let broker = TestBroker::start_quiet().await;
    let (mut sub, _) = v5::connect_with(v5::persistent(&broker, "mortal", 1)).await;
    sub.subscribe("mortal/t", Q5::AtLeastOnce).await;
    let disconnected = Moment::begin();
    sub.disconnect().await;
    let disconnected = disconnected.confirm();
    assert!(
        broker.has_session("mortal"),
        "the session outlives its connection"
    );

    broker.wait_session_gone("mortal").await;
    // Expiry is checked on a 250 ms tick.
    disconnected.assert_elapsed(
        "session of expiry 1 s ended",
        ONE_SECOND_MIN,
        Duration::from_millis(1750),
    );
    let (_sub, connack) = v5::connect_with(v5::persistent(&broker, "mortal", 1)).await;
    assert!(!connack.session_present);
}

// --- Takeover ----------------------------------------------------------------------------

#[tokio::test]
async fn v3_takeover_closes_the_old_connection_and_resumes_its_session() {
    let broker = TestBroker::start_quiet().await;
    let (mut old, _) = v3::connect_with(v3::persistent(&broker, "twin")).await;
    old.subscribe("twin/t", Q3::AtLeastOnce).await;

    let (mut new, connack) = v3::connect_with(v3::persistent(&broker, "twin")).await;
    assert!(connack.session_present);
    // MQTT 3 has no server DISCONNECT: the old connection is closed.
    let error = old.closed().await;
    assert!(
        matches!(
            error,
            rumqttc::ConnectionError::MqttState(_) | rumqttc::ConnectionError::Io(_)
        ),
        "{error}"
    );
    let mut publisher = v3::connect(&broker, "publisher").await;
    publisher
        .publish_acked("twin/t", Q3::AtLeastOnce, false, "to the new one")
        .await;
    assert_eq!(new.next_publish().await.payload.as_ref(), b"to the new one");
}

/// A raw MQTT 5 connection as `client_id` (clean start 0, session expiry `expiry_secs`)
/// subscribed to `filter` at QoS 1: rumqttc cannot read the broker's DISCONNECT (see
/// `common::v5`), so the connection that is taken over is raw.
async fn raw_v5_subscriber(
    broker: &TestBroker,
    client_id: &str,
    expiry_secs: u32,
    filter: &str,
) -> RawClient {
    let mut connect = raw::connect(Protocol::V5, client_id);
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(expiry_secs);
    let (mut client, connack) = RawClient::connect(broker.addr, connect).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    assert_eq!(
        client.subscribe(1, filter, QoS::AtLeastOnce).await,
        vec![ReasonCode::GrantedQoS1]
    );
    client
}

#[tokio::test]
async fn v5_takeover_sends_session_taken_over_0x8e_to_the_old_connection() {
    let broker = TestBroker::start_quiet().await;
    let mut old = raw_v5_subscriber(&broker, "twin5", 60, "twin/t").await;

    let (mut new, connack) = v5::connect_with(v5::persistent(&broker, "twin5", 60)).await;
    assert!(connack.session_present);
    old.expect_disconnect(ReasonCode::SessionTakenOver).await;
    // The subscription came along with the session.
    let mut publisher = v5::connect(&broker, "publisher").await;
    publisher
        .publish_acked("twin/t", Q5::AtLeastOnce, false, "to the new one")
        .await;
    assert_eq!(new.next_publish().await.payload.as_ref(), b"to the new one");
}

#[tokio::test]
async fn v5_takeover_of_a_session_with_expiry_zero_starts_a_new_session() {
    let broker = TestBroker::start_quiet().await;
    let mut old = raw_v5_subscriber(&broker, "twin0", 0, "twin/t").await;
    // §3.1.4: the old connection had expiry 0, so its session ends on takeover.
    let (_new, connack) = v5::connect_with(v5::persistent(&broker, "twin0", 60)).await;
    assert!(!connack.session_present);
    old.expect_disconnect(ReasonCode::SessionTakenOver).await;
    assert_eq!(broker.inspect(|b| b.subscription_count()), 0);
}

#[tokio::test]
async fn v3_takeover_publishes_the_will_of_the_old_connection() {
    let broker = TestBroker::start_quiet().await;
    let mut observer = v3::connect(&broker, "observer").await;
    observer.subscribe("twin/will", Q3::AtLeastOnce).await;
    let mut options = v3::persistent(&broker, "twin");
    options.set_last_will(rumqttc::LastWill::new(
        "twin/will",
        "old",
        Q3::AtLeastOnce,
        false,
    ));
    let (_old, _) = v3::connect_with(options.clone()).await;
    let (_new, _) = v3::connect_with(options).await;
    assert_eq!(observer.next_publish().await.payload.as_ref(), b"old");
}

#[tokio::test]
async fn v5_takeover_publishes_the_will_of_the_old_connection() {
    use rumqttc::v5::mqttbytes::v5::LastWill;
    let broker = TestBroker::start_quiet().await;
    let mut observer = v5::connect(&broker, "observer").await;
    observer.subscribe("twin/will", Q5::AtLeastOnce).await;
    let mut options = v5::persistent(&broker, "twin5", 60);
    options.set_last_will(LastWill::new(
        "twin/will",
        "old",
        Q5::AtLeastOnce,
        false,
        None,
    ));
    let (_old, _) = v5::connect_with(options.clone()).await;
    let (_new, _) = v5::connect_with(options).await;
    assert_eq!(observer.next_publish().await.payload.as_ref(), b"old");
}

// --- The bounded offline queue ---------------------------------------------------------------

fn queue_settings(queue_max: usize, overflow: OverflowPolicy) -> keel::server::ServerSettings {
    let mut settings = TestBroker::settings();
    settings.broker.state.queue_max = queue_max;
    settings.broker.state.overflow = overflow;
    settings
}

#[tokio::test]
async fn v3_full_offline_queue_drops_new_messages_and_counts_them() {
    let broker = TestBroker::start(queue_settings(3, OverflowPolicy::DropNew)).await;
    let (mut sub, _) = v3::connect_with(v3::persistent(&broker, "slowpoke")).await;
    sub.subscribe("q/#", Q3::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publisher = v3::connect(&broker, "publisher").await;
    for i in 1..=5 {
        publisher
            .publish_acked("q/m", Q3::AtLeastOnce, false, format!("m{i}"))
            .await;
    }
    assert_eq!(broker.inspect(|b| b.stats().dropped_queue_full), 2);

    let (mut sub, connack) = v3::connect_with(v3::persistent(&broker, "slowpoke")).await;
    assert!(connack.session_present);
    publisher
        .publish("q/barrier", Q3::AtMostOnce, false, "")
        .await;
    let got = sub.publishes_until("q/barrier").await;
    assert_eq!(
        v3::topics_payloads(&got),
        ["m1", "m2", "m3"]
            .map(|p| ("q/m".to_string(), p.as_bytes().to_vec()))
            .to_vec()
    );
}

#[tokio::test]
async fn v5_full_offline_queue_drops_the_oldest_messages_and_counts_them() {
    let mut settings = queue_settings(3, OverflowPolicy::DropOldest);
    settings.sys_interval = Duration::from_millis(100);
    let broker = TestBroker::start(settings).await;
    let (mut sub, _) = v5::connect_with(v5::persistent(&broker, "slowpoke5", 60)).await;
    sub.subscribe("q/#", Q5::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publisher = v5::connect(&broker, "publisher").await;
    for i in 1..=5 {
        publisher
            .publish_acked("q/m", Q5::AtLeastOnce, false, format!("m{i}"))
            .await;
    }
    assert_eq!(broker.inspect(|b| b.stats().dropped_queue_full), 2);
    // Clients see the count too, under `$SYS`.
    let mut sys = v5::connect(&broker, "sys").await;
    sys.subscribe("$SYS/broker/publish/messages/dropped", Q5::AtMostOnce)
        .await;
    loop {
        let count: u64 = std::str::from_utf8(&sys.next_publish().await.payload)
            .expect("UTF-8 count")
            .parse()
            .expect("a number");
        assert!(count <= 2, "{count} messages dropped, expected 2");
        if count == 2 {
            break;
        }
    }

    let (mut sub, connack) = v5::connect_with(v5::persistent(&broker, "slowpoke5", 60)).await;
    assert!(connack.session_present);
    publisher
        .publish("q/barrier", Q5::AtMostOnce, false, "")
        .await;
    let got = sub.publishes_until("q/barrier").await;
    assert_eq!(
        v5::topics_payloads(&got),
        ["m3", "m4", "m5"]
            .map(|p| ("q/m".to_string(), p.as_bytes().to_vec()))
            .to_vec()
    );
}
