//! One run from start to report: connect the clients, start them together, sample the
//! broker around the measured window, stop, drain, and add everything up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::conn::{Conn, ConnError, READ_CHUNK_BUSY, READ_CHUNK_IDLE};
use super::idle::hold_idle;
use super::pacing::{split_rate, Pacer};
use super::publisher::{run_publisher, PublisherPlan, PublisherResult};
use super::report::{BrokerUsage, IdleFigures, Latency, Report, Totals};
use super::shared::{LatencyShards, Phase, PublisherLink, RunClock, Window};
use super::subscriber::{run_subscriber, SubscriberPlan, SubscriberResult};
use super::template::PublishTemplate;
use super::{LoadgenError, Options, Scenario};
use keel::codec::{Protocol, QoS, TopicName};
use keel::procstat::{self, ProcSample};

/// During the drain, give up waiting for deliveries after this long without one.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// How often the drain checks the delivery counters.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// How long idle connections settle before the "connected" memory reading.
const IDLE_SETTLE: Duration = Duration::from_secs(1);

/// Latency histogram shards: enough that subscriber threads rarely share one.
const LATENCY_SHARDS: usize = 16;

/// The settings every publisher reads.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub qos: QoS,
    pub inflight: u16,
    pub write_buffer_max: usize,
    pub drain: Duration,
}

/// What the client tasks of one run share.
#[derive(Debug)]
pub struct RunShared {
    pub clock: RunClock,
    /// Written into every payload, so messages of another run are told apart.
    pub run_id: u16,
    pub settings: Settings,
    /// Run-clock time at which publishing started; fixed-rate schedules count from it.
    pub publish_start_ns: u64,
    pub window: Window,
    /// One per publisher, by index.
    pub links: Box<[PublisherLink]>,
    pub latencies: LatencyShards,
}

/// Carries out one run against the broker at `options.host:options.port`.
pub async fn run(options: &Options) -> Result<Report, LoadgenError> {
    options.validate()?;
    let addr = resolve(&options.host, options.port).await?;
    let sub_addr = match options.sub_port {
        Some(port) => resolve(&options.host, port).await?,
        None => addr,
    };
    let broker_start = match options.broker_pid {
        Some(pid) => Some(procstat::sample(Some(pid)).map_err(|e| {
            LoadgenError::Options(format!("cannot read /proc/{pid} of the broker: {e}"))
        })?),
        None => None,
    };
    let clock = RunClock::start();
    // Distinct between runs close in time; it also appears in every topic.
    let run_id = (std::process::id() & 0xffff) as u16;
    match options.scenario {
        Scenario::Idle { connections } => {
            run_idle(options, addr, connections, run_id, broker_start).await
        }
        _ => run_traffic(options, (addr, sub_addr), clock, run_id, broker_start).await,
    }
}

/// Who publishes where and who listens.
struct Plan {
    /// Topic of each publisher, by index.
    publisher_topics: Vec<String>,
    /// Filter and publisher range of each subscriber, by index.
    subscribers: Vec<(String, std::ops::Range<u32>)>,
    /// Subscribers per message of any publisher (the same for all in these scenarios).
    fanout: u64,
}

fn plan(scenario: &Scenario, prefix: &str, run_id: u16) -> Plan {
    let base = format!("{prefix}/{run_id}");
    match *scenario {
        Scenario::Pairs { count } => Plan {
            publisher_topics: (0..count).map(|i| format!("{base}/pairs/{i}")).collect(),
            subscribers: (0..count)
                .map(|i| (format!("{base}/pairs/{i}"), i as u32..i as u32 + 1))
                .collect(),
            fanout: 1,
        },
        Scenario::FanOut { subscribers } => Plan {
            publisher_topics: vec![format!("{base}/fanout")],
            subscribers: (0..subscribers)
                .map(|_| (format!("{base}/fanout"), 0..1))
                .collect(),
            fanout: subscribers as u64,
        },
        Scenario::FanIn {
            publishers,
            one_topic,
        } => {
            let topic = |i: usize| {
                if one_topic {
                    format!("{base}/fanin")
                } else {
                    format!("{base}/fanin/{i}")
                }
            };
            let filter = if one_topic {
                format!("{base}/fanin")
            } else {
                format!("{base}/fanin/+")
            };
            Plan {
                publisher_topics: (0..publishers).map(topic).collect(),
                subscribers: vec![(filter, 0..publishers as u32)],
                fanout: 1,
            }
        }
        Scenario::Idle { .. } => Plan {
            publisher_topics: Vec::new(),
            subscribers: Vec::new(),
            fanout: 0,
        },
    }
}

