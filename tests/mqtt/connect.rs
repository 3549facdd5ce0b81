//! CONNECT and CONNACK over real sockets: the protocol name and level, client id rules, the
//! limits a v5 CONNACK announces, Server Keep Alive, will checks, and the CONNECT timeout.
//! rumqttc is the client wherever it can send the CONNECT in question; the raw client sends
//! what rumqttc refuses to (an empty v3 client id with a persistent session, bad names and
//! levels, keep-alive 0 in v5).

use crate::common;

use std::time::Duration;

use common::raw::{self, RawClient};
use common::{v3, v5, Moment, TestBroker};
use keel::codec::{Packet, Protocol, QoS, ReasonCode};

// --- Protocol name and level ---------------------------------------------------------------

/// A CONNECT body with the given protocol name and level, clean start, keep-alive 60 s,
/// client id "c" (and an empty property list for level 5).
fn connect_body(name: &[u8], level: u8) -> Vec<u8> {
    let mut body = raw::string(name);
    body.extend_from_slice(&[level, 0x02, 0x00, 0x3c]);
    if level == 5 {
        body.push(0x00);
    }
    body.extend_from_slice(&raw::string(b"c"));
    body
}

#[tokio::test]
async fn connect_with_an_unknown_protocol_name_is_closed_without_connack() {
    let broker = TestBroker::start_quiet().await;
    for level in [4, 5] {
        let mut client = RawClient::open(broker.addr, Protocol::V3_1_1).await;
        client
            .send_bytes(&raw::frame(0x10, &connect_body(b"MQTX", level)))
            .await;
        client.expect_closed().await;
    }
}

#[tokio::test]
async fn connect_with_an_unsupported_protocol_level_gets_connack_0x01_then_close() {
    let broker = TestBroker::start_quiet().await;
    let mut client = RawClient::open(broker.addr, Protocol::V3_1_1).await;
    client
        .send_bytes(&raw::frame(0x10, &connect_body(b"MQTT", 6)))
        .await;
    // [MQTT-3.1.2-2]: return code 0x01 in the MQTT 3.1.1 layout, whatever the client speaks.
    match client.expect_packet().await {
        Packet::ConnAck(connack) => {
            assert_eq!(connack.reason_code, ReasonCode::UnsupportedProtocolVersion);
            assert!(!connack.session_present);
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    client.expect_closed().await;
}

#[tokio::test]
async fn v3_1_connect_with_mqisdp_is_accepted() {
    let broker = TestBroker::start_quiet().await;
    let mut client = RawClient::connected(broker.addr, Protocol::V3_1, "old-client").await;
    client.ping().await;
}

#[tokio::test]
async fn v3_clean_session_connect_is_accepted_without_session_present() {
    let broker = TestBroker::start_quiet().await;
    let (_client, connack) = v3::connect_with(v3::options(&broker, "plain")).await;
    assert!(!connack.session_present);
    assert_eq!(connack.code, rumqttc::ConnectReturnCode::Success);
}

#[tokio::test]
async fn v5_connack_announces_the_broker_limits() {
    let mut settings = TestBroker::settings();
    settings.session.receive_maximum = 20;
    settings.session.packet_size_max = 4096;
    settings.session.topic_alias_max = 7;
    settings.session.maximum_qos = QoS::AtLeastOnce;
    settings.session.retain_available = false;
    let broker = TestBroker::start(settings).await;
    let (_client, connack) = v5::connect_with(v5::options(&broker, "limits")).await;
    assert!(!connack.session_present);
    let properties = connack.properties.expect("CONNACK properties");
    assert_eq!(properties.receive_max, Some(20));
    assert_eq!(properties.max_packet_size, Some(4096));
    assert_eq!(properties.topic_alias_max, Some(7));
    assert_eq!(properties.max_qos, Some(1));
    assert_eq!(properties.retain_available, Some(0));
    // The client named itself and asked for nothing the broker changed.
    assert_eq!(properties.assigned_client_identifier, None);
    assert_eq!(properties.server_keep_alive, None);
    assert_eq!(properties.session_expiry_interval, None);
}

// --- Client identifiers --------------------------------------------------------------------

#[tokio::test]
async fn v3_empty_client_id_with_clean_session_is_accepted_and_served() {
    let broker = TestBroker::start_quiet().await;
    let (mut client, connack) = v3::connect_with(v3::options(&broker, "")).await;
    assert!(!connack.session_present);
    client.subscribe("anon/t", rumqttc::QoS::AtLeastOnce).await;
    client
        .publish_acked("anon/t", rumqttc::QoS::AtLeastOnce, false, "hi")
        .await;
    assert_eq!(client.next_publish().await.payload.as_ref(), b"hi");
}

#[tokio::test]
async fn v3_empty_client_id_without_clean_session_is_rejected_with_0x02() {
    let broker = TestBroker::start_quiet().await;
    let mut connect = raw::connect(Protocol::V3_1_1, "");
    connect.clean_start = false;
    let (mut client, connack) = RawClient::connect(broker.addr, connect).await;
    // [MQTT-3.1.3-8]: return code 0x02, Identifier rejected, then close.
    assert_eq!(connack.reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(!connack.session_present);
    client.expect_closed().await;
}

#[tokio::test]
async fn v5_empty_client_id_is_assigned_a_unique_client_identifier() {
    let broker = TestBroker::start_quiet().await;
    let (_first, first) = v5::connect_with(v5::options(&broker, "")).await;
    let (_second, second) = v5::connect_with(v5::options(&broker, "")).await;
    let first = first
        .properties
        .and_then(|p| p.assigned_client_identifier)
        .expect("assigned client identifier");
    let second = second
        .properties
        .and_then(|p| p.assigned_client_identifier)
        .expect("assigned client identifier");
    assert!(!first.is_empty());
    assert_ne!(first, second);
    // The session is kept under the assigned identifier.
    assert!(broker.has_session(&first));
    assert!(broker.has_session(&second));
}

#[tokio::test]
async fn v5_empty_client_id_with_clean_start_0_is_assigned_an_identifier() {
    let broker = TestBroker::start_quiet().await;
    let mut connect = raw::connect(Protocol::V5, "");
    connect.clean_start = false;
    let (_client, connack) = RawClient::connect(broker.addr, connect).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    let assigned = connack
        .properties
        .assigned_client_identifier
        .expect("assigned client identifier");
    assert!(broker.has_session(assigned.as_str()));
}

#[tokio::test]
async fn v3_client_id_over_the_length_limit_is_rejected_with_0x02() {
    let mut settings = TestBroker::settings();
    settings.session.client_id_len_max = 8;
    let broker = TestBroker::start(settings).await;
    let (_ok, _) = v3::connect_with(v3::options(&broker, "12345678")).await;
    match v3::try_connect(v3::options(&broker, "123456789")).await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::ConnectReturnCode::BadClientId)
        }
        Err(other) => panic!("expected a refusing CONNACK, got {other}"),
        Ok(_) => panic!("a 9-byte client id was accepted over a limit of 8"),
    }
}

