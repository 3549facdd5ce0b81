//! The shell of a node: listeners, one task per connection, the timer task and shutdown.
//!
//! Written against the [`Net`] and [`Clock`] seams, so the same code serves real sockets and
//! runs inside the simulator. All protocol and broker logic lives in the pure core
//! (`session`, `broker`, `state`); this module only moves bytes and time into it.

mod admin_api;
mod admission;
mod auth_hook;
mod cluster;
mod connection;
mod error;
mod hub;
pub mod loopback;
mod offload;
mod outbox;
mod reload;
pub mod trace;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::broker::{Broker, BrokerConfig};
use crate::cluster::{
    open_node, Durability, Membership, MembershipChanger, ProposalQueue, ProposerLimits, RaftNode,
    SyncPolicy,
};
use crate::codec::TopicName;
use crate::net::{Clock, Listener, Net, Rng};
use crate::session::{AllowAll, Authenticator, SessionConfig};
use crate::storage::{KvStore, MemStore, WriteBatch};
use crate::transport::TransportAcceptor;

pub use admin_api::{Admin, AdminAccess, AdminApi, AdminLimits, AdminParts, AdminStats};
pub use admission::{Cap, ListenerStats};
pub use auth_hook::{http_auth_method, HttpHook, HttpHookError, HOOK_ERRORS};
pub use cluster::ClusterSettings;
pub use connection::ConnectionContext;
pub use error::ServeError;
pub use hub::Hub;
pub use offload::BlockingOffload;
pub use reload::{ReloadError, ReloadSource, Reloaded, Reloader};

/// How often wills and session expiries are checked.
const TICK: Duration = Duration::from_millis(250);
/// How long shutdown waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One listening socket and the transport it speaks.
pub struct ListenerSpec {
    /// `HOST:PORT`; port 0 picks a free one (see [`Server::local_addrs`]).
    pub addr: String,
    pub acceptor: TransportAcceptor,
    /// Connections beyond this on this listener are closed as soon as they are accepted;
    /// `None`: only the node's `max_connections` applies.
    pub connections_max: Option<usize>,
}

/// Everything a node needs to serve.
pub struct ServerSettings {
    pub listeners: Vec<ListenerSpec>,
    pub session: SessionConfig,
    pub broker: BrokerConfig,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
    /// QoS 0 deliveries that may wait for one slow connection before new ones are dropped.
    pub qos0_queue_max: usize,
    /// Connections beyond this, over all listeners, are closed as soon as they are accepted.
    pub max_connections: usize,
    /// New connections accepted per second per listener; 0: no limit.
    pub connection_rate_max: u32,
    /// How long a started packet may take to arrive in full (slow loris).
    pub packet_timeout: Duration,
    /// A verified TLS client certificate names the client (`[tls] use_identity_as_username`).
    pub use_identity_as_username: bool,
    /// Period of the `$SYS/broker/...` topics; zero turns them off.
    pub sys_interval: Duration,
    /// How many clients may be traced at once, and how many events each keeps.
    pub trace: trace::TraceLimits,
    pub auth: Arc<dyn Authenticator>,
    pub node_id: u64,
    /// Where the node's durable state lives (RocksDB for `keel serve`, memory in tests).
    pub store: Arc<dyn KvStore>,
    pub sync: SyncPolicy,
    /// Log entries between snapshots.
    pub snapshot_every: u64,
    pub proposer: ProposerLimits,
    /// How the node takes part in a cluster; `None` runs a cluster of one.
    pub cluster: Option<ClusterSettings>,
    /// How long a membership change may wait for a new node, and when a voter counts as
    /// reachable.
    pub membership: crate::cluster::ChangeLimits,
    /// Where the admin HTTP API listens (`HOST:PORT`), served by the API the node is given
    /// ([`Server::with_admin_api`]); `None` turns it off.
    pub http_listen: Option<String>,
    /// The admin listener's connection cap and deadlines.
    pub admin_limits: AdminLimits,
    /// Who may use the admin HTTP API.
    pub admin_access: Arc<AdminAccess>,
    /// How to read the configuration again (`POST /api/v1/reload`, and SIGHUP when
    /// `reload_on_sighup`); `None`: the node was not started from one.
    pub reload: Option<ReloadSource>,
    pub reload_on_sighup: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listeners: Vec::new(),
            session: SessionConfig::default(),
            broker: BrokerConfig::default(),
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            qos0_queue_max: 1000,
            max_connections: 100_000,
            connection_rate_max: 0,
            packet_timeout: Duration::from_secs(30),
            use_identity_as_username: false,
            sys_interval: Duration::from_secs(10),
            trace: trace::TraceLimits::default(),
            auth: Arc::new(AllowAll),
            node_id: 1,
            store: Arc::new(MemStore::new()),
            sync: SyncPolicy::Batch {
                window: Duration::ZERO,
            },
            snapshot_every: 10_000,
            proposer: ProposerLimits::default(),
            cluster: None,
            membership: crate::cluster::ChangeLimits::default(),
            http_listen: None,
            admin_limits: AdminLimits::default(),
            admin_access: Arc::default(),
            reload: None,
            reload_on_sighup: false,
        }
    }
}

