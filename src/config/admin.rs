//! `[admin]`: who may use the admin HTTP API and what its traces and listener may hold.

use serde::{Deserialize, Serialize};

use super::{ensure, Config, InvalidConfig};

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
        // The shell's own defaults (its `TraceLimits` and `AdminLimits`): `startup`'s tests
        // keep them equal.
        AdminConfig {
            api_key: None,
            users: Vec::new(),
            trace_clients_max: 16,
            trace_events_max: 1000,
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

impl Config {
    /// `[admin]`, and the admin listener of `[listeners]`: one that other hosts reach needs
    /// credentials.
    pub(super) fn validate_admin(&self) -> Result<(), InvalidConfig> {
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
        Ok(())
    }
}
