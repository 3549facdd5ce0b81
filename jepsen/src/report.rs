//! The report of a run, in its directory: `results.json` (the verdict, the anomalies and the
//! figures), `summary.txt`, `history.jsonl` (every event), and two plots with the fault
//! windows shaded: `latency.svg` (publish → acknowledgement of every message) and
//! `throughput.svg` (acknowledgements and deliveries per second).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use keel_oracle::history::{Entry, Event, MsgId, Violation};
use plotters::prelude::*;
use serde::Serialize;

use crate::nemesis::Window;
use crate::run::Options;

/// The figures of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Client operations: publishes (first sends), subscriptions, connects.
    pub ops: usize,
    pub published: usize,
    /// Publishes whose PUBACK/PUBREC came.
    pub acknowledged: usize,
    /// Publishes of QoS 1/2 whose acknowledgement never came: they may or may not have
    /// taken effect, and the checkers treat them so.
    pub unknown: usize,
    pub delivered: usize,
    /// Acknowledged messages a durable subscriber was owed and never got (G1).
    pub lost: usize,
    /// QoS 2 messages delivered twice, and QoS 0 duplicates (G1).
    pub duplicated: usize,
    pub connections_lost: usize,
    pub faults: usize,
    /// The longest stretch of the safety phase without a single acknowledgement, in ms.
    pub max_unavailable_ms: u64,
    /// The longest any one publisher waited between two of its acknowledgements in the
    /// safety phase, in ms: what a client sees of a failover (its reconnect included).
    pub max_publisher_gap_ms: u64,
    /// QoS 1/2 messages a node dropped for a full session queue (`mqtt.queue_max`, from the
    /// nodes' metrics at the end): G1 holds only within that bound.
    pub queue_full_drops: u64,
    /// Publish → acknowledgement latency, ms.
    pub latency_p50_ms: u64,
    pub latency_p99_ms: u64,
    pub latency_max_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub valid: bool,
    pub seed: u64,
    pub nodes: u64,
    pub nemeses: Vec<String>,
    pub time_limit_secs: u64,
    pub liveness_secs: u64,
    pub planted: Option<String>,
    pub stats: Stats,
    pub anomalies: Vec<Violation>,
    pub faults: Vec<String>,
}

impl Report {
    pub fn new(
        options: &Options,
        entries: &[Entry],
        windows: &[Window],
        anomalies: Vec<Violation>,
    ) -> Report {
        Report {
            valid: anomalies.is_empty(),
            seed: options.seed,
            nodes: options.nodes,
            nemeses: options.nemeses.iter().map(|k| format!("{k:?}")).collect(),
            time_limit_secs: options.time_limit.as_secs(),
            liveness_secs: options.liveness.as_secs(),
            planted: options.planted.clone(),
            stats: stats(entries, &anomalies),
            faults: windows
                .iter()
                .map(|w| {
                    format!(
                        "{:.1}-{:.1} s: {}",
                        w.start_ms as f64 / 1000.0,
                        w.end_ms as f64 / 1000.0,
                        w.fault
                    )
                })
                .collect(),
            anomalies,
        }
    }

    pub fn summary(&self) -> String {
        let s = &self.stats;
        let mut text = format!(
            "valid: {}\nseed {}, {} nodes, nemesis {}, {} s safety + {} s liveness{}\n\
             ops {}, published {}, acknowledged {}, unknown {}, delivered {}\n\
             lost {}, duplicated {}, connections lost {}, faults {}\n\
             max unavailability {} ms (longest gap of one publisher {} ms); \
             publish→ack latency p50 {} ms, p99 {} ms, max {} ms\n",
            self.valid,
            self.seed,
            self.nodes,
            self.nemeses.join(","),
            self.time_limit_secs,
            self.liveness_secs,
            self.planted
                .as_ref()
                .map(|p| format!(", planted bugs: {p}"))
                .unwrap_or_default(),
            s.ops,
            s.published,
            s.acknowledged,
            s.unknown,
            s.delivered,
            s.lost,
            s.duplicated,
            s.connections_lost,
            s.faults,
            s.max_unavailable_ms,
            s.max_publisher_gap_ms,
            s.latency_p50_ms,
            s.latency_p99_ms,
            s.latency_max_ms,
        );
        if s.queue_full_drops > 0 {
            text.push_str(&format!(
                "note: {} QoS 1/2 messages were dropped for a full session queue \
                 (mqtt.queue_max): G1 holds only within the configured bound\n",
                s.queue_full_drops
            ));
        }
        if !self.anomalies.is_empty() {
            text.push_str(&format!("{} anomalies:\n", self.anomalies.len()));
            for anomaly in self.anomalies.iter().take(20) {
                text.push_str(&format!("  {anomaly}\n"));
            }
        }
        text
    }
}

