//! [`HttpHook`]: the `http` method of the [`AuthChain`](crate::auth::AuthChain), a
//! [`RemoteMethod`] of the shell (it does I/O). The broker asks an
//! HTTP service of the operator's whether a client may connect, as EMQX's HTTP authenticator
//! and Mosquitto's go-auth do:
//!
//! ```text
//! POST <url>   Content-Type: application/json
//! {"client_id": "...", "username": "..." | null, "password": "..." | null,
//!  "password_base64": "..." (instead of password when it is not UTF-8),
//!  "peer_addr": "IP:PORT" | null, "protocol_version": 3 | 4 | 5}
//! ```
//!
//! The answer: `200` with `{"result": "allow" | "deny" | "ignore"}`, or `204` (allow). Anything
//! else (another status, a malformed body, no answer within `timeout_ms`, a refused
//! connection) is logged, counted and treated as `ignore`, so the chain goes on, and a client
//! that names a user is refused if no later method accepts it: the hook failing never lets
//! anyone in. Allow and deny answers are cached for `cache_ttl_secs` (per client id, user
//! name, password and peer IP, hashed), at most `cache_max` of them.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::auth::{Decision, DecisionFuture, HttpAuthConfig, RemoteMethod};
use crate::codec::{Connect, Protocol, ReasonCode};
use crate::net::{Net, TokioNet};
use crate::session::PeerInfo;

/// Calls of every HTTP hook of this process that failed (`keel_auth_hook_errors_total`). One
/// process-wide counter: a reload replaces the hook, and the count must go on.
pub static HOOK_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Largest answer body read.
const ANSWER_LEN_MAX: usize = 64 * 1024;

/// The `http` method.
pub struct HttpHook {
    uri: Uri,
    /// `HOST:PORT` to connect to.
    authority: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    cache_ttl: Duration,
    cache: Mutex<DecisionCache>,
}

impl fmt::Debug for HttpHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpHook")
            .field("uri", &self.uri)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The `http` method `[auth.http]` describes (a [`crate::auth::RemoteFactory`]).
pub fn http_auth_method(config: &HttpAuthConfig) -> Result<Box<dyn RemoteMethod>, String> {
    Ok(Box::new(
        HttpHook::from_config(config).map_err(|e| e.to_string())?,
    ))
}

impl RemoteMethod for HttpHook {
    fn decide<'a>(&'a self, connect: &'a Connect, peer: &'a PeerInfo) -> DecisionFuture<'a> {
        Box::pin(self.ask(connect, peer))
    }
}

/// Why `[auth.http]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HttpHookError {
    #[error("[auth.http] url {0:?} is not an http:// URL with a host (https: put a TLS proxy on the same host)")]
    Url(String),
    #[error("[auth.http] header {0:?} is not a valid HTTP header")]
    Header(String),
}

impl HttpHook {
    pub fn from_config(config: &HttpAuthConfig) -> Result<HttpHook, HttpHookError> {
        let bad_url = || HttpHookError::Url(config.url.clone());
        let uri: Uri = config.url.parse().map_err(|_| bad_url())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad_url());
        }
        let host = uri.host().ok_or_else(bad_url)?;
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        let headers = config
            .headers
            .iter()
            .map(|(name, value)| {
                let bad = || HttpHookError::Header(name.clone());
                Ok((
                    HeaderName::try_from(name.as_str()).map_err(|_| bad())?,
                    HeaderValue::try_from(value.as_str()).map_err(|_| bad())?,
                ))
            })
            .collect::<Result<_, HttpHookError>>()?;
        Ok(HttpHook {
            uri,
            authority,
            headers,
            timeout: Duration::from_millis(config.timeout_ms),
            cache_ttl: Duration::from_secs(config.cache_ttl_secs),
            cache: Mutex::new(DecisionCache::new(config.cache_max)),
        })
    }

    /// Asks the service (or the cache) about `connect`.
    pub async fn ask(&self, connect: &Connect, peer: &PeerInfo) -> Decision {
        let key = cache_key(connect, peer);
        let now = Instant::now();
        if let Some(decision) = self.cache().get(&key, now) {
            return decision;
        }
        let body = request_body(connect, peer);
        let answer = tokio::time::timeout(self.timeout, self.call(body)).await;
        let decision = match answer {
            Ok(Ok(decision)) => decision,
            Ok(Err(why)) => return self.failed(&why),
            Err(_) => return self.failed("no answer in time"),
        };
        if decision != Decision::Ignore && !self.cache_ttl.is_zero() {
            self.cache().insert(key, decision, now + self.cache_ttl);
        }
        decision
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, DecisionCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self, why: &str) -> Decision {
        HOOK_ERRORS.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(url = %self.uri, why, "authentication hook failed: passing to the next method");
        Decision::Ignore
    }

    /// One request on a connection of its own.
    async fn call(&self, body: Vec<u8>) -> Result<Decision, String> {
        let stream = TokioNet
            .connect(&self.authority)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        // Drives the connection; ends when the request is done and `sender` dropped, and at
        // the latest after the timeout, so a service that never answers leaves no task or
        // socket behind.
        tokio::spawn(tokio::time::timeout(self.timeout, connection));
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = Request::post(path)
            .header(HOST, self.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("request: {e}"))?;
        request.headers_mut().extend(self.headers.iter().cloned());
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        match response.status() {
            StatusCode::NO_CONTENT => return Ok(Decision::Allow),
            StatusCode::OK => {}
            status => return Err(format!("status {status}")),
        }
        let body = Limited::new(response.into_body(), ANSWER_LEN_MAX)
            .collect()
            .await
            .map_err(|e| format!("answer: {e}"))?
            .to_bytes();
        parse_answer(&body).ok_or_else(|| "answer is not {\"result\": allow|deny|ignore}".into())
    }
}

