//! Arbitrary bytes through a server-side decoder that learns the protocol from the CONNECT:
//! the same checks as the `decode_v*` targets, starting from an unknown protocol.
#![no_main]

use keel_fuzz::CountingAlloc;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| keel_fuzz::decode::check_bytes(None, data));