/// Times of one message: first sent and first acknowledged (ms).
fn publish_times(entries: &[Entry]) -> BTreeMap<MsgId, (u64, Option<u64>)> {
    let mut times: BTreeMap<MsgId, (u64, Option<u64>)> = BTreeMap::new();
    for entry in entries {
        match &entry.event {
            Event::PublishSent { msg, .. } => {
                times.entry(*msg).or_insert((entry.at_ms, None));
            }
            Event::PublishAcked { msg, .. } => {
                if let Some(t) = times.get_mut(msg) {
                    t.1.get_or_insert(entry.at_ms);
                }
            }
            _ => {}
        }
    }
    times
}

fn stats(entries: &[Entry], anomalies: &[Violation]) -> Stats {
    let mut s = Stats::default();
    let mut qos0 = std::collections::BTreeSet::new();
    for entry in entries {
        match &entry.event {
            Event::PublishSent {
                dup: false,
                msg,
                qos,
                ..
            } => {
                s.published += 1;
                if *qos == keel::codec::QoS::AtMostOnce {
                    qos0.insert(*msg);
                }
            }
            Event::SubscribeSent { .. } | Event::ConnectSent { .. } => s.ops += 1,
            Event::Delivered { .. } => s.delivered += 1,
            Event::ConnectionLost { .. } => s.connections_lost += 1,
            Event::Fault { what } if what.starts_with("start:") => s.faults += 1,
            _ => {}
        }
    }
    s.ops += s.published;
    let times = publish_times(entries);
    let mut latencies: Vec<u64> = times
        .values()
        .filter_map(|(sent, acked)| acked.map(|a| a.saturating_sub(*sent)))
        .collect();
    s.acknowledged = latencies.len();
    s.unknown = times
        .iter()
        .filter(|(msg, (_, acked))| acked.is_none() && !qos0.contains(msg))
        .count();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    s.latency_p50_ms = at(0.5);
    s.latency_p99_ms = at(0.99);
    s.latency_max_ms = latencies.last().copied().unwrap_or(0);
    s.lost = anomalies
        .iter()
        .filter(|a| a.guarantee == "G1 delivery")
        .count();
    s.duplicated = anomalies
        .iter()
        .filter(|a| matches!(a.guarantee, "G1 exactly-once" | "G1 QoS 0 duplicate"))
        .count();
    s.max_unavailable_ms = max_unavailable_ms(entries);
    s.max_publisher_gap_ms = max_publisher_gap_ms(entries);
    s
}

/// The start of the liveness phase, if the history reached it.
fn liveness_start(entries: &[Entry]) -> Option<u64> {
    entries
        .iter()
        .find(|e| e.event == Event::LivenessStarted)
        .map(|e| e.at_ms)
}

/// The longest gap between acknowledgements in the safety phase, from the first
/// acknowledgement to the start of the liveness phase.
fn max_unavailable_ms(entries: &[Entry]) -> u64 {
    let end = liveness_start(entries);
    let acks = entries
        .iter()
        .filter(|e| matches!(e.event, Event::PublishAcked { .. }))
        .map(|e| e.at_ms);
    longest_gap(acks, end)
}

/// The longest gap between two acknowledgements of one publisher in the safety phase (its
/// last one to the start of the liveness phase included), over every publisher.
fn max_publisher_gap_ms(entries: &[Entry]) -> u64 {
    let end = liveness_start(entries);
    let mut acks: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for entry in entries {
        if let Event::PublishAcked { msg, .. } = &entry.event {
            acks.entry(msg.publisher).or_default().push(entry.at_ms);
        }
    }
    acks.into_values()
        .map(|times| longest_gap(times.into_iter(), end))
        .max()
        .unwrap_or(0)
}

/// The longest gap between consecutive `times` (in order) up to `end`, `end` included.
fn longest_gap(times: impl Iterator<Item = u64>, end: Option<u64>) -> u64 {
    let times = times.filter(|&at| end.is_none_or(|end| at <= end));
    let mut worst = 0;
    let mut last: Option<u64> = None;
    for at in times.chain(end) {
        if let Some(previous) = last {
            worst = worst.max(at.saturating_sub(previous));
        }
        last = Some(at);
    }
    worst
}

