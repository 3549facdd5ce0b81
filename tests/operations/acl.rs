//! Authorisation end to end: a node built from a configuration with a password file and an
//! ACL file, and independent clients (rumqttc) in MQTT 3.1.1 and 5 that are allowed and
//! denied publishes and subscriptions.

use crate::common;

use std::time::Duration;

use common::raw::{self, RawClient};
use common::{v3, v5, TestBroker};
use keel::codec::{MqttString, Packet, Protocol, QoS, ReasonCode};
use keel::config::Config;

/// alice and bob (password "pw") and the rules:
/// - everyone may use `users/<own user name>/#`;
/// - nobody may subscribe to `public/secret`;
/// - everyone may subscribe to `public/#`;
/// - alice may publish under `public/`.
const ACL: &str = r##"
[[rule]]
permission = "allow"
topics = ["users/%u/#"]

[[rule]]
permission = "deny"
action = "subscribe"
topics = ["public/secret"]

[[rule]]
permission = "allow"
action = "subscribe"
topics = ["public/#"]

[[rule]]
permission = "allow"
user = "alice"
action = "publish"
topics = ["public/#"]
"##;

async fn broker() -> (TestBroker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    keel::cli::set_password(&passwd, "alice", b"pw").unwrap();
    keel::cli::set_password(&passwd, "bob", b"pw").unwrap();
    let acl = dir.path().join("acl.toml");
    std::fs::write(&acl, ACL).unwrap();
    let mut config = Config::default();
    config.auth.allow_anonymous = false;
    config.auth.password_file = Some(passwd);
    config.auth.acl_file = Some(acl);
    config.durability.store = keel::config::StoreKind::Memory;
    config.mqtt.sys_interval_secs = 0;
    config.validate().unwrap();
    let settings = keel::startup::settings(&config).unwrap();
    (TestBroker::start(settings).await, dir)
}

fn v5_user(broker: &TestBroker, client_id: &str, user: &str) -> rumqttc::v5::MqttOptions {
    let mut options = v5::options(broker, client_id);
    options.set_credentials(user, "pw");
    options
}

fn v3_user(broker: &TestBroker, client_id: &str, user: &str) -> rumqttc::MqttOptions {
    let mut options = v3::options(broker, client_id);
    options.set_credentials(user, "pw");
    options
}

