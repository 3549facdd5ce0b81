//! Reloading the configuration of a running node (SIGHUP, `POST /api/v1/reload`) without
//! dropping connections: authentication (password file, anonymous access), the ACL (in force
//! at once for connected clients too), the admin API's credentials and trace limits, and the
//! session limits of new connections. The source (the configuration file with the command
//! line's overrides) is read and checked first; anything wrong with it refuses the reload with
//! the reason, and what is in force stays.

use std::sync::{Arc, RwLock};

use crate::session::{Authenticator, SessionConfig};

use super::admin_api::AdminAccess;
use super::connection::ConnectionContext;

/// What a reload puts in force.
pub struct Reloaded {
    pub auth: Arc<dyn Authenticator>,
    pub session: SessionConfig,
    pub admin_access: AdminAccess,
    /// For traces started from now on.
    pub trace: super::trace::TraceLimits,
    /// What changed but needs a restart to take effect.
    pub notes: Vec<String>,
}

/// Reads the configuration again and prepares what it says; `Err` says why it cannot be.
pub type ReloadSource = Arc<dyn Fn() -> Result<Reloaded, ReloadError> + Send + Sync>;

/// Why a reload was refused; the configuration in force stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration could not be read again (the file and the command line's
    /// overrides), or it is not valid.
    #[error(transparent)]
    Config(Box<dyn std::error::Error + Send + Sync>),
    /// The authentication it describes could not be loaded (password file, JWT key, ACL).
    #[error(transparent)]
    Auth(#[from] crate::auth::NodeAuthError),
    /// The admin API's users could not be loaded (their password file).
    #[error(transparent)]
    AdminAccess(#[from] crate::auth::AuthError),
}

/// Carries out reloads for a running node.
pub struct Reloader {
    source: ReloadSource,
    ctx: Arc<ConnectionContext>,
    admin_access: Arc<RwLock<Arc<AdminAccess>>>,
}

impl Reloader {
    pub fn new(
        source: ReloadSource,
        ctx: Arc<ConnectionContext>,
        admin_access: Arc<RwLock<Arc<AdminAccess>>>,
    ) -> Reloader {
        Reloader {
            source,
            ctx,
            admin_access,
        }
    }

    /// Reloads; returns the notes on what needs a restart, or why nothing changed.
    pub fn reload(&self) -> Result<Vec<String>, ReloadError> {
        let reloaded = (self.source)().inspect_err(|why| {
            tracing::error!(%why, "reload refused: the configuration in force stays");
        })?;
        self.ctx.replace(reloaded.auth, reloaded.session);
        *self.admin_access.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(reloaded.admin_access);
        self.ctx.hub.tracer.set_limits(reloaded.trace);
        for note in &reloaded.notes {
            tracing::warn!(%note, "reloaded, but this needs a restart");
        }
        tracing::info!("configuration reloaded: authentication, ACL, admin access, session limits");
        Ok(reloaded.notes)
    }
}
