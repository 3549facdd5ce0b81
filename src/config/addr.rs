//! Addresses in the configuration: listeners (`"IP:PORT"`, or `""` for off), whether two
//! listeners would take the same port, and peers (`"ID@HOST:PORT"`).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::HostPort;

/// Parses a listener address: `"IP:PORT"`, or `""` for a listener that is off.
pub fn parse_listen_addr(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        format!(
            "invalid listen address {text:?}: expected IP:PORT such as 0.0.0.0:1883, \
             or \"\" to turn the listener off"
        )
    })
}

/// Serde for a listener address, `""` meaning off (TOML has no null).
pub(super) mod listen_addr {
    use std::net::SocketAddr;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match addr {
            Some(addr) => s.collect_str(addr),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_listen_addr(&text).map_err(D::Error::custom)
    }
}

/// Whether two listeners would take the same port: the same port other than 0 (port 0 asks
/// the OS for a free one), on the same IP or where one covers the other: `0.0.0.0` takes the
/// port on every IPv4 address, and `[::]` on every address (Linux binds it dual-stack).
pub(super) fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    let covers =
        |x: SocketAddr, y: SocketAddr| x.ip().is_unspecified() && (x.is_ipv6() || y.is_ipv4());
    let ips_overlap = a.ip() == b.ip() || covers(a, b) || covers(b, a);
    a.port() == b.port() && a.port() != 0 && ips_overlap
}

/// One initial voter: `ID@HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Peer {
    /// The peer's `node_id`.
    pub id: u64,
    /// Where its peers reach it.
    pub addr: HostPort,
}

impl FromStr for Peer {
    type Err = String;

    fn from_str(text: &str) -> Result<Peer, String> {
        let bad = |why: String| format!("invalid peer {text:?}: {why} (expected ID@HOST:PORT)");
        let (id, addr) = text
            .split_once('@')
            .ok_or_else(|| bad("no '@'".to_owned()))?;
        let id = id
            .parse()
            .map_err(|_| bad(format!("the id {id:?} is not a number")))?;
        let addr = addr.parse().map_err(bad)?;
        Ok(Peer { id, addr })
    }
}

impl TryFrom<String> for Peer {
    type Error = String;
    fn try_from(text: String) -> Result<Peer, String> {
        text.parse()
    }
}

impl From<Peer> for String {
    fn from(peer: Peer) -> String {
        peer.to_string()
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}
