//! The broker's configuration: the TOML file (`keel serve --config FILE`), its defaults, its
//! validation, and the per-layer settings it turns into ([`SessionConfig`], [`BrokerConfig`],
//! [`TlsSettings`], [`WsConfig`]).
//!
//! Every table rejects unknown keys, so a misspelt option is an error rather than a silently
//! ignored line. Every key may be left out and then takes its default; `keel.example.toml` at
//! the repository root lists them all (a test keeps it equal to [`Config::default`]).
//!
//! Listener addresses are `"IP:PORT"` strings; the empty string `""` turns that listener off
//! (the same convention on the command line: `--ws-listen ""`).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::broker::BrokerConfig;
use crate::codec::{QoS, FIELD_LEN_MAX, PACKET_SIZE_LIMIT};
use crate::session::SessionConfig;
use crate::state::{OverflowPolicy, StateConfig};
use crate::transport::{ClientAuth, TlsSettings, WsConfig};

pub use crate::net::HostPort;

/// What a printed configuration shows instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Smallest packet any MQTT version can send (PINGREQ, DISCONNECT: two bytes), so the least
/// `packet_size_max` that lets a client talk at all.
pub const PACKET_SIZE_MIN: u32 = 2;

/// Every server must accept client ids of 1 to 23 characters ([MQTT-3.1.3-5]).
pub const CLIENT_ID_LEN_REQUIRED: usize = 23;

/// The whole configuration of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's id in the cluster; the `ID` of its own `ID@HOST:PORT` entry in
    /// `cluster.peers`. Default 1.
    pub node_id: u64,
    /// Where the node keeps its durable state (Raft log, snapshots). Default `./keel-data`.
    pub data_dir: PathBuf,
    /// The addresses the node listens on.
    pub listeners: ListenersConfig,
    /// Certificate and key for the TLS and WSS listeners; without this table those listeners
    /// are not started. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// MQTT limits and features.
    pub mqtt: MqttConfig,
    /// Who may connect.
    pub auth: AuthConfig,
    /// Raft cluster membership.
    pub cluster: ClusterConfig,
    /// How the durable state is stored and synced.
    pub durability: DurabilityConfig,
    /// Who may use the admin HTTP API.
    pub admin: AdminConfig,
}

/// `[admin]`: credentials for the admin HTTP API (`listeners.http`), and what the client
/// traces it starts may hold. Without credentials, the API is open to whoever reaches its
/// address, so it may only listen on loopback (the node warns at start-up).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// A secret to send as `Authorization: Bearer KEY` or `X-API-Key: KEY`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Users of `[auth] password_file` who may use HTTP basic auth. Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Most clients traced at once (`POST /api/v1/trace/{client_id}`). At least 1.
    /// Default 16.
    pub trace_clients_max: usize,
    /// Most events kept per traced client; older ones make room for newer. At least 1.
    /// Default 1000.
    pub trace_events_max: usize,
    /// Most connections the admin listener holds at once. At the cap the connection idle
    /// longest is closed to make room; only when every one has a request in flight is the
    /// new one closed. At least 1. Default 256.
    pub connections_max: usize,
    /// Seconds a request's head may take to arrive; a connection idle that long between
    /// requests is closed too. 1 to 300. Default 10.
    pub header_timeout_secs: u32,
    /// Seconds a request may take from its head to its answer (a membership change waits for
    /// the new node to catch up). 1 to 3600. Default 60.
    pub request_timeout_secs: u32,
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        let trace = crate::server::trace::TraceLimits::default();
        AdminConfig {
            api_key: None,
            users: Vec::new(),
            trace_clients_max: trace.clients_max,
            trace_events_max: trace.events_max,
            connections_max: 256,
            header_timeout_secs: 10,
            request_timeout_secs: 60,
        }
    }
}

impl AdminConfig {
    /// Whether anything guards the API (an API key or users).
    pub fn has_credentials(&self) -> bool {
        self.api_key.is_some() || !self.users.is_empty()
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("users", &self.users)
            .field("trace_clients_max", &self.trace_clients_max)
            .field("trace_events_max", &self.trace_events_max)
            .field("connections_max", &self.connections_max)
            .field("header_timeout_secs", &self.header_timeout_secs)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .finish()
    }
}

/// `[durability]`: where the Raft log and snapshots live and when writes reach the disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DurabilityConfig {
    /// When log writes are synced (fsync) before messages are acknowledged. Default `batch`.
    pub sync: SyncMode,
    /// Under `sync = "batch"`: how long the flusher waits after the first unsynced write to
    /// gather more into one fsync (0: sync at once; writes arriving during a sync share the
    /// next one anyway). Default 0, at most 100.
    pub batch_window_ms: u64,
    /// `rocksdb` (in `data_dir`) or `memory` (nothing survives a restart: for tests and
    /// benchmarks of the protocol alone). Default `rocksdb`.
    pub store: StoreKind,
    /// Log entries between snapshots; the log before a snapshot is deleted. Default 10000.
    pub snapshot_every: u64,
}

impl Default for DurabilityConfig {
    fn default() -> DurabilityConfig {
        DurabilityConfig {
            sync: SyncMode::Batch,
            batch_window_ms: 0,
            store: StoreKind::Rocksdb,
            snapshot_every: 10_000,
        }
    }
}

/// `durability.sync`: what a crash or power loss may cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// fsync before every acknowledgement: nothing acknowledged is lost even on power loss;
    /// the slowest.
    Always,
    /// fsync in groups shared by concurrent writes, still before any acknowledgement:
    /// nothing acknowledged is lost even on power loss; near `none` under load.
    #[default]
    Batch,
    /// Never fsync: a process crash loses nothing (the OS has the writes), a power loss or
    /// kernel crash can lose acknowledged messages.
    None,
}

/// `durability.store`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    #[default]
    Rocksdb,
    Memory,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            node_id: 1,
            data_dir: PathBuf::from("./keel-data"),
            listeners: ListenersConfig::default(),
            tls: None,
            mqtt: MqttConfig::default(),
            auth: AuthConfig::default(),
            cluster: ClusterConfig::default(),
            durability: DurabilityConfig::default(),
            admin: AdminConfig::default(),
        }
    }
}

