//! `GET /metrics`: the node's counters and Raft state in the Prometheus text format.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use openraft::ServerState;

use super::Admin;

/// Prometheus text exposition of the node's counters and its Raft state.
pub(super) async fn metrics(State(admin): State<Admin>) -> Response {
    let raft = admin.raft.metrics().borrow().clone();
    let (stats, connections, sessions, subscriptions, retained) = {
        let core = admin.hub.lock();
        let broker = &core.broker;
        (
            *broker.stats(),
            broker.connection_count(),
            broker.session_count(),
            broker.subscription_count(),
            broker.state().retained().count(),
        )
    };
    let qos0_dropped = admin
        .hub
        .qos0_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
        text.push_str(&format!(
            "# HELP keel_{name} {help}\n# TYPE keel_{name} {kind}\nkeel_{name} {value}\n"
        ));
    };
    gauge(
        "connections",
        "Connections serving a session.",
        "gauge",
        connections as u64,
    );
    gauge(
        "sessions",
        "Sessions, durable and local.",
        "gauge",
        sessions as u64,
    );
    gauge(
        "subscriptions",
        "Subscriptions of every session.",
        "gauge",
        subscriptions as u64,
    );
    gauge(
        "retained_messages",
        "Retained messages.",
        "gauge",
        retained as u64,
    );
    gauge(
        "messages_received_total",
        "PUBLISH packets accepted.",
        "counter",
        stats.publishes_received,
    );
    gauge(
        "messages_sent_total",
        "PUBLISH packets handed to connections.",
        "counter",
        stats.deliveries,
    );
    gauge(
        "messages_dropped_queue_full_total",
        "QoS 1/2 messages dropped for a full session queue.",
        "counter",
        stats.dropped_queue_full,
    );
    gauge(
        "messages_dropped_expired_total",
        "Messages whose expiry passed before delivery.",
        "counter",
        stats.dropped_expired,
    );
    gauge(
        "messages_dropped_qos0_total",
        "QoS 0 deliveries dropped for a slow connection.",
        "counter",
        qos0_dropped,
    );
    gauge(
        "raft_term",
        "The current Raft term.",
        "gauge",
        raft.current_term,
    );
    gauge(
        "raft_last_log_index",
        "Index of the last log entry.",
        "gauge",
        raft.last_log_index.unwrap_or(0),
    );
    gauge(
        "raft_applied_index",
        "Index of the last entry applied.",
        "gauge",
        raft.last_applied.map_or(0, |id| id.index),
    );
    gauge(
        "raft_leader",
        "1 while this node leads.",
        "gauge",
        u64::from(raft.state == ServerState::Leader),
    );
    let shell = &admin.hub.shell_stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let limits = [
        ("subscriptions_max", stats.limits.subscriptions),
        ("topic_levels_max", stats.limits.topic_levels),
        ("publish_rate_max", stats.limits.publish_rate),
        ("retained_max", stats.limits.retained),
        ("connections_max", load(&shell.refused_connections_max)),
        ("connection_rate_max", load(&shell.throttled_accepts)),
        ("packet_timeout_secs", load(&shell.closed_slow_packets)),
    ];
    text.push_str(
        "# HELP keel_limit_hits_total Requests refused, connections closed or accepts delayed by a limit.\n\
         # TYPE keel_limit_hits_total counter\n",
    );
    for (limit, value) in limits {
        text.push_str(&format!(
            "keel_limit_hits_total{{limit=\"{limit}\"}} {value}\n"
        ));
    }
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}