fn request_body(connect: &Connect, peer: &PeerInfo) -> Vec<u8> {
    let password = connect.password.as_deref();
    let text = password.and_then(|p| std::str::from_utf8(p).ok());
    let mut body = serde_json::json!({
        "client_id": connect.client_id.as_str(),
        "username": connect.username.as_ref().map(|u| u.as_str()),
        "password": text,
        "peer_addr": peer.addr.map(|a| a.to_string()),
        "protocol_version": match connect.protocol {
            Protocol::V3_1 => 3,
            Protocol::V3_1_1 => 4,
            Protocol::V5 => 5,
        },
    });
    if let (Some(password), None) = (password, text) {
        body["password_base64"] = base64::engine::general_purpose::STANDARD
            .encode(password)
            .into();
    }
    body.to_string().into_bytes()
}

fn parse_answer(body: &[u8]) -> Option<Decision> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    match answer.get("result")?.as_str()? {
        "allow" => Some(Decision::Allow),
        "deny" => Some(Decision::Deny(ReasonCode::NotAuthorized)),
        "ignore" => Some(Decision::Ignore),
        _ => None,
    }
}

/// A digest of what the answer depends on, so the cache keeps no passwords.
type CacheKey = [u8; 32];

fn cache_key(connect: &Connect, peer: &PeerInfo) -> CacheKey {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut field = |bytes: &[u8]| {
        context.update(&(bytes.len() as u64).to_be_bytes());
        context.update(bytes);
    };
    field(connect.client_id.as_bytes());
    field(connect.username.as_ref().map_or(&[][..], |u| u.as_bytes()));
    field(connect.password.as_deref().unwrap_or_default());
    let ip = peer.addr.map(|a| a.ip());
    field(
        ip.map(|ip: IpAddr| ip.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    context
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// Recent answers, bounded: the oldest go first when it is full.
struct DecisionCache {
    entries: BTreeMap<CacheKey, (Decision, Instant)>,
    /// Insertion order, for eviction.
    order: VecDeque<CacheKey>,
    max: usize,
}

impl DecisionCache {
    fn new(max: usize) -> DecisionCache {
        DecisionCache {
            entries: BTreeMap::new(),
            order: VecDeque::new(),
            max,
        }
    }

    /// The cached answer, if still fresh. An expired one stays until replaced or evicted,
    /// so that `order` always holds exactly the keys of `entries`.
    fn get(&self, key: &CacheKey, now: Instant) -> Option<Decision> {
        self.entries
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(decision, _)| *decision)
    }

    fn insert(&mut self, key: CacheKey, decision: Decision, expires: Instant) {
        if self.max == 0 {
            return;
        }
        if let Some(entry) = self.entries.get_mut(&key) {
            *entry = (decision, expires);
            return;
        }
        while self.entries.len() >= self.max {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.entries.insert(key, (decision, expires));
        self.order.push_back(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse() {
        assert_eq!(
            parse_answer(br#"{"result":"allow"}"#),
            Some(Decision::Allow)
        );
        assert_eq!(
            parse_answer(br#"{"result":"deny","why":"x"}"#),
            Some(Decision::Deny(ReasonCode::NotAuthorized))
        );
        assert_eq!(
            parse_answer(br#"{"result":"ignore"}"#),
            Some(Decision::Ignore)
        );
        for bad in [
            &br#"{"result":"yes"}"#[..],
            b"allow",
            b"{}",
            br#"{"result":1}"#,
        ] {
            assert_eq!(parse_answer(bad), None);
        }
    }

    #[test]
    fn the_cache_is_bounded_and_expires() {
        let mut cache = DecisionCache::new(2);
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        cache.insert([1; 32], Decision::Allow, later);
        cache.insert([2; 32], Decision::Allow, later);
        cache.insert([3; 32], Decision::Allow, later);
        assert_eq!(cache.entries.len(), 2);
        assert_eq!(cache.get(&[1; 32], now), None, "the oldest went first");
        assert_eq!(cache.get(&[3; 32], now), Some(Decision::Allow));
        assert_eq!(cache.get(&[3; 32], later), None, "expired");
        for i in 0..100u8 {
            cache.insert([i; 32], Decision::Allow, later);
            assert!(cache.entries.len() <= 2 && cache.order.len() == cache.entries.len());
        }
    }
}