/// `[listeners]`: one address per kind of listener (`""` turns a listener off), and for each
/// MQTT listener a cap on its connections (`0`: only `mqtt.connections_max` applies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenersConfig {
    /// MQTT over TCP. Default `0.0.0.0:1883`.
    #[serde(with = "listen_addr")]
    pub tcp: Option<SocketAddr>,
    /// MQTT over WebSocket, upgraded on path `/mqtt` only. Default `0.0.0.0:8083`.
    #[serde(with = "listen_addr")]
    pub ws: Option<SocketAddr>,
    /// The admin HTTP API and `/metrics`. Default `127.0.0.1:18083`: an address that other
    /// hosts reach needs `[admin]` credentials (validation refuses it otherwise).
    #[serde(with = "listen_addr")]
    pub http: Option<SocketAddr>,
    /// MQTT over TLS; started only when `[tls]` is configured. Default `0.0.0.0:8883`.
    #[serde(with = "listen_addr")]
    pub tls: Option<SocketAddr>,
    /// MQTT over WebSocket over TLS (path `/mqtt`); started only when `[tls]` is configured.
    /// Default `0.0.0.0:8084`.
    #[serde(with = "listen_addr")]
    pub wss: Option<SocketAddr>,
    /// Most connections the `tcp` listener holds at once; more are closed as they are
    /// accepted, as beyond `mqtt.connections_max`. 0: no cap of its own. Default 0.
    pub tcp_connections_max: u32,
    /// The same for the `ws` listener. Default 0.
    pub ws_connections_max: u32,
    /// The same for the `tls` listener. Default 0.
    pub tls_connections_max: u32,
    /// The same for the `wss` listener. Default 0.
    pub wss_connections_max: u32,
    /// Every connection to the `tcp` listener starts with a PROXY protocol header (v1 or v2,
    /// from a load balancer); the client address it names is the one authentication, the
    /// ACL, traces and logs see. A connection without one, or with a malformed one, is
    /// closed and counted. Default `false`.
    pub tcp_proxy_protocol: bool,
    /// The same for the `tls` listener (the header comes before the TLS handshake).
    /// Default `false`.
    pub tls_proxy_protocol: bool,
}

impl ListenersConfig {
    /// A `*_connections_max` value as a cap: `None` for 0, which means no cap of its own.
    pub fn cap(connections_max: u32) -> Option<usize> {
        (connections_max > 0).then_some(connections_max as usize)
    }
}

impl Default for ListenersConfig {
    fn default() -> ListenersConfig {
        let any = |port| Some(SocketAddr::from(([0, 0, 0, 0], port)));
        ListenersConfig {
            tcp: any(1883),
            ws: any(8083),
            http: Some(SocketAddr::from(([127, 0, 0, 1], 18083))),
            tls: any(8883),
            wss: any(8084),
            tcp_connections_max: 0,
            ws_connections_max: 0,
            tls_connections_max: 0,
            wss_connections_max: 0,
            tcp_proxy_protocol: false,
            tls_proxy_protocol: false,
        }
    }
}

/// `[tls]`: the server's certificate for the TLS and WSS listeners, and client certificates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate first, then any intermediates. Required.
    pub cert: PathBuf,
    /// PEM file with the private key of that certificate (PKCS#8, PKCS#1 or SEC1). Required.
    pub key: PathBuf,
    /// PEM file with the CAs that client certificates must chain to. When set, clients may
    /// present a certificate and it is verified. Default: none (clients are not asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Refuse TLS clients that present no certificate; needs `client_ca`. Default `false`.
    #[serde(default)]
    pub require_client_cert: bool,
    /// Take the name in a verified client certificate (subject CN, else the first DNS or
    /// e-mail SAN) as the client's user name, for the ACL's `%u` and `user` rules; such a
    /// client is authenticated by its certificate and no password is checked (Mosquitto's
    /// `use_identity_as_username`). Needs `client_ca`. Default `false`.
    #[serde(default)]
    pub use_identity_as_username: bool,
}

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

/// `[mqtt]`: protocol limits and features. The defaults are those of [`SessionConfig`],
/// [`BrokerConfig`] and [`StateConfig`].
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

/// What to drop when a session's queue is full (the config-file face of [`OverflowPolicy`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Keep the queue, drop the new message.
    #[default]
    DropNew,
    /// Drop the oldest message not yet half-way through QoS 2.
    DropOldest,
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

/// `[auth]`: who may connect. The rules are those of [`crate::auth::PasswordAuth`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Accept clients that send no user name. Default `true`.
    pub allow_anonymous: bool,
    /// Password file (`username:argon2 hash` lines, written by `keel passwd`); when set, a
    /// client that sends a user name must be in it and give the right password. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// ACL file (TOML rules, see `crate::auth::Acl`): who may publish and subscribe to which
    /// topics. Default: none (every client may use every topic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_file: Option<PathBuf>,
    /// What an ACL decides when no rule applies: `"deny"` (the default: what is not granted
    /// is refused) or `"allow"`.
    pub acl_no_match: crate::auth::Permission,
    /// The order in which the configured methods are asked, each allowing, denying or
    /// passing to the next: names among `"password_file"`, `"jwt"`, `"http"`, each configured.
    /// Default (empty): every configured method, in that order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<AuthMethodName>,
    /// JSON Web Tokens as passwords. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
    /// An HTTP service that decides. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpAuthConfig>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            allow_anonymous: true,
            password_file: None,
            acl_file: None,
            acl_no_match: crate::auth::Permission::Deny,
            chain: Vec::new(),
            jwt: None,
            http: None,
        }
    }
}

impl AuthConfig {
    /// The methods to ask, in order: `chain`, or every configured one.
    pub fn chain(&self) -> Vec<AuthMethodName> {
        if !self.chain.is_empty() {
            return self.chain.clone();
        }
        let configured = [
            (AuthMethodName::PasswordFile, self.password_file.is_some()),
            (AuthMethodName::Jwt, self.jwt.is_some()),
            (AuthMethodName::Http, self.http.is_some()),
        ];
        configured
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect()
    }

    fn is_configured(&self, name: AuthMethodName) -> bool {
        match name {
            AuthMethodName::PasswordFile => self.password_file.is_some(),
            AuthMethodName::Jwt => self.jwt.is_some(),
            AuthMethodName::Http => self.http.is_some(),
        }
    }
}

/// A method of `[auth] chain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethodName {
    PasswordFile,
    Jwt,
    Http,
}

/// `[auth.jwt]`: clients present a JWT signed by the operator's issuer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Shared secret of HS256 tokens. Exactly one of `secret` and `public_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// PEM file with the RSA public key of RS256 tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// Where the token is: `"password"` (default) or `"username"`.
    #[serde(default)]
    pub from: JwtFrom,
    /// Seconds of clock skew allowed on `exp` and `nbf`. Default 30.
    #[serde(default = "JwtConfig::default_leeway")]
    pub leeway_secs: u64,
    /// The `iss` claim tokens must carry. Default: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The `aud` claim tokens must carry. Default: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl JwtConfig {
    fn default_leeway() -> u64 {
        30
    }
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .field("public_key_file", &self.public_key_file)
            .field("from", &self.from)
            .field("leeway_secs", &self.leeway_secs)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// `[auth.jwt] from`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JwtFrom {
    #[default]
    Password,
    Username,
}