#[tokio::test]
async fn v5_client_id_over_the_length_limit_is_rejected_with_0x85() {
    let mut settings = TestBroker::settings();
    settings.session.client_id_len_max = 8;
    let broker = TestBroker::start(settings).await;
    let (_ok, _) = v5::connect_with(v5::options(&broker, "12345678")).await;
    let code = v5::refused(v5::options(&broker, "123456789")).await;
    assert_eq!(
        code,
        rumqttc::v5::mqttbytes::v5::ConnectReturnCode::ClientIdentifierNotValid
    );
}

#[tokio::test]
async fn v3_1_client_id_over_23_bytes_is_rejected() {
    let broker = TestBroker::start_quiet().await;
    let (_ok, connack) =
        RawClient::connect(broker.addr, raw::connect(Protocol::V3_1, &"a".repeat(23))).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    let (mut refused, connack) =
        RawClient::connect(broker.addr, raw::connect(Protocol::V3_1, &"b".repeat(24))).await;
    assert_eq!(connack.reason_code, ReasonCode::ClientIdentifierNotValid);
    refused.expect_closed().await;
}

// --- Keep-alive negotiation ----------------------------------------------------------------

#[tokio::test]
async fn v5_keep_alive_above_the_server_maximum_is_lowered_by_server_keep_alive() {
    let mut settings = TestBroker::settings();
    settings.session.keep_alive_max_secs = 10;
    let broker = TestBroker::start(settings).await;
    // rumqttc asks for 60 s.
    let (_client, connack) = v5::connect_with(v5::options(&broker, "ka")).await;
    let properties = connack.properties.expect("CONNACK properties");
    assert_eq!(properties.server_keep_alive, Some(10));
}

