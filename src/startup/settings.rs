//! A node's settings from its configuration: its listeners and their transports, its store,
//! the authenticator of `[auth]`, the admin API's credentials and bounds, its part in a
//! cluster, and the settings of each layer the configuration does not reach itself (client
//! traces, the log's sync policy).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::auth::{LiveAcl, PasswordFile, PreparedAuth};
use crate::cluster::SyncPolicy;
use crate::config::{AdminConfig, Config, ListenersConfig, StoreKind, SyncMode};
use crate::server::trace::TraceLimits;
use crate::server::{
    AdminAccess, AdminLimits, BlockingOffload, ClusterSettings, ListenerSpec, ServeError,
    ServerSettings,
};
use crate::session::Authenticator;
use crate::storage::{KvStore, MemStore};
use crate::transport::{tls, TransportAcceptor, HANDSHAKE_TIMEOUT_DEFAULT};

/// The listeners the configuration turns on, with their transports.
fn listeners(config: &Config) -> Result<Vec<ListenerSpec>, ServeError> {
    let timeout = HANDSHAKE_TIMEOUT_DEFAULT;
    let caps = &config.listeners;
    let cap = ListenersConfig::cap;
    let mut specs = Vec::new();
    if let Some(addr) = config.listeners.tcp {
        specs.push(ListenerSpec {
            addr: addr.to_string(),
            acceptor: TransportAcceptor::tcp().with_proxy_protocol(caps.tcp_proxy_protocol),
            connections_max: cap(caps.tcp_connections_max),
        });
    }
    if let Some(addr) = config.listeners.ws {
        specs.push(ListenerSpec {
            addr: addr.to_string(),
            acceptor: TransportAcceptor::ws(config.ws_config(), timeout),
            connections_max: cap(caps.ws_connections_max),
        });
    }
    if let Some(settings) = config.tls_settings() {
        let acceptor = tls::acceptor(&settings)?;
        if let Some(addr) = config.tls_listener() {
            specs.push(ListenerSpec {
                addr: addr.to_string(),
                acceptor: TransportAcceptor::tls(acceptor.clone(), timeout)
                    .with_proxy_protocol(caps.tls_proxy_protocol),
                connections_max: cap(caps.tls_connections_max),
            });
        }
        if let Some(addr) = config.wss_listener() {
            specs.push(ListenerSpec {
                addr: addr.to_string(),
                acceptor: TransportAcceptor::wss(acceptor, config.ws_config(), timeout),
                connections_max: cap(caps.wss_connections_max),
            });
        }
    }
    Ok(specs)
}

/// Opens the node's store: RocksDB in `data_dir`, or memory when configured.
fn open_store(config: &Config) -> Result<Arc<dyn KvStore>, ServeError> {
    match config.durability.store {
        StoreKind::Memory => Ok(Arc::new(MemStore::new())),
        #[cfg(feature = "rocksdb")]
        StoreKind::Rocksdb => {
            let store = crate::storage::RocksStore::open(&config.data_dir)?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "rocksdb"))]
        StoreKind::Rocksdb => Err(ServeError::NoRocksDb),
    }
}

/// Builds the settings of a node from its configuration, opening its store.
pub fn settings(config: &Config) -> Result<ServerSettings, ServeError> {
    let offload = Arc::new(BlockingOffload::default());
    settings_with_acl(config, &Arc::new(RwLock::new(None)), &offload)
}

