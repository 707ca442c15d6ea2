//! Places the tenants on partitions by a shard policy, assigns the partitions
//! to replicas as a Kafka consumer group would, and measures what each
//! replica holds and carries, how far a burst reaches, and what a rebalance
//! or a change of shard size costs.

use proto::shard::TenantShard;

use crate::population::Tenant;

/// How many partitions a tenant's shard has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShardPolicy {
    /// Today: every tenant on every partition, and every replica holds the
    /// whole topology (a GlobalKTable).
    FullReplication,
    /// Every tenant the same size.
    Fixed(u32),
    /// Sized by rate: enough partitions that the tenant puts at most
    /// `partition_share` of a partition's mean load on each, and at least
    /// `minimum`.
    ByRate { minimum: u32, partition_share: f64 },
}

impl ShardPolicy {
    pub fn describe(&self) -> String {
        match self {
            ShardPolicy::FullReplication => "full replication (today)".into(),
            ShardPolicy::Fixed(size) => format!("S = {size}"),
            ShardPolicy::ByRate {
                minimum,
                partition_share,
            } => format!(
                "by rate: ≤ {:.0} % of a partition, S ≥ {minimum}",
                partition_share * 100.0
            ),
        }
    }

    /// The shard size of a tenant with `rate` samples/s, with
    /// `mean_partition_rate` the whole load over the partition count.
    pub fn size_of(&self, rate: f64, mean_partition_rate: f64, partitions: u32) -> u32 {
        match *self {
            ShardPolicy::FullReplication => partitions,
            ShardPolicy::Fixed(size) => size.min(partitions),
            ShardPolicy::ByRate {
                minimum,
                partition_share,
            } => {
                let needed = (rate / (partition_share * mean_partition_rate)).ceil() as u32;
                needed.clamp(minimum, partitions)
            }
        }
    }
}

/// The costs that turn counts into memory and time.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    /// Topology memory per component held (README, Sizing).
    pub bytes_per_component: f64,
    /// Components one replica reads into its index per second (README,
    /// Sizing: 1 M in 6.6 s); also taken as the materializer's copy rate.
    pub components_loaded_per_second: f64,
}

/// The tenants on partitions and the partitions on replicas.
pub struct Placement<'a> {
    pub policy: ShardPolicy,
    pub tenants: &'a [Tenant],
    pub partitions: u32,
    pub replicas: u32,
    pub shards: Vec<TenantShard>,
    /// Tenants (indexes) with a partition of their shard on each partition.
    pub tenants_of_partition: Vec<Vec<u32>>,
    pub partition_rate: Vec<f64>,
    /// The replica each partition is assigned to: Kafka's range assignor,
    /// contiguous blocks, as librdkafka's default `range,roundrobin` gives
    /// for one topic.
    pub replica_of_partition: Vec<u32>,
}

