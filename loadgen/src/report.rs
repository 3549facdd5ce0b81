//! The figures of one run: a human-readable table and a one-line JSON form for scripts.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::publisher::PublisherResult;
use super::subscriber::SubscriberResult;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Deliveries measured.
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of a histogram in nanoseconds; `None` when it is empty.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Option<Latency> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        Some(Latency {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        })
    }
}

/// The broker's CPU and memory, when its pid was given.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BrokerUsage {
    /// Over the measured window, in percent of one core.
    pub cpu_percent: f64,
    /// Before the clients connected.
    pub rss_kb_start: u64,
    /// After the run, before the clients disconnected (idle: after the hold).
    pub rss_kb_end: u64,
    /// The process's peak (`VmHWM`) at the end.
    pub rss_kb_peak: u64,
}

/// The idle scenario's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IdleFigures {
    pub connections_asked: u64,
    pub connections_made: u64,
    /// Broker RSS once every connection was made and had a second to settle.
    pub rss_kb_connected: Option<u64>,
    /// `(rss_kb_end − rss_kb_start) / connections_made`.
    pub kb_per_connection: Option<f64>,
}

/// Delivery accounting summed over every (publisher, subscriber) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Messages published.
    pub sent: u64,
    /// Deliveries owed: each accepted message once per subscriber of its publisher.
    pub expected: u64,
    /// Distinct deliveries.
    pub delivered: u64,
    pub delivered_in_window: u64,
    /// Accepted messages that some subscriber never got.
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// QoS 1/2 messages with no PUBACK/PUBREC at the end: neither expected nor lost.
    pub unacknowledged: u64,
    /// Messages refused by the broker with an error reason code.
    pub refused: u64,
    pub foreign: u64,
    pub lead_stalls: u64,
}

