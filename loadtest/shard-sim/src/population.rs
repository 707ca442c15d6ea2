//! The tenants simulated: Zipf-distributed component counts and sample rates,
//! the two correlated (a tenant with more components tends to send more), all
//! drawn from one seed.

/// One tenant's size.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    pub components: u64,
    /// Samples per second.
    pub rate: f64,
}

/// What the population is drawn from.
#[derive(Debug, Clone, Copy)]
pub struct PopulationPlan {
    pub tenants: usize,
    pub components: u64,
    pub samples_per_second: f64,
    /// The Zipf exponent of both distributions: the tenant of rank k gets a
    /// share proportional to 1 / k^s.
    pub zipf_exponent: f64,
    /// How loosely a tenant's rate rank follows its component rank: the
    /// standard deviation of the log-normal noise on the component count
    /// that orders the tenants by rate (0: the same order).
    pub rate_noise: f64,
    pub seed: u64,
}

/// splitmix64: small, fast, and the same sequence everywhere for a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Zipf shares of `n` ranks, summing to 1.
fn zipf_shares(n: usize, exponent: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-exponent)).collect();
    let total: f64 = weights.iter().sum();
    weights.into_iter().map(|w| w / total).collect()
}

/// The tenants, largest topology first.
pub fn population(plan: &PopulationPlan) -> Vec<Tenant> {
    let shares = zipf_shares(plan.tenants, plan.zipf_exponent);
    let mut rng = Rng::new(plan.seed);
    let mut tenants: Vec<Tenant> = shares
        .iter()
        .enumerate()
        .map(|(rank, share)| Tenant {
            name: format!("tenant-{rank:05}"),
            components: ((plan.components as f64 * share).round() as u64).max(1),
            rate: 0.0,
        })
        .collect();
    // Rate ranks: the component counts, each shaken by a log-normal factor.
    let mut by_rate: Vec<(f64, usize)> = tenants
        .iter()
        .enumerate()
        .map(|(index, tenant)| {
            let noisy = (tenant.components as f64).ln() + plan.rate_noise * rng.normal();
            (noisy, index)
        })
        .collect();
    by_rate.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for ((_, index), share) in by_rate.iter().zip(&shares) {
        tenants[*index].rate = plan.samples_per_second * share;
    }
    tenants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> PopulationPlan {
        PopulationPlan {
            tenants: 1000,
            components: 1_000_000,
            samples_per_second: 100_000.0,
            zipf_exponent: 1.0,
            rate_noise: 0.5,
            seed: 7,
        }
    }

    #[test]
    fn the_population_is_the_same_for_a_seed_and_adds_up() {
        let first = population(&plan());
        let again = population(&plan());
        assert!(
            first
                .iter()
                .zip(&again)
                .all(|(a, b)| a.components == b.components && a.rate == b.rate)
        );
        let components: u64 = first.iter().map(|t| t.components).sum();
        assert!(components.abs_diff(1_000_000) < 1000, "{components}");
        let rate: f64 = first.iter().map(|t| t.rate).sum();
        assert!((rate - 100_000.0).abs() < 1.0);
        // Zipf: the largest is about 1 / H(1000) = 13 % of the whole.
        assert!((120_000..140_000).contains(&first[0].components));
    }
}