/// Writes every file of the report into `dir`.
pub fn write(dir: &Path, report: &Report, entries: &[Entry]) -> Result<()> {
    let mut history = BufWriter::new(File::create(dir.join("history.jsonl"))?);
    for entry in entries {
        serde_json::to_writer(&mut history, entry)?;
        history.write_all(b"\n")?;
    }
    history.flush()?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    let mut summary = report.summary();
    summary.push_str("faults:\n");
    for fault in &report.faults {
        summary.push_str(&format!("  {fault}\n"));
    }
    std::fs::write(dir.join("summary.txt"), summary)?;
    let windows = fault_windows(entries);
    plot_latency(&dir.join("latency.svg"), entries, &windows).context("latency plot")?;
    plot_throughput(&dir.join("throughput.svg"), entries, &windows).context("throughput plot")?;
    Ok(())
}

/// The fault windows as recorded (start, end, what), in seconds.
fn fault_windows(entries: &[Entry]) -> Vec<(f64, f64, String)> {
    let mut open: Option<(f64, String)> = None;
    let mut windows = Vec::new();
    for entry in entries {
        let at = entry.at_ms as f64 / 1000.0;
        match &entry.event {
            Event::Fault { what } if what.starts_with("start: ") => {
                open = Some((at, what["start: ".len()..].to_string()));
            }
            Event::Fault { what } if what.starts_with("healed: ") => {
                if let Some((start, what)) = open.take() {
                    windows.push((start, at, what));
                }
            }
            Event::LivenessStarted => {
                if let Some((start, what)) = open.take() {
                    windows.push((start, at, what));
                }
            }
            _ => {}
        }
    }
    windows
}

/// The colour of a fault window on the plots, by kind.
fn shade(what: &str) -> RGBAColor {
    if what.starts_with("kill") {
        RED.mix(0.15)
    } else if what.starts_with("pause") {
        BLUE.mix(0.12)
    } else {
        RGBColor(255, 165, 0).mix(0.18)
    }
}

/// The shaded rectangle of every fault window, from `low` to `high` on the y axis.
fn fault_rects(
    windows: &[(f64, f64, String)],
    low: f64,
    high: f64,
) -> impl Iterator<Item = Rectangle<(f64, f64)>> + '_ {
    windows.iter().map(move |(start, end, what)| {
        Rectangle::new([(*start, low), (*end, high)], shade(what).filled())
    })
}

/// A chart over the run's time with the report's layout.
fn chart_builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(
            format!("{caption} (shaded: faults; red kill, blue pause, orange partition)"),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60);
    builder
}

fn end_secs(entries: &[Entry]) -> f64 {
    entries
        .last()
        .map_or(1.0, |e| e.at_ms as f64 / 1000.0)
        .max(1.0)
}

