//! Starting a node: the wiring above every layer. A [`Config`] becomes the settings of each
//! layer and of the shell ([`settings`]: listeners, store, authenticator, admin access, cluster);
//! [`serve`] binds the node, gives it the admin API (`crate::admin`, which the shell does not
//! know) and runs it on a tokio runtime until SIGTERM or Ctrl-C; [`serve_reloadable`] also
//! reloads the configuration on SIGHUP and `POST /api/v1/reload`.
//!
//! | file | owns |
//! |------|------|
//! | `settings.rs` | the configuration into the node's settings |
//! | `reload.rs` | what a reload puts in force, and what needs a restart |
//! | `fd_budget.rs` | the open-files limit shared out between the listeners |

mod fd_budget;
mod reload;
mod settings;

use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::net::{Rng, SystemClock, TokioNet};
use crate::server::{BlockingOffload, ReloadError, ServeError, Server, ServerSettings};

pub use settings::{admin_limits, settings, sync_policy, trace_limits};

/// What a reload reads: the configuration as `keel serve` would build it now (file and
/// flags), checked.
pub type ConfigSource =
    Box<dyn Fn() -> Result<Config, Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// Runs a node until SIGTERM or Ctrl-C, reloading from `source` on SIGHUP and
/// `POST /api/v1/reload` (see `server::Reloader` for what a reload changes).
pub fn serve_reloadable(config: Config, source: ConfigSource) -> Result<(), ServeError> {
    let live = Arc::new(RwLock::new(None));
    let offload = Arc::new(BlockingOffload::default());
    let mut settings = settings::settings_with_acl(&config, &live, &offload)?;
    let started = config.clone();
    settings.reload = Some(Arc::new(move || {
        let new = source().map_err(ReloadError::Config)?;
        reload::reload_from(&started, &new, &live, &offload)
    }));
    settings.reload_on_sighup = true;
    run(config, settings)
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
    if let Some(limit) = fd_budget::raise_nofile_limit() {
        let admin = match settings.http_listen {
            Some(_) => settings.admin_limits.connections_max,
            None => 0,
        };
        let fits = fd_budget::mqtt_connections_max(limit, settings.max_connections, admin);
        if fits < settings.max_connections {
            tracing::warn!(
                configured = settings.max_connections,
                lowered_to = fits,
                open_files_limit = limit,
                "mqtt.connections_max lowered: the process may open {limit} files and keeps \
                 {} of them for storage, peers and the admin API",
                fd_budget::FD_RESERVE + admin
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
                other => ServeError::DataDir {
                    dir: data_dir,
                    error: Box::new(other),
                },
            })?;
        server
            .with_admin_api(crate::admin::start)
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
