//! The admin API's own HTTP/1.1 server loop over a [`Listener`] of the `Net` seam, with the
//! bounds `axum::serve` does not have: a cap on open connections, a deadline for each
//! request's head (which also closes a connection idle between requests) and for each whole
//! request.
//!
//! At the cap, a new connection is not refused outright: the connection that has waited
//! longest without a request in flight is closed to make room. Idle or trickling connections
//! (the cheap flood) cannot then lock an operator out, and a request being answered is never
//! cut off; only when every connection is in the middle of a request is the new one closed.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

use crate::net::Listener;
use crate::server::{AdminLimits, AdminStats};

/// Pause after a failed accept (often "too many open files"), which retrying at once would
/// only repeat in a hot loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long open connections get to finish once the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One open connection as the cap sees it.
struct Slot {
    /// Requests in flight on it (HTTP/1.1: 0 or 1).
    busy: u32,
    /// Order of its last change to idle: the smallest idle one is evicted first.
    idle_since: u64,
    /// Tells its task to close it.
    close: Arc<Notify>,
}

/// The open connections, for the cap.
#[derive(Default)]
struct Slots {
    open: BTreeMap<u64, Slot>,
    next_id: u64,
    /// A counter standing in for time: "longest idle" needs only an order.
    ticks: u64,
}

#[derive(Clone, Default)]
struct Registry(Arc<Mutex<Slots>>);

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes room for a new connection and registers it: its id and close signal, or `None`
    /// when it must be refused. `evicted` counts the idle connection closed for it.
    fn admit(&self, max: usize, stats: &AdminStats) -> Option<(u64, Arc<Notify>)> {
        let mut slots = self.lock();
        if slots.open.len() >= max {
            let oldest_idle = slots
                .open
                .iter()
                .filter(|(_, slot)| slot.busy == 0)
                .min_by_key(|(_, slot)| slot.idle_since)
                .map(|(id, _)| *id);
            let victim = oldest_idle.and_then(|id| slots.open.remove(&id))?;
            victim.close.notify_one();
            stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
        slots.next_id += 1;
        slots.ticks += 1;
        let id = slots.next_id;
        let close = Arc::new(Notify::new());
        let slot = Slot {
            busy: 0,
            idle_since: slots.ticks,
            close: close.clone(),
        };
        slots.open.insert(id, slot);
        Some((id, close))
    }

    /// A request starts (`+1`) or ends (`-1`) on connection `id`.
    fn mark(&self, id: u64, starts: bool) {
        let mut slots = self.lock();
        slots.ticks += 1;
        let ticks = slots.ticks;
        if let Some(slot) = slots.open.get_mut(&id) {
            if starts {
                slot.busy += 1;
            } else {
                slot.busy = slot.busy.saturating_sub(1);
                slot.idle_since = ticks;
            }
        }
    }

    fn leave(&self, id: u64) {
        self.lock().open.remove(&id);
    }
}

/// Marks a request in flight on a connection until dropped.
struct InFlight {
    registry: Registry,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.registry.mark(self.id, false);
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting and gives open connections [`SHUTDOWN_GRACE`] to finish.
pub async fn serve<L: Listener>(
    mut listener: L,
    router: Router,
    limits: AdminLimits,
    stats: Arc<AdminStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let registry = Registry::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some((id, close)) = registry.admit(limits.connections_max, &stats) else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let connection = Connection {
            id,
            registry: registry.clone(),
            router: router.clone(),
            limits,
            stats: stats.clone(),
        };
        tokio::spawn(connection.run(stream, close, stop_rx.clone()));
    }
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while !registry.lock().open.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One accepted connection and what it answers with.
struct Connection {
    id: u64,
    registry: Registry,
    router: Router,
    limits: AdminLimits,
    stats: Arc<AdminStats>,
}

impl Connection {
    async fn run(
        self,
        stream: crate::net::BoxStream,
        close: Arc<Notify>,
        mut stop: watch::Receiver<bool>,
    ) {
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        let (registry, id, stats) = (self.registry.clone(), self.id, self.stats.clone());
        let limits = self.limits;
        let answer = Arc::new(self);
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let answer = answer.clone();
            async move { Ok::<_, Infallible>(answer.respond(request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        tokio::select! {
            served = connection.as_mut() => {
                if served.is_err_and(|e| e.is_timeout()) {
                    stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
            () = close.notified() => {}
            () = async { let _ = stop.wait_for(|stopped| *stopped).await; } => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
            }
        }
        registry.leave(id);
        stats.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Answers one request through the router within the request timeout.
    async fn respond(&self, request: hyper::Request<Incoming>) -> axum::response::Response {
        self.registry.mark(self.id, true);
        let _in_flight = InFlight {
            registry: self.registry.clone(),
            id: self.id,
        };
        let routed = self
            .router
            .clone()
            .oneshot(request.map(axum::body::Body::new));
        match tokio::time::timeout(self.limits.request_timeout, routed).await {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) => {
                self.stats.request_timeouts.fetch_add(1, Ordering::Relaxed);
                super::error(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the request took longer than {:?}",
                        self.limits.request_timeout
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let (registry, stats) = (Registry::default(), AdminStats::default());
        let (a, _) = registry.admit(2, &stats).unwrap();
        let (b, _) = registry.admit(2, &stats).unwrap();
        registry.mark(a, true);
        // `a` is busy: `b` goes.
        let (c, _) = registry.admit(2, &stats).unwrap();
        assert!(!registry.lock().open.contains_key(&b));
        assert_eq!(stats.evicted.load(Ordering::Relaxed), 1);
        // `a` finishes its request after `c` came: `c` has been idle longer.
        registry.mark(a, false);
        registry.admit(2, &stats).unwrap();
        assert!(!registry.lock().open.contains_key(&c));
        assert!(registry.lock().open.contains_key(&a));
    }

    #[test]
    fn at_the_cap_with_every_connection_busy_a_new_one_is_refused() {
        let (registry, stats) = (Registry::default(), AdminStats::default());
        let (a, _) = registry.admit(1, &stats).unwrap();
        registry.mark(a, true);
        assert!(registry.admit(1, &stats).is_none());
        registry.mark(a, false);
        assert!(registry.admit(1, &stats).is_some());
        registry.leave(a);
        assert_eq!(registry.lock().open.len(), 1);
    }
}
