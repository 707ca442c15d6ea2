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

/// A cap on the bytes requests hold at once, so a flood of large requests is
/// refused (503) instead of growing memory without bound. A request's guard
/// follows what it holds from its first body byte to Kafka's acknowledgement
/// of its last record, growing (which may be refused) and shrinking as it
/// goes through the stages.
pub struct InflightBytes {
    held: Arc<AtomicUsize>,
    limit: usize,
}

/// Bytes held until dropped.
pub struct InflightGuard {
    held: Arc<AtomicUsize>,
    limit: usize,
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
        let mut guard = self.empty();
        guard.try_resize(bytes).then_some(guard)
    }

    /// A guard holding nothing yet, to grow as a request reads its body.
    pub fn empty(&self) -> InflightGuard {
        InflightGuard {
            held: self.held.clone(),
            limit: self.limit,
            bytes: 0,
        }
    }

    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl InflightGuard {
    /// Makes the guard hold `bytes`: shrinking always succeeds, growing only
    /// while every request's bytes together stay within the limit (false
    /// leaves the guard as it was).
    pub fn try_resize(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            self.held.fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
            return true;
        }
        let more = bytes - self.bytes;
        let mut current = self.held.load(Ordering::Relaxed);
        loop {
            let Some(next) = current.checked_add(more).filter(|next| *next <= self.limit) else {
                return false;
            };
            match self.held.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.bytes = bytes;
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// What the guard holds now.
    pub fn bytes(&self) -> usize {
        self.bytes
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

    #[test]
    fn a_guard_grows_within_the_limit_and_shrinks_at_will() {
        let inflight = InflightBytes::new(100);
        let mut request = inflight.empty();
        assert!(request.try_resize(30));
        let other = inflight.try_reserve(50).unwrap();
        assert!(!request.try_resize(60), "30 + 50 + 30 more is over 100");
        assert_eq!((request.bytes(), inflight.held()), (30, 80));
        assert!(request.try_resize(50));
        assert!(request.try_resize(10));
        assert_eq!(inflight.held(), 60);
        drop(other);
        drop(request);
        assert_eq!(inflight.held(), 0);
    }
}
