//! `keel-bench`: the MQTT load generator. Thin: parses arguments, builds the runtime and hands
//! over to the library of this crate (`keel_loadgen`).

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use keel::codec::{Protocol, QoS};
use keel_loadgen::{Options, Scenario};

#[derive(Parser)]
#[command(
    name = "keel-bench",
    version,
    about = "MQTT load generator: throughput, latency, loss and broker cost of any MQTT broker"
)]
struct Cli {
    #[command(subcommand)]
    scenario: ScenarioArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Subcommand)]
enum ScenarioArgs {
    /// N publishers, each publishing to its own topic bench/RUN/pairs/i with its own subscriber.
    Pairs {
        #[arg(long, default_value_t = 100)]
        count: usize,
    },
    /// One publisher, N subscribers on its topic.
    Fanout {
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
    },
    /// N publishers, one subscriber (a `+` wildcard over their topics, or one shared topic).
    Fanin {
        #[arg(long, default_value_t = 100)]
        publishers: usize,
        /// All publishers publish to one topic instead of one topic each.
        #[arg(long)]
        one_topic: bool,
    },
    /// N connections that stay idle for --duration; reports broker RSS per connection.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
    },
}

#[derive(Args)]
struct CommonArgs {
    #[arg(long, global = true, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, global = true, default_value_t = 1883)]
    port: u16,
    /// Port the subscribers connect to, when not --port (another node of a cluster).
    #[arg(long, global = true)]
    sub_port: Option<u16>,
    /// MQTT version: 3 (3.1.1) or 5.
    #[arg(long, global = true, default_value_t = 3, value_parser = parse_mqtt_version)]
    mqtt_version: u8,
    /// QoS of publishes and subscriptions: 0, 1 or 2.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Payload bytes per message (at least 24: the header with publisher, sequence, timestamp).
    #[arg(long, global = true, default_value_t = 64)]
    payload: usize,
    /// Measured seconds.
    #[arg(long, global = true, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of publishing before the measurement starts.
    #[arg(long, global = true, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds to wait after publishing stops for acknowledgements and deliveries.
    #[arg(long, global = true, default_value_t = 10.0)]
    drain: f64,
    /// Total messages per second over all publishers; full speed when absent.
    #[arg(long, global = true)]
    rate: Option<u64>,
    /// QoS 1/2 messages each publisher may have unacknowledged.
    #[arg(long, global = true, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    inflight: u16,
    /// Messages a subscriber may be behind its publishers, shared out among the publishers
    /// that feed it (0: no limit).
    #[arg(long, global = true, default_value_t = 100)]
    lead_max: u64,
    /// Bytes a publisher may have waiting in its write buffer (holds back QoS 0).
    #[arg(long, global = true, default_value_t = 64 * 1024)]
    write_buffer: usize,
    /// Keep-alive seconds of idle connections (they ping at half of it).
    #[arg(long, global = true, default_value_t = 60)]
    keep_alive: u16,
    /// Connections set up at once.
    #[arg(long, global = true, default_value_t = 64)]
    connect_concurrency: usize,
    /// First topic level.
    #[arg(long, global = true, default_value = "bench")]
    topic_prefix: String,
    /// The broker's pid: its CPU and RSS are read from /proc.
    #[arg(long, global = true)]
    broker_pid: Option<u32>,
    /// Subscribers keep persistent sessions (MQTT 3 clean session 0, MQTT 5 session expiry
    /// 3600 s): what they receive must be stored durably by the broker.
    #[arg(long, global = true)]
    persistent: bool,
    /// Runtime threads of the load generator (1: a current-thread runtime).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// Print one JSON line instead of the table.
    #[arg(long, global = true)]
    json: bool,
}

fn parse_mqtt_version(value: &str) -> Result<u8, String> {
    match value {
        "3" | "3.1.1" | "4" => Ok(3),
        "5" | "5.0" => Ok(5),
        other => Err(format!("{other}: use 3 (3.1.1) or 5")),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let threads = cli.common.threads;
    let json = cli.common.json;
    let options = options(cli)?;
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(threads))
            .enable_all()
            .build()
    }
    .context("building the tokio runtime")?;
    let mut report = runtime.block_on(keel_loadgen::run(&options))?;
    report.loadgen_threads = u64::from(threads);
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

fn options(cli: Cli) -> anyhow::Result<Options> {
    let c = cli.common;
    let scenario = match cli.scenario {
        ScenarioArgs::Pairs { count } => Scenario::Pairs { count },
        ScenarioArgs::Fanout { subscribers } => Scenario::FanOut { subscribers },
        ScenarioArgs::Fanin {
            publishers,
            one_topic,
        } => Scenario::FanIn {
            publishers,
            one_topic,
        },
        ScenarioArgs::Idle { connections } => Scenario::Idle { connections },
    };
    let seconds = |name: &str, secs: f64| {
        Duration::try_from_secs_f64(secs).with_context(|| format!("--{name} {secs}"))
    };
    let options = Options {
        scenario,
        host: c.host,
        port: c.port,
        sub_port: c.sub_port,
        protocol: if c.mqtt_version == 5 {
            Protocol::V5
        } else {
            Protocol::V3_1_1
        },
        // The value parser accepts 0 to 2 only.
        qos: QoS::from_bits(c.qos).context("--qos")?,
        payload_len: c.payload,
        duration: seconds("duration", c.duration)?,
        warmup: seconds("warmup", c.warmup)?,
        drain: seconds("drain", c.drain)?,
        rate: c.rate,
        inflight: c.inflight,
        lead_max: c.lead_max,
        write_buffer_max: c.write_buffer,
        keep_alive: Duration::from_secs(u64::from(c.keep_alive)),
        connect_concurrency: c.connect_concurrency,
        topic_prefix: c.topic_prefix,
        broker_pid: c.broker_pid,
        persistent: c.persistent,
    };
    options.validate()?;
    Ok(options)
}
