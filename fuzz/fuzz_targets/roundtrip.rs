//! Valid packets generated from the input (`keel::codec::arbitrary`) in a protocol the input
//! picks: decode(encode(p)) == p, every byte consumed, strict prefixes incomplete, and
//! `encode_to_slice` into a buffer one byte short fails without writing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| keel_fuzz::roundtrip::check_generated(data));