async fn run_traffic(
    options: &Options,
    (addr, sub_addr): (SocketAddr, SocketAddr),
    clock: RunClock,
    run_id: u16,
    broker_start: Option<ProcSample>,
) -> Result<Report, LoadgenError> {
    let plan = plan(&options.scenario, &options.topic_prefix, run_id);
    let spec = ConnectSpec {
        addr,
        protocol: options.protocol,
        keep_alive_secs: traffic_keep_alive_secs(options),
        read_chunk: READ_CHUNK_BUSY,
        concurrency: options.connect_concurrency,
        qos: options.qos,
        persistent_subscribers: options.persistent,
    };
    // Subscribers first, so that no message is published before its subscriptions exist.
    let subscriber_ids = plan
        .subscribers
        .iter()
        .enumerate()
        .map(|(i, (filter, _))| (format!("kb{run_id:04x}s{i}"), Some(filter.clone())))
        .collect();
    let sub_spec = ConnectSpec {
        addr: sub_addr,
        ..spec
    };
    let subscriber_conns =
        all_or_error(connect_many(sub_spec, subscriber_ids).await, "subscriber")?;
    let publisher_ids = (0..plan.publisher_topics.len())
        .map(|i| (format!("kb{run_id:04x}p{i}"), None))
        .collect();
    let publisher_conns = all_or_error(connect_many(spec, publisher_ids).await, "publisher")?;

    let publisher_plans = publisher_plans(options, &plan)?;
    let shared = Arc::new(run_shared(options, clock, run_id, publisher_plans.len()));
    let window = shared.window;
    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let subscriber_tasks = spawn_subscribers(subscriber_conns, &plan, &shared, &phase_rx);
    let publisher_tasks = spawn_publishers(publisher_conns, publisher_plans, &shared, &phase_rx);

    tokio::time::sleep_until(clock.instant_at(window.start_ns)).await;
    let (broker_window_start, self_window_start) = samples(options.broker_pid);
    let measured_from_ns = clock.now_ns();
    tokio::time::sleep_until(clock.instant_at(window.end_ns)).await;
    let (broker_window_end, self_window_end) = samples(options.broker_pid);
    let measured_ns = clock.now_ns() - measured_from_ns;

    // Stop publishing, let the in-flight flows finish, then wait for the deliveries owed.
    let drain_started = Instant::now();
    phase_tx.send_replace(Phase::Stop);
    let publisher_results = join_all(publisher_tasks).await?;
    let owed = owed_deliveries(&publisher_results, plan.fanout);
    wait_for_deliveries(&shared, owed, drain_started + options.drain).await;
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let broker_end = options
        .broker_pid
        .and_then(|pid| procstat::sample(Some(pid)).ok());
    phase_tx.send_replace(Phase::Close);
    let subscriber_results = join_all(subscriber_tasks).await?;

    let readings = TrafficReadings {
        broker: [
            broker_start,
            broker_window_start,
            broker_window_end,
            broker_end,
        ],
        self_window: (self_window_start, self_window_end),
        measured_ns,
        drain_secs,
    };
    Ok(traffic_report(
        options,
        &plan,
        &shared,
        (&publisher_results, &subscriber_results),
        readings,
    ))
}