/// A node whose listeners are bound, ready to run.
pub struct Server<N: Net> {
    /// Each bound listener, its transport, and its connections (registered with the hub for
    /// the metrics).
    listeners: Vec<(N::Listener, TransportAcceptor, Arc<ListenerStats>)>,
    settings: ServerSettings,
    hub: Arc<Hub>,
    raft: RaftNode,
    clock: Arc<dyn Clock>,
    cluster: Option<cluster::ClusterShell<N>>,
    admin: Option<N::Listener>,
    /// Serves the admin API on `admin`.
    admin_api: Option<AdminApi<N::Listener>>,
}

impl<N: Net> Server<N> {
    /// Binds every listener, then restores the node's durable state (snapshot and log);
    /// fails with the address that could not be bound or what is wrong with the state.
    pub async fn bind(
        net: &N,
        settings: ServerSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Server<N>, ServeError> {
        let incarnation = crate::state::Incarnation(next_incarnation(&*settings.store)?);
        let queue = Arc::new(ProposalQueue::default());
        let broker = Broker::with_identity(settings.broker, settings.node_id.into(), incarnation);
        let hub = Arc::new(Hub::new(broker, queue.clone(), clock.clone()));
        hub.tracer.set_limits(settings.trace);
        let durability = Durability {
            node_id: settings.node_id,
            incarnation,
            store: settings.store.clone(),
            sync: settings.sync,
            snapshot_every: settings.snapshot_every,
            proposer: settings.proposer,
        };
        // Every listener is bound before the Raft node starts: an address in use stops the
        // start-up before any task of the node runs.
        let mut listeners = Vec::new();
        for spec in &settings.listeners {
            let listener = net.bind(&spec.addr).await.map_err(|e| {
                io::Error::new(e.kind(), format!("cannot listen on {}: {e}", spec.addr))
            })?;
            let addr = listener.local_addr().ok();
            if let Some(addr) = addr {
                tracing::info!(transport = %spec.acceptor.transport(), %addr, "listening");
            }
            let transport = spec.acceptor.transport().name();
            let stats = Arc::new(ListenerStats::new(transport, addr, spec.connections_max));
            hub.shell_stats.register_listener(stats.clone());
            listeners.push((listener, spec.acceptor.clone(), stats));
        }
        let admin = match &settings.http_listen {
            Some(addr) => Some(net.bind(addr).await.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} (admin HTTP): {e}"),
                )
            })?),
            None => None,
        };
        let (raft, cluster) = match settings.cluster.clone() {
            None => {
                let membership = Membership::alone(settings.node_id);
                let raft = open_node(durability, hub.clone(), hub.clone(), queue, membership);
                (raft.await?, None)
            }
            Some(cluster) => {
                let refusals = hub.shell_stats.peer_refusals.clone();
                let shell =
                    cluster::ClusterShell::bind(net, settings.node_id, cluster, refusals).await?;
                let membership = shell.membership();
                let raft = open_node(durability, hub.clone(), hub.clone(), queue, membership);
                (raft.await?, Some(shell))
            }
        };
        Ok(Server {
            admin,
            admin_api: None,
            listeners,
            settings,
            hub,
            raft,
            clock,
            cluster,
        })
    }

    /// Serves the admin HTTP API on the admin listener
    /// ([`ServerSettings::http_listen`]) once the node runs: `crate::admin::start`, which the
    /// shell does not know. Without it, a node with an admin listener serves nothing there.
    pub fn with_admin_api(mut self, api: AdminApi<N::Listener>) -> Server<N> {
        self.admin_api = Some(api);
        self
    }

    /// The bound addresses, in the order of the settings' listeners.
    pub fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.listeners
            .iter()
            .map(|(l, _, _)| l.local_addr())
            .collect()
    }

    /// The admin HTTP listener's address, when it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// The node's Raft handle (for its metrics).
    pub fn raft(&self) -> openraft::Raft<crate::cluster::TypeConfig> {
        self.raft.raft.clone()
    }

    /// What the connection tasks of this node share; `shutdown` turns true when it stops.
    fn connection_context(&self, shutdown: watch::Receiver<bool>) -> Arc<ConnectionContext> {
        let settings = &self.settings;
        Arc::new(ConnectionContext {
            hub: self.hub.clone(),
            clock: self.clock.clone(),
            auth: std::sync::RwLock::new(settings.auth.clone()),
            session_config: std::sync::RwLock::new(settings.session.clone()),
            connect_timeout_ms: settings.connect_timeout.as_millis() as u64,
            write_timeout: settings.write_timeout,
            qos0_queue_max: settings.qos0_queue_max,
            packet_timeout_ms: settings.packet_timeout.as_millis() as u64,
            use_identity_as_username: settings.use_identity_as_username,
            shutdown,
        })
    }

    /// Serves until `shutdown` completes, then tells clients (MQTT 5: DISCONNECT 0x8B) and
    /// waits a little for them to go.
    pub async fn run(
        mut self,
        mut rng: Rng,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> io::Result<()> {
        let clock = self.clock.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        // Every task holds a sender; when all are dropped, every task has finished.
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let ctx = self.connection_context(stop_rx.clone());
        let admin_access = Arc::new(RwLock::new(self.settings.admin_access.clone()));
        let reloader = self
            .settings
            .reload
            .clone()
            .map(|source| Arc::new(Reloader::new(source, ctx.clone(), admin_access.clone())));
        if let (Some(reloader), true) = (&reloader, self.settings.reload_on_sighup) {
            tokio::spawn(reload_on_sighup(reloader.clone()));
        }
        let probe = self.cluster.as_ref().map(|shell| {
            let peers: Arc<dyn crate::cluster::PeerProbe> = Arc::new(shell.peers.clone());
            peers
        });
        let successor = self.cluster.as_ref().map(|shell| {
            let peers: Arc<dyn crate::cluster::ElectionStarter> = Arc::new(shell.peers.clone());
            peers
        });
        let changer = Arc::new(MembershipChanger::new(
            self.raft.raft.clone(),
            probe,
            self.settings.membership,
        ));
        self.start_admin_api(&ctx, &admin_access, &reloader, &changer, &stop_rx);
        // Every node watches its role, a cluster of one too: a node whose log names voters it
        // cannot reach (a clustered data directory started without its cluster listener, say)
        // must send clients away and fail `/healthz`, not leave them hanging.
        let view: Arc<dyn crate::cluster::ClusterView> = self.hub.clone();
        tokio::spawn(crate::cluster::watch_role(
            self.raft.raft.clone(),
            view,
            stop_rx.clone(),
        ));
        if let Some(cluster) = self.cluster {
            cluster.start(
                &self.raft,
                changer,
                self.hub.clone(),
                clock.clone(),
                stop_rx.clone(),
            );
        }
        let node_cap = Arc::new(Cap::new(Some(self.settings.max_connections)));
        for (listener, acceptor, stats) in self.listeners {
            let accept = accept_loop::<N>(
                (listener, acceptor, stats),
                ctx.clone(),
                node_cap.clone(),
                self.settings.connection_rate_max,
                rng.fork(),
                done_tx.clone(),
            );
            tokio::spawn(accept);
        }
        tokio::spawn(tick_loop(
            self.hub.clone(),
            clock,
            self.settings.sys_interval,
            stop_rx.clone(),
            done_tx.clone(),
        ));
        drop(done_tx);

        shutdown.await;
        tracing::info!("shutting down");
        if let Some(peers) = successor {
            hand_over_leadership(&self.raft, peers.as_ref()).await;
        }
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv()).await;
        self.raft.shutdown().await;
        Ok(())
    }

    /// Starts the admin API the node was given ([`Server::with_admin_api`]) on its admin
    /// listener, when it has both.
    fn start_admin_api(
        &mut self,
        ctx: &Arc<ConnectionContext>,
        access: &Arc<RwLock<Arc<AdminAccess>>>,
        reloader: &Option<Arc<Reloader>>,
        changer: &Arc<MembershipChanger>,
        stop: &watch::Receiver<bool>,
    ) {
        let (Some(listener), Some(start)) = (self.admin.take(), self.admin_api) else {
            return;
        };
        if self.settings.admin_access.is_open() {
            tracing::warn!(
                "the admin HTTP API has no credentials: anyone who can connect to it (it \
                 listens on loopback) can change the cluster; set [admin] api_key or users"
            );
        }
        let admin = Admin {
            hub: self.hub.clone(),
            raft: self.raft.raft.clone(),
            changer: changer.clone(),
            ctx: ctx.clone(),
            access: access.clone(),
            reloader: reloader.clone(),
            stats: Arc::default(),
        };
        start(AdminParts {
            listener,
            admin,
            limits: self.settings.admin_limits,
            stop: stop.clone(),
        });
    }
}

