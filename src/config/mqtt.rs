//! `[mqtt]`: protocol limits and features.

use serde::{Deserialize, Serialize};

use crate::broker::BrokerConfig;
use crate::codec::{FIELD_LEN_MAX, PACKET_SIZE_LIMIT};
use crate::session::SessionConfig;

use super::{ensure, Config, InvalidConfig};

/// Smallest packet any MQTT version can send (PINGREQ, DISCONNECT: two bytes), so the least
/// `packet_size_max` that lets a client talk at all.
pub const PACKET_SIZE_MIN: u32 = 2;

/// Every server must accept client ids of 1 to 23 characters ([MQTT-3.1.3-5]).
pub const CLIENT_ID_LEN_REQUIRED: usize = 23;

/// `[mqtt]`: protocol limits and features. The defaults are those of [`SessionConfig`],
/// [`BrokerConfig`] and [`StateConfig`](crate::state::StateConfig).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Largest packet accepted from a client, fixed header included, in bytes (announced as
    /// Maximum Packet Size in MQTT 5). 2 to 268435460. Default 1048576 (1 MiB).
    pub packet_size_max: u32,
    /// Most topic aliases a client may set up (Topic Alias Maximum); 0 turns aliases off.
    /// Default 64.
    pub topic_alias_max: u16,
    /// Most QoS 2 publishes a client may have awaiting PUBREL (our Receive Maximum). At least
    /// 1. Default 256.
    pub receive_maximum: u16,
    /// Longest keep-alive a client may ask for, in seconds; 0 leaves it to the client. An MQTT
    /// 5 client asking for more is told this value as Server Keep Alive. Default 0.
    pub keep_alive_max_secs: u16,
    /// Longest session expiry granted, in seconds; also the expiry of MQTT 3 persistent
    /// sessions. 4294967295 means sessions never expire. Default 4294967295.
    pub session_expiry_max_secs: u32,
    /// Highest QoS accepted from and granted to clients: 0, 1 or 2. Default 2.
    pub maximum_qos: u8,
    /// Whether clients may publish retained messages. Default `true`.
    pub retain_available: bool,
    /// Longest client id accepted, in bytes; at least 23 (every server must accept 23).
    /// MQTT 3.1 clients are held to 23 whatever this says. Default 256.
    pub client_id_len_max: usize,
    /// Most QoS 1/2 messages in flight to one client, whatever Receive Maximum it allows. At
    /// least 1. Default 256.
    pub inflight_max: u16,
    /// Most QoS 1/2 messages one session may hold, queued plus in flight. At least 1.
    /// Default 1000.
    pub queue_max: usize,
    /// Most payload plus topic bytes the messages of one session may add up to, queued plus
    /// in flight; `overflow` decides what goes when a message would take a session past it.
    /// At least `packet_size_max`, so that any message a client may publish fits. Every node
    /// of a cluster must agree on it. Default 67108864 (64 MiB).
    pub queue_bytes_max: usize,
    /// What happens to a message for a full session queue: `"drop_new"` drops the new message
    /// (as Mosquitto does), `"drop_oldest"` drops the oldest one not yet half-way through
    /// QoS 2. Default `"drop_new"`.
    pub overflow: Overflow,
    /// Seconds a new connection has to send CONNECT (TLS and WebSocket handshakes included)
    /// before it is closed. At least 1. Default 10.
    pub connect_timeout_secs: u32,
    /// Most client connections the node holds at once, over all listeners; more are closed
    /// as they are accepted. At least 1. Default 100000.
    pub connections_max: u32,
    /// Seconds between `$SYS/broker/...` updates; 0 turns `$SYS` topics off. Default 10.
    pub sys_interval_secs: u32,
    /// Most subscriptions one session may hold; beyond it SUBSCRIBE gets 0x97 Quota exceeded
    /// (MQTT 3: 0x80). At least 1. Default 10000.
    pub subscriptions_max: usize,
    /// Most bytes of topic filters one session may hold; beyond it SUBSCRIBE gets 0x97 for
    /// the filters that do not fit. At least 65535 (one longest filter). Default 1048576.
    pub subscription_bytes_max: usize,
    /// Most bytes of topic filters this node holds over every session (it holds every
    /// durable session of its cluster); beyond it the same refusal. At least
    /// `subscription_bytes_max`. Default 268435456 (256 MiB).
    pub node_subscription_bytes_max: usize,
    /// Most levels in a topic name or filter; beyond it a PUBLISH gets 0x90 Topic Name
    /// invalid (QoS 0 and MQTT 3: dropped), a filter 0x8F Topic Filter invalid. At least 1.
    /// Default 128.
    pub topic_levels_max: usize,
    /// Most PUBLISH packets per second from one client (burst: one second's worth); beyond
    /// it the client is disconnected (MQTT 5: 0x96 Message rate too high). 0: no limit.
    /// Default 0.
    pub publish_rate_max: u32,
    /// Most new connections accepted per second, per listener; beyond it accepting waits (the
    /// kernel's backlog holds the rest). 0: no limit. Default 0.
    pub connection_rate_max: u32,
    /// Seconds a client has to finish a packet it has started sending; a connection that
    /// trickles a packet slower than that (slow loris) is closed. At least 1. Default 30.
    pub packet_timeout_secs: u32,
    /// Most retained messages the cluster keeps; a retained publish to a topic without one
    /// beyond it gets 0x97 Quota exceeded (MQTT 3 and QoS 0: dropped). At least 1. Every node
    /// of a cluster must agree on it. Default 1000000.
    pub retained_max: usize,
}

