//! The seeded scenarios: a small deterministic PRNG (splitmix64) and the steps it draws for
//! one to three clients over a tiny topic space, so that one seed always means the same run.

use std::fmt;

/// Topic names publishes go to, below the scenario's root.
const TOPICS: &[&str] = &["t/a", "t/b", "x/y"];

/// Topic filters subscriptions use, below the scenario's root (`#` is the root's `#`). They
/// overlap on purpose: `t/a` matches four of them.
const FILTERS: &[&str] = &["t/a", "t/b", "t/+", "t/#", "#", "x/y", "+/y"];

/// The Session Expiry Interval a "large" expiry asks for: far longer than any run.
pub const LARGE_EXPIRY_SECS: u32 = 3600;

/// The keep-alive a "large" keep-alive asks for: far longer than any run, so no PINGREQ is due.
const LARGE_KEEP_ALIVE_SECS: u16 = 3600;

/// splitmix64: a tiny generator whose whole state is one u64, enough for test inputs and the
/// same on every platform.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (the modulo bias is irrelevant for such small `n`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// The protocol a CONNECT speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3,
    V5,
}

/// The Session Expiry Interval property of an MQTT 5 CONNECT or DISCONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Absent,
    Zero,
    Large,
    /// 0xFFFFFFFF: the session never expires.
    Never,
}

impl Expiry {
    /// The property's value, `None` when it is not sent.
    pub fn property(self) -> Option<u32> {
        match self {
            Expiry::Absent => None,
            Expiry::Zero => Some(0),
            Expiry::Large => Some(LARGE_EXPIRY_SECS),
            Expiry::Never => Some(u32::MAX),
        }
    }

    /// The interval in force: an absent property means 0.
    pub fn secs(self) -> u32 {
        self.property().unwrap_or(0)
    }
}

/// One CONNECT: a new connection of a client id (a takeover when it is connected already).
#[derive(Debug, Clone, Copy)]
pub struct ConnectSpec {
    pub version: Version,
    pub clean_start: bool,
    /// Only MQTT 5 sends it.
    pub expiry: Expiry,
    pub keep_alive: u16,
}

/// One subscription request of a SUBSCRIBE; the MQTT 5 options are false/0 for MQTT 3.1.1.
#[derive(Debug, Clone, Copy)]
pub struct Subscription {
    pub filter: &'static str,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
}

/// What one client does in one step. `client` indexes the scenario's client ids.
#[derive(Debug, Clone)]
pub enum Step {
    Connect {
        client: usize,
        spec: ConnectSpec,
    },
    Subscribe {
        client: usize,
        subscriptions: Vec<Subscription>,
    },
    Unsubscribe {
        client: usize,
        filters: Vec<&'static str>,
    },
    /// An empty `payload` with `retain` clears the topic's retained message.
    Publish {
        client: usize,
        topic: &'static str,
        qos: u8,
        retain: bool,
        payload: String,
    },
    /// DISCONNECT (MQTT 5: with a Session Expiry Interval when `expiry` is not absent), then
    /// the client closes the connection once the broker has.
    Disconnect {
        client: usize,
        expiry: Expiry,
    },
    /// The client closes the TCP connection without DISCONNECT.
    Drop {
        client: usize,
    },
}

impl Step {
    pub fn client(&self) -> usize {
        match self {
            Step::Connect { client, .. }
            | Step::Subscribe { client, .. }
            | Step::Unsubscribe { client, .. }
            | Step::Publish { client, .. }
            | Step::Disconnect { client, .. }
            | Step::Drop { client } => *client,
        }
    }
}

/// A whole scenario: its client ids, the root all its topics live under (so that many
/// scenarios can share one broker), and its steps.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub root: String,
    pub client_ids: Vec<String>,
    pub steps: Vec<Step>,
}

impl Scenario {
    /// The topic or filter on the wire for a scenario-relative one.
    pub fn wire(&self, relative: &str) -> String {
        format!("{}/{relative}", self.root)
    }
}

/// What the generator knows of one client's connection, to draw steps that make sense.
#[derive(Clone, Copy)]
struct Live {
    version: Version,
    /// The expiry the CONNECT set (MQTT 5), for drawing the DISCONNECT's.
    connect_expiry: Expiry,
}

/// Draws the scenario of `seed`.
pub fn generate(seed: u64) -> Scenario {
    let mut rng = Prng::new(seed);
    let client_count = 1 + rng.below(3);
    let step_count = 10 + rng.below(21);
    let mut live: Vec<Option<Live>> = vec![None; client_count];
    let mut steps = Vec::with_capacity(step_count);
    for n in 0..step_count {
        let client = rng.below(client_count);
        let step = match live[client] {
            None => connect(&mut rng, client),
            Some(state) => step_of_connected(&mut rng, client, state, seed, n),
        };
        live[client] = next_live(&step, live[client]);
        steps.push(step);
    }
    Scenario {
        seed,
        root: format!("k{seed}"),
        client_ids: (0..client_count).map(|c| format!("k{seed}c{c}")).collect(),
        steps,
    }
}

/// The generator's view of a client after `step`.
fn next_live(step: &Step, before: Option<Live>) -> Option<Live> {
    match step {
        Step::Connect { spec, .. } => Some(Live {
            version: spec.version,
            connect_expiry: spec.expiry,
        }),
        Step::Disconnect { .. } | Step::Drop { .. } => None,
        _ => before,
    }
}