/// Builds each publisher's plan (its topic's PUBLISH template, its share of the rate and of
/// the lead), by publisher index. Kept out of [`run_traffic`], which it would lengthen: it
/// only computes, and fails on a topic or packet the options make invalid.
fn publisher_plans(options: &Options, plan: &Plan) -> Result<Vec<PublisherPlan>, LoadgenError> {
    let publishers = plan.publisher_topics.len();
    let rates = options.rate.map(|rate| split_rate(rate, publishers));
    let lead_max = publisher_lead_max(options.lead_max, plan);
    let mut publisher_plans = Vec::with_capacity(publishers);
    for (i, topic) in plan.publisher_topics.iter().enumerate() {
        let topic = TopicName::new(topic)
            .map_err(|e| LoadgenError::Options(format!("topic {topic}: {e}")))?;
        let template =
            PublishTemplate::new(options.protocol, topic, options.qos, options.payload_len)
                .map_err(|e| LoadgenError::Options(format!("publish packet: {e}")))?;
        publisher_plans.push(PublisherPlan {
            index: i as u32,
            template,
            fanout: plan.fanout,
            lead_max,
            pacer: rates
                .as_ref()
                .map(|rates| Pacer::new(rates[i], i, publishers)),
        });
    }
    Ok(publisher_plans)
}

/// What the client tasks share, with publishing starting now: the measured window opens after
/// the warm-up, counted from this moment, which is why it is read here, once every client is
/// connected and just before the tasks are spawned.
fn run_shared(options: &Options, clock: RunClock, run_id: u16, publishers: usize) -> RunShared {
    let publish_start_ns = clock.now_ns();
    let window_start_ns = publish_start_ns + duration_ns(options.warmup);
    let window = Window {
        start_ns: window_start_ns,
        end_ns: window_start_ns + duration_ns(options.duration),
    };
    RunShared {
        clock,
        run_id,
        settings: Settings {
            qos: options.qos,
            inflight: options.inflight,
            write_buffer_max: options.write_buffer_max,
            drain: options.drain,
        },
        publish_start_ns,
        window,
        links: (0..publishers).map(|_| PublisherLink::default()).collect(),
        latencies: LatencyShards::new(LATENCY_SHARDS),
    }
}

/// Starts one task per subscriber connection, by index (spawning does not wait, so the
/// subscribers all start before any publisher).
fn spawn_subscribers(
    conns: Vec<Conn>,
    plan: &Plan,
    shared: &Arc<RunShared>,
    phase_rx: &watch::Receiver<Phase>,
) -> Vec<JoinHandle<SubscriberResult>> {
    conns
        .into_iter()
        .enumerate()
        .map(|(index, conn)| {
            let plan = SubscriberPlan {
                index,
                publishers: plan.subscribers[index].1.clone(),
            };
            tokio::spawn(run_subscriber(conn, plan, shared.clone(), phase_rx.clone()))
        })
        .collect()
}

/// Starts one task per publisher connection with its plan, by index.
fn spawn_publishers(
    conns: Vec<Conn>,
    plans: Vec<PublisherPlan>,
    shared: &Arc<RunShared>,
    phase_rx: &watch::Receiver<Phase>,
) -> Vec<JoinHandle<PublisherResult>> {
    conns
        .into_iter()
        .zip(plans)
        .map(|(conn, plan)| {
            tokio::spawn(run_publisher(conn, plan, shared.clone(), phase_rx.clone()))
        })
        .collect()
}

/// The distinct deliveries the drain waits for: every message the broker accepted (neither
/// unacknowledged nor refused), once per subscriber of it.
fn owed_deliveries(publisher_results: &[PublisherResult], fanout: u64) -> u64 {
    publisher_results
        .iter()
        .map(|p| (p.sent - p.unacknowledged.len() as u64 - p.refused.len() as u64) * fanout)
        .sum()
}

/// The process readings and timings a traffic run took, for [`traffic_report`].
struct TrafficReadings {
    /// The broker's readings: before connecting, at the window's start and end, after the
    /// drain; each `None` when there is no broker pid or it could not be read.
    broker: [Option<ProcSample>; 4],
    /// The load generator's own readings at the window's start and end.
    self_window: (Option<ProcSample>, Option<ProcSample>),
    /// Length of the measured window as it actually ran.
    measured_ns: u64,
    drain_secs: f64,
}

