//! `GET /metrics`: the node's counters, gauges and Raft state in the Prometheus text format
//! (version 0.0.4), and the process's memory and CPU.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use openraft::ServerState;

use super::Admin;
use crate::procstat;
use crate::server::ListenerStats;

/// The exposition being written: one `# HELP`/`# TYPE` per family, then its samples.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// A family without labels.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help, &[("", value)]);
    }

    /// A family with one label (`label` is `key="value"`, or empty for none) per sample.
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
        self.text.push_str(&format!(
            "# HELP keel_{name} {help}\n# TYPE keel_{name} {kind}\n"
        ));
        for (label, value) in samples {
            if label.is_empty() {
                self.text.push_str(&format!("keel_{name} {value}\n"));
            } else {
                self.text
                    .push_str(&format!("keel_{name}{{{label}}} {value}\n"));
            }
        }
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Samples with owned labels, as [`Exposition::family`] takes them.
fn borrowed(samples: &[(String, u64)]) -> Vec<(&str, u64)> {
    samples.iter().map(|(l, v)| (l.as_str(), *v)).collect()
}

/// What the broker core shows of itself, read under one lock.
struct BrokerFigures {
    stats: crate::broker::BrokerStats,
    connections: usize,
    sessions: usize,
    subscriptions: usize,
    retained: usize,
    inflight: usize,
    queued: usize,
    queued_bytes: usize,
}

/// Prometheus text exposition of the node.
pub(super) async fn metrics(State(admin): State<Admin>) -> Response {
    let raft = admin.raft.metrics().borrow().clone();
    let figures = {
        let core = admin.hub.lock();
        let broker = &core.broker;
        let (inflight, queued) = broker.inflight_and_queued();
        BrokerFigures {
            stats: *broker.stats(),
            connections: broker.connection_count(),
            sessions: broker.session_count(),
            subscriptions: broker.subscription_count(),
            retained: broker.state().retained().count(),
            inflight,
            queued,
            queued_bytes: broker.queued_bytes(),
        }
    };
    let mut out = Exposition::default();
    broker_gauges(&mut out, &figures);
    message_counters(&mut out, &figures.stats, &admin);
    limit_counters(&mut out, &figures.stats, &admin);
    cluster_figures(&mut out, &admin, &raft);
    process_figures(&mut out);
    ([("content-type", "text/plain; version=0.0.4")], out.text).into_response()
}

/// The sessions, subscriptions and messages the node holds.
fn broker_gauges(out: &mut Exposition, figures: &BrokerFigures) {
    let BrokerFigures {
        connections,
        sessions,
        subscriptions,
        retained,
        inflight,
        queued,
        queued_bytes,
        ..
    } = *figures;
    out.one(
        "connections",
        "gauge",
        "Connections serving a session.",
        connections as u64,
    );
    out.one(
        "sessions",
        "gauge",
        "Sessions, durable and local.",
        sessions as u64,
    );
    out.one(
        "subscriptions",
        "gauge",
        "Subscriptions of every session.",
        subscriptions as u64,
    );
    out.one(
        "retained_messages",
        "gauge",
        "Retained messages.",
        retained as u64,
    );
    out.one(
        "inflight_messages",
        "gauge",
        "QoS 1/2 messages sent to connections of this node and not yet acknowledged.",
        inflight as u64,
    );
    out.one(
        "queued_messages",
        "gauge",
        "QoS 1/2 messages held by sessions (in flight included).",
        queued as u64,
    );
    out.one(
        "queued_bytes",
        "gauge",
        "Payload and topic bytes of the QoS 1/2 messages held by sessions (in flight included).",
        queued_bytes as u64,
    );
}

