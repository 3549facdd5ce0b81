//! The seam between a node and the world: sockets, the wall clock and randomness.
//!
//! Everything in Keel that opens a connection, reads the wall clock or draws a random number
//! goes through this module, so that the same code runs on real sockets ([`TokioNet`],
//! [`SystemClock`], an [`Rng`] seeded from OS entropy) and inside the deterministic simulator
//! (`SimNet`, `SimClock`, an [`Rng`] seeded from the run seed; `--features sim`).
//!
//! Timers are not part of the seam: code sleeps and times out with `tokio::time`, which the
//! simulator (turmoil) virtualises. This module is the one place in `src/` with
//! simulator-specific `cfg`; the rest of the crate is generic over [`Net`] and [`Clock`].

mod clock;
#[cfg(test)]
mod echo_test;
mod host_port;
mod network;
mod rng;
#[cfg(feature = "sim")]
mod sim_clock;
#[cfg(feature = "sim")]
mod sim_net;
mod stream;
mod tokio_net;

pub use clock::{Clock, SystemClock};
pub use host_port::HostPort;
pub use network::{Listener, Net};
pub use rng::{Rng, CLIENT_ID_SUFFIX_LEN};
#[cfg(feature = "sim")]
pub use sim_clock::SimClock;
#[cfg(feature = "sim")]
pub use sim_net::{SimListener, SimNet};
pub use stream::{BoxStream, Stream};
pub use tokio_net::{TokioListener, TokioNet};
