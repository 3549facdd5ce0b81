//! `keel serve`: a node on real sockets from a [`Config`], until SIGTERM or Ctrl-C.

use std::io;
use std::sync::{Arc, RwLock};

use crate::admin::AdminAccess;
use crate::auth::{AuthError, LiveAcl, NodeAuthError, PasswordFile, PreparedAuth};
use crate::config::{Config, ListenersConfig, StoreKind};
use crate::net::{Rng, SystemClock, TokioNet};
use crate::storage::{KvStore, MemStore};
use crate::transport::{tls, TlsConfigError, TransportAcceptor, HANDSHAKE_TIMEOUT_DEFAULT};

use super::{ListenerSpec, Reloaded, Server, ServerSettings};

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    NodeAuth(#[from] NodeAuthError),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Storage(String),
    #[error(transparent)]
    Node(#[from] crate::cluster::NodeError),
    #[error(transparent)]
    PeerTls(#[from] crate::grpc::PeerTlsError),
    #[error("{0}")]
    Planted(String),
}

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
            let store = crate::storage::RocksStore::open(&config.data_dir)
                .map_err(|e| ServeError::Storage(e.to_string()))?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "rocksdb"))]
        StoreKind::Rocksdb => Err(ServeError::Storage(
            "this build has no RocksDB (feature `rocksdb`): set durability.store = \"memory\""
                .to_string(),
        )),
    }
}

/// Builds the settings of a node from its configuration, opening its store.
pub fn settings(config: &Config) -> Result<ServerSettings, ServeError> {
    settings_with_acl(config, &Arc::new(RwLock::new(None)))
}

/// [`settings`], with the ACL put in force in `live` (which a reload replaces).
fn settings_with_acl(config: &Config, live: &Arc<LiveAcl>) -> Result<ServerSettings, ServeError> {
    let auth: Arc<dyn crate::session::Authenticator> = Arc::new(
        PreparedAuth::load(&config.auth, &super::auth_hook::http_auth_method)
            .map_err(ServeError::NodeAuth)?
            .offloaded(Arc::new(super::offload::BlockingOffload::default()))
            .commit(live),
    );
    Ok(ServerSettings {
        node_id: config.node_id,
        store: open_store(config)?,
        sync: config.sync_policy(),
        snapshot_every: config.durability.snapshot_every,
        listeners: listeners(config)?,
        session: config.session_config(),
        broker: config.broker_config(),
        connect_timeout: config.connect_timeout(),
        max_connections: config.mqtt.connections_max as usize,
        connection_rate_max: config.mqtt.connection_rate_max,
        packet_timeout: std::time::Duration::from_secs(config.mqtt.packet_timeout_secs.into()),
        use_identity_as_username: config
            .tls
            .as_ref()
            .is_some_and(|tls| tls.use_identity_as_username),
        sys_interval: std::time::Duration::from_secs(config.mqtt.sys_interval_secs.into()),
        trace: config.trace_limits(),
        auth: auth.clone(),
        cluster: cluster_settings(config),
        http_listen: config.listeners.http.map(|a| a.to_string()),
        admin_access: Arc::new(admin_access(config)?),
        admin_limits: admin_limits(&config.admin),
        ..ServerSettings::default()
    })
}

/// The admin listener's bounds of `[admin]`.
pub fn admin_limits(admin: &crate::config::AdminConfig) -> crate::admin::AdminLimits {
    crate::admin::AdminLimits {
        connections_max: admin.connections_max,
        header_timeout: std::time::Duration::from_secs(admin.header_timeout_secs.into()),
        request_timeout: std::time::Duration::from_secs(admin.request_timeout_secs.into()),
    }
}