fn plot_latency(path: &Path, entries: &[Entry], windows: &[(f64, f64, String)]) -> Result<()> {
    let points: Vec<(f64, f64)> = publish_times(entries)
        .values()
        .filter_map(|(sent, acked)| {
            acked.map(|a| {
                (
                    *sent as f64 / 1000.0,
                    (a.saturating_sub(*sent)).max(1) as f64,
                )
            })
        })
        .collect();
    let max_ms = points.iter().map(|p| p.1).fold(10.0, f64::max) * 1.5;
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = chart_builder(&root, "publish → acknowledgement latency")
        .build_cartesian_2d(0.0..end_secs(entries), (1.0..max_ms).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("latency (ms)")
        .draw()?;
    chart.draw_series(fault_rects(windows, 1.0, max_ms))?;
    chart.draw_series(
        points
            .iter()
            .map(|&(x, y)| Circle::new((x, y), 1, BLACK.mix(0.5).filled())),
    )?;
    root.present()?;
    Ok(())
}

fn plot_throughput(path: &Path, entries: &[Entry], windows: &[(f64, f64, String)]) -> Result<()> {
    let seconds = end_secs(entries).ceil() as usize + 1;
    let mut acked = vec![0u32; seconds];
    let mut delivered = vec![0u32; seconds];
    for entry in entries {
        let second = (entry.at_ms / 1000) as usize;
        match entry.event {
            Event::PublishAcked { .. } => acked[second.min(seconds - 1)] += 1,
            Event::Delivered { .. } => delivered[second.min(seconds - 1)] += 1,
            _ => {}
        }
    }
    let top = acked
        .iter()
        .chain(&delivered)
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.2;
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = chart_builder(&root, "throughput per second")
        .build_cartesian_2d(0.0..end_secs(entries), 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("per second")
        .draw()?;
    chart.draw_series(fault_rects(windows, 0.0, top))?;
    let series = |counts: &[u32]| -> Vec<(f64, f64)> {
        counts
            .iter()
            .enumerate()
            .map(|(s, &c)| (s as f64 + 0.5, f64::from(c)))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(series(&acked), &BLUE))?
        .label("acknowledged publishes")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(series(&delivered), &GREEN))?
        .label("deliveries")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use keel::codec::QoS;
    use keel_oracle::history::ConnRef;

    use super::*;

    fn at(at_ms: u64, event: Event) -> Entry {
        Entry { at_ms, event }
    }

    fn conn() -> ConnRef {
        ConnRef {
            client: "p".into(),
            conn: 1,
        }
    }

    fn sent(ms: u64, seq: u64) -> Entry {
        at(
            ms,
            Event::PublishSent {
                at: conn(),
                msg: MsgId { publisher: 1, seq },
                topic: "t".into(),
                qos: QoS::AtLeastOnce,
                retain: false,
                dup: false,
            },
        )
    }

    fn acked(ms: u64, seq: u64) -> Entry {
        acked_of(1, ms, seq)
    }

    fn acked_of(publisher: u32, ms: u64, seq: u64) -> Entry {
        at(
            ms,
            Event::PublishAcked {
                at: conn(),
                msg: MsgId { publisher, seq },
            },
        )
    }

    #[test]
    fn figures_count_acknowledged_unknown_and_the_longest_silence() {
        let entries = vec![
            sent(0, 1),
            acked(10, 1),
            sent(20, 2),
            sent(30, 3),
            acked(5_030, 3),
            at(6_000, Event::LivenessStarted),
            at(9_000, Event::Finished),
        ];
        let s = stats(&entries, &[]);
        assert_eq!(s.published, 3);
        assert_eq!(s.acknowledged, 2);
        assert_eq!(s.unknown, 1, "message 2 never acknowledged");
        assert_eq!(s.max_unavailable_ms, 5_020);
        assert_eq!(s.latency_max_ms, 5_000);
    }

    #[test]
    fn the_longest_gap_of_one_publisher_is_its_own() {
        // Publisher 2 acknowledged throughout; publisher 1 waited 3 s between two of its own.
        let mut entries = vec![acked_of(1, 0, 1), acked_of(1, 3_000, 2)];
        entries.extend((0..=8).map(|i| acked_of(2, i * 400, i + 1)));
        entries.sort_by_key(|e| e.at_ms);
        entries.push(at(3_300, Event::LivenessStarted));
        let s = stats(&entries, &[]);
        assert_eq!(s.max_unavailable_ms, 400);
        assert_eq!(s.max_publisher_gap_ms, 3_000);
    }

    #[test]
    fn the_report_and_its_plots_are_written() {
        let dir = std::env::temp_dir().join(format!("keel-jepsen-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let entries = vec![
            sent(0, 1),
            at(
                100,
                Event::Fault {
                    what: "start: kill -9 n2".into(),
                },
            ),
            acked(1_500, 1),
            at(
                2_000,
                Event::Fault {
                    what: "healed: kill -9 n2".into(),
                },
            ),
            at(3_000, Event::LivenessStarted),
            at(4_000, Event::Finished),
        ];
        let report = Report {
            valid: true,
            seed: 1,
            nodes: 3,
            nemeses: vec!["Kill".into()],
            time_limit_secs: 3,
            liveness_secs: 1,
            planted: None,
            stats: stats(&entries, &[]),
            anomalies: Vec::new(),
            faults: vec!["0.1-2.0 s: kill -9 n2".into()],
        };
        write(&dir, &report, &entries).unwrap();
        for file in [
            "history.jsonl",
            "results.json",
            "summary.txt",
            "latency.svg",
            "throughput.svg",
        ] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(!text.is_empty(), "{file} is empty");
        }
        let svg = std::fs::read_to_string(dir.join("latency.svg")).unwrap();
        assert!(svg.contains("<rect"), "the fault window is shaded");
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(results["valid"], true);
        assert_eq!(results["stats"]["acknowledged"], 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
