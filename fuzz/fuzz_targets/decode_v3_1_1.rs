//! Arbitrary bytes through a decoder fixed to MQTT 3.1.1: never panics, decodes the same fed whole
//! or in chunks, round-trips every packet it decodes, and allocates within a bound of the input.
#![no_main]

use keel::codec::Protocol;
use keel_fuzz::CountingAlloc;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| keel_fuzz::decode::check_bytes(Some(Protocol::V3_1_1), data));