/// `[auth.http]`: an HTTP service decides (see `crate::server::HttpHook` for the request and
/// the answers).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAuthConfig {
    /// `http://HOST[:PORT]/PATH` to POST to. Required.
    pub url: String,
    /// Milliseconds to wait for an answer; none in time counts as `ignore`. Default 5000.
    #[serde(default = "HttpAuthConfig::default_timeout")]
    pub timeout_ms: u64,
    /// Seconds an allow or deny answer is reused; 0 asks every time. Default 60.
    #[serde(default = "HttpAuthConfig::default_cache_ttl")]
    pub cache_ttl_secs: u64,
    /// Most answers cached. Default 10000.
    #[serde(default = "HttpAuthConfig::default_cache_max")]
    pub cache_max: usize,
    /// Extra request headers (e.g. `Authorization`). Default: none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
}

impl HttpAuthConfig {
    fn default_timeout() -> u64 {
        5000
    }
    fn default_cache_ttl() -> u64 {
        60
    }
    fn default_cache_max() -> usize {
        10_000
    }
}

/// Header values may be secrets.
impl fmt::Debug for HttpAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAuthConfig")
            .field("url", &self.url)
            .field("timeout_ms", &self.timeout_ms)
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .field("cache_max", &self.cache_max)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `[cluster]`: Raft membership and the node's cluster listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Address the node listens on for its peers (Raft and forwarding RPCs). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The initial voters, this node included, as `"ID@HOST:PORT"`. Empty (the default)
    /// runs a cluster of one. Excludes `join`.
    pub peers: Vec<Peer>,
    /// `"HOST:PORT"` of a node of a running cluster to join, instead of starting one with
    /// `peers`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<HostPort>,
    /// Where the other nodes reach this one. Default: this node's entry in `peers`, else
    /// `listen` (which must then not be an unspecified address such as 0.0.0.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<HostPort>,
    /// A node that has not answered the leader for this long is declared gone: the clients
    /// it served are disconnected in the cluster's state (their wills published, their
    /// expiry started) so that they can resume elsewhere. Default 30.
    pub node_down_secs: u32,
    /// Serve the cluster listener without TLS (any host that reaches it can join and call
    /// its RPCs). Needed for a cluster listener without `tls`. Default `false`.
    pub insecure: bool,
    /// Mutual TLS between the nodes; needed with a cluster listener unless `insecure`.
    /// Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClusterTlsConfig>,
}

/// `[cluster.tls]`: the cluster CA and this node's certificate (`keel cert`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTlsConfig {
    /// PEM file with the cluster CA's certificate. Required.
    pub ca: PathBuf,
    /// PEM file with this node's certificate, which names its node id. Required.
    pub cert: PathBuf,
    /// PEM file with that certificate's private key. Required.
    pub key: PathBuf,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            listen: None,
            peers: Vec::new(),
            join: None,
            advertise: None,
            node_down_secs: 30,
            insecure: false,
            tls: None,
        }
    }
}

impl ClusterConfig {
    /// Whether the node runs in a cluster (has a cluster listener).
    pub fn enabled(&self) -> bool {
        self.listen.is_some()
    }

    /// Where the other nodes reach `node_id`, if it can be told.
    pub fn advertised(&self, node_id: u64) -> Option<String> {
        if let Some(addr) = &self.advertise {
            return Some(addr.to_string());
        }
        if let Some(peer) = self.peers.iter().find(|p| p.id == node_id) {
            return Some(peer.addr.to_string());
        }
        self.listen
            .filter(|a| !a.ip().is_unspecified())
            .map(|a| a.to_string())
    }
}

/// One initial voter: `ID@HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Peer {
    /// The peer's `node_id`.
    pub id: u64,
    /// Where its peers reach it.
    pub addr: HostPort,
}

impl FromStr for Peer {
    type Err = String;

    fn from_str(text: &str) -> Result<Peer, String> {
        let bad = |why: String| format!("invalid peer {text:?}: {why} (expected ID@HOST:PORT)");
        let (id, addr) = text
            .split_once('@')
            .ok_or_else(|| bad("no '@'".to_owned()))?;
        let id = id
            .parse()
            .map_err(|_| bad(format!("the id {id:?} is not a number")))?;
        let addr = addr.parse().map_err(bad)?;
        Ok(Peer { id, addr })
    }
}

impl TryFrom<String> for Peer {
    type Error = String;
    fn try_from(text: String) -> Result<Peer, String> {
        text.parse()
    }
}

impl From<Peer> for String {
    fn from(peer: Peer) -> String {
        peer.to_string()
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}

/// Parses a listener address: `"IP:PORT"`, or `""` for a listener that is off.
pub fn parse_listen_addr(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        format!(
            "invalid listen address {text:?}: expected IP:PORT such as 0.0.0.0:1883, \
             or \"\" to turn the listener off"
        )
    })
}

/// Serde for a listener address, `""` meaning off (TOML has no null).
mod listen_addr {
    use std::net::SocketAddr;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match addr {
            Some(addr) => s.collect_str(addr),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_listen_addr(&text).map_err(D::Error::custom)
    }
}

/// A configuration that could not be loaded. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    /// Not TOML, or not our keys and types; the message has the line and column.
    #[error("config file {}: {error}", path.display())]
    Parse {
        path: PathBuf,
        error: Box<toml::de::Error>,
    },
    #[error("config file {}: {error}", path.display())]
    Invalid { path: PathBuf, error: InvalidConfig },
}

/// A configuration whose values are well-typed but not acceptable together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {problem}")]
pub struct InvalidConfig {
    /// Dotted path of the offending key, e.g. `mqtt.receive_maximum`.
    pub field: &'static str,
    /// What is wrong with it, with the value.
    pub problem: String,
}

/// `Err(InvalidConfig)` unless `ok`.
fn ensure(
    ok: bool,
    field: &'static str,
    problem: impl FnOnce() -> String,
) -> Result<(), InvalidConfig> {
    if ok {
        Ok(())
    } else {
        Err(InvalidConfig {
            field,
            problem: problem(),
        })
    }
}

