//! Every committed seed through the same checks the fuzz targets run, without libFuzzer, and
//! every real packet must decode: Keel accepts what mosquitto and its clients sent.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use keel::codec::{Decoder, Protocol, PACKET_SIZE_LIMIT};
use keel_fuzz::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable seed dir").path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no seeds in {}", dir.display());
    paths
}

/// Decodes the whole stream with no size limit; panics unless every byte makes a packet.
fn assert_decodes_completely(protocol: Option<Protocol>, path: &Path, data: &[u8]) {
    let mut decoder = match protocol {
        Some(protocol) => Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT),
        None => Decoder::new(PACKET_SIZE_LIMIT),
    };
    let mut buf = BytesMut::from(data);
    let mut packets = 0;
    while !buf.is_empty() {
        match decoder.decode(&mut buf) {
            Ok(Some(_)) => packets += 1,
            Ok(None) => panic!("{}: incomplete after {packets} packets", path.display()),
            Err(e) => panic!("{}: packet {packets}: {e}", path.display()),
        }
    }
}

// One test, not one per target: the allocation counter is process-wide, and tests running on
// parallel threads would add to each other's peaks.
#[test]
fn every_seed_passes_its_target_checks() {
    let decode_targets = [
        ("decode_v3_1", Some(Protocol::V3_1)),
        ("decode_v3_1_1", Some(Protocol::V3_1_1)),
        ("decode_v5", Some(Protocol::V5)),
        ("decode_connect", None),
    ];
    for (target, protocol) in decode_targets {
        for path in seeds(target) {
            let data = fs::read(&path).expect("readable seed");
            assert_decodes_completely(protocol, &path, &data);
            keel_fuzz::decode::check_bytes(protocol, &data);
        }
    }
    for path in seeds("roundtrip") {
        keel_fuzz::roundtrip::check_generated(&fs::read(&path).expect("readable seed"));
    }
}
