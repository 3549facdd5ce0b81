//! Keep-alive over real sockets: a client silent for 1.5 × its keep-alive is disconnected
//! ([MQTT-3.1.2-24]; MQTT 5 says why with DISCONNECT 0x8D), any packet restarts the timer,
//! keep-alive 0 turns it off, and an MQTT 5 Server Keep Alive is enforced.
//!
//! Time has to pass here, so these tests use keep-alives of one second and measure when the
//! broker acts: a silent rumqttc client (its event loop not polled, so it sends nothing) is
//! noticed through its will, and the raw client sees the DISCONNECT itself.

use crate::common;

use std::time::Duration;

use common::raw::{self, RawClient};
use common::{v3, v5, Moment, TestBroker};
use keel::codec::{Protocol, ReasonCode};

/// A keep-alive of 1 s expires after 1.5 s of silence, not before ([MQTT-3.1.2-24]; the
/// broker's clock counts whole milliseconds) ...
const GRACE_1S: Duration = Duration::from_millis(1490);
/// ... and not much later: below 2 × the keep-alive, with room for a busy machine.
const GRACE_1S_LATEST: Duration = Duration::from_millis(1950);

/// The connection went silent at `since`: the broker must act 1.5 s later.
fn assert_timed_out_at_one_and_a_half(since: Moment) {
    since.assert_elapsed("keep-alive of 1 s expired", GRACE_1S, GRACE_1S_LATEST);
}

#[tokio::test]
async fn v3_silent_client_is_dropped_after_one_and_a_half_keep_alives() {
    let broker = TestBroker::start_quiet().await;
    let mut observer = v3::connect(&broker, "observer").await;
    observer
        .subscribe("ka/will", rumqttc::QoS::AtLeastOnce)
        .await;

    let mut options = v3::options(&broker, "silent");
    options.set_keep_alive(Duration::from_secs(1));
    options.set_last_will(rumqttc::LastWill::new(
        "ka/will",
        "silent is gone",
        rumqttc::QoS::AtLeastOnce,
        false,
    ));
    let connected = Moment::begin();
    let (_client, _eventloop, _) = v3::connect_idle(options).await.expect("connect");
    let connected = connected.confirm();

    // The will goes out when the broker drops the connection.
    let will = observer.next_publish().await;
    assert_timed_out_at_one_and_a_half(connected);
    assert_eq!(will.payload.as_ref(), b"silent is gone");
    broker.wait_offline("silent").await;
}

#[tokio::test]
async fn v5_silent_client_is_disconnected_with_0x8d_after_one_and_a_half_keep_alives() {
    let broker = TestBroker::start_quiet().await;
    let mut connect = raw::connect(Protocol::V5, "silent5");
    connect.keep_alive = 1;
    let connected = Moment::begin();
    let (mut client, connack) = RawClient::connect(broker.addr, connect).await;
    let connected = connected.confirm();
    assert_eq!(connack.reason_code, ReasonCode::Success);
    client.expect_disconnect(ReasonCode::KeepAliveTimeout).await;
    assert_timed_out_at_one_and_a_half(connected);
}

#[tokio::test]
async fn v3_silent_raw_client_is_closed_after_one_and_a_half_keep_alives() {
    let broker = TestBroker::start_quiet().await;
    let mut connect = raw::connect(Protocol::V3_1_1, "silent3");
    connect.keep_alive = 1;
    let connected = Moment::begin();
    let (mut client, _) = RawClient::connect(broker.addr, connect).await;
    let connected = connected.confirm();
    // MQTT 3 has no DISCONNECT from the server: the connection just closes.
    client.expect_closed().await;
    assert_timed_out_at_one_and_a_half(connected);
}

