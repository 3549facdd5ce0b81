//! Keel: an MQTT 3.1.1 / 5.0 broker that runs alone or as a Raft cluster, and whose
//! correctness is checked by deterministic simulation.
//!
//! # Module map
//!
//! The pure core takes inputs and `now` and returns outputs: no sockets, clocks, tasks or
//! randomness. Only the shell touches the world, and only through `net`.
//!
//! | module  | owns                                                          | must not import |
//! |---------|---------------------------------------------------------------|-----------------|
//! | `codec` | MQTT packets: bytes ↔ [`codec::Packet`], validation, limits   | tokio, tonic, rocksdb, clocks, randomness, I/O |
//! | `router` | the topic trie: `+`/`#`, the `$`-topic rule, shared groups    | tokio, clocks, I/O, sessions |
//! | `state` | durable state: sessions, subscriptions, queues, QoS 2 receive state, retained messages; changed only by `Command`s | tokio, clocks, I/O, `broker`, `session` |
//! | `broker` | the node's connections on top of `state`: outbound windows, acknowledgements, takeover, resume | tokio, clocks, I/O, `session` |
//! | `session` | one connection's protocol state machine: CONNECT, QoS flows at the edge, keep-alive, aliases, reason codes | tokio, clocks, I/O |
//! | `net`   | the seam to the world: `Net`/`Listener` (tokio or turmoil sockets), `Clock`, seeded `Rng`, the `HostPort` addresses peers are reached at; the one place with `cfg(feature = "sim")` | any other Keel module |
//! | `grpc`  | node-to-node gRPC plumbing: the `Cluster` service of `proto/cluster.proto`, channels that dial through `Net`, serving on a `Listener`, deadlines and keep-alive | MQTT packets, `session`, `broker`, `state`, `cluster` (it carries opaque bytes); turmoil outside its simulator tests |
//! | `transport` | turning an accepted stream into the MQTT byte stream: TCP, TLS (rustls), WebSocket and WSS (tokio-tungstenite) | MQTT packets (`codec`), session, broker, state, turmoil |
//! | `storage` | durable bytes: the `KvStore` contract (ordered keys, atomic batches, explicit sync), RocksDB and an in-memory store that loses unsynced writes on a simulated crash | every other Keel module; tokio (callers decide how to run blocking calls) |
//! | `loadgen` | the load generator behind `keel-bench`: MQTT clients over real sockets (tokio, Keel's codec), scenarios, delivery accounting, latency, broker CPU/RSS from `/proc` | any broker-side module (it must measure any broker the same way) |
//! | `config` | the TOML configuration: defaults, validation, and the settings of each layer it feeds | tokio, I/O beyond reading its file |
//! | `auth`  | who a client is and what it may do: password files (argon2id, SCRAM verifiers), JWT, the chain of methods, SCRAM-SHA-256 enhanced authentication, ACLs | tokio, clocks, I/O beyond loading its files (the HTTP hook lives in `server`), `broker`, `state` |
//! | `cert`  | the certificates of node-to-node mutual TLS: `keel cert`'s cluster CA and node certificates, and the node id a certificate names | tokio, I/O, every other Keel module |
//! | `cli`   | what the `keel` binary does: arguments, overrides, `passwd`, `check-config`, `cert` | tokio, `broker`, `state` |
//! | `cluster` | the replicated log under the durable state: openraft's storage and runtime, the proposer, node-to-node RPCs, forwarding, role and read tasks | `broker` internals beyond proposals and the applier; sockets other than through `net`/`grpc` |
//! | `server` | the shell of a node: listeners and their connection caps, connection tasks, timers, per-client traces, the HTTP authentication hook, the cluster shell | protocol logic (it lives in `session`, `broker`, `state`) |
//! | `admin` | the admin HTTP API (axum routes on its own bounded hyper loop): cluster, clients, sessions, traces, health, metrics | state changes other than through the broker and Raft |
//! | `oracle` | test machinery shared by `sim/` and `jepsen/` (feature `oracle`): workload clients recording a history, checkers of the guarantees | any broker-side module (it judges the broker from outside, as a client) |

pub mod admin;
pub mod auth;
pub mod broker;
pub mod cert;
pub mod cli;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod grpc;
pub mod loadgen;
pub mod net;
#[cfg(feature = "oracle")]
pub mod oracle;
pub mod planted;
pub mod procstat;
pub mod router;
pub mod server;
pub mod session;
pub mod startup;
pub mod state;
pub mod storage;
pub mod transport;

/// The version `keel --version`, the startup log line and `$SYS/broker/version` give: the
/// package version and the git commit the binary was built from (`unknown` outside a git
/// checkout; see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KEEL_GIT_COMMIT"),
    ")"
);
