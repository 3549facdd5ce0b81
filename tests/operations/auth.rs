//! Password authentication end to end: a password file written by `keel passwd`'s library
//! code, a configuration naming it, a node built from that configuration, and an independent
//! client (rumqttc) connecting with good and bad credentials, in MQTT 3.1.1 and 5.

use crate::common;

use std::time::Duration;

use common::TestBroker;
use keel::config::Config;
use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as Code5;
use rumqttc::{ConnectReturnCode as Code3, Event, MqttOptions, Packet};

/// A node whose configuration has `alice`/`s3cret` in its password file and `allow_anonymous`
/// as given. The temporary directory must outlive the node.
async fn broker(allow_anonymous: bool) -> (TestBroker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    keel::cli::set_password(&passwd, "alice", b"s3cret").unwrap();
    let mut config = Config::default();
    config.auth.allow_anonymous = allow_anonymous;
    config.auth.password_file = Some(passwd);
    config.durability.store = keel::config::StoreKind::Memory;
    config.validate().unwrap();
    let settings = keel::startup::settings(&config).unwrap();
    (TestBroker::start(settings).await, dir)
}

/// The CONNACK an MQTT 3.1.1 client gets with these credentials.
async fn connect_v311(broker: &TestBroker, credentials: Option<(&str, &str)>) -> Code3 {
    let mut options = MqttOptions::new("c311", "127.0.0.1", broker.port());
    if let Some((user, password)) = credentials {
        options.set_credentials(user, password);
    }
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    let polled = tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
        .await
        .expect("CONNACK in time");
    match polled {
        Ok(Event::Incoming(Packet::ConnAck(ack))) => ack.code,
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("expected a CONNACK, got {other:?}"),
    }
}

/// The CONNACK an MQTT 5 client gets with these credentials.
async fn connect_v5(broker: &TestBroker, credentials: Option<(&str, &str)>) -> Code5 {
    use rumqttc::v5::{AsyncClient, ConnectionError, Event, Incoming, MqttOptions};
    let mut options = MqttOptions::new("c5", "127.0.0.1", broker.port());
    if let Some((user, password)) = credentials {
        options.set_credentials(user, password);
    }
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    let polled = tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
        .await
        .expect("CONNACK in time");
    match polled {
        Ok(Event::Incoming(Incoming::ConnAck(ack))) => ack.code,
        Err(ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("expected a CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn v311_clients_need_the_password_of_a_listed_user() {
    let (broker, _dir) = broker(false).await;
    let right = Some(("alice", "s3cret"));
    assert_eq!(connect_v311(&broker, right).await, Code3::Success);
    let wrong = Some(("alice", "guess"));
    assert_eq!(
        connect_v311(&broker, wrong).await,
        Code3::BadUserNamePassword
    );
    let unknown = Some(("mallory", "s3cret"));
    assert_eq!(
        connect_v311(&broker, unknown).await,
        Code3::BadUserNamePassword
    );
    assert_eq!(connect_v311(&broker, None).await, Code3::NotAuthorized);
    // Each refusal is counted.
    let metrics = common::http::get(broker.admin.expect("admin API"), "/metrics").await;
    let failures: u64 = metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix("keel_auth_failures_total ")?.parse().ok())
        .expect("keel_auth_failures_total");
    assert_eq!(failures, 3);
}

#[tokio::test]
async fn v5_clients_need_the_password_of_a_listed_user() {
    let (broker, _dir) = broker(false).await;
    let right = Some(("alice", "s3cret"));
    assert_eq!(connect_v5(&broker, right).await, Code5::Success);
    let wrong = Some(("alice", "guess"));
    assert_eq!(connect_v5(&broker, wrong).await, Code5::BadUserNamePassword);
    assert_eq!(connect_v5(&broker, None).await, Code5::NotAuthorized);
}

#[tokio::test]
async fn anonymous_clients_get_in_when_allowed_but_named_users_must_still_prove_it() {
    let (broker, _dir) = broker(true).await;
    assert_eq!(connect_v311(&broker, None).await, Code3::Success);
    let unknown = Some(("mallory", "x"));
    assert_eq!(
        connect_v311(&broker, unknown).await,
        Code3::BadUserNamePassword
    );
    let right = Some(("alice", "s3cret"));
    assert_eq!(connect_v5(&broker, right).await, Code5::Success);
}

/// §3.1.4: the server authenticates a CONNECT before it takes over a connected client or
/// touches its session. A CONNECT with alice's client id and a wrong password, even with
/// Clean Start 1, is refused and changes nothing: alice's connection stays, with its session.
#[tokio::test]
async fn a_refused_connect_neither_takes_over_nor_discards_the_session() {
    use bytes::Bytes;
    use common::raw::{self, RawClient};
    use keel::codec::{MqttString, Packet, Protocol, QoS, ReasonCode};

    let (broker, _dir) = broker(true).await;
    let connect = |clean_start: bool, password: &str| {
        let mut connect = raw::connect(Protocol::V5, "alice-device");
        connect.clean_start = clean_start;
        connect.properties.session_expiry_interval = Some(600);
        connect.username = Some(MqttString::new("alice").unwrap());
        connect.password = Some(Bytes::copy_from_slice(password.as_bytes()));
        connect
    };
    let (mut alice, connack) = RawClient::connect(broker.addr, connect(false, "s3cret")).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    alice.subscribe(1, "alice/t", QoS::AtLeastOnce).await;

    let (mut impostor, refused) = RawClient::connect(broker.addr, connect(true, "guess")).await;
    assert_eq!(refused.reason_code, ReasonCode::BadUserNameOrPassword);
    assert!(!refused.session_present);
    impostor.expect_closed().await;

    let mut publisher = RawClient::connected(broker.addr, Protocol::V5, "publisher").await;
    publisher
        .send(Packet::Publish(raw::publish(
            "alice/t",
            QoS::AtLeastOnce,
            1,
            b"still here",
        )))
        .await;
    assert_eq!(alice.expect_publish().await.payload.as_ref(), b"still here");
    alice.ping().await;

    // The session is alice's as before: a takeover by her resumes it.
    let (_again, resumed) = RawClient::connect(broker.addr, connect(false, "s3cret")).await;
    assert_eq!(resumed.reason_code, ReasonCode::Success);
    assert!(resumed.session_present);
}