impl<'a> Placement<'a> {
    pub fn new(
        policy: ShardPolicy,
        tenants: &'a [Tenant],
        partitions: u32,
        replicas: u32,
    ) -> Placement<'a> {
        let total_rate: f64 = tenants.iter().map(|t| t.rate).sum();
        let mean_partition_rate = total_rate / f64::from(partitions);
        let mut tenants_of_partition = vec![Vec::new(); partitions as usize];
        let mut partition_rate = vec![0.0; partitions as usize];
        let mut shards = Vec::with_capacity(tenants.len());
        for (index, tenant) in tenants.iter().enumerate() {
            let size = policy.size_of(tenant.rate, mean_partition_rate, partitions);
            let shard = TenantShard::new(&tenant.name, size, partitions);
            // Many series per tenant, hashed over its shard: an even split.
            let share = tenant.rate / shard.len() as f64;
            for partition in shard.partitions() {
                tenants_of_partition[*partition as usize].push(index as u32);
                partition_rate[*partition as usize] += share;
            }
            shards.push(shard);
        }
        let replica_of_partition = (0..partitions)
            .map(|partition| partition * replicas / partitions)
            .collect();
        Placement {
            policy,
            tenants,
            partitions,
            replicas,
            shards,
            tenants_of_partition,
            partition_rate,
            replica_of_partition,
        }
    }

    fn full(&self) -> bool {
        self.policy == ShardPolicy::FullReplication
    }

    pub fn partitions_of_replica(&self, replica: u32) -> Vec<u32> {
        (0..self.partitions)
            .filter(|p| self.replica_of_partition[*p as usize] == replica)
            .collect()
    }

    /// Components of the tenants on any of `partitions` (each counted once):
    /// what a replica assigned them holds.
    pub fn held_components(&self, partitions: &[u32], seen: &mut Stamps) -> u64 {
        if self.full() {
            return self.tenants.iter().map(|t| t.components).sum();
        }
        seen.next_round();
        let mut held = 0;
        for partition in partitions {
            for tenant in &self.tenants_of_partition[*partition as usize] {
                if seen.mark(*tenant) {
                    held += self.tenants[*tenant as usize].components;
                }
            }
        }
        held
    }

    /// Components stored in one partition of a co-partitioned
    /// `topology.components`: every tenant of the partition's, whole.
    pub fn partition_components(&self, partition: u32) -> u64 {
        self.tenants_of_partition[partition as usize]
            .iter()
            .map(|t| self.tenants[*t as usize].components)
            .sum()
    }

    /// Components a replica reads to start on `partitions`: with full
    /// replication the whole topic, co-partitioned the topology partitions
    /// of the same numbers (a tenant on two of them is read twice).
    pub fn components_read(&self, partitions: &[u32]) -> u64 {
        if self.full() {
            return self.tenants.iter().map(|t| t.components).sum();
        }
        partitions
            .iter()
            .map(|p| self.partition_components(*p))
            .sum()
    }

    /// Components stored in `topology.components`, over the components of
    /// the tenants: each is written to every partition of its shard.
    pub fn storage_amplification(&self) -> f64 {
        if self.full() {
            return 1.0;
        }
        let stored: u64 = (0..self.partitions)
            .map(|p| self.partition_components(p))
            .sum();
        let components: u64 = self.tenants.iter().map(|t| t.components).sum();
        stored as f64 / components as f64
    }

    /// Other tenants with a partition in common with `tenant`'s shard, and
    /// those whose whole shard lies inside it (a burst that saturates the
    /// tenant's partitions slows all of theirs).
    pub fn blast_radius(&self, tenant: u32, counts: &mut Counts) -> (usize, usize) {
        let others = self.tenants.len() - 1;
        let shard = &self.shards[tenant as usize];
        if shard.len() == self.partitions as usize {
            return (others, others);
        }
        counts.next_round();
        let mut sharing = 0;
        let mut inside = 0;
        for partition in shard.partitions() {
            for other in &self.tenants_of_partition[*partition as usize] {
                if *other == tenant {
                    continue;
                }
                let seen = counts.add(*other);
                if seen == 1 {
                    sharing += 1;
                }
                if seen as usize == self.shards[*other as usize].len() {
                    inside += 1;
                }
            }
        }
        (sharing, inside)
    }
}

/// Per-tenant marks that reset in O(1) between rounds.
pub struct Stamps {
    round: u32,
    marks: Vec<u32>,
}

impl Stamps {
    pub fn new(tenants: usize) -> Stamps {
        Stamps {
            round: 0,
            marks: vec![0; tenants],
        }
    }

    pub fn next_round(&mut self) {
        self.round += 1;
    }

    /// True the first time `tenant` is marked in this round.
    pub fn mark(&mut self, tenant: u32) -> bool {
        let mark = &mut self.marks[tenant as usize];
        let first = *mark != self.round;
        *mark = self.round;
        first
    }
}

/// Per-tenant counters that reset in O(1) between rounds.
pub struct Counts {
    round: u32,
    rounds: Vec<u32>,
    counts: Vec<u32>,
}

impl Counts {
    pub fn new(tenants: usize) -> Counts {
        Counts {
            round: 0,
            rounds: vec![0; tenants],
            counts: vec![0; tenants],
        }
    }

    pub fn next_round(&mut self) {
        self.round += 1;
    }

    /// Counts `tenant` once more in this round; the count so far.
    pub fn add(&mut self, tenant: u32) -> u32 {
        let index = tenant as usize;
        if self.rounds[index] != self.round {
            self.rounds[index] = self.round;
            self.counts[index] = 0;
        }
        self.counts[index] += 1;
        self.counts[index]
    }
}

/// Max and mean of some values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread {
    pub max: f64,
    pub mean: f64,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let (mut max, mut sum, mut n) = (f64::MIN, 0.0, 0usize);
        for value in values {
            max = max.max(value);
            sum += value;
            n += 1;
        }
        Spread {
            max,
            mean: sum / n.max(1) as f64,
        }
    }

    pub fn imbalance(&self) -> f64 {
        self.max / self.mean
    }
}

/// What one policy gives.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub memory_bytes: Spread,
    pub tenants_per_replica: Spread,
    pub partition_rate: Spread,
    pub replica_rate: Spread,
    /// Over all tenants: others sharing a partition, others wholly inside.
    pub sharing: Spread,
    pub inside: Spread,
    /// The same for the tenant with the highest rate.
    pub top_sharing: usize,
    pub top_inside: usize,
    pub storage_amplification: f64,
    pub restart: Restart,
    pub leave: Leave,
}