impl Totals {
    /// Adds up the publishers' and subscribers' records. `fanout(p)` is how many subscribers
    /// receive publisher `p`'s messages.
    pub fn tally(
        publishers: &[PublisherResult],
        subscribers: &[SubscriberResult],
        fanout: impl Fn(u32) -> u64,
    ) -> Totals {
        let mut totals = Totals::default();
        // Publisher results are indexed by publisher: the run builds them in that order.
        let mut not_accepted: Vec<Vec<u64>> = Vec::with_capacity(publishers.len());
        for (i, publisher) in publishers.iter().enumerate() {
            assert_eq!(
                publisher.index as usize, i,
                "publisher results out of order"
            );
            let mut seqs = publisher.unacknowledged.clone();
            seqs.extend_from_slice(&publisher.refused);
            totals.sent += publisher.sent;
            totals.unacknowledged += publisher.unacknowledged.len() as u64;
            totals.refused += publisher.refused.len() as u64;
            totals.lead_stalls += publisher.lead_stalls;
            totals.expected += (publisher.sent - seqs.len() as u64) * fanout(publisher.index);
            not_accepted.push(seqs);
        }
        for subscriber in subscribers {
            totals.delivered_in_window += subscriber.delivered_in_window;
            totals.foreign += subscriber.foreign;
            for (offset, tally) in subscriber.tallies.iter().enumerate() {
                let index = subscriber.first_publisher as usize + offset;
                let (sent, skip) = match publishers.get(index) {
                    Some(publisher) => (publisher.sent, not_accepted[index].as_slice()),
                    None => (0, &[][..]),
                };
                totals.delivered += tally.distinct();
                totals.lost += tally.lost(sent, skip);
                totals.duplicated += tally.duplicated();
                totals.out_of_order += tally.out_of_order();
            }
        }
        totals
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub scenario: String,
    pub publishers: u64,
    pub subscribers: u64,
    pub qos: u8,
    /// 3 (3.1.1) or 5.
    pub mqtt_version: u8,
    pub payload_bytes: u64,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    /// Target total rate, `None` at full speed.
    pub rate: Option<u64>,
    pub totals: Totals,
    /// Distinct deliveries per second in the measured window.
    pub msgs_per_sec: f64,
    pub latency: Option<Latency>,
    /// How long the drain after publishing took.
    pub drain_secs: f64,
    pub broker: Option<BrokerUsage>,
    /// The load generator's own CPU over the window, in percent of one core.
    pub loadgen_cpu_percent: f64,
    pub loadgen_threads: u64,
    pub idle: Option<IdleFigures>,
    /// Clients that failed during the run.
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Report {
    /// CPU microseconds spent per message delivered in the window, from a CPU percentage
    /// over that window. Unlike the percentage it does not shrink when other processes take
    /// the machine's cores, so it compares the generator's cost with the broker's fairly.
    pub fn cpu_us_per_msg(&self, cpu_percent: f64) -> Option<f64> {
        let delivered = self.totals.delivered_in_window;
        (delivered > 0).then(|| cpu_percent / 100.0 * self.duration_secs * 1e6 / delivered as f64)
    }

    /// The report as one JSON object, for scripts. Absent figures are `null`.
    pub fn to_json(&self) -> Value {
        let latency = self.latency;
        let broker = self.broker;
        let idle = self.idle;
        let t = &self.totals;
        json!({
            "scenario": self.scenario,
            "publishers": self.publishers,
            "subscribers": self.subscribers,
            "qos": self.qos,
            "mqtt_version": self.mqtt_version,
            "payload_bytes": self.payload_bytes,
            "duration_secs": self.duration_secs,
            "warmup_secs": self.warmup_secs,
            "rate": self.rate,
            "sent": t.sent,
            "expected": t.expected,
            "delivered": t.delivered,
            "delivered_in_window": t.delivered_in_window,
            "msgs_per_sec": round2(self.msgs_per_sec),
            "p50_ms": latency.map(|l| round3(l.p50_ms)),
            "p99_ms": latency.map(|l| round3(l.p99_ms)),
            "p999_ms": latency.map(|l| round3(l.p999_ms)),
            "max_ms": latency.map(|l| round3(l.max_ms)),
            "lost": t.lost,
            "duplicated": t.duplicated,
            "out_of_order": t.out_of_order,
            "unacknowledged": t.unacknowledged,
            "refused": t.refused,
            "foreign": t.foreign,
            "lead_stalls": t.lead_stalls,
            "drain_secs": round2(self.drain_secs),
            "broker_cpu_percent": broker.map(|b| round2(b.cpu_percent)),
            "broker_rss_kb_start": broker.map(|b| b.rss_kb_start),
            "broker_rss_kb_end": broker.map(|b| b.rss_kb_end),
            "broker_rss_kb_peak": broker.map(|b| b.rss_kb_peak),
            "broker_cpu_us_per_msg": broker
                .and_then(|b| self.cpu_us_per_msg(b.cpu_percent))
                .map(round3),
            "loadgen_cpu_percent": round2(self.loadgen_cpu_percent),
            "loadgen_cpu_us_per_msg": self.cpu_us_per_msg(self.loadgen_cpu_percent).map(round3),
            "loadgen_threads": self.loadgen_threads,
            "connections_asked": idle.map(|i| i.connections_asked),
            "connections_made": idle.map(|i| i.connections_made),
            "broker_rss_kb_connected": idle.and_then(|i| i.rss_kb_connected),
            "kb_per_connection": idle.and_then(|i| i.kb_per_connection).map(round3),
            "errors": self.errors,
            "first_error": self.first_error,
        })
    }

    /// The report as an aligned two-column table.
    pub fn to_table(&self) -> String {
        let mut rows: Rows = Vec::new();
        match &self.idle {
            Some(idle) => self.idle_rows(idle, &mut rows),
            None => self.traffic_rows(&mut rows),
        }
        self.usage_rows(&mut rows);
        render_rows(rows)
    }

    /// The table's rows for an idle run: what was held, and what each connection cost.
    fn idle_rows(&self, idle: &IdleFigures, rows: &mut Rows) {
        rows.push((
            "scenario",
            format!(
                "idle ({} connections), MQTT {}, held {:.1} s",
                idle.connections_asked,
                self.version_text(),
                self.duration_secs
            ),
        ));
        rows.push((
            "connections",
            format!(
                "{} of {} made",
                idle.connections_made, idle.connections_asked
            ),
        ));
        if let Some(kb) = idle.kb_per_connection {
            rows.push(("broker RSS/conn", format!("{kb:.2} KB")));
        }
    }

    /// The table's rows for a run with traffic: its setup, throughput, latency and delivery
    /// accounting.
    fn traffic_rows(&self, rows: &mut Rows) {
        let rate = match self.rate {
            Some(rate) => format!("fixed {rate} msgs/s"),
            None => "full speed".to_owned(),
        };
        rows.push((
            "scenario",
            format!(
                "{} ({} pub → {} sub), QoS {}, MQTT {}, {} B, {}",
                self.scenario,
                self.publishers,
                self.subscribers,
                self.qos,
                self.version_text(),
                self.payload_bytes,
                rate
            ),
        ));
        rows.push((
            "window",
            format!(
                "{:.1} s after {:.1} s warm-up; drain {:.2} s",
                self.duration_secs, self.warmup_secs, self.drain_secs
            ),
        ));
        let t = &self.totals;
        rows.push(("delivered", format!("{:.0} msgs/s", self.msgs_per_sec)));
        rows.push((
            "messages",
            format!(
                "sent {}, deliveries expected {}, delivered {}",
                t.sent, t.expected, t.delivered
            ),
        ));
        rows.push(match &self.latency {
            Some(l) => (
                "latency",
                format!(
                    "p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                    l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
                ),
            ),
            None => ("latency", "no deliveries in the window".to_owned()),
        });
        rows.push((
            "correctness",
            format!(
                "lost {}, duplicated {}, out of order {}",
                t.lost, t.duplicated, t.out_of_order
            ),
        ));
        rows.push((
            "not counted",
            format!(
                "unacknowledged {}, refused {}, foreign {}, lead stalls {}",
                t.unacknowledged, t.refused, t.foreign, t.lead_stalls
            ),
        ));
    }

    /// The table's closing rows, common to every scenario: the broker's and the load
    /// generator's CPU and memory, and the clients that failed.
    fn usage_rows(&self, rows: &mut Rows) {
        match &self.broker {
            Some(b) => {
                let per_msg = self
                    .cpu_us_per_msg(b.cpu_percent)
                    .map(|us| format!(", {us:.2} µs/msg"))
                    .unwrap_or_default();
                rows.push(("broker CPU", format!("{:.1} %{per_msg}", b.cpu_percent)));
                rows.push((
                    "broker RSS",
                    format!(
                        "{} KB → {} KB (peak {} KB)",
                        b.rss_kb_start, b.rss_kb_end, b.rss_kb_peak
                    ),
                ));
            }
            None => rows.push(("broker", "no --broker-pid: CPU and RSS not read".to_owned())),
        }
        let per_msg = self
            .cpu_us_per_msg(self.loadgen_cpu_percent)
            .map(|us| format!(", {us:.2} µs/msg"))
            .unwrap_or_default();
        rows.push((
            "loadgen CPU",
            format!(
                "{:.1} %{per_msg} ({} thread{})",
                self.loadgen_cpu_percent,
                self.loadgen_threads,
                if self.loadgen_threads == 1 { "" } else { "s" }
            ),
        ));
        if self.errors > 0 {
            rows.push((
                "errors",
                format!(
                    "{} clients failed; first: {}",
                    self.errors,
                    self.first_error.as_deref().unwrap_or("?")
                ),
            ));
        }
    }

    /// The MQTT version as people write it.
    fn version_text(&self) -> &'static str {
        if self.mqtt_version == 5 {
            "5.0"
        } else {
            "3.1.1"
        }
    }
}

/// The rows of [`Report::to_table`]: a label and its value.
type Rows = Vec<(&'static str, String)>;

/// Lays `rows` out as two columns, the labels padded to the longest.
fn render_rows(rows: Rows) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        // Writing to a String cannot fail.
        writeln!(out, "{key:<width$}  {value}").unwrap();
    }
    out
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tally::SeqTally;