/// A stopping leader hands its leadership to an up-to-date voter first, so the cluster does
/// not wait out an election timeout (see `cluster::hand_over`); its clients stay served
/// meanwhile, through whichever node leads.
async fn hand_over_leadership(
    node: &crate::cluster::RaftNode,
    peers: &dyn crate::cluster::ElectionStarter,
) {
    use crate::cluster::Handover;
    let timeout = crate::cluster::HANDOVER_TIMEOUT;
    match crate::cluster::hand_over(&node.raft, &node.hold, peers, timeout).await {
        Handover::NotLeader => {}
        Handover::To(leader) => tracing::info!(leader, "handed leadership over to node {leader}"),
        Handover::Failed => tracing::warn!(
            "could not hand leadership over in {:?}; the other nodes elect a leader when their \
             election timeouts fire",
            crate::cluster::HANDOVER_TIMEOUT
        ),
    }
}

/// Counts the runs of a node in its store: replies to requests of an earlier run that are
/// replayed from the log must not reach this run's connections (see `broker::Origin`).
fn next_incarnation(store: &dyn KvStore) -> Result<u64, ServeError> {
    const KEY: &[u8] = b"node/incarnation";
    let previous = match store.get(KEY)? {
        Some(bytes) => {
            let bytes: [u8; 8] =
                (bytes.as_slice().try_into()).map_err(|_| ServeError::CorruptRunCounter)?;
            u64::from_be_bytes(bytes)
        }
        None => 0,
    };
    let next = previous + 1;
    let mut batch = WriteBatch::default();
    batch.put(KEY, next.to_be_bytes().to_vec());
    store.write(batch, true)?;
    Ok(next)
}

