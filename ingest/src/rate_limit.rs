//! Per-tenant rate limits, charged per sample with governor. Tenants with the
//! same quota share one keyed limiter; idle tenants' state is reclaimed by
//! [`RateLimiters::reclaim_idle`].

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, RateLimiter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    pub per_second: u32,
    pub burst: u32,
}

type KeyedLimiter = DefaultKeyedRateLimiter<Arc<str>>;

/// The limiters of every quota in use, shared across key file reloads so a
/// reload does not hand every tenant a fresh burst.
#[derive(Default, Clone)]
pub struct RateLimiters {
    by_quota: Arc<Mutex<HashMap<Quota, Arc<KeyedLimiter>>>>,
}

impl RateLimiters {
    pub fn for_tenant(&self, tenant: Arc<str>, quota: Quota) -> TenantLimiter {
        let mut by_quota = self.by_quota.lock().expect("limiters lock");
        let limiter = by_quota
            .entry(quota)
            .or_insert_with(|| {
                let per_second = NonZeroU32::new(quota.per_second).expect("validated positive");
                let burst = NonZeroU32::new(quota.burst).expect("validated positive");
                Arc::new(RateLimiter::keyed(
                    governor::Quota::per_second(per_second).allow_burst(burst),
                ))
            })
            .clone();
        TenantLimiter {
            tenant,
            quota,
            limiter,
        }
    }

    /// Forgets tenants whose buckets are full again, and limiters no tenant uses.
    pub fn reclaim_idle(&self) {
        let mut by_quota = self.by_quota.lock().expect("limiters lock");
        by_quota.retain(|_, limiter| Arc::strong_count(limiter) > 1);
        for limiter in by_quota.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Tenants currently tracked, across limiters.
    pub fn tracked(&self) -> usize {
        self.by_quota
            .lock()
            .expect("limiters lock")
            .values()
            .map(|l| l.len())
            .sum()
    }
}

/// One tenant's handle on its limiter.
pub struct TenantLimiter {
    tenant: Arc<str>,
    quota: Quota,
    limiter: Arc<KeyedLimiter>,
}

impl std::fmt::Debug for TenantLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLimiter")
            .field("tenant", &self.tenant)
            .field("quota", &self.quota)
            .finish()
    }
}

/// Why samples were refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Limited {
    /// Over the rate: retry after this long.
    RetryAfter(Duration),
    /// More samples in one request than the tenant's burst: can never pass.
    OverBurst { burst: u32 },
}

impl TenantLimiter {
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Takes `samples` from the tenant's bucket, or says when to come back.
    pub fn charge(&self, samples: usize) -> Result<(), Limited> {
        let Some(cost) = NonZeroU32::new(u32::try_from(samples).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        match self.limiter.check_key_n(&self.tenant, cost) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Limited::RetryAfter(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            Err(_) => Err(Limited::OverBurst {
                burst: self.quota.burst,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_charged_against_the_burst_then_the_rate() {
        let limiters = RateLimiters::default();
        let limiter = limiters.for_tenant(
            Arc::from("acme"),
            Quota {
                per_second: 10,
                burst: 100,
            },
        );
        assert_eq!(limiter.charge(60), Ok(()));
        assert_eq!(limiter.charge(40), Ok(()));
        assert!(
            matches!(limiter.charge(20), Err(Limited::RetryAfter(wait)) if wait > Duration::ZERO)
        );
        assert_eq!(limiter.charge(1000), Err(Limited::OverBurst { burst: 100 }));
        assert_eq!(limiter.charge(0), Ok(()));
    }

    #[test]
    fn tenants_with_one_quota_share_a_limiter_but_not_a_bucket() {
        let limiters = RateLimiters::default();
        let quota = Quota {
            per_second: 1,
            burst: 10,
        };
        let a = limiters.for_tenant(Arc::from("a"), quota);
        let b = limiters.for_tenant(Arc::from("b"), quota);
        assert_eq!(a.charge(10), Ok(()));
        assert_eq!(b.charge(10), Ok(()));
        assert_eq!(limiters.tracked(), 2);
        drop((a, b));
        limiters.reclaim_idle();
        assert_eq!(limiters.tracked(), 0);
    }
}