    fn publisher(index: u32, sent: u64, unacknowledged: Vec<u64>) -> PublisherResult {
        PublisherResult {
            index,
            sent,
            unacknowledged,
            ..PublisherResult::default()
        }
    }

    fn subscriber(first_publisher: u32, received: &[&[u64]]) -> SubscriberResult {
        let tallies = received
            .iter()
            .map(|seqs| {
                let mut tally = SeqTally::new();
                for &seq in *seqs {
                    tally.record(seq);
                }
                tally
            })
            .collect();
        SubscriberResult {
            first_publisher,
            tallies,
            ..SubscriberResult::default()
        }
    }

    #[test]
    fn fan_out_counts_each_subscriber_separately() {
        // One publisher sent 4, of which 3 was never acknowledged; two subscribers.
        let publishers = [publisher(0, 4, vec![3])];
        let subscribers = [
            subscriber(0, &[&[0, 1, 2, 3]]),
            // Lost 1, got 2 twice and 0 after 2; 3 is unknown, not lost.
            subscriber(0, &[&[2, 0, 2]]),
        ];
        let totals = Totals::tally(&publishers, &subscribers, |_| 2);
        assert_eq!(totals.sent, 4);
        assert_eq!(totals.expected, 6);
        assert_eq!(totals.delivered, 6);
        assert_eq!(totals.lost, 1);
        assert_eq!(totals.duplicated, 1);
        assert_eq!(totals.out_of_order, 1);
        assert_eq!(totals.unacknowledged, 1);
    }

