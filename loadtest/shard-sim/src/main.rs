//! `shard-sim`: tenant shards of `metrics.samples` against today's full
//! topology replication, on a simulated multi-tenant population. Prints the
//! Markdown tables of `docs/scaling.md`; the same seed prints the same tables.

mod placement;
mod population;

use clap::Parser;

use placement::{Costs, Outcome, Placement, ShardPolicy, evaluate, resize_cost};
use population::{PopulationPlan, population};

#[derive(Debug, Parser)]
#[command(about = "Simulates tenant shards against full topology replication")]
struct Options {
    /// Tenants in the population.
    #[arg(long, default_value_t = 10_000)]
    tenants: usize,
    /// Components over all tenants.
    #[arg(long, default_value_t = 50_000_000)]
    components: u64,
    /// Samples per second over all tenants.
    #[arg(long, default_value_t = 20_000_000.0)]
    samples_per_second: f64,
    /// Zipf exponent of component counts and of sample rates.
    #[arg(long, default_value_t = 1.0)]
    zipf_exponent: f64,
    /// Log-normal noise between a tenant's component rank and its rate rank.
    #[arg(long, default_value_t = 0.5)]
    rate_noise: f64,
    /// Partitions of metrics.samples (and of a co-partitioned topology.components).
    #[arg(long, default_value_t = 128)]
    partitions: u32,
    /// Correlator replicas.
    #[arg(long, default_value_t = 32)]
    replicas: u32,
    /// Topology memory per component, bytes (README, Sizing: about 0.9 KiB).
    #[arg(long, default_value_t = 922.0)]
    bytes_per_component: f64,
    /// Components a replica loads per second (README, Sizing: 1 M in 6.6 s).
    #[arg(long, default_value_t = 151_000.0)]
    components_loaded_per_second: f64,
    #[arg(long, default_value_t = 21)]
    seed: u64,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn policies() -> Vec<ShardPolicy> {
    let mut policies = vec![ShardPolicy::FullReplication];
    policies.extend([1, 2, 4, 8, 16].map(ShardPolicy::Fixed));
    policies.extend([
        ShardPolicy::ByRate {
            minimum: 2,
            partition_share: 0.25,
        },
        ShardPolicy::ByRate {
            minimum: 2,
            partition_share: 0.5,
        },
        ShardPolicy::ByRate {
            minimum: 4,
            partition_share: 0.25,
        },
    ]);
    policies
}

/// The policy `docs/scaling.md` chooses.
const CHOSEN: ShardPolicy = ShardPolicy::ByRate {
    minimum: 2,
    partition_share: 0.5,
};

/// How a shard grows in the resize table.
#[derive(Debug, Clone, Copy)]
enum Growth {
    OneMore,
    Double,
}

fn millions(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn main() {
    let options = Options::parse();
    let plan = PopulationPlan {
        tenants: options.tenants,
        components: options.components,
        samples_per_second: options.samples_per_second,
        zipf_exponent: options.zipf_exponent,
        rate_noise: options.rate_noise,
        seed: options.seed,
    };
    let costs = Costs {
        bytes_per_component: options.bytes_per_component,
        components_loaded_per_second: options.components_loaded_per_second,
    };
    let tenants = population(&plan);
    print_population(&options, &tenants, &costs);

    let (partitions, replicas) = (options.partitions, options.replicas);
    let outcomes: Vec<(ShardPolicy, Outcome)> = policies()
        .into_iter()
        .map(|policy| {
            let placement = Placement::new(policy, &tenants, partitions, replicas);
            (policy, evaluate(&placement, &costs))
        })
        .collect();
    print_memory_and_balance(partitions, replicas, &outcomes);
    print_blast_radius(&outcomes);
    print_rebalance(&outcomes);

    table(
        "Growing one tenant's shard (the chosen policy and S = 4; held: if its samples went to the added partitions at once)",
        "| policy | tenant | components | S | copies written | replicas that load it | copy and load | its samples held |",
    );
    let mut by_rate: Vec<u32> = (0..tenants.len() as u32).collect();
    by_rate.sort_by(|a, b| {
        tenants[*b as usize]
            .rate
            .total_cmp(&tenants[*a as usize].rate)
    });
    let picks = [
        ("largest by rate", by_rate[0], Growth::OneMore),
        ("largest by rate", by_rate[0], Growth::Double),
        ("10th by rate", by_rate[9], Growth::Double),
        ("median", by_rate[by_rate.len() / 2], Growth::Double),
    ];
    for policy in [CHOSEN, ShardPolicy::Fixed(4)] {
        let placement = Placement::new(policy, &tenants, partitions, replicas);
        for (label, tenant, growth) in picks {
            let size = placement.shards[tenant as usize].len() as u32;
            let grown = match growth {
                Growth::OneMore => size + 1,
                Growth::Double => size * 2,
            };
            let resize = resize_cost(&placement, tenant, grown, &costs);
            println!(
                "| {} | {label} | {} | {} → {} | {} | {} | {:.1} s | {} |",
                policy.describe(),
                millions(tenants[tenant as usize].components as f64),
                resize.from,
                resize.to,
                millions(resize.components_written as f64),
                resize.replicas_loading,
                resize.seconds,
                millions(resize.samples_held),
            );
        }
    }

    table(
        &format!("The chosen policy by fleet size ({})", CHOSEN.describe()),
        "| partitions | replicas | topology per replica, max | mean | full replication | replica load max/mean |",
    );
    let all: u64 = tenants.iter().map(|t| t.components).sum();
    for (partitions, replicas) in [(64, 16), (128, 16), (128, 32), (128, 64), (256, 64)] {
        let placement = Placement::new(CHOSEN, &tenants, partitions, replicas);
        let outcome = evaluate(&placement, &costs);
        println!(
            "| {partitions} | {replicas} | {:.1} GiB | {:.1} GiB | {:.1} GiB | {:.2} |",
            outcome.memory_bytes.max / GIB,
            outcome.memory_bytes.mean / GIB,
            all as f64 * costs.bytes_per_component / GIB,
            outcome.replica_rate.imbalance(),
        );
    }
}

/// A Markdown table's title and header: the first column left-aligned,
/// the others right-aligned.
fn table(title: &str, header: &str) {
    let columns = header.matches('|').count().saturating_sub(1);
    println!("\n### {title}\n");
    println!("{header}");
    println!("|---|{}", "---:|".repeat(columns.saturating_sub(1)));
}

fn print_population(options: &Options, tenants: &[population::Tenant], costs: &Costs) {
    let components: u64 = tenants.iter().map(|t| t.components).sum();
    let rate: f64 = tenants.iter().map(|t| t.rate).sum();
    let mut rates: Vec<f64> = tenants.iter().map(|t| t.rate).collect();
    rates.sort_by(|a, b| b.total_cmp(a));
    println!(
        "## Population: {} tenants, {} components, {} samples/s (Zipf s = {}, rate noise {}, seed {})\n",
        tenants.len(),
        millions(components as f64),
        millions(rate),
        options.zipf_exponent,
        options.rate_noise,
        options.seed,
    );
    println!("| tenant | components | topology | samples/s |");
    println!("|---|---:|---:|---:|");
    let median = tenants.len() / 2;
    for (label, index) in [
        ("largest", 0),
        ("10th", 9),
        ("100th", 99),
        ("median", median),
    ] {
        let tenant = &tenants[index];
        println!(
            "| {label} (by components) | {} | {:.2} GiB | {} |",
            millions(tenant.components as f64),
            tenant.components as f64 * costs.bytes_per_component / GIB,
            millions(tenant.rate),
        );
    }
    println!(
        "| highest rate | | | {} ({:.1} % of all) |",
        millions(rates[0]),
        rates[0] / rate * 100.0
    );
}

fn print_memory_and_balance(partitions: u32, replicas: u32, outcomes: &[(ShardPolicy, Outcome)]) {
    table(
        &format!(
            "Topology memory and load, {partitions} partitions, {replicas} replicas (range assignor)"
        ),
        "| policy | topology per replica, max | mean | tenants per replica | partition load max/mean | replica load max/mean | topology.components stored |",
    );
    for (policy, outcome) in outcomes {
        println!(
            "| {} | {:.1} GiB | {:.1} GiB | {:.0} | {:.2} | {:.2} | {:.2} × |",
            policy.describe(),
            outcome.memory_bytes.max / GIB,
            outcome.memory_bytes.mean / GIB,
            outcome.tenants_per_replica.mean,
            outcome.partition_rate.imbalance(),
            outcome.replica_rate.imbalance(),
            outcome.storage_amplification,
        );
    }
}

fn print_blast_radius(outcomes: &[(ShardPolicy, Outcome)]) {
    table(
        "Blast radius of one tenant's burst: other tenants on its partitions",
        "| policy | sharing a partition, mean | max | wholly inside its shard, mean | highest-rate tenant: sharing | wholly inside |",
    );
    for (policy, outcome) in outcomes {
        println!(
            "| {} | {:.0} | {:.0} | {:.1} | {} | {} |",
            policy.describe(),
            outcome.sharing.mean,
            outcome.sharing.max,
            outcome.inside.mean,
            outcome.top_sharing,
            outcome.top_inside,
        );
    }
}

fn print_rebalance(outcomes: &[(ShardPolicy, Outcome)]) {
    table(
        "Rebalance: one replica restarts (cold), or leaves for good (worst replica)",
        "| policy | restart: components read | load time | samples held | leave: components read | memory added | load time | samples held |",
    );
    for (policy, outcome) in outcomes {
        let (restart, leave) = (outcome.restart, outcome.leave);
        println!(
            "| {} | {} | {:.0} s | {} | {} | {} | {:.0} s | {} |",
            policy.describe(),
            millions(restart.components_read as f64),
            restart.seconds,
            millions(restart.samples_held),
            millions(leave.components_read as f64),
            millions(leave.components_added as f64),
            leave.seconds,
            millions(leave.samples_held),
        );
    }
}
