//! The load generator behind `keel-bench`: MQTT clients that drive a broker (Keel or any
//! other) through pub/sub scenarios and report delivered messages per second, latency
//! percentiles, lost / duplicated / out-of-order messages, and the broker's CPU and memory.
//!
//! Each client is one tokio task on a cheap runtime (one thread unless told otherwise) that
//! speaks MQTT through Keel's own codec with batched writes. Every payload starts with a
//! [`payload::PayloadHeader`] (publisher, sequence number, send time), so subscribers account
//! for each (publisher, subscriber) pair on their own ([`tally::SeqTally`]).
//!
//! Pure parts, tested without sockets: `payload`, `tally`, `pacing`, `inflight`, `template`
//! and `report`. The shell: `conn`, `publisher`, `subscriber`, `idle` and `run`. CPU and
//! memory come from [`keel::procstat`].
//!
//! A crate of its own (`keel-loadgen`, with the `keel-bench` binary), not part of the broker:
//! it must measure any broker the same way, so of Keel it may use only the packet codec
//! (`keel::codec`) and the process figures (`keel::procstat`), never a broker-side module
//! (`broker`, `state`, `session`, `server`, `net`, ...). Its tests (`tests/loadgen.rs`) start a
//! Keel node in-process to run against; the library never does.

mod conn;
mod idle;
pub mod inflight;
pub mod pacing;
pub mod payload;
mod publisher;
pub mod report;
mod run;
mod shared;
mod subscriber;
pub mod tally;
pub mod template;

use std::time::Duration;

use thiserror::Error;

pub use conn::ConnError;
pub use report::Report;
pub use run::run;

use keel::codec::{Protocol, QoS};

/// Most clients one scenario may open: beyond the open-files limit of most machines anyway.
pub const CLIENTS_MAX: usize = 200_000;

/// The traffic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    /// `count` publishers, each to its own topic with its own subscriber.
    Pairs { count: usize },
    /// One publisher, `subscribers` subscribers on its topic.
    FanOut { subscribers: usize },
    /// `publishers` publishers, one subscriber: to a `+` wildcard over one topic each, or to
    /// a single topic they all share.
    FanIn { publishers: usize, one_topic: bool },
    /// `connections` clients that connect and stay idle (keep-alive pings only), to measure
    /// what a connection costs the broker.
    Idle { connections: usize },
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Pairs { .. } => "pairs",
            Scenario::FanOut { .. } => "fanout",
            Scenario::FanIn { .. } => "fanin",
            Scenario::Idle { .. } => "idle",
        }
    }

    /// (publishers, subscribers).
    pub fn clients(&self) -> (usize, usize) {
        match *self {
            Scenario::Pairs { count } => (count, count),
            Scenario::FanOut { subscribers } => (1, subscribers),
            Scenario::FanIn { publishers, .. } => (publishers, 1),
            Scenario::Idle { .. } => (0, 0),
        }
    }
}

/// Everything a run needs; `keel-bench` fills it from its command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenario: Scenario,
    pub host: String,
    pub port: u16,
    /// Where subscribers connect, when not to `port` (another node of a cluster).
    pub sub_port: Option<u16>,
    pub protocol: Protocol,
    /// QoS of the publishes and of the subscriptions.
    pub qos: QoS,
    /// Bytes per payload, header included (at least [`payload::HEADER_LEN`]).
    pub payload_len: usize,
    /// The measured window.
    pub duration: Duration,
    /// Publishing before the window opens; not measured.
    pub warmup: Duration,
    /// After publishing stops, how long to wait for in-flight flows and deliveries to finish.
    pub drain: Duration,
    /// Total messages per second over all publishers; `None` for as fast as the limits allow.
    pub rate: Option<u64>,
    /// QoS 1/2 messages each publisher may have unacknowledged.
    pub inflight: u16,
    /// Messages a subscriber may be behind its publishers (sent but not yet delivered to it),
    /// shared out among the publishers that feed it; 0 for no limit. Keeps a full-speed run
    /// from measuring how much a broker buffers, and stays below common per-client queue
    /// limits (Mosquitto's and Keel's 1000) so that a broker that keeps up need not drop.
    pub lead_max: u64,
    /// Bytes a publisher may have waiting in its write buffer (what holds back QoS 0).
    pub write_buffer_max: usize,
    /// Keep-alive of the idle scenario's connections; they ping at half of it.
    pub keep_alive: Duration,
    /// Connections being set up at once.
    pub connect_concurrency: usize,
    /// First level of every topic; each run adds its run id below it.
    pub topic_prefix: String,
    /// The broker's process, to read its CPU time and memory from `/proc`.
    pub broker_pid: Option<u32>,
    /// Subscribers keep persistent sessions (MQTT 3 clean session 0, MQTT 5 a session
    /// expiry), so a broker must store what it delivers to them durably.
    pub persistent: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            scenario: Scenario::Pairs { count: 100 },
            host: "127.0.0.1".to_owned(),
            port: 1883,
            sub_port: None,
            protocol: Protocol::V3_1_1,
            qos: QoS::AtLeastOnce,
            payload_len: 64,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            drain: Duration::from_secs(10),
            rate: None,
            inflight: 32,
            lead_max: 100,
            write_buffer_max: 64 * 1024,
            keep_alive: Duration::from_secs(60),
            connect_concurrency: 64,
            topic_prefix: "bench".to_owned(),
            broker_pid: None,
            persistent: false,
        }
    }
}