/// Accepts connections on one listener, each under the listener's cap and the node's
/// (`node_cap`), and starts a task for each.
async fn accept_loop<N: Net>(
    (mut listener, acceptor, stats): (N::Listener, TransportAcceptor, Arc<ListenerStats>),
    ctx: Arc<ConnectionContext>,
    node_cap: Arc<Cap>,
    connection_rate_max: u32,
    mut rng: Rng,
    done: mpsc::Sender<()>,
) {
    let mut stop = ctx.shutdown.clone();
    let mut pacer = AcceptPacer::new(connection_rate_max);
    loop {
        if pacer.wait().await {
            ctx.hub
                .shell_stats
                .throttled_accepts
                .fetch_add(1, Ordering::Relaxed);
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let guard = match admission::admit(&node_cap, &stats) {
            Ok(slot) => slot,
            Err(admission::Refusal::Listener) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                let transport = stats.transport;
                let connections_max = stats.cap.max();
                tracing::warn!(
                    %peer,
                    transport,
                    connections_max,
                    "listener connection limit reached"
                );
                continue;
            }
            Err(admission::Refusal::Node) => {
                ctx.hub
                    .shell_stats
                    .refused_connections_max
                    .fetch_add(1, Ordering::Relaxed);
                let max_connections = node_cap.max();
                tracing::warn!(%peer, max_connections, "connection limit reached");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        let done = done.clone();
        let id_seed = rng.u64();
        tokio::spawn(async move {
            let _guard = guard;
            let _done = done;
            // Boxed: the handshake future (TLS, WebSocket) is larger than the connection's
            // own, and inline it would stay part of every idle connection's task.
            match Box::pin(acceptor.accept(stream)).await {
                Ok(accepted) => {
                    // A certificate name that cannot be an MQTT user name names nobody: the
                    // client is then judged like one without a certificate.
                    let cert_identity = match (&accepted.client_cert, ctx.use_identity_as_username)
                    {
                        (Some(cert), true) => crate::transport::tls::cert_identity(cert)
                            .and_then(|name| crate::codec::MqttString::new(&name).ok()),
                        _ => None,
                    };
                    let peer = crate::session::PeerInfo {
                        addr: Some(accepted.source.unwrap_or(peer)),
                        cert_identity,
                    };
                    connection::serve_connection(ctx, accepted.stream, id_seed, peer).await
                }
                Err(error) if is_proxy_refusal(&error) => {
                    ctx.hub
                        .shell_stats
                        .proxy_refused
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, %error, "connection refused: PROXY protocol");
                }
                Err(error) => tracing::debug!(%peer, %error, "handshake failed"),
            }
        });
    }
}

/// Whether an accept failed for its PROXY protocol header.
fn is_proxy_refusal(error: &io::Error) -> bool {
    let inner = error.get_ref();
    inner.is_some_and(|e| e.downcast_ref::<crate::transport::ProxyError>().is_some())
}

/// Reloads the configuration on every SIGHUP, as daemons do.
async fn reload_on_sighup(reloader: Arc<Reloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGHUP: reload through the admin API only");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            // Refusals are logged by the reloader.
            let _ = reloader.reload();
        }
    }
    #[cfg(not(unix))]
    let _ = reloader;
}

