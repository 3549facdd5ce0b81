//! Keel: an MQTT 3.1.1 / 5.0 broker that runs alone or as a Raft cluster, and whose
//! correctness is checked by deterministic simulation.
//!
//! # Module map
//!
//! | module  | owns                                                          | must not import |
//! |---------|---------------------------------------------------------------|-----------------|
//! | `codec` | MQTT packets: bytes ↔ [`codec::Packet`], validation, limits   | tokio, tonic, rocksdb, clocks, randomness, I/O |
//! | `net`   | the seam to the world: `Net`/`Listener` (tokio or turmoil sockets), `Clock`, seeded `Rng`; the one place with `cfg(feature = "sim")` | any other Keel module |
//! | `transport` | turning an accepted stream into the MQTT byte stream: TCP, TLS (rustls), WebSocket and WSS (tokio-tungstenite) | MQTT packets (`codec`), session, broker, state, turmoil |
//!
//! Modules still to come (see `../shared/DESIGN.md` §3): `session` (per-client protocol state
//! machine), `router` (topic trie, shared subscriptions), `broker` (session table, retained,
//! wills), `state` (durable commands and state), `cluster` (openraft, gRPC), `storage`
//! (`KvStore`: RocksDB and in-memory), `admin` (HTTP API, metrics). The pure core (`codec`,
//! `session`, `router`, `broker`, `state`) takes inputs and `now` and returns outputs; only the
//! shell touches sockets, clocks and disks.

pub mod broker;
pub mod codec;
pub mod net;
pub mod router;
pub mod session;
pub mod state;
pub mod transport;
