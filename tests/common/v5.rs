//! MQTT 5 clients (rumqttc's `rumqttc::v5::*`) against a [`TestBroker`].
//!
//! rumqttc 0.24 cannot read a DISCONNECT that carries a reason code but no property length
//! (remaining length 1, which MQTT 5 §3.14.2.2.1 allows and Keel sends): it reports the
//! connection as closed by the peer. Tests that check the reason of a DISCONNECT from the
//! broker therefore read it with the raw client.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, Filter, Packet, Publish, PublishProperties, SubscribeProperties,
    SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};

use super::driven::{Driven, Flavor, EVENT_BACKLOG_MAX};
use super::{within, TestBroker};

/// The rumqttc types of MQTT 5.
pub struct V5;

impl Flavor for V5 {
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

/// A connected MQTT 5 client.
pub type Client = Driven<V5, AsyncClient>;

/// Options for `client_id` on `broker`: clean start, session expiry 0, and rumqttc's default
/// keep-alive of 60 s (which never fires during a test).
pub fn options(broker: &TestBroker, client_id: &str) -> MqttOptions {
    MqttOptions::new(client_id, "127.0.0.1", broker.port())
}

/// Options for a session that outlives its connection by `expiry_secs`, resumed if present
/// (clean start 0).
pub fn persistent(broker: &TestBroker, client_id: &str, expiry_secs: u32) -> MqttOptions {
    let mut options = options(broker, client_id);
    options.set_clean_start(false);
    let mut properties = options.connect_properties().unwrap_or_default();
    properties.session_expiry_interval = Some(expiry_secs);
    options.set_connect_properties(properties);
    options
}

/// Connects with clean start; fails the test unless the broker accepts.
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

/// The reason code of a refused CONNECT; fails the test if the broker accepts.
pub async fn refused(options: MqttOptions) -> ConnectReturnCode {
    match try_connect(options).await {
        Err(ConnectionError::ConnectionRefused(code)) => code,
        Err(other) => panic!("expected a refusing CONNACK, got {other}"),
        Ok((_, connack)) => panic!("expected a refusal, got {connack:?}"),
    }
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

impl Driven<V5, AsyncClient> {
    /// Subscribes to one filter at `qos` with default options; returns the SUBACK's code.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubscribeReasonCode {
        self.subscribe_filters(vec![Filter::new(filter, qos)], None)
            .await[0]
    }

    /// Subscribes to `filters` in one SUBSCRIBE, with a subscription identifier if given;
    /// returns the SUBACK's codes.
    pub async fn subscribe_filters(
        &mut self,
        filters: Vec<Filter>,
        identifier: Option<usize>,
    ) -> Vec<SubscribeReasonCode> {
        let request = match identifier {
            Some(id) => {
                let properties = SubscribeProperties {
                    id: Some(id),
                    user_properties: Vec::new(),
                };
                self.client
                    .subscribe_many_with_properties(filters, properties)
                    .await
            }
            None => self.client.subscribe_many(filters).await,
        };
        request.expect("subscribe request");
        self.expect("SUBACK", |p| match p {
            Packet::SubAck(suback) => Some(suback.return_codes.clone()),
            _ => None,
        })
        .await
    }

    /// Unsubscribes and waits for a successful UNSUBACK.
    pub async fn unsubscribe(&mut self, filter: &str) {
        self.client.unsubscribe(filter).await.expect("unsubscribe");
        self.expect("UNSUBACK", |p| {
            matches!(p, Packet::UnsubAck(_)).then_some(())
        })
        .await
    }

    /// Hands a PUBLISH to the event loop (which sends it in order with earlier requests).
    pub async fn publish(&self, topic: &str, qos: QoS, retain: bool, payload: impl Into<Bytes>) {
        self.client
            .publish(topic, qos, retain, payload)
            .await
            .expect("publish request");
    }

    /// Like [`Driven::publish`], with properties.
    pub async fn publish_with(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Bytes>,
        properties: PublishProperties,
    ) {
        self.client
            .publish_with_properties(topic, qos, retain, payload, properties)
            .await
            .expect("publish request");
    }

    /// Waits for the acknowledgement that ends the flow of the QoS 1 or 2 publish just sent
    /// (PUBACK or PUBCOMP). Once it arrives the broker has routed the message.
    pub async fn acked(&mut self, qos: QoS) {
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

    /// Publishes at QoS 1 or 2 and waits for the flow to complete.
    pub async fn publish_acked(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Bytes>,
    ) {
        self.publish(topic, qos, retain, payload).await;
        self.acked(qos).await
    }

    /// The next PUBLISH received (its topic resolved if it came with a topic alias).
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
    pub async fn publishes_until(&mut self, barrier_topic: &str) -> Vec<Publish> {
        let mut got = Vec::new();
        loop {
            let publish = self.next_publish().await;
            if topic(&publish) == barrier_topic {
                return got;
            }
            got.push(publish);
        }
    }

    /// Acknowledges a PUBLISH received with manual acks.
    pub async fn ack(&self, publish: &Publish) {
        self.client.ack(publish).await.expect("ack request");
    }

    /// Sends DISCONNECT (normal disconnection) and waits until the broker has closed the
    /// connection, so it has processed the DISCONNECT.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.expect("disconnect request");
        self.closed().await;
    }
}

/// The topic of a publish as text.
pub fn topic(publish: &Publish) -> &str {
    std::str::from_utf8(&publish.topic).expect("UTF-8 topic")
}

/// `(topic, payload, qos, retain)` of a publish, for compact assertions.
pub fn summary(publish: &Publish) -> (String, Vec<u8>, QoS, bool) {
    (
        topic(publish).to_string(),
        publish.payload.to_vec(),
        publish.qos,
        publish.retain,
    )
}

/// `(topic, payload)` of each publish.
pub fn topics_payloads(publishes: &[Publish]) -> Vec<(String, Vec<u8>)> {
    publishes
        .iter()
        .map(|p| (topic(p).to_string(), p.payload.to_vec()))
        .collect()
}

/// The properties of a publish (empty when it had none).
pub fn properties(publish: &Publish) -> PublishProperties {
    publish.properties.clone().unwrap_or_default()
}