/// One replica restarted (or replaced): it reads its partitions' topology
/// before it joins them; the worst replica's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Restart {
    pub components_read: u64,
    pub seconds: f64,
    /// Samples its partitions receive meanwhile, held in Kafka.
    pub samples_held: f64,
}

/// One replica leaves for good and its partitions go to the others (as the
/// cooperative-sticky assignor moves them: one each, to the replicas with
/// the fewest); the worst case over which replica leaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Leave {
    /// Components read by all receivers together.
    pub components_read: u64,
    /// Components the receivers did not hold before.
    pub components_added: u64,
    /// Until the last moved partition is open again.
    pub seconds: f64,
    pub samples_held: f64,
}

pub fn evaluate(placement: &Placement, costs: &Costs) -> Outcome {
    let tenant_count = placement.tenants.len();
    let mut stamps = Stamps::new(tenant_count);
    let mut counts = Counts::new(tenant_count);
    let replicas: Vec<Vec<u32>> = (0..placement.replicas)
        .map(|r| placement.partitions_of_replica(r))
        .collect();
    let memory_bytes = Spread::of(replicas.iter().map(|partitions| {
        placement.held_components(partitions, &mut stamps) as f64 * costs.bytes_per_component
    }));
    let tenants_per_replica = Spread::of(replicas.iter().map(|partitions| {
        if placement.full() {
            return tenant_count as f64;
        }
        stamps.next_round();
        let mut held = 0;
        for p in partitions {
            for t in &placement.tenants_of_partition[*p as usize] {
                held += usize::from(stamps.mark(*t));
            }
        }
        held as f64
    }));
    let rate_of = |partitions: &[u32]| -> f64 {
        partitions
            .iter()
            .map(|p| placement.partition_rate[*p as usize])
            .sum()
    };
    let partition_rate = Spread::of(placement.partition_rate.iter().copied());
    let replica_rate = Spread::of(replicas.iter().map(|p| rate_of(p)));

    let radii: Vec<(usize, usize)> = (0..tenant_count as u32)
        .map(|t| placement.blast_radius(t, &mut counts))
        .collect();
    let sharing = Spread::of(radii.iter().map(|r| r.0 as f64));
    let inside = Spread::of(radii.iter().map(|r| r.1 as f64));
    let top = (0..tenant_count)
        .max_by(|a, b| {
            placement.tenants[*a]
                .rate
                .total_cmp(&placement.tenants[*b].rate)
        })
        .unwrap_or(0);

    let restart = replicas
        .iter()
        .map(|partitions| {
            let read = placement.components_read(partitions);
            let seconds = read as f64 / costs.components_loaded_per_second;
            Restart {
                components_read: read,
                seconds,
                samples_held: rate_of(partitions) * seconds,
            }
        })
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .unwrap_or_default();

    let leave = (0..placement.replicas)
        .map(|leaving| leave_cost(placement, &replicas, leaving, costs, &mut stamps))
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .unwrap_or_default();

    Outcome {
        memory_bytes,
        tenants_per_replica,
        partition_rate,
        replica_rate,
        sharing,
        inside,
        top_sharing: radii[top].0,
        top_inside: radii[top].1,
        storage_amplification: placement.storage_amplification(),
        restart,
        leave,
    }
}

fn leave_cost(
    placement: &Placement,
    replicas: &[Vec<u32>],
    leaving: u32,
    costs: &Costs,
    stamps: &mut Stamps,
) -> Leave {
    if placement.full() || placement.replicas < 2 {
        // Every replica already holds and follows the whole topology.
        return Leave::default();
    }
    let mut stayers: Vec<u32> = (0..placement.replicas).filter(|r| *r != leaving).collect();
    stayers.sort_by_key(|r| (replicas[*r as usize].len(), *r));
    let mut received: Vec<Vec<u32>> = vec![Vec::new(); placement.replicas as usize];
    for (i, partition) in replicas[leaving as usize].iter().enumerate() {
        received[stayers[i % stayers.len()] as usize].push(*partition);
    }
    let mut outcome = Leave::default();
    for receiver in stayers {
        let moved = &received[receiver as usize];
        if moved.is_empty() {
            continue;
        }
        let own = &replicas[receiver as usize];
        let before = placement.held_components(own, stamps);
        let mut after_partitions = own.clone();
        after_partitions.extend_from_slice(moved);
        let after = placement.held_components(&after_partitions, stamps);
        let read = placement.components_read(moved);
        let seconds = read as f64 / costs.components_loaded_per_second;
        let rate: f64 = moved
            .iter()
            .map(|p| placement.partition_rate[*p as usize])
            .sum();
        outcome.components_read += read;
        outcome.components_added += after - before;
        outcome.seconds = outcome.seconds.max(seconds);
        outcome.samples_held += rate * seconds;
    }
    outcome
}