/// Adds up a finished traffic run into its report. Separate from [`run_traffic`] so that the
/// run reads as its sequence of steps; this part only computes.
fn traffic_report(
    options: &Options,
    plan: &Plan,
    shared: &RunShared,
    (publisher_results, subscriber_results): (&[PublisherResult], &[SubscriberResult]),
    readings: TrafficReadings,
) -> Report {
    let totals = Totals::tally(publisher_results, subscriber_results, |_| plan.fanout);
    let errors: Vec<&String> = publisher_results
        .iter()
        .filter_map(|p| p.error.as_ref())
        .chain(subscriber_results.iter().filter_map(|s| s.error.as_ref()))
        .collect();
    let ticks = procstat::clock_ticks_per_sec();
    let measured_ns = readings.measured_ns;
    let broker = match readings.broker {
        [Some(start), Some(from), Some(to), end] => Some(BrokerUsage {
            cpu_percent: procstat::cpu_percent(&from, &to, measured_ns, ticks),
            rss_kb_start: start.rss_kb,
            rss_kb_end: end.unwrap_or(to).rss_kb,
            rss_kb_peak: end.unwrap_or(to).rss_peak_kb,
        }),
        _ => None,
    };
    let loadgen_cpu_percent = match readings.self_window {
        (Some(from), Some(to)) => procstat::cpu_percent(&from, &to, measured_ns, ticks),
        _ => 0.0,
    };
    let (publishers, subscribers) = options.scenario.clients();
    Report {
        scenario: options.scenario.name().to_owned(),
        publishers: publishers as u64,
        subscribers: subscribers as u64,
        qos: options.qos as u8,
        mqtt_version: mqtt_version(options.protocol),
        payload_bytes: options.payload_len as u64,
        duration_secs: options.duration.as_secs_f64(),
        warmup_secs: options.warmup.as_secs_f64(),
        rate: options.rate,
        msgs_per_sec: totals.delivered_in_window as f64 / options.duration.as_secs_f64(),
        totals,
        latency: Latency::from_histogram(&shared.latencies.merged()),
        drain_secs: readings.drain_secs,
        broker,
        loadgen_cpu_percent,
        loadgen_threads: 1,
        idle: None,
        errors: errors.len() as u64,
        first_error: errors.first().map(|e| e.to_string()),
    }
}

async fn run_idle(
    options: &Options,
    addr: SocketAddr,
    connections: usize,
    run_id: u16,
    broker_start: Option<ProcSample>,
) -> Result<Report, LoadgenError> {
    let spec = ConnectSpec {
        addr,
        protocol: options.protocol,
        // `Options::validate` keeps it within u16.
        keep_alive_secs: options.keep_alive.as_secs() as u16,
        read_chunk: READ_CHUNK_IDLE,
        concurrency: options.connect_concurrency,
        qos: QoS::AtMostOnce,
        persistent_subscribers: false,
    };
    let ids = (0..connections)
        .map(|i| (format!("kb{run_id:04x}i{i}"), None))
        .collect();
    let results = connect_many(spec, ids).await;
    let mut first_error = None;
    let mut errors = 0;
    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let mut tasks = Vec::with_capacity(connections);
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Ok(conn) => tasks.push(tokio::spawn(hold_idle(
                conn,
                options.keep_alive,
                phase_rx.clone(),
            ))),
            Err((id, e)) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("idle connection {index} ({id}): {e}"));
            }
        }
    }
    let made = tasks.len() as u64;
    tokio::time::sleep(IDLE_SETTLE).await;
    let (broker_connected, self_start) = samples(options.broker_pid);
    let held_from = Instant::now();
    tokio::time::sleep(options.duration).await;
    let (broker_end, self_end) = samples(options.broker_pid);
    let held_ns = duration_ns(held_from.elapsed());
    phase_tx.send_replace(Phase::Close);
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("idle connection: {e}"));
            }
            Err(e) => return Err(LoadgenError::Task(e.to_string())),
        }
    }

    let ticks = procstat::clock_ticks_per_sec();
    let broker = match (broker_start, broker_connected, broker_end) {
        (Some(start), Some(from), Some(end)) => Some(BrokerUsage {
            cpu_percent: procstat::cpu_percent(&from, &end, held_ns, ticks),
            rss_kb_start: start.rss_kb,
            rss_kb_end: end.rss_kb,
            rss_kb_peak: end.rss_peak_kb,
        }),
        _ => None,
    };
    let kb_per_connection = broker
        .filter(|_| made > 0)
        .map(|b| (b.rss_kb_end as f64 - b.rss_kb_start as f64) / made as f64);
    let loadgen_cpu_percent = match (self_start, self_end) {
        (Some(from), Some(to)) => procstat::cpu_percent(&from, &to, held_ns, ticks),
        _ => 0.0,
    };
    Ok(Report {
        scenario: options.scenario.name().to_owned(),
        qos: 0,
        mqtt_version: mqtt_version(options.protocol),
        duration_secs: options.duration.as_secs_f64(),
        broker,
        loadgen_cpu_percent,
        loadgen_threads: 1,
        idle: Some(IdleFigures {
            connections_asked: connections as u64,
            connections_made: made,
            rss_kb_connected: broker_connected.map(|s| s.rss_kb),
            kb_per_connection,
        }),
        errors,
        first_error,
        ..Report::default()
    })
}

