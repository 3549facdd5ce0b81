//! End to end over real sockets with an independent client (rumqttc): QoS 0/1/2 in MQTT
//! 3.1.1 and 5.

use crate::common;

use std::time::Duration;

use common::TestBroker;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

async fn collect_publishes(
    eventloop: &mut rumqttc::EventLoop,
    count: usize,
) -> Vec<(String, Vec<u8>, QoS)> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while got.len() < count {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await.expect("poll") {
                got.push((p.topic.clone(), p.payload.to_vec(), p.qos));
            }
        }
    })
    .await
    .expect("publishes arrive in time");
    got
}

#[tokio::test]
async fn v311_qos_0_1_2_are_delivered_in_order() {
    let broker = TestBroker::start_default().await;
    let mut sub_opts = MqttOptions::new("sub", "127.0.0.1", broker.port());
    sub_opts.set_keep_alive(Duration::from_secs(30));
    let (sub, mut sub_loop) = AsyncClient::new(sub_opts, 100);
    sub.subscribe("t/#", QoS::ExactlyOnce).await.unwrap();
    // Wait for the SUBACK before publishing.
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = sub_loop.poll().await.unwrap() {
                break;
            }
        }
    })
    .await
    .unwrap();

    let (publisher, mut pub_loop) =
        AsyncClient::new(MqttOptions::new("pub", "127.0.0.1", broker.port()), 100);
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publisher
            .publish(format!("t/{i}"), qos, false, vec![i as u8])
            .await
            .unwrap();
    }
    let got = collect_publishes(&mut sub_loop, 3).await;
    assert_eq!(
        got,
        vec![
            ("t/0".into(), vec![0], QoS::AtMostOnce),
            ("t/1".into(), vec![1], QoS::AtLeastOnce),
            ("t/2".into(), vec![2], QoS::ExactlyOnce),
        ]
    );
}

#[tokio::test]
async fn v5_qos_0_1_2_are_delivered() {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{AsyncClient as Client5, Event as E5, MqttOptions as O5};

    let broker = TestBroker::start_default().await;
    let (sub, mut sub_loop) = Client5::new(O5::new("sub5", "127.0.0.1", broker.port()), 100);
    sub.subscribe("v5/+", Q5::ExactlyOnce).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let E5::Incoming(P5::SubAck(_)) = sub_loop.poll().await.unwrap() {
                break;
            }
        }
    })
    .await
    .unwrap();
    let (publisher, mut pub_loop) = Client5::new(O5::new("pub5", "127.0.0.1", broker.port()), 100);
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    for (i, qos) in [Q5::AtMostOnce, Q5::AtLeastOnce, Q5::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publisher
            .publish(format!("v5/{i}"), qos, false, vec![i as u8])
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while got.len() < 3 {
            if let E5::Incoming(P5::Publish(p)) = sub_loop.poll().await.unwrap() {
                got.push((
                    String::from_utf8(p.topic.to_vec()).unwrap(),
                    p.payload.to_vec(),
                    p.qos,
                ));
            }
        }
    })
    .await
    .expect("publishes arrive in time");
    assert_eq!(
        got,
        vec![
            ("v5/0".into(), vec![0], Q5::AtMostOnce),
            ("v5/1".into(), vec![1], Q5::AtLeastOnce),
            ("v5/2".into(), vec![2], Q5::ExactlyOnce),
        ]
    );
}