/// Why a run could not be carried out (as opposed to what it measured).
#[derive(Debug, Error)]
pub enum LoadgenError {
    #[error("invalid options: {0}")]
    Options(String),
    #[error("cannot resolve {host}:{port}: {source}")]
    Resolve {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("setting up {client}: {source}")]
    Setup { client: String, source: ConnError },
    #[error("a client task failed: {0}")]
    Task(String),
}

impl Options {
    /// Checks the limits that the tasks rely on.
    pub fn validate(&self) -> Result<(), LoadgenError> {
        let fail = |why: String| Err(LoadgenError::Options(why));
        if self.payload_len < payload::HEADER_LEN {
            return fail(format!(
                "payload of {} bytes is smaller than the {}-byte header",
                self.payload_len,
                payload::HEADER_LEN
            ));
        }
        let clients = match self.scenario {
            Scenario::Idle { connections } => connections,
            ref traffic => {
                let (publishers, subscribers) = traffic.clients();
                publishers + subscribers
            }
        };
        if clients == 0 || clients > CLIENTS_MAX {
            return fail(format!("{clients} clients: must be 1 to {CLIENTS_MAX}"));
        }
        if self.inflight == 0 {
            return fail("--inflight must be at least 1".to_owned());
        }
        if self.duration.is_zero() {
            return fail("--duration must be more than 0".to_owned());
        }
        if self.connect_concurrency == 0 {
            return fail("--connect-concurrency must be at least 1".to_owned());
        }
        if self.write_buffer_max == 0 {
            return fail("--write-buffer must be at least 1".to_owned());
        }
        if self.keep_alive.as_secs() > u64::from(u16::MAX) {
            return fail("--keep-alive is at most 65535 seconds".to_owned());
        }
        if self.topic_prefix.is_empty() || self.topic_prefix.contains(['+', '#']) {
            return fail("--topic-prefix must be non-empty, without + or #".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Options::default().validate().unwrap();
    }

    #[test]
    fn payload_smaller_than_the_header_is_refused() {
        let options = Options {
            payload_len: payload::HEADER_LEN - 1,
            ..Options::default()
        };
        assert!(matches!(options.validate(), Err(LoadgenError::Options(_))));
    }

    #[test]
    fn empty_scenarios_are_refused() {
        for scenario in [
            Scenario::Pairs { count: 0 },
            Scenario::Idle { connections: 0 },
        ] {
            let options = Options {
                scenario,
                ..Options::default()
            };
            assert!(options.validate().is_err());
        }
    }

    #[test]
    fn scenarios_count_their_clients() {
        assert_eq!(Scenario::Pairs { count: 100 }.clients(), (100, 100));
        assert_eq!(Scenario::FanOut { subscribers: 1000 }.clients(), (1, 1000));
        assert_eq!(
            Scenario::FanIn {
                publishers: 50,
                one_topic: false
            }
            .clients(),
            (50, 1)
        );
    }
}
