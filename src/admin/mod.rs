//! The admin HTTP API (docs/design.md §7), on axum: the cluster (nodes, leader, term, commit and
//! applied index; joining and removing nodes), this node's clients, the sessions and their
//! subscriptions, retained messages, publishing over HTTP, per-client traces, health, Prometheus
//! metrics and an OpenAPI description. Served on a listener of the node's `Net`, like everything
//! else, and guarded by `[admin]`'s API key or basic auth when configured.
//!
//! Errors are JSON (`{"error": "..."}`) with a status code that says whose fault it is. Lists
//! come a page at a time (`?page=1&limit=100`), with `{"meta": {"page", "limit", "total"}}`.
//!
//! | file | routes |
//! |------|--------|
//! | `cluster.rs` | `/api/v1/cluster`, `/api/v1/cluster/nodes[/{id}]` |
//! | `clients.rs` | `/api/v1/clients[/{client_id}]`, `/api/v1/sessions/{client_id}`, `/api/v1/subscriptions` |
//! | `retained.rs` | `/api/v1/retained[/{topic}]`, `/api/v1/publish` |
//! | `trace.rs` | `/api/v1/trace[/{client_id}]` |
//! | `metrics.rs` | `/metrics` |
//! | `openapi.rs` | `/api/v1/openapi.json` |
//! | `access.rs` | who may use it |

mod access;
mod clients;
mod cluster;
mod listener;
mod metrics;
mod openapi;
mod retained;
mod trace;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::net::Listener;
use crate::server::AdminParts;

pub use crate::server::{Admin, AdminAccess, AdminLimits, AdminStats};
pub use openapi::spec as openapi_spec;

/// Starts the API on a running node's admin listener, until the node stops: the
/// [`AdminApi`](crate::server::AdminApi) a node is built with
/// ([`Server::with_admin_api`](crate::server::Server::with_admin_api)).
pub fn start<L: Listener>(parts: AdminParts<L>) {
    let AdminParts {
        listener,
        admin,
        limits,
        mut stop,
    } = parts;
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    tokio::spawn(async move {
        serve(listener, admin, limits, shutdown).await;
    });
}

/// Serves the API on `listener` within `limits` until `shutdown` completes.
pub async fn serve<L: Listener>(
    listener: L,
    admin: Admin,
    limits: AdminLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let stats = admin.stats.clone();
    listener::serve(listener, router(admin), limits, stats, shutdown).await
}

/// The routes of the API.
pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/openapi.json", get(openapi::openapi))
        .route("/api/v1/cluster", get(cluster::cluster))
        .route("/api/v1/cluster/nodes", post(cluster::add_node))
        .route("/api/v1/cluster/nodes/{id}", delete(cluster::remove_node))
        .route("/api/v1/clients", get(clients::clients))
        .route(
            "/api/v1/clients/{client_id}",
            get(clients::client).delete(clients::kick_client),
        )
        .route("/api/v1/sessions/{client_id}", get(clients::session))
        .route("/api/v1/subscriptions", get(clients::subscriptions))
        .route("/api/v1/retained", get(retained::list))
        .route(
            "/api/v1/retained/{*topic}",
            get(retained::get_one).delete(retained::delete_one),
        )
        .route("/api/v1/publish", post(retained::publish))
        .route("/api/v1/trace", get(trace::list))
        .route(
            "/api/v1/trace/{client_id}",
            get(trace::events).post(trace::start).delete(trace::stop),
        )
        .route("/api/v1/reload", post(reload))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            admin.clone(),
            access::require,
        ))
        .with_state(admin)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// Reloads the configuration (as SIGHUP does): 200 with notes on what needs a restart, or
/// 400 with why the new configuration was refused (the one in force stays).
async fn reload(State(admin): State<Admin>) -> Response {
    let Some(reloader) = &admin.reloader else {
        return error(
            StatusCode::CONFLICT,
            "this node was not started from a configuration it could read again",
        );
    };
    match reloader.reload() {
        Ok(notes) => Json(json!({ "ok": true, "needs_restart": notes })).into_response(),
        Err(why) => error(StatusCode::BAD_REQUEST, why.to_string()),
    }
}

async fn healthz(State(admin): State<Admin>) -> Response {
    let available = admin.hub.lock().broker.is_available();
    if available {
        Json(json!({ "status": "ok" })).into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no quorum: not serving clients",
        )
    }
}

/// The query string as `T`; a query that does not parse is a JSON error like every other
/// (axum's own `Query` answers in plain text).
struct Params<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for Params<T>
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Params(value))
            .map_err(|rejection| error(StatusCode::BAD_REQUEST, rejection.body_text()))
    }
}

/// Most items one page may hold.
const PAGE_LIMIT_MAX: usize = 10_000;

/// `?page=&limit=` of a list.
#[derive(Debug, Clone, Deserialize)]
struct Paging {
    page: Option<usize>,
    limit: Option<usize>,
}

/// A checked [`Paging`].
struct Page {
    page: usize,
    limit: usize,
}

impl Paging {
    /// The page asked for, or why it cannot be.
    fn checked(&self) -> Result<Page, String> {
        let page = self.page.unwrap_or(1);
        let limit = self.limit.unwrap_or(100);
        if page == 0 || limit == 0 || limit > PAGE_LIMIT_MAX {
            return Err(format!("page starts at 1; limit is 1 to {PAGE_LIMIT_MAX}"));
        }
        Ok(Page { page, limit })
    }
}

/// The answer to a list request: `base` with one page of `all` under `key` and its `meta`
/// (`{"page", "limit", "total"}`); a page that cannot be is a 400.
fn paged(mut base: Value, key: &str, all: Vec<Value>, paging: Paging) -> Response {
    let page = match paging.checked() {
        Ok(page) => page,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let total = all.len();
    let items: Vec<Value> = all
        .into_iter()
        .skip((page.page - 1).saturating_mul(page.limit))
        .take(page.limit)
        .collect();
    base["meta"] = json!({ "page": page.page, "limit": page.limit, "total": total });
    base[key] = Value::Array(items);
    Json(base).into_response()
}
