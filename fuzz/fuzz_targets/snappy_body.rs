//! A remote-write 1.0 request body as it arrives (snappy block format), down
//! the handler's path: declared length, decompression, partitioning.
#![no_main]

use ingest::config::SeriesLimits;
use ingest::decode;
use libfuzzer_sys::fuzz_target;
use pipeline_fuzz::{PARTITIONS, TENANT, check_v1_batch};

/// The decoded-size limit of the target (ingest's default is larger; 1 MiB
/// keeps a run inside the RSS limit while covering the same code).
const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(declared) = decode::declared_length(data, LIMIT) else {
        return;
    };
    assert!(declared <= LIMIT, "declared {declared} passed the limit");
    let Ok(raw) = decode::decompress(data, declared) else {
        return;
    };
    assert_eq!(
        raw.len(),
        declared,
        "decompressed length differs from the header"
    );
    if let Ok(batch) =
        ingest::partition::split_v1(&raw, TENANT, &SeriesLimits::default(), PARTITIONS)
    {
        check_v1_batch(&batch, PARTITIONS);
    }
});
