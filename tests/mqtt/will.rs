//! Will messages over real sockets: published when a connection ends without DISCONNECT
//! (and, in MQTT 5, on DISCONNECT 0x04), discarded on a normal DISCONNECT, retained when
//! asked, carrying their MQTT 5 properties, and — with a Will Delay Interval — sent at the
//! earlier of the delay and the end of the session, or not at all if the client comes back
//! in time ([MQTT-3.1.2-8] to [MQTT-3.1.2-10], MQTT 5 §3.1.3.2.2).

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::raw::{self, RawClient};
use common::{v3, v5, Moment, TestBroker, ONE_SECOND_MIN};
use keel::codec::{LastWill, Protocol, ReasonCode, TopicName, WillProperties};
use rumqttc::v5::mqttbytes::v5::{LastWill as LastWill5, LastWillProperties};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::QoS as Q3;

const WILL_TOPIC: &str = "status/will";

/// Wills and session expiries are checked on a 250 ms tick; this is the tick plus room for a
/// busy machine.
const TICK_SLACK: Duration = Duration::from_millis(750);

async fn v3_observer(broker: &TestBroker) -> v3::Client {
    let mut observer = v3::connect(broker, "observer").await;
    observer
        .subscribe_many(&[(WILL_TOPIC, Q3::AtLeastOnce), ("barrier", Q3::AtMostOnce)])
        .await;
    observer
}

async fn v5_observer(broker: &TestBroker) -> v5::Client {
    use rumqttc::v5::mqttbytes::v5::Filter;
    let mut observer = v5::connect(broker, "observer").await;
    observer
        .subscribe_filters(
            vec![
                Filter::new(WILL_TOPIC, Q5::AtLeastOnce),
                Filter::new("barrier", Q5::AtMostOnce),
            ],
            None,
        )
        .await;
    observer
}

fn v3_with_will(broker: &TestBroker, client_id: &str, retain: bool) -> rumqttc::MqttOptions {
    let mut options = v3::options(broker, client_id);
    options.set_last_will(rumqttc::LastWill::new(
        WILL_TOPIC,
        format!("{client_id} died"),
        Q3::AtLeastOnce,
        retain,
    ));
    options
}

/// MQTT 5 options for `client_id` with a will (delay `delay_secs`) and session expiry.
fn v5_with_will(
    broker: &TestBroker,
    client_id: &str,
    delay_secs: u32,
    expiry_secs: u32,
) -> rumqttc::v5::MqttOptions {
    let mut options = v5::persistent(broker, client_id, expiry_secs);
    let properties = LastWillProperties {
        delay_interval: Some(delay_secs),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    };
    options.set_last_will(LastWill5::new(
        WILL_TOPIC,
        format!("{client_id} died"),
        Q5::AtLeastOnce,
        false,
        Some(properties),
    ));
    options
}

// --- MQTT 3.1.1 ----------------------------------------------------------------------------

#[tokio::test]
async fn v3_will_is_published_when_the_connection_drops() {
    let broker = TestBroker::start_quiet().await;
    let mut observer = v3_observer(&broker).await;
    let (client, _) = v3::connect_with(v3_with_will(&broker, "fragile", false)).await;
    client.kill().await;
    assert_eq!(
        v3::summary(&observer.next_publish().await),
        (
            WILL_TOPIC.into(),
            b"fragile died".to_vec(),
            Q3::AtLeastOnce,
            false
        )
    );
}

#[tokio::test]
async fn v3_will_is_discarded_on_normal_disconnect() {
    let broker = TestBroker::start_quiet().await;
    let mut observer = v3_observer(&broker).await;
    let (client, _) = v3::connect_with(v3_with_will(&broker, "polite", false)).await;
    client.disconnect().await;
    let publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish("barrier", Q3::AtMostOnce, false, "")
        .await;
    assert!(observer.publishes_until("barrier").await.is_empty());
}

#[tokio::test]
async fn v3_retained_will_is_kept_for_later_subscribers() {
    let broker = TestBroker::start_quiet().await;
    let (client, _) = v3::connect_with(v3_with_will(&broker, "fragile", true)).await;
    client.kill().await;
    broker
        .wait_until("the will to be retained", |b| {
            b.state().retained().any(|m| m.topic.as_str() == WILL_TOPIC)
        })
        .await;
    let mut late = v3::connect(&broker, "late").await;
    late.subscribe(WILL_TOPIC, Q3::AtLeastOnce).await;
    assert_eq!(
        v3::summary(&late.next_publish().await),
        (
            WILL_TOPIC.into(),
            b"fragile died".to_vec(),
            Q3::AtLeastOnce,
            true
        )
    );
}

// --- MQTT 5 --------------------------------------------------------------------------------

