//! The `session_broker` harness over its committed seeds and over a few hundred pseudo-random
//! inputs, without libFuzzer: a harness that panics on input it should take shows here. Its own
//! test program, so its allocations stay out of the allocation peaks `seeds.rs` measures.

use std::fs;
use std::path::Path;

#[test]
fn session_broker_runs_its_seeds_and_random_inputs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/session_broker");
    let mut seeds = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("readable seed dir").path();
        keel_fuzz::session_broker::run(&fs::read(&path).expect("readable seed"));
        seeds += 1;
    }
    assert!(seeds > 0, "no seeds in {}", dir.display());
    // An xorshift sequence, so the same inputs every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for len in (0..300).map(|i| 16 + i * 13) {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        keel_fuzz::session_broker::run(&data);
    }
}
