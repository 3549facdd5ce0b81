//! `HOST:PORT` addresses of peers: checked when parsed, resolved when used.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A `HOST:PORT` address that may name a host (`node2.example:7000`), an IPv4 address, or a
/// bracketed IPv6 address (`[::1]:7000`). Resolved when used, not when parsed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPort {
    /// Host name or IP address; an IPv6 address keeps its brackets.
    pub host: String,
    /// Never 0.
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(text: &str) -> Result<HostPort, String> {
        let bad = |why: &str| format!("invalid address {text:?}: {why} (expected HOST:PORT)");
        let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not 1 to 65535"))?;
        if port == 0 {
            return Err(bad("the port is not 1 to 65535"));
        }
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if !bracketed && host.contains(':') {
            return Err(bad("an IPv6 address needs brackets, as in [::1]:7000"));
        }
        let invalid = |c: char| c.is_whitespace() || c.is_control() || "@,/".contains(c);
        if host.contains(invalid) {
            return Err(bad("the host contains a space, '@', ',' or '/'"));
        }
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl TryFrom<String> for HostPort {
    type Error = String;
    fn try_from(text: String) -> Result<HostPort, String> {
        text.parse()
    }
}

impl From<HostPort> for String {
    fn from(addr: HostPort) -> String {
        addr.to_string()
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}
