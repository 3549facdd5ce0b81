//! Retained messages over real sockets: kept per topic and sent with RETAIN to new
//! subscribers, replaced by a newer one, deleted by an empty payload, sent at the lower of
//! their QoS and the subscription's, and delivered live to existing subscribers with RETAIN
//! clear ([MQTT-3.3.1-5] to [MQTT-3.3.1-12]).
//!
//! "Nothing more was sent" is shown with a barrier: a live message published after the
//! subscription, which the broker sends after anything the subscription itself caused.

use crate::common;

use common::{v3, v5, TestBroker};

use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::QoS as Q3;

const BARRIER: &str = "barrier";

/// What a new v3 subscriber to `filter` at `qos` receives because of its subscription.
async fn v3_retained_for(
    broker: &TestBroker,
    publisher: &v3::Client,
    filter: &str,
    qos: Q3,
) -> Vec<rumqttc::Publish> {
    let mut sub = v3::connect(broker, "newcomer").await;
    sub.subscribe_many(&[(filter, qos), (BARRIER, Q3::AtMostOnce)])
        .await;
    publisher.publish(BARRIER, Q3::AtMostOnce, false, "").await;
    sub.publishes_until(BARRIER).await
}

/// What a new v5 subscriber to `filter` at `qos` receives because of its subscription.
async fn v5_retained_for(
    broker: &TestBroker,
    publisher: &v5::Client,
    filter: &str,
    qos: Q5,
) -> Vec<rumqttc::v5::mqttbytes::v5::Publish> {
    use rumqttc::v5::mqttbytes::v5::Filter;
    let mut sub = v5::connect(broker, "newcomer").await;
    sub.subscribe_filters(
        vec![
            Filter::new(filter, qos),
            Filter::new(BARRIER, Q5::AtMostOnce),
        ],
        None,
    )
    .await;
    publisher.publish(BARRIER, Q5::AtMostOnce, false, "").await;
    sub.publishes_until(BARRIER).await
}

#[tokio::test]
async fn v3_retained_message_is_sent_to_a_new_subscriber_with_retain_set() {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish_acked("r/t", Q3::AtLeastOnce, true, "kept")
        .await;
    let got = v3_retained_for(&broker, &publisher, "r/t", Q3::AtLeastOnce).await;
    assert_eq!(
        got.iter().map(v3::summary).collect::<Vec<_>>(),
        vec![("r/t".into(), b"kept".to_vec(), Q3::AtLeastOnce, true)]
    );
}

#[tokio::test]
async fn v5_retained_message_is_sent_to_a_new_subscriber_with_retain_set() {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("r/t", Q5::AtLeastOnce, true, "kept")
        .await;
    let got = v5_retained_for(&broker, &publisher, "r/t", Q5::AtLeastOnce).await;
    assert_eq!(
        got.iter().map(v5::summary).collect::<Vec<_>>(),
        vec![("r/t".into(), b"kept".to_vec(), Q5::AtLeastOnce, true)]
    );
}

#[tokio::test]
async fn v3_retained_publish_reaches_existing_subscribers_with_retain_clear() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v3::connect(&broker, "early").await;
    sub.subscribe("r/t", Q3::AtLeastOnce).await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish_acked("r/t", Q3::AtLeastOnce, true, "live")
        .await;
    // [MQTT-3.3.1-9]: RETAIN is 0 on a message sent because of an existing subscription.
    assert_eq!(
        v3::summary(&sub.next_publish().await),
        ("r/t".into(), b"live".to_vec(), Q3::AtLeastOnce, false)
    );
}