/// A connection attempt's outcome: the connection, or the client id and why it failed.
type Connected = Result<Conn, (String, ConnError)>;

/// How to connect a batch of clients.
#[derive(Debug, Clone, Copy)]
struct ConnectSpec {
    addr: SocketAddr,
    protocol: Protocol,
    keep_alive_secs: u16,
    read_chunk: usize,
    /// Connections set up at once.
    concurrency: usize,
    /// QoS of the subscriptions, for clients given a filter.
    qos: QoS,
    /// Subscribers keep persistent sessions (docs/design.md §1: durable sessions).
    persistent_subscribers: bool,
}

/// Session expiry of persistent subscribers: long enough to outlive any run.
const PERSISTENT_EXPIRY_SECS: u32 = 3600;

/// Connects one client per `(client id, filter)`, subscribing those with a filter.
/// Results are in the order of `clients`.
async fn connect_many(spec: ConnectSpec, clients: Vec<(String, Option<String>)>) -> Vec<Connected> {
    let mut results: Vec<(usize, Connected)> = stream::iter(clients.into_iter().enumerate())
        .map(|(i, (id, filter))| async move {
            let outcome = async {
                let persistent = spec.persistent_subscribers && filter.is_some();
                let mut conn = Conn::connect(
                    spec.addr,
                    spec.protocol,
                    &id,
                    spec.keep_alive_secs,
                    spec.read_chunk,
                    persistent.then_some(PERSISTENT_EXPIRY_SECS),
                )
                .await?;
                if let Some(filter) = filter {
                    conn.subscribe(&filter, spec.qos).await?;
                }
                Ok::<Conn, ConnError>(conn)
            }
            .await;
            (i, outcome.map_err(|e| (id, e)))
        })
        .buffer_unordered(spec.concurrency)
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, result)| result).collect()
}

fn all_or_error(results: Vec<Connected>, role: &str) -> Result<Vec<Conn>, LoadgenError> {
    results
        .into_iter()
        .map(|result| {
            result.map_err(|(id, source)| LoadgenError::Setup {
                client: format!("{role} {id}"),
                source,
            })
        })
        .collect()
}

async fn join_all<T>(tasks: Vec<JoinHandle<T>>) -> Result<Vec<T>, LoadgenError> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.map_err(|e| LoadgenError::Task(e.to_string()))?);
    }
    Ok(results)
}

/// Waits until `owed` distinct deliveries were made, nothing arrived for [`DRAIN_QUIET`], or
/// `deadline` passed; the last two leave the missing messages to be counted as lost.
async fn wait_for_deliveries(shared: &RunShared, owed: u64, deadline: Instant) {
    let delivered = || {
        shared
            .links
            .iter()
            .map(PublisherLink::delivered)
            .sum::<u64>()
    };
    let mut last = delivered();
    let mut last_progress = Instant::now();
    while last < owed && Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL).await;
        let now = delivered();
        if now != last {
            last = now;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= DRAIN_QUIET {
            return;
        }
    }
}

