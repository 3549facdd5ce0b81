//! What the integration tests share: a Keel node on a free loopback port (shut down when
//! dropped), rumqttc clients driven in the background for MQTT 3.1.1 ([`v3`]) and 5 ([`v5`]),
//! and a raw-packet client ([`raw`]) for what rumqttc cannot send. The real `keel` binary
//! runs as a child process that a test can kill and restart ([`process`]), with a raw
//! connection that reports the broker's death instead of failing on it ([`link`]).
//!
//! Every wait is for an event and is bounded by [`EVENT_TIMEOUT`]; a test fails instead of
//! hanging. Where no packet tells a test that the broker has done something (a connection
//! drop was noticed), [`TestBroker::wait_until`] watches the broker core itself.

#![allow(dead_code)]

pub mod driven;
pub mod http;
pub mod link;
pub mod process;
pub mod raw;
pub mod tls;
pub mod v3;
pub mod v5;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keel::broker::Broker;
use keel::net::{Rng, SystemClock, TokioNet};
use keel::server::{Hub, ListenerSpec, Server, ServerSettings};
use keel::transport::TransportAcceptor;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The longest any single expected event may take. Generous for a loaded 2-core machine; a
/// passing test never waits this long.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The least time a 1 s interval of the broker's clock can take on the test's clock: the
/// broker counts whole milliseconds of wall-clock time.
pub const ONE_SECOND_MIN: Duration = Duration::from_millis(990);

/// How often [`TestBroker::wait_until`] looks at the broker core.
const WATCH_INTERVAL: Duration = Duration::from_millis(5);

/// Awaits `future`, failing the test with `what` if it takes longer than [`EVENT_TIMEOUT`].
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(EVENT_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {EVENT_TIMEOUT:?} waiting for {what}"))
}

/// When the test made the broker start counting, bracketed by two clock readings: the broker's
/// own timestamp is no earlier than `started` (read before the test acted) and usually no
/// later than `confirmed` (read once the test saw its action done). Lower bounds are measured
/// from `started`, so they hold however late the test task runs; upper bounds from
/// `confirmed`, so the test's own delays do not count against the broker.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    started: Instant,
    confirmed: Instant,
}

impl Moment {
    /// Reads the clock before acting.
    pub fn begin() -> Moment {
        let now = Instant::now();
        Moment {
            started: now,
            confirmed: now,
        }
    }

    /// Reads the clock once the action is seen done.
    pub fn confirm(mut self) -> Moment {
        self.confirmed = Instant::now();
        self
    }

    /// Asserts that what just happened came at least `min` and less than `max` after the
    /// moment.
    pub fn assert_elapsed(&self, what: &str, min: Duration, max: Duration) {
        let since_start = self.started.elapsed();
        let since_confirmed = self.confirmed.elapsed();
        assert!(
            since_start >= min,
            "{what} after {since_start:?}, earlier than {min:?}"
        );
        assert!(
            since_confirmed < max,
            "{what} after {since_confirmed:?}, not within {max:?}"
        );
    }
}

pub struct TestBroker {
    /// The first MQTT listener.
    pub addr: SocketAddr,
    /// Every MQTT listener, in the order of the settings' listeners.
    pub addrs: Vec<SocketAddr>,
    /// The admin HTTP API, when the settings asked for one.
    pub admin: Option<SocketAddr>,
    /// The node's Raft handle, for a test that changes the cluster under the node.
    pub raft: openraft::Raft<keel::cluster::TypeConfig>,
    hub: Arc<Hub>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestBroker {
    /// Starts a node with `settings`, listening on one TCP port of 127.0.0.1, and the admin
    /// HTTP API on another when the settings have one (never on the configured port, which
    /// would collide between tests running in parallel).
    /// The TCP listener keeps the connection cap the settings give theirs.
    pub async fn start(mut settings: ServerSettings) -> TestBroker {
        let connections_max = settings
            .listeners
            .iter()
            .find(|l| l.acceptor.transport() == keel::transport::Transport::Tcp)
            .and_then(|l| l.connections_max);
        settings.listeners = vec![ListenerSpec {
            addr: "127.0.0.1:0".into(),
            acceptor: TransportAcceptor::tcp(),
            connections_max,
        }];
        TestBroker::start_listening(settings).await
    }

    /// Starts a node on the settings' own listeners (transports and caps), each moved to a
    /// free port of 127.0.0.1: see [`TestBroker::addrs`].
    pub async fn start_listening(mut settings: ServerSettings) -> TestBroker {
        for listener in &mut settings.listeners {
            listener.addr = "127.0.0.1:0".into();
        }
        if settings.http_listen.is_some() {
            settings.http_listen = Some("127.0.0.1:0".into());
        }
        let server = Server::bind(&TokioNet, settings, Arc::new(SystemClock))
            .await
            .expect("bind")
            .with_admin_api(keel::admin::start);
        let addrs = server.local_addrs().expect("local addr");
        let addr = addrs[0];
        let admin = server.admin_addr();
        let hub = server.hub();
        let raft = server.raft();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(Rng::from_seed(7), async {
            let _ = stopped.await;
        }));
        TestBroker {
            addr,
            addrs,
            admin,
            raft,
            hub,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Shuts the node down and waits until it has stopped (its Raft node included), so
    /// another node can open the same store.
    pub async fn shut_down(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            within("the node to stop", task)
                .await
                .expect("node task")
                .expect("node run");
        }
    }

    pub async fn start_default() -> TestBroker {
        TestBroker::start(ServerSettings::default()).await
    }

    /// Default settings without `$SYS` topics, so that nothing but the test's own clients
    /// publishes; tests change the fields they are about.
    pub fn settings() -> ServerSettings {
        ServerSettings {
            sys_interval: Duration::ZERO,
            ..ServerSettings::default()
        }
    }

    /// A node with [`TestBroker::settings`].
    pub async fn start_quiet() -> TestBroker {
        TestBroker::start(TestBroker::settings()).await
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Reads the broker core under its lock.
    pub fn inspect<T>(&self, read: impl FnOnce(&Broker) -> T) -> T {
        read(&self.hub.lock().broker)
    }

    /// Waits until `condition` holds for the broker core.
    pub async fn wait_until(&self, what: &str, condition: impl Fn(&Broker) -> bool) {
        within(what, async {
            while !self.inspect(&condition) {
                tokio::time::sleep(WATCH_INTERVAL).await;
            }
        })
        .await
    }

    /// Waits until the broker has noticed that `client_id`'s connection ended: its session is
    /// kept offline or is gone.
    pub async fn wait_offline(&self, client_id: &str) {
        self.wait_until(&format!("{client_id} to be offline"), |broker| {
            broker
                .session(client_id)
                .is_none_or(|session| !session.connected)
        })
        .await
    }

    /// Waits until `client_id` has no session at all.
    pub async fn wait_session_gone(&self, client_id: &str) {
        self.wait_until(&format!("the session of {client_id} to end"), |broker| {
            broker.session(client_id).is_none()
        })
        .await
    }

    /// Whether `client_id` has a session (connected or not).
    pub fn has_session(&self, client_id: &str) -> bool {
        self.inspect(|broker| broker.session(client_id).is_some())
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.stop()
    }
}

impl TestBroker {
    /// Starts the node's shutdown (MQTT 5 clients are told 0x8B); the port stays bound until
    /// the node has finished.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