#[tokio::test]
async fn v5_retained_publish_reaches_existing_subscribers_with_retain_clear() {
    let broker = TestBroker::start_quiet().await;
    let mut sub = v5::connect(&broker, "early").await;
    sub.subscribe("r/t", Q5::AtLeastOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("r/t", Q5::AtLeastOnce, true, "live")
        .await;
    // Retain As Published is 0 by default.
    assert_eq!(
        v5::summary(&sub.next_publish().await),
        ("r/t".into(), b"live".to_vec(), Q5::AtLeastOnce, false)
    );
}

#[tokio::test]
async fn v3_newer_retained_message_replaces_the_older_one() {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish_acked("r/t", Q3::AtLeastOnce, true, "old")
        .await;
    publisher
        .publish_acked("r/t", Q3::AtLeastOnce, true, "new")
        .await;
    // A non-retained publish leaves the retained message alone.
    publisher
        .publish_acked("r/t", Q3::AtLeastOnce, false, "passing")
        .await;
    let got = v3_retained_for(&broker, &publisher, "r/t", Q3::AtLeastOnce).await;
    assert_eq!(
        v3::topics_payloads(&got),
        vec![("r/t".to_string(), b"new".to_vec())]
    );
}

#[tokio::test]
async fn v5_newer_retained_message_replaces_the_older_one() {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("r/t", Q5::AtLeastOnce, true, "old")
        .await;
    publisher
        .publish_acked("r/t", Q5::AtLeastOnce, true, "new")
        .await;
    publisher
        .publish_acked("r/t", Q5::AtLeastOnce, false, "passing")
        .await;
    let got = v5_retained_for(&broker, &publisher, "r/t", Q5::AtLeastOnce).await;
    assert_eq!(
        v5::topics_payloads(&got),
        vec![("r/t".to_string(), b"new".to_vec())]
    );
}

#[tokio::test]
async fn v3_empty_retained_payload_deletes_the_retained_message_and_is_still_delivered() {
    let broker = TestBroker::start_quiet().await;
    let mut early = v3::connect(&broker, "early").await;
    early.subscribe("r/t", Q3::AtLeastOnce).await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish_acked("r/t", Q3::AtLeastOnce, true, "doomed")
        .await;
    publisher
        .publish_acked("r/t", Q3::AtLeastOnce, true, "")
        .await;
    assert_eq!(broker.inspect(|b| b.state().retained().count()), 0);
    // [MQTT-3.3.1-10]: the empty message goes to existing subscribers as usual.
    let got = early.publishes(2).await;
    assert_eq!(
        v3::topics_payloads(&got),
        vec![
            ("r/t".to_string(), b"doomed".to_vec()),
            ("r/t".to_string(), Vec::new())
        ]
    );
    // [MQTT-3.3.1-11]: and nothing is retained for new subscribers.
    assert!(v3_retained_for(&broker, &publisher, "r/t", Q3::AtLeastOnce)
        .await
        .is_empty());
}

#[tokio::test]
async fn v5_empty_retained_payload_deletes_the_retained_message_and_is_still_delivered() {
    let broker = TestBroker::start_quiet().await;
    let mut early = v5::connect(&broker, "early").await;
    early.subscribe("r/t", Q5::AtLeastOnce).await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("r/t", Q5::AtLeastOnce, true, "doomed")
        .await;
    publisher
        .publish_acked("r/t", Q5::AtLeastOnce, true, "")
        .await;
    assert_eq!(broker.inspect(|b| b.state().retained().count()), 0);
    let got = early.publishes(2).await;
    assert_eq!(
        v5::topics_payloads(&got),
        vec![
            ("r/t".to_string(), b"doomed".to_vec()),
            ("r/t".to_string(), Vec::new())
        ]
    );
    assert!(v5_retained_for(&broker, &publisher, "r/t", Q5::AtLeastOnce)
        .await
        .is_empty());
}

#[tokio::test]
async fn v3_retained_message_is_sent_at_the_lower_of_its_qos_and_the_subscription_qos() {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v3::connect(&broker, "pub").await;
    publisher
        .publish_acked("r/two", Q3::ExactlyOnce, true, "2")
        .await;
    publisher.publish("r/zero", Q3::AtMostOnce, true, "0").await;
    publisher
        .publish_acked("r/sync", Q3::AtLeastOnce, false, "")
        .await;
    let got = v3_retained_for(&broker, &publisher, "r/+", Q3::AtLeastOnce).await;
    let mut got: Vec<_> = got
        .iter()
        .map(|p| (p.topic.clone(), p.qos, p.retain))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("r/two".to_string(), Q3::AtLeastOnce, true),
            ("r/zero".to_string(), Q3::AtMostOnce, true),
        ]
    );
}

#[tokio::test]
async fn v5_retained_message_is_sent_at_the_lower_of_its_qos_and_the_subscription_qos() {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v5::connect(&broker, "pub").await;
    publisher
        .publish_acked("r/two", Q5::ExactlyOnce, true, "2")
        .await;
    publisher.publish("r/zero", Q5::AtMostOnce, true, "0").await;
    publisher
        .publish_acked("r/sync", Q5::AtLeastOnce, false, "")
        .await;
    let got = v5_retained_for(&broker, &publisher, "r/+", Q5::AtLeastOnce).await;
    let mut got: Vec<_> = got
        .iter()
        .map(|p| (v5::topic(p).to_string(), p.qos, p.retain))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("r/two".to_string(), Q5::AtLeastOnce, true),
            ("r/zero".to_string(), Q5::AtMostOnce, true),
        ]
    );
}

#[tokio::test]
async fn v3_wildcard_subscription_receives_every_matching_retained_message() {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v3::connect(&broker, "pub").await;
    for topic in ["home/kitchen", "home/attic/dust", "office/desk"] {
        publisher
            .publish_acked(topic, Q3::AtLeastOnce, true, topic)
            .await;
    }
    let got = v3_retained_for(&broker, &publisher, "home/#", Q3::AtLeastOnce).await;
    let mut topics: Vec<String> = got.iter().map(|p| p.topic.clone()).collect();
    topics.sort();
    assert_eq!(topics, vec!["home/attic/dust", "home/kitchen"]);
}

#[tokio::test]
async fn v5_wildcard_subscription_receives_every_matching_retained_message() {
    let broker = TestBroker::start_quiet().await;
    let mut publisher = v5::connect(&broker, "pub").await;
    for topic in ["home/kitchen", "home/attic/dust", "office/desk"] {
        publisher
            .publish_acked(topic, Q5::AtLeastOnce, true, topic)
            .await;
    }
    let got = v5_retained_for(&broker, &publisher, "home/+", Q5::AtLeastOnce).await;
    let topics: Vec<&str> = got.iter().map(v5::topic).collect();
    assert_eq!(topics, vec!["home/kitchen"]);
}
