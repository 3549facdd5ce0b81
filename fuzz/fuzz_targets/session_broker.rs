//! Connections and their broker driven by generated packets, timer ticks, drops, takeovers
//! and a log that commits late, with the invariants checked after every step (see
//! `keel_fuzz::session_broker`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| keel_fuzz::session_broker::run(data));
