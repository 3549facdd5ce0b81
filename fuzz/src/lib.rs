//! The checks Keel's fuzz targets share, so each target only picks its decoder or generator
//! (or, for `session_broker`, runs the harness).
//!
//! | module           | owns                                                                  |
//! |------------------|-----------------------------------------------------------------------|
//! | `alloc_count`    | a counting global allocator and the window that reads its peak        |
//! | `decode`         | arbitrary bytes through a `Decoder`, whole and in chunks, compared    |
//! | `roundtrip`      | the properties every valid packet must have: encode, decode, prefixes |
//! | `session_broker` | connections and their broker driven step by step, checked after each  |
//!
//! The targets in `fuzz_targets/` are one line of logic each. The same functions run over the
//! committed seeds in this crate's tests, so `cargo test` here checks the harness itself
//! without libFuzzer.

pub mod alloc_count;
pub mod decode;
pub mod roundtrip;
pub mod session_broker;

pub use alloc_count::CountingAlloc;
