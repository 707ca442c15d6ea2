//! A decompressed remote-write 1.0 body, split by partition as ingest does.
#![no_main]

use ingest::config::SeriesLimits;
use libfuzzer_sys::fuzz_target;
use pipeline_fuzz::{PARTITIONS, TENANT, check_v1_batch, check_v1_counts};

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) =
        ingest::partition::split_v1(data, TENANT, &SeriesLimits::default(), PARTITIONS)
    {
        check_v1_batch(&batch, PARTITIONS);
        check_v1_counts(data, &batch);
    }
});