impl Config {
    /// Reads, parses and validates the TOML file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let config = Config::read(path)?;
        config.validate().map_err(|error| ConfigError::Invalid {
            path: path.to_owned(),
            error,
        })?;
        Ok(config)
    }

    /// Reads and parses the TOML file at `path` without validating it, for callers that
    /// change it before validating (command-line overrides).
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Config::from_toml(&text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            error: Box::new(error),
        })
    }

    /// Parses a TOML document, without validating it.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// The configuration as a TOML document ending in a newline, every key included except
    /// unset optional ones. Fails only on a path that is not UTF-8 (possible from a
    /// command-line flag, never from a TOML file).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let mut text = toml::to_string(self)?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }

    /// The configuration with every secret (the admin API key, the JWT secret, the HTTP
    /// hook's header values) replaced by [`REDACTED`], for printing.
    pub fn redacted(&self) -> Config {
        let hidden = || REDACTED.to_owned();
        let mut config = self.clone();
        if config.admin.api_key.is_some() {
            config.admin.api_key = Some(hidden());
        }
        if let Some(jwt) = config.auth.jwt.as_mut().filter(|jwt| jwt.secret.is_some()) {
            jwt.secret = Some(hidden());
        }
        if let Some(http) = config.auth.http.as_mut() {
            http.headers
                .values_mut()
                .for_each(|value| *value = hidden());
        }
        config
    }

    /// Checks what the types cannot: ranges, formats, and options that must go together.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        ensure(!self.data_dir.as_os_str().is_empty(), "data_dir", || {
            "must not be empty".to_owned()
        })?;
        self.validate_listeners()?;
        if let Some(http) = self.listeners.http {
            ensure(
                http.ip().is_loopback() || self.admin.has_credentials(),
                "listeners.http",
                || {
                    format!(
                        "{http} can be reached from other hosts and [admin] sets no api_key or \
                         users: anyone there could change the cluster and its data. Set \
                         credentials, or listen on a loopback address such as 127.0.0.1:{}",
                        http.port()
                    )
                },
            )?;
        }
        ensure(
            self.admin.users.is_empty() || self.auth.password_file.is_some(),
            "admin.users",
            || "needs [auth] password_file, which holds their passwords".to_owned(),
        )?;
        ensure(
            self.admin.api_key.as_ref().is_none_or(|k| k.len() >= 16),
            "admin.api_key",
            || "must be at least 16 characters".to_owned(),
        )?;
        for (field, value) in [
            ("admin.trace_clients_max", self.admin.trace_clients_max),
            ("admin.trace_events_max", self.admin.trace_events_max),
            ("admin.connections_max", self.admin.connections_max),
        ] {
            ensure(value > 0, field, || "must be at least 1".to_owned())?;
        }
        for (field, value, max) in [
            (
                "admin.header_timeout_secs",
                self.admin.header_timeout_secs,
                300,
            ),
            (
                "admin.request_timeout_secs",
                self.admin.request_timeout_secs,
                3600,
            ),
        ] {
            ensure((1..=max).contains(&value), field, || {
                format!("{value} is not within 1..={max}")
            })?;
        }
        ensure(
            self.durability.batch_window_ms <= 100,
            "durability.batch_window_ms",
            || "must be at most 100 (milliseconds added to every acknowledgement)".to_owned(),
        )?;
        ensure(
            self.durability.snapshot_every > 0,
            "durability.snapshot_every",
            || "must be at least 1".to_owned(),
        )?;
        if let Some(tls) = &self.tls {
            ensure(!tls.cert.as_os_str().is_empty(), "tls.cert", || {
                "must not be empty".to_owned()
            })?;
            ensure(!tls.key.as_os_str().is_empty(), "tls.key", || {
                "must not be empty".to_owned()
            })?;
            ensure(
                tls.client_ca.is_some() || !tls.require_client_cert,
                "tls.require_client_cert",
                || "needs tls.client_ca, the CAs to verify client certificates with".to_owned(),
            )?;
            ensure(
                tls.client_ca.is_some() || !tls.use_identity_as_username,
                "tls.use_identity_as_username",
                || "needs tls.client_ca, the CAs to verify client certificates with".to_owned(),
            )?;
        }
        self.validate_mqtt()?;
        self.validate_auth()?;
        self.validate_cluster()
    }

    fn validate_auth(&self) -> Result<(), InvalidConfig> {
        let auth = &self.auth;
        let certificates = self
            .tls
            .as_ref()
            .is_some_and(|tls| tls.use_identity_as_username);
        ensure(
            auth.allow_anonymous || !auth.chain().is_empty() || certificates,
            "auth.allow_anonymous",
            || {
                "is false but no authentication method (password_file, jwt, http) is set, so \
                 no client could connect"
                    .to_owned()
            },
        )?;
        for (i, name) in auth.chain.iter().enumerate() {
            ensure(auth.is_configured(*name), "auth.chain", || {
                format!("names {name:?}, which is not configured")
            })?;
            ensure(!auth.chain[..i].contains(name), "auth.chain", || {
                format!("names {name:?} twice")
            })?;
        }
        if let Some(jwt) = &auth.jwt {
            ensure(
                jwt.secret.as_ref().is_some_and(|s| !s.is_empty()) != jwt.public_key_file.is_some(),
                "auth.jwt",
                || "needs exactly one of secret (HS256) and public_key_file (RS256)".to_owned(),
            )?;
        }
        if let Some(http) = &auth.http {
            ensure(http.url.starts_with("http://"), "auth.http.url", || {
                "must be an http:// URL (for https, a TLS proxy on the same host)".to_owned()
            })?;
            ensure(http.timeout_ms > 0, "auth.http.timeout_ms", || {
                "must be at least 1".to_owned()
            })?;
        }
        Ok(())
    }

    fn validate_listeners(&self) -> Result<(), InvalidConfig> {
        let listeners = &self.listeners;
        let (tls, wss) = (self.tls_listener(), self.wss_listener());
        let mqtt = [listeners.tcp, listeners.ws, tls, wss];
        ensure(mqtt.iter().any(Option::is_some), "listeners", || {
            "no MQTT listener is on (tcp, ws, or tls/wss with [tls] configured)".to_owned()
        })?;
        let mut bound: Vec<(&'static str, SocketAddr)> = Vec::new();
        let all = [
            ("listeners.tcp", listeners.tcp),
            ("listeners.ws", listeners.ws),
            ("listeners.http", listeners.http),
            ("listeners.tls", tls),
            ("listeners.wss", wss),
            ("cluster.listen", self.cluster.listen),
        ];
        for (field, addr) in all {
            let Some(addr) = addr else { continue };
            if let Some((other, _)) = bound.iter().find(|(_, a)| collide(*a, addr)) {
                return Err(InvalidConfig {
                    field,
                    problem: format!("{addr} is also the address of {other}"),
                });
            }
            bound.push((field, addr));
        }
        Ok(())
    }

    fn validate_mqtt(&self) -> Result<(), InvalidConfig> {
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

    fn validate_cluster(&self) -> Result<(), InvalidConfig> {
        let cluster = &self.cluster;
        ensure(
            cluster.peers.is_empty() || cluster.join.is_none(),
            "cluster.join",
            || "excludes cluster.peers: either start a cluster or join one".to_owned(),
        )?;
        for (i, peer) in cluster.peers.iter().enumerate() {
            let earlier = &cluster.peers[..i];
            ensure(
                !earlier.iter().any(|p| p.id == peer.id),
                "cluster.peers",
                || format!("node id {} is listed twice", peer.id),
            )?;
            ensure(
                !earlier.iter().any(|p| p.addr == peer.addr),
                "cluster.peers",
                || format!("address {} is listed twice", peer.addr),
            )?;
        }
        ensure(
            cluster.peers.is_empty() || cluster.peers.iter().any(|p| p.id == self.node_id),
            "cluster.peers",
            || format!("does not list this node (node_id = {})", self.node_id),
        )?;
        let needs_listener = !cluster.peers.is_empty() || cluster.join.is_some();
        ensure(
            !needs_listener || cluster.listen.is_some(),
            "cluster.listen",
            || "is needed with cluster.peers or cluster.join".to_owned(),
        )?;
        ensure(
            !cluster.enabled() || cluster.advertised(self.node_id).is_some(),
            "cluster.advertise",
            || {
                "is needed: cluster.listen is an unspecified address and cluster.peers does \
                 not list this node"
                    .to_owned()
            },
        )?;
        ensure(
            !cluster.enabled() || cluster.tls.is_some() || cluster.insecure,
            "cluster.tls",
            || {
                "is needed with a cluster listener: peers are authenticated by certificates \
                 of the cluster CA (make them with `keel cert`); set cluster.insecure = true \
                 to run without, letting any host that reaches the listener join"
                    .to_owned()
            },
        )?;
        ensure(
            cluster.tls.is_none() || !cluster.insecure,
            "cluster.insecure",
            || "contradicts [cluster.tls]: keep one".to_owned(),
        )?;
        if let Some(tls) = &cluster.tls {
            for (field, path) in [
                ("cluster.tls.ca", &tls.ca),
                ("cluster.tls.cert", &tls.cert),
                ("cluster.tls.key", &tls.key),
            ] {
                ensure(!path.as_os_str().is_empty(), field, || {
                    "must not be empty".to_owned()
                })?;
            }
        }
        ensure(cluster.node_down_secs > 0, "cluster.node_down_secs", || {
            "must be at least 1".to_owned()
        })
    }

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

    /// What client traces may hold.
    pub fn trace_limits(&self) -> crate::server::trace::TraceLimits {
        crate::server::trace::TraceLimits {
            clients_max: self.admin.trace_clients_max,
            events_max: self.admin.trace_events_max,
        }
    }

    /// The log's sync policy.
    pub fn sync_policy(&self) -> crate::cluster::SyncPolicy {
        use crate::cluster::SyncPolicy;
        match self.durability.sync {
            SyncMode::Always => SyncPolicy::Always,
            SyncMode::Batch => SyncPolicy::Batch {
                window: std::time::Duration::from_millis(self.durability.batch_window_ms),
            },
            SyncMode::None => SyncPolicy::None,
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

    /// [`MqttConfig::connect_timeout_secs`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.mqtt.connect_timeout_secs.into())
    }

    /// The TLS listener's address, when it is on and `[tls]` is configured.
    pub fn tls_listener(&self) -> Option<SocketAddr> {
        self.listeners.tls.filter(|_| self.tls.is_some())
    }

    /// The WSS listener's address, when it is on and `[tls]` is configured.
    pub fn wss_listener(&self) -> Option<SocketAddr> {
        self.listeners.wss.filter(|_| self.tls.is_some())
    }
}

/// Whether two listeners would take the same port: the same port other than 0 (port 0 asks
/// the OS for a free one), on the same IP or where one covers the other: `0.0.0.0` takes the
/// port on every IPv4 address, and `[::]` on every address (Linux binds it dual-stack).
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    let covers =
        |x: SocketAddr, y: SocketAddr| x.ip().is_unspecified() && (x.is_ipv6() || y.is_ipv4());
    let ips_overlap = a.ip() == b.ip() || covers(a, b) || covers(b, a);
    a.port() == b.port() && a.port() != 0 && ips_overlap
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const EXAMPLE: &str = include_str!("../keel.example.toml");

    fn parse(text: &str) -> Config {
        Config::from_toml(text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `problem` of the validation error of `text`, which must parse.
    fn invalid(text: &str) -> InvalidConfig {
        parse(text).validate().expect_err("should be invalid")
    }

    /// A configuration with every optional key set.
    fn full() -> Config {
        parse(
            r#"
            node_id = 2
            [tls]
            cert = "c.pem"
            key = "k.pem"
            client_ca = "ca.pem"
            require_client_cert = true
            use_identity_as_username = true
            [auth]
            password_file = "passwd"
            acl_file = "acl.toml"
            chain = ["jwt", "password_file", "http"]
            [auth.jwt]
            secret = "s"
            issuer = "i"
            audience = "a"
            [auth.http]
            url = "http://h/auth"
            headers = { authorization = "x" }
            [admin]
            api_key = "0123456789abcdef"
            users = ["admin"]
            [cluster]
            listen = "0.0.0.0:7000"
            peers = ["1@a:7000", "2@b:7000", "3@[::1]:7000"]
            [cluster.tls]
            ca = "ca.pem"
            cert = "node-1.pem"
            key = "node-1.key"
            "#,
        )
    }

    /// Dotted paths of every key of a TOML document.
    fn keys(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
        for (key, value) in table {
            let path = format!("{prefix}{key}");
            match value {
                toml::Value::Table(inner) => keys(inner, &format!("{path}."), out),
                _ => {
                    out.insert(path);
                }
            }
        }
    }

    fn key_set(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        keys(&text.parse::<toml::Table>().unwrap(), "", &mut out);
        out
    }

    /// The example with its commented-out settings (`# key = value`, `# [table]`) turned on.
    fn example_uncommented() -> String {
        let is_setting = |line: &str| {
            let table = line.starts_with('[') && line.ends_with(']');
            let key = line.split_once(" = ").is_some_and(|(key, _)| {
                !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            });
            table || key
        };
        let lines = EXAMPLE.lines().map(|line| match line.strip_prefix("# ") {
            Some(setting) if is_setting(setting) => setting,
            _ => line,
        });
        lines.collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn example_file_equals_the_defaults() {
        let example = parse(EXAMPLE);
        assert_eq!(example, Config::default());
        example.validate().unwrap();
    }

    #[test]
    fn example_file_lists_every_option() {
        let uncommented = example_uncommented();
        let config = parse(&uncommented);
        assert!(config.tls.is_some() && config.auth.password_file.is_some());
        assert!(config.cluster.listen.is_some() && config.cluster.join.is_some());
        let in_example = key_set(&uncommented);
        let mut expected = key_set(&full().to_toml().unwrap());
        expected.insert("cluster.join".to_owned());
        expected.insert("cluster.advertise".to_owned());
        // The alternative to `secret` (a valid configuration has one of them).
        expected.insert("auth.jwt.public_key_file".to_owned());
        assert_eq!(in_example, expected);
        assert!(key_set(&Config::default().to_toml().unwrap()).is_subset(&in_example));
    }

    #[test]
    fn defaults_are_those_of_each_layer() {
        let config = Config::default();
        assert_eq!(config.session_config(), SessionConfig::default());
        assert_eq!(config.broker_config(), BrokerConfig::default());
        assert_eq!(config.ws_config(), WsConfig::default());
        assert_eq!(config.connect_timeout(), Duration::from_secs(10));
        assert_eq!(config.mqtt.connections_max, 100_000);
        assert_eq!(config.mqtt.sys_interval_secs, 10);
        assert_eq!(config.node_id, 1);
        assert_eq!(config.data_dir, Path::new("./keel-data"));
        assert!(config.auth.allow_anonymous && config.auth.password_file.is_none());
        assert_eq!(config.tls_settings(), None);
        assert_eq!(config.tls_listener(), None, "TLS listeners need [tls]");
        assert_eq!(config.wss_listener(), None);
        let listeners = &config.listeners;
        assert_eq!(listeners.tcp, Some("0.0.0.0:1883".parse().unwrap()));
        assert_eq!(listeners.ws, Some("0.0.0.0:8083".parse().unwrap()));
        assert_eq!(listeners.http, Some("127.0.0.1:18083".parse().unwrap()));
        assert_eq!(listeners.tls, Some("0.0.0.0:8883".parse().unwrap()));
        assert_eq!(listeners.wss, Some("0.0.0.0:8084".parse().unwrap()));
        config.validate().unwrap();
    }

    #[test]
    fn an_empty_file_is_the_default_configuration() {
        assert_eq!(parse(""), Config::default());
    }

    #[test]
    fn authentication_methods_are_checked() {
        let cases = [
            ("[auth]\nchain = [\"jwt\"]", "auth.chain", "not configured"),
            (
                "[auth]\npassword_file = \"p\"\nchain = [\"password_file\", \"password_file\"]",
                "auth.chain",
                "twice",
            ),
            ("[auth.jwt]\nleeway_secs = 1", "auth.jwt", "exactly one"),
            (
                "[auth.jwt]\nsecret = \"s\"\npublic_key_file = \"k\"",
                "auth.jwt",
                "exactly one",
            ),
            (
                "[auth.http]\nurl = \"https://h/\"",
                "auth.http.url",
                "http://",
            ),
            (
                "[auth.http]\nurl = \"http://h/\"\ntimeout_ms = 0",
                "auth.http.timeout_ms",
                "at least 1",
            ),
            (
                "[auth]\nallow_anonymous = false",
                "auth.allow_anonymous",
                "no authentication method",
            ),
            (
                "[tls]\ncert = \"c\"\nkey = \"k\"\nuse_identity_as_username = true",
                "tls.use_identity_as_username",
                "client_ca",
            ),
        ];
        for (text, field, words) in cases {
            let error = invalid(text);
            assert_eq!(error.field, field, "{text}");
            assert!(error.to_string().contains(words), "{text}: {error}");
        }
        // Any method, or certificates as identities, lets anonymous access be turned off.
        parse("[auth]\nallow_anonymous = false\n[auth.jwt]\nsecret = \"s\"")
            .validate()
            .unwrap();
        let certificates = "[tls]\ncert = \"c\"\nkey = \"k\"\nclient_ca = \"ca\"\n\
                            use_identity_as_username = true\n[auth]\nallow_anonymous = false";
        parse(certificates).validate().unwrap();
        // The default chain: every configured method, file first.
        let both = parse("[auth]\npassword_file = \"p\"\n[auth.http]\nurl = \"http://h/\"");
        assert_eq!(
            both.auth.chain(),
            [AuthMethodName::PasswordFile, AuthMethodName::Http]
        );
        assert_eq!(both.auth.http.unwrap().timeout_ms, 5000);
    }

    /// The configuration reference (docs/configuration.md) names every option of the example
    /// file, each with the default the example gives it (the example is checked against the
    /// defaults above).
    #[test]
    fn reference_documents_every_option() {
        const REFERENCE: &str = include_str!("../docs/configuration.md");
        let reference = REFERENCE
            .split_once("# Configuration reference")
            .expect("docs/configuration.md has a configuration reference")
            .1;
        let example: toml::Table = example_uncommented().parse().unwrap();
        let mut missing = Vec::new();
        for key in key_set(&example_uncommented()) {
            // The headers table holds the operator's own names.
            let key = match key.strip_prefix("auth.http.headers.") {
                Some(_) => "auth.http.headers".to_owned(),
                None => key,
            };
            let named = |line: &&str| {
                let option = line.split('|').nth(1).unwrap_or("");
                option.contains(&format!("`{key}`"))
            };
            let Some(row) = reference.lines().find(named) else {
                missing.push(key);
                continue;
            };
            // A default that the example file sets uncommented must be in the row as given.
            let mut value = Some(toml::Value::Table(example.clone()));
            for part in key.split('.') {
                value = value.and_then(|v| v.get(part).cloned());
            }
            if let Some(value) = value.filter(|_| !key.starts_with("auth.http.headers")) {
                let shown = match &value {
                    toml::Value::Array(a) if a.is_empty() => "[]".to_owned(),
                    other => other.to_string(),
                };
                let commented_out = EXAMPLE.lines().any(|l| {
                    l.starts_with("# ")
                        && l.contains(&format!("{} = ", key.rsplit('.').next().unwrap()))
                });
                if !commented_out {
                    assert!(
                        row.contains(&shown),
                        "docs/configuration.md gives {key} no default {shown}: {row}"
                    );
                }
            }
        }
        assert!(
            missing.is_empty(),
            "docs/configuration.md lacks {missing:?}"
        );
    }

    #[test]
    fn printed_configuration_reads_back_the_same() {
        let full = full();
        full.validate().unwrap();
        assert_eq!(parse(&full.to_toml().unwrap()), full);
        assert_eq!(
            parse(&Config::default().to_toml().unwrap()),
            Config::default()
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key_and_line() {
        let error = Config::from_toml("[mqtt]\nrecieve_maximum = 5\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("recieve_maximum"), "{message}");
        assert!(message.contains("line 2"), "{message}");

        let error = Config::from_toml("[listener]\ntcp = \"\"\n").unwrap_err();
        assert!(error.to_string().contains("listener"), "{error}");
        assert!(Config::from_toml("nodeid = 3").is_err());
        assert!(Config::from_toml("[tls]\ncert = \"c\"\nkey = \"k\"\nca = \"x\"").is_err());
    }

    #[test]
    fn wrong_types_are_errors() {
        assert!(Config::from_toml("[mqtt]\nreceive_maximum = \"ten\"").is_err());
        assert!(Config::from_toml("[mqtt]\nreceive_maximum = 70000").is_err());
        assert!(Config::from_toml("[mqtt]\noverflow = \"drop_all\"").is_err());
        assert!(
            Config::from_toml("[tls]\ncert = \"c.pem\"").is_err(),
            "key is required"
        );
    }

    #[test]
    fn an_empty_listen_address_turns_the_listener_off() {
        let config = parse("[listeners]\nws = \"\"\nhttp = \"\"\ntcp = \"127.0.0.1:11883\"");
        assert_eq!(config.listeners.ws, None);
        assert_eq!(config.listeners.http, None);
        assert_eq!(
            config.listeners.tcp,
            Some("127.0.0.1:11883".parse().unwrap())
        );
        assert!(config.to_toml().unwrap().contains("ws = \"\""));
        assert_eq!(parse(&config.to_toml().unwrap()), config);
    }

    #[test]
    fn a_bad_listen_address_is_an_error_with_its_line() {
        let error = Config::from_toml("[listeners]\ntcp = \"localhost\"").unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("invalid listen address \"localhost\""),
            "{message}"
        );
        assert!(message.contains("line 2"), "{message}");
        assert!(Config::from_toml("[listeners]\ntcp = false").is_err());
    }

    #[test]
    fn overflow_policy_reaches_the_state_config() {
        let config =
            parse("[mqtt]\noverflow = \"drop_oldest\"\nqueue_max = 5\nqueue_bytes_max = 2000000");
        let state = config.broker_config().state;
        assert_eq!(state.overflow, OverflowPolicy::DropOldest);
        assert_eq!((state.queue_max, state.queue_bytes_max), (5, 2_000_000));
    }

    #[test]
    fn mqtt_limits_reach_the_session_and_broker() {
        let config = parse(
            "[mqtt]\npacket_size_max = 4096\nreceive_maximum = 10\nmaximum_qos = 1\n\
             retain_available = false\ninflight_max = 7\nkeep_alive_max_secs = 60",
        );
        let session = config.session_config();
        assert_eq!(session.packet_size_max, 4096);
        assert_eq!(session.receive_maximum, 10);
        assert_eq!(session.maximum_qos, QoS::AtLeastOnce);
        assert!(!session.retain_available);
        assert_eq!(session.keep_alive_max_secs, 60);
        let broker = config.broker_config();
        assert_eq!((broker.inflight_max, broker.receive_maximum), (7, 10));
    }

    #[test]
    fn mqtt_limits_out_of_range_are_invalid() {
        let cases = [
            ("receive_maximum = 0", "mqtt.receive_maximum"),
            ("packet_size_max = 1", "mqtt.packet_size_max"),
            ("packet_size_max = 268435461", "mqtt.packet_size_max"),
            ("maximum_qos = 3", "mqtt.maximum_qos"),
            ("client_id_len_max = 22", "mqtt.client_id_len_max"),
            ("client_id_len_max = 65536", "mqtt.client_id_len_max"),
            ("inflight_max = 0", "mqtt.inflight_max"),
            ("queue_max = 0", "mqtt.queue_max"),
            ("queue_bytes_max = 0", "mqtt.queue_bytes_max"),
            ("queue_bytes_max = 1048575", "mqtt.queue_bytes_max"),
            ("packet_size_max = 268435460", "mqtt.queue_bytes_max"),
            ("connect_timeout_secs = 0", "mqtt.connect_timeout_secs"),
            ("connections_max = 0", "mqtt.connections_max"),
        ];
        for (line, field) in cases {
            assert_eq!(invalid(&format!("[mqtt]\n{line}")).field, field, "{line}");
        }
        for line in [
            "packet_size_max = 2",
            "packet_size_max = 268435460\nqueue_bytes_max = 268435460",
            "queue_bytes_max = 1048576",
            "maximum_qos = 0",
        ] {
            parse(&format!("[mqtt]\n{line}")).validate().unwrap();
        }
    }

    #[test]
    fn tls_settings_follow_client_ca_and_require_client_cert() {
        let tls = |extra: &str| {
            let config = parse(&format!(
                "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n{extra}"
            ));
            config.validate().unwrap();
            config.tls_settings().unwrap()
        };
        let off = tls("");
        assert_eq!(off.cert_chain_path, Path::new("c.pem"));
        assert_eq!(off.key_path, Path::new("k.pem"));
        assert_eq!(off.client_auth, ClientAuth::Off);
        let ca_path = PathBuf::from("ca.pem");
        assert_eq!(
            tls("client_ca = \"ca.pem\"").client_auth,
            ClientAuth::Optional {
                ca_path: ca_path.clone()
            }
        );
        assert_eq!(
            tls("client_ca = \"ca.pem\"\nrequire_client_cert = true").client_auth,
            ClientAuth::Required { ca_path }
        );
        let error = invalid("[tls]\ncert = \"c\"\nkey = \"k\"\nrequire_client_cert = true");
        assert_eq!(error.field, "tls.require_client_cert");
    }

    #[test]
    fn tls_listeners_start_only_with_a_certificate() {
        let config = parse("[tls]\ncert = \"c\"\nkey = \"k\"\n[listeners]\nwss = \"\"");
        assert_eq!(config.tls_listener(), Some("0.0.0.0:8883".parse().unwrap()));
        assert_eq!(config.wss_listener(), None);
    }

    #[test]
    fn a_node_without_mqtt_listeners_is_invalid() {
        let off = "[listeners]\ntcp = \"\"\nws = \"\"";
        assert_eq!(invalid(off).field, "listeners");
        // TLS listeners count only with a certificate.
        parse(&format!("{off}\n[tls]\ncert = \"c\"\nkey = \"k\""))
            .validate()
            .unwrap();
    }

    #[test]
    fn an_admin_api_other_hosts_reach_needs_credentials() {
        let error = invalid("[listeners]\nhttp = \"0.0.0.0:18083\"");
        assert_eq!(error.field, "listeners.http");
        assert!(error.problem.contains("api_key"), "{error}");
        invalid("[listeners]\nhttp = \"192.0.2.7:18083\"");
        for loopback in ["127.0.0.1:18083", "127.0.0.9:80", "[::1]:18083"] {
            parse(&format!("[listeners]\nhttp = \"{loopback}\""))
                .validate()
                .unwrap();
        }
        parse("[listeners]\nhttp = \"0.0.0.0:18083\"\n[admin]\napi_key = \"0123456789abcdef\"")
            .validate()
            .unwrap();
        let users = "[listeners]\nhttp = \"0.0.0.0:18083\"\n[admin]\nusers = [\"ops\"]\n\
                     [auth]\npassword_file = \"p\"";
        parse(users).validate().unwrap();
    }

    #[test]
    fn two_listeners_on_one_port_are_invalid() {
        let error = invalid("[listeners]\nws = \"127.0.0.1:1883\"");
        assert_eq!(error.field, "listeners.ws");
        assert!(error.problem.contains("listeners.tcp"), "{error}");
        let error = invalid("[cluster]\nlisten = \"0.0.0.0:18083\"");
        assert_eq!(error.field, "cluster.listen");
        let error = invalid("[listeners]\ntcp = \"[::]:1883\"\nws = \"127.0.0.1:1883\"");
        assert_eq!(error.field, "listeners.ws");
        // Port 0 (any free port) never collides.
        parse("[listeners]\ntcp = \"127.0.0.1:0\"\nws = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"")
            .validate()
            .unwrap();
        // Different IPs of one family on one port do not collide, nor do unstarted listeners.
        parse("[listeners]\ntcp = \"127.0.0.1:1883\"\nws = \"127.0.0.2:1883\"\ntls = \"0.0.0.0:8083\"")
            .validate()
            .unwrap();
    }

    #[test]
    fn refusing_anonymous_clients_needs_a_password_file() {
        let error = invalid("[auth]\nallow_anonymous = false");
        assert_eq!(error.field, "auth.allow_anonymous");
        parse("[auth]\nallow_anonymous = false\npassword_file = \"p\"")
            .validate()
            .unwrap();
    }

    #[test]
    fn peers_are_parsed_as_id_at_host_port() {
        let config = full();
        let ids: Vec<u64> = config.cluster.peers.iter().map(|p| p.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(config.cluster.peers[2].addr.host, "[::1]");
        assert_eq!(config.cluster.peers[2].addr.port, 7000);
        assert_eq!(config.cluster.peers[2].to_string(), "3@[::1]:7000");
        let bad = [
            "a:7000",
            "x@a:7000",
            "1@a",
            "1@:7000",
            "1@a:0",
            "1@a:70000",
            "1@::1:7000",
            "1@a b:7000",
            "1@a,b:7000",
        ];
        for peer in bad {
            let text = format!("[cluster]\npeers = [\"1@a:7000\", \"{peer}\"]");
            let error = Config::from_toml(&text).expect_err(peer).to_string();
            assert!(error.contains("invalid"), "{peer}: {error}");
            assert!(error.contains("line 2"), "{peer}: {error}");
        }
    }

    #[test]
    fn cluster_membership_is_checked() {
        let error = invalid("[cluster]\npeers = [\"2@a:1\", \"3@b:1\"]");
        assert_eq!(error.field, "cluster.peers");
        assert!(error.problem.contains("node_id = 1"), "{error}");
        let error = invalid("[cluster]\npeers = [\"1@a:1\", \"1@b:1\"]");
        assert!(error.problem.contains("listed twice"), "{error}");
        let error = invalid("[cluster]\npeers = [\"1@a:1\", \"2@a:1\"]");
        assert!(error.problem.contains("a:1"), "{error}");
        let error =
            invalid("[cluster]\npeers = [\"1@a:1\"]\njoin = \"b:1\"\nlisten = \"0.0.0.0:1\"");
        assert_eq!(error.field, "cluster.join");
        let error = invalid("[cluster]\njoin = \"b:1\"");
        assert_eq!(error.field, "cluster.listen");
        let error = invalid("[cluster]\njoin = \"b:1\"\nlisten = \"0.0.0.0:7000\"");
        assert_eq!(error.field, "cluster.advertise");
        let joining =
            "[cluster]\njoin = \"b:1\"\nlisten = \"0.0.0.0:7000\"\nadvertise = \"c:7000\"";
        assert_eq!(invalid(joining).field, "cluster.tls");
        let joining = parse(&format!("{joining}\ninsecure = true"));
        joining.validate().unwrap();
        assert_eq!(joining.cluster.advertised(1).as_deref(), Some("c:7000"));
        let forming = "[cluster]\npeers = [\"1@a:1\"]\nlisten = \"0.0.0.0:1\"";
        let with_tls = format!("{forming}\n[cluster.tls]\nca = \"ca\"\ncert = \"c\"\nkey = \"k\"");
        parse(&with_tls).validate().unwrap();
        let both = format!(
            "{forming}\ninsecure = true\n[cluster.tls]\nca = \"a\"\ncert = \"c\"\nkey = \"k\""
        );
        assert_eq!(invalid(&both).field, "cluster.insecure");
        let forming = parse(&format!("{forming}\ninsecure = true"));
        forming.validate().unwrap();
        assert_eq!(forming.cluster.advertised(1).as_deref(), Some("a:1"));
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let error = Config::load(&missing).unwrap_err().to_string();
        assert!(error.contains("missing.toml"), "{error}");

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[mqtt]\nreceive_maximum = 0\n").unwrap();
        let error = Config::load(&bad).unwrap_err().to_string();
        assert!(error.contains("bad.toml"), "{error}");
        assert!(error.contains("mqtt.receive_maximum"), "{error}");
        assert!(Config::read(&bad).is_ok(), "read does not validate");

        std::fs::write(&bad, "[mqtt\n").unwrap();
        let error = Config::load(&bad).unwrap_err().to_string();
        assert!(
            error.contains("bad.toml") && error.contains("line 1"),
            "{error}"
        );
    }
}
