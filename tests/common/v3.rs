//! MQTT 3.1.1 clients (rumqttc's `rumqttc::*`) against a [`TestBroker`].

use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnAck, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions,
    Packet, Publish, QoS, SubscribeFilter, SubscribeReasonCode,
};

use super::driven::{Driven, Flavor, EVENT_BACKLOG_MAX};
use super::{within, TestBroker};

/// The rumqttc types of MQTT 3.1.1.
pub struct V3;

impl Flavor for V3 {
    type Event = Event;
    type Packet = Packet;
    type Error = ConnectionError;

    fn incoming(event: Event) -> Option<Packet> {
        match event {
            Event::Incoming(packet) => Some(packet),
            Event::Outgoing(_) => None,
        }
    }
}

/// A connected MQTT 3.1.1 client.
pub type Client = Driven<V3, AsyncClient>;

/// Options for `client_id` on `broker`: clean session, a keep-alive that never fires during a
/// test.
pub fn options(broker: &TestBroker, client_id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", broker.port());
    options.set_keep_alive(Duration::from_secs(60));
    options
}

/// Options for a persistent session (clean session 0).
pub fn persistent(broker: &TestBroker, client_id: &str) -> MqttOptions {
    let mut options = options(broker, client_id);
    options.set_clean_session(false);
    options
}

/// Connects with clean session; fails the test unless the broker accepts.
pub async fn connect(broker: &TestBroker, client_id: &str) -> Client {
    connect_with(options(broker, client_id)).await.0
}

/// Connects with `options`; fails the test unless the broker accepts.
pub async fn connect_with(options: MqttOptions) -> (Client, ConnAck) {
    let id = options.client_id();
    try_connect(options)
        .await
        .unwrap_or_else(|error| panic!("{id} could not connect: {error}"))
}

/// Connects with `options`; `Err` when the broker refuses or closes.
pub async fn try_connect(options: MqttOptions) -> Result<(Client, ConnAck), ConnectionError> {
    let (client, eventloop, connack) = connect_idle(options).await?;
    Ok((drive(client, eventloop), connack))
}

/// Connects without polling afterwards: the client stays connected but silent (no pings)
/// until the caller polls `EventLoop` again or passes it to [`drive`].
pub async fn connect_idle(
    options: MqttOptions,
) -> Result<(AsyncClient, EventLoop, ConnAck), ConnectionError> {
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let connack = within("CONNACK", async {
        match eventloop.poll().await? {
            Event::Incoming(Packet::ConnAck(connack)) => Ok::<_, ConnectionError>(connack),
            other => panic!("expected CONNACK first, got {other:?}"),
        }
    })
    .await?;
    assert_eq!(connack.code, ConnectReturnCode::Success);
    Ok((client, eventloop, connack))
}

/// Polls `eventloop` in the background until its first error.
pub fn drive(client: AsyncClient, mut eventloop: EventLoop) -> Client {
    let (tx, rx) = tokio::sync::mpsc::channel(EVENT_BACKLOG_MAX);
    let task = tokio::spawn(async move {
        loop {
            let event = eventloop.poll().await;
            let failed = event.is_err();
            if tx.send(event).await.is_err() || failed {
                return;
            }
        }
    });
    Driven::new(client, rx, task)
}

impl Driven<V3, AsyncClient> {
    /// Subscribes to one filter and returns the SUBACK's code for it.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubscribeReasonCode {
        self.subscribe_many(&[(filter, qos)]).await[0]
    }

    /// Subscribes to several filters in one SUBSCRIBE; returns the SUBACK's codes.
    pub async fn subscribe_many(&mut self, filters: &[(&str, QoS)]) -> Vec<SubscribeReasonCode> {
        let filters: Vec<SubscribeFilter> = filters
            .iter()
            .map(|(path, qos)| SubscribeFilter::new(path.to_string(), *qos))
            .collect();
        self.client
            .subscribe_many(filters)
            .await
            .expect("subscribe");
        self.expect("SUBACK", |p| match p {
            Packet::SubAck(suback) => Some(suback.return_codes.clone()),
            _ => None,
        })
        .await
    }

    /// Unsubscribes and waits for the UNSUBACK.
    pub async fn unsubscribe(&mut self, filter: &str) {
        self.client.unsubscribe(filter).await.expect("unsubscribe");
        self.expect("UNSUBACK", |p| {
            matches!(p, Packet::UnsubAck(_)).then_some(())
        })
        .await
    }

    /// Hands a PUBLISH to the event loop (which sends it in order with earlier requests).
    pub async fn publish(&self, topic: &str, qos: QoS, retain: bool, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, qos, retain, payload)
            .await
            .expect("publish request");
    }

    /// Publishes at QoS 1 or 2 and waits for the flow to complete (PUBACK or PUBCOMP). Once
    /// this returns the broker has routed the message.
    pub async fn publish_acked(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) {
        self.publish(topic, qos, retain, payload).await;
        match qos {
            QoS::AtMostOnce => panic!("a QoS 0 publish is not acknowledged"),
            QoS::AtLeastOnce => {
                self.expect("PUBACK", |p| matches!(p, Packet::PubAck(_)).then_some(()))
                    .await
            }
            QoS::ExactlyOnce => {
                self.expect("PUBCOMP", |p| matches!(p, Packet::PubComp(_)).then_some(()))
                    .await
            }
        }
    }

    /// The next PUBLISH received.
    pub async fn next_publish(&mut self) -> Publish {
        self.expect("PUBLISH", |p| match p {
            Packet::Publish(publish) => Some(publish.clone()),
            _ => None,
        })
        .await
    }

    /// The next `count` PUBLISHes received, in order.
    pub async fn publishes(&mut self, count: usize) -> Vec<Publish> {
        let mut got = Vec::with_capacity(count);
        while got.len() < count {
            got.push(self.next_publish().await);
        }
        got
    }

    /// The PUBLISHes received before the first one on `barrier_topic` (which is consumed).
    /// Everything a broker sends this client before the barrier message arrives first, so
    /// this is how a test shows that something was *not* delivered.
    pub async fn publishes_until(&mut self, barrier_topic: &str) -> Vec<Publish> {
        let mut got = Vec::new();
        loop {
            let publish = self.next_publish().await;
            if publish.topic == barrier_topic {
                return got;
            }
            got.push(publish);
        }
    }

    /// Acknowledges a PUBLISH received with manual acks.
    pub async fn ack(&self, publish: &Publish) {
        self.client.ack(publish).await.expect("ack request");
    }

    /// Sends DISCONNECT and waits until the broker has closed the connection, so it has
    /// processed the DISCONNECT.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.expect("disconnect request");
        self.closed().await;
    }
}

/// `(topic, payload, qos, retain)` of a publish, for compact assertions.
pub fn summary(publish: &Publish) -> (String, Vec<u8>, QoS, bool) {
    (
        publish.topic.clone(),
        publish.payload.to_vec(),
        publish.qos,
        publish.retain,
    )
}

/// `(topic, payload)` of each publish.
pub fn topics_payloads(publishes: &[Publish]) -> Vec<(String, Vec<u8>)> {
    publishes
        .iter()
        .map(|p| (p.topic.clone(), p.payload.to_vec()))
        .collect()
}