/// Connects with keep-alive 1 s, pings once after `quiet` and returns when the ping was
/// answered; the keep-alive must then run from the ping.
async fn ping_after(
    broker: &TestBroker,
    protocol: Protocol,
    quiet: Duration,
) -> (RawClient, Moment) {
    let mut connect = raw::connect(protocol, "pinger");
    connect.keep_alive = 1;
    let (mut client, _) = RawClient::connect(broker.addr, connect).await;
    // Pacing, not synchronisation: the point is that time passes before the ping.
    tokio::time::sleep(quiet).await;
    let pinged = Moment::begin();
    client.ping().await;
    (client, pinged.confirm())
}

#[tokio::test]
async fn v5_pingreq_restarts_the_keep_alive_timer() {
    let broker = TestBroker::start_quiet().await;
    let (mut client, pinged) = ping_after(&broker, Protocol::V5, Duration::from_millis(1000)).await;
    // Without the restart the broker would close 0.5 s after the ping.
    client.expect_disconnect(ReasonCode::KeepAliveTimeout).await;
    assert_timed_out_at_one_and_a_half(pinged);
}

#[tokio::test]
async fn v3_pingreq_restarts_the_keep_alive_timer() {
    let broker = TestBroker::start_quiet().await;
    let (mut client, pinged) =
        ping_after(&broker, Protocol::V3_1_1, Duration::from_millis(1000)).await;
    client.expect_closed().await;
    assert_timed_out_at_one_and_a_half(pinged);
}

#[tokio::test]
async fn v3_keep_alive_zero_is_never_timed_out() {
    let broker = TestBroker::start_quiet().await;
    // rumqttc sends no PINGREQ at all with keep-alive 0.
    let mut options = v3::options(&broker, "forever");
    options.set_keep_alive(Duration::ZERO);
    let (mut forever, _) = v3::connect_with(options).await;
    // A second client with keep-alive 1 s is the clock: once it has been timed out, more than
    // 1.5 s of silence have passed for `forever` too.
    let mut connect = raw::connect(Protocol::V3_1_1, "clock");
    connect.keep_alive = 1;
    let (mut clock, _) = RawClient::connect(broker.addr, connect).await;
    clock.expect_closed().await;

    forever
        .subscribe("ka/still", rumqttc::QoS::AtLeastOnce)
        .await;
    forever
        .publish_acked("ka/still", rumqttc::QoS::AtLeastOnce, false, "here")
        .await;
    assert_eq!(forever.next_publish().await.payload.as_ref(), b"here");
}

#[tokio::test]
async fn v5_keep_alive_zero_is_never_timed_out_without_a_server_maximum() {
    let broker = TestBroker::start_quiet().await;
    let (mut forever, connack) =
        RawClient::connect(broker.addr, raw::connect(Protocol::V5, "forever5")).await;
    assert_eq!(connack.properties.server_keep_alive, None);
    let mut connect = raw::connect(Protocol::V5, "clock5");
    connect.keep_alive = 1;
    let (mut clock, _) = RawClient::connect(broker.addr, connect).await;
    clock.expect_disconnect(ReasonCode::KeepAliveTimeout).await;
    forever.ping().await;
}

#[tokio::test]
async fn v5_server_keep_alive_is_enforced_on_a_client_that_asked_for_more() {
    use rumqttc::v5::mqttbytes::v5::LastWill;
    let mut settings = TestBroker::settings();
    settings.session.keep_alive_max_secs = 1;
    let broker = TestBroker::start(settings).await;
    let mut observer = v5::connect(&broker, "observer").await;
    observer
        .subscribe("ka/will", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await;

    // rumqttc asks for 60 s and is told 1 s.
    let mut options = v5::options(&broker, "greedy");
    options.set_last_will(LastWill::new(
        "ka/will",
        "greedy is gone",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        false,
        None,
    ));
    let connected = Moment::begin();
    let (_client, _eventloop, connack) = v5::connect_idle(options).await.expect("connect");
    let connected = connected.confirm();
    assert_eq!(
        connack.properties.and_then(|p| p.server_keep_alive),
        Some(1)
    );
    let will = observer.next_publish().await;
    assert_timed_out_at_one_and_a_half(connected);
    assert_eq!(will.payload.as_ref(), b"greedy is gone");
}
