//! What the differential tests of the 1.0 and 2.0 splits share: the
//! comparison of two splits of one input, and the mutation of a request.

#![allow(dead_code)]

use std::fmt::Debug;

use ingest::partition::PartitionedBatch;
use rand::Rng;
use rand::rngs::StdRng;

/// The sample values random requests draw from: the floats that take care
/// (signed zeros, NaN, the stale marker, an infinity).
pub const SAMPLE_VALUES: [f64; 6] = [
    0.0,
    -0.0,
    1.5,
    f64::NAN,
    f64::from_bits(proto::STALE_NAN_BITS),
    f64::NEG_INFINITY,
];

/// Asserts that two splits of `raw` came to the same counts, the same
/// rejections and the same records, byte for byte.
pub fn assert_same_batch(old: &PartitionedBatch, new: &PartitionedBatch, raw: &[u8]) {
    assert_eq!(
        old.total_series, new.total_series,
        "total_series of {raw:02x?}"
    );
    assert_eq!(old.written, new.written, "written of {raw:02x?}");
    assert_eq!(old.rejected, new.rejected, "rejections of {raw:02x?}");
    assert_eq!(old.records, new.records, "records of {raw:02x?}");
}

/// Changes `raw` in one to three places: a byte replaced, a bit flipped, a
/// byte removed or one inserted.
pub fn mutate(raw: &mut Vec<u8>, rng: &mut StdRng) {
    for _ in 0..rng.random_range(1..4) {
        if raw.is_empty() {
            break;
        }
        let at = rng.random_range(0..raw.len());
        match rng.random_range(0..4) {
            0 => raw[at] = rng.random(),
            1 => raw[at] ^= 1 << rng.random_range(0..8),
            2 => {
                raw.remove(at);
            }
            _ => raw.insert(at, rng.random()),
        }
    }
}

/// Whether both splits accepted `raw`, once asserted that they agree: both
/// refused it (`refusals` compares the two errors, as far as they compare), or
/// both accepted it with the same batch.
pub fn agree<E: Debug, F: Debug>(
    raw: &[u8],
    old: Result<PartitionedBatch, E>,
    new: Result<PartitionedBatch, F>,
    refusals: impl FnOnce(E, F),
) -> bool {
    match (old, new) {
        (Err(old), Err(new)) => {
            refusals(old, new);
            false
        }
        (Ok(old), Ok(new)) => {
            assert_same_batch(&old, &new, raw);
            true
        }
        (old, new) => panic!(
            "the reference {} but the split {} {raw:02x?}: {:?} / {:?}",
            if old.is_ok() { "accepts" } else { "refuses" },
            if new.is_ok() { "accepts" } else { "refuses" },
            old.err(),
            new.err()
        ),
    }
}

/// Whether `raw` was accepted, split into each of `partition_counts` by `same`.
pub fn agree_for_each(
    raw: &[u8],
    partition_counts: &[u32],
    same: impl Fn(&[u8], u32) -> bool,
) -> bool {
    let mut accepted = false;
    for &partitions in partition_counts {
        accepted = same(raw, partitions);
    }
    accepted
}
