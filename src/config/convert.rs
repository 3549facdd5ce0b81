//! The settings of each layer a configuration feeds: the session and the broker core (with
//! the durable state's limits), and the transports' TLS and WebSocket settings.

use std::time::Duration;

use crate::broker::BrokerConfig;
use crate::codec::QoS;
use crate::session::SessionConfig;
use crate::state::{OverflowPolicy, StateConfig};
use crate::transport::{ClientAuth, TlsSettings, WsConfig};

use super::{Config, Overflow, TlsConfig};

impl TlsConfig {
    /// The transport layer's TLS settings.
    pub fn settings(&self) -> TlsSettings {
        let client_auth = match (&self.client_ca, self.require_client_cert) {
            (None, _) => ClientAuth::Off,
            (Some(ca_path), false) => ClientAuth::Optional {
                ca_path: ca_path.clone(),
            },
            (Some(ca_path), true) => ClientAuth::Required {
                ca_path: ca_path.clone(),
            },
        };
        TlsSettings {
            cert_chain_path: self.cert.clone(),
            key_path: self.key.clone(),
            client_auth,
        }
    }
}

impl From<Overflow> for OverflowPolicy {
    fn from(overflow: Overflow) -> OverflowPolicy {
        match overflow {
            Overflow::DropNew => OverflowPolicy::DropNew,
            Overflow::DropOldest => OverflowPolicy::DropOldest,
        }
    }
}

impl From<OverflowPolicy> for Overflow {
    fn from(policy: OverflowPolicy) -> Overflow {
        match policy {
            OverflowPolicy::DropNew => Overflow::DropNew,
            OverflowPolicy::DropOldest => Overflow::DropOldest,
        }
    }
}

impl Config {
    /// The session layer's limits. Expects a validated configuration; a `maximum_qos` above
    /// 2 is read as 2.
    pub fn session_config(&self) -> SessionConfig {
        let mqtt = &self.mqtt;
        SessionConfig {
            packet_size_max: mqtt.packet_size_max,
            topic_alias_max: mqtt.topic_alias_max,
            receive_maximum: mqtt.receive_maximum,
            keep_alive_max_secs: mqtt.keep_alive_max_secs,
            session_expiry_max_secs: mqtt.session_expiry_max_secs,
            maximum_qos: QoS::from_bits(mqtt.maximum_qos.min(2))
                .expect("0, 1 and 2 are QoS levels"),
            retain_available: mqtt.retain_available,
            client_id_len_max: mqtt.client_id_len_max,
            subscriptions_max: mqtt.subscriptions_max,
            subscription_bytes_max: mqtt.subscription_bytes_max,
            node_subscription_bytes_max: mqtt.node_subscription_bytes_max,
            topic_levels_max: mqtt.topic_levels_max,
            publish_rate_max: mqtt.publish_rate_max,
        }
    }

    /// The broker core's limits, the durable state's included.
    pub fn broker_config(&self) -> BrokerConfig {
        let mqtt = &self.mqtt;
        BrokerConfig {
            inflight_max: mqtt.inflight_max,
            receive_maximum: mqtt.receive_maximum,
            state: StateConfig {
                queue_max: mqtt.queue_max,
                queue_bytes_max: mqtt.queue_bytes_max,
                overflow: mqtt.overflow.into(),
                retained_max: mqtt.retained_max,
            },
        }
    }

    /// TLS settings for the TLS and WSS listeners, when `[tls]` is configured.
    pub fn tls_settings(&self) -> Option<TlsSettings> {
        self.tls.as_ref().map(TlsConfig::settings)
    }

    /// WebSocket settings: a message may hold the largest accepted packet.
    pub fn ws_config(&self) -> WsConfig {
        let packet_size_max =
            usize::try_from(self.mqtt.packet_size_max).expect("u32 fits in usize");
        WsConfig {
            message_size_max: packet_size_max.max(WsConfig::default().message_size_max),
            ..WsConfig::default()
        }
    }

    /// [`MqttConfig::connect_timeout_secs`](super::MqttConfig::connect_timeout_secs) as a
    /// duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.mqtt.connect_timeout_secs.into())
    }
}
