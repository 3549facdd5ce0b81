//! Keel: an MQTT 3.1.1 / 5.0 broker that runs alone or as a Raft cluster, and whose
//! correctness is checked by deterministic simulation.
//!
//! # Module map
//!
//! The pure core takes inputs and `now` and returns outputs: no sockets, clocks, tasks or
//! randomness. Only the shell touches the world, and only through `net`. `startup` wires the
//! layers together above them all; `cli` and the binaries sit on top.
//!
//! The last column is checked (`module_map_tests.rs`, part of `cargo test --lib`): a
//! backticked name there is a Keel module or a crate of `Cargo.toml` that no code of the
//! module (its tests included, its comments not) may name; "every other Keel module" stands for
//! all of them but those named after it. The rest of the column is not checked. No
//! top-level modules may import each other in a cycle, directly or through others.
//!
//! | module  | owns | must not import |
//! |---------|------|-----------------|
//! | `codec` | MQTT packets: bytes ↔ [`codec::Packet`], validation, limits | every other Keel module; `tokio`, `tonic`, `rocksdb`, clocks, randomness, I/O |
//! | `router` | the topic trie: `+`/`#`, the `$`-topic rule, shared groups | every other Keel module but `codec`; `tokio`, clocks, I/O |
//! | `state` | durable state: sessions, subscriptions, queues, QoS 2 receive state, retained messages; changed only by `Command`s | every other Keel module but `codec`, `router`, `planted`; `tokio`, clocks, I/O |
//! | `broker` | the node's connections on top of `state`: outbound windows, acknowledgements, takeover, resume; under the simulator, a check of the replicated state after each command it applies (`broker/apply.rs`) | every other Keel module but `codec`, `router`, `state`, `planted`; `tokio`, clocks, I/O |
//! | `session` | one connection's protocol state machine: CONNECT, QoS flows at the edge, keep-alive, aliases, reason codes | every other Keel module but `codec`, `router`, `state`, `broker`; `tokio`, clocks, I/O |
//! | `net`   | the seam to the world: `Net`/`Listener` (tokio or turmoil sockets), `Clock`, seeded `Rng`, the `HostPort` addresses peers are reached at; the simulator's sockets and clock (`cfg(feature = "sim")`, which elsewhere only turns on the broker's state check and `grpc`'s simulator tests) | every other Keel module |
//! | `grpc`  | node-to-node gRPC plumbing: the `Cluster` service of `proto/cluster.proto`, channels that dial through `Net`, serving on a `Listener`, deadlines and keep-alive, mutual TLS | every other Keel module but `net`, `transport`, `cert` (it carries opaque bytes); turmoil outside its simulator tests |
//! | `transport` | turning an accepted stream into the MQTT byte stream: TCP, TLS (rustls), WebSocket and WSS (tokio-tungstenite), the PROXY protocol header | every other Keel module but `net`; `turmoil` |
//! | `storage` | durable bytes: the `KvStore` contract (ordered keys, atomic batches, explicit sync), RocksDB and an in-memory store that loses unsynced writes on a simulated crash | every other Keel module; `tokio` (callers decide how to run blocking calls) |
//! | `procstat` | a process's CPU time and memory from Linux's `/proc`: for the admin API's `/metrics` and `keel-bench`'s figures of the broker and itself | every other Keel module |
//! | `config` | the TOML configuration (`config/`: a file per table): defaults, validation, and the settings of the core and the transports it feeds | `server`, `admin`, `cluster`, `grpc`, `storage`, `startup`, `cli` (the settings of the node's runtime are `startup`'s to make); `tokio`, I/O beyond reading its file |
//! | `auth`  | who a client is and what it may do: password files (argon2id, SCRAM verifiers), JWT, the chain of methods, SCRAM-SHA-256 enhanced authentication, ACLs; the settings of `[auth]`, which `config` holds | `config`, `broker`, `state`, `cluster`, `server`, `admin`, `startup`, `cli`; tokio outside its tests, clocks, I/O beyond loading its files (the HTTP hook lives in server) |
//! | `cert`  | the certificates of node-to-node mutual TLS: `keel cert`'s cluster CA and node certificates, and the node id a certificate names | every other Keel module; `tokio`, I/O |
//! | `cluster` | the replicated log under the durable state: openraft's storage and runtime, the proposer, node-to-node RPCs, forwarding, role and read tasks | `session`, `auth`, `config`, `server`, `admin`, `startup`, `cli`; broker internals beyond proposals and the applier; sockets other than through net and grpc |
//! | `server` | the shell of a node: listeners and their connection caps, connection tasks, timers, per-client traces, the HTTP authentication hook, reloads, the cluster shell, the admin listener and its credentials (the API itself is given to it) | `admin`, `config`, `startup`, `cli` (it takes settings, not the configuration); protocol logic (it lives in session, broker and state) |
//! | `admin` | the admin HTTP API (axum routes on its own bounded hyper loop): cluster, clients, sessions, traces, health, metrics | `config`, `startup`, `cli`; state changes other than through the broker and Raft |
//! | `startup` | starting a node: the configuration into the settings of each layer, the authenticator, the admin API given to the server, reloads, the open-files budget, `keel serve` | `cli` |
//! | `cli`   | what the `keel` binary does: arguments, overrides, `passwd`, `check-config`, `cert` | `broker`, `state`; `tokio` |
//! | `planted` | switches for bugs planted on purpose (feature `planted`, which `sim` turns on), to prove the simulator and `jepsen/` catch them | every other Keel module |
//!
//! Beside the broker, crates of the workspace use it from outside, as any client would (the
//! table has no say over them; each one's `lib.rs` states its rule):
//! `loadgen/` (`keel-loadgen`: the load generator behind `keel-bench`, which must measure any
//! broker the same way) may use only `codec` and `procstat`; `oracle/` (`keel-oracle`: the
//! workload clients that record a history, and the checkers of the guarantees, shared by
//! `sim/` and `jepsen/`) may use only `codec`, `net` and `router`.

pub mod admin;
pub mod auth;
pub mod broker;
pub mod cert;
pub mod cli;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod grpc;
#[cfg(test)]
mod module_map_tests;
pub mod net;
pub mod planted;
pub mod procstat;
pub mod router;
pub mod server;
pub mod session;
#[cfg(test)]
mod shape_tests;
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
