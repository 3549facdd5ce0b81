//! The broker's configuration: the TOML file (`keel serve --config FILE`), its defaults, its
//! validation, and the per-layer settings it turns into
//! ([`SessionConfig`](crate::session::SessionConfig),
//! [`BrokerConfig`](crate::broker::BrokerConfig),
//! [`TlsSettings`](crate::transport::TlsSettings), [`WsConfig`](crate::transport::WsConfig)).
//!
//! Every table rejects unknown keys, so a misspelt option is an error rather than a silently
//! ignored line. Every key may be left out and then takes its default; `keel.example.toml` at
//! the repository root lists them all (a test keeps it equal to [`Config::default`]).
//!
//! Listener addresses are `"IP:PORT"` strings; the empty string `""` turns that listener off
//! (the same convention on the command line: `--ws-listen ""`).

mod addr;
mod admin;
mod auth;
mod cluster;
mod convert;
mod durability;
mod listeners;
mod mqtt;
#[cfg(test)]
mod tests;
mod tls;

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::net::HostPort;

pub use addr::{parse_listen_addr, Peer};
pub use admin::AdminConfig;
pub use auth::{AuthConfig, AuthMethodName, HttpAuthConfig, JwtConfig, JwtFrom};
pub use cluster::{ClusterConfig, ClusterTlsConfig};
pub use durability::{DurabilityConfig, StoreKind, SyncMode};
pub use listeners::ListenersConfig;
pub use mqtt::{MqttConfig, Overflow, CLIENT_ID_LEN_REQUIRED, PACKET_SIZE_MIN};
pub use tls::TlsConfig;

/// What a printed configuration shows instead of a secret.
pub const REDACTED: &str = "<redacted>";

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
    /// Each table is checked by the file that defines it; the first problem found is the one
    /// reported, in this order.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        ensure(!self.data_dir.as_os_str().is_empty(), "data_dir", || {
            "must not be empty".to_owned()
        })?;
        self.validate_listeners()?;
        self.validate_admin()?;
        self.validate_durability()?;
        self.validate_tls()?;
        self.validate_mqtt()?;
        self.validate_auth()?;
        self.validate_cluster()
    }
}
