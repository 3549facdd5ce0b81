//! What the session asks of authentication and authorisation: the [`Authenticator`] that
//! judges a CONNECT (and runs MQTT 5 enhanced authentication, [`AuthExchange`]), and the
//! [`Permissions`] of an accepted client. The implementations live in [`crate::auth`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{Connect, MqttString, ReasonCode};

/// A future an [`Authenticator`] may return: no runtime, just `std`.
pub type AuthFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ReasonCode>> + Send + 'a>>;

/// What the shell knows of a client besides its CONNECT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// Where the connection comes from.
    pub addr: Option<SocketAddr>,
    /// The name a verified TLS client certificate gives (its subject's CN, else its first
    /// DNS or e-mail SAN), when the listener takes certificates as identities and the name
    /// can be an MQTT user name. The shell has already made it the CONNECT's user name.
    pub cert_identity: Option<MqttString>,
}

/// Checks the credentials of a CONNECT, and says what an accepted client may do.
pub trait Authenticator: Send + Sync {
    /// `Ok(())` accepts the client; `Err` refuses it with that CONNACK reason (0x86 bad user
    /// name or password, 0x87 not authorized).
    fn authenticate(&self, connect: &Connect) -> Result<(), ReasonCode>;

    /// The same decision, allowed to wait (a slow password hash, a call to an HTTP service)
    /// and to consider where the client comes from: the shell asks this before it hands the
    /// CONNECT to the session, outside the broker's lock, and gives the session the answer
    /// ([`Decided`]). By default, the synchronous rule.
    fn authenticate_async<'a>(
        &'a self,
        connect: &'a Connect,
        _peer: &'a PeerInfo,
    ) -> AuthFuture<'a> {
        Box::pin(std::future::ready(self.authenticate(connect)))
    }

    /// The permissions of a client [`authenticate`](Authenticator::authenticate) accepted,
    /// known by its (possibly assigned) `client_id`; `None`: it may do anything.
    fn permissions(&self, _connect: &Connect, _client_id: &str) -> Option<Arc<dyn Permissions>> {
        None
    }

    /// Starts MQTT 5 enhanced authentication (§4.12) by `method`, for a CONNECT or a
    /// re-authentication; `None` when the method is not offered (CONNACK 0x8C).
    fn start_exchange(&self, _method: &str) -> Option<Box<dyn AuthExchange>> {
        None
    }
}

/// One run of an enhanced authentication method: the server's side of the AUTH exchange.
/// Pure and quick (no waiting): it runs under the broker's lock.
pub trait AuthExchange: Send + fmt::Debug {
    /// The client's next Authentication Data (from CONNECT, then from each AUTH 0x18).
    fn step(&mut self, data: &[u8]) -> AuthStep;
}

/// What an [`AuthExchange`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthStep {
    /// Send this Authentication Data in AUTH 0x18 Continue authentication.
    Continue(Bytes),
    /// Authenticated as `username`; `data` (if any) goes in the CONNACK or the AUTH 0x00.
    Success {
        username: String,
        data: Option<Bytes>,
    },
    /// Refuse with this reason (CONNACK, or DISCONNECT after a re-authentication).
    Failure(ReasonCode),
}

/// What one client may do (authorisation, e.g. an ACL). Asked on every PUBLISH it sends,
/// every filter it subscribes to, and every message about to be delivered to it.
pub trait Permissions: Send + Sync + fmt::Debug {
    /// May it publish to this topic name?
    fn may_publish(&self, topic: &str) -> bool;
    /// May it subscribe to this filter (`$share/group/filter` included)?
    fn may_subscribe(&self, filter: &str) -> bool;
    /// May a message on this topic be delivered to it?
    fn may_receive(&self, topic: &str) -> bool;
}

/// A verdict reached before the session saw the CONNECT (by
/// [`Authenticator::authenticate_async`]), and the authenticator that reached it, which
/// still says what the client may do and runs enhanced authentication.
pub struct Decided<'a> {
    pub verdict: Result<(), ReasonCode>,
    pub by: &'a dyn Authenticator,
}

impl Authenticator for Decided<'_> {
    fn authenticate(&self, _: &Connect) -> Result<(), ReasonCode> {
        self.verdict
    }

    fn permissions(&self, connect: &Connect, client_id: &str) -> Option<Arc<dyn Permissions>> {
        self.by.permissions(connect, client_id)
    }

    fn start_exchange(&self, method: &str) -> Option<Box<dyn AuthExchange>> {
        self.by.start_exchange(method)
    }
}

/// Accepts every client.
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate(&self, _: &Connect) -> Result<(), ReasonCode> {
        Ok(())
    }
}
