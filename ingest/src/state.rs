//! What every request handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::auth::ApiKeys;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::refusals::RefusalLogs;

pub struct AppState {
    pub settings: Settings,
    pub keys: ApiKeys,
    pub publisher: Publisher,
    pub metrics: Metrics,
    pub refusal_logs: RefusalLogs,
    pub inflight: InflightBytes,
    /// Set on SIGTERM: `/readyz` answers 503 so load balancers stop sending.
    pub draining: AtomicBool,
}

impl AppState {
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire) && self.publisher.is_ready()
    }
}

/// A cap on request bytes held in memory at once, so a flood of large
/// requests is refused (503) instead of growing memory without bound.
pub struct InflightBytes {
    held: Arc<AtomicUsize>,
    limit: usize,
}

/// Bytes held until dropped.
pub struct InflightGuard {
    held: Arc<AtomicUsize>,
    bytes: usize,
}

impl InflightBytes {
    pub fn new(limit: usize) -> InflightBytes {
        InflightBytes {
            held: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    pub fn try_reserve(&self, bytes: usize) -> Option<InflightGuard> {
        let mut current = self.held.load(Ordering::Relaxed);
        loop {
            let next = current
                .checked_add(bytes)
                .filter(|next| *next <= self.limit)?;
            match self.held.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(InflightGuard {
                        held: self.held.clone(),
                        bytes,
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit_and_return_on_drop() {
        let inflight = InflightBytes::new(100);
        let first = inflight.try_reserve(60).unwrap();
        assert!(inflight.try_reserve(50).is_none());
        let second = inflight.try_reserve(40).unwrap();
        assert_eq!(inflight.held(), 100);
        drop((first, second));
        assert_eq!(inflight.held(), 0);
    }
}