/// [`settings`], with the ACL put in force in `live` (which a reload replaces) and password
/// verifications run on `offload` (which a reload keeps: one bound on them for the node).
pub(super) fn settings_with_acl(
    config: &Config,
    live: &Arc<LiveAcl>,
    offload: &Arc<BlockingOffload>,
) -> Result<ServerSettings, ServeError> {
    let auth: Arc<dyn Authenticator> = Arc::new(
        PreparedAuth::load(&config.auth, &crate::server::http_auth_method)
            .map_err(ServeError::NodeAuth)?
            .offloaded(offload.clone())
            .commit(live),
    );
    Ok(ServerSettings {
        node_id: config.node_id,
        store: open_store(config)?,
        sync: sync_policy(config),
        snapshot_every: config.durability.snapshot_every,
        listeners: listeners(config)?,
        session: config.session_config(),
        broker: config.broker_config(),
        connect_timeout: config.connect_timeout(),
        max_connections: config.mqtt.connections_max as usize,
        connection_rate_max: config.mqtt.connection_rate_max,
        packet_timeout: Duration::from_secs(config.mqtt.packet_timeout_secs.into()),
        use_identity_as_username: config
            .tls
            .as_ref()
            .is_some_and(|tls| tls.use_identity_as_username),
        sys_interval: Duration::from_secs(config.mqtt.sys_interval_secs.into()),
        trace: trace_limits(config),
        auth: auth.clone(),
        cluster: cluster_settings(config),
        http_listen: config.listeners.http.map(|a| a.to_string()),
        admin_access: Arc::new(admin_access(config)?),
        admin_limits: admin_limits(&config.admin),
        ..ServerSettings::default()
    })
}

/// The admin listener's bounds of `[admin]`.
pub fn admin_limits(admin: &AdminConfig) -> AdminLimits {
    AdminLimits {
        connections_max: admin.connections_max,
        header_timeout: Duration::from_secs(admin.header_timeout_secs.into()),
        request_timeout: Duration::from_secs(admin.request_timeout_secs.into()),
    }
}

/// Who may use the admin API: `[admin]`, with the password file of `[auth]` for its users.
pub(super) fn admin_access(config: &Config) -> Result<AdminAccess, crate::auth::AuthError> {
    let passwords = match (&config.auth.password_file, config.admin.users.is_empty()) {
        (Some(path), false) => Some(Arc::new(PasswordFile::load(path)?)),
        _ => None,
    };
    Ok(AdminAccess {
        api_key: config.admin.api_key.clone(),
        users: config.admin.users.clone(),
        passwords,
    })
}

/// The node's part in a cluster, when it has a cluster listener.
fn cluster_settings(config: &Config) -> Option<ClusterSettings> {
    let cluster = &config.cluster;
    let listen = cluster.listen?;
    // `validate` made sure the node can tell its peers where it is.
    let advertise = cluster
        .advertised(config.node_id)
        .unwrap_or_else(|| listen.to_string());
    Some(ClusterSettings {
        listen: listen.to_string(),
        advertise,
        peers: cluster
            .peers
            .iter()
            .map(|p| (p.id, p.addr.to_string()))
            .collect(),
        join: cluster.join.as_ref().map(|j| j.to_string()),
        node_down_after: Duration::from_secs(cluster.node_down_secs.into()),
        tls: cluster.tls.as_ref().map(|tls| crate::grpc::PeerTlsFiles {
            ca: tls.ca.clone(),
            cert: tls.cert.clone(),
            key: tls.key.clone(),
        }),
    })
}

/// What client traces may hold: `[admin] trace_clients_max` and `trace_events_max`.
pub fn trace_limits(config: &Config) -> TraceLimits {
    TraceLimits {
        clients_max: config.admin.trace_clients_max,
        events_max: config.admin.trace_events_max,
    }
}

/// The log's sync policy of `[durability]`.
pub fn sync_policy(config: &Config) -> SyncPolicy {
    match config.durability.sync {
        SyncMode::Always => SyncPolicy::Always,
        SyncMode::Batch => SyncPolicy::Batch {
            window: Duration::from_millis(config.durability.batch_window_ms),
        },
        SyncMode::None => SyncPolicy::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration's defaults are those a node has without one.
    #[test]
    fn defaults_are_those_of_the_shell() {
        let config = Config::default();
        let node = ServerSettings::default();
        assert_eq!(trace_limits(&config), TraceLimits::default());
        assert_eq!(trace_limits(&config), node.trace);
        assert_eq!(admin_limits(&config.admin), AdminLimits::default());
        assert_eq!(admin_limits(&config.admin), node.admin_limits);
        assert_eq!(sync_policy(&config), node.sync);
        assert_eq!(config.durability.snapshot_every, node.snapshot_every);
    }
}