/// Paces accepts to `rate` per second, with a burst of one second's worth: the connections
/// beyond it wait in the kernel's listen backlog instead of being refused, as a reconnect
/// storm after an outage should.
struct AcceptPacer {
    rate: u32,
    /// Accepts that may go at once now (up to `rate`).
    tokens: f64,
    last: tokio::time::Instant,
}

impl AcceptPacer {
    fn new(rate: u32) -> AcceptPacer {
        AcceptPacer {
            rate,
            tokens: f64::from(rate),
            last: tokio::time::Instant::now(),
        }
    }

    /// Waits until the next accept may go; true when it had to wait.
    async fn wait(&mut self) -> bool {
        if self.rate == 0 {
            return false;
        }
        let rate = f64::from(self.rate);
        let refill = |pacer: &mut AcceptPacer| {
            let now = tokio::time::Instant::now();
            let elapsed = now.duration_since(pacer.last).as_secs_f64();
            pacer.tokens = (pacer.tokens + elapsed * rate).min(rate);
            pacer.last = now;
        };
        refill(self);
        let waited = self.tokens < 1.0;
        if waited {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
            tokio::time::sleep(wait).await;
            refill(self);
        }
        self.tokens = (self.tokens - 1.0).max(0.0);
        waited
    }
}

/// Fires wills and session expiries when due, and publishes `$SYS` topics.
async fn tick_loop(
    hub: Arc<Hub>,
    clock: Arc<dyn Clock>,
    sys_interval: Duration,
    mut stop: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) {
    let started_ms = clock.unix_ms();
    let mut next_sys_ms = started_ms;
    let mut ticker = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let now_ms = clock.unix_ms();
        let mut core = hub.lock();
        core.broker.tick(now_ms);
        if !sys_interval.is_zero() && now_ms >= next_sys_ms {
            next_sys_ms = now_ms + sys_interval.as_millis() as u64;
            let qos0_dropped = hub.qos0_dropped.load(std::sync::atomic::Ordering::Relaxed);
            publish_sys(&mut core.broker, qos0_dropped, started_ms, now_ms);
        }
        core.dispatch(None, now_ms, &hub.qos0_dropped);
    }
}

/// The `$SYS/broker/...` topics (retained, like Mosquitto's).
fn publish_sys(broker: &mut Broker, qos0_dropped: u64, started_ms: u64, now_ms: u64) {
    let state = broker.state();
    let stats = *broker.stats();
    let dropped = stats.dropped_queue_full + stats.dropped_expired + stats.discarded + qos0_dropped;
    let values = [
        ("version", format!("keel {}", crate::VERSION)),
        (
            "uptime",
            format!("{} seconds", (now_ms - started_ms) / 1000),
        ),
        ("clients/connected", broker.connection_count().to_string()),
        ("clients/total", broker.session_count().to_string()),
        (
            "subscriptions/count",
            broker.subscription_count().to_string(),
        ),
        (
            "retained messages/count",
            state.retained().count().to_string(),
        ),
        ("messages/received", stats.publishes_received.to_string()),
        ("messages/sent", stats.deliveries.to_string()),
        ("publish/messages/dropped", dropped.to_string()),
    ];
    for (name, value) in values {
        // The names above are fixed ASCII without wildcards.
        let topic = TopicName::new(&format!("$SYS/broker/{name}")).expect("valid $SYS topic");
        broker.publish_system(topic, Bytes::from(value), true, now_ms);
    }
}