/// Each publisher's share of `lead_max`, the messages a subscriber may be behind: a
/// subscriber fed by N publishers lets each of them lead by `lead_max / N` (at least 1), so
/// that the broker's queue for one subscriber stays near `lead_max` in every scenario.
fn publisher_lead_max(lead_max: u64, plan: &Plan) -> u64 {
    let feeds = plan
        .subscribers
        .iter()
        .map(|(_, publishers)| publishers.len() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    match lead_max {
        0 => 0,
        lead => (lead / feeds).max(1),
    }
}

/// Broker and load-generator readings; `None` where there is nothing to read.
fn samples(broker_pid: Option<u32>) -> (Option<ProcSample>, Option<ProcSample>) {
    let broker = broker_pid.and_then(|pid| procstat::sample(Some(pid)).ok());
    (broker, procstat::sample(None).ok())
}

/// Keep-alive for busy clients: long enough that no ping is ever needed during the run (they
/// are never silent for long, but a drain can be).
fn traffic_keep_alive_secs(options: &Options) -> u16 {
    let run = options.warmup + options.duration + options.drain * 2;
    (run.as_secs() + 60).min(u64::from(u16::MAX)) as u16
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, LoadgenError> {
    let error = |source| LoadgenError::Resolve {
        host: host.to_owned(),
        port,
        source,
    };
    tokio::net::lookup_host((host, port))
        .await
        .map_err(error)?
        .next()
        .ok_or_else(|| error(std::io::ErrorKind::NotFound.into()))
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn mqtt_version(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::V5 => 5,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_give_each_publisher_its_own_subscriber() {
        let plan = plan(&Scenario::Pairs { count: 3 }, "bench", 7);
        assert_eq!(plan.publisher_topics[2], "bench/7/pairs/2");
        assert_eq!(plan.subscribers[2], ("bench/7/pairs/2".to_owned(), 2..3));
        assert_eq!(plan.fanout, 1);
    }

    #[test]
    fn fan_out_subscribers_share_one_topic() {
        let plan = plan(&Scenario::FanOut { subscribers: 4 }, "b", 1);
        assert_eq!(plan.publisher_topics, vec!["b/1/fanout".to_owned()]);
        assert_eq!(plan.subscribers.len(), 4);
        assert!(plan
            .subscribers
            .iter()
            .all(|(f, r)| f == "b/1/fanout" && *r == (0..1)));
        assert_eq!(plan.fanout, 4);
    }

    #[test]
    fn a_subscriber_fed_by_many_publishers_splits_the_lead() {
        let pairs = plan(&Scenario::Pairs { count: 10 }, "b", 1);
        assert_eq!(publisher_lead_max(100, &pairs), 100);
        let fan_out = plan(&Scenario::FanOut { subscribers: 10 }, "b", 1);
        assert_eq!(publisher_lead_max(100, &fan_out), 100);
        let fan_in = |publishers| {
            plan(
                &Scenario::FanIn {
                    publishers,
                    one_topic: false,
                },
                "b",
                1,
            )
        };
        assert_eq!(publisher_lead_max(100, &fan_in(10)), 10);
        assert_eq!(publisher_lead_max(100, &fan_in(1000)), 1);
        assert_eq!(publisher_lead_max(0, &fan_in(10)), 0);
    }

    #[test]
    fn fan_in_uses_a_wildcard_or_one_topic() {
        let wildcard = plan(
            &Scenario::FanIn {
                publishers: 3,
                one_topic: false,
            },
            "b",
            1,
        );
        assert_eq!(wildcard.publisher_topics[1], "b/1/fanin/1");
        assert_eq!(wildcard.subscribers, vec![("b/1/fanin/+".to_owned(), 0..3)]);
        let shared = plan(
            &Scenario::FanIn {
                publishers: 3,
                one_topic: true,
            },
            "b",
            1,
        );
        assert!(shared.publisher_topics.iter().all(|t| t == "b/1/fanin"));
        assert_eq!(shared.subscribers, vec![("b/1/fanin".to_owned(), 0..3)]);
    }
}