/// Messages and bytes in and out, traces and authentication.
fn message_counters(out: &mut Exposition, stats: &crate::broker::BrokerStats, admin: &Admin) {
    let shell = &admin.hub.shell_stats;
    let qos = |counts: [u64; 3]| -> [(&'static str, u64); 3] {
        [
            ("qos=\"0\"", counts[0]),
            ("qos=\"1\"", counts[1]),
            ("qos=\"2\"", counts[2]),
        ]
    };
    out.family(
        "messages_received_total",
        "counter",
        "PUBLISH packets accepted from clients (wills and $SYS included), by QoS.",
        &qos(stats.received_by_qos),
    );
    out.family(
        "messages_sent_total",
        "counter",
        "PUBLISH packets handed to connections, by QoS.",
        &qos(stats.sent_by_qos),
    );
    out.family(
        "messages_dropped_total",
        "counter",
        "Messages not delivered, by reason.",
        &[
            ("reason=\"queue_full\"", stats.dropped_queue_full),
            ("reason=\"expired\"", stats.dropped_expired),
            ("reason=\"discarded\"", stats.discarded),
            (
                "reason=\"qos0_slow_connection\"",
                load(&admin.hub.qos0_dropped),
            ),
        ],
    );
    out.one(
        "messages_dropped_queue_full_total",
        "counter",
        "QoS 1/2 messages dropped for a full session queue (queue_max or queue_bytes_max).",
        stats.dropped_queue_full,
    );
    out.one(
        "bytes_received_total",
        "counter",
        "Bytes read from clients.",
        load(&shell.bytes_received),
    );
    out.one(
        "bytes_sent_total",
        "counter",
        "Bytes written to clients.",
        load(&shell.bytes_sent),
    );
    out.one(
        "traced_clients",
        "gauge",
        "Clients traced on request (admin API /api/v1/trace).",
        admin.hub.tracer.read(|traces| traces.len()) as u64,
    );
    out.one(
        "trace_events_total",
        "counter",
        "Events recorded by client traces.",
        admin.hub.tracer.recorded(),
    );
    out.one(
        "auth_failures_total",
        "counter",
        "CONNECTs refused for their credentials or authorisation.",
        stats.auth_failures,
    );
    out.one(
        "auth_hook_errors_total",
        "counter",
        "Calls of the HTTP authentication hook that failed (counted as ignore).",
        crate::server::HOOK_ERRORS.load(std::sync::atomic::Ordering::Relaxed),
    );
}

/// Every limit's hits, the MQTT listeners' open connections.
fn limit_counters(out: &mut Exposition, stats: &crate::broker::BrokerStats, admin: &Admin) {
    let shell = &admin.hub.shell_stats;
    let listeners = shell.listeners();
    // `listener` is the transport, `addr` tells two listeners of one transport apart.
    let listener_label = |l: &ListenerStats| {
        let addr = l.addr.map(|a| a.to_string()).unwrap_or_default();
        format!("listener=\"{}\",addr=\"{addr}\"", l.transport)
    };
    let open: Vec<(String, u64)> = listeners
        .iter()
        .map(|l| (listener_label(l), l.cap.open() as u64))
        .collect();
    out.family(
        "listener_connections",
        "gauge",
        "Connections open on each MQTT listener, handshakes included.",
        &borrowed(&open),
    );
    let refused_by_listener: Vec<(String, u64)> = listeners
        .iter()
        .map(|l| {
            let label = format!("limit=\"listener_connections_max\",{}", listener_label(l));
            (label, load(&l.refused))
        })
        .collect();
    let mut limit_hits: Vec<(&str, u64)> = vec![
        ("limit=\"subscriptions_max\"", stats.limits.subscriptions),
        (
            "limit=\"subscription_bytes_max\"",
            stats.limits.subscription_bytes,
        ),
        (
            "limit=\"node_subscription_bytes_max\"",
            stats.limits.node_subscription_bytes,
        ),
        ("limit=\"topic_levels_max\"", stats.limits.topic_levels),
        ("limit=\"publish_rate_max\"", stats.limits.publish_rate),
        ("limit=\"retained_max\"", stats.limits.retained),
        ("limit=\"queue_max\"", stats.limits.queue),
        ("limit=\"queue_bytes_max\"", stats.limits.queue_bytes),
        (
            "limit=\"connections_max\"",
            load(&shell.refused_connections_max),
        ),
        (
            "limit=\"connection_rate_max\"",
            load(&shell.throttled_accepts),
        ),
        (
            "limit=\"packet_timeout_secs\"",
            load(&shell.closed_slow_packets),
        ),
        ("limit=\"proxy_protocol\"", load(&shell.proxy_refused)),
    ];
    let ours = &admin.stats;
    limit_hits.extend([
        (
            "limit=\"admin_connections_max\"",
            load(&ours.refused) + load(&ours.evicted),
        ),
        (
            "limit=\"admin_header_timeout_secs\"",
            load(&ours.header_timeouts),
        ),
        (
            "limit=\"admin_request_timeout_secs\"",
            load(&ours.request_timeouts),
        ),
    ]);
    limit_hits.extend(borrowed(&refused_by_listener));
    out.family(
        "limit_hits_total",
        "counter",
        "Requests refused, connections closed or accepts delayed by a limit.",
        &limit_hits,
    );
}

/// Cluster peers refused, the admin listener, and Raft.
fn cluster_figures(
    out: &mut Exposition,
    admin: &Admin,
    raft: &openraft::RaftMetrics<u64, openraft::BasicNode>,
) {
    let shell = &admin.hub.shell_stats;
    let ours = &admin.stats;
    let refusals: Vec<(String, u64)> = shell
        .peer_refusals
        .counts()
        .into_iter()
        .map(|(reason, count)| (format!("reason=\"{reason}\""), count))
        .collect();
    out.family(
        "cluster_peer_refusals_total",
        "counter",
        "Cluster peers refused: not TLS, no or a foreign certificate, no node id, a call as \
         another node or from a non-member.",
        &borrowed(&refusals),
    );
    out.one(
        "admin_connections",
        "gauge",
        "Connections open on the admin listener.",
        load(&ours.open),
    );
    let applied = raft.last_applied.map_or(0, |id| id.index);
    let last = raft.last_log_index.unwrap_or(0);
    out.one(
        "raft_term",
        "gauge",
        "The current Raft term.",
        raft.current_term,
    );
    out.one(
        "raft_last_log_index",
        "gauge",
        "Index of the last log entry.",
        last,
    );
    out.one(
        "raft_applied_index",
        "gauge",
        "Index of the last entry applied.",
        applied,
    );
    out.one(
        "raft_apply_lag",
        "gauge",
        "Log entries this node holds but has not applied yet.",
        last.saturating_sub(applied),
    );
    out.one(
        "raft_leader",
        "gauge",
        "1 while this node leads.",
        u64::from(raft.state == ServerState::Leader),
    );
}

/// The process's memory and CPU.
fn process_figures(out: &mut Exposition) {
    if let Ok(process) = procstat::sample(None) {
        out.one(
            "process_resident_memory_bytes",
            "gauge",
            "Resident set size of the process.",
            process.rss_kb * 1024,
        );
        out.one(
            "process_cpu_milliseconds_total",
            "counter",
            "User and system CPU time of the process.",
            process.cpu_ticks * 1000 / procstat::clock_ticks_per_sec(),
        );
    }
}