/// Who may use the admin API: `[admin]`, with the password file of `[auth]` for its users.
fn admin_access(config: &Config) -> Result<AdminAccess, ServeError> {
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
fn cluster_settings(config: &Config) -> Option<super::ClusterSettings> {
    let cluster = &config.cluster;
    let listen = cluster.listen?;
    // `validate` made sure the node can tell its peers where it is.
    let advertise = cluster
        .advertised(config.node_id)
        .unwrap_or_else(|| listen.to_string());
    Some(super::ClusterSettings {
        listen: listen.to_string(),
        advertise,
        peers: cluster
            .peers
            .iter()
            .map(|p| (p.id, p.addr.to_string()))
            .collect(),
        join: cluster.join.as_ref().map(|j| j.to_string()),
        node_down_after: std::time::Duration::from_secs(cluster.node_down_secs.into()),
        tls: cluster.tls.as_ref().map(|tls| crate::grpc::PeerTlsFiles {
            ca: tls.ca.clone(),
            cert: tls.cert.clone(),
            key: tls.key.clone(),
        }),
    })
}

/// What a reload reads: the configuration as `keel serve` would build it now (file and
/// flags), checked.
pub type ConfigSource = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Runs a node until SIGTERM or Ctrl-C, reloading from `source` on SIGHUP and
/// `POST /api/v1/reload` (see `server::Reloader` for what a reload changes).
pub fn serve_reloadable(config: Config, source: ConfigSource) -> Result<(), ServeError> {
    let live = Arc::new(RwLock::new(None));
    let mut settings = settings_with_acl(&config, &live)?;
    let started = config.clone();
    settings.reload = Some(Arc::new(move || {
        let new = source()?;
        reload_from(&started, &new, &live)
    }));
    settings.reload_on_sighup = true;
    run(config, settings)
}

/// Prepares a reload to `new` (what `started` said at start-up decides what needs a restart).
fn reload_from(started: &Config, new: &Config, live: &Arc<LiveAcl>) -> Result<Reloaded, String> {
    let prepared = PreparedAuth::load(&new.auth, &super::auth_hook::http_auth_method)
        .map_err(|e| e.to_string())?
        .offloaded(Arc::new(super::offload::BlockingOffload::default()));
    let admin_access = admin_access(new).map_err(|e| e.to_string())?;
    Ok(Reloaded {
        auth: Arc::new(prepared.commit(live)),
        session: new.session_config(),
        admin_access,
        trace: new.trace_limits(),
        notes: needs_restart(started, new),
    })
}

/// What differs between the configuration a node started with and `new` that a reload does
/// not change: everything but `[auth]`, `[admin]` and the session limits of `[mqtt]`.
fn needs_restart(started: &Config, new: &Config) -> Vec<String> {
    let mut mqtt = new.mqtt.clone();
    let old = &started.mqtt;
    // The session limits a reload applies to new connections.
    mqtt.packet_size_max = old.packet_size_max;
    mqtt.topic_alias_max = old.topic_alias_max;
    mqtt.receive_maximum = old.receive_maximum;
    mqtt.keep_alive_max_secs = old.keep_alive_max_secs;
    mqtt.session_expiry_max_secs = old.session_expiry_max_secs;
    mqtt.maximum_qos = old.maximum_qos;
    mqtt.retain_available = old.retain_available;
    mqtt.client_id_len_max = old.client_id_len_max;
    mqtt.subscriptions_max = old.subscriptions_max;
    mqtt.subscription_bytes_max = old.subscription_bytes_max;
    mqtt.node_subscription_bytes_max = old.node_subscription_bytes_max;
    mqtt.topic_levels_max = old.topic_levels_max;
    mqtt.publish_rate_max = old.publish_rate_max;
    [
        ("node_id", started.node_id == new.node_id),
        ("data_dir", started.data_dir == new.data_dir),
        ("[listeners]", started.listeners == new.listeners),
        ("[tls]", started.tls == new.tls),
        ("[cluster]", started.cluster == new.cluster),
        ("[durability]", started.durability == new.durability),
        ("[mqtt] queue, connection and broker limits", *old == mqtt),
        (
            "[admin] connections_max and timeouts",
            admin_limits(&started.admin) == admin_limits(&new.admin),
        ),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(what, _)| format!("{what} changed: takes effect after a restart"))
    .collect()
}

/// Runs a node on a multi-threaded tokio runtime until SIGTERM or Ctrl-C.
pub fn serve(config: Config) -> Result<(), ServeError> {
    let settings = settings(&config)?;
    run(config, settings)
}

fn run(config: Config, mut settings: ServerSettings) -> Result<(), ServeError> {
    tracing::info!(
        version = crate::VERSION,
        node_id = config.node_id,
        "keel starting"
    );
    if let Some(limit) = super::fd_budget::raise_nofile_limit() {
        let admin = match settings.http_listen {
            Some(_) => settings.admin_limits.connections_max,
            None => 0,
        };
        let fits = super::fd_budget::mqtt_connections_max(limit, settings.max_connections, admin);
        if fits < settings.max_connections {
            tracing::warn!(
                configured = settings.max_connections,
                lowered_to = fits,
                open_files_limit = limit,
                "mqtt.connections_max lowered: the process may open {limit} files and keeps \
                 {} of them for storage, peers and the admin API",
                super::fd_budget::FD_RESERVE + admin
            );
            settings.max_connections = fits;
        }
    }
    let planted = crate::planted::plant_from_env().map_err(ServeError::Planted)?;
    if planted != crate::planted::Bugs::default() {
        tracing::warn!(
            ?planted,
            "bugs planted on purpose (KEEL_PLANTED): for tests only"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("keel")
        .build()?;
    runtime.block_on(async {
        let data_dir = config.data_dir.display().to_string();
        let server = Server::bind(&TokioNet, settings, Arc::new(SystemClock))
            .await
            .map_err(|e| match e {
                // A listener that could not be bound says which address.
                ServeError::Io(e) => ServeError::Io(e),
                ServeError::PeerTls(e) => ServeError::PeerTls(e),
                other => ServeError::Storage(format!("data directory {data_dir}: {other}")),
            })?;
        server
            .run(Rng::from_os_entropy()?, shutdown_signal())
            .await?;
        Ok(())
    })
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot watch SIGTERM; Ctrl-C only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