#[tokio::test]
async fn v5_will_is_published_with_its_properties_when_the_connection_drops() {
    let broker = TestBroker::start_quiet().await;
    let mut observer = v5_observer(&broker).await;
    let mut options = v5::options(&broker, "fragile5");
    let properties = LastWillProperties {
        delay_interval: None,
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(300),
        content_type: Some("text/plain".into()),
        response_topic: Some("status/ask".into()),
        correlation_data: Some(Bytes::from_static(b"corr")),
        user_properties: vec![("k".into(), "v1".into()), ("k".into(), "v2".into())],
    };
    options.set_last_will(LastWill5::new(
        WILL_TOPIC,
        "gone",
        Q5::AtLeastOnce,
        false,
        Some(properties),
    ));
    let (client, _) = v5::connect_with(options).await;
    client.kill().await;
    let will = observer.next_publish().await;
    assert_eq!(
        v5::summary(&will),
        (WILL_TOPIC.into(), b"gone".to_vec(), Q5::AtLeastOnce, false)
    );
    let got = v5::properties(&will);
    assert_eq!(got.payload_format_indicator, Some(1));
    assert!(
        matches!(got.message_expiry_interval, Some(299..=300)),
        "{got:?}"
    );
    assert_eq!(got.content_type.as_deref(), Some("text/plain"));
    assert_eq!(got.response_topic.as_deref(), Some("status/ask"));
    assert_eq!(got.correlation_data.as_deref(), Some(&b"corr"[..]));
    assert_eq!(
        got.user_properties,
        vec![
            ("k".to_string(), "v1".to_string()),
            ("k".to_string(), "v2".to_string())
        ]
    );
}

#[tokio::test]
async fn v5_will_is_discarded_on_normal_disconnect() {
    let broker = TestBroker::start_quiet().await;
    let mut observer = v5_observer(&broker).await;
    let (client, _) = v5::connect_with(v5_with_will(&broker, "polite5", 0, 0)).await;
    client.disconnect().await;
    let publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish("barrier", Q5::AtMostOnce, false, "")
        .await;
    assert!(observer.publishes_until("barrier").await.is_empty());
}

#[tokio::test]
async fn v5_disconnect_with_reason_0x04_publishes_the_will() {
    let broker = TestBroker::start_quiet().await;
    let mut observer = v5_observer(&broker).await;
    // rumqttc only sends Normal disconnection, so this client is raw.
    let mut connect = raw::connect(Protocol::V5, "leaving");
    connect.will = Some(LastWill {
        topic: TopicName::new(WILL_TOPIC).unwrap(),
        payload: Bytes::from_static(b"asked for it"),
        qos: keel::codec::QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    let (mut client, _) = RawClient::connect(broker.addr, connect).await;
    client
        .send(raw::disconnect(ReasonCode::DisconnectWithWillMessage))
        .await;
    client.expect_closed().await;
    assert_eq!(
        observer.next_publish().await.payload.as_ref(),
        b"asked for it"
    );
}

#[tokio::test]
async fn v5_will_is_published_after_its_will_delay() {
    let broker = TestBroker::start_quiet().await;
    let mut observer = v5_observer(&broker).await;
    let (client, _) = v5::connect_with(v5_with_will(&broker, "patient", 1, 60)).await;
    let dropped = Moment::begin();
    client.kill().await;
    let dropped = dropped.confirm();
    let will = observer.next_publish().await;
    dropped.assert_elapsed(
        "will with delay 1 s published",
        ONE_SECOND_MIN,
        Duration::from_secs(1) + TICK_SLACK,
    );
    assert_eq!(will.payload.as_ref(), b"patient died");
    // The session itself (expiry 60 s) is still there.
    assert!(broker.has_session("patient"));
}

#[tokio::test]
async fn v5_reconnecting_within_the_will_delay_cancels_the_will() {
    let broker = TestBroker::start_quiet().await;
    let mut observer = v5_observer(&broker).await;
    let (client, _) = v5::connect_with(v5_with_will(&broker, "comeback", 1, 60)).await;
    client.kill().await;
    broker.wait_offline("comeback").await;
    let (_client, connack) = v5::connect_with(v5::persistent(&broker, "comeback", 60)).await;
    assert!(connack.session_present);
    // Time has to pass here: the will would have been due after 1 s.
    tokio::time::sleep(Duration::from_secs(1) + TICK_SLACK).await;
    let publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish("barrier", Q5::AtMostOnce, false, "")
        .await;
    assert!(observer.publishes_until("barrier").await.is_empty());
}

#[tokio::test]
async fn v5_will_is_sent_when_the_session_expires_before_the_will_delay() {
    let broker = TestBroker::start_quiet().await;
    let mut observer = v5_observer(&broker).await;
    let (client, _) = v5::connect_with(v5_with_will(&broker, "shortlived", 30, 1)).await;
    let dropped = Moment::begin();
    client.kill().await;
    let dropped = dropped.confirm();
    let will = observer.next_publish().await;
    // The earlier of the will delay (30 s) and the session end (1 s).
    dropped.assert_elapsed(
        "will of a session with expiry 1 s published",
        ONE_SECOND_MIN,
        Duration::from_secs(1) + TICK_SLACK,
    );
    assert_eq!(will.payload.as_ref(), b"shortlived died");
    broker.wait_session_gone("shortlived").await;
}

#[tokio::test]
async fn v5_will_with_a_delay_is_sent_at_once_when_session_expiry_is_zero() {
    let broker = TestBroker::start_quiet().await;
    let mut observer = v5_observer(&broker).await;
    let (client, _) = v5::connect_with(v5_with_will(&broker, "ephemeral", 30, 0)).await;
    let dropped = Moment::begin();
    client.kill().await;
    let dropped = dropped.confirm();
    let will = observer.next_publish().await;
    // At once, not after the 30 s delay, nor on the next tick.
    dropped.assert_elapsed(
        "will of a session with expiry 0 published",
        Duration::ZERO,
        Duration::from_millis(200),
    );
    assert_eq!(will.payload.as_ref(), b"ephemeral died");
}
