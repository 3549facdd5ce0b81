//! Who may use the admin API (`[admin]`): an API key (`Authorization: Bearer KEY` or
//! `X-API-Key: KEY`) and/or HTTP basic auth for the users named in `[admin] users`, checked
//! against the password file of `[auth]`. Without either, the API is open (and the node says
//! so in its log at start-up). `/healthz` is always open: load balancers ask it.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::{error, Admin};
use crate::server::AdminAccess;

/// Whether the request's `Authorization` / `X-API-Key` headers grant access. A basic
/// auth password is verified on the blocking pool (an argon2id verification holds a core
/// for 15 ms or more), for every user name alike: one that is not an admin, or not in the
/// password file, costs the same as a wrong password, so the time taken tells nothing.
async fn grants(access: &AdminAccess, headers: &axum::http::HeaderMap) -> bool {
    if access.is_open() {
        return true;
    }
    if let Some(key) = &access.api_key {
        let offered = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
            });
        if offered.is_some_and(|offered| same(offered.as_bytes(), key.as_bytes())) {
            return true;
        }
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let (Some(credentials), Some(passwords)) = (basic, &access.passwords) else {
        return false;
    };
    let Some((user, password)) = credentials.split_once(':') else {
        return false;
    };
    let admin = access.users.iter().any(|u| u == user);
    let (passwords, user, password) = (passwords.clone(), user.to_owned(), password.to_owned());
    let verified =
        tokio::task::spawn_blocking(move || passwords.verify(&user, password.as_bytes()));
    verified.await.unwrap_or(false) && admin
}

/// Compares two secrets in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware in front of every route but `/healthz`.
pub(super) async fn require(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let access = admin
        .access
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let open = request.uri().path() == "/healthz";
    if open || grants(&access, request.headers()).await {
        return next.run(request).await;
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "credentials needed: an API key (Authorization: Bearer KEY, or X-API-Key) or basic auth",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"keel\""),
    );
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn secrets_compare_whole() {
        assert!(same(b"key", b"key"));
        assert!(!same(b"key", b"kez"));
        assert!(!same(b"key", b"key2"));
    }
}