fn connect(rng: &mut Prng, client: usize) -> Step {
    let version = if rng.chance(50) {
        Version::V5
    } else {
        Version::V3
    };
    let expiry = match version {
        Version::V3 => Expiry::Absent,
        Version::V5 => match rng.below(20) {
            0..=6 => Expiry::Absent,
            7..=9 => Expiry::Zero,
            10..=17 => Expiry::Large,
            _ => Expiry::Never,
        },
    };
    let keep_alive = if rng.chance(50) {
        0
    } else {
        LARGE_KEEP_ALIVE_SECS
    };
    Step::Connect {
        client,
        spec: ConnectSpec {
            version,
            clean_start: rng.chance(45),
            expiry,
            keep_alive,
        },
    }
}

fn step_of_connected(rng: &mut Prng, client: usize, live: Live, seed: u64, n: usize) -> Step {
    match rng.below(100) {
        0..=39 => publish(rng, client, seed, n),
        40..=64 => subscribe(rng, client, live.version),
        65..=72 => Step::Unsubscribe {
            client,
            filters: filters(rng),
        },
        73..=84 => Step::Disconnect {
            client,
            expiry: disconnect_expiry(rng, live),
        },
        85..=92 => Step::Drop { client },
        _ => connect(rng, client),
    }
}

fn publish(rng: &mut Prng, client: usize, seed: u64, n: usize) -> Step {
    let retain = rng.chance(35);
    let clears = retain && rng.chance(15);
    Step::Publish {
        client,
        topic: rng.pick(TOPICS),
        qos: rng.below(3) as u8,
        retain,
        payload: if clears {
            String::new()
        } else {
            format!("s{seed}-m{n}")
        },
    }
}

/// One filter, sometimes two (the SUBACK/UNSUBACK then carries two codes).
fn filters(rng: &mut Prng) -> Vec<&'static str> {
    let mut filters = vec![rng.pick(FILTERS)];
    if rng.chance(15) {
        filters.push(rng.pick(FILTERS));
    }
    filters
}

fn subscribe(rng: &mut Prng, client: usize, version: Version) -> Step {
    let subscriptions = filters(rng)
        .into_iter()
        .map(|filter| {
            let qos = rng.below(3) as u8;
            if version == Version::V3 {
                return Subscription {
                    filter,
                    qos,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 0,
                };
            }
            Subscription {
                filter,
                qos,
                no_local: rng.chance(15),
                retain_as_published: rng.chance(25),
                retain_handling: match rng.below(20) {
                    0..=13 => 0,
                    14..=16 => 1,
                    _ => 2,
                },
            }
        })
        .collect();
    Step::Subscribe {
        client,
        subscriptions,
    }
}

/// The Session Expiry Interval of a DISCONNECT. A non-zero one after a CONNECT whose expiry
/// was 0 is a Protocol Error (§3.14.2.2.2): drawn rarely, as a deliberate case.
fn disconnect_expiry(rng: &mut Prng, live: Live) -> Expiry {
    if live.version == Version::V3 {
        return Expiry::Absent;
    }
    let zero_at_connect = live.connect_expiry.secs() == 0;
    match rng.below(100) {
        0..=4 if zero_at_connect => Expiry::Large,
        0..=14 if !zero_at_connect => Expiry::Large,
        15..=29 => Expiry::Zero,
        _ => Expiry::Absent,
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V3 => "v3.1.1",
            Version::V5 => "v5",
        })
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.property() {
            None => f.write_str("absent"),
            Some(u32::MAX) => f.write_str("never"),
            Some(secs) => write!(f, "{secs}"),
        }
    }
}

impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} q{}", self.filter, self.qos)?;
        if self.no_local {
            f.write_str(" no-local")?;
        }
        if self.retain_as_published {
            f.write_str(" rap")?;
        }
        if self.retain_handling != 0 {
            write!(f, " rh{}", self.retain_handling)?;
        }
        Ok(())
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{} ", self.client())?;
        match self {
            Step::Connect { spec, .. } => {
                write!(
                    f,
                    "CONNECT {} clean={} ",
                    spec.version,
                    u8::from(spec.clean_start)
                )?;
                if spec.version == Version::V5 {
                    write!(f, "expiry={} ", spec.expiry)?;
                }
                write!(f, "keep-alive={}", spec.keep_alive)
            }
            Step::Subscribe { subscriptions, .. } => {
                let list: Vec<String> = subscriptions.iter().map(|s| s.to_string()).collect();
                write!(f, "SUBSCRIBE {}", list.join(", "))
            }
            Step::Unsubscribe { filters, .. } => write!(f, "UNSUBSCRIBE {}", filters.join(", ")),
            Step::Publish {
                topic,
                qos,
                retain,
                payload,
                ..
            } => {
                let retain = if *retain { " retain" } else { "" };
                write!(f, "PUBLISH {topic} q{qos}{retain} {payload:?}")
            }
            Step::Disconnect { expiry, .. } => match expiry {
                Expiry::Absent => f.write_str("DISCONNECT"),
                _ => write!(f, "DISCONNECT expiry={expiry}"),
            },
            Step::Drop { .. } => f.write_str("DROP (TCP close, no DISCONNECT)"),
        }
    }
}
