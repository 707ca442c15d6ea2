//! A decompressed remote-write 2.0 body, split by partition as ingest does.
#![no_main]

use ingest::config::SeriesLimits;
use libfuzzer_sys::fuzz_target;
use pipeline_fuzz::{PARTITIONS, TENANT, check_v2_batch, check_v2_counts};

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) =
        ingest::partition::split_v2(data, TENANT, &SeriesLimits::default(), PARTITIONS)
    {
        check_v2_batch(&batch, PARTITIONS);
        check_v2_counts(data, &batch);
    }
});