#[tokio::test]
async fn v5_keep_alive_zero_is_replaced_by_server_keep_alive_when_the_server_has_a_maximum() {
    let mut settings = TestBroker::settings();
    settings.session.keep_alive_max_secs = 10;
    let broker = TestBroker::start(settings).await;
    let (_client, connack) =
        RawClient::connect(broker.addr, raw::connect(Protocol::V5, "ka0")).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    assert_eq!(connack.properties.server_keep_alive, Some(10));
}

#[tokio::test]
async fn v5_keep_alive_within_the_server_maximum_is_kept() {
    let mut settings = TestBroker::settings();
    settings.session.keep_alive_max_secs = 100;
    let broker = TestBroker::start(settings).await;
    let (_client, connack) = v5::connect_with(v5::options(&broker, "ka")).await;
    let properties = connack.properties.expect("CONNACK properties");
    assert_eq!(properties.server_keep_alive, None);
}

// --- Will checks and other refusals --------------------------------------------------------

#[tokio::test]
async fn v5_will_qos_above_the_maximum_qos_is_refused_with_0x9b() {
    use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, LastWill};
    let mut settings = TestBroker::settings();
    settings.session.maximum_qos = QoS::AtLeastOnce;
    let broker = TestBroker::start(settings).await;
    let mut options = v5::options(&broker, "will2");
    options.set_last_will(LastWill::new(
        "will/t",
        "bye",
        rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
        false,
        None,
    ));
    assert_eq!(
        v5::refused(options).await,
        ConnectReturnCode::QoSNotSupported
    );
}

#[tokio::test]
async fn v3_will_qos_above_the_maximum_qos_is_refused_as_server_unavailable() {
    let mut settings = TestBroker::settings();
    settings.session.maximum_qos = QoS::AtLeastOnce;
    let broker = TestBroker::start(settings).await;
    let mut options = v3::options(&broker, "will2");
    options.set_last_will(rumqttc::LastWill::new(
        "will/t",
        "bye",
        rumqttc::QoS::ExactlyOnce,
        false,
    ));
    match v3::try_connect(options).await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::ConnectReturnCode::ServiceUnavailable)
        }
        Err(other) => panic!("expected a refusing CONNACK, got {other}"),
        Ok(_) => panic!("a QoS 2 will was accepted with maximum QoS 1"),
    }
}

#[tokio::test]
async fn v5_retained_will_without_retain_support_is_refused_with_0x9a() {
    use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, LastWill};
    let mut settings = TestBroker::settings();
    settings.session.retain_available = false;
    let broker = TestBroker::start(settings).await;
    let mut options = v5::options(&broker, "will-retained");
    options.set_last_will(LastWill::new(
        "will/t",
        "bye",
        rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        true,
        None,
    ));
    assert_eq!(
        v5::refused(options).await,
        ConnectReturnCode::RetainNotSupported
    );
}

#[tokio::test]
async fn v5_unsupported_authentication_method_is_refused_with_0x8c() {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
    let broker = TestBroker::start_quiet().await;
    let mut options = v5::options(&broker, "scram");
    options.set_authentication_method(Some("SCRAM-SHA-1".into()));
    assert_eq!(
        v5::refused(options).await,
        ConnectReturnCode::BadAuthenticationMethod
    );
}

#[tokio::test]
async fn v5_session_expiry_above_the_maximum_is_capped_and_announced() {
    let mut settings = TestBroker::settings();
    settings.session.session_expiry_max_secs = 30;
    let broker = TestBroker::start(settings).await;
    let (_client, connack) = v5::connect_with(v5::persistent(&broker, "long", 600)).await;
    let properties = connack.properties.expect("CONNACK properties");
    assert_eq!(properties.session_expiry_interval, Some(30));
    assert_eq!(
        broker.inspect(|b| b.session("long").map(|s| s.expiry_secs)),
        Some(30)
    );
}

#[tokio::test]
async fn connection_that_sends_no_connect_is_closed_after_the_connect_timeout() {
    let mut settings = TestBroker::settings();
    settings.connect_timeout = Duration::from_millis(300);
    let broker = TestBroker::start(settings).await;
    let opened = Moment::begin();
    let mut silent = RawClient::open(broker.addr, Protocol::V3_1_1).await;
    let opened = opened.confirm();
    silent.expect_closed().await;
    opened.assert_elapsed(
        "closed",
        Duration::from_millis(290),
        Duration::from_millis(1500),
    );
}
