//! A tenant's shuffle shard: the partitions of `metrics.samples` its series
//! may go to, chosen from the tenant's name and the partition count alone, so
//! that ingest (which writes them) and the correlator (which must hold the
//! tenant's topology wherever they land) compute the same set without asking
//! each other.
//!
//! The choice is rendezvous hashing: every partition `p` gets the score
//! `xxh3_64_with_seed(tenant, p)`, and the shard of size S is the S partitions
//! with the highest scores (ties to the lower partition). As in Mimir's
//! shuffle sharding, which seeds a random walk of its partition ring with the
//! tenant's hash, the shard depends on nothing but the tenant and the
//! partition count; rendezvous hashing adds two properties the pipeline
//! relies on when a shard changes: a larger shard contains the smaller one
//! (growing S only adds partitions), and one partition more moves at most one
//! partition of a shard.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The partitions of one tenant's shard, in ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantShard {
    partitions: Vec<i32>,
}

impl TenantShard {
    /// The shard of `size` partitions of `tenant` among `partitions`. A size of
    /// 0, or one at least `partitions`, is every partition (the default: a
    /// series then goes to `hash % partitions`, as without shards).
    pub fn new(tenant: &str, size: u32, partitions: u32) -> TenantShard {
        let partitions = partitions.max(1);
        if size == 0 || size >= partitions {
            return TenantShard::all(partitions);
        }
        let mut scored: Vec<(u64, u32)> = (0..partitions)
            .map(|partition| {
                let score = xxh3_64_with_seed(tenant.as_bytes(), u64::from(partition));
                (score, partition)
            })
            .collect();
        let by_rank = |a: &(u64, u32), b: &(u64, u32)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        scored.select_nth_unstable_by(size as usize - 1, by_rank);
        let mut chosen: Vec<i32> = scored[..size as usize]
            .iter()
            .map(|(_, partition)| *partition as i32)
            .collect();
        chosen.sort_unstable();
        TenantShard { partitions: chosen }
    }

    /// Every one of `partitions`.
    pub fn all(partitions: u32) -> TenantShard {
        TenantShard {
            partitions: (0..partitions.max(1) as i32).collect(),
        }
    }

    /// The shard's partitions, ascending.
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    pub fn len(&self) -> usize {
        self.partitions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    pub fn contains(&self, partition: i32) -> bool {
        self.partitions.binary_search(&partition).is_ok()
    }

    /// The partitions of this shard that `other` lacks: what growing from
    /// `other` to this shard adds, or what shrinking to `other` removes.
    pub fn partitions_not_in<'a>(
        &'a self,
        other: &'a TenantShard,
    ) -> impl Iterator<Item = i32> + 'a {
        self.partitions
            .iter()
            .copied()
            .filter(|partition| !other.contains(*partition))
    }

    /// The partition of a series whose key hashes to `series_hash`: one of the
    /// shard's, always the same for the same hash. For the shard of every
    /// partition this is `series_hash % partitions`.
    #[inline]
    pub fn partition_of(&self, series_hash: u64) -> i32 {
        self.partitions[(series_hash % self.partitions.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn tenants() -> impl Iterator<Item = String> {
        (0..500).map(|i| format!("tenant-{i}"))
    }

    #[test]
    fn a_shard_is_deterministic_with_distinct_partitions_in_range() {
        for tenant in tenants() {
            for size in [1, 2, 3, 8, 31] {
                let shard = TenantShard::new(&tenant, size, 32);
                assert_eq!(shard, TenantShard::new(&tenant, size, 32));
                assert_eq!(shard.len(), size as usize);
                let distinct: HashSet<i32> = shard.partitions().iter().copied().collect();
                assert_eq!(distinct.len(), size as usize);
                assert!(shard.partitions().windows(2).all(|w| w[0] < w[1]));
                assert!(shard.partitions().iter().all(|p| (0..32).contains(p)));
            }
        }
    }

    #[test]
    fn the_whole_topic_is_the_default_and_keeps_the_plain_modulo() {
        for size in [0, 16, 17, 1000] {
            let shard = TenantShard::new("acme", size, 16);
            assert_eq!(shard.partitions(), (0..16).collect::<Vec<_>>());
            for hash in [0u64, 5, 17, u64::MAX] {
                assert_eq!(shard.partition_of(hash), (hash % 16) as i32);
            }
        }
        assert_eq!(TenantShard::new("acme", 4, 0).partitions(), [0]);
    }

    #[test]
    fn a_series_stays_in_its_shard() {
        let shard = TenantShard::new("acme", 3, 64);
        for hash in 0..1000u64 {
            let partition = shard.partition_of(hash.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert!(shard.contains(partition));
        }
    }

    #[test]
    fn growing_a_shard_only_adds_partitions() {
        for tenant in tenants() {
            let mut previous = TenantShard::new(&tenant, 1, 64);
            for size in 2..=64 {
                let grown = TenantShard::new(&tenant, size, 64);
                let added: Vec<i32> = grown.partitions_not_in(&previous).collect();
                assert_eq!(added.len(), 1, "{tenant} from {} to {size}", size - 1);
                assert!(previous.partitions().iter().all(|p| grown.contains(*p)));
                previous = grown;
            }
        }
    }

    #[test]
    fn one_partition_more_moves_at_most_one_partition_of_a_shard() {
        let mut moved = 0;
        for tenant in tenants() {
            let before = TenantShard::new(&tenant, 4, 32);
            let after = TenantShard::new(&tenant, 4, 33);
            let left: Vec<i32> = before.partitions_not_in(&after).collect();
            assert!(left.len() <= 1);
            if !left.is_empty() {
                assert!(after.contains(32), "only the new partition can enter");
                moved += 1;
            }
        }
        // About S / (P + 1) of the shards change: 4/33 of 500 is 61.
        assert!((30..100).contains(&moved), "{moved}");
    }

    #[test]
    fn shards_spread_over_the_partitions() {
        let mut per_partition = [0usize; 16];
        for tenant in (0..4000).map(|i| format!("t{i}")) {
            for partition in TenantShard::new(&tenant, 2, 16).partitions() {
                per_partition[*partition as usize] += 1;
            }
        }
        // 500 each on average.
        assert!(
            per_partition.iter().all(|n| (400..600).contains(n)),
            "{per_partition:?}"
        );
    }
}
