//! What the broker allows a connection: the limits it enforces and announces in CONNACK.

use crate::codec::QoS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest packet accepted from a client, fixed header included (announced as Maximum
    /// Packet Size in MQTT 5).
    pub packet_size_max: u32,
    /// Most topic aliases a client may set up (Topic Alias Maximum).
    pub topic_alias_max: u16,
    /// Most QoS 2 publishes a client may have awaiting PUBREL (Receive Maximum).
    pub receive_maximum: u16,
    /// Longest keep-alive a client may ask for; 0 leaves it to the client. An MQTT 5 client
    /// asking for more (or for none) is told this value as Server Keep Alive.
    pub keep_alive_max_secs: u16,
    /// Longest session expiry granted; also the expiry of MQTT 3 persistent sessions.
    /// `u32::MAX` means sessions never expire.
    pub session_expiry_max_secs: u32,
    /// Highest QoS accepted from and granted to clients.
    pub maximum_qos: QoS,
    pub retain_available: bool,
    /// Longest client id accepted; MQTT 3.1 caps it at 23 whatever this says.
    pub client_id_len_max: usize,
    /// Most subscriptions one session may hold; a SUBSCRIBE beyond it gets 0x97 Quota
    /// exceeded (MQTT 3: 0x80) for the filters that do not fit.
    pub subscriptions_max: usize,
    /// Most bytes of topic filters one session may hold; a SUBSCRIBE beyond it gets 0x97
    /// Quota exceeded (MQTT 3: 0x80) for the filters that do not fit.
    pub subscription_bytes_max: usize,
    /// Most bytes of topic filters the node holds over every session (a node holds every
    /// durable session of its cluster): beyond it the same refusal.
    pub node_subscription_bytes_max: usize,
    /// Most levels in a topic name or filter: a PUBLISH beyond it is refused with 0x90 Topic
    /// Name invalid (QoS 0 and MQTT 3: dropped), a filter with 0x8F Topic Filter invalid.
    pub topic_levels_max: usize,
    /// Most PUBLISH packets per second from one client, with a burst of one second's worth
    /// (a token bucket); a client beyond it is disconnected (MQTT 5: 0x96 Message rate too
    /// high). 0: no limit.
    pub publish_rate_max: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            packet_size_max: 1024 * 1024,
            topic_alias_max: 64,
            receive_maximum: 256,
            keep_alive_max_secs: 0,
            session_expiry_max_secs: u32::MAX,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            client_id_len_max: 256,
            subscriptions_max: 10_000,
            subscription_bytes_max: 1024 * 1024,
            node_subscription_bytes_max: 256 * 1024 * 1024,
            topic_levels_max: 128,
            publish_rate_max: 0,
        }
    }
}
