//! Reloading a running node's configuration: what a reload puts in force, and what it notes
//! as needing a restart.

use std::sync::Arc;

use crate::auth::{LiveAcl, PreparedAuth};
use crate::config::Config;
use crate::server::{BlockingOffload, ReloadError, Reloaded};

use super::settings::{admin_access, admin_limits, trace_limits};

/// Prepares a reload to `new` (what `started` said at start-up decides what needs a restart).
pub(super) fn reload_from(
    started: &Config,
    new: &Config,
    live: &Arc<LiveAcl>,
    offload: &Arc<BlockingOffload>,
) -> Result<Reloaded, ReloadError> {
    let prepared =
        PreparedAuth::load(&new.auth, &crate::server::http_auth_method)?.offloaded(offload.clone());
    let admin_access = admin_access(new)?;
    Ok(Reloaded {
        auth: Arc::new(prepared.commit(live)),
        session: new.session_config(),
        admin_access,
        trace: trace_limits(new),
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