/// One tenant's shard grown from its size to `new_size`.
#[derive(Debug, Clone, Copy)]
pub struct Resize {
    pub from: u32,
    pub to: u32,
    /// Copies of the tenant's components the materializer writes to the
    /// added partitions.
    pub components_written: u64,
    /// Replicas that must load the tenant (they held none of it).
    pub replicas_loading: u32,
    /// Copy, then load, before the tenant's samples on the added partitions
    /// can be joined (the materializer taken to write as fast as a replica
    /// loads).
    pub seconds: f64,
    /// The tenant's samples on the added partitions meanwhile.
    pub samples_held: f64,
}

pub fn resize_cost(placement: &Placement, tenant: u32, new_size: u32, costs: &Costs) -> Resize {
    let spec = &placement.tenants[tenant as usize];
    let old = &placement.shards[tenant as usize];
    let grown = TenantShard::new(&spec.name, new_size, placement.partitions);
    let added: Vec<i32> = grown.partitions_not_in(old).collect();
    let holding: std::collections::HashSet<u32> = old
        .partitions()
        .iter()
        .map(|p| placement.replica_of_partition[*p as usize])
        .collect();
    let loading: std::collections::HashSet<u32> = added
        .iter()
        .map(|p| placement.replica_of_partition[*p as usize])
        .filter(|r| !holding.contains(r))
        .collect();
    let components = spec.components as f64;
    let written = spec.components * added.len() as u64;
    let seconds = if added.is_empty() {
        0.0
    } else {
        // The materializer writes every copy, then each loading replica
        // reads the tenant from its added partition (in parallel).
        (written as f64 + components) / costs.components_loaded_per_second
    };
    Resize {
        from: old.len() as u32,
        to: grown.len() as u32,
        components_written: written,
        replicas_loading: loading.len() as u32,
        seconds,
        samples_held: spec.rate * added.len() as f64 / grown.len() as f64 * seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::population::{PopulationPlan, population};

    fn tenants() -> Vec<Tenant> {
        population(&PopulationPlan {
            tenants: 300,
            components: 300_000,
            samples_per_second: 300_000.0,
            zipf_exponent: 1.0,
            rate_noise: 0.5,
            seed: 1,
        })
    }

    const COSTS: Costs = Costs {
        bytes_per_component: 900.0,
        components_loaded_per_second: 150_000.0,
    };

    #[test]
    fn full_replication_holds_everything_everywhere() {
        let tenants = tenants();
        let placement = Placement::new(ShardPolicy::FullReplication, &tenants, 16, 4);
        let outcome = evaluate(&placement, &COSTS);
        let all: u64 = tenants.iter().map(|t| t.components).sum();
        assert_eq!(outcome.memory_bytes.max, all as f64 * 900.0);
        assert_eq!(outcome.sharing.mean, 299.0);
        assert_eq!(outcome.leave.components_read, 0);
    }

    #[test]
    fn a_shard_of_one_puts_each_tenant_on_one_replica() {
        let tenants = tenants();
        let placement = Placement::new(ShardPolicy::Fixed(1), &tenants, 16, 4);
        let outcome = evaluate(&placement, &COSTS);
        let all: u64 = tenants.iter().map(|t| t.components).sum();
        // The replicas' tenants partition the population.
        let held: f64 = (0..4)
            .map(|r| {
                let partitions = placement.partitions_of_replica(r);
                placement.held_components(&partitions, &mut Stamps::new(300)) as f64
            })
            .sum();
        assert_eq!(held, all as f64);
        assert!(outcome.memory_bytes.mean * 4.0 <= all as f64 * 900.0 + 1.0);
        assert_eq!(placement.storage_amplification(), 1.0);
        // Tenants wholly inside a tenant's one partition share it entirely.
        assert_eq!(outcome.sharing.mean, outcome.inside.mean);
    }

    #[test]
    fn growing_a_shard_writes_the_tenant_to_the_added_partitions() {
        let tenants = tenants();
        let placement = Placement::new(ShardPolicy::Fixed(2), &tenants, 16, 4);
        let resize = resize_cost(&placement, 0, 4, &COSTS);
        assert_eq!((resize.from, resize.to), (2, 4));
        assert_eq!(resize.components_written, tenants[0].components * 2);
        assert!(resize.replicas_loading <= 2);
    }
}
