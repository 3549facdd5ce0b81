//! The shell's side of the admin HTTP API: the listener a node binds for it
//! ([`ServerSettings::http_listen`](super::ServerSettings::http_listen)), that listener's
//! bounds, who may use the API, and what a running node hands the API when it starts it. The
//! API itself (`crate::admin`) sits above the shell: whoever builds the node gives it to
//! [`Server::with_admin_api`](super::Server::with_admin_api).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::Raft;
use tokio::sync::watch;

use crate::auth::PasswordFile;
use crate::cluster::{MembershipChanger, TypeConfig};

use super::{ConnectionContext, Hub, Reloader};

/// The admin API's credentials.
#[derive(Clone, Default)]
pub struct AdminAccess {
    /// The API key, if one is configured.
    pub api_key: Option<String>,
    /// Users of the password file who may use basic auth.
    pub users: Vec<String>,
    pub passwords: Option<Arc<PasswordFile>>,
}

impl std::fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccess")
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("users", &self.users)
            .finish()
    }
}

impl AdminAccess {
    /// Whether anyone may use the API without credentials.
    pub fn is_open(&self) -> bool {
        self.api_key.is_none() && self.users.is_empty()
    }
}

/// How much the admin listener holds and for how long (`[admin]`; the defaults are those of
/// the configuration, which `startup`'s tests keep equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Most connections open at once.
    pub connections_max: usize,
    /// The longest a request's head may take to arrive, counted from when the connection
    /// waits for it: a connection idle that long between requests is closed too.
    pub header_timeout: Duration,
    /// The longest a request may take from its head to its answer (its body read and its
    /// handler run: a membership change waits for a new node to catch up).
    pub request_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> AdminLimits {
        AdminLimits {
            connections_max: 256,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// What the admin API's handlers reach of a running node.
#[derive(Clone)]
pub struct Admin {
    pub hub: Arc<Hub>,
    pub raft: Raft<TypeConfig>,
    /// Membership changes (`POST` and `DELETE /api/v1/cluster/nodes`).
    pub changer: Arc<MembershipChanger>,
    /// For publishing through a loopback session (`POST /api/v1/publish`).
    pub ctx: Arc<ConnectionContext>,
    /// Who may use the API (a reload may replace it).
    pub access: Arc<RwLock<Arc<AdminAccess>>>,
    /// `POST /api/v1/reload`; `None` when the node was not started from a configuration.
    pub reloader: Option<Arc<Reloader>>,
    /// The admin listener's own counters (connections, timeouts), for `/metrics`.
    pub stats: Arc<AdminStats>,
}

/// What the admin listener counts (`crate::admin`'s own loop), for `/metrics`.
#[derive(Debug, Default)]
pub struct AdminStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections closed at once: the cap was reached and every connection had a request
    /// in flight.
    pub refused: AtomicU64,
    /// Idle connections closed to make room for a new one at the cap.
    pub evicted: AtomicU64,
    /// Connections closed because a request's head did not arrive in time.
    pub header_timeouts: AtomicU64,
    /// Requests answered 503 because they took longer than the request timeout.
    pub request_timeouts: AtomicU64,
}

/// What a running node gives the admin API: the listener bound for it, what its handlers
/// reach, the listener's bounds, and the node's stop signal.
pub struct AdminParts<L> {
    pub listener: L,
    pub admin: Admin,
    pub limits: AdminLimits,
    /// Turns true when the node stops.
    pub stop: watch::Receiver<bool>,
}

/// Starts the admin API on a running node, at the point of [`Server::run`](super::Server::run)
/// where the node's other tasks start: `crate::admin::start`.
pub type AdminApi<L> = fn(AdminParts<L>);