/// An MQTT 5 client of user `user`, through Keel's raw test client: rumqttc 0.24 ends its
/// event loop on a SUBACK or PUBACK failure code, the very answers these tests look for.
async fn raw_v5(broker: &TestBroker, client_id: &str, user: &str) -> RawClient {
    let mut connect = raw::connect(Protocol::V5, client_id);
    connect.username = Some(MqttString::new(user).unwrap());
    connect.password = Some(bytes::Bytes::from_static(b"pw"));
    let (client, ack) = RawClient::connect(broker.addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    client
}

#[tokio::test]
async fn v5_denied_subscriptions_get_0x87_and_allowed_ones_are_granted() {
    let (broker, _dir) = broker().await;
    let mut bob = raw_v5(&broker, "b5", "bob").await;
    for (id, filter) in [(1, "users/alice/#"), (2, "public/secret"), (3, "#")] {
        let codes = bob.subscribe(id, filter, QoS::AtLeastOnce).await;
        assert_eq!(codes, [ReasonCode::NotAuthorized], "{filter}");
    }
    for (id, filter) in [
        (4, "users/bob/#"),
        (5, "public/#"),
        (6, "$share/g/public/+"),
    ] {
        let codes = bob.subscribe(id, filter, QoS::AtLeastOnce).await;
        assert_eq!(codes, [ReasonCode::GrantedQoS1], "{filter}");
    }
}

#[tokio::test]
async fn v5_a_denied_publish_is_answered_0x87_and_goes_nowhere() {
    let (broker, _dir) = broker().await;
    let mut alice = raw_v5(&broker, "a5", "alice").await;
    alice.subscribe(1, "public/#", QoS::AtLeastOnce).await;
    let mut bob = raw_v5(&broker, "b5", "bob").await;

    bob.send(Packet::Publish(raw::publish(
        "public/news",
        QoS::AtLeastOnce,
        1,
        b"from bob",
    )))
    .await;
    match bob.expect_packet().await {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::NotAuthorized),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    bob.send(Packet::Publish(raw::publish(
        "public/news",
        QoS::ExactlyOnce,
        2,
        b"from bob",
    )))
    .await;
    match bob.expect_packet().await {
        Packet::PubRec(rec) => assert_eq!(rec.reason_code, ReasonCode::NotAuthorized),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    // QoS 0 has no answer: dropped.
    bob.send(Packet::Publish(raw::publish(
        "public/news",
        QoS::AtMostOnce,
        0,
        b"bob, QoS 0",
    )))
    .await;
    bob.ping().await;

    alice
        .send(Packet::Publish(raw::publish(
            "public/news",
            QoS::AtLeastOnce,
            7,
            b"from alice",
        )))
        .await;
    let got = loop {
        match alice.expect_packet().await {
            Packet::Publish(publish) => break publish,
            Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::Success),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        &got.payload[..],
        b"from alice",
        "bob's publishes never arrived"
    );
}

#[tokio::test]
async fn deliveries_are_checked_too_a_wide_subscription_does_not_bring_denied_topics() {
    use rumqttc::v5::mqttbytes::QoS;
    let (broker, _dir) = broker().await;
    let (mut bob, _) = v5::connect_with(v5_user(&broker, "b5", "bob")).await;
    bob.subscribe("public/#", QoS::AtLeastOnce).await;
    let (mut alice, _) = v5::connect_with(v5_user(&broker, "a5", "alice")).await;
    alice
        .publish_acked("public/secret", QoS::AtLeastOnce, false, "hidden")
        .await;
    alice
        .publish_acked("public/open", QoS::AtLeastOnce, false, "seen")
        .await;
    let got = bob.next_publish().await;
    assert_eq!(v5::topic(&got), "public/open");
}

#[tokio::test]
async fn v311_denied_subscriptions_fail_and_denied_publishes_are_dropped() {
    use rumqttc::{QoS, SubscribeReasonCode as Code};
    let (broker, _dir) = broker().await;
    let (mut bob, _) = v3::connect_with(v3_user(&broker, "b3", "bob")).await;
    assert_eq!(
        bob.subscribe("users/alice/#", QoS::AtLeastOnce).await,
        Code::Failure
    );
    assert_eq!(
        bob.subscribe("public/#", QoS::AtLeastOnce).await,
        Code::Success(QoS::AtLeastOnce)
    );
    let (mut alice, _) = v3::connect_with(v3_user(&broker, "a3", "alice")).await;
    alice.subscribe("users/alice/#", QoS::AtLeastOnce).await;
    // MQTT 3 cannot say no to a publish: bob's is acknowledged and dropped.
    bob.publish_acked("users/alice/inbox", QoS::AtLeastOnce, false, "from bob")
        .await;
    alice
        .publish_acked("users/alice/inbox", QoS::AtLeastOnce, false, "from alice")
        .await;
    let got = alice.next_publish().await;
    assert_eq!(&got.payload[..], b"from alice");
}

#[tokio::test]
async fn a_will_on_a_denied_topic_is_refused_at_connect() {
    use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, LastWill};
    use rumqttc::v5::mqttbytes::QoS;
    let (broker, _dir) = broker().await;
    let mut options = v5_user(&broker, "b5", "bob");
    options.set_last_will(LastWill::new(
        "public/obituary",
        "gone",
        QoS::AtLeastOnce,
        false,
        None,
    ));
    let refused = tokio::time::timeout(Duration::from_secs(10), v5::refused(options))
        .await
        .expect("CONNACK in time");
    assert_eq!(refused, ConnectReturnCode::NotAuthorized);
}