impl Default for MqttConfig {
    fn default() -> MqttConfig {
        let session = SessionConfig::default();
        let broker = BrokerConfig::default();
        MqttConfig {
            packet_size_max: session.packet_size_max,
            topic_alias_max: session.topic_alias_max,
            receive_maximum: session.receive_maximum,
            keep_alive_max_secs: session.keep_alive_max_secs,
            session_expiry_max_secs: session.session_expiry_max_secs,
            maximum_qos: session.maximum_qos as u8,
            retain_available: session.retain_available,
            client_id_len_max: session.client_id_len_max,
            inflight_max: broker.inflight_max,
            queue_max: broker.state.queue_max,
            queue_bytes_max: broker.state.queue_bytes_max,
            overflow: broker.state.overflow.into(),
            connect_timeout_secs: 10,
            connections_max: 100_000,
            sys_interval_secs: 10,
            subscriptions_max: session.subscriptions_max,
            subscription_bytes_max: session.subscription_bytes_max,
            node_subscription_bytes_max: session.node_subscription_bytes_max,
            topic_levels_max: session.topic_levels_max,
            publish_rate_max: session.publish_rate_max,
            connection_rate_max: 0,
            packet_timeout_secs: 30,
            retained_max: broker.state.retained_max,
        }
    }
}

/// What to drop when a session's queue is full (the config-file face of
/// [`OverflowPolicy`](crate::state::OverflowPolicy)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Keep the queue, drop the new message.
    #[default]
    DropNew,
    /// Drop the oldest message not yet half-way through QoS 2.
    DropOldest,
}

impl Config {
    /// `[mqtt]`: every limit within what MQTT and the other limits allow.
    pub(super) fn validate_mqtt(&self) -> Result<(), InvalidConfig> {
        let mqtt = &self.mqtt;
        let size_max = u32::try_from(PACKET_SIZE_LIMIT).expect("the MQTT limit fits in u32");
        ensure(
            (PACKET_SIZE_MIN..=size_max).contains(&mqtt.packet_size_max),
            "mqtt.packet_size_max",
            || {
                format!(
                    "{} is not within {PACKET_SIZE_MIN}..={size_max}",
                    mqtt.packet_size_max
                )
            },
        )?;
        ensure(mqtt.receive_maximum > 0, "mqtt.receive_maximum", || {
            "must be at least 1 (MQTT 5 forbids 0)".to_owned()
        })?;
        ensure(mqtt.maximum_qos <= 2, "mqtt.maximum_qos", || {
            format!("{} is not 0, 1 or 2", mqtt.maximum_qos)
        })?;
        ensure(
            (CLIENT_ID_LEN_REQUIRED..=FIELD_LEN_MAX).contains(&mqtt.client_id_len_max),
            "mqtt.client_id_len_max",
            || {
                format!(
                    "{} is not within {CLIENT_ID_LEN_REQUIRED}..={FIELD_LEN_MAX} \
                     (every server must accept 23)",
                    mqtt.client_id_len_max
                )
            },
        )?;
        ensure(mqtt.inflight_max > 0, "mqtt.inflight_max", || {
            "must be at least 1".to_owned()
        })?;
        ensure(mqtt.queue_max > 0, "mqtt.queue_max", || {
            "must be at least 1".to_owned()
        })?;
        // A smaller bound would drop every message near the largest size a client may send.
        ensure(
            mqtt.queue_bytes_max >= mqtt.packet_size_max as usize,
            "mqtt.queue_bytes_max",
            || {
                format!(
                    "{} is less than mqtt.packet_size_max ({})",
                    mqtt.queue_bytes_max, mqtt.packet_size_max
                )
            },
        )?;
        for (name, value) in [
            ("mqtt.subscriptions_max", mqtt.subscriptions_max),
            ("mqtt.topic_levels_max", mqtt.topic_levels_max),
            ("mqtt.retained_max", mqtt.retained_max),
            (
                "mqtt.packet_timeout_secs",
                mqtt.packet_timeout_secs as usize,
            ),
        ] {
            ensure(value > 0, name, || "must be at least 1".to_owned())?;
        }
        ensure(
            mqtt.subscription_bytes_max >= FIELD_LEN_MAX,
            "mqtt.subscription_bytes_max",
            || format!("must be at least {FIELD_LEN_MAX} (one longest topic filter)"),
        )?;
        ensure(
            mqtt.node_subscription_bytes_max >= mqtt.subscription_bytes_max,
            "mqtt.node_subscription_bytes_max",
            || "must be at least mqtt.subscription_bytes_max".to_owned(),
        )?;
        ensure(
            mqtt.connect_timeout_secs > 0,
            "mqtt.connect_timeout_secs",
            || "must be at least 1".to_owned(),
        )?;
        ensure(mqtt.connections_max > 0, "mqtt.connections_max", || {
            "must be at least 1".to_owned()
        })
    }
}