    #[test]
    fn fan_in_matches_tallies_to_their_publishers() {
        let publishers = [publisher(0, 2, vec![]), publisher(1, 3, vec![])];
        // Publisher 1's message 2 is missing.
        let subscribers = [subscriber(0, &[&[0, 1], &[0, 1]])];
        let totals = Totals::tally(&publishers, &subscribers, |_| 1);
        assert_eq!(totals.expected, 5);
        assert_eq!(totals.delivered, 4);
        assert_eq!(totals.lost, 1);
    }

    #[test]
    fn a_silent_subscriber_loses_everything() {
        let publishers = [publisher(0, 10, vec![])];
        let subscribers = [subscriber(0, &[&[]])];
        assert_eq!(Totals::tally(&publishers, &subscribers, |_| 1).lost, 10);
    }

    #[test]
    fn json_line_has_the_script_fields() {
        let report = Report {
            scenario: "pairs".to_owned(),
            qos: 1,
            msgs_per_sec: 1234.567,
            latency: Some(Latency {
                count: 1,
                p50_ms: 1.0,
                p99_ms: 2.0,
                p999_ms: 3.0,
                max_ms: 4.0,
            }),
            ..Report::default()
        };
        let value = report.to_json();
        assert_eq!(value["scenario"], "pairs");
        assert_eq!(value["msgs_per_sec"], 1234.57);
        assert_eq!(value["p99_ms"], 2.0);
        assert_eq!(value["lost"], 0);
        assert!(value["broker_cpu_percent"].is_null());
        assert!(!value.to_string().contains('\n'));
        assert!(report.to_table().contains("p99 2.000 ms"));
    }

    #[test]
    fn cpu_per_message_is_cpu_time_over_deliveries() {
        let report = Report {
            duration_secs: 10.0,
            totals: Totals {
                delivered_in_window: 500_000,
                ..Totals::default()
            },
            ..Report::default()
        };
        // Half a core for 10 s is 5 s of CPU: 10 µs for each of 500,000 messages.
        let us = report.cpu_us_per_msg(50.0).unwrap();
        assert!((us - 10.0).abs() < 1e-9, "{us}");
        assert_eq!(Report::default().cpu_us_per_msg(50.0), None);
    }
}
