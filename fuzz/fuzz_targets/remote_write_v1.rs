//! A decompressed remote-write 1.0 body, split by partition as ingest does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pipeline_fuzz::split_v1_and_check(data));
